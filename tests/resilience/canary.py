"""A canary client for resilience tests: publishes and consumes every 50 ms and
records each round trip, so an attack that freezes the broker shows as a large
``max_rtt`` (the round trip still in flight when stopped counts too)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pika


class Canary:
    """Round trips publish -> deliver on its own queue in a background thread."""

    def __init__(self, port: int, interval: float = 0.05) -> None:
        self.port = port
        self.interval = interval
        self.rtts: list[float] = []
        self.errors: list[str] = []
        self.sent = 0
        self.received = 0
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._inflight_since: float | None = None
        self._thread = threading.Thread(target=self._run, name="canary", daemon=True)

    def start(self, timeout: float = 15.0) -> Canary:
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError(f"canary could not connect: {self.errors}")
        return self

    def stop(self, timeout: float = 60.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    @property
    def max_rtt(self) -> float:
        """Largest round trip seen, including one still waiting for its delivery."""
        worst = max(self.rtts, default=0.0)
        since = self._inflight_since
        if since is not None:
            worst = max(worst, time.monotonic() - since)
        return worst

    def wait_rounds(self, n: int, timeout: float = 30.0) -> None:
        """Block until ``n`` more round trips completed (the canary is alive)."""
        target = self.received + n
        deadline = time.monotonic() + timeout
        while self.received < target:
            if time.monotonic() > deadline:
                raise TimeoutError(f"canary stuck: {self.received}/{target}, errors={self.errors}")
            if not self._thread.is_alive():
                raise RuntimeError(f"canary died: {self.errors}")
            time.sleep(0.01)

    def _run(self) -> None:
        try:
            params = pika.ConnectionParameters(
                "127.0.0.1", self.port, credentials=pika.PlainCredentials("guest", "guest"),
                heartbeat=0, blocked_connection_timeout=None, socket_timeout=10,
            )
            conn = pika.BlockingConnection(params)
            ch = conn.channel()
            q = ch.queue_declare("", exclusive=True).method.queue
            got: list[bytes] = []
            ch.basic_consume(q, lambda _c, _m, _p, body: got.append(body), auto_ack=True)
            self._ready.set()
            while not self._stop.is_set():
                body = str(self.sent).encode()
                t0 = time.monotonic()
                self._inflight_since = t0
                ch.basic_publish("", q, body)
                self.sent += 1
                while not got and not self._stop.is_set():
                    conn.process_data_events(time_limit=0.01)
                if got:
                    self.rtts.append(time.monotonic() - t0)
                    self.received += len(got)
                    got.clear()
                self._inflight_since = None
                self._stop.wait(self.interval)
            conn.close()
        except Exception as e:  # the canary reports, the test asserts
            self.errors.append(repr(e))
            self._ready.set()


def rss_mb(pid: int) -> float:
    """Resident set size of a process in MB (from /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0
