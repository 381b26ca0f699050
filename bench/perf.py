"""``warren-perf``: an AMQP 0-9-1 load generator (like RabbitMQ's PerfTest or lavinmqperf).

It works against any AMQP 0-9-1 broker and mirrors the semantics of the C tool
``/work/shared/bench/amqp-perf`` (same options, same queue naming, same 16-byte body stamp,
same rate/latency/confirm accounting, same JSON keys), so the numbers of the two are comparable.

Design, for speed on a small box:

* one OS process per producer and per consumer (``multiprocessing``, fork), each running its own
  uvloop event loop with one TCP connection and channel 1;
* the handshake, declarations and other rare methods go through pamqp; the hot path is
  hand-written: the Basic.Publish method frame, content header and body frame(s) of a message are
  encoded once into a template, a batch of messages is one ``bytearray`` copy of the template plus
  one ``struct.pack_into`` per message (timestamp, producer id, sequence) and goes out in one
  ``write``; deliveries are parsed incrementally with precompiled ``struct.Struct`` objects;
* the parent process only coordinates (shared-memory counters, barriers) and prints a line per
  second on stderr.

Body stamp: u64 ``time.monotonic_ns()`` (CLOCK_MONOTONIC, same clock as the C tool), u32 producer id,
u32 per-producer sequence number, host byte order: producers and consumers must be on one host.

Queue naming: ``NAME`` for one queue, else ``NAME-0..K-1``; producer i publishes to queue i%K through
the default exchange, consumer j consumes queue j%K; ``--fanout K`` publishes to the fanout exchange
``NAME-fanout`` bound to ``NAME-0..K-1``.

Rates: ``publish_rate = sent / (time the last producer stopped publishing)``,
``consume_rate = received / (time of the last delivery)``, both measured from the common start after
every connection is set up.  Exit status: 0 ok, 1 errors or protocol anomalies, 2 bad usage.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import multiprocessing as mp
import os
import random
import resource
import signal
import socket
import struct
import sys
import threading
import time
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlparse

from pamqp import commands, exceptions, frame, header

try:  # uvloop is a dependency of warren; plain asyncio works too (slower)
    import uvloop

    _new_loop: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
except ImportError:  # pragma: no cover
    _new_loop = asyncio.new_event_loop

# --------------------------------------------------------------------------- wire constants
FRAME_METHOD, FRAME_HEADER, FRAME_BODY, FRAME_HEARTBEAT = 1, 2, 3, 8
FRAME_END = 0xCE
HDR = struct.Struct(">BHI")  # frame type, channel, payload size
U16 = struct.Struct(">H")
U32 = struct.Struct(">I")
U64 = struct.Struct(">Q")
QB = struct.Struct(">QB")  # delivery tag + bits
STAMP = struct.Struct("=QII")  # body stamp: monotonic ns, producer id, sequence (host order)
TS_ONLY = struct.Struct("=Q")
ACK = struct.Struct(">BHIHHQBB")  # basic.ack frame on channel 1
HEARTBEAT = bytes([FRAME_HEARTBEAT, 0, 0, 0, 0, 0, 0, FRAME_END])


def _mid(class_id: int, method_id: int) -> int:
    return (class_id << 16) | method_id


M_DELIVER = _mid(60, 60)
M_BASIC_ACK = _mid(60, 80)
M_BASIC_NACK = _mid(60, 120)
M_RETURN = _mid(60, 50)
M_CANCEL = _mid(60, 30)
M_CH_CLOSE = _mid(20, 40)
M_CH_CLOSE_OK = _mid(20, 41)
M_CONN_CLOSE = _mid(10, 50)
M_CONN_CLOSE_OK = _mid(10, 51)
M_BLOCKED = _mid(10, 60)
M_UNBLOCKED = _mid(10, 61)

MAXPID = 4096

# --------------------------------------------------------------------------- histogram
# log-linear, 64 sub-buckets per power of two: the same buckets as amqp-perf.c, so quantiles agree.
HSUB = 6
HSUBN = 1 << HSUB
HMAXEXP = 44
NB = (HMAXEXP - HSUB + 1) * HSUBN


def hidx(v: int) -> int:
    """Bucket index of value ``v`` (ns)."""
    if v < HSUBN:
        return v if v > 0 else 0
    e = v.bit_length() - 1
    if e > HMAXEXP:
        return NB - 1
    return (e - HSUB + 1) * HSUBN + ((v >> (e - HSUB)) & (HSUBN - 1))


def hlow(i: int) -> int:
    """Lowest value of bucket ``i``."""
    if i < HSUBN:
        return i
    e = i // HSUBN + HSUB - 1
    return (HSUBN + i % HSUBN) << (e - HSUB)


def hwidth(i: int) -> int:
    """Width of bucket ``i``."""
    if i < HSUBN:
        return 1
    return 1 << (i // HSUBN + HSUB - 1 - HSUB)


def hist_quantile(b: dict[int, int] | list[int], n: int, q: float, maxv: int) -> float:
    """Value (ns) at quantile q: bucket midpoint clamped to the max, exactly like amqp-perf.c."""
    if n == 0:
        return 0.0
    rank = max(1, math.ceil(q * n))
    c = 0
    items = sorted(b.items()) if isinstance(b, dict) else enumerate(b)
    for i, cnt in items:
        if not cnt:
            continue
        c += cnt
        if c >= rank:
            v = hlow(i) + (hwidth(i) - 1) / 2.0
            return min(v, float(maxv)) if maxv else v
    return float(maxv)


@dataclass
class Hist:
    """A latency histogram (ns values) with count/sum/min/max."""

    b: dict[int, int] = field(default_factory=dict)
    count: int = 0
    sum_ns: int = 0
    min: int = 0
    max: int = 0

    def merge_counts(self, b: dict[int, int] | list[int], count: int, sum_ns: int, mn: int, mx: int) -> None:
        if not count:
            return
        items = b.items() if isinstance(b, dict) else ((i, c) for i, c in enumerate(b) if c)
        for i, c in items:
            self.b[i] = self.b.get(i, 0) + c
        self.min = mn if not self.count else min(self.min, mn)
        self.max = max(self.max, mx)
        self.count += count
        self.sum_ns += sum_ns

    def to_json(self) -> dict[str, float]:
        """Microsecond summary with the same keys as amqp-perf.c."""
        out: dict[str, float] = {"count": self.count}
        if self.count:
            out["min"] = round(self.min / 1e3, 1)
            out["mean"] = round(self.sum_ns / self.count / 1e3, 1)
            for k, q in (("p50", 0.5), ("p75", 0.75), ("p95", 0.95), ("p99", 0.99), ("p999", 0.999)):
                out[k] = round(hist_quantile(self.b, self.count, q, self.max) / 1e3, 1)
            out["max"] = round(self.max / 1e3, 1)
        return out


# --------------------------------------------------------------------------- options
@dataclass
class Options:
    """Command-line options (same names and defaults as amqp-perf.c)."""

    uri: str = "amqp://guest:guest@127.0.0.1:5672/"
    producers: int = 1
    consumers: int = 1
    queue: str = "amqp-perf"
    queues: int = 1
    size: int = 16
    time_s: float = 0.0
    rate: float = 0.0
    persistent: bool = False
    durable: bool = False
    confirm: int = 0
    prefetch: int = 0
    autoack: bool = False
    multi_ack_every: int = 0
    priority_max: int = 0
    fanout: int = 0
    exchange: str | None = None
    pmessages: int = 0
    cmessages: int = 0
    mandatory: bool = False
    heartbeat: int = 0
    flush_bytes: int = 16384
    confirm_grace_s: float = 10.0
    idle_stop_s: float = 3.0
    max_time_s: float = 600.0
    purge: bool = False
    cleanup: bool = False
    no_declare: bool = False
    queue_args: str | None = None
    quiet: bool = False
    label: str | None = None
    json: bool = False
    # derived
    qnames: list[str] = field(default_factory=list)
    exname: str = ""
    qargs: dict[str, Any] = field(default_factory=dict)
    host: str = "127.0.0.1"
    port: int = 5672
    user: str = "guest"
    password: str = "guest"
    vhost: str = "/"


def parse_uri(uri: str) -> tuple[str, int, str, str, str]:
    """(host, port, user, password, vhost) of an amqp:// URI; an empty vhost means "/"."""
    u = urlparse(uri)
    if u.scheme == "amqps":
        raise ValueError("amqps is not supported")
    if u.scheme != "amqp":
        raise ValueError(f"bad --uri {uri}")
    vhost = unquote(u.path[1:]) if u.path.startswith("/") else unquote(u.path)
    return (
        u.hostname or "127.0.0.1",
        u.port or 5672,
        unquote(u.username) if u.username is not None else "guest",
        unquote(u.password) if u.password is not None else "guest",
        vhost or "/",
    )


def parse_queue_args(opt: Options) -> dict[str, Any]:
    """x-arguments for queue.declare: x-max-priority from --priority-max plus --queue-args k=v,..."""
    args: dict[str, Any] = {}
    if opt.priority_max > 0:
        args["x-max-priority"] = opt.priority_max
    if opt.queue_args:
        for kv in opt.queue_args.split(","):
            if not kv:
                continue
            if "=" not in kv:
                raise ValueError(f"bad --queue-args entry '{kv}' (want key=value)")
            k, v = kv.split("=", 1)
            try:
                args[k] = int(v)
            except ValueError:
                args[k] = v
    return args


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of warren-perf."""
    ap = argparse.ArgumentParser(
        prog="warren-perf",
        description="AMQP 0-9-1 load generator (multi-process, hand-written hot path). "
        "Per-second lines on stderr; summary (or --json) on stdout.",
    )
    a = ap.add_argument
    a("--uri", default=Options.uri, help="amqp://user:pass@host:port/vhost")
    a("--producers", type=int, default=1, help="producer processes, one connection each")
    a("--consumers", type=int, default=1, help="consumer processes, one connection each")
    a("--queue", default="amqp-perf", help="queue name; with --queues K>1 or --fanout K: NAME-0..K-1")
    a("--queues", type=int, default=1, help="spread producers/consumers round-robin over K queues")
    a("--size", type=int, default=16, help="body size in bytes (>=16 carries the full stamp)")
    a("--time", dest="time_s", type=float, default=0.0, help="run time in s (default 10 if no counts)")
    a("--rate", type=float, default=0.0, help="msgs/s per producer, 0 = unlimited")
    a("--persistent", action="store_true", help="delivery_mode 2")
    a("--durable", action="store_true", help="durable queues (and exchange)")
    a("--confirm", type=int, default=0, help="publisher confirms, at most W outstanding per producer")
    a("--prefetch", type=int, default=0, help="basic.qos prefetch per consumer (0 = unlimited)")
    a("--autoack", action="store_true", help="no_ack consumers")
    a("--multi-ack-every", type=int, default=0, help="ack with multiple=true every N messages")
    a("--priority-max", type=int, default=0, help="x-max-priority=P, random priorities 0..P-1")
    a("--fanout", type=int, default=0, help="publish to fanout exchange NAME-fanout bound to K queues")
    a("--exchange", default=None, help="publish to this exchange (routing key = queue name)")
    a("--pmessages", type=int, default=0, help="each producer stops after N messages")
    a("--cmessages", type=int, default=0, help="each consumer stops after N messages")
    a("--mandatory", action="store_true", help="publish with mandatory=true (returns are counted)")
    a("--heartbeat", type=int, default=0, help="heartbeat seconds (0 = off)")
    a("--flush-bytes", type=int, default=16384, help="bytes of publishes per write (0 = write each)")
    a("--confirm-grace", dest="confirm_grace_s", type=float, default=10.0,
      help="after publishing, wait up to S for outstanding confirms")
    a("--idle-stop", dest="idle_stop_s", type=float, default=3.0,
      help="with --pmessages and no --cmessages: consumers stop after S idle")
    a("--max-time", dest="max_time_s", type=float, default=600.0, help="hard safety limit in s")
    a("--queue-args", default=None, help="extra x-arguments k=v,... (integers become ints)")
    a("--purge", action="store_true", help="purge the queues after declaring")
    a("--cleanup", action="store_true", help="delete queues (and fanout exchange) at the end")
    a("--no-declare", action="store_true", help="declare nothing")
    a("--label", default=None, help="copied into the JSON")
    a("--quiet", action="store_true", help="no per-second lines")
    a("--json", action="store_true", help="print one JSON object on stdout instead of the summary")
    return ap


def options_from_args(argv: list[str] | None) -> Options:
    """Parse and validate argv into Options (exits with status 2 on bad usage)."""
    ap = build_parser()
    ns = ap.parse_args(argv)
    opt = Options(**{k: v for k, v in vars(ns).items()})
    bad = (
        opt.producers < 0 or opt.consumers < 0 or opt.queues < 1 or opt.size < 0 or opt.confirm < 0
        or opt.prefetch < 0 or opt.prefetch > 65535 or opt.priority_max < 0 or opt.priority_max > 255
        or opt.fanout < 0 or opt.producers + opt.consumers == 0 or opt.flush_bytes < 0
        or opt.producers >= MAXPID
    )
    if bad:
        ap.print_usage(sys.stderr)
        print("warren-perf: invalid option values", file=sys.stderr)
        sys.exit(2)
    try:
        opt.host, opt.port, opt.user, opt.password, opt.vhost = parse_uri(opt.uri)
        opt.qargs = parse_queue_args(opt)
    except ValueError as e:
        print(f"warren-perf: {e}", file=sys.stderr)
        sys.exit(2)
    if opt.time_s <= 0 and opt.pmessages <= 0 and opt.cmessages <= 0:
        opt.time_s = 10.0
    if not opt.autoack and 0 < opt.prefetch < opt.multi_ack_every:
        print(f"warning: --multi-ack-every {opt.multi_ack_every} > --prefetch {opt.prefetch}: "
              "acks will only happen on 100 ms idle", file=sys.stderr)
    nq = opt.fanout if opt.fanout > 0 else opt.queues
    if nq == 1 and opt.fanout == 0:
        opt.qnames = [opt.queue]
    else:
        opt.qnames = [f"{opt.queue}-{i}" for i in range(nq)]
    opt.exname = opt.exchange if opt.exchange else f"{opt.queue}-fanout"
    return opt


# --------------------------------------------------------------------------- connection
class AmqpError(Exception):
    """A connection/channel failure or a close from the broker."""


class Conn(asyncio.Protocol):
    """One AMQP connection with channel 1.

    Until ``handler`` is set, incoming bytes are buffered and decoded with pamqp by ``rpc``;
    afterwards every read goes straight to ``handler`` (the hand-written hot path).
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.transport: asyncio.Transport | None = None
        self.buf: bytes | bytearray = b""
        self.off = 0
        self.handler: Callable[[bytes], None] | None = None
        self.on_lost: Callable[[Exception | None], None] | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.resume: asyncio.Future[None] | None = None
        self.paused = False
        self.lost = False
        self.lost_exc: Exception | None = None
        self.frame_max = 131072

    # asyncio.Protocol -------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no asyncio.Transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        transport.set_write_buffer_limits(high=512 * 1024, low=128 * 1024)

    def data_received(self, data: bytes) -> None:
        h = self.handler
        if h is not None:
            h(data)
            return
        if self.off == 0 and not self.buf:
            self.buf = data
        else:
            if not isinstance(self.buf, bytearray):
                self.buf = bytearray(self.buf)
            self.buf += data
        self._wake()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.lost_exc = exc
        self._wake()
        if self.resume is not None and not self.resume.done():
            self.resume.set_result(None)
        if self.on_lost is not None:
            self.on_lost(exc)

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        if self.resume is not None and not self.resume.done():
            self.resume.set_result(None)

    # helpers ----------------------------------------------------------------
    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def drain(self) -> None:
        """Wait while the transport is over its high-water mark."""
        while self.paused and not self.lost:
            self.resume = asyncio.get_running_loop().create_future()
            await self.resume

    def write(self, data: bytes | bytearray) -> None:
        assert self.transport is not None
        self.transport.write(data)

    def send(self, f: Any, channel: int = 1) -> None:
        self.write(frame.marshal(f, channel))

    def _next_frame(self) -> tuple[int, Any] | None:
        """One complete frame from the buffer or None; pamqp decodes methods and headers only."""
        buf, off = self.buf, self.off
        if len(buf) - off < 8:
            return None
        if buf[off:off + 4] == b"AMQP":
            raise AmqpError(f"{self.name}: broker refused the protocol version: {bytes(buf[off:off + 8])!r}")
        ftype, ch, size = HDR.unpack_from(buf, off)
        end = off + 8 + size
        if end > len(buf):
            return None
        self.off = end
        if self.off > 65536 and self.off * 2 > len(buf):
            self.buf, self.off = buf[end:], 0
        if ftype in (FRAME_BODY, FRAME_HEARTBEAT):
            return ch, None
        return ch, frame.unmarshal(bytes(buf[off:end]))[2]

    def take_rest(self) -> bytes:
        """Unparsed buffered bytes (handed to the hot path)."""
        rest = bytes(self.buf[self.off:])
        self.buf, self.off = b"", 0
        return rest

    async def read_frame(self, timeout: float = 10.0) -> tuple[int, Any]:
        """Next frame via pamqp (setup and close path only)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                got = self._next_frame()
            except exceptions.UnmarshalingException as e:
                raise AmqpError(f"{self.name}: bad frame: {e}") from e
            if got is not None:
                return got
            if self.lost:
                raise AmqpError(f"{self.name}: connection lost ({self.lost_exc or 'closed by peer'})")
            left = deadline - time.monotonic()
            if left <= 0:
                raise AmqpError(f"{self.name}: timeout waiting for a frame")
            self.waiter = asyncio.get_running_loop().create_future()
            try:
                await asyncio.wait_for(self.waiter, left)
            except TimeoutError:
                pass
            finally:
                self.waiter = None

    async def expect(self, *kinds: type, timeout: float = 10.0) -> Any:
        """Read frames until one of ``kinds``; a Channel/Connection.Close raises AmqpError."""
        while True:
            ch, f = await self.read_frame(timeout)
            if isinstance(f, kinds):
                return f
            if isinstance(f, commands.Connection.Close):
                with contextlib.suppress(Exception):
                    self.send(commands.Connection.CloseOk(), 0)
                raise AmqpError(f"server connection.close {f.reply_code}: {f.reply_text}")
            if isinstance(f, commands.Channel.Close):
                with contextlib.suppress(Exception):
                    self.send(commands.Channel.CloseOk(), ch)
                raise AmqpError(f"server channel.close {f.reply_code}: {f.reply_text}")
            # anything else (heartbeats, blocked, ...) is ignored on the setup path

    async def rpc(self, f: Any, *kinds: type, timeout: float = 10.0) -> Any:
        self.send(f, 1)
        return await self.expect(*kinds, timeout=timeout)


async def connect(opt: Options, name: str) -> Conn:
    """Open a connection (handshake via pamqp) and channel 1."""
    loop = asyncio.get_running_loop()
    try:
        _, conn = await asyncio.wait_for(
            loop.create_connection(lambda: Conn(name), opt.host, opt.port), 10.0
        )
    except (OSError, TimeoutError) as e:
        raise AmqpError(f"{name}: connect {opt.host}:{opt.port}: {e}") from e
    conn.write(header.ProtocolHeader().marshal())
    await conn.expect(commands.Connection.Start)
    conn.send(commands.Connection.StartOk(
        client_properties={
            "product": "warren-perf",
            "platform": "Python",
            "capabilities": {
                "publisher_confirms": True,
                "basic.nack": True,
                "consumer_cancel_notify": True,
                "connection.blocked": True,
                "authentication_failure_close": True,
            },
        },
        mechanism="PLAIN",
        response=f"\0{opt.user}\0{opt.password}",
    ), 0)
    tune = await conn.expect(commands.Connection.Tune)
    fmax = 131072
    if tune.frame_max and tune.frame_max < fmax:
        fmax = tune.frame_max
    conn.frame_max = fmax if fmax >= 4096 else 131072
    chmax = tune.channel_max or 0
    conn.send(commands.Connection.TuneOk(channel_max=chmax, frame_max=fmax, heartbeat=opt.heartbeat), 0)
    conn.send(commands.Connection.Open(virtual_host=opt.vhost), 0)
    await conn.expect(commands.Connection.OpenOk)
    await conn.rpc(commands.Channel.Open(), commands.Channel.OpenOk)
    return conn


async def close_conn(conn: Conn, *, clean: bool, rest: bytes = b"", timeout: float = 5.0) -> None:
    """channel.close + connection.close (waiting for the -ok replies) if clean, then drop the socket.

    ``rest``: bytes the hot path had not parsed yet (a partial frame), so framing stays aligned.
    """
    if clean and not conn.lost:
        conn.handler = None
        conn.buf, conn.off = rest + conn.take_rest(), 0
        try:
            await conn.rpc(commands.Channel.Close(reply_code=200, reply_text="bye", class_id=0, method_id=0),
                           commands.Channel.CloseOk, timeout=timeout)
            conn.send(commands.Connection.Close(reply_code=200, reply_text="bye", class_id=0, method_id=0), 0)
            await conn.expect(commands.Connection.CloseOk, timeout=timeout)
        except AmqpError:
            pass
    if conn.transport is not None:
        conn.transport.close()


# --------------------------------------------------------------------------- shared state
NSLOT = 8
S_SENT, S_CONF, S_NACK, S_RET, S_RECV, S_DONE, S_ERR = range(7)


class Shared:
    """State shared by the coordinator and the worker processes (fork-inherited)."""

    def __init__(self, ctx: Any, nworkers: int, nconsumers: int) -> None:
        self.stop = ctx.RawValue("i", 0)  # 1 = stop, 2 = hard abort
        self.stop_cons = ctx.RawValue("i", 0)
        self.abort = ctx.RawValue("i", 0)
        self.t0 = ctx.RawValue("q", 0)
        self.counters = ctx.RawArray("q", nworkers * NSLOT)
        # per-consumer cumulative latency histograms, for the per-second lines
        self.ihist = [ctx.RawArray("q", NB) for _ in range(nconsumers)]
        self.ready = ctx.Barrier(nworkers + 1)
        self.go = ctx.Barrier(nworkers + 1)
        self.results = ctx.Queue()


class Worker:
    """Common parts of a producer and a consumer process."""

    kind = "worker"

    def __init__(self, opt: Options, sh: Shared, wid: int, idx: int) -> None:
        self.opt, self.sh, self.wid, self.id = opt, sh, wid, idx
        self.base = wid * NSLOT
        self.errors: list[str] = []
        self.anomalies = 0
        self.conn: Conn | None = None
        self.failed = False
        self.dead = False  # connection unusable
        self.rest = b""
        self.what = f"{self.kind} {idx}"

    def error(self, msg: str) -> None:
        self.errors.append(msg)
        self.sh.counters[self.base + S_ERR] = len(self.errors)
        print(f"ERROR: {msg}", file=sys.stderr, flush=True)

    def anomaly(self, msg: str) -> None:
        self.anomalies += 1
        self.error(msg)

    def _lost(self, exc: Exception | None) -> None:
        if not self.dead and not getattr(self, "finished_flag", False):
            self.error(f"{self.what}: connection: {exc or 'closed by broker'}")
        self.dead = True

    def rare_method(self, data: bytes, pos: int, end: int) -> Any:
        """Decode one uncommon method frame with pamqp."""
        try:
            return frame.unmarshal(bytes(data[pos:end]))[2]
        except Exception as e:  # noqa: BLE001 - report whatever pamqp did not like
            self.anomaly(f"{self.what}: undecodable frame: {e}")
            return None

    def handle_close(self, f: Any) -> None:
        assert self.conn is not None
        if isinstance(f, commands.Connection.Close):
            self.error(f"{self.what}: server closed connection: {f.reply_code} {f.reply_text}")
            with contextlib.suppress(Exception):
                self.conn.send(commands.Connection.CloseOk(), 0)
        elif isinstance(f, commands.Channel.Close):
            self.error(f"{self.what}: server closed channel: {f.reply_code} {f.reply_text}")
            with contextlib.suppress(Exception):
                self.conn.send(commands.Channel.CloseOk(), 1)
        self.dead = True

    def barrier(self) -> bool:
        """Ready + go barriers; False if the run was aborted."""
        try:
            self.sh.ready.wait(120)
            self.sh.go.wait(120)
        except threading.BrokenBarrierError:
            return False
        return not self.failed and not self.sh.abort.value

    def cpu(self) -> tuple[float, float]:
        ru = resource.getrusage(resource.RUSAGE_SELF)
        return ru.ru_utime, ru.ru_stime


# --------------------------------------------------------------------------- producer
class Producer(Worker):
    """Publishes pre-encoded messages in batches; tracks confirms."""

    kind = "producer"

    def __init__(self, opt: Options, sh: Shared, wid: int, idx: int) -> None:
        super().__init__(opt, sh, wid, idx)
        self.sent = self.confirmed = self.nacked = self.returned = 0
        self.next_tag = 1
        self.low = 1
        self.outstanding = 0
        cap = 1024
        while cap < opt.confirm * 4:
            cap <<= 1
        self.mask = cap - 1
        self.ring = [0] * cap if opt.confirm > 0 else []
        self.chist = [0] * NB
        self.ccount = self.csum = self.cmax = 0
        self.cmin = 0
        self.skip_hdr = False
        self.skip_remaining = 0
        self.blocked = False
        self.t_pub_end = 0
        self.conf_waiter: asyncio.Future[None] | None = None
        self.rng = random.Random(os.getpid() ^ time.monotonic_ns())

    # frames -----------------------------------------------------------------
    def build_template(self, frame_max: int) -> None:
        opt = self.opt
        ex = opt.exname if (opt.fanout > 0 or opt.exchange) else ""
        rk = "" if opt.fanout > 0 else opt.qnames[self.id % len(opt.qnames)]
        exb, rkb = ex.encode(), rk.encode()
        payload = (struct.pack(">HHH", 60, 40, 0) + bytes([len(exb)]) + exb + bytes([len(rkb)]) + rkb
                   + bytes([1 if opt.mandatory else 0]))
        method = HDR.pack(FRAME_METHOD, 1, len(payload)) + payload + bytes([FRAME_END])
        flags = 0
        props = b""
        if opt.persistent:
            flags |= 0x1000
            props += b"\x02"
        self.prio_off = -1
        if opt.priority_max > 0:
            flags |= 0x0800
            self.prio_off = len(method) + 7 + 14 + len(props)
            props += b"\x00"
        hp = struct.pack(">HHQH", 60, 0, opt.size, flags) + props
        hdr = HDR.pack(FRAME_HEADER, 1, len(hp)) + hp + bytes([FRAME_END])
        body = bytearray()
        chunk = frame_max - 8
        off = 0
        while off < opt.size:
            n = min(chunk, opt.size - off)
            body += HDR.pack(FRAME_BODY, 1, n) + bytes(n) + bytes([FRAME_END])
            off += n
        self.msg = method + hdr + bytes(body)
        self.msg_len = len(self.msg)
        self.stamp_off = len(method) + len(hdr) + 7
        first_len = min(chunk, opt.size)
        self.stamp_kind = 2 if first_len >= 16 else (1 if first_len > 0 else 0)
        self.first_len = first_len
        if opt.flush_bytes == 0 or opt.rate > 0:
            self.batch = 1
        else:
            self.batch = max(1, opt.flush_bytes // self.msg_len)
        self.big = self.msg * self.batch

    def encode(self, n: int) -> bytearray:
        """n messages, stamped now, as one buffer."""
        L = self.msg_len
        buf = bytearray(self.big) if n == self.batch else bytearray(self.msg * n)
        off = self.stamp_off
        seq = self.sent
        pid = self.id
        mono = time.monotonic_ns
        if self.stamp_kind == 2 and not self.opt.confirm:
            pack = STAMP.pack_into
            for s in range(seq, seq + n):
                pack(buf, off, mono(), pid, s & 0xFFFFFFFF)
                off += L
        else:
            ring, mask, tag = self.ring, self.mask, self.next_tag
            for s in range(seq, seq + n):
                ts = mono()
                if self.stamp_kind == 2:
                    STAMP.pack_into(buf, off, ts, pid, s & 0xFFFFFFFF)
                elif self.stamp_kind == 1:
                    st = STAMP.pack(ts, pid, s & 0xFFFFFFFF)[: self.first_len]
                    buf[off:off + len(st)] = st
                if ring:
                    ring[tag & mask] = ts
                    tag += 1
                off += L
        if self.prio_off >= 0:
            po = self.prio_off
            for p in self.rng.choices(range(self.opt.priority_max), k=n):
                buf[po] = p
                po += L
        if self.opt.confirm:
            self.outstanding += n
        self.next_tag += n
        self.sent += n
        return buf

    def on_confirm(self, tag: int, multiple: bool, ack: bool) -> None:
        now = time.monotonic_ns()
        if multiple:
            if tag == 0:
                tag = self.next_tag - 1
            lo, hi = self.low, tag
        else:
            lo = hi = tag
        if hi >= self.next_tag or tag == 0 or (not multiple and tag < self.low):
            self.anomaly(f"{self.what}: confirm for unknown delivery tag {tag} (next {self.next_tag})")
            return
        ring, mask, chist = self.ring, self.mask, self.chist
        n = 0
        for t in range(lo, hi + 1):
            i = t & mask
            ts = ring[i]
            if ts == 0:
                if not multiple:
                    self.anomaly(f"{self.what}: duplicate confirm for delivery tag {t}")
                continue
            lat = now - ts
            ring[i] = 0
            chist[hidx(lat)] += 1
            self.csum += lat
            if lat > self.cmax:
                self.cmax = lat
            if not self.ccount or lat < self.cmin:
                self.cmin = lat
            self.ccount += 1
            n += 1
        self.outstanding -= n
        while self.low < self.next_tag and ring[self.low & mask] == 0:
            self.low += 1
        c = self.sh.counters
        if ack:
            self.confirmed += n
            c[self.base + S_CONF] = self.confirmed
        else:
            self.nacked += n
            c[self.base + S_NACK] = self.nacked
        w = self.conf_waiter
        if w is not None and not w.done():
            w.set_result(None)

    def on_data(self, data: bytes) -> None:
        """Everything the broker sends to a publishing connection."""
        if self.rest:
            data = self.rest + data
            self.rest = b""
        n = len(data)
        pos = 0
        unpack = HDR.unpack_from
        while pos + 8 <= n:
            ftype, ch, size = unpack(data, pos)
            fend = pos + 7 + size
            if fend >= n:
                break
            if data[fend] != FRAME_END:
                self.anomaly(f"{self.what}: bad frame end byte")
                self.dead = True
                return
            if ftype == FRAME_METHOD:
                m = U32.unpack_from(data, pos + 7)[0]
                if m == M_BASIC_ACK or m == M_BASIC_NACK:
                    tag, bits = QB.unpack_from(data, pos + 11)
                    self.on_confirm(tag, bool(bits & 1), m == M_BASIC_ACK)
                elif m == M_RETURN:
                    self.returned += 1
                    self.sh.counters[self.base + S_RET] = self.returned
                    self.skip_hdr = True
                elif m == M_BLOCKED:
                    if not self.blocked:
                        print(f"{self.what}: connection.blocked by broker", file=sys.stderr)
                    self.blocked = True
                elif m == M_UNBLOCKED:
                    self.blocked = False
                elif m in (M_CH_CLOSE, M_CONN_CLOSE):
                    self.handle_close(self.rare_method(data, pos, fend + 1))
                    return
                else:
                    self.anomaly(f"{self.what}: unexpected method 0x{m:08X}")
            elif ftype == FRAME_HEADER:
                if not self.skip_hdr:
                    self.anomaly(f"{self.what}: unexpected content header")
                self.skip_hdr = False
                self.skip_remaining = U64.unpack_from(data, pos + 11)[0]
            elif ftype == FRAME_BODY:
                if size > self.skip_remaining:
                    self.anomaly(f"{self.what}: unexpected content body")
                    self.skip_remaining = 0
                else:
                    self.skip_remaining -= size
            pos = fend + 1
        if pos < n:
            self.rest = data[pos:]

    async def wait_confirm(self, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self.conf_waiter = fut
        h = loop.call_later(timeout, lambda: fut.done() or fut.set_result(None))
        try:
            await fut
        finally:
            h.cancel()
            self.conf_waiter = None

    async def flushed(self) -> None:
        """Wait until everything written has left the transport buffer."""
        conn = self.conn
        assert conn is not None and conn.transport is not None
        while not conn.lost and conn.transport.get_write_buffer_size() > 0:
            await conn.drain()
            await asyncio.sleep(0.0005)

    async def main(self) -> None:
        opt, sh = self.opt, self.sh
        try:
            self.conn = await connect(opt, self.what)
            self.conn.on_lost = self._lost
            self.build_template(self.conn.frame_max)
            if opt.confirm > 0:
                await self.conn.rpc(commands.Confirm.Select(), commands.Confirm.SelectOk)
            self.conn.handler = self.on_data
            leftover = self.conn.take_rest()
            if leftover:
                self.on_data(leftover)
        except AmqpError as e:
            self.error(str(e))
            self.failed = True
        ok = self.barrier()
        if ok:
            ok = await self.run()
        self.t_pub_end = self.t_pub_end or time.monotonic_ns()
        if ok and opt.confirm > 0:
            deadline = time.monotonic() + opt.confirm_grace_s
            while self.outstanding > 0 and time.monotonic() < deadline and sh.stop.value != 2:
                if self.dead:
                    ok = False
                    break
                await self.wait_confirm(0.1)
            if self.outstanding > 0:
                print(f"{self.what}: {self.outstanding} publishes still unconfirmed after "
                      f"{opt.confirm_grace_s:.0f} s grace", file=sys.stderr)
        elif ok:
            await asyncio.sleep(0.02)  # pick up any basic.return / channel error already there
        if self.dead:
            ok = False
        if not ok and not self.failed:
            sh.stop.value = max(sh.stop.value, 1)  # a dead connection ends the run
        sh.counters[self.base + S_DONE] = 1
        self.finished_flag = True
        if self.conn is not None:
            await close_conn(self.conn, clean=ok, rest=self.rest)

    async def run(self) -> bool:
        opt, sh = self.opt, self.sh
        conn = self.conn
        assert conn is not None
        counters, base = sh.counters, self.base
        interval = int(1e9 / opt.rate) if opt.rate > 0 else 0
        t_base = sh.t0.value
        stop = sh.stop
        batch = self.batch
        pm = opt.pmessages
        W = opt.confirm
        turns = 0
        while not stop.value:
            if self.dead:
                return False
            n = batch
            if pm > 0:
                if self.sent >= pm:
                    break
                n = min(n, pm - self.sent)
            if interval:
                due = t_base + self.sent * interval
                now = time.monotonic_ns()
                if now < due:
                    wait = due - now
                    if wait > 50_000_000:
                        await asyncio.sleep(0.05)
                        continue
                    if wait > 2_000_000:
                        await asyncio.sleep((wait - 1_000_000) / 1e9)
                        continue
                    await asyncio.sleep(0)  # take in confirms/errors, then sleep precisely
                    wait = due - time.monotonic_ns()
                    if wait > 0:
                        time.sleep(wait / 1e9)
                    now = due
                elif now > due + 100_000_000:
                    t_base += now - due - 100_000_000  # never burst more than 100 ms worth
                n_due = (now - t_base) // interval - self.sent + 1
                n = max(1, min(n_due, 1000 if pm <= 0 else min(1000, pm - self.sent)))
            if W > 0:
                avail = min(W - self.outstanding, self.mask - (self.next_tag - self.low))
                if avail <= 0:
                    await self.wait_confirm(0.1)
                    continue
                n = min(n, avail)
            conn.write(self.encode(n))
            counters[base + S_SENT] = self.sent
            if conn.paused:
                await conn.drain()
            else:
                turns += 1
                if interval or turns >= 4:
                    turns = 0
                    await asyncio.sleep(0)  # let the loop read confirms and errors
        if self.dead:
            return False
        await self.flushed()
        self.t_pub_end = time.monotonic_ns()
        return not self.dead

    def result(self) -> dict[str, Any]:
        u, s = self.cpu()
        return {
            "kind": "producer", "id": self.id, "sent": self.sent, "confirmed": self.confirmed,
            "nacked": self.nacked, "returned": self.returned, "unconfirmed": self.outstanding,
            "anomalies": self.anomalies, "t_pub_end": self.t_pub_end,
            "chist": {i: c for i, c in enumerate(self.chist) if c}, "ccount": self.ccount,
            "csum": self.csum, "cmin": self.cmin, "cmax": self.cmax,
            "errors": self.errors, "failed": self.failed, "cpu": [u, s],
        }


# --------------------------------------------------------------------------- consumer
class Consumer(Worker):
    """Consumes with a minimal incremental parser; measures latency, order, tags."""

    kind = "consumer"

    def __init__(self, opt: Options, sh: Shared, wid: int, idx: int) -> None:
        super().__init__(opt, sh, wid, idx)
        self.received = self.redelivered = self.out_of_order = self.no_stamp = 0
        self.t_last = 0
        self.hist = [0] * NB
        self.hcount = self.hsum = self.hmax = 0
        self.hmin = 0
        self.ilocal = [0] * NB  # since the last push to the shared interval histogram
        self.idirty = False
        self.last_seq: dict[int, int] = {}
        # parser state
        self.state = 0  # 0 want method, 1 want header, 2 want body
        self.tag = self.last_tag = 0
        self.redeliv = 0
        self.remaining = 0
        self.have_stamp = 0
        self.ts = self.pid = self.seq = 0
        self.unacked = 0
        self.ack_every = opt.multi_ack_every if opt.multi_ack_every > 1 else 1
        self.last_rx = 0
        self.done: asyncio.Future[None] | None = None
        self.finished_flag = False

    def finish(self) -> None:
        if self.done is not None and not self.done.done():
            self.done.set_result(None)

    def on_data(self, data: bytes) -> None:
        """The delivery hot path: parse every complete frame of this read.

        A deliver + header + single body frame that are all in the buffer (the common case) are
        handled in one step; anything else goes through the frame-by-frame state machine.
        """
        if self.rest:
            data = self.rest + data
            self.rest = b""
        if self.finished_flag:
            self.rest = data  # kept for the close path
            return
        n = len(data)
        pos = 0
        unpack = HDR.unpack_from
        u32 = U32.unpack_from
        u64 = U64.unpack_from
        qb = QB.unpack_from
        stamp = STAMP.unpack_from
        mono = time.monotonic_ns
        hist, ilocal, last_seq = self.hist, self.ilocal, self.last_seq
        state, remaining, have_stamp = self.state, self.remaining, self.have_stamp
        ts, pid, seq = self.ts, self.pid, self.seq
        tag, last_tag, redeliv = self.tag, self.last_tag, self.redeliv
        hsum, hmax, hmin, hcount = self.hsum, self.hmax, self.hmin, self.hcount
        unacked, ack_every = self.unacked, self.ack_every
        multi = 1 if ack_every > 1 else 0
        redelivered = no_stamp = ooo = 0
        autoack = self.opt.autoack
        cmessages = self.opt.cmessages
        left = cmessages - self.received if cmessages > 0 else -1
        out: list[bytes] = []
        now = 0
        got = 0
        while pos + 8 <= n:
            ftype, ch, size = unpack(data, pos)
            fend = pos + 7 + size
            if fend >= n:
                break
            if data[fend] != FRAME_END:
                self.anomaly(f"{self.what}: bad frame end byte at frame type {ftype}")
                self.dead = True
                break
            complete = False
            if ftype == FRAME_METHOD:
                m = u32(data, pos + 7)[0]
                if m == M_DELIVER:
                    if state != 0:
                        self.anomaly(f"{self.what}: basic.deliver in the middle of a message")
                    tag, bits = qb(data, pos + 12 + data[pos + 11])
                    if tag != last_tag + 1:
                        self.anomaly(f"{self.what}: delivery tag {tag} after {last_tag}")
                    redeliv = bits & 1
                    state = 1
                    # fast path: header + one body frame with the full stamp already here
                    p2 = fend + 1
                    if p2 + 8 <= n:
                        t2, _c2, s2 = unpack(data, p2)
                        e2 = p2 + 7 + s2
                        if t2 == FRAME_HEADER and e2 < n and data[e2] == FRAME_END:
                            bsize = u64(data, p2 + 11)[0]
                            p3 = e2 + 1
                            if bsize >= 16 and p3 + 8 <= n:
                                t3, _c3, s3 = unpack(data, p3)
                                e3 = p3 + 7 + s3
                                if (t3 == FRAME_BODY and s3 == bsize and e3 < n
                                        and data[e3] == FRAME_END):
                                    ts, pid, seq = stamp(data, p3 + 7)
                                    have_stamp = 2
                                    complete = True
                                    fend = e3
                elif m == M_BLOCKED or m == M_UNBLOCKED:
                    pass
                elif m == M_CANCEL:
                    self.error(f"{self.what}: consumer cancelled by broker (queue deleted?)")
                    self.dead = True
                elif m == M_CH_CLOSE or m == M_CONN_CLOSE:
                    self.handle_close(self.rare_method(data, pos, fend + 1))
                else:
                    self.anomaly(f"{self.what}: unexpected method 0x{m:08X}")
            elif ftype == FRAME_BODY:
                if state != 2 or size > remaining:
                    self.anomaly(f"{self.what}: unexpected content body (len {size}, "
                                 f"remaining {remaining})")
                    state = 0
                else:
                    if not have_stamp:
                        if size >= 16:
                            ts, pid, seq = stamp(data, pos + 7)
                            have_stamp = 2
                        elif size >= 8:
                            ts = TS_ONLY.unpack_from(data, pos + 7)[0]
                            have_stamp = 1
                        else:
                            have_stamp = -1
                    remaining -= size
                    if remaining == 0:
                        complete = True
            elif ftype == FRAME_HEADER:
                if state != 1:
                    self.anomaly(f"{self.what}: unexpected content header")
                remaining = u64(data, pos + 11)[0]
                have_stamp = 0
                if remaining == 0:
                    complete = True
                else:
                    state = 2
            elif ftype != FRAME_HEARTBEAT:
                self.anomaly(f"{self.what}: unexpected frame type {ftype}")
            pos = fend + 1
            if complete:
                now = mono()
                state = 0
                last_tag = tag
                got += 1
                if redeliv:
                    redelivered += 1
                if have_stamp > 0 and ts <= now and now - ts < 3_600_000_000_000:
                    lat = now - ts
                    if lat < 64:
                        i = lat
                    else:
                        e = lat.bit_length() - 1
                        i = NB - 1 if e > HMAXEXP else (e - 5) * 64 + ((lat >> (e - 6)) & 63)
                    hist[i] += 1
                    ilocal[i] += 1
                    hsum += lat
                    if lat > hmax:
                        hmax = lat
                    if lat < hmin or not hcount:
                        hmin = lat
                    hcount += 1
                else:
                    no_stamp += 1
                if have_stamp == 2:
                    k = pid % MAXPID
                    ls = last_seq.get(k, 0)
                    if ls and seq + 1 <= ls:
                        ooo += 1
                    last_seq[k] = seq + 1
                if not autoack:
                    unacked += 1
                    if unacked >= ack_every:
                        out.append(ACK.pack(1, 1, 13, 60, 80, tag, multi, FRAME_END))
                        unacked = 0
                if got == left:
                    break
            if self.dead:
                break
        self.state, self.remaining, self.have_stamp = state, remaining, have_stamp
        self.ts, self.pid, self.seq = ts, pid, seq
        self.tag, self.last_tag, self.redeliv = tag, last_tag, redeliv
        self.hsum, self.hmax, self.hmin, self.hcount = hsum, hmax, hmin, hcount
        self.unacked = unacked
        self.redelivered += redelivered
        self.no_stamp += no_stamp
        self.out_of_order += ooo
        if got:
            self.received += got
            self.t_last = now
            self.idirty = True
            self.sh.counters[self.base + S_RECV] = self.received
        self.last_rx = mono()
        if out and self.conn is not None and not self.conn.lost:
            self.conn.write(b"".join(out))
        if pos < n:
            self.rest = data[pos:]
        if self.dead or (cmessages > 0 and self.received >= cmessages):
            self.finished_flag = True
            self.finish()

    def push_interval(self) -> None:
        if not self.idirty:
            return
        shared = self.sh.ihist[self.id]
        il = self.ilocal
        for i, c in enumerate(il):
            if c:
                shared[i] += c
                il[i] = 0
        self.idirty = False

    def tick(self) -> None:
        """Every 20 ms: stop conditions, idle ack, interval histogram, heartbeats."""
        if self.done is None or self.done.done():
            return
        sh = self.sh
        if sh.stop.value or (sh.stop_cons.value and self.state == 0) or self.dead:
            self.finished_flag = True
            self.finish()
            return
        now = time.monotonic_ns()
        if self.unacked and now - self.last_rx > 100_000_000 and self.conn is not None:
            self.conn.write(ACK.pack(1, 1, 13, 60, 80, self.last_tag, 1, FRAME_END))
            self.unacked = 0
        if now - self._last_push > 250_000_000:
            self.push_interval()
            self._last_push = now
        if self.opt.heartbeat > 0 and now - self._last_hb > self.opt.heartbeat * 5e8:
            if self.conn is not None:
                self.conn.write(HEARTBEAT)
            self._last_hb = now
        asyncio.get_running_loop().call_later(0.02, self.tick)

    async def main(self) -> None:
        opt, sh = self.opt, self.sh
        qn = opt.qnames[self.id % len(opt.qnames)]
        leftover = b""
        try:
            self.conn = await connect(opt, self.what)
            self.conn.on_lost = self._lost
            if not opt.autoack and opt.prefetch > 0:
                await self.conn.rpc(commands.Basic.Qos(prefetch_count=opt.prefetch), commands.Basic.QosOk)
            try:
                await self.conn.rpc(commands.Basic.Consume(queue=qn, no_ack=opt.autoack),
                                    commands.Basic.ConsumeOk)
            except AmqpError as e:
                raise AmqpError(f"{self.what}: basic.consume({qn}): {e}") from e
            # from here on every read goes to the hot path (after the start barrier)
            leftover = self.conn.take_rest()
            self.conn.handler = self.on_data
        except AmqpError as e:
            self.error(str(e))
            self.failed = True
        ok = self.barrier()
        if ok:
            loop = asyncio.get_running_loop()
            self.done = loop.create_future()
            self._last_push = self._last_hb = time.monotonic_ns()
            if leftover:
                self.on_data(leftover)
            loop.call_later(0.02, self.tick)
            await self.done
            self.push_interval()
            ok = not self.dead
        if ok and self.unacked and self.conn is not None:
            self.conn.write(ACK.pack(1, 1, 13, 60, 80, self.last_tag, 1, FRAME_END))
            self.unacked = 0
        if not ok and not self.failed:
            sh.stop.value = max(sh.stop.value, 1)
        self.finished_flag = True
        sh.counters[self.base + S_DONE] = 1
        if self.conn is not None:
            await close_conn(self.conn, clean=ok, rest=self.rest)

    def result(self) -> dict[str, Any]:
        u, s = self.cpu()
        return {
            "kind": "consumer", "id": self.id, "received": self.received,
            "redelivered": self.redelivered, "out_of_order": self.out_of_order,
            "no_timestamp": self.no_stamp, "anomalies": self.anomalies, "t_last": self.t_last,
            "hist": {i: c for i, c in enumerate(self.hist) if c}, "hcount": self.hcount,
            "hsum": self.hsum, "hmin": self.hmin, "hmax": self.hmax,
            "errors": self.errors, "failed": self.failed, "cpu": [u, s],
        }


def _worker_entry(cls: type[Worker], opt: Options, sh: Shared, wid: int, idx: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    w = cls(opt, sh, wid, idx)
    loop = _new_loop()
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(w.main())  # type: ignore[attr-defined]
    except Exception as e:  # noqa: BLE001 - a crashed worker must still report
        w.error(f"{w.what}: crashed: {e!r}")
        w.failed = True
        sh.counters[w.base + S_DONE] = 1
        sh.stop.value = max(sh.stop.value, 1)
    finally:
        sh.results.put(w.result())  # type: ignore[attr-defined]
        sh.results.close()
        sh.results.join_thread()
        loop.close()


# --------------------------------------------------------------------------- setup / cleanup
async def _setup(opt: Options) -> None:
    conn = await connect(opt, "setup")
    try:
        if not opt.no_declare:
            if opt.fanout > 0:
                await conn.rpc(commands.Exchange.Declare(exchange=opt.exname, exchange_type="fanout",
                                                         durable=opt.durable),
                               commands.Exchange.DeclareOk)
            for q in opt.qnames:
                try:
                    await conn.rpc(commands.Queue.Declare(queue=q, durable=opt.durable,
                                                          arguments=opt.qargs or None),
                                   commands.Queue.DeclareOk)
                except AmqpError as e:
                    raise AmqpError(f"setup: queue.declare({q}): {e}") from e
                if opt.fanout > 0:
                    await conn.rpc(commands.Queue.Bind(queue=q, exchange=opt.exname, routing_key=""),
                                   commands.Queue.BindOk)
        if opt.purge:
            for q in opt.qnames:
                await conn.rpc(commands.Queue.Purge(queue=q), commands.Queue.PurgeOk)
    finally:
        await close_conn(conn, clean=not conn.lost)


async def _cleanup(opt: Options) -> None:
    conn = await connect(opt, "cleanup")
    try:
        for q in opt.qnames:
            await conn.rpc(commands.Queue.Delete(queue=q), commands.Queue.DeleteOk)
        if opt.fanout > 0:
            await conn.rpc(commands.Exchange.Delete(exchange=opt.exname), commands.Exchange.DeleteOk)
    finally:
        await close_conn(conn, clean=not conn.lost)


def _run_async(coro_fn: Callable[[Options], Any], opt: Options) -> None:
    loop = _new_loop()
    try:
        loop.run_until_complete(coro_fn(opt))
    finally:
        loop.close()


# --------------------------------------------------------------------------- coordinator
def run(opt: Options) -> tuple[dict[str, Any], int]:
    """Run one load test; returns (result dict with amqp-perf's JSON keys, exit status)."""
    first_error = ""
    errors = 0
    try:
        _run_async(_setup, opt)
    except (AmqpError, OSError) as e:
        return {"tool": "warren-perf", "errors": 1, "error": f"setup failed: {e}"}, 1

    ctx = mp.get_context("fork")
    nw = opt.producers + opt.consumers
    sh = Shared(ctx, nw, opt.consumers)
    procs: list[Any] = []
    for j in range(opt.consumers):
        procs.append(ctx.Process(target=_worker_entry, args=(Consumer, opt, sh, j, j), daemon=True))
    for i in range(opt.producers):
        wid = opt.consumers + i
        procs.append(ctx.Process(target=_worker_entry, args=(Producer, opt, sh, wid, i), daemon=True))
    for p in procs:
        p.start()

    def on_sig(_s: int, _f: Any) -> None:
        sh.stop.value = 2 if sh.stop.value else 1

    old_int = signal.signal(signal.SIGINT, on_sig)
    old_term = signal.signal(signal.SIGTERM, on_sig)
    results: list[dict[str, Any]] = []
    try:
        try:
            sh.ready.wait(150)
        except threading.BrokenBarrierError:
            sh.abort.value = 1
        c = sh.counters
        if any(c[w * NSLOT + S_ERR] for w in range(nw)):
            sh.abort.value = 1
        t0 = time.monotonic_ns()
        sh.t0.value = t0
        try:
            sh.go.wait(30)
        except threading.BrokenBarrierError:
            sh.abort.value = 1
        results = _monitor(opt, sh, procs, t0)
    finally:
        signal.signal(signal.SIGINT, old_int)
        signal.signal(signal.SIGTERM, old_term)
        for p in procs:
            p.join(5)
            if p.is_alive():
                p.kill()
    t_end = time.monotonic_ns()
    if opt.cleanup:
        try:
            _run_async(_cleanup, opt)
        except (AmqpError, OSError) as e:
            errors += 1
            first_error = first_error or f"cleanup: {e}"
            print(f"ERROR: cleanup: {e}", file=sys.stderr)
    return _summarize(opt, results, t0, t_end, errors, first_error, len(procs))


def _monitor(opt: Options, sh: Shared, procs: list[Any], t0: int) -> list[dict[str, Any]]:
    nw = len(procs)
    c = sh.counters
    prod_w = range(opt.consumers, nw)
    cons_w = range(opt.consumers)
    copies = opt.fanout if opt.fanout > 0 else 1
    hard_end = t0 + int(opt.max_time_s * 1e9)
    end = min(t0 + int(opt.time_s * 1e9), hard_end) if opt.time_s > 0 else hard_end
    next_tick = t0 + 1_000_000_000
    last_t = t0
    last_sent = last_conf = tick_recv = last_recv = 0
    recv_changed = t0
    prev_ih = [array("q", bytes(NB * 8)) for _ in range(opt.consumers)]
    results: list[dict[str, Any]] = []
    import queue as _queue

    while len(results) < nw:
        try:
            results.append(sh.results.get(timeout=0.02))
            continue
        except _queue.Empty:
            pass
        if len(results) < nw and not any(p.is_alive() for p in procs):
            # a worker died without reporting
            try:
                while True:
                    results.append(sh.results.get(timeout=0.5))
            except _queue.Empty:
                pass
            break
        now = time.monotonic_ns()
        if now >= end and not sh.stop.value:
            sh.stop.value = 1
        if now >= hard_end + 30_000_000_000:
            sh.stop.value = 2
        recv = sum(c[w * NSLOT + S_RECV] for w in cons_w)
        if recv != last_recv:
            recv_changed = now
        if (opt.producers > 0 and opt.consumers > 0 and opt.cmessages <= 0 and not sh.stop.value
                and not sh.stop_cons.value and all(c[w * NSLOT + S_DONE] for w in prod_w)):
            sent = sum(c[w * NSLOT + S_SENT] for w in prod_w)
            ret = sum(c[w * NSLOT + S_RET] for w in prod_w)
            expect = sent * copies - ret
            if recv >= expect:
                sh.stop_cons.value = 1
            elif now - recv_changed > opt.idle_stop_s * 1e9:
                print(f"consumers idle for {opt.idle_stop_s:.1f} s with {recv} of {expect} expected; "
                      "stopping", file=sys.stderr)
                sh.stop_cons.value = 1
        if now >= next_tick:
            s = sum(c[w * NSLOT + S_SENT] for w in prod_w)
            cf = sum(c[w * NSLOT + S_CONF] for w in prod_w)
            dt = (now - last_t) / 1e9
            ib: dict[int, int] = {}
            for k in range(opt.consumers):
                cur = array("q", bytes(sh.ihist[k]))
                pv = prev_ih[k]
                for i in range(NB):
                    d = cur[i] - pv[i]
                    if d:
                        ib[i] = ib.get(i, 0) + d
                prev_ih[k] = cur
            if not opt.quiet:
                line = f"{(now - t0) / 1e9:6.1f}s  sent {(s - last_sent) / dt:8.0f}/s"
                if opt.confirm > 0:
                    line += f"  confirmed {(cf - last_conf) / dt:8.0f}/s"
                line += f"  received {(recv - tick_recv) / dt:8.0f}/s"
                n = sum(ib.values())
                if n:
                    mx_i = max(ib)
                    mx = hlow(mx_i) + hwidth(mx_i) - 1
                    line += (f"  latency p50 {hist_quantile(ib, n, 0.5, mx) / 1e6:.3f} ms"
                             f" p99 {hist_quantile(ib, n, 0.99, mx) / 1e6:.3f} ms max {mx / 1e6:.3f} ms")
                print(line, file=sys.stderr, flush=True)
            last_sent, last_conf, tick_recv, last_t = s, cf, recv, now
            next_tick += 1_000_000_000
            if next_tick < now:
                next_tick = now + 1_000_000_000
        last_recv = recv
    return results


def _summarize(opt: Options, results: list[dict[str, Any]], t0: int, t_end: int, errors: int,
               first_error: str, nworkers: int) -> tuple[dict[str, Any], int]:
    tot = {k: 0 for k in ("sent", "confirmed", "nacked", "returned", "unconfirmed", "received",
                          "redelivered", "out_of_order", "no_timestamp", "anomalies")}
    lat, clat = Hist(), Hist()
    t_pub = t_cons = t0
    cpu_u = cpu_s = 0.0
    for r in results:
        for k in tot:
            tot[k] += r.get(k, 0)
        if r["kind"] == "producer":
            t_pub = max(t_pub, r["t_pub_end"])
            clat.merge_counts({int(i): c for i, c in r["chist"].items()}, r["ccount"], r["csum"],
                              r["cmin"], r["cmax"])
        else:
            t_cons = max(t_cons, r["t_last"])
            lat.merge_counts({int(i): c for i, c in r["hist"].items()}, r["hcount"], r["hsum"],
                             r["hmin"], r["hmax"])
        errors += len(r["errors"])
        if r["errors"] and not first_error:
            first_error = r["errors"][0]
        cpu_u += r["cpu"][0]
        cpu_s += r["cpu"][1]
    if len(results) < nworkers:
        errors += nworkers - len(results)
        first_error = first_error or f"{nworkers - len(results)} worker process(es) died"
    ru = resource.getrusage(resource.RUSAGE_SELF)
    cpu_u += ru.ru_utime
    cpu_s += ru.ru_stime
    pub_el = (t_pub - t0) / 1e9
    cons_el = (t_cons - t0) / 1e9
    out: dict[str, Any] = {"tool": "warren-perf"}
    if opt.label:
        out["label"] = opt.label
    out["config"] = {
        "producers": opt.producers, "consumers": opt.consumers, "queues": len(opt.qnames),
        "size": opt.size, "rate": opt.rate, "persistent": opt.persistent, "durable": opt.durable,
        "confirm": opt.confirm, "prefetch": 0 if opt.autoack else opt.prefetch,
        "autoack": opt.autoack, "multi_ack_every": opt.multi_ack_every,
        "priority_max": opt.priority_max, "fanout": opt.fanout, "pmessages": opt.pmessages,
        "cmessages": opt.cmessages, "time_s": opt.time_s, "flush_bytes": opt.flush_bytes,
        "mandatory": opt.mandatory,
    }
    out.update({
        "sent": tot["sent"], "confirmed": tot["confirmed"], "nacked": tot["nacked"],
        "returned": tot["returned"], "unconfirmed": tot["unconfirmed"], "received": tot["received"],
        "redelivered": tot["redelivered"], "out_of_order": tot["out_of_order"],
        "no_timestamp": tot["no_timestamp"], "protocol_anomalies": tot["anomalies"],
        "publish_rate": round(tot["sent"] / pub_el, 1) if pub_el > 0 else 0.0,
        "consume_rate": round(tot["received"] / cons_el, 1) if cons_el > 0 else 0.0,
        "latency_us": lat.to_json(),
        "confirm_latency_us": clat.to_json(),
        "client_cpu_s": {"user": round(cpu_u, 3), "sys": round(cpu_s, 3)},
        "elapsed_s": round((t_end - t0) / 1e9, 3),
        "publish_elapsed_s": round(pub_el, 3),
        "consume_elapsed_s": round(cons_el, 3),
        "errors": errors,
    })
    if first_error:
        out["first_error"] = first_error
    return out, (1 if errors else 0)


def format_summary(r: dict[str, Any]) -> str:
    """Human-readable result."""
    cfg = r.get("config", {})
    lines = [
        f"warren-perf: {cfg.get('producers')} producer(s), {cfg.get('consumers')} consumer(s), "
        f"{cfg.get('queues')} queue(s), {cfg.get('size')} B, elapsed {r.get('elapsed_s')} s",
        f"  publish  {r.get('publish_rate', 0):>12,.0f} msg/s  sent {r.get('sent')}  "
        f"confirmed {r.get('confirmed')}  nacked {r.get('nacked')}  returned {r.get('returned')}  "
        f"unconfirmed {r.get('unconfirmed')}",
        f"  consume  {r.get('consume_rate', 0):>12,.0f} msg/s  received {r.get('received')}  "
        f"redelivered {r.get('redelivered')}  out_of_order {r.get('out_of_order')}  "
        f"no_timestamp {r.get('no_timestamp')}  protocol_anomalies {r.get('protocol_anomalies')}",
    ]
    for key, name in (("latency_us", "latency"), ("confirm_latency_us", "confirm latency")):
        h = r.get(key, {})
        if h.get("count"):
            lines.append(
                f"  {name} ms: p50 {h['p50'] / 1e3:.3f}  p75 {h['p75'] / 1e3:.3f}  "
                f"p95 {h['p95'] / 1e3:.3f}  p99 {h['p99'] / 1e3:.3f}  p99.9 {h['p999'] / 1e3:.3f}  "
                f"max {h['max'] / 1e3:.3f}  (n={h['count']})")
    cpu = r.get("client_cpu_s", {})
    lines.append(f"  client cpu: user {cpu.get('user', 0):.2f} s  sys {cpu.get('sys', 0):.2f} s  "
                 f"errors {r.get('errors')}" + (f"  first error: {r['first_error']}"
                                                  if r.get("first_error") else ""))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``warren-perf`` console script."""
    opt = options_from_args(argv)
    res, rc = run(opt)
    if opt.json:
        print(json.dumps(res), flush=True)
    else:
        print(format_summary(res) if "config" in res else json.dumps(res), flush=True)
    sys.exit(rc)


if __name__ == "__main__":
    main()
