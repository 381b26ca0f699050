"""Logs when the process runs out of file descriptors.

When every descriptor is in use, accept() fails with EMFILE and the listeners
drop new connections without a word to anyone (uvloop's libuv accepts and closes
them). This watcher counts the process's open descriptors every ``interval``
seconds and logs one warning when they reach the limit (again every
``repeat`` seconds while it lasts) and one line when they are back below it.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import resource

log = logging.getLogger("warren.fd")

_FD_DIR = "/proc/self/fd"
#: "exhausted" means fewer than this many descriptors are left
HEADROOM = 4


def open_fds() -> int | None:
    """Descriptors open in this process; the limit itself when even listing them fails for lack of one."""
    try:
        return len(os.listdir(_FD_DIR))
    except OSError as exc:
        if exc.errno in (errno.EMFILE, errno.ENFILE):
            return fd_limit()
        return None  # not Linux


def fd_limit() -> int:
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


class FdWatch:
    """A background task on the broker's loop; ``cleanup()`` stops it (same shape as an aiohttp runner)."""

    def __init__(self, interval: float = 1.0, repeat: float = 30.0) -> None:
        self.interval = interval
        self.repeat = repeat
        self.exhausted = False
        self._last_log = 0.0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> FdWatch:
        if open_fds() is not None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="fdwatch")
        return self

    def check(self) -> None:
        n = open_fds()
        if n is None:
            return
        limit = fd_limit()
        now = asyncio.get_running_loop().time()
        if n >= limit - HEADROOM:
            if not self.exhausted or now - self._last_log >= self.repeat:
                log.warning("file descriptors exhausted open=%d limit=%d: accept() fails (EMFILE), "
                            "new AMQP and HTTP connections are dropped; raise the limit (ulimit -n)", n, limit)
                self._last_log = now
            self.exhausted = True
        elif self.exhausted and n < limit - 2 * HEADROOM:
            log.info("file descriptors available again open=%d limit=%d", n, limit)
            self.exhausted = False

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            self.check()

    async def cleanup(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
