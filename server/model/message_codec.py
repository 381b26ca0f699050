"""A message's stored form: what queue stores and the delayed exchange write to disk."""

from __future__ import annotations

import asyncio
import struct
import time

from warren.protocol.properties import scan
from warren.server.model.message import Message

_META = struct.Struct(">BHQHI")  # version, delivery_count, expires (wall ms), exrk len, header len
_VERSION = 1


def encode_message(msg: Message) -> bytes:
    """Stored form: meta + exchange/routing key (as on the wire) + raw header + raw body."""
    exp = msg.expires_at
    wall = int((exp - _loop_time() + time.time()) * 1000) if exp else 0
    exrk = msg.exrk
    header = msg.header
    return b"".join((_META.pack(_VERSION, msg.delivery_count, wall, len(exrk), len(header)), exrk, header, msg.body))


def decode_message(data: bytes | memoryview) -> Message:
    data = bytes(data)
    _v, count, wall, exrk_len, header_len = _META.unpack_from(data, 0)
    p = _META.size
    exrk = data[p : p + exrk_len]
    p += exrk_len
    header = data[p : p + header_len]
    body = data[p + header_len :]
    exl = exrk[0]
    exchange = exrk[1 : 1 + exl].decode()
    routing_key = exrk[2 + exl :].decode()
    m = Message(exchange, routing_key, exrk, header, body, scan(header))
    m.delivery_count = count
    if wall:
        m.expires_at = _loop_time() + (wall / 1000.0 - time.time())
    return m


def decode_requeued(data: bytes | memoryview) -> Message:
    """A requeued message read back from its store: it was delivered before."""
    m = decode_message(data)
    m.redelivered = True
    return m


def _loop_time() -> float:
    try:
        return asyncio.get_running_loop().time()
    except RuntimeError:
        return time.monotonic()


