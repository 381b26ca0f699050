"""One log line per bad input, never a traceback for a client's mistake (issue 12, item 8).

A 14 KB header table nested 2,000 deep used to log a ~3,000-line RecursionError
traceback (212 KB) and close the connection with 541 INTERNAL_ERROR. Now tables are
checked where they arrive (protocol/table.py decodes them depth-bounded): malformed or nested deeper than
64 levels is the client's error, answered with one Connection.Close and one log line.

RabbitMQ 3.10, checked with the same bytes: accepts any nesting; answers a malformed
headers table with 541 INTERNAL_ERROR (its channel crashes). warren refuses both with
502 SYNTAX_ERROR "malformed content header: ...", as it does truncated properties.
"""

from __future__ import annotations

import socket
import struct
import time

import aio_pika
import pytest
from pamqp import commands as C

from tests.broker.test_bad_input import Raw, roundtrip

#: log bytes one bad input may add (a few lines: the error, the connection closing)
PER_INPUT = 1500


def nested_table(depth: int) -> bytes:
    t = struct.pack(">I", 0)
    for _ in range(depth):
        inner = b"\x01k" + b"F" + t
        t = struct.pack(">I", len(inner)) + inner
    return t


def table(body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + body


def publish_with_headers(r: Raw, headers_table: bytes) -> None:
    r.open_channel()
    r.send_frame(C.Basic.Publish(exchange="", routing_key="nowhere"), 1)
    r.send_raw_frame(2, 1, struct.pack(">HHQH", 60, 0, 3, 0x2000) + headers_table)
    r.send_raw_frame(3, 1, b"abc")


def declare_with_arguments(r: Raw, args_table: bytes) -> None:
    r.open_channel()
    r.send_raw_frame(1, 1, struct.pack(">HHH", 50, 10, 0) + b"\x01x" + b"\x00" + args_table)


def consume_with_arguments(r: Raw, args_table: bytes) -> None:
    r.open_channel()
    r.send_raw_frame(1, 1, struct.pack(">HHH", 60, 20, 0) + b"\x01x" + b"\x00" + b"\x00" + args_table)


SYNTAX = (502, "SYNTAX_ERROR - malformed content header: ")
FRAME = (501, "FRAME_ERROR - cannot decode ")
CASES = {
    "headers-nested-2000": (lambda r: publish_with_headers(r, nested_table(2000)), SYNTAX, (60, 40)),
    "headers-nested-100": (lambda r: publish_with_headers(r, nested_table(100)), SYNTAX, (60, 40)),
    "headers-unknown-type": (lambda r: publish_with_headers(r, table(b"\x01kZ\x00")), SYNTAX, (60, 40)),
    "headers-truncated-value": (lambda r: publish_with_headers(r, table(b"\x01kS\x00\x00\x00\xff")), SYNTAX, (60, 40)),
    "declare-args-nested-2000": (lambda r: declare_with_arguments(r, nested_table(2000)), FRAME, (50, 10)),
    "declare-args-nested-100": (lambda r: declare_with_arguments(r, nested_table(100)), FRAME, (50, 10)),
    "declare-args-unknown-type": (lambda r: declare_with_arguments(r, table(b"\x01kZ\x00")), FRAME, (50, 10)),
    "consume-args-nested-100": (lambda r: consume_with_arguments(r, nested_table(100)), FRAME, (60, 20)),
    "garbage-frame": (lambda r: r.send(b"\x09" + b"\xff" * 64), (501, "FRAME_ERROR - "), None),
}


@pytest.mark.parametrize("name", list(CASES))
async def test_bad_input_one_log_line(broker, name):
    send, (code, text), ids = CASES[name]
    good = await aio_pika.connect(broker.url)
    async with good:
        await roundtrip(good, "before")
        before = broker.log_path.stat().st_size
        r = Raw(broker.port)
        try:
            r.handshake()
            send(r)
            _, close = r.read_method()
        finally:
            r.close()
        assert isinstance(close, C.Connection.Close), close
        assert close.reply_code == code and close.reply_text.startswith(text), (close.reply_code, close.reply_text)
        if ids is not None:
            assert (close.class_id, close.method_id) == ids
        await roundtrip(good, "after")  # everyone else is still served
    log = broker.log_text().encode()[before:].decode(errors="replace")
    assert "Traceback" not in log, log[:3000]
    assert len(log) < PER_INPUT, log[:3000]
    assert "internal error" not in log


async def test_moderately_nested_headers_still_delivered(broker):
    """Nesting within the limit (and RabbitMQ's x-death style tables) is delivered as sent."""
    deep: object = "leaf"
    for _ in range(40):
        deep = {"k": deep}
    conn = await aio_pika.connect(broker.url)
    async with conn:
        ch = await conn.channel()
        q = await ch.declare_queue("", exclusive=True)
        await ch.default_exchange.publish(aio_pika.Message(b"x", headers={"deep": deep}), routing_key=q.name)
        m = await q.get(timeout=5)
        got = m.headers["deep"]
        for _ in range(40):
            got = got["k"]
        assert got in ("leaf", b"leaf")


async def test_non_utf8_header_key_is_carried_not_logged(broker):
    """A header key that is not UTF-8 is accepted as RabbitMQ accepts it (short strings
    are bytes there): the publish goes through, nothing is logged, others are served."""
    good = await aio_pika.connect(broker.url)
    async with good:
        before = broker.log_path.stat().st_size
        r = Raw(broker.port)
        try:
            r.handshake()
            publish_with_headers(r, table(b"\x02\xff\xfeS\x00\x00\x00\x00"))
            r.send_frame(C.Channel.Close(reply_code=200, reply_text="bye", class_id=0, method_id=0), 1)
            _, ok = r.read_method()
        finally:
            r.close()
        assert isinstance(ok, C.Channel.CloseOk), ok
        await roundtrip(good, "after")
    log = broker.log_text().encode()[before:].decode(errors="replace")
    assert "Traceback" not in log and "internal error" not in log, log[:3000]


async def test_nested_amqplain_response_is_a_refused_login(broker):
    """Before login: an AMQPLAIN response nested 100 deep (over the 64-level bound, under
    the 4,096-byte pre-login frame limit) is a failed login (403), not an internal error
    (541) with a RecursionError traceback."""
    before = broker.log_path.stat().st_size
    r = Raw(broker.port)
    try:
        r.send(b"AMQP\x00\x00\x09\x01")
        r.expect(C.Connection.Start, 0)
        response = nested_table(100)[4:].decode("latin-1")
        r.send_frame(C.Connection.StartOk(client_properties={}, mechanism="AMQPLAIN", response=response, locale="en_US"))
        _, close = r.read_method()
    finally:
        r.close()
    assert isinstance(close, C.Connection.Close), close
    assert close.reply_code == 403, close.reply_text
    log = broker.log_text().encode()[before:].decode(errors="replace")
    assert "Traceback" not in log and "internal error" not in log, log[:3000]
    assert len(log) < PER_INPUT


@pytest.mark.parametrize("request_bytes", [
    b"GARBAGE\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
    b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\n\r\n",
    b"GET /api/overview HTTP/1.1\r\nHost: x\r\nAuthorization: Basic " + b"A" * 10000 + b"\r\n\r\n",
], ids=["garbage", "bad-content-length", "long-path", "long-header"])
def test_malformed_http_one_log_line(broker, request_bytes):
    """aiohttp logs a traceback at ERROR for every request it cannot parse; the broker
    turns that into one INFO line (management and Prometheus listeners alike)."""
    from tests.brokerproc import wait_port

    wait_port(broker.mgmt_port)
    wait_port(broker.prom_port)
    before = broker.log_path.stat().st_size
    for port in (broker.mgmt_port, broker.prom_port):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(request_bytes)
            assert s.recv(64).startswith(b"HTTP/1.0 400 Bad Request")

    def new_log() -> str:
        return broker.log_text().encode()[before:].decode(errors="replace")

    deadline = time.monotonic() + 5  # aiohttp logs each after answering: wait for both lines
    while new_log().count("Error handling request") < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    log = new_log()
    assert "Traceback" not in log, log[:3000]
    assert len(log) < 2 * PER_INPUT, log[:3000]
    assert " ERROR " not in log, log
