"""A publisher blocked by a resource alarm is kept alive (as RabbitMQ, whose heartbeat
receive monitor is paused while the reader is blocked): warren does not read a
blocked connection, so the client's heartbeats sit unread in the socket and must not
count as missed. Once the alarm clears, the held publish goes through and is confirmed.
"""

from __future__ import annotations

import threading
import time

import pika
import pytest

from tests.resilience.test_memory import _unfinished_body


def _wait(cond, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


def _alarm_lines(b) -> list[str]:
    return [ln for ln in b.log_text().splitlines() if "resource alarm" in ln]


def _alarm_steady(b, seconds: float) -> bool:
    """The memory alarm is up and has not changed for ``seconds``."""
    before = _alarm_lines(b)
    time.sleep(seconds)
    after = _alarm_lines(b)
    return before == after and bool(after) and "alarm set" in after[-1]


@pytest.mark.timeout(120)
def test_blocked_publisher_with_heartbeats_survives_the_alarm(broker_factory):
    b = broker_factory("--vm-memory-high-watermark-absolute", "150MB")
    params = pika.URLParameters(b.url + "?heartbeat=1")
    conn = pika.BlockingConnection(params)
    ch = conn.channel()
    ch.confirm_delivery()
    ch.queue_declare("held", durable=False)
    assert conn._impl.params.heartbeat == 1

    blocked = threading.Event()
    # the impl callback fires while basic_publish waits (the blocking adapter defers its own)
    conn._impl.add_on_connection_blocked_callback(lambda *_: blocked.set())
    go = threading.Event()
    result: list[object] = []

    def publish() -> None:
        # pika's blocking adapter only sends heartbeats while it runs its I/O loop
        try:
            while not go.is_set():
                conn.process_data_events(time_limit=0.1)
            # as RabbitMQ, the first publish frame read during the alarm blocks the
            # connection: the frames already read with it are taken, the rest wait.
            # Whether "first" is confirmed during the alarm thus depends on whether pika's
            # method, header and body frames arrived in one read; the second publish is
            # never read until the alarm clears.
            for body in (b"first", b"held-through-alarm"):
                ch.basic_publish("", "held", body, mandatory=True)
                result.append(body)
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            result.append(exc)

    t = threading.Thread(target=publish)
    t.start()
    # one client sending an unfinished 120 MB message raises the memory alarm
    stop = threading.Event()
    filler_blocked: list[int] = []
    filler = threading.Thread(target=_unfinished_body, args=(b.port, stop, filler_blocked))
    filler.start()
    try:
        assert _wait(lambda: "resource alarm set resource=memory" in b.log_text(), 60)
        # the first trims after the alarm may free enough to clear it for a moment (and
        # the filler is then read on): wait until it has stayed up for a while
        assert _wait(lambda: _alarm_steady(b, 1.5), 30), b.log_text()[-2000:]
        go.set()
        assert blocked.wait(30), "the publisher was not told connection.blocked"
        # held blocked for more than three heartbeat intervals (the criterion itself)
        time.sleep(4.0)
        assert result in ([], [b"first"]), f"confirmed during the alarm: {result}\n{_alarm_lines(b)}"
        assert "missed heartbeats" not in b.log_text()
    finally:
        stop.set()
        filler.join(30)
    # the filler is gone: memory falls, the alarm clears, the publish is confirmed
    assert _wait(lambda: "alarm cleared" in _alarm_lines(b)[-1], 30)
    t.join(30)
    assert result == [b"first", b"held-through-alarm"], result
    # the heartbeat check resumed with reading; the connection still works
    got = [ch.basic_get("held", auto_ack=True)[2] for _ in range(2)]
    assert got == [b"first", b"held-through-alarm"]
    conn.close()
    assert "missed heartbeats" not in b.log_text()
    assert "Traceback" not in b.log_text()
