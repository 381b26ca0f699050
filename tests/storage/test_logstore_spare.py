"""Recycled segment files (storage.log.spare) and the seeded CRCs that make them safe.

A drained segment's file becomes the next segment's, overwritten in place: past the new
records it still holds old ones whose CRCs were valid. These tests make that happen and
check that neither recovery (after a clean close or from a crash image) nor a resync
scan racing the recycle ever returns an old record as a new one.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import struct

import pytest
from warren.storage.log import spare as spare_mod
from warren.storage.log.crc import crc32
from warren.storage.log.format import (
    LEN_CRC,
    MAGIC_RECYCLED,
    MAGIC_V1,
    META,
    SEGMENT_SHIFT,
    segment_name,
)
from warren.storage.log.scan import scan_records
from warren.storage.log.spare import SPARE_NAME

from tests.storage.logstore_helpers import Results, dec, drain_nums, enc, num, open_store, rec

pytestmark = pytest.mark.timeout(30)

SEG = 4096
PAD = 100  # 13 + 1 + 108 bytes a record: 33 records a segment


async def synced(store) -> None:
    done = Results()
    store.sync(done)
    assert await done.until(1) == [True]


def push_until_segment(store, sid: int, first: int, extra: int) -> list[int]:
    """Push records numbered from ``first`` until ``extra`` of them are in segment ``sid``;
    their numbers."""
    nums, i, inside = [], first, 0
    while inside < extra:
        pos = store.push(rec(i, pad=PAD))
        nums.append(i)
        if pos >> SEGMENT_SHIFT == sid:
            inside += 1
        i += 1
    return nums


def take_all(store, n: int) -> None:
    for _ in range(n):
        pos, _r = store.shift()
        store.ack(pos)


async def test_a_drained_segment_is_recycled_and_its_old_records_never_come_back(tmp_path, caplog):
    d = tmp_path / "q"
    store = open_store(d, segment_size=SEG, cache_records=0)
    old = push_until_segment(store, 2, 0, 1)  # segment 1 full, one record in segment 2
    await synced(store)
    inode = (d / segment_name(1)).stat().st_ino
    take_all(store, len(old))
    # segment 1 is drained: its file waits as the spare, not unlinked
    assert not (d / segment_name(1)).exists()
    assert (d / SPARE_NAME).stat().st_ino == inode

    new = push_until_segment(store, 3, len(old), 3)  # fills segment 2, 3 records in segment 3
    await synced(store)
    assert not (d / SPARE_NAME).exists()
    seg3 = d / segment_name(3)
    assert seg3.stat().st_ino == inode  # the same file, overwritten from offset 0
    assert seg3.stat().st_size > SEG // 2  # ... still holding old records past the new ones
    assert seg3.read_bytes()[:8] == MAGIC_RECYCLED

    crash = tmp_path / "crash"
    store.flush_acks()
    shutil.copytree(d, crash)  # what a kill -9 now would leave (everything was written)
    store.close()
    assert not (d / SPARE_NAME).exists()  # never kept across a restart

    for where in (d, crash):
        with caplog.at_level(logging.WARNING, logger="warren.storage"):
            again = open_store(where, segment_size=SEG)
        assert drain_nums(again) == new  # not one of segment 1's old records
        assert not caplog.records  # the old records past the new: expected, no warning
        again.close()


async def test_scan_racing_a_recycle_returns_only_what_the_plan_saw(tmp_path):
    """A resync reads a plan's files in another thread while the loop goes on: a segment
    drained and recycled meanwhile is overwritten under the scan's map."""
    d = tmp_path / "q"
    store = open_store(d, segment_size=SEG, cache_records=0)
    old = push_until_segment(store, 2, 0, 1)
    await synced(store)
    by_pos = {}
    plan = store.scan_plan()
    scan = scan_records(plan, batch_bytes=1)  # one record a batch
    first = next(scan)  # segment 1's file is open and mapped now
    take_all(store, len(old))
    push_until_segment(store, 3, len(old), 30)  # segment 3 = segment 1's file, rewritten
    await synced(store)
    assert (d / segment_name(3)).exists() and not (d / SPARE_NAME).exists()
    seen = first + [r for batch in scan for r in batch]
    for pos, raw in seen:
        by_pos[pos] = num(dec(raw))
    # whatever the scan returned is exactly what the plan's segments held at those
    # positions; it stopped in segment 1 where the new records began
    assert list(by_pos.values()) == sorted(by_pos.values())
    in_first = [p for p in by_pos if p >> SEGMENT_SHIFT == 1]
    assert 1 <= len(in_first) < 33
    assert all(by_pos[p] == i for i, p in enumerate(sorted(in_first)))
    store.close()


async def test_version_1_segments_are_read_and_never_recycled(tmp_path):
    """Segments written before the CRCs were seeded (version 1) recover as before; drained,
    they are deleted, not recycled (an old header not yet overwritten by a crash would
    let their records pass as new)."""
    d = tmp_path / "q"
    d.mkdir()
    body = bytearray(MAGIC_V1)
    for i in range(40):  # more than half a segment
        payload = enc(rec(i, pad=PAD))
        meta = META.pack(1, len(payload) - 1)
        body += LEN_CRC.pack(len(payload), crc32(payload, crc32(meta))) + meta + payload
    (d / segment_name(1)).write_bytes(body)
    store = open_store(d, segment_size=SEG)
    assert len(store) == 40
    take_all(store, 40)
    assert not (d / segment_name(1)).exists()
    assert not (d / SPARE_NAME).exists()
    store.close()


async def store_with_spare(d):
    """A store whose first segment was filled, synced and drained: its file is the spare."""
    store = open_store(d, segment_size=SEG, cache_records=0)
    old = push_until_segment(store, 2, 0, 1)
    await synced(store)
    take_all(store, len(old))
    return store, old


async def test_a_spare_not_needed_within_its_ttl_is_removed(tmp_path, monkeypatch):
    monkeypatch.setattr(spare_mod, "SPARE_TTL", 0.05)
    d = tmp_path / "q"
    store, old = await store_with_spare(d)
    assert (d / SPARE_NAME).exists()
    for _ in range(500):  # the condition, bounded (the TTL timer is on this loop)
        if not (d / SPARE_NAME).exists():
            break
        await asyncio.sleep(0.01)
    assert not (d / SPARE_NAME).exists()
    # the next segment is a new file, and all is well
    new = push_until_segment(store, 3, len(old), 2)
    await synced(store)
    store.close()
    again = open_store(d, segment_size=SEG)
    assert drain_nums(again) == new
    again.close()


async def test_a_spare_left_by_a_crash_is_removed_on_open_and_delete_takes_it(tmp_path):
    d = tmp_path / "q"
    store, old = await store_with_spare(d)
    store.flush_acks()
    crash = tmp_path / "crash"
    shutil.copytree(d, crash)
    assert (crash / SPARE_NAME).exists()
    store.delete()
    assert not d.exists()
    again = open_store(crash, segment_size=SEG)
    assert not (crash / SPARE_NAME).exists()
    assert drain_nums(again) == []
    again.close()


def test_crc32_is_zlibs():
    """The fast CRC (isal, when installed) gives zlib's values, seeds included."""
    import random
    import zlib

    rnd = random.Random(7)
    for n in (0, 1, 5, 13, 100, 1024, 4099, 65536):
        data = rnd.randbytes(n)
        for seed in (0, 1, 0x9E3779B1, 0xFFFFFFFF):
            assert crc32(data, seed) == zlib.crc32(data, seed)
            assert crc32(memoryview(data)[1:], seed) == zlib.crc32(data[1:], seed)
    assert struct.pack("<I", crc32(b"warren")) == struct.pack("<I", zlib.crc32(b"warren"))


async def test_a_failed_open_after_taking_the_spare_is_retried(tmp_path, monkeypatch):
    """The spare is renamed to the new segment's name, then opening it fails (EMFILE):
    the next write opens that file, recycled, instead of failing for ever on a name
    that exists."""
    import errno
    import os as os_mod

    d = tmp_path / "q"
    store, old = await store_with_spare(d)
    assert (d / SPARE_NAME).exists()
    real_open = os_mod.open
    fails = []

    def open_once_failing(path, flags, *args):
        if str(path).endswith(segment_name(3)) and not fails:
            fails.append(path)
            raise OSError(errno.EMFILE, "Too many open files")
        return real_open(path, flags, *args)

    monkeypatch.setattr(spare_mod.os, "open", open_once_failing)
    new = push_until_segment(store, 3, len(old), 2)
    done = Results()
    store.sync(done)
    await done.until(1)  # the first try fails (the sync says so, or a later one retries)
    monkeypatch.setattr(spare_mod.os, "open", real_open)
    assert fails and (d / segment_name(3)).exists() and not (d / SPARE_NAME).exists()
    await synced(store)
    assert store.last_error is None
    assert (d / segment_name(3)).read_bytes()[:8] == MAGIC_RECYCLED
    store.close()
    again = open_store(d, segment_size=SEG)
    assert drain_nums(again) == new
    again.close()
