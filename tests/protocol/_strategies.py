"""Hypothesis strategies for AMQP 0-9-1 frames, built and marshalled with pamqp."""

from __future__ import annotations

import datetime
import functools

from hypothesis import strategies as st
from pamqp import body as pbody
from pamqp import commands as C
from pamqp import frame as pframe
from pamqp import header as pheader
from pamqp import heartbeat as pheartbeat
from warren.protocol.reader import unfuse


@functools.cache
def unvalidated(cls: type) -> type:
    """A subclass of a pamqp method that skips ``validate()``, so random unicode names
    (which pamqp's name regexes refuse, but the wire format allows) can be marshalled."""
    return type(cls.__name__, (cls,), {"validate": lambda self: None})


def build(cls: type, **kw):
    m = unvalidated(cls)()
    for k, v in kw.items():
        setattr(m, k, v)
    return m


def _trim255(s: str) -> str:
    return s.encode()[:255].decode(errors="ignore")


#: unicode shortstrs, up to 255 bytes encoded (often exactly at the limit)
shortstrs = st.one_of(
    st.text(max_size=20),
    st.text(min_size=60, max_size=255).map(_trim255),
    st.just(""),
)
channels = st.integers(0, 65535)
open_channels = st.integers(1, 65535)
u64 = st.integers(0, 2**64 - 1)
u32 = st.integers(0, 2**32 - 1)
u16 = st.integers(0, 2**16 - 1)

table_keys = st.text(max_size=20).filter(lambda k: len(k.encode()) <= 128)
table_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(width=32, allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
    st.binary(max_size=40).map(bytearray),
    st.decimals(places=2, min_value=-(10**6), max_value=10**6, allow_nan=False, allow_infinity=False),
)
tables = st.recursive(
    st.dictionaries(table_keys, table_scalars, max_size=5),
    lambda inner: st.dictionaries(
        table_keys, st.one_of(table_scalars, inner, st.lists(table_scalars, max_size=4)), max_size=4
    ),
    max_leaves=12,
)
opt_str = st.one_of(st.none(), shortstrs)


@st.composite
def properties(draw) -> C.Basic.Properties:
    """Random Basic.Properties; delivery_mode/priority are any octet (pamqp's
    validate() would refuse delivery_mode outside 1..2, the wire does not)."""
    p = C.Basic.Properties()
    p.content_type = draw(opt_str)
    p.content_encoding = draw(opt_str)
    p.headers = draw(st.one_of(st.none(), tables))
    p.delivery_mode = draw(st.one_of(st.none(), st.integers(0, 255)))
    p.priority = draw(st.one_of(st.none(), st.integers(0, 255)))
    p.correlation_id = draw(opt_str)
    p.reply_to = draw(opt_str)
    p.expiration = draw(opt_str)
    p.message_id = draw(opt_str)
    p.timestamp = draw(
        st.one_of(
            st.none(),
            st.integers(0, 2**32).map(
                lambda s: datetime.datetime.fromtimestamp(s, tz=datetime.UTC).replace(tzinfo=None)
            ),
        )
    )
    p.message_type = draw(opt_str)
    p.user_id = draw(opt_str)
    p.app_id = draw(opt_str)
    return p


# ---------------------------------------------------------------- whole frames as (channel, pamqp value)
publishes = st.builds(
    lambda ex, rk, mandatory, immediate: build(
        C.Basic.Publish, ticket=0, exchange=ex, routing_key=rk, mandatory=mandatory, immediate=immediate
    ),
    shortstrs,
    shortstrs,
    st.booleans(),
    st.booleans(),
)
#: delivery tags for pamqp, which packs longlong as signed: -2**63..2**63-1 covers
#: every unsigned 64-bit tag on the wire (see test_hotpath.as_pamqp_longlong)
s64 = st.integers(-(2**63), 2**63 - 1)
acks = st.builds(lambda t, m: C.Basic.Ack(delivery_tag=t, multiple=m), s64, st.booleans())
nacks = st.builds(
    lambda t, m, r: C.Basic.Nack(delivery_tag=t, multiple=m, requeue=r), s64, st.booleans(), st.booleans()
)
rejects = st.builds(lambda t, r: C.Basic.Reject(delivery_tag=t, requeue=r), s64, st.booleans())
content_headers = st.builds(
    lambda size, props: pheader.ContentHeader(0, size, props), st.integers(0, 2**64 - 1), properties()
)
content_bodies = st.binary(min_size=1, max_size=300).map(pbody.ContentBody)

other_methods = st.one_of(
    st.builds(
        lambda q, d, e, a, args: build(
            C.Queue.Declare, ticket=0, queue=q, passive=False, durable=d, exclusive=e,
            auto_delete=a, nowait=False, arguments=args,
        ),
        shortstrs, st.booleans(), st.booleans(), st.booleans(), tables,
    ),
    st.builds(
        lambda q, tag, na, ex, args: build(
            C.Basic.Consume, ticket=0, queue=q, consumer_tag=tag, no_local=False, no_ack=na,
            exclusive=ex, nowait=False, arguments=args,
        ),
        shortstrs, shortstrs, st.booleans(), st.booleans(), tables,
    ),
    st.builds(
        lambda size, count, g: C.Basic.Qos(prefetch_size=size, prefetch_count=count, global_=g),
        u32, u16, st.booleans(),
    ),
    st.builds(
        lambda ex, t, d, args: build(
            C.Exchange.Declare, ticket=0, exchange=ex, exchange_type=t, passive=False, durable=d,
            auto_delete=False, internal=False, nowait=False, arguments=args,
        ),
        shortstrs, shortstrs, st.booleans(), tables,
    ),
    st.builds(
        lambda q, ex, rk, args: build(
            C.Queue.Bind, ticket=0, queue=q, exchange=ex, routing_key=rk, nowait=False, arguments=args
        ),
        shortstrs, shortstrs, shortstrs, tables,
    ),
    st.builds(lambda q, na: build(C.Basic.Get, ticket=0, queue=q, no_ack=na), shortstrs, st.booleans()),
    st.builds(lambda tag: build(C.Basic.Cancel, consumer_tag=tag, nowait=False), shortstrs),
    st.builds(lambda r: C.Basic.Recover(requeue=r), st.booleans()),
    st.builds(
        lambda code, text, c, m: build(
            C.Channel.Close, reply_code=code, reply_text=text, class_id=c, method_id=m
        ),
        u16, shortstrs, u16, u16,
    ),
    st.just(C.Channel.Open()),
    st.just(C.Channel.CloseOk()),
    st.builds(lambda nw: C.Confirm.Select(nowait=nw), st.booleans()),
    st.just(C.Tx.Select()),
    st.just(C.Tx.Commit()),
    st.builds(lambda a: C.Channel.Flow(active=a), st.booleans()),
)

channel_frames = st.tuples(
    open_channels,
    st.one_of(publishes, acks, nacks, rejects, content_headers, content_bodies, other_methods),
)
heartbeats = st.just((0, pheartbeat.Heartbeat()))
any_frames = st.one_of(channel_frames, channel_frames, heartbeats)
frame_lists = st.lists(any_frames, max_size=12)


def marshal(frames: list[tuple[int, object]]) -> bytes:
    return b"".join(pframe.marshal(value, ch) for ch, value in frames)


@st.composite
def chunkings(draw, data: bytes) -> list[bytes]:
    """``data`` split at random offsets (including empty chunks and single bytes)."""
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=12)))
    if draw(st.booleans()) and len(data) < 200:
        cuts = list(range(len(data) + 1))  # byte by byte
    out, prev = [], 0
    for c in cuts:
        out.append(data[prev:c])
        prev = c
    out.append(data[prev:])
    return out


def feed_all(reader, chunks: list[bytes]) -> list[tuple]:
    """Everything the reader yields, with fused K_MESSAGE tuples expanded (fusion depends
    on how the bytes were chunked; what they stand for must not)."""
    out: list[tuple] = []
    for c in chunks:
        out.extend(reader.feed(c))
    return unfuse(out)


def normalize(t: tuple) -> tuple:
    """Reader tuple -> comparable plain values (bytes for views, bools for bits,
    slot dicts for pamqp methods, (code, text, ids) for errors)."""
    from warren.protocol.errors import FrameError

    out = []
    for v in t:
        if isinstance(v, memoryview | bytearray):
            v = bytes(v)
        elif isinstance(v, FrameError):
            v = ("FrameError", v.code, v.text, v.class_id, v.method_id)
        elif hasattr(v, "__slots__") and hasattr(v, "name"):
            v = (v.name, method_fields(v))
        out.append(v)
    return tuple(out)


def method_fields(m) -> dict:
    return {k: getattr(m, k, None) for k in m.__slots__}


