"""Fuzzing FrameReader: whatever the bytes and however they are split, it never
raises, ends a broken stream with one (K_ERROR, 0, FrameError) tuple, and yields
the same frames for every chunking of the same bytes."""

from __future__ import annotations

import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from warren.protocol import properties
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
from warren.protocol.errors import FrameError
from warren.protocol.reader import K_ERROR, FrameReader

from tests.protocol._strategies import chunkings, feed_all, frame_lists, marshal, normalize

SETTINGS = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
KINDS = {K_ACK, K_BODY, K_HEADER, K_HEARTBEAT, K_METHOD, K_NACK, K_PUBLISH, K_REJECT}
#: the reply codes a broken stream may be answered with
ERROR_CODES = {501, 502, 503, 505, 540}
FRAME_MAX = 4096


def run(chunks: list[bytes], frame_max: int = FRAME_MAX) -> tuple[list[tuple], FrameReader]:
    reader = FrameReader(frame_max)
    return feed_all(reader, chunks), reader


def check_invariants(out: list[tuple], reader: FrameReader) -> None:
    for t in out[:-1]:
        assert t[0] in KINDS, t
    if out and out[-1][0] == K_ERROR:
        kind, ch, err = out[-1]
        assert ch == 0
        assert isinstance(err, FrameError)
        assert err.code in ERROR_CODES, (err.code, err.text)
        assert err.reply_text.startswith(("FRAME_ERROR - ", "SYNTAX_ERROR - ", "COMMAND_INVALID - ",
                                          "UNEXPECTED_FRAME - ", "NOT_IMPLEMENTED - "))
        assert reader.broken
        assert reader.feed(b"\x08\x00\x00\x00\x00\x00\x00\xce") == []  # refuses further input
        assert reader.buffered == 0
    else:
        assert not reader.broken
        assert all(t[0] in KINDS for t in out)


def mutate(data: bytes, draw) -> bytes:
    """Flip, overwrite, insert, delete or truncate at random places."""
    b = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate", "end"]))
        if not b:
            b += draw(st.binary(min_size=1, max_size=8))
            continue
        i = draw(st.integers(0, len(b) - 1))
        if op == "flip":
            b[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "set":
            b[i] = draw(st.sampled_from([0, 1, 2, 3, 8, 0xCE, 0xFF, draw(st.integers(0, 255))]))
        elif op == "insert":
            b[i:i] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del b[i : i + draw(st.integers(1, 8))]
        elif op == "truncate":
            del b[i:]
        else:  # corrupt a frame-end octet, a favourite
            ends = [k for k, v in enumerate(b) if v == 0xCE]
            if ends:
                b[draw(st.sampled_from(ends))] = draw(st.integers(0, 0xCD))
    return bytes(b)


def frame_ends(data: bytes) -> list[int]:
    """Offsets just past each frame of a valid stream."""
    ends, pos = [], 0
    while pos < len(data):
        (size,) = struct.unpack_from(">I", data, pos + 3)
        pos += size + 8
        ends.append(pos)
    return ends


@SETTINGS
@given(st.data(), st.binary(max_size=400))
def test_random_bytes(data, raw):
    chunks = data.draw(chunkings(raw))
    out, reader = run(chunks)
    check_invariants(out, reader)
    whole, _ = run([raw])
    assert [normalize(t) for t in out] == [normalize(t) for t in whole]


@SETTINGS
@given(st.data(), st.binary(max_size=60))
def test_random_bytes_after_valid_frame_header(data, tail):
    """Random payloads behind plausible frame headers reach the per-type decoders."""
    ftype = data.draw(st.sampled_from([1, 1, 1, 2, 3, 8, 4, 0]))
    ch = data.draw(st.sampled_from([0, 1, 7]))
    method = data.draw(
        st.sampled_from(
            [b"", b"\x00\x3c\x00\x28", b"\x00\x3c\x00\x50", b"\x00\x3c\x00\x78", b"\x00\x3c\x00\x5a",
             b"\x00\x32\x00\x0a", b"\x00\x3c\x00\x14", b"\x00\x0a\x00\x0b", b"\x00\x14\x00\x0a",
             b"\x00\x3c\x03\xe7", b"\x00\x63\x00\x01"]
        )
    )
    payload = (method + tail) if ftype == 1 else tail
    raw = struct.pack(">BHI", ftype, ch, len(payload)) + payload + b"\xce"
    raw += data.draw(st.binary(max_size=20))
    out, reader = run(data.draw(chunkings(raw)))
    check_invariants(out, reader)
    whole, _ = run([raw])
    assert [normalize(t) for t in out] == [normalize(t) for t in whole]


@SETTINGS
@given(st.data(), frame_lists)
def test_valid_stream_any_chunking(data, frames):
    raw = marshal(frames)
    out, reader = run(data.draw(chunkings(raw)), frame_max=1 << 20)
    assert not reader.broken and reader.buffered == 0
    assert len(out) == len(frames)
    whole, _ = run([raw], frame_max=1 << 20)
    assert [normalize(t) for t in out] == [normalize(t) for t in whole]


@settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.data(), frame_lists.filter(bool))
def test_mutated_stream(data, frames):
    raw = marshal(frames)
    bad = mutate(raw, data.draw)
    chunks = data.draw(chunkings(bad))
    out, reader = run(chunks, frame_max=1 << 20)
    check_invariants(out, reader)
    whole, _ = run([bad], frame_max=1 << 20)
    assert [normalize(t) for t in out] == [normalize(t) for t in whole]
    # the frames wholly before the first changed byte come out unchanged
    first_diff = next((i for i, (a, b) in enumerate(zip(raw, bad, strict=False)) if a != b), min(len(raw), len(bad)))
    intact = sum(1 for e in frame_ends(raw) if e <= first_diff)
    good, _ = run([raw], frame_max=1 << 20)
    assert [normalize(t) for t in out[:intact]] == [normalize(t) for t in good[:intact]]


@SETTINGS
@given(st.data(), st.integers(4096, 140000), st.integers(0, 2**32 - 1), st.sampled_from([1, 2, 3, 8]))
def test_frame_size_limit(data, frame_max, size, ftype):
    """Payloads up to frame_max pass (RabbitMQ's 8-byte fudge); larger ones are
    refused with 501 as soon as the 7-byte frame header is in."""
    header = struct.pack(">BHI", ftype, 1, size)
    out, reader = run(data.draw(chunkings(header)), frame_max=frame_max)
    if size > frame_max:
        assert len(out) == 1 and out[0][0] == K_ERROR and out[0][2].code == 501
    else:
        assert out == [] and reader.buffered == 7


def test_errors_are_final_and_codes():
    cases = {
        b"\x01\x00\x01\x00\x00\x00\x02\x00\x3c\xce": 501,  # method frame shorter than its id
        b"\x08\x00\x01\x00\x00\x00\x00\xce": 505,  # heartbeat on a channel (RabbitMQ: 505)
        b"\x08\x00\x00\x00\x00\x00\x01x\xce": 501,  # heartbeat with a payload
        b"\x05\x00\x00\x00\x00\x00\x00\xce": 501,  # unknown frame type
        b"\x01\x00\x01\x00\x00\x00\x04\x00\x3c\x03\xe7\xce": 540,  # unknown method of class 60
        b"\x01\x00\x01\x00\x00\x00\x04\x00\x3c\x00\x28\x00": 501,  # bad frame end
        b"\x01\x00\x01\x00\x00\x00\x0c\x00\x3c\x00\x50" + b"\x00" * 8 + b"\xce": 501,  # ack w/o bits
        b"\x01\x00\x01\x00\x00\x00\x0e\x00\x3c\x00\x50" + b"\x00" * 10 + b"\xce": 501,  # ack + 1 byte
        b"\x01\x00\x01\x00\x00\x00\x0b\x00\x3c\x00\x28\x00\x00\x01\xff\x01y\x00\xce": 501,  # bad UTF-8
        b"\x02\x00\x01\x00\x00\x00\x0c" + b"\x00" * 12 + b"\xce": 501,  # content header too short
    }
    for raw, code in cases.items():
        out, reader = run([raw])
        assert out[-1][0] == K_ERROR, raw
        assert out[-1][2].code == code, (raw, out[-1][2].reply_text)
        check_invariants(out, reader)


@SETTINGS
@given(st.binary(max_size=80))
def test_scan_random_payload_only_raises_value_error(raw):
    try:
        properties.scan(raw)
    except ValueError:
        pass


@SETTINGS
@given(st.binary(min_size=12, max_size=12), st.binary(max_size=80))
def test_scan_random_properties_only_raises_value_error(prefix, tail):
    try:
        properties.scan(prefix + tail)
    except ValueError:
        pass
