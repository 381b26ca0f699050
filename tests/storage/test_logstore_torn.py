"""Torn writes and corruption: reopening never raises and yields exactly the intact prefix.

A pristine log (several segments, persistent and transient records, some
acked) is built once per test; each case copies it, truncates a segment at a
byte offset or flips one byte, reopens it and compares what comes out with
what must survive: every live record of the other segments, and in the damaged
segment only the live records that end at or before the damage.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import shutil
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from logstore_helpers import drain_nums, enc, open_store, rec
from warren.storage.log.format import RECORD_HEADER, SEGMENT_HEADER, segment_name

OPTS = {"segment_size": 2048, "cache_records": 4}


@dataclasses.dataclass
class Written:
    i: int
    segment: int
    offset: int
    end: int
    live: bool  # persistent and not acked: must come back if intact


def build(path: Path, seed: int = 7) -> list[Written]:
    rnd = random.Random(seed)
    s = open_store(path, **OPTS)
    written = []
    for i in range(400):
        r = rec(i, persistent=rnd.random() < 0.8, pad=rnd.randrange(60))
        p = s.push(r)
        off = p & 0xFFFFFFFF
        written.append(Written(i, p >> 32, off, off + RECORD_HEADER + len(enc(r)), r.persistent))
    by_i = {w.i: w for w in written}
    for _ in range(150):
        p, r = s.shift()
        if rnd.random() < 0.5:
            s.ack(p)
            by_i[int(r.payload[:8])].live = False
    s.close()
    return written


def expected(written: list[Written], segment: int, damage_at: int) -> list[int]:
    """Live records that survive damage at byte ``damage_at`` of ``segment``."""
    out = []
    for w in written:
        if w.segment == segment and (damage_at < SEGMENT_HEADER or w.end > damage_at):
            continue
        if w.live:
            out.append(w.i)
    return out


def reopen_and_read(path: Path) -> list[int]:
    s = open_store(path, **OPTS)
    n = len(s)
    got = drain_nums(s)
    assert n == len(got)
    s.close()
    return got


class Pristine:
    """A built log and a supply of fresh copies of it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.src = root / "pristine"
        self.written = build(self.src)
        self.segments = sorted({w.segment for w in self.written})
        self.n = 0

    def copy(self) -> Path:
        self.n += 1
        dst = self.root / f"case-{self.n}"
        shutil.copytree(self.src, dst)
        return dst

    def size(self, segment: int) -> int:
        return (self.src / segment_name(segment)).stat().st_size


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Pristine:
    return Pristine(tmp_path_factory.mktemp("torn"))


def truncate(path: Path, segment: int, at: int) -> None:
    f = path / segment_name(segment)
    with open(f, "r+b") as fh:
        fh.truncate(at)


def flip(path: Path, segment: int, at: int, mask: int) -> None:
    f = path / segment_name(segment)
    data = bytearray(f.read_bytes())
    data[at] ^= mask
    f.write_bytes(bytes(data))


def test_pristine_log_reads_back_whole(pristine: Pristine) -> None:
    assert len(pristine.segments) > 5
    d = pristine.copy()
    assert reopen_and_read(d) == [w.i for w in pristine.written if w.live]


def test_truncation_at_every_record_boundary_and_inside(
    pristine: Pristine, caplog: pytest.LogCaptureFixture
) -> None:
    """Deterministic sweep over the last segment (the usual torn tail)."""
    seg = pristine.segments[-1]
    size = pristine.size(seg)
    ends = [w.end for w in pristine.written if w.segment == seg]
    cuts = sorted(
        {0, 1, SEGMENT_HEADER - 1, SEGMENT_HEADER, size - 1, size}
        | set(ends)
        | {e - 1 for e in ends}
        | {e - RECORD_HEADER + 2 for e in ends}
    )
    for at in cuts:
        d = pristine.copy()
        truncate(d, seg, at)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="warren.storage"):
            assert reopen_and_read(d) == expected(pristine.written, seg, at), at
        torn = 0 < at < size and at not in ends and at != SEGMENT_HEADER
        if torn:
            msgs = [r.getMessage() for r in caplog.records]
            assert any(segment_name(seg) in m and "bytes" in m for m in msgs), (at, msgs)
            # the tail is truncated away (or the segment removed): a second
            # recovery finds nothing more to drop
            caplog.clear()
            with caplog.at_level(logging.WARNING, logger="warren.storage"):
                assert reopen_and_read(d) == expected(pristine.written, seg, at)
            assert not caplog.records


def test_torn_tail_log_says_file_offset_bytes(
    pristine: Pristine, caplog: pytest.LogCaptureFixture
) -> None:
    seg = pristine.segments[-1]
    w = next(w for w in pristine.written if w.segment == seg and w.offset > SEGMENT_HEADER)
    d = pristine.copy()
    truncate(d, seg, w.offset + 5)
    with caplog.at_level(logging.WARNING, logger="warren.storage"):
        reopen_and_read(d)
    [msg] = [r.getMessage() for r in caplog.records]
    assert str(d / segment_name(seg)) in msg
    assert f"offset {w.offset}" in msg and "(5 bytes)" in msg


@settings(max_examples=150, deadline=None, derandomize=True)
@given(data=st.data())
def test_random_truncation(pristine: Pristine, data: st.DataObject) -> None:
    seg = data.draw(st.sampled_from(pristine.segments))
    at = data.draw(st.integers(0, pristine.size(seg)))
    d = pristine.copy()
    truncate(d, seg, at)
    assert reopen_and_read(d) == expected(pristine.written, seg, at)
    shutil.rmtree(d)


@settings(max_examples=150, deadline=None, derandomize=True)
@given(data=st.data())
def test_random_byte_flip(pristine: Pristine, data: st.DataObject) -> None:
    seg = data.draw(st.sampled_from(pristine.segments))
    at = data.draw(st.integers(0, pristine.size(seg) - 1))
    mask = data.draw(st.integers(1, 255))
    d = pristine.copy()
    flip(d, seg, at, mask)
    assert reopen_and_read(d) == expected(pristine.written, seg, at)
    shutil.rmtree(d)


def test_seeded_multi_damage_then_keep_writing(pristine: Pristine) -> None:
    """Damage in several segments at once; the store stays usable and consistent."""
    rnd = random.Random(2024)
    for _case in range(20):
        d = pristine.copy()
        damage = {}
        for seg in rnd.sample(pristine.segments, 3):
            at = rnd.randrange(pristine.size(seg))
            if rnd.random() < 0.5:
                truncate(d, seg, at)
            else:
                flip(d, seg, at, rnd.randrange(1, 256))
            damage[seg] = at
        want = [
            w.i
            for w in pristine.written
            if w.live
            and not (
                w.segment in damage
                and (damage[w.segment] < SEGMENT_HEADER or w.end > damage[w.segment])
            )
        ]
        s = open_store(d, **OPTS)
        got = [s.shift() for _ in range(len(want) // 2)]
        assert [int(r.payload[:8]) for _p, r in got] == want[: len(want) // 2]
        s.push(rec(5000))
        s.close()
        assert reopen_and_read(d) == want + [5000]
        shutil.rmtree(d)


def test_garbage_ack_file_is_tolerated(pristine: Pristine) -> None:
    d = pristine.copy()
    seg = pristine.segments[0]
    ack = d / segment_name(seg).replace(".wlog", ".acks")
    # offsets that are no record start, an unsorted order, and a torn last entry
    ack.write_bytes(ack.read_bytes()[::-1][:4] + (3).to_bytes(4, "little") + b"\x01\x02")
    s = open_store(d, **OPTS)
    s.drain()
    s.close()
