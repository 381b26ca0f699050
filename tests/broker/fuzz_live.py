"""Live fuzzing: mutated AMQP 0-9-1 frame streams against a running warren.

Each connection runs a random but plausible script (handshake, channels, exchanges,
queues with odd arguments, bindings, publishes with random properties and header
tables, consumers, gets, acks, qos, confirms, transactions, ...) in which every
frame is mutated with some probability (bytes flipped, fields cut or lengthened,
sizes, types, channels, method ids and table type letters changed, frames dropped,
duplicated or swapped). About one connection in five fuzzes the handshake itself
(pre-login); the others log in cleanly and fuzz the session (post-login).

The broker must survive everything: no crash, no 541 INTERNAL_ERROR on the wire,
no traceback and no "internal error" line in its log, and a clean client must still
get a round trip through it at the end.

    python -m tests.broker.fuzz_live --frames 1000000          # starts its own broker
    python -m tests.broker.fuzz_live --port 5672 --frames 50000  # against a running one

Prints one JSON line of figures; exits non-zero when the broker misbehaved.
``run`` is the same run for tests (tests/broker/test_fuzz_live.py).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import logging
import random
import struct
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pamqp import commands as C
from warren.protocol.reader import _FIELDS
from warren.protocol.table import encode_table, typed

log = logging.getLogger("fuzz_live")

AMQP_091 = b"AMQP\x00\x00\x09\x01"
_FRAME = struct.Struct(">BHI")
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")

QUEUES = ["fq0", "fq1", "fq2", "fq3", "", "amq.rabbitmq.reply-to"]
EXCHANGES = ["fx0", "fx1", "fx2", "", "amq.direct", "amq.topic", "amq.fanout", "amq.headers", "amq.match"]
EXCHANGE_TYPES = ["direct", "fanout", "topic", "headers", "x-delayed-message", "x-nope"]
ROUTING_KEYS = ["", "a", "a.b", "a.b.c", "#", "*", "*.b.#", "#.#.c", "fq0", "fq1", "a." * 60, "x" * 255]


# ----------------------------------------------------------------------------- encoding
def method(cls: type, channel: int = 0, **values: Any) -> bytes:
    """A method frame with ``values`` for the named fields (defaults: 0, '', {}, False)."""
    out = [_U32.pack(cls.index)]
    bits: list[bool] = []

    def flush_bits() -> None:
        if bits:
            octet = 0
            for i, b in enumerate(bits):
                octet |= int(bool(b)) << i
            out.append(bytes([octet]))
            bits.clear()

    for name, kind in _FIELDS[cls.index]:
        v = values.get(name)
        if kind == "bit":
            bits.append(bool(v))
            if len(bits) == 8:
                flush_bits()
            continue
        flush_bits()
        if kind == "shortstr":
            data = (v or "").encode() if isinstance(v or "", str) else v
            data = data[:255]
            out.append(bytes([len(data)]) + data)
        elif kind == "longstr":
            data = (v or "").encode("latin-1") if isinstance(v or "", str) else v
            out.append(_U32.pack(len(data)) + data)
        elif kind == "table":
            out.append(encode_table(v or {}))
        elif kind == "octet":
            out.append(bytes([(v or 0) & 0xFF]))
        elif kind == "short":
            out.append(_U16.pack((v or 0) & 0xFFFF))
        elif kind == "long":
            out.append(_U32.pack((v or 0) & 0xFFFFFFFF))
        elif kind == "longlong":
            out.append(_U64.pack((v or 0) & 0xFFFFFFFFFFFFFFFF))
    flush_bits()
    return raw_frame(1, channel, b"".join(out))


def raw_frame(ftype: int, channel: int, payload: bytes) -> bytes:
    return _FRAME.pack(ftype, channel, len(payload)) + payload + b"\xce"


def content_header(channel: int, body_size: int, props: dict[str, Any]) -> bytes:
    flags = 0
    parts = []
    for name, bit, kind in _PROPS:
        if name not in props:
            continue
        v = props[name]
        flags |= bit
        if kind == "shortstr":
            data = v.encode()[:255] if isinstance(v, str) else v[:255]
            parts.append(bytes([len(data)]) + data)
        elif kind == "octet":
            parts.append(bytes([v & 0xFF]))
        elif kind == "timestamp":
            parts.append(_U64.pack(v))
        else:
            parts.append(encode_table(v))
    payload = struct.pack(">HHQH", 60, 0, body_size, flags) + b"".join(parts)
    return raw_frame(2, channel, payload)


_PROPS = (
    ("content_type", 0x8000, "shortstr"),
    ("content_encoding", 0x4000, "shortstr"),
    ("headers", 0x2000, "table"),
    ("delivery_mode", 0x1000, "octet"),
    ("priority", 0x0800, "octet"),
    ("correlation_id", 0x0400, "shortstr"),
    ("reply_to", 0x0200, "shortstr"),
    ("expiration", 0x0100, "shortstr"),
    ("message_id", 0x0080, "shortstr"),
    ("timestamp", 0x0040, "timestamp"),
    ("type", 0x0020, "shortstr"),
    ("user_id", 0x0010, "shortstr"),
    ("app_id", 0x0008, "shortstr"),
)


# ----------------------------------------------------------------------------- random values
class Gen:
    """Random plausible values and frames."""

    def __init__(self, rng: random.Random) -> None:
        self.r = rng

    def scalar(self) -> Any:
        r = self.r
        k = r.randrange(14)
        if k == 0:
            return None
        if k == 1:
            return r.random() < 0.5
        if k == 2:
            return r.randrange(-(2**31), 2**31)
        if k == 3:
            return typed(r.randrange(-128, 128), r.choice("bs"))
        if k == 4:
            return typed(r.randrange(0, 2**63), "l")
        if k == 5:
            return r.random() * 1e6
        if k == 6:
            return bytearray(r.randbytes(r.randrange(8)))
        if k == 7:
            return r.choice(["", "x", "all", "any", "all-with-x", "drop-head", "reject-publish", "fq0", "fx0", "-1", "1000"])
        if k == 8:
            return r.randbytes(r.randrange(6))  # a longstr that may not be UTF-8
        if k == 9:
            return typed(r.randrange(0, 2**32), "i")
        if k == 10:
            return typed(r.randrange(0, 2**16), "u")
        if k == 11:
            return r.randrange(0, 10)
        if k == 12:
            return typed(r.random(), "f")
        return "".join(r.choice("ab.#*") for _ in range(r.randrange(6)))

    def value(self, depth: int = 0) -> Any:
        r = self.r
        if depth < 3 and r.random() < 0.15:
            return [self.value(depth + 1) for _ in range(r.randrange(4))]
        if depth < 3 and r.random() < 0.1:
            return self.table(depth + 1)
        return self.scalar()

    def table(self, depth: int = 0) -> dict[str, Any]:
        r = self.r
        keys = [
            "x-match", "x-max-length", "x-max-length-bytes", "x-message-ttl", "x-expires", "x-dead-letter-exchange",
            "x-dead-letter-routing-key", "x-max-priority", "x-queue-type", "x-overflow", "x-single-active-consumer",
            "x-delivery-limit", "x-priority", "x-delay", "x-delayed-type", "alternate-exchange", "CC", "BCC",
            "x-death", "x-first-death-reason", "a", "b", "", "x-queue-mode", "x-cancel-on-ha-failover",
        ]
        return {r.choice(keys): self.value(depth) for _ in range(r.randrange(4))}

    def args(self) -> dict[str, Any]:
        r = self.r
        a: dict[str, Any] = {}
        for k, choices in (
            ("x-max-length", [0, 1, 5, -1, "5"]),
            ("x-message-ttl", [0, 10, 1000, -5]),
            ("x-dead-letter-exchange", ["", "fx0", "fx1", "nope"]),
            ("x-dead-letter-routing-key", ["fq1", "fq2", "a.b"]),
            ("x-max-priority", [1, 10, 255, 256, -1]),
            ("x-overflow", ["drop-head", "reject-publish", "reject-publish-dlx", "bad"]),
            ("x-queue-type", ["classic", "quorum", "stream", "bad"]),
            ("x-expires", [1, 100, 0]),
            ("x-single-active-consumer", [True, False, 1]),
            ("x-delivery-limit", [0, 1, 3]),
            ("x-max-length-bytes", [0, 10, 1000]),
        ):
            if r.random() < 0.12:
                a[k] = r.choice(choices)
        if r.random() < 0.1:
            a.update(self.table())
        return a

    def props(self) -> dict[str, Any]:
        r = self.r
        p: dict[str, Any] = {}
        if r.random() < 0.4:
            p["delivery_mode"] = r.choice([1, 2, 2, 0, 7])
        if r.random() < 0.2:
            p["priority"] = r.choice([0, 1, 5, 9, 200])
        if r.random() < 0.15:
            p["expiration"] = r.choice(["0", "1", "100", "-1", "abc", "", "99999999999999999999"])
        if r.random() < 0.3:
            h = self.table()
            if r.random() < 0.2:
                h["CC"] = [r.choice(ROUTING_KEYS) for _ in range(r.randrange(3))]
            if r.random() < 0.1:
                h["BCC"] = r.choice([["fq1"], "fq1", [1, None]])
            if r.random() < 0.1:
                h["x-delay"] = r.choice([-1, 0, 10, 100, "10"])
            p["headers"] = h
        if r.random() < 0.1:
            p["reply_to"] = r.choice(["amq.rabbitmq.reply-to", "fq0", "amq.rabbitmq.reply-to.xyz"])
        if r.random() < 0.1:
            p["user_id"] = r.choice(["guest", "other"])
        if r.random() < 0.1:
            p["timestamp"] = r.choice([0, 1_600_000_000, 2**40, 2**64 - 1])
        for name in ("content_type", "message_id", "correlation_id", "app_id", "type", "content_encoding"):
            if r.random() < 0.05:
                p[name] = r.choice(["text/plain", "", "x" * 255, "é"])
        return p

    # -- frames --------------------------------------------------------------
    def start_ok(self) -> bytes:
        r = self.r
        mech = r.choice(["PLAIN", "PLAIN", "AMQPLAIN", "EXTERNAL", "NOPE"])
        if mech == "AMQPLAIN":
            response = encode_table({"LOGIN": "guest", "PASSWORD": r.choice(["guest", "bad"])})[4:]
        else:
            response = r.choice([b"\0guest\0guest", b"\0guest\0bad", b"guest", b"", b"\0\0"])
        props = {"product": "fuzz", "capabilities": {"connection.blocked": True, "authentication_failure_close": r.random() < 0.5}}
        if r.random() < 0.3:
            props.update(self.table())
        return method(C.Connection.StartOk, 0, client_properties=props, mechanism=mech, response=response, locale="en_US")

    def tune_ok(self) -> bytes:
        r = self.r
        return method(
            C.Connection.TuneOk, 0,
            channel_max=r.choice([0, 1, 10, 2047, 65535]),
            frame_max=r.choice([0, 4095, 4096, 8192, 131072, 131073]),
            heartbeat=r.choice([0, 0, 1, 60]),
        )

    def session(self, n: int) -> list[bytes]:
        """About ``n`` frames of a post-login session on channels 1..3."""
        r = self.r
        out: list[bytes] = [method(C.Channel.Open, 1)]
        opened = {1}
        while len(out) < n:
            ch = r.choice([1, 1, 1, 2, 3])
            if ch not in opened:
                out.append(method(C.Channel.Open, ch))
                opened.add(ch)
            k = r.randrange(100)
            q = r.choice(QUEUES)
            x = r.choice(EXCHANGES)
            if k < 30:
                body = r.randbytes(r.choice([0, 1, 10, 100, 300]))
                out.append(method(C.Basic.Publish, ch, exchange=x, routing_key=r.choice(ROUTING_KEYS + QUEUES),
                                  mandatory=r.random() < 0.3, immediate=r.random() < 0.02))
                out.append(content_header(ch, len(body), self.props()))
                if body:
                    cut = r.randrange(len(body) + 1) if r.random() < 0.3 else len(body)
                    out.append(raw_frame(3, ch, body[:cut]))
                    if cut < len(body):
                        out.append(raw_frame(3, ch, body[cut:]))
            elif k < 38:
                out.append(method(C.Queue.Declare, ch, queue=q, durable=r.random() < 0.3, exclusive=r.random() < 0.2,
                                  auto_delete=r.random() < 0.2, passive=r.random() < 0.1, nowait=r.random() < 0.1,
                                  arguments=self.args()))
            elif k < 44:
                out.append(method(C.Exchange.Declare, ch, exchange=x, exchange_type=r.choice(EXCHANGE_TYPES),
                                  durable=r.random() < 0.3, auto_delete=r.random() < 0.1, internal=r.random() < 0.05,
                                  passive=r.random() < 0.1, arguments=self.args()))
            elif k < 52:
                out.append(method(C.Queue.Bind, ch, queue=q, exchange=x, routing_key=r.choice(ROUTING_KEYS),
                                  arguments=self.table() if r.random() < 0.4 else {}))
            elif k < 58:
                out.append(method(C.Basic.Consume, ch, queue=q, consumer_tag=r.choice(["", "c1", "c2"]),
                                  no_ack=r.random() < 0.5, exclusive=r.random() < 0.1,
                                  arguments={"x-priority": r.randrange(-5, 5)} if r.random() < 0.2 else {}))
            elif k < 62:
                out.append(method(C.Basic.Get, ch, queue=q, no_ack=r.random() < 0.5))
            elif k < 72:
                cls = r.choice([C.Basic.Ack, C.Basic.Nack, C.Basic.Reject])
                tag = r.choice([0, 1, 2, 3, 5, 10, 2**64 - 1])
                if cls is C.Basic.Reject:
                    out.append(method(cls, ch, delivery_tag=tag, requeue=r.random() < 0.5))
                else:
                    out.append(method(cls, ch, delivery_tag=tag, multiple=r.random() < 0.3, requeue=r.random() < 0.5))
            elif k < 75:
                out.append(method(C.Basic.Qos, ch, prefetch_count=r.choice([0, 1, 10, 65535]),
                                  prefetch_size=r.choice([0, 0, 10]), global_=r.random() < 0.3))
            elif k < 77:
                out.append(method(C.Confirm.Select, ch, nowait=r.random() < 0.2))
            elif k < 79:
                out.append(method(r.choice([C.Tx.Select, C.Tx.Commit, C.Tx.Rollback]), ch))
            elif k < 81:
                out.append(method(C.Basic.Cancel, ch, consumer_tag=r.choice(["", "c1", "c2"])))
            elif k < 83:
                out.append(method(C.Basic.Recover, ch, requeue=r.random() < 0.5))
            elif k < 85:
                out.append(method(C.Queue.Purge, ch, queue=q))
            elif k < 87:
                out.append(method(C.Queue.Unbind, ch, queue=q, exchange=x, routing_key=r.choice(ROUTING_KEYS)))
            elif k < 88:
                out.append(method(C.Queue.Delete, ch, queue=q, if_unused=r.random() < 0.3, if_empty=r.random() < 0.3))
            elif k < 89:
                out.append(method(C.Exchange.Delete, ch, exchange=x, if_unused=r.random() < 0.3))
            elif k < 91:
                out.append(method(r.choice([C.Exchange.Bind, C.Exchange.Unbind]), ch, destination=x,
                                  source=r.choice(EXCHANGES), routing_key=r.choice(ROUTING_KEYS)))
            elif k < 92:
                out.append(method(C.Channel.Flow, ch, active=r.random() < 0.5))
            elif k < 94:
                out.append(raw_frame(8, 0, b""))
            elif k < 95:
                out.append(method(C.Channel.Close, ch, reply_code=200, reply_text="bye"))
                opened.discard(ch)
            elif k < 96:
                out.append(method(C.Basic.RecoverAsync, ch, requeue=True))
            else:
                out.append(method(C.Queue.Declare, ch, queue="", exclusive=True))
        return out


# ----------------------------------------------------------------------------- mutation
_INTERESTING = [0, 1, 0x7F, 0x80, 0xFE, 0xFF]
_TYPE_LETTERS = b"tbBsuIilfdDSxATFVLz\x00"


def mutate(r: random.Random, frame: bytes) -> list[bytes]:
    """One mutated version of ``frame`` (as a list: a mutation may drop or duplicate it)."""
    b = bytearray(frame)
    k = r.randrange(16)
    if k == 0:  # flip a random byte
        i = r.randrange(len(b))
        b[i] ^= 1 << r.randrange(8)
    elif k == 1:  # an interesting value at a random offset
        b[r.randrange(len(b))] = r.choice(_INTERESTING)
    elif k == 2:  # cut the payload, keep the declared size: the frame swallows the next one
        if len(b) > 8:
            del b[r.randrange(7, len(b) - 1)]
    elif k == 3:  # cut the payload and fix the size: fields truncated
        if len(b) > 8:
            cut = r.randrange(7, len(b) - 1)
            b = b[:cut] + b"\xce"
            b[3:7] = _U32.pack(cut - 7)
    elif k == 4:  # extra bytes in the payload, size fixed
        extra = r.randbytes(r.randrange(1, 9))
        b = b[:-1] + extra + b"\xce"
        b[3:7] = _U32.pack(len(b) - 8)
    elif k == 5:  # a wrong size
        b[3:7] = _U32.pack(r.choice([0, 1, len(b) - 7, max(0, len(b) - 9), 4096, 4097, 131072, 131073, 2**32 - 1]))
    elif k == 6:  # another frame type
        b[0] = r.choice([0, 1, 2, 3, 4, 8, 9, 0xCE, 0xFF])
    elif k == 7:  # another channel
        b[1:3] = _U16.pack(r.choice([0, 1, 2, 3, 4, 65535]))
    elif k == 8:  # another method id
        if b[0] == 1 and len(b) >= 12:
            b[7:11] = _U32.pack(r.choice(list(C.INDEX_MAPPING)) if r.random() < 0.8 else r.randrange(2**32))
    elif k == 9:  # a table type letter changed (any byte that looks like one)
        idx = [i for i in range(7, len(b) - 1) if b[i] in _TYPE_LETTERS[:-3]]
        if idx:
            b[r.choice(idx)] = r.choice(_TYPE_LETTERS)
    elif k == 10:  # drop the frame
        return []
    elif k == 11:  # duplicate it
        return [bytes(b), bytes(b)]
    elif k == 12:  # frame end octet wrong
        b[-1] = r.randrange(256)
    elif k == 13:  # a length prefix inside the payload made huge or zero
        if len(b) > 12:
            i = r.randrange(7, len(b) - 4)
            b[i : i + 4] = _U32.pack(r.choice([0, 1, 2**31, 2**32 - 1, len(b)]))
    elif k == 14:  # random bytes appended after the frame
        return [bytes(b), r.randbytes(r.randrange(1, 16))]
    else:  # several byte flips
        for _ in range(r.randrange(2, 6)):
            b[r.randrange(len(b))] = r.randrange(256)
    return [bytes(b)]


def mutate_stream(r: random.Random, frames: list[bytes], rate: float) -> list[bytes]:
    out: list[bytes] = []
    for f in frames:
        if r.random() < rate:
            out.extend(mutate(r, f))
        else:
            out.append(f)
    if len(out) > 2 and r.random() < 0.1:  # two frames swapped
        i = r.randrange(len(out) - 1)
        out[i], out[i + 1] = out[i + 1], out[i]
    return out


# ----------------------------------------------------------------------------- one connection
@dataclass
class Stats:
    """Figures of a run."""

    frames: int = 0
    connections: int = 0
    prelogin_connections: int = 0
    postlogin_connections: int = 0
    handshake_failures: int = 0
    timeouts: int = 0
    codes: collections.Counter = field(default_factory=collections.Counter)

    @property
    def internal_errors(self) -> int:
        return self.codes.get(541, 0)


def _scan_replies(buf: bytearray, stats: Stats) -> bool:
    """Count the reply codes of Connection.Close / Channel.Close in what the broker sent;
    True when the broker sent Connection.Close."""
    closed = False
    p = 0
    n = len(buf)
    if buf[:4] == b"AMQP":
        p = 8
    while n - p >= 8:
        ftype, _ch, size = _FRAME.unpack_from(buf, p)
        if p + 8 + size > n:
            break
        if ftype == 1 and size >= 6:
            cls_mid = _U32.unpack_from(buf, p + 7)[0]
            if cls_mid in (0x000A0032, 0x00140028):
                stats.codes[_U16.unpack_from(buf, p + 11)[0]] += 1
                closed = closed or cls_mid == 0x000A0032
        p += 8 + size
    del buf[:p]
    return closed


async def _read_frame(reader: asyncio.StreamReader, timeout: float) -> tuple[int, int, bytes]:
    hdr = await asyncio.wait_for(reader.readexactly(7), timeout)
    ftype, ch, size = _FRAME.unpack(hdr)
    payload = await asyncio.wait_for(reader.readexactly(size + 1), timeout)
    return ftype, ch, payload[:-1]


async def _handshake(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    writer.write(AMQP_091)
    _t, _c, p = await _read_frame(reader, 10)
    if p[:4] != b"\x00\x0a\x00\x0a":
        return False
    writer.write(
        method(C.Connection.StartOk, 0, client_properties={"product": "fuzz", "capabilities": {"connection.blocked": True}},
               mechanism="PLAIN", response=b"\0guest\0guest", locale="en_US")
    )
    _t, _c, p = await _read_frame(reader, 10)
    if p[:4] != b"\x00\x0a\x00\x1e":
        return False
    channel_max, frame_max, _hb = struct.unpack(">HIH", p[4:12])
    writer.write(method(C.Connection.TuneOk, 0, channel_max=channel_max, frame_max=frame_max, heartbeat=0))
    writer.write(method(C.Connection.Open, 0, virtual_host="/"))
    while True:
        t, c, p = await _read_frame(reader, 10)
        if t == 1 and p[:4] == b"\x00\x0a\x00\x29":
            return True
        if t == 1 and p[:4] == b"\x00\x0a\x00\x32":
            return False


async def one_connection(port: int, r: random.Random, stats: Stats, frames_per_conn: int, rate: float) -> None:
    gen = Gen(r)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        stats.handshake_failures += 1
        await asyncio.sleep(0.05)
        return
    stats.connections += 1
    try:
        prelogin = r.random() < 0.2
        if prelogin:
            stats.prelogin_connections += 1
            script = [AMQP_091, gen.start_ok(), gen.tune_ok(), method(C.Connection.Open, 0, virtual_host=r.choice(["/", "nope"]))]
            script += gen.session(r.randrange(2, 8))
            stream = [script[0] if r.random() < 0.9 else r.randbytes(8)] + mutate_stream(r, script[1:], 0.3)
        else:
            stats.postlogin_connections += 1
            try:
                if not await _handshake(reader, writer):
                    stats.handshake_failures += 1
                    return
            except (TimeoutError, asyncio.IncompleteReadError, OSError):
                stats.handshake_failures += 1
                return
            stream = mutate_stream(r, gen.session(frames_per_conn), rate)
        stream.append(method(C.Connection.Close, 0, reply_code=200, reply_text="bye"))
        stats.frames += len(stream)
        buf = bytearray()

        async def drain() -> None:
            while True:
                data = await reader.read(65536)
                if not data:
                    return
                buf.extend(data)
                if _scan_replies(buf, stats):
                    # answer as a client would, so the broker need not wait for its close timeout
                    writer.write(method(C.Connection.CloseOk, 0))

        reading = asyncio.create_task(drain())
        try:
            # a few chunks, so that the broker sees frames split across reads too
            blob = b"".join(stream)
            pos = 0
            while pos < len(blob):
                step = r.choice([len(blob), 7, 100, 4096, 65536])
                writer.write(blob[pos : pos + step])
                pos += step
                if r.random() < 0.2:
                    await writer.drain()
            await asyncio.wait_for(writer.drain(), 10)
            # before login an erring client gets no answer and the socket closes after 3 s
            # (as RabbitMQ): what there is to see comes at once
            await asyncio.wait_for(reading, 0.5 if prelogin else 5)
        except (TimeoutError, OSError):
            if not prelogin:
                stats.timeouts += 1
        finally:
            reading.cancel()
            _scan_replies(buf, stats)
    finally:
        writer.close()


async def _sanity(port: int) -> bool:
    """A clean client still gets a publish -> get round trip."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        if not await _handshake(reader, writer):
            return False
        writer.write(method(C.Channel.Open, 1))
        writer.write(method(C.Queue.Declare, 1, queue="fuzz-sanity", auto_delete=False))
        writer.write(method(C.Queue.Purge, 1, queue="fuzz-sanity"))
        writer.write(method(C.Basic.Publish, 1, exchange="", routing_key="fuzz-sanity"))
        writer.write(content_header(1, 2, {}))
        writer.write(raw_frame(3, 1, b"ok"))
        writer.write(method(C.Basic.Get, 1, queue="fuzz-sanity", no_ack=True))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            t, _c, p = await _read_frame(reader, 20)
            if t == 3 and p == b"ok":
                return True
            if t == 1 and p[:4] in (b"\x00\x0a\x00\x32", b"\x00\x14\x00\x28"):
                return False
        return False
    finally:
        writer.close()


async def run(port: int, frames: int, seed: int = 0, concurrency: int = 8, frames_per_conn: int = 60,
              rate: float = 0.05, alive: Any = None, deadline: float | None = None) -> tuple[Stats, bool]:
    """Fuzz the broker on ``port`` until ``frames`` frames were sent (or ``deadline``,
    a monotonic time, passed); returns (stats, sanity round trip succeeded).
    ``alive()`` (optional) says whether the broker process is still running."""
    stats = Stats()
    master = random.Random(seed)

    async def worker(wseed: int) -> None:
        r = random.Random(wseed)
        while stats.frames < frames and (deadline is None or time.monotonic() < deadline):
            if alive is not None and not alive():
                return
            await one_connection(port, r, stats, frames_per_conn, rate)

    await asyncio.gather(*(worker(master.randrange(2**32)) for _ in range(concurrency)))
    ok = alive() if alive is not None else True
    if ok:
        try:
            ok = await asyncio.wait_for(_sanity(port), 30)
        except (TimeoutError, OSError, asyncio.IncompleteReadError):
            ok = False
    return stats, ok


def log_findings(text: str) -> dict[str, int]:
    """Counts of what must never be in the broker's log."""
    return {
        "tracebacks": text.count("Traceback"),
        "internal_error_lines": text.count("internal error"),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--frames-per-conn", type=int, default=100)
    ap.add_argument("--rate", type=float, default=0.05, help="probability that a post-login frame is mutated")
    ap.add_argument("--minutes", type=float, default=0, help="stop after this long (0: no limit)")
    ap.add_argument("--port", type=int, default=0, help="fuzz a running broker (its log is not checked)")
    ap.add_argument("--log", default="", help="with --port: the broker's log file to check")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    deadline = time.monotonic() + args.minutes * 60 if args.minutes else None
    broker = None
    log_path = Path(args.log) if args.log else None
    if args.port:
        port = args.port
        alive = None
    else:
        from tests.brokerproc import BrokerProcess

        tmp = Path(tempfile.mkdtemp(prefix="warren-fuzz-"))
        broker = BrokerProcess(tmp / "data").start()
        port = broker.port
        log_path = broker.log_path

        def alive() -> bool:
            return broker.proc is not None and broker.proc.poll() is None

    t0 = time.monotonic()
    try:
        stats, sane = asyncio.run(
            run(port, args.frames, args.seed, args.concurrency, args.frames_per_conn, args.rate, alive, deadline)
        )
        crashed = broker is not None and not alive()
    finally:
        if broker is not None:
            broker.stop()
    findings = log_findings(log_path.read_text(errors="replace")) if log_path else {}
    result = {
        "frames": stats.frames,
        "connections": stats.connections,
        "prelogin_connections": stats.prelogin_connections,
        "postlogin_connections": stats.postlogin_connections,
        "handshake_failures": stats.handshake_failures,
        "timeouts": stats.timeouts,
        "crashes": int(crashed) if broker is not None else None,
        "internal_errors_541": stats.internal_errors,
        **findings,
        "sanity_round_trip": sane,
        "reply_codes": dict(sorted(stats.codes.items())),
        "seconds": round(time.monotonic() - t0, 1),
        "log": str(log_path) if log_path else None,
    }
    print(json.dumps(result))
    bad = (
        stats.internal_errors
        or not sane
        or (broker is not None and crashed)
        or findings.get("tracebacks")
        or findings.get("internal_error_lines")
    )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
