"""fsyncs in a helper process, so that finishing one never waits for the GIL.

A group-commit fsync takes 0.1-0.5 ms of device time. Run in a thread, the
thread must take the GIL back when ``fdatasync`` returns and again to finish
its future; on a busy event loop that wait (up to the interpreter's switch
interval) was as long as the fsync itself, and every confirm waited for it.
The helper here is a tiny separate Python process: the loop sends it the file
descriptors to sync over a ``SOCK_SEQPACKET`` socket (``SCM_RIGHTS``), the
helper syncs them and answers, and the loop reads the answer as an ordinary
readable-socket event. No thread of the broker process is involved.

If the helper cannot be started, or dies, every sync (including those in
flight: the loop still holds its descriptors) runs in a thread pool instead,
so a sync is never lost, only slower.

Fsync errors travel back as ``errno`` and are raised as ``OSError`` from the
future, exactly as a thread running :func:`os.fdatasync` would raise them.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import select
import socket
import subprocess
import sys
import threading
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from warren.storage.log.fsync_helper import REP, REQ, fsync_all

log = logging.getLogger("warren.storage")

_MAX_FDS = 250  # SCM_RIGHTS limit per message is 253 on Linux

# The helper: a script run by path with -I -S (no site, no user paths).
_HELPER = Path(__file__).with_name("fsync_helper.py")


class SyncProcess:
    """Runs fsyncs in a helper process; answers arrive on the event loop.

    ``sync(fds, dirs)`` returns a ``concurrent.futures.Future`` that the loop
    completes when the helper answers; ``wait(future)`` blocks the calling
    (loop) thread until it is done, reading answers itself (for shutdown).
    Use from the one event loop thread it was made on.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, fallback: concurrent.futures.Executor):
        # weak: the per-loop registry below must not keep its key alive
        self._loop = weakref.ref(loop)
        self._fallback = fallback
        self._pending: dict[int, tuple[concurrent.futures.Future[None], list[int], list[Path]]] = {}
        self._next = 1
        #: inside wait(): answers read there are for a caller that blocks, not a loop turn
        self.blocking = False
        self._sock: socket.socket | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-I", "-S", os.fspath(_HELPER), str(theirs.fileno())],
                pass_fds=[theirs.fileno()],
                stdin=subprocess.DEVNULL,
                close_fds=True,
            )
        except OSError as exc:
            log.warning("fsync helper process not started (%s): fsyncs run in threads", exc)
            ours.close()
            return
        finally:
            theirs.close()
        ours.setblocking(False)
        self._sock = ours
        loop.add_reader(ours.fileno(), self._on_readable)
        log.debug("fsync helper process pid=%d", self._proc.pid)

    @property
    def alive(self) -> bool:
        return self._sock is not None

    def sync(self, fds: Sequence[int], dirs: Sequence[Path]) -> concurrent.futures.Future[None]:
        """fdatasync ``fds``, then fsync ``dirs``; the future says how it went."""
        fds, dirs = list(fds), list(dirs)
        sock = self._sock
        if sock is None or len(fds) > _MAX_FDS:
            return self._fallback.submit(fsync_all, fds, dirs)
        job = self._next
        self._next += 1
        msg = REQ.pack(job)
        if dirs:
            msg += "\0".join(os.fspath(d) for d in dirs).encode("utf-8", "surrogateescape")
        try:
            socket.send_fds(sock, [msg], fds)
        except BlockingIOError:
            # many stores syncing at once filled the socket: this one runs in a thread
            return self._fallback.submit(fsync_all, fds, dirs)
        except OSError as exc:
            # a dead helper: never lose the sync
            self._lost(exc)
            return self._fallback.submit(fsync_all, fds, dirs)
        fut: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._pending[job] = (fut, fds, dirs)
        return fut

    def wait(self, fut: concurrent.futures.Future[Any]) -> None:
        """Block until ``fut`` is done, reading the helper's answers meanwhile."""
        self.blocking = True
        try:
            while not fut.done():
                sock = self._sock
                if sock is None:
                    concurrent.futures.wait([fut])
                    return
                select.select([sock], [], [], 1.0)
                self._on_readable()
        finally:
            self.blocking = False

    def close(self) -> None:
        """Stop the helper; syncs still in flight move to the fallback threads."""
        self._lost(None)

    # -- internals --------------------------------------------------------
    def _on_readable(self) -> None:
        sock = self._sock
        if sock is None:
            return
        while True:
            try:
                data = sock.recv(4096)
            except BlockingIOError:
                return
            except OSError as exc:
                self._lost(exc)
                return
            if not data:
                self._lost(EOFError("fsync helper exited"))
                return
            job, err = REP.unpack_from(data)
            entry = self._pending.pop(job, None)
            if entry is None:
                continue
            fut = entry[0]
            if err:
                text = data[REP.size :].decode("utf-8", "replace")
                fut.set_exception(OSError(err, text or os.strerror(err)))
            else:
                fut.set_result(None)

    def _lost(self, exc: BaseException | None) -> None:
        sock = self._sock
        if sock is None:
            return
        self._sock = None
        if exc is not None:
            log.error("fsync helper process lost (%s): fsyncs run in threads from now on", exc)
        loop = self._loop()
        if loop is not None and not loop.is_closed():
            try:
                loop.remove_reader(sock.fileno())
            except (RuntimeError, ValueError, OSError):
                pass
        sock.close()
        if self._proc is not None:
            _reap(self._proc)
        pending, self._pending = self._pending, {}
        for fut, fds, dirs in pending.values():
            # the loop's descriptors are still open (closed only after the future)
            _chain(self._fallback.submit(fsync_all, fds, dirs), fut)


def _chain(src: concurrent.futures.Future[None], dst: concurrent.futures.Future[None]) -> None:
    def done(f: concurrent.futures.Future[None]) -> None:
        exc = f.exception()
        if exc is None:
            dst.set_result(None)
        else:
            dst.set_exception(exc)

    src.add_done_callback(done)


def _reap(proc: subprocess.Popen[bytes]) -> None:
    # the helper exits on EOF; don't block the loop if it is slow about it
    try:
        proc.wait(timeout=0)
    except subprocess.TimeoutExpired:
        threading.Thread(target=proc.wait, name="warren-fsync-reap", daemon=True).start()


_syncers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, SyncProcess] = (
    weakref.WeakKeyDictionary()
)
_lock = threading.Lock()


def syncer_for(
    loop: asyncio.AbstractEventLoop, fallback: Callable[[], concurrent.futures.Executor]
) -> SyncProcess | None:
    """The helper-process syncer of ``loop`` (made on first use), or None if disabled.

    ``WARREN_FSYNC_HELPER=0`` in the environment turns the helper off (fsyncs
    then run in ``fallback()``'s threads).
    """
    if os.environ.get("WARREN_FSYNC_HELPER", "1") == "0":
        return None
    with _lock:
        s = _syncers.get(loop)
        if s is None:
            for other, old in list(_syncers.items()):
                if other.is_closed():
                    # a closed loop reads no more answers: stop its helper now, not at GC
                    old.close()
                    del _syncers[other]
            s = SyncProcess(loop, fallback())
            _syncers[loop] = s
            # the helper goes when its loop does (tests run many loops)
            weakref.finalize(loop, s.close)
    return s if s.alive else None


__all__ = ["SyncProcess", "fsync_all", "syncer_for"]
