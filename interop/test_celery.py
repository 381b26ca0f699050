"""A real Celery worker (``celery -A interop.celery_app worker --pool=solo``) against warren.

With the ``rpc://`` result backend (results come back over an auto-delete reply
queue per client) and without a result backend (tasks report through files).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from interop.celery_app import make_app
from interop.common import wait_until

REPO = Path(__file__).resolve().parent.parent
TIMEOUT = 15.0


class Worker:
    def __init__(self, broker_url: str, backend: str, queue: str, log: Path) -> None:
        self.log = log
        env = dict(os.environ)
        env.update(
            PYTHONPATH=str(REPO) + os.pathsep + env.get("PYTHONPATH", ""),
            WARREN_CELERY_BROKER=broker_url,
            WARREN_CELERY_BACKEND=backend,
            WARREN_CELERY_QUEUE=queue,
        )
        self._out = open(log, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "interop.celery_app", "worker", "--pool=solo", "-c", "1",
             "-l", "INFO", "-n", f"{queue}@localhost"],
            cwd=REPO, env=env, stdout=self._out, stderr=subprocess.STDOUT,
        )

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self) -> None:
        def ready() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError(f"celery worker exited with {self.proc.returncode}:\n{self.text()}")
            return " ready." in self.text()

        try:
            wait_until(ready, 25.0, what="celery worker ready")
        except TimeoutError:
            raise TimeoutError(f"celery worker not ready:\n{self.text()}") from None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # warm shutdown
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._out.close()


@pytest.fixture
def worker_factory(tmp_path):
    started: list[Worker] = []

    def start(broker_url: str, backend: str, queue: str) -> Worker:
        w = Worker(broker_url, backend, queue, tmp_path / f"worker{len(started)}.log")
        started.append(w)
        w.wait_ready()
        return w

    yield start
    for w in started:
        w.stop()


def _no_errors(worker: Worker) -> None:
    text = worker.text()
    for bad in ("Connection to broker lost", "consumer: Cannot connect", "Unrecoverable error",
                "Traceback (most recent call last)"):
        assert bad not in text, f"{bad!r} in worker log:\n{text}"


def test_celery_rpc_backend(warren, prefix, worker_factory):
    worker = worker_factory(warren.url, "rpc://", prefix)
    app = make_app(warren.url, "rpc://", prefix)
    try:
        add, fail = app.tasks["interop.add"], app.tasks["interop.fail"]
        assert add.delay(2, 3).get(timeout=TIMEOUT) == 5
        results = [add.delay(i, i) for i in range(10)]
        assert [r.get(timeout=TIMEOUT) for r in results] == [2 * i for i in range(10)]
        r = fail.delay("boom")
        with pytest.raises(ValueError, match="boom"):
            r.get(timeout=TIMEOUT)
        assert r.state == "FAILURE"
        counter = Path(worker.log.parent / "flaky.count")
        r = app.tasks["interop.flaky"].delay(str(counter))
        assert r.get(timeout=TIMEOUT) == 3
        # broadcast over the pidbox fanout exchange, replies over reply.celery.pidbox
        replies = app.control.ping(timeout=2.0)
        assert any(f"{prefix}@localhost" in rep for rep in replies), replies
    finally:
        app.close()
    worker.stop()
    text = worker.text()
    assert "Task interop.add" in text and "succeeded" in text
    assert "Task interop.flaky" in text and "Retry in 0s" in text
    for bad in ("Connection to broker lost", "consumer: Cannot connect", "Unrecoverable error"):
        assert bad not in text, f"{bad!r} in worker log:\n{text}"


def test_celery_without_result_backend(warren, prefix, worker_factory, tmp_path):
    worker = worker_factory(warren.url, "", prefix)
    app = make_app(warren.url, None, prefix)
    try:
        write = app.tasks["interop.write"]
        files = [tmp_path / f"out{i}.txt" for i in range(5)]
        for i, f in enumerate(files):
            write.delay(str(f), f"hello {i}")
        wait_until(lambda: all(f.exists() and f.read_text() for f in files), TIMEOUT, what="task side effects")
        assert [f.read_text() for f in files] == [f"hello {i}" for i in range(5)]
        # the queue drains: every task was acked (task_acks_late)
        with app.connection_for_write() as conn:
            ch = conn.default_channel

            def drained() -> bool:
                _name, count, consumers = ch.queue_declare(prefix, passive=True)
                return count == 0 and consumers == 1

            wait_until(drained, TIMEOUT, what="queue drained")
    finally:
        app.close()
    wait_until(lambda: worker.text().count("succeeded") >= 5, TIMEOUT, what="worker log")
    worker.stop()
    _no_errors(worker)
