"""Regressions found by the live fuzzer (tests/broker/fuzz_live.py), each as the
smallest client-observable case: the broker answers (never 541) and keeps serving."""

from __future__ import annotations

import asyncio

from pamqp import commands as C

from tests.broker.fuzz_live import _handshake, _read_frame, method

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
