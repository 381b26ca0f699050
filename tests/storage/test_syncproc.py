"""The fsync helper process: answers, errors, its death mid-sync, shutdown waits.

No sleeps: every wait is on a future or a process exit, each with a timeout.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import errno
import os
import signal
from pathlib import Path

import pytest
import pytest_asyncio
from warren.storage.log import default_executor
from warren.storage.log.syncproc import SyncProcess, syncer_for

from tests.storage.logstore_helpers import Results, open_store, rec


@pytest_asyncio.fixture
async def syncer():
    loop = asyncio.get_running_loop()
    s = SyncProcess(loop, default_executor())
    assert s.alive
    yield s
    s.close()


def _file(tmp_path: Path, name: str = "f") -> int:
    fd = os.open(tmp_path / name, os.O_WRONLY | os.O_CREAT, 0o644)
    os.write(fd, b"data")
    return fd


async def _result(fut: concurrent.futures.Future) -> None:
    await asyncio.wait_for(asyncio.wrap_future(fut), 10)


async def test_helper_syncs_files_and_dirs(tmp_path: Path, syncer) -> None:
    fd = _file(tmp_path)
    try:
        await _result(syncer.sync([fd], [tmp_path]))
        assert syncer._pending == {}
        # the descriptor sent over stays ours and open
        os.write(fd, b"more")
    finally:
        os.close(fd)


async def test_helper_reports_errors_as_oserror(tmp_path: Path, syncer) -> None:
    r, w = os.pipe()
    try:
        with pytest.raises(OSError) as info:
            await _result(syncer.sync([r], []))  # fdatasync on a pipe: EINVAL
        assert info.value.errno == errno.EINVAL
        with pytest.raises(OSError) as info:
            await _result(syncer.sync([], [tmp_path / "missing"]))
        assert info.value.errno == errno.ENOENT
        # and keeps serving
        fd = _file(tmp_path)
        try:
            await _result(syncer.sync([fd], []))
        finally:
            os.close(fd)
    finally:
        os.close(r)
        os.close(w)


async def test_helper_death_moves_syncs_in_flight_to_threads(tmp_path: Path, syncer) -> None:
    pid = syncer._proc.pid
    os.kill(pid, signal.SIGSTOP)  # holds the next request in flight
    fd = _file(tmp_path)
    try:
        fut = syncer.sync([fd], [tmp_path])
        assert len(syncer._pending) == 1
        os.kill(pid, signal.SIGKILL)
        await _result(fut)  # served by a thread once the loop sees the socket close
        assert not syncer.alive
        # later syncs run in threads
        await _result(syncer.sync([fd], []))
    finally:
        os.close(fd)


async def test_wait_blocks_until_the_answer(tmp_path: Path, syncer) -> None:
    fd = _file(tmp_path)
    try:
        fut = syncer.sync([fd], [])
        syncer.wait(fut)  # without the loop running: reads the answer itself
        assert fut.done() and fut.exception() is None
    finally:
        os.close(fd)


async def test_store_syncs_through_the_helper_and_closes_with_one_in_flight(
    tmp_path: Path,
) -> None:
    loop = asyncio.get_running_loop()
    helper = syncer_for(loop, default_executor)
    assert helper is not None and helper.alive
    s = open_store(tmp_path)
    res = Results()
    for i in range(10):
        s.push(rec(i))
    s.sync(res)
    assert await res.until(1) == [True]
    s.push(rec(10))
    s.sync(res)
    await asyncio.sleep(0)  # the fsync starts at the end of this loop turn
    assert s._job is not None and s._job.syncer is helper
    s.close()  # waits for the helper's answer without the loop
    assert await res.until(2) == [True, True]
    s2 = open_store(tmp_path)
    assert len(s2) == 11
    s2.close()


def test_helper_of_a_closed_loop_exits() -> None:
    loop = asyncio.new_event_loop()
    s = syncer_for(loop, default_executor)
    assert s is not None
    proc = s._proc
    loop.close()
    other = asyncio.new_event_loop()
    try:
        syncer_for(other, default_executor)  # sweeps helpers of closed loops
        assert proc.wait(timeout=10) == 0
    finally:
        s2 = syncer_for(other, default_executor)
        other.close()
        if s2 is not None:
            s2.close()


async def test_full_socket_sends_the_overflow_to_threads(tmp_path: Path, syncer) -> None:
    pid = syncer._proc.pid
    os.kill(pid, signal.SIGSTOP)  # the helper reads nothing: the socket fills up
    fd = _file(tmp_path)
    try:
        futs = [syncer.sync([fd], []) for _ in range(5000)]
        assert syncer.alive  # a full buffer is not a dead helper
        queued = len(syncer._pending)
        assert 0 < queued < len(futs)  # some went to the helper, the rest to threads
        os.kill(pid, signal.SIGCONT)
        for f in futs:
            await _result(f)
        assert syncer._pending == {}
    finally:
        os.kill(pid, signal.SIGCONT)
        os.close(fd)
