"""LogStore behaviour within one run and across restarts (no crashes: see test_logstore_torn)."""

from __future__ import annotations

import asyncio
import os
import random
from pathlib import Path

import pytest
from logstore_helpers import Rec, dec, drain_nums, enc, num, open_store, rec, segment_files
from warren.storage.lanes import LanedStore
from warren.storage.log import LanedLogStore, LogStore, open_laned_log_store
from warren.storage.log.format import SEGMENT_HEADER
from warren.storage.memory import MemoryStore

# Small segments and a tiny tail cache make every test cross segment
# boundaries and read through mmap, not only from the cache.
SMALL = {"segment_size": 1024, "cache_records": 8}


def test_fifo_order_and_counts(tmp_path: Path) -> None:
    s = open_store(tmp_path, **SMALL)
    positions = [s.push(rec(i)) for i in range(500)]
    assert positions == sorted(positions) and len(set(positions)) == 500
    assert len(s) == 500 and s and s.ready_bytes == 500 * 8
    assert len(segment_files(tmp_path)) > 5
    for i in range(500):
        assert s.peek() == s.peek()
        peeked = s.peek()
        pos, r = s.shift()
        assert (pos, r) == peeked
        assert pos == positions[i] and num(r) == i
    assert s.shift() is None and s.peek() is None
    assert len(s) == 0 and not s and s.ready_bytes == 0
    s.close()


def test_interleaved_push_shift_matches_memory_store(tmp_path: Path) -> None:
    """A random mix of operations gives the same results as MemoryStore."""
    rnd = random.Random(1)
    s = open_store(tmp_path, **SMALL)
    m = MemoryStore()
    unacked: dict[int, tuple[int, Rec]] = {}  # log position -> (memory position, record)
    for i in range(5000):
        op = rnd.random()
        if op < 0.45:
            r = rec(i, persistent=rnd.random() < 0.7, pad=rnd.randrange(40))
            s.push(r)
            m.push(r)
        elif op < 0.8:
            a, b = s.shift() if s else None, m.shift()
            assert (a is None) == (b is None)
            if a is not None:
                assert a[1] == b[1]
                unacked[a[0]] = (b[0], b[1])
        elif op < 0.9 and unacked:
            pos = rnd.choice(list(unacked))
            mpos, r = unacked.pop(pos)
            s.requeue(pos, r)
            m.requeue(mpos, r)
        elif unacked:
            pos = rnd.choice(list(unacked))
            unacked.pop(pos)
            s.ack(pos)
        assert len(s) == len(m) and s.ready_bytes == m.ready_bytes
        assert (s.peek() or (0, None))[1] == (m.peek() or (0, None))[1]
    assert [r for _p, r in s.drain()] == [r for _p, r in m.drain()]
    s.close()


def test_requeue_goes_back_to_original_place(tmp_path: Path) -> None:
    s = open_store(tmp_path, **SMALL)
    for i in range(100):
        s.push(rec(i))
    taken = [s.shift() for _ in range(10)]
    # requeue out of order: they come back lowest position first, before #10
    for pos, r in reversed(taken[2:7]):
        s.requeue(pos, r)
    assert len(s) == 95
    assert s.peek()[1] == taken[2][1]
    assert drain_nums(s)[:7] == [2, 3, 4, 5, 6, 10, 11]
    s.close()


def test_requeued_record_survives_restart_in_place(tmp_path: Path) -> None:
    s = open_store(tmp_path, **SMALL)
    for i in range(50):
        s.push(rec(i))
    taken = [s.shift() for _ in range(20)]
    for pos, _r in taken[:10]:
        s.ack(pos)
    s.requeue(*taken[15])
    s.close()
    s = open_store(tmp_path, **SMALL)
    # unacked (10..19, requeued or not) come back in log order
    assert drain_nums(s) == list(range(10, 50))
    s.close()


def test_ack_deletes_fully_acked_segments(tmp_path: Path) -> None:
    s = open_store(tmp_path, **SMALL)
    for i in range(400):
        s.push(rec(i))
    s._flush_write()  # make every segment exist on disk
    n_segments = len(segment_files(tmp_path))
    assert n_segments > 5
    taken = [s.shift() for _ in range(400)]
    # acking out of order: a segment goes only when its last record is acked
    for pos, _r in taken[::2]:
        s.ack(pos)
    assert len(segment_files(tmp_path)) == n_segments
    for pos, _r in taken[1::2]:
        s.ack(pos)
    # only the segment still being written remains (and it is not on disk yet or empty)
    remaining = segment_files(tmp_path)
    assert len(remaining) <= 1
    assert not list(tmp_path.glob("seg-*.acks")) or len(list(tmp_path.glob("*.acks"))) <= 1
    s.close()
    assert segment_files(tmp_path) == []  # the fully acked write segment goes on close
    assert list(tmp_path.iterdir()) == []


def test_restart_recovers_unacked_persistent_in_order(tmp_path: Path) -> None:
    s = open_store(tmp_path, **SMALL)
    pos = {}
    for i in range(300):
        pos[i] = s.push(rec(i, persistent=i % 5 != 0, pad=i % 17))
    for _ in range(120):
        p, r = s.shift()
        if num(r) % 3 == 0:
            s.ack(p)
    limit_before = max(pos.values())
    s.close()

    s = open_store(tmp_path, **SMALL)
    expected = [i for i in range(300) if i % 5 != 0 and not (i < 120 and i % 3 == 0)]
    assert len(s) == len(expected)
    assert s.ready_bytes == sum(8 + i % 17 for i in expected)
    assert s.recovered_position_limit == pos[expected[-1]] <= limit_before
    items = [s.shift() for _ in range(len(expected))]
    assert [num(r) for _p, r in items] == expected
    assert all(r.persistent for _p, r in items)
    assert [p for p, _r in items] == [pos[i] for i in expected]  # same positions as before
    assert all(s.is_recovered(p) for p, _r in items)
    new = s.push(rec(1000))
    assert new > s.recovered_position_limit and not s.is_recovered(new)
    assert num(s.shift()[1]) == 1000
    s.close()


def test_transient_records_are_written_but_not_recovered(tmp_path: Path) -> None:
    s = open_store(tmp_path, **SMALL)
    for i in range(200):
        s.push(rec(i, persistent=False))
    s._flush_write()
    assert len(segment_files(tmp_path)) > 3  # on disk, not in RAM
    assert drain_nums(s)[:3] == [0, 1, 2]
    s.close()
    s = open_store(tmp_path, **SMALL)
    assert len(s) == 0 and s.shift() is None
    assert segment_files(tmp_path) == []  # nothing worth keeping: dropped at recovery
    s.close()


def test_positions_keep_increasing_across_restarts(tmp_path: Path) -> None:
    last = 0
    for round_ in range(4):
        s = open_store(tmp_path, **SMALL)
        assert s.recovered_position_limit == last
        for i in range(30):
            p = s.push(rec(round_ * 100 + i))
            assert p > last
            last = p
        # ack all but the newest record: the older segments go, the newest stays
        items = s.drain()
        for p, _r in items[:-1]:
            s.ack(p)
        s.close()
        assert len(segment_files(tmp_path)) == 1


def test_purge_drops_ready_keeps_unacked_and_persists(tmp_path: Path) -> None:
    s = open_store(tmp_path, **SMALL)
    for i in range(300):
        s.push(rec(i))
    taken = [s.shift() for _ in range(50)]
    s.requeue(*taken[5])
    for pos, _r in taken[:5]:
        s.ack(pos)
    # ready: #5 (requeued) and 50..299
    assert s.purge() == 251
    assert len(s) == 0 and s.ready_bytes == 0 and s.shift() is None
    assert s.purge() == 0
    s.push(rec(999))
    s.close()
    s = open_store(tmp_path, **SMALL)
    # unacked 6..49 come back (they were never acked) + the record pushed after the purge
    assert drain_nums(s) == list(range(6, 50)) + [999]
    s.close()


def test_purge_then_ack_unacked_removes_everything(tmp_path: Path) -> None:
    s = open_store(tmp_path, **SMALL)
    for i in range(300):
        s.push(rec(i))
    taken = [s.shift() for _ in range(100)]
    s.purge()
    for pos, _r in taken:
        s.ack(pos)
    s.close()
    assert segment_files(tmp_path) == []


def test_purge_after_recovery_skips_dead_records(tmp_path: Path) -> None:
    s = open_store(tmp_path, **SMALL)
    for i in range(200):
        s.push(rec(i, persistent=i % 2 == 0))
    for _ in range(30):
        p, _r = s.shift()
        s.ack(p)
    s.close()
    s = open_store(tmp_path, **SMALL)
    assert len(s) == 85
    p, r = s.shift()
    assert num(r) == 30
    assert s.purge() == 84
    s.close()
    s = open_store(tmp_path, **SMALL)
    assert drain_nums(s) == [30]
    s.close()


def test_tail_cache_is_bounded_and_disk_reads_take_over(tmp_path: Path) -> None:
    s = open_store(tmp_path, segment_size=1 << 20, cache_records=16, cache_bytes=1 << 20)
    for i in range(1000):
        s.push(rec(i))
    assert len(s._cache) == 16
    assert drain_nums(s) == list(range(1000))
    s.close()


def test_cache_byte_bound(tmp_path: Path) -> None:
    s = open_store(tmp_path, segment_size=1 << 20, cache_records=1000, cache_bytes=1000)
    for i in range(100):
        s.push(rec(i, pad=92))  # size 100
    assert len(s._cache) == 10 and s._cache_bytes == 1000
    assert drain_nums(s) == list(range(100))
    s.close()


def test_record_larger_than_segment(tmp_path: Path) -> None:
    s = open_store(tmp_path, segment_size=1024, cache_records=0, cache_bytes=0)
    s.push(rec(0))
    s.push(rec(1, pad=5000))
    s.push(rec(2))
    assert [len(r.payload) for _p, r in s.drain()] == [8, 5008, 8]
    s.close()
    s = open_store(tmp_path, segment_size=1024)
    assert drain_nums(s) == [0, 1, 2]
    s.close()


def test_delete_removes_files_and_directory(tmp_path: Path) -> None:
    d = tmp_path / "q"
    s = open_store(d, **SMALL)
    for i in range(100):
        s.push(rec(i))
    s.shift()
    s._flush_write()
    assert segment_files(d)
    s.delete()
    assert not d.exists()


def test_close_keeps_nothing_for_an_idle_store(tmp_path: Path) -> None:
    s = open_store(tmp_path)
    s.close()
    s.close()  # idempotent
    assert list(tmp_path.iterdir()) == []


def test_segment_size_is_validated(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        LogStore(tmp_path, enc, dec, segment_size=10)


def test_unrelated_files_are_left_alone(tmp_path: Path) -> None:
    (tmp_path / "README").write_text("hi")
    (tmp_path / f"seg-{7:09d}.acks").write_bytes(b"\x08\x00\x00\x00")  # orphan ack file
    s = open_store(tmp_path)
    assert s.push(rec(0)) >> 32 == 8  # ids seen in ack files are not reused either
    s.close()
    s.delete()
    assert (tmp_path / "README").exists()
    assert not (tmp_path / f"seg-{7:09d}.acks").exists()


def test_laned_log_store(tmp_path: Path) -> None:
    s = open_laned_log_store(tmp_path / "pq", 3, enc, dec, **SMALL)
    assert isinstance(s, LanedStore) and isinstance(s, LanedLogStore)
    for i in range(30):
        s.push_lane(i % 3, rec(i))
    assert s.lane_depths() == [10, 10, 10]
    first = [s.shift() for _ in range(12)]
    assert [num(r) for _p, r in first] == list(range(2, 30, 3)) + [1, 4]
    for p, _r in first[:11]:
        s.ack(p)
    s.requeue(*first[11])
    s.close()
    # lane 2 holds nothing live (all acked, never written): it needs no directory
    assert sorted(p.name for p in (tmp_path / "pq").iterdir()) in (
        ["lane-000", "lane-001"],
        ["lane-000", "lane-001", "lane-002"],
    )
    s = open_laned_log_store(tmp_path / "pq", 3, enc, dec, **SMALL)
    items = s.drain()
    assert [num(r) for _p, r in items] == list(range(4, 30, 3)) + list(range(0, 30, 3))
    assert all(s.is_recovered(p) for p, _r in items)
    p = s.push_lane(2, rec(99))
    assert not s.is_recovered(p) and s.last_error is None
    s.delete()
    assert not (tmp_path / "pq").exists()


def test_first_record_offset(tmp_path: Path) -> None:
    s = open_store(tmp_path)
    assert s.push(rec(0)) & 0xFFFFFFFF == SEGMENT_HEADER
    s.close()


def test_non_durable_store_keeps_backlog_on_disk_but_nothing_across_restart(
    tmp_path: Path,
) -> None:
    s = open_store(tmp_path, durable=False, **SMALL)
    for i in range(200):
        s.push(rec(i))  # persistent records, but the queue is not durable
    s._flush_write()
    assert len(segment_files(tmp_path)) > 3 and not s._dirty
    assert drain_nums(s)[:2] == [0, 1]
    for i in range(200, 300):
        s.push(rec(i))
    s.close()
    s = open_store(tmp_path, durable=False, **SMALL)
    assert len(s) == 0 and segment_files(tmp_path) == []
    s.close()


def test_new_store_makes_its_directory_on_first_write(tmp_path: Path) -> None:
    d = tmp_path / "q"
    s = open_store(d)
    assert not d.exists()  # an idle queue costs no directory
    s.push(rec(1))
    item = s.shift()
    s.ack(item[0])
    s.flush_acks()  # an ack before any write still lands
    assert d.is_dir()
    s.push(rec(2))
    s.close()
    s2 = open_store(d)
    assert drain_nums(s2) == [2]
    s2.close()


def test_idle_store_closes_and_deletes_without_a_directory(tmp_path: Path) -> None:
    s = open_store(tmp_path / "idle")
    s.close()
    s2 = open_store(tmp_path / "idle2")
    s2.delete()
    assert not (tmp_path / "idle").exists() and not (tmp_path / "idle2").exists()


def _open_ack_files() -> list[str]:
    out = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.endswith(".acks"):
            out.append(target)
    return out


async def test_ack_file_stays_open_while_acking_and_closes_when_idle(tmp_path):
    """A follower flushes acks every batch: one ack file is kept open for it, and closed
    once the store goes idle (10k idle queues must not hold 10k files open)."""
    store = LogStore(tmp_path / "q", enc, dec, flush_interval=0.02)
    for i in range(10):
        store.push(rec(i))
    for _ in range(4):
        pos, _r = store.shift()
        store.ack(pos)
        store.flush_acks()
        assert len(_open_ack_files()) == 1
    for _ in range(500):  # the store's flush timer finds nothing more to do
        if not _open_ack_files():
            break
        await asyncio.sleep(0.01)
    assert not _open_ack_files()
    store.close()
    again = LogStore(tmp_path / "q", enc, dec)
    assert [num(r) for _p, r in again.drain()] == list(range(4, 10))
    again.close()
