"""Group commit for a log store: one fsync serves every ``sync`` that waits for it.

Callbacks wait for the next ``fsync``, which runs in a helper process
(:mod:`storage.log.syncproc`; in threads if that is unavailable); every callback
that arrives while one fsync is in flight is served by the next single one. A
background timer flushes buffers while there is something to flush; shutdown
waits for the fsync in flight. Mixed into :class:`storage.log.store.LogStore`,
whose slots hold the state.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Callable
from pathlib import Path

from warren.storage.log.fsync_helper import fsync_all as _fsync_all
from warren.storage.log.segment import _close_fd, _unlink
from warren.storage.log.syncproc import SyncProcess, syncer_for

log = logging.getLogger("warren.storage")

_executor_lock = threading.Lock()
_default_executor: concurrent.futures.ThreadPoolExecutor | None = None


def default_executor() -> concurrent.futures.ThreadPoolExecutor:
    """The thread pool fsyncs run in when a store is given no executor.

    Shared by all stores: an fsync mostly waits on the device, so a few threads
    serve many queues; a dedicated pool keeps fsyncs from queueing behind other
    work in the event loop's default executor.
    """
    global _default_executor
    with _executor_lock:
        if _default_executor is None:
            _default_executor = concurrent.futures.ThreadPoolExecutor(
                max_workers=4, thread_name_prefix="warren-fsync"
            )
        return _default_executor


class _SyncJob:
    """One fsync in flight: what it covers and who waits for it."""

    __slots__ = ("future", "waiters", "close_fds", "handled", "syncer")

    def __init__(self, waiters: list[Callable[[bool], None]], close_fds: list[int]) -> None:
        self.future: concurrent.futures.Future[None] | None = None
        self.waiters = waiters
        #: retired segment fds to close once this fsync is done with them
        self.close_fds = close_fds
        #: set by close(), which then finishes the job itself
        self.handled = False
        #: the helper process running it (None: an executor thread)
        self.syncer: SyncProcess | None = None


# The running loop or None, without raising: push() looks for a loop to arm
# the flush timer on, and used without one (tools, tests) must stay cheap.
_get_loop: Callable[[], asyncio.AbstractEventLoop | None] = asyncio._get_running_loop


class _GroupCommit:
    """fsync scheduling (group commit), the background flush timer and shutdown."""

    __slots__ = ()

    def _start_sync(self) -> None:
        self._scheduled = False
        if self._job is not None or self._closed:
            return
        waiters = self._waiters
        self._waiters = []
        loop = self._loop
        assert loop is not None
        if not self._flush_write():
            for cb in waiters:
                loop.call_soon(cb, False)
            return
        fds, close_fds, dirs = self._take_sync_set()
        job = _SyncJob(waiters, close_fds)
        self._job = job
        syncer = self._syncer
        if syncer is None or not syncer.alive:
            syncer = None if self._executor is not None else syncer_for(loop, default_executor)
            self._syncer = syncer
        try:
            if syncer is not None:
                fut = syncer.sync(fds, dirs)
                job.syncer = syncer
            else:
                fut = (self._executor or default_executor()).submit(_fsync_all, fds, dirs)
        except RuntimeError as exc:  # executor shut down
            fut = concurrent.futures.Future()
            fut.set_exception(exc)
        job.future = fut

        def done(_f: concurrent.futures.Future[None]) -> None:
            if _get_loop() is loop and not (job.syncer is not None and job.syncer.blocking):
                # the helper's answer, read in the loop's own thread: finish now, not a
                # loop turn later (on a busy leader that turn cost ~0.3 ms per confirm)
                self._sync_done(job, dirs)
                return
            try:
                loop.call_soon_threadsafe(self._sync_done, job, dirs)
            except RuntimeError:
                pass  # loop closed; close() finishes the job

        fut.add_done_callback(done)

    def _start_sync_if_waiting(self) -> None:
        """Scheduled by a durable push: start the fsync if the turn asked for one."""
        if self._waiters:
            self._start_sync()
        else:
            self._scheduled = False  # nobody waits: sync() or the flush timer starts it

    def _sync_done(self, job: _SyncJob, dirs: list[Path]) -> None:
        if job.handled:
            return
        job.handled = True
        self._job = None
        ok = self._finish_job(job, dirs)
        for cb in job.waiters:
            _call(cb, ok)
        if self._waiters and not self._scheduled and not self._closed:
            self._start_sync()

    def _finish_job(self, job: _SyncJob, dirs: list[Path]) -> bool:
        assert job.future is not None
        exc = job.future.exception()
        if exc is not None:
            self._failed("fsync", exc)
            # what this fsync covered is not known durable: let the next sync retry
            self._dirty = True
            self._sync_dirs.extend(d for d in dirs if d not in self._sync_dirs)
        elif self.last_error is not None:
            log.warning("%s: writes and fsyncs succeed again", self.directory)
            self.last_error = None
        for fd in job.close_fds:
            _close_fd(fd)
        for fd in self._closing_fds:
            _close_fd(fd)
        self._closing_fds.clear()
        return exc is None

    def _wait_job(self) -> list[tuple[Callable[[bool], None], bool]]:
        """Block until the fsync in flight (if any) is done and finish it; its waiters
        and how it went, for the caller to answer."""
        job = self._job
        if job is None:
            return []
        assert job.future is not None
        # before waiting: the answer may be read (and `done` run) inside the wait
        job.handled = True
        if job.syncer is not None:
            job.syncer.wait(job.future)
        else:
            concurrent.futures.wait([job.future])
        self._job = None
        ok = self._finish_job(job, [])
        return [(cb, ok) for cb in job.waiters]

    def sync_now(self) -> bool:
        """Make everything pushed so far durable now, in the calling thread (blocking).

        For a caller that has nothing else to do meanwhile: a replication follower
        fsyncs each batch before acknowledging it, and sending the fsync to another
        process or thread and back cost it more CPU and latency than the fsync itself.
        Callbacks of ``sync`` still waiting are answered too. False if a write or the
        fsync failed (see ``last_error``).
        """
        if self._closed:
            return True
        # an fsync in flight uses fds this one may close: let it finish first
        for cb, job_ok in self._wait_job():
            _call(cb, job_ok)
        waiters, self._waiters = self._waiters, []
        ok = True
        if self._dirty or self._sync_dirs:
            ok = self._flush_write()
            if ok:
                fds, close_fds, dirs = self._take_sync_set()
                job = _SyncJob(waiters, close_fds)
                job.future = concurrent.futures.Future()
                try:
                    _fsync_all(fds, dirs)
                except OSError as exc:
                    job.future.set_exception(exc)
                else:
                    job.future.set_result(None)
                ok = self._finish_job(job, dirs)
        for cb in waiters:
            _call(cb, ok)
        return ok

    def _take_sync_set(self) -> tuple[list[int], list[int], list[Path]]:
        """What the next fsync covers: the fds with unsynced writes, those of them to close
        after it (retired segments), and the directories whose entries changed."""
        retired = self._unsynced_fds
        self._unsynced_fds = []
        fds = [*retired, self._wfd] if self._wfd >= 0 else list(retired)
        dirs = self._sync_dirs
        self._sync_dirs = []
        self._dirty = False
        return fds, retired, dirs

    def _arm(self) -> None:
        """Schedule a background flush (no loop running: close() flushes instead)."""
        loop = self._loop or _get_loop()
        if loop is None or self._closed:
            return
        self._loop = loop
        self._timer = loop.call_later(self._flush_interval, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self._closed:
            return
        self._flush_acks()
        if self._dirty and self._job is None and not self._scheduled:
            self._start_sync()  # writes the buffer first
        else:
            self._flush_write()
        if self._dirty and self._timer is None:
            self._arm()
        if self._timer is None:
            self._close_ack_file()  # going idle: an idle store holds no ack file open

    # -- shutdown ---------------------------------------------------------
    def _shutdown(self, durable: bool) -> None:
        if self._closed:
            return
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._drop_spare()  # never kept across a restart
        # wait for the fsync in flight: it uses fds we are about to close
        results = self._wait_job()
        ok = True
        if self._wfd < 0 and self._wseg.live <= 0:
            # the write segment was never written and holds nothing live: writing
            # it only to delete it below cost a create, a directory fsync and an
            # unlink per idle queue at every clean shutdown
            self._wbuf.clear()
            del self._wseg.ackbuf[:]  # acks of records that were never written
            self._ack_dirty.discard(self._wseg)
        if durable:
            ok = self._flush_write()
            self._flush_acks()
        # after the flush: it may have created the write segment's file
        fds = list(self._unsynced_fds)
        if self._wfd >= 0:
            fds.append(self._wfd)
        if durable:
            if ok and (self._dirty or self._sync_dirs):
                try:
                    _fsync_all(fds if self._dirty else [], self._sync_dirs)
                except OSError as exc:
                    self._failed("fsync", exc)
                    ok = False
        results.extend((cb, ok) for cb in self._waiters)
        self._waiters = []
        for fd in fds + self._closing_fds:
            _close_fd(fd)
        self._unsynced_fds = []
        self._closing_fds = []
        self._wfd = -1
        self._close_ack_file()
        for seg in self._segments.values():
            seg.unmap()
        wseg = self._wseg
        if wseg.live <= 0:
            # an empty or fully acked write segment holds nothing to recover
            _unlink(wseg.path)
            _unlink(wseg.ack_path)
        self._cache.clear()
        self._requeued.clear()
        self._peeked = None
        self._wbuf = bytearray()
        loop = self._loop
        for cb, cb_ok in results:
            if loop is not None and not loop.is_closed():
                loop.call_soon(cb, cb_ok)
            else:
                _call(cb, cb_ok)


def _call(cb: Callable[[bool], None], ok: bool) -> None:
    try:
        cb(ok)
    except Exception:  # one failing waiter must not starve the others
        log.exception("sync callback failed")
