"""The Celery app the interop tests run a real worker for.

The worker is started as ``celery -A interop.celery_app worker`` with the broker URL
in ``WARREN_CELERY_BROKER`` and an optional result backend in ``WARREN_CELERY_BACKEND``
(empty: no result backend; tasks then report through files).
"""

from __future__ import annotations

import os
from pathlib import Path

from celery import Celery


def make_app(broker: str, backend: str | None, queue: str) -> Celery:
    app = Celery("interop", broker=broker, backend=backend or None, set_as_current=False)
    app.conf.update(
        task_default_queue=queue,
        task_default_exchange=queue,
        task_default_routing_key=queue,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=3,
        worker_hijack_root_logger=False,
        worker_prefetch_multiplier=4,
        task_acks_late=True,
        result_expires=300,
        broker_transport_options={"confirm_publish": True},
    )

    @app.task(name="interop.add", shared=False)
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="interop.fail", shared=False)
    def fail(text: str) -> None:
        raise ValueError(text)

    @app.task(name="interop.write", shared=False)
    def write(path: str, text: str) -> str:
        Path(path).write_text(text)
        return text

    @app.task(name="interop.flaky", shared=False, bind=True, max_retries=3, default_retry_delay=0)
    def flaky(self, path: str) -> int:
        """Fails (and retries) until it has run three times; the count lives in ``path``."""
        p = Path(path)
        n = int(p.read_text()) + 1 if p.exists() else 1
        p.write_text(str(n))
        if n < 3:
            raise self.retry(countdown=0)
        return n

    return app


app = make_app(
    os.environ.get("WARREN_CELERY_BROKER", "amqp://guest:guest@127.0.0.1:5672//"),
    os.environ.get("WARREN_CELERY_BACKEND", ""),
    os.environ.get("WARREN_CELERY_QUEUE", "interop"),
)
