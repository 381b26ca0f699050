"""The hand-written hot path is byte-for-byte pamqp (DESIGN.md, principle 2).

Encoders (protocol.hotpath) are compared with ``pamqp.frame.marshal``; the reader's
fast path (protocol.reader) with ``pamqp.frame.unmarshal``; the property scan
(protocol.properties) with ``pamqp.header.ContentHeader.unmarshal``.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pamqp import body as pbody
from pamqp import commands as C
from pamqp import encode as pencode
from pamqp import frame as pframe
from pamqp import header as pheader
from pamqp import heartbeat as pheartbeat
from warren.protocol import hotpath, properties
from warren.protocol.constants import (
    K_ACK,
    K_BODY,
    K_HEADER,
    K_HEARTBEAT,
    K_METHOD,
    K_NACK,
    K_PUBLISH,
    K_REJECT,
)
from warren.protocol.reader import FrameReader

from tests.protocol._strategies import (
    any_frames,
    build,
    channels,
    chunkings,
    feed_all,
    frame_lists,
    marshal,
    method_fields,
    shortstrs,
    u32,
    u64,
)
from tests.protocol._strategies import (
    properties as props_strategy,
)

SETTINGS = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)


def pamqp_frame(value, channel: int) -> bytes:
    return pframe.marshal(value, channel)


def as_pamqp_longlong(tag: int) -> int:
    """pamqp packs and unpacks ``longlong`` as *signed* (``>q``); the spec and the hot
    path use unsigned (``>Q``). The bytes are the same for tag and tag - 2**64, so
    delivery tags >= 2**63 are handed to pamqp in two's complement."""
    return tag - 2**64 if tag >= 2**63 else tag


def from_pamqp_longlong(tag: int) -> int:
    return tag % 2**64


# ====================================================================== encoders


@SETTINGS
@given(channels, shortstrs, u64, st.booleans(), shortstrs, shortstrs)
def test_deliver_frame_equals_pamqp(channel, ctag, tag, redelivered, exchange, routing_key):
    exrk = hotpath.shortstr(exchange) + hotpath.shortstr(routing_key)
    ours = hotpath.deliver_frame(channel, hotpath.deliver_prefix(ctag), tag, redelivered, exrk)
    theirs = pamqp_frame(
        build(
            C.Basic.Deliver,
            consumer_tag=ctag,
            delivery_tag=as_pamqp_longlong(tag),
            redelivered=redelivered,
            exchange=exchange,
            routing_key=routing_key,
        ),
        channel,
    )
    assert ours == theirs


@SETTINGS
@given(channels, u64, st.booleans(), shortstrs, shortstrs, u32)
def test_get_ok_frame_equals_pamqp(channel, tag, redelivered, exchange, routing_key, count):
    exrk = hotpath.shortstr(exchange) + hotpath.shortstr(routing_key)
    ours = hotpath.get_ok_frame(channel, tag, redelivered, exrk, count)
    theirs = pamqp_frame(
        build(
            C.Basic.GetOk,
            delivery_tag=as_pamqp_longlong(tag),
            redelivered=redelivered,
            exchange=exchange,
            routing_key=routing_key,
            message_count=count,
        ),
        channel,
    )
    assert ours == theirs


@SETTINGS
@given(
    channels,
    props_strategy(),
    st.one_of(st.binary(max_size=64), st.binary(min_size=1000, max_size=20000)),
    st.integers(4096, 140000) | st.integers(9, 600),
)
def test_content_frames_equal_pamqp(channel, props, body, frame_max):
    max_body = frame_max - 8
    header_payload = pheader.ContentHeader(0, len(body), props).marshal()
    ours = b"".join(bytes(p) for p in hotpath.content_frames(channel, header_payload, body, max_body))
    theirs = [pamqp_frame(pheader.ContentHeader(0, len(body), props), channel)]
    for off in range(0, len(body), max_body):
        theirs.append(pamqp_frame(pbody.ContentBody(body[off : off + max_body]), channel))
    assert ours == b"".join(theirs)
    # and no frame exceeds frame_max
    pos = 0
    while pos < len(ours):
        size = int.from_bytes(ours[pos + 3 : pos + 7], "big")
        assert size + 8 <= max(frame_max, len(header_payload) + 8)
        pos += size + 8


@SETTINGS
@given(channels, u64, st.booleans())
def test_confirm_ack_equals_pamqp(channel, tag, multiple):
    assert hotpath.confirm_ack_frame(channel, tag, multiple) == pamqp_frame(
        C.Basic.Ack(delivery_tag=as_pamqp_longlong(tag), multiple=multiple), channel
    )


@SETTINGS
@given(channels, u64, st.booleans(), st.booleans())
def test_confirm_nack_equals_pamqp(channel, tag, multiple, requeue):
    assert hotpath.confirm_nack_frame(channel, tag, multiple, requeue) == pamqp_frame(
        C.Basic.Nack(delivery_tag=as_pamqp_longlong(tag), multiple=multiple, requeue=requeue), channel
    )


def test_heartbeat_equals_pamqp():
    assert hotpath.heartbeat_frame() == pamqp_frame(pheartbeat.Heartbeat(), 0)


@SETTINGS
@given(shortstrs)
def test_shortstr_equals_pamqp(s):
    assert hotpath.shortstr(s) == pencode.short_string(s)


def test_shortstr_refuses_256_bytes():
    with pytest.raises(ValueError):
        hotpath.shortstr("é" * 128)
    assert len(hotpath.shortstr("é" * 127 + "a")) == 256


# ====================================================================== reader fast path


def expected_tuple(channel: int, value) -> tuple:
    """What FrameReader yields for one frame, derived from pamqp's decode."""
    if isinstance(value, pheartbeat.Heartbeat):
        return (K_HEARTBEAT, channel)
    if isinstance(value, pheader.ContentHeader):
        return (K_HEADER, channel, value.class_id, value.body_size)
    if isinstance(value, pbody.ContentBody):
        return (K_BODY, channel, bytes(value.value))
    if isinstance(value, C.Basic.Publish):
        exrk = pencode.short_string(value.exchange) + pencode.short_string(value.routing_key)
        return (K_PUBLISH, channel, value.exchange, value.routing_key, value.mandatory, value.immediate, exrk)
    if isinstance(value, C.Basic.Ack):
        return (K_ACK, channel, from_pamqp_longlong(value.delivery_tag), value.multiple)
    if isinstance(value, C.Basic.Nack):
        return (K_NACK, channel, from_pamqp_longlong(value.delivery_tag), value.multiple, value.requeue)
    if isinstance(value, C.Basic.Reject):
        return (K_REJECT, channel, from_pamqp_longlong(value.delivery_tag), value.requeue)
    return (K_METHOD, channel, value.name, method_fields(value))


def reader_tuple(t: tuple) -> tuple:
    """A reader tuple in expected_tuple's shape (bits as bools, views as bytes)."""
    kind = t[0]
    if kind == K_HEADER:
        return t[:4]
    if kind == K_BODY:
        return (K_BODY, t[1], bytes(t[2]))
    if kind == K_PUBLISH:
        return (K_PUBLISH, t[1], t[2], t[3], bool(t[4]), bool(t[5]), bytes(t[6]))
    if kind in (K_ACK, K_REJECT):
        return (kind, t[1], t[2], bool(t[3]))
    if kind == K_NACK:
        return (K_NACK, t[1], t[2], bool(t[3]), bool(t[4]))
    if kind == K_METHOD:
        return (K_METHOD, t[1], t[2].name, method_fields(t[2]))
    return t


def pamqp_decode_stream(data: bytes) -> list[tuple[int, object, bytes]]:
    """(channel, value, raw payload) for each frame, decoded by pamqp."""
    out = []
    pos = 0
    while pos < len(data):
        n, ch, value = pframe.unmarshal(data[pos:])
        out.append((ch, value, data[pos + 7 : pos + n - 1]))
        pos += n
    return out


@settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@given(st.data(), frame_lists)
def test_reader_equals_pamqp_unmarshal(data, frames):
    stream = marshal(frames)
    chunks = data.draw(chunkings(stream))
    reader = FrameReader(frame_max=1 << 20)
    got = feed_all(reader, chunks)
    decoded = pamqp_decode_stream(stream)
    assert len(got) == len(decoded)
    assert reader.buffered == 0
    for t, (ch, value, raw) in zip(got, decoded, strict=True):
        assert reader_tuple(t) == expected_tuple(ch, value)
        if t[0] == K_HEADER:
            # the raw header payload is kept verbatim and decodes to pamqp's properties
            assert bytes(t[4]) == raw
            h = pheader.ContentHeader()
            h.unmarshal(bytes(t[4]))
            assert h.properties == value.properties


@SETTINGS
@given(any_frames)
def test_single_frame_whole(frame):
    ch, value = frame
    raw = pframe.marshal(value, ch)
    got = FrameReader(frame_max=1 << 20).feed(raw)
    _, uch, uvalue = pframe.unmarshal(raw)
    assert [reader_tuple(t) for t in got] == [expected_tuple(uch, uvalue)]


def test_empty_body_frame():
    # pamqp cannot unmarshal a zero-length body frame; the reader yields an empty body
    got = FrameReader().feed(b"\x03\x00\x05\x00\x00\x00\x00\xce")
    assert [reader_tuple(t) for t in got] == [(K_BODY, 5, b"")]


# ====================================================================== property scan


def _headers_len(headers) -> int:
    return len(pencode.field_table(headers)) - 4


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(props_strategy(), st.integers(0, 2**64 - 1))
def test_scan_equals_pamqp(props, body_size):
    payload = pheader.ContentHeader(0, body_size, props).marshal()
    decoded = pheader.ContentHeader()
    decoded.unmarshal(payload)
    p = decoded.properties
    s = properties.scan(payload)
    flags = int.from_bytes(payload[12:14], "big")
    assert s.flags == flags
    assert s.delivery_mode == (p.delivery_mode or 0)
    assert s.priority == (p.priority or 0)
    assert s.expiration == p.expiration
    assert s.reply_to == p.reply_to
    assert s.user_id == p.user_id
    assert s.message_id == p.message_id
    assert s.headers_len == (_headers_len(p.headers) if p.headers is not None else 0)
    # scan reads up to user-id; a header cut short before its end is refused
    # (app-id, the one property after user-id, is not scanned)
    if flags and not flags & properties.F_APP_ID:
        cut = len(payload) - 1
        if cut >= 14:
            with pytest.raises(ValueError):
                properties.scan(payload[:cut])


def test_scan_empty_flags():
    payload = pheader.ContentHeader(0, 5, C.Basic.Properties()).marshal()
    s = properties.scan(payload)
    assert s.flags == 0 and s.delivery_mode == 0 and s.priority == 0 and s.expiration is None


@SETTINGS
@given(
    st.integers(0, 65535),
    st.text(max_size=60),
    st.integers(0, 2**64 - 1),
    st.booleans(),
    st.binary(max_size=40),
    st.binary(min_size=14, max_size=80),
    st.binary(max_size=3000),
    st.integers(9, 2000),
)
def test_deliver_parts_equal_deliver_frame_plus_content_frames(ch, ctag, tag, red, exrk, header, body, max_body):
    from warren.protocol.hotpath import content_frames, deliver_frame, deliver_parts, deliver_prefix

    prefix = deliver_prefix(ctag[:50])
    want = deliver_frame(ch, prefix, tag, red, exrk) + b"".join(content_frames(ch, header, body, max_body))
    assert b"".join(deliver_parts(ch, prefix, tag, red, exrk, header, body, max_body)) == want
