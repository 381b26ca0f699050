"""Regressions found by the live fuzzer (tests/broker/fuzz_live.py), each as the
smallest client-observable case: the broker answers (never 541) and keeps serving."""

from __future__ import annotations

import asyncio
import decimal
import struct

import pytest
from pamqp import commands as C
from warren.protocol.table import typed

from tests.broker.fuzz_live import _handshake, _read_frame, content_header, method, raw_frame

CLOSE = b"\x00\x0a\x00\x32"


async def _session(port: int):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    assert await _handshake(reader, writer)
    writer.write(method(C.Channel.Open, 1))
    await _read_frame(reader, 10)
    return reader, writer


async def _expect(reader, prefix: bytes) -> bytes:
    while True:
        t, _c, p = await _read_frame(reader, 10)
        if t == 1:
            assert p[:4] != CLOSE, f"connection closed: {p!r}"
            if p.startswith(prefix):
                return p


async def test_binding_argument_of_type_byte_array(broker):
    """A binding argument of field type 'x' (byte array) was unhashable: 541."""
    reader, writer = await _session(broker.port)
    try:
        writer.write(method(C.Queue.Declare, 1, queue="", exclusive=True))
        p = await _expect(reader, b"\x00\x32\x00\x0b")
        q = p[5 : 5 + p[4]].decode()
        args = {"x-match": "all", "b": bytearray(b"\x00\xff")}
        for _ in range(2):  # the second bind is a duplicate of the first
            writer.write(method(C.Queue.Bind, 1, queue=q, exchange="amq.headers", routing_key="", arguments=args))
            await _expect(reader, b"\x00\x32\x00\x15")  # Bind-Ok
        writer.write(method(C.Queue.Unbind, 1, queue=q, exchange="amq.headers", routing_key="", arguments=args))
        await _expect(reader, b"\x00\x32\x00\x33")  # Unbind-Ok
    finally:
        writer.close()
    assert "Traceback" not in broker.log_text()


async def _close_of(reader) -> tuple[int, str]:
    """The next Channel.Close or Connection.Close: (reply code, reply text)."""
    while True:
        t, _c, p = await _read_frame(reader, 10)
        if t == 1 and p[:4] in (CLOSE, b"\x00\x14\x00\x28"):
            code = int.from_bytes(p[4:6], "big")
            return code, p[7 : 7 + p[6]].decode()


@pytest.mark.parametrize(
    "expiration, text",
    [
        # RabbitMQ 3.10's answers (the largest TTL is ten years in ms)
        ("315360000001", "PRECONDITION_FAILED - invalid expiration '315360000001': {value_too_large,315360000001}"),
        (
            "99999999999999999999",
            "PRECONDITION_FAILED - invalid expiration '99999999999999999999': {value_too_large,\n"
            + " " * 44
            + "99999999999999999999}",
        ),
        ("5_0", "PRECONDITION_FAILED - invalid expiration '5_0': {leftover_string,\"_0\"}"),
        (" 5", "PRECONDITION_FAILED - invalid expiration ' 5': no_integer"),
    ],
)
async def test_expiration_out_of_range(broker, expiration, text):
    """An expiration beyond what the store can encode was a 541 (struct.error)."""
    reader, writer = await _session(broker.port)
    try:
        writer.write(method(C.Queue.Declare, 1, queue="durable-q", durable=True))
        await _expect(reader, b"\x00\x32\x00\x0b")
        writer.write(method(C.Basic.Publish, 1, exchange="", routing_key="durable-q"))
        writer.write(content_header(1, 1, {"expiration": expiration, "delivery_mode": 2}))
        writer.write(raw_frame(3, 1, b"x"))
        assert await _close_of(reader) == (406, text)
    finally:
        writer.close()
    assert "Traceback" not in broker.log_text()


async def test_largest_expiration_is_accepted(broker):
    reader, writer = await _session(broker.port)
    try:
        writer.write(method(C.Queue.Declare, 1, queue="durable-q", durable=True))
        await _expect(reader, b"\x00\x32\x00\x0b")
        writer.write(method(C.Basic.Publish, 1, exchange="", routing_key="durable-q"))
        writer.write(content_header(1, 1, {"expiration": "315360000000", "delivery_mode": 2}))
        writer.write(raw_frame(3, 1, b"x"))
        writer.write(method(C.Queue.Declare, 1, queue="durable-q", passive=True))
        p = await _expect(reader, b"\x00\x32\x00\x0b")
        assert int.from_bytes(p[5 + p[4] : 9 + p[4]], "big") == 1
    finally:
        writer.close()


async def test_durable_queue_with_byte_array_argument_is_saved(broker):
    """A durable queue whose arguments hold a byte array made every definitions save
    raise (a traceback per save); it is saved and comes back after a restart."""
    reader, writer = await _session(broker.port)
    try:
        args = {"x-custom": bytearray(b"\x01\x02"), "x-dec": decimal.Decimal("1.5")}
        writer.write(method(C.Queue.Declare, 1, queue="dq-bytes", durable=True, arguments=args))
        await _expect(reader, b"\x00\x32\x00\x0b")
    finally:
        writer.close()
    broker.restart()
    reader, writer = await _session(broker.port)
    try:
        writer.write(method(C.Queue.Declare, 1, queue="dq-bytes", passive=True))
        await _expect(reader, b"\x00\x32\x00\x0b")
    finally:
        writer.close()
    assert "Traceback" not in broker.log_text()


async def test_malformed_headers_table_is_a_syntax_error(broker):
    """A headers table whose lengths scan but whose contents do not decode was a 541."""
    reader, writer = await _session(broker.port)
    try:
        writer.write(method(C.Basic.Publish, 1, exchange="", routing_key="nowhere"))
        table = b"\x01aZ"  # unknown field type 'Z'
        payload = struct.pack(">HHQH", 60, 0, 1, 0x2000) + struct.pack(">I", len(table)) + table
        writer.write(raw_frame(2, 1, payload))
        writer.write(raw_frame(3, 1, b"x"))
        code, text = await _close_of(reader)
        assert code == 502 and text.startswith("SYNTAX_ERROR - malformed content header")
    finally:
        writer.close()
    assert "Traceback" not in broker.log_text()


async def test_queue_argument_not_utf8(broker):
    """x-queue-type as a longstr that is not UTF-8 was a 541 (UnicodeDecodeError)."""
    reader, writer = await _session(broker.port)
    try:
        args = {"x-queue-type": typed(b"\x80\x81", "S")}
        writer.write(method(C.Queue.Declare, 1, queue="q-bad-type", arguments=args))
        code, text = await _close_of(reader)
        assert code == 406 and "x-queue-type" in text
    finally:
        writer.close()
    assert "Traceback" not in broker.log_text()


async def test_truncated_app_id_to_a_quorum_queue(broker):
    """A content header whose app-id runs past its end passed the publish-time scan and
    failed when a quorum queue added x-delivery-count: 541. Now refused at publish."""
    reader, writer = await _session(broker.port)
    try:
        args = {"x-queue-type": "quorum"}
        writer.write(method(C.Queue.Declare, 1, queue="qq-trunc", durable=True, arguments=args))
        await _expect(reader, b"\x00\x32\x00\x0b")
        writer.write(method(C.Basic.Publish, 1, exchange="", routing_key="qq-trunc"))
        payload = struct.pack(">HHQH", 60, 0, 1, 0x0008) + b"\x09app"  # app-id claims 9 bytes, has 3
        writer.write(raw_frame(2, 1, payload))
        writer.write(raw_frame(3, 1, b"x"))
        code, text = await _close_of(reader)
        assert code == 502 and text.startswith("SYNTAX_ERROR - malformed content header")
    finally:
        writer.close()
    assert "Traceback" not in broker.log_text()


async def test_cc_header_not_utf8(broker):
    """A CC header holding a longstr that is not UTF-8 was a 541 (UnicodeDecodeError)."""
    reader, writer = await _session(broker.port)
    try:
        writer.write(method(C.Queue.Declare, 1, queue="", exclusive=True))
        p = await _expect(reader, b"\x00\x32\x00\x0b")
        q = p[5 : 5 + p[4]].decode()
        writer.write(method(C.Basic.Publish, 1, exchange="", routing_key=q))
        writer.write(content_header(1, 1, {"headers": {"CC": [typed(b"\x80\xff", "S")]}}))
        writer.write(raw_frame(3, 1, b"x"))
        writer.write(method(C.Basic.Get, 1, queue=q, no_ack=True))
        await _expect(reader, b"\x00\x3c\x00\x47")  # Get-Ok: delivered to its own queue
    finally:
        writer.close()
    assert "Traceback" not in broker.log_text()


async def test_names_pamqp_would_refuse(broker):
    """Queue.Declare-Ok for a queue named 'a b' and Basic.Return from an exchange with
    a 200-byte name raised in pamqp's validation (541); RabbitMQ allows both names."""
    reader, writer = await _session(broker.port)
    try:
        writer.write(method(C.Queue.Declare, 1, queue="a b", exclusive=True))
        p = await _expect(reader, b"\x00\x32\x00\x0b")
        assert p[5 : 5 + p[4]] == b"a b"
        writer.write(method(C.Basic.Consume, 1, queue="a b", consumer_tag="tag with spaces"))
        p = await _expect(reader, b"\x00\x3c\x00\x15")  # Consume-Ok
        assert p[5 : 5 + p[4]] == b"tag with spaces"
        ex = "x" * 200
        writer.write(method(C.Exchange.Declare, 1, exchange=ex, exchange_type="direct"))
        await _expect(reader, b"\x00\x28\x00\x0b")
        writer.write(method(C.Basic.Publish, 1, exchange=ex, routing_key="nowhere", mandatory=True))
        writer.write(content_header(1, 1, {}))
        writer.write(raw_frame(3, 1, b"x"))
        p = await _expect(reader, b"\x00\x3c\x00\x32")  # Basic.Return
        assert ex.encode() in p
    finally:
        writer.close()
    assert "Traceback" not in broker.log_text()


async def test_alternate_exchange_argument_of_another_type(broker):
    """alternate-exchange given as an array made every publish to the exchange a 541."""
    reader, writer = await _session(broker.port)
    try:
        writer.write(method(C.Exchange.Declare, 1, exchange="ae-typed", exchange_type="direct",
                            arguments={"alternate-exchange": ["x"]}))
        await _expect(reader, b"\x00\x28\x00\x0b")
        writer.write(method(C.Basic.Publish, 1, exchange="ae-typed", routing_key="nowhere", mandatory=True))
        writer.write(content_header(1, 1, {}))
        writer.write(raw_frame(3, 1, b"x"))
        await _expect(reader, b"\x00\x3c\x00\x32")  # returned: no alternate exchange to try
    finally:
        writer.close()
    assert "Traceback" not in broker.log_text()
