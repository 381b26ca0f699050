"""The reader's C fast path (protocol/_framescan.c) against the Python reader it stands
in for: for the same bytes, however chunked, valid, mutated or random, both yield the
same tuples (same kinds, values and types, fused where the Python fuses) and the same
error, and keep the same bytes buffered."""

from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pamqp import body as pbody
from pamqp import commands as C
from pamqp import frame as pframe
from pamqp import header as pheader
from warren.protocol import reader as reader_mod
from warren.protocol.reader import FrameReader

from tests.protocol._strategies import chunkings, frame_lists, marshal, normalize
from tests.protocol.test_reader_fuzz import mutate

SETTINGS = settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
C_SCAN = reader_mod._scan


def test_the_extension_is_built() -> None:
    """CI builds it (pip install -e .): the tests below must compare two readers, not one."""
    assert C_SCAN is not None, "warren.protocol._framescan was not built (a C compiler is needed)"


def feed(chunks: list[bytes], frame_max: int, use_c: bool) -> tuple[list[tuple], int, bool]:
    saved = reader_mod._scan
    reader_mod._scan = C_SCAN if use_c else None
    try:
        r = FrameReader(frame_max)
        out: list[tuple] = []
        for c in chunks:
            out.extend(r.feed(c))
        return out, r.buffered, r.broken
    finally:
        reader_mod._scan = saved


def same(chunks: list[bytes], frame_max: int = 1 << 20) -> None:
    py_out, py_buf, py_broken = feed(chunks, frame_max, use_c=False)
    c_out, c_buf, c_broken = feed(chunks, frame_max, use_c=True)
    assert [normalize(t) for t in c_out] == [normalize(t) for t in py_out]
    assert [[type(v) for v in t] for t in c_out] == [[type(v) for v in t] for t in py_out]
    assert (c_buf, c_broken) == (py_buf, py_broken)


def publish(ch: int, ex: str, rk: str, body: bytes, bits: int = 0, props: C.Basic.Properties | None = None) -> bytes:
    # by hand: pamqp refuses the exchange names (any UTF-8) RabbitMQ's reader takes
    exb, rkb = ex.encode(), rk.encode()
    payload = struct.pack(">IH", 0x3C0028, 0) + bytes([len(exb)]) + exb + bytes([len(rkb)]) + rkb + bytes([bits])
    out = struct.pack(">BHI", 1, ch, len(payload)) + payload + b"\xce"
    out += pframe.marshal(pheader.ContentHeader(0, len(body), props or C.Basic.Properties()), ch)
    if body:
        out += pframe.marshal(pbody.ContentBody(body), ch)
    return out


# the comparisons need the extension; test_the_extension_is_built (not skipped) fails without it
needs_c = pytest.mark.skipif(C_SCAN is None, reason="the C extension is not built")


@needs_c
def test_steady_state_publishes_and_acks() -> None:
    raw = b"".join(
        publish(1, "", f"q{i}", bytes([i % 256]) * (i * 37 % 2000), bits=i % 4,
                props=C.Basic.Properties(delivery_mode=2, headers={"k": i}))
        + pframe.marshal(C.Basic.Ack(delivery_tag=i + 1, multiple=bool(i % 2)), 2)
        for i in range(200)
    )
    same([raw])
    out, _, _ = feed([raw], 1 << 20, use_c=True)
    assert [t[0] for t in out[:2]] == [reader_mod.K_MESSAGE, reader_mod.K_ACK]
    # split anywhere: a partial message waits for its rest in both
    for cut in range(0, 400, 7):
        same([raw[:cut], raw[cut:]])


@needs_c
def test_utf8_names_and_empty_body() -> None:
    same([publish(3, "ex-é", "rk-日本", b"") + publish(3, "", "", b"x")])
    # not UTF-8 in the routing key: the Python reader's error, from both
    bad = bytearray(publish(1, "", "ab", b"zz"))
    bad[7 + 4 + 2 + 1 + 1] = 0xFF  # the routing key's first octet
    same([bytes(bad)])


@needs_c
@pytest.mark.parametrize("frame_max", [4096, 131072])
def test_oversized_and_broken_frames(frame_max: int) -> None:
    big = publish(1, "", "q", b"y" * 5000)
    same([big], frame_max)
    ack = pframe.marshal(C.Basic.Ack(delivery_tag=7), 1)
    same([ack[:-1] + b"\x00"], frame_max)  # bad frame end
    same([ack[:6] + b"\x0e" + ack[7:-1] + b"\x00\xce"], frame_max)  # ack one octet long
    hdr = struct.pack(">BHI", 1, 1, 2**32 - 1)
    same([hdr], frame_max)


@needs_c
@SETTINGS
@given(st.data(), frame_lists)
def test_valid_streams(data, frames) -> None:
    raw = marshal(frames)
    same(data.draw(chunkings(raw)))
    same([raw])


@needs_c
@SETTINGS
@given(st.data(), frame_lists.filter(bool))
def test_mutated_streams(data, frames) -> None:
    bad = mutate(marshal(frames), data.draw)
    same(data.draw(chunkings(bad)))
    same([bad], frame_max=4096)


@needs_c
@SETTINGS
@given(st.data(), st.binary(max_size=300))
def test_random_bytes(data, raw) -> None:
    same(data.draw(chunkings(raw)))
