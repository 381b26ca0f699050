"""Start a warren broker as a subprocess on a free port with its own data directory."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from warren.bench.ports import free_port  # noqa: F401 - the tests import it from here

ROOT = Path(__file__).resolve().parent.parent


def wait_port(port: int, timeout: float = 15.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"broker exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise TimeoutError(f"port {port} not listening after {timeout}s")


class BrokerProcess:
    """A running ``warren``; ``url`` for clients, ``kill()`` for crash tests, ``restart()``."""

    def __init__(self, data_dir: Path, port: int | None = None, extra_args: list[str] | None = None,
                 nofile: int | None = None) -> None:
        self.data_dir = Path(data_dir)
        #: RLIMIT_NOFILE of the broker process (None: inherited)
        self.nofile = nofile
        self.port = port or free_port()
        self.extra_args = list(extra_args or [])
        #: management API and Prometheus listeners get free ports too (never the defaults)
        self.mgmt_port = free_port()
        self.prom_port = free_port()
        self.proc: subprocess.Popen | None = None
        self.log_path = self.data_dir.parent / f"warren-{self.port}.log"

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def start(self, wait: bool = True) -> BrokerProcess:
        """``wait``: until the AMQP port listens (off for a broker expected not to listen yet)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
        cmd = [
            sys.executable,
            "-m",
            "warren.server.main",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--data-dir",
            str(self.data_dir),
            "--log-level",
            os.environ.get("WARREN_TEST_LOG_LEVEL", "INFO"),
            "--management-port",
            str(self.mgmt_port),
            "--prometheus-port",
            str(self.prom_port),
            *self.extra_args,
        ]
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, cwd=str(ROOT),
                                     preexec_fn=self._limits if self.nofile else None)
        if wait:
            wait_port(self.port, proc=self.proc)
        return self

    def _limits(self) -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_NOFILE, (self.nofile, self.nofile))

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def kill(self) -> None:
        """kill -9: no chance to flush anything."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None

    def restart(self) -> BrokerProcess:
        self.stop()
        return self.start()

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""
