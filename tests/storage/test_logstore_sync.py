"""Group commit: sync() callbacks, batching of fsyncs, background flush, error reporting.

No sleeps: tests await futures that the callbacks (or the fsync executor) resolve.
"""

from __future__ import annotations

import asyncio
import errno
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from logstore_helpers import (
    CountingExecutor,
    Results,
    dec,
    drain_nums,
    enc,
    open_store,
    rec,
    segment_files,
)
from warren.storage.lanes import LanedStore
from warren.storage.log import open_laned_log_store
from warren.storage.log import store as store_mod
from warren.storage.memory import MemoryStore


@pytest.fixture
def executor() -> Iterator[CountingExecutor]:
    ex = CountingExecutor()
    yield ex
    ex.shutdown()


def eio(fd: int) -> None:
    raise OSError(errno.EIO, "simulated I/O error")


async def test_sync_callbacks_in_order_and_batched(tmp_path: Path, executor) -> None:
    s = open_store(tmp_path, executor=executor)
    calls: list[str] = []
    done = Results()

    def cb(name: str):
        def call(ok: bool) -> None:
            calls.append(name)
            done(ok)

        return call

    executor.gate.clear()  # hold the first fsync in flight
    s.push(rec(0))
    s.sync(cb("a"))
    s.sync(cb("b"))
    await executor.until_submitted(1)
    # arrive while the first fsync is in flight: all served by one more fsync
    for i in range(1, 50):
        s.push(rec(i))
        s.sync(cb(f"c{i}"))
    # nothing new pushed since: covered by that second fsync too
    s.sync(cb("d"))
    assert calls == []
    executor.gate.set()
    assert all(await done.until(52))
    assert calls == ["a", "b"] + [f"c{i}" for i in range(1, 50)] + ["d"]
    assert executor.submitted == 2
    s.close()
    s = open_store(tmp_path)
    assert drain_nums(s) == list(range(50))
    s.close()


async def test_fsync_starts_before_work_the_push_scheduled_after_it(tmp_path: Path, executor) -> None:
    """A durable push schedules its fsync's start: a callback scheduled after the push
    (a queue's dispatch) runs with the fsync already submitted, and one fsync serves every
    sync() of the turn; a push nobody syncs starts none."""
    s = open_store(tmp_path, executor=executor)
    done = Results()
    s.push(rec(0))
    s.sync(done)  # the first sync: the store now knows its loop
    assert await done.until(1) == [True]
    seen: list[int] = []
    s.push(rec(1))
    asyncio.get_running_loop().call_soon(lambda: seen.append(executor.submitted))
    s.push(rec(2))
    s.sync(done)
    s.sync(done)
    assert await done.until(3) == [True] * 3
    assert seen == [2] and executor.submitted == 2
    s.push(rec(3))  # no sync(): the flush timer, not the push, makes it durable
    ran = asyncio.Event()
    asyncio.get_running_loop().call_soon(ran.set)
    await ran.wait()
    assert executor.submitted == 2
    s.close()
    s = open_store(tmp_path)
    assert drain_nums(s) == [0, 1, 2, 3]
    s.close()


async def test_callback_covered_by_fsync_in_flight(tmp_path: Path, executor) -> None:
    s = open_store(tmp_path, executor=executor)
    done = Results()
    executor.gate.clear()
    s.push(rec(0))
    s.sync(done)
    await executor.until_submitted(1)
    s.sync(done)  # nothing pushed since the fsync started: no second fsync
    executor.gate.set()
    assert await done.until(2) == [True, True]
    assert executor.submitted == 1
    s.close()


async def test_one_fsync_per_loop_turn(tmp_path: Path, executor) -> None:
    s = open_store(tmp_path, executor=executor)
    done = Results()
    for i in range(100):
        s.push(rec(i))
        s.sync(done)
    assert all(await done.until(100))
    assert executor.submitted == 1
    s.close()


async def test_sync_with_nothing_to_fsync_is_prompt(tmp_path: Path, executor) -> None:
    s = open_store(tmp_path, executor=executor)
    done = Results()
    s.sync(done)
    assert done == []  # never called re-entrantly
    await done.until(1)
    # transient records are never fsynced
    s.push(rec(1, persistent=False))
    s.sync(done)
    assert await done.until(2) == [True, True]
    assert executor.submitted == 0
    # once fsynced, a further sync without new pushes needs no fsync either
    s.push(rec(2))
    s.sync(done)
    await done.until(3)
    s.sync(done)
    assert await done.until(4) == [True] * 4
    assert executor.submitted == 1
    s.close()


async def test_background_flush_without_sync(tmp_path: Path, executor) -> None:
    s = open_store(tmp_path, executor=executor, flush_interval=0.01)
    s.push(rec(0))
    await executor.until_submitted(1)  # the timer wrote the buffer, then fsynced
    assert segment_files(tmp_path)[0].stat().st_size > 8
    p, _r = s.shift()
    s.ack(p)
    s.push(rec(1))
    await executor.until_submitted(2)  # the same timer turn wrote the ack file first
    ack_file = tmp_path / segment_files(tmp_path)[0].name.replace(".wlog", ".acks")
    assert ack_file.stat().st_size == 4
    s.close()


async def test_fsync_error_reports_false_then_recovers(
    tmp_path: Path, executor, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = open_store(tmp_path, executor=executor)
    monkeypatch.setattr(os, "fdatasync", eio)
    done = Results()
    s.push(rec(0))
    s.sync(done)
    assert await done.until(1) == [False]
    assert isinstance(s.last_error, OSError) and s.last_error.errno == errno.EIO
    # no new pushes, but the failed fsync must be retried, not reported durable
    monkeypatch.undo()
    s.sync(done)
    assert await done.until(2) == [False, True]
    assert executor.submitted == 2
    assert s.last_error is None  # healthy again
    s.close()


async def test_write_error_keeps_records_and_retries(
    tmp_path: Path, executor, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = open_store(tmp_path, executor=executor, cache_records=0, cache_bytes=0)
    real = os.pwrite
    calls = [0]

    def partial_then_fail(fd: int, data, offset: int) -> int:
        # write half, then run out of space: the file now ends mid-record
        calls[0] += 1
        if calls[0] == 1:
            return real(fd, bytes(data[: len(data) // 2]), offset)
        raise OSError(errno.ENOSPC, "simulated disk full")

    s.push(rec(0))
    s.push(rec(1))
    monkeypatch.setattr(os, "pwrite", partial_then_fail)
    done = Results()
    s.sync(done)
    assert await done.until(1) == [False]
    assert s.last_error.errno == errno.ENOSPC
    assert executor.submitted == 0
    # still readable (from the write buffer), still counted
    assert len(s) == 2 and s.peek()[1] == rec(0)
    monkeypatch.undo()
    s.sync(done)
    assert await done.until(2) == [False, True]
    assert s.last_error is None
    s.close()
    s = open_store(tmp_path)
    assert drain_nums(s) == [0, 1]
    s.close()


async def test_close_waits_for_fsync_in_flight(tmp_path: Path, executor) -> None:
    s = open_store(tmp_path, executor=executor)
    done = Results()
    executor.gate.clear()
    s.push(rec(0))
    s.sync(done)
    await executor.until_submitted(1)
    s.push(rec(1))
    s.sync(done)  # waits for the next fsync, which close() does itself
    # close() runs on the loop thread, as in the broker, and blocks it until
    # the fsync in flight is done; another thread lets that fsync finish
    # (before or after close() starts waiting: it must work either way)
    opener = threading.Thread(target=executor.gate.set)
    opener.start()
    s.close()
    opener.join()
    assert await done.until(2) == [True, True]
    s.sync(done)  # after close: nothing left to do
    await done.until(3)
    s = open_store(tmp_path)
    assert drain_nums(s) == [0, 1]
    s.close()


async def test_rotation_while_fsync_in_flight(tmp_path: Path, executor) -> None:
    """Retired segment files stay open until an fsync has covered them."""
    s = open_store(tmp_path, executor=executor, segment_size=256)
    done = Results()
    executor.gate.clear()
    s.push(rec(0))
    s.sync(done)
    await executor.until_submitted(1)
    for i in range(1, 40):  # several rotations while the fsync waits
        s.push(rec(i))
    s.sync(done)
    executor.gate.set()
    assert await done.until(2) == [True, True]
    assert s._unsynced_fds == [] and s._closing_fds == []
    s.close()
    s = open_store(tmp_path, segment_size=256)
    assert drain_nums(s) == list(range(40))
    s.close()


async def test_default_executor(tmp_path: Path) -> None:
    s = open_store(tmp_path)
    done = Results()
    s.push(rec(0))
    s.sync(done)
    assert await done.until(1) == [True]
    assert store_mod.default_executor() is store_mod.default_executor()
    s.close()


async def test_laned_sync_aggregates(
    tmp_path: Path, executor, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = open_laned_log_store(tmp_path / "q", 3, enc, dec, executor=executor)
    done = Results()
    s.push_lane(0, rec(0))
    s.push_lane(2, rec(1))
    s.sync(done)
    assert await done.until(1) == [True]
    s.push_lane(1, rec(2))
    monkeypatch.setattr(os, "fdatasync", eio)
    s.sync(done)
    assert await done.until(2) == [True, False]
    assert s.last_error is not None
    monkeypatch.undo()
    s.close()


async def test_memory_and_laned_memory_sync_pass_true() -> None:
    got: list[bool] = []
    MemoryStore().sync(got.append)
    LanedStore([MemoryStore(), MemoryStore()]).sync(got.append)
    assert got == [True, True]


async def test_synced_records_are_on_disk_without_close(tmp_path: Path, executor) -> None:
    """A crash right after a confirm: the directory as it is holds every synced record."""
    s = open_store(tmp_path / "live", executor=executor)
    done = Results()
    for i in range(1000):
        s.push(rec(i, pad=100))
    s.sync(done)
    assert await done.until(1) == [True]
    s.push(rec(1000))  # not synced: may or may not survive
    shutil.copytree(tmp_path / "live", tmp_path / "crashed")  # no close(): "kill -9"
    c = open_store(tmp_path / "crashed")
    assert drain_nums(c)[:1000] == list(range(1000))
    c.close()
    s.close()


async def test_sync_now_is_durable_at_once_and_answers_waiters(
    tmp_path: Path, executor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """sync_now (a replication follower's fsync): blocking, in the caller's thread."""
    s = open_store(tmp_path / "live", executor=executor)
    done = Results()
    for i in range(500):
        s.push(rec(i, pad=100))
    s.sync(done)  # a waiter from before: sync_now's fsync covers it
    assert s.sync_now() is True
    assert await done.until(1) == [True]
    assert executor.submitted == 0  # nothing went to another thread
    shutil.copytree(tmp_path / "live", tmp_path / "crashed")  # no close(): "kill -9"
    c = open_store(tmp_path / "crashed")
    assert drain_nums(c) == list(range(500))
    c.close()
    # an fsync error is reported, and the next sync_now retries it
    monkeypatch.setattr(os, "fdatasync", eio)
    s.push(rec(500))
    assert s.sync_now() is False
    assert isinstance(s.last_error, OSError)
    monkeypatch.undo()
    assert s.sync_now() is True
    assert s.last_error is None
    s.close()
