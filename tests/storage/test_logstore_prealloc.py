"""Preallocated segments (storage.log.prealloc): the next segment's file is written with
zeros ahead of use, taken when the store rotates, and a zero tail left by a crash is
the end of the log (no torn-write warning, nothing lost, nothing invented)."""

from __future__ import annotations

import logging
import shutil
import threading
from pathlib import Path

import pytest
from logstore_helpers import CountingExecutor, drain_nums, open_store, rec
from warren.storage.log.format import segment_name
from warren.storage.log.prealloc import prep_name

SEG = 64 * 1024
OPTS = {"segment_size": SEG, "cache_records": 4}
PAD = 1000  # ~1 KiB records: 60 to a segment


def wait_prepared(s) -> Path:
    prep = s._prep
    assert prep is not None, "a store past half of its write segment prepares the next one"
    prep[1].result(timeout=30)
    return prep[2]


def test_the_next_segment_is_prepared_then_taken_on_rotation(tmp_path: Path) -> None:
    s = open_store(tmp_path, **OPTS)
    i = 0
    while s._wflushed < SEG // 2:
        s.push(rec(i, pad=PAD))
        i += 1
        s._flush_write()
    first = s._wseg.id
    tmp = wait_prepared(s)
    assert tmp.name == prep_name(first + 1)
    assert tmp.stat().st_size == SEG
    inode = tmp.stat().st_ino
    while s._wseg.id == first:
        s.push(rec(i, pad=PAD))
        i += 1
    s._flush_write()
    taken = tmp_path / segment_name(first + 1)
    assert not tmp.exists()
    assert taken.stat().st_ino == inode  # the prepared file, renamed into place
    assert taken.stat().st_size == SEG
    assert drain_nums(s) == list(range(i))
    s.close()


def test_a_crash_in_a_prepared_segment_recovers_exactly_what_was_written(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    live = tmp_path / "live"
    s = open_store(live, **OPTS)
    n = 0
    # into the second (prepared) segment, and past half of it: a .prep of the third exists
    while s._wseg.id < 2 or s._wflushed < SEG // 2 + 1000:
        s.push(rec(n, pad=PAD))
        n += 1
        s._flush_write()
        if s._prep is not None:
            wait_prepared(s)
    wait_prepared(s)
    taken = [s.shift() for _ in range(5)]
    for pos, _r in taken[:3]:
        s.ack(pos)
    s._flush_acks()
    # the files as a kill -9 leaves them (the OS has what was written)
    crashed = tmp_path / "crashed"
    shutil.copytree(live, crashed)
    s.close()
    assert list(crashed.glob("*.prep"))
    assert (crashed / segment_name(2)).stat().st_size == SEG  # zeros after the last record
    with caplog.at_level(logging.DEBUG, logger="warren.storage"):
        r = open_store(crashed, **OPTS)
    warnings = [m for m in caplog.records if m.levelno >= logging.WARNING]
    assert warnings == []
    assert not list(crashed.glob("*.prep"))
    assert drain_nums(r) == list(range(3, n))
    r.close()


def test_close_and_delete_leave_no_prepared_file(tmp_path: Path) -> None:
    for finish in ("close", "delete"):
        d = tmp_path / finish
        s = open_store(d, **OPTS)
        i = 0
        while s._prep is None:
            s.push(rec(i, pad=PAD))
            i += 1
            s._flush_write()
        getattr(s, finish)()
        assert not list(d.glob("*.prep")) if d.exists() else True
        if finish == "delete":
            assert not d.exists()
        else:
            r = open_store(d, **OPTS)
            assert drain_nums(r) == list(range(i))
            r.close()


def test_a_store_that_never_fills_half_a_segment_prepares_nothing(tmp_path: Path) -> None:
    s = open_store(tmp_path, **OPTS)
    for i in range(20):
        s.push(rec(i, pad=PAD))
    s._flush_write()
    assert s._prep is None
    assert not list(tmp_path.glob("*.prep"))
    s.close()


def test_non_durable_stores_prepare_nothing(tmp_path: Path) -> None:
    s = open_store(tmp_path, durable=False, **OPTS)
    for i in range(200):
        s.push(rec(i, persistent=False, pad=PAD))
        s._flush_write()
    assert s._prep is None
    assert not list(tmp_path.glob("*.prep"))
    s.close()


def test_a_prepared_file_left_by_a_crash_goes_at_open(tmp_path: Path) -> None:
    (tmp_path / prep_name(5)).write_bytes(bytes(SEG))
    (tmp_path / segment_name(4)).write_bytes(bytes(SEG))  # renamed, never written
    s = open_store(tmp_path, **OPTS)
    assert list(tmp_path.iterdir()) == []
    assert s.push(rec(0)) >> 32 == 5  # ids are not reused
    s.close()


def test_a_preparation_not_ready_in_time_is_not_used_and_still_goes(tmp_path: Path) -> None:
    ex = CountingExecutor()
    ex.gate.clear()  # the worker writing the zeros never gets going
    d = tmp_path / "q"
    s = open_store(d, executor=ex, **OPTS)
    try:
        i = 0
        while s._wseg.id == 1 or s._wfd < 0:
            s.push(rec(i, pad=PAD))
            i += 1
            s._flush_write()
        assert s._stale_preps  # segment 2 was created the ordinary way
        assert (d / segment_name(2)).stat().st_size < SEG
        opener = threading.Thread(target=ex.gate.set)
        opener.start()
        s.delete()  # waits for the worker, then its file goes too
        opener.join()
        assert not d.exists()
    finally:
        ex.shutdown()
