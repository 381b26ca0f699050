"""Before login a client gets no more than O(frame size) work out of the broker.

As RabbitMQ 3.10 (checked with the same raw socket against a private node):
frames are limited to 4096 payload bytes until Tune-Ok (its initial frame_max,
?FRAME_MIN_SIZE); a larger frame, a malformed one or an unexpected method before
tuning is not answered: RabbitMQ waits 3 s and resets the socket.
"""

from __future__ import annotations

import socket
import struct
import time

from pamqp import commands as C
from pamqp import frame as pframe

AMQP_091 = b"AMQP\x00\x00\x09\x01"


def _start_ok(size: int, mechanism: str = "PLAIN", response: str = "\0guest\0guest") -> bytes:
    """A Connection.Start-Ok frame exactly ``size`` bytes long (padding in client_properties)."""

    def build(pad: int) -> bytes:
        props = {"product": "prelogin-test", "pad": "x" * pad, "capabilities": {"authentication_failure_close": True}}
        return pframe.marshal(
            C.Connection.StartOk(client_properties=props, mechanism=mechanism, response=response, locale="en_US"), 0
        )

    f = build(size - len(build(0)))
    assert len(f) == size
    return f


def _connect(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(AMQP_091)
    buf = b""
    while len(buf) < 7 or len(buf) < 8 + struct.unpack(">I", buf[3:7])[0]:
        data = s.recv(65536)
        assert data, "closed before Connection.Start"
        buf += data
    return s


def _answer(s: socket.socket) -> tuple[bytes, bool, float]:
    """(bytes received, closed by the broker, seconds until closed or timeout)."""
    t0 = time.monotonic()
    got = b""
    try:
        while True:
            data = s.recv(65536)
            if not data:
                return got, True, time.monotonic() - t0
            got += data
            if len(got) >= 7 and len(got) >= 8 + struct.unpack(">I", got[3:7])[0]:
                return got, False, time.monotonic() - t0
    except ConnectionResetError:
        return got, True, time.monotonic() - t0
    except TimeoutError:
        return got, False, time.monotonic() - t0


def test_start_ok_up_to_4096_payload_bytes_is_accepted(broker):
    s = _connect(broker.port)
    try:
        s.sendall(_start_ok(4096 + 8))  # payload 4096: RabbitMQ answers with Tune
        got, closed, _ = _answer(s)
        assert not closed
        ch, method = pframe.unmarshal(got)[1:]
        assert isinstance(method, C.Connection.Tune)
    finally:
        s.close()


def test_start_ok_over_4096_payload_bytes_is_refused_silently(broker):
    s = _connect(broker.port)
    try:
        # 130 KB of client properties: refused from the frame header, never decoded
        s.sendall(_start_ok(130_000))
        got, closed, after = _answer(s)
        assert got == b""  # RabbitMQ sends nothing ...
        assert closed  # ... and resets the socket after its 3 s silent-close delay
        assert 2.0 < after < 8.0
    finally:
        s.close()
    assert "frame_too_large" in broker.log_text()


def test_start_ok_one_byte_over_is_refused(broker):
    s = _connect(broker.port)
    try:
        s.sendall(_start_ok(4097 + 8))
        got, closed, _ = _answer(s)
        assert got == b"" and closed
    finally:
        s.close()


def test_unexpected_method_before_login_is_not_answered(broker):
    s = _connect(broker.port)
    try:
        s.sendall(pframe.marshal(C.Connection.Open(virtual_host="/"), 0))
        got, closed, _ = _answer(s)
        assert got == b"" and closed
    finally:
        s.close()


def test_deeply_nested_client_properties_are_refused_without_a_traceback(broker):
    nested = b""
    for _ in range(700):  # within 4 KB; deeper than protocol.table.MAX_DEPTH
        nested = b"A" + struct.pack(">I", len(nested)) + nested
    table = b"\x01a" + nested
    payload = (
        struct.pack(">HH", 10, 11)
        + struct.pack(">I", len(table))
        + table
        + b"\x05PLAIN"
        + struct.pack(">I", 12)
        + b"\0guest\0guest"
        + b"\x05en_US"
    )
    s = _connect(broker.port)
    try:
        s.sendall(struct.pack(">BHI", 1, 0, len(payload)) + payload + b"\xce")
        got, closed, _ = _answer(s)
        assert got == b"" and closed
    finally:
        s.close()
    log = broker.log_text()
    assert "nested deeper" in log
    assert "Traceback" not in log


def test_frame_max_applies_after_tune_ok(broker):
    """After Tune-Ok the negotiated frame_max applies (here 131072): a 100 KB
    Queue.Declare arguments table is decoded."""
    s = _connect(broker.port)
    try:
        s.sendall(_start_ok(300))
        got, closed, _ = _answer(s)
        tune = pframe.unmarshal(got)[2]
        s.sendall(pframe.marshal(C.Connection.TuneOk(channel_max=10, frame_max=tune.frame_max, heartbeat=0), 0))
        s.sendall(pframe.marshal(C.Connection.Open(virtual_host="/"), 0))
        got, closed, _ = _answer(s)
        assert isinstance(pframe.unmarshal(got)[2], C.Connection.OpenOk)
        s.sendall(pframe.marshal(C.Channel.Open(), 1))
        got, closed, _ = _answer(s)
        assert isinstance(pframe.unmarshal(got)[2], C.Channel.OpenOk)
        args = {"x-big": list(range(20000))}
        s.sendall(pframe.marshal(C.Queue.Declare(queue="", exclusive=True, arguments=args), 1))
        got, closed, _ = _answer(s)
        assert isinstance(pframe.unmarshal(got)[2], C.Queue.DeclareOk)
    finally:
        s.close()
