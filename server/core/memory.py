"""The memory alarm (RabbitMQ's ``vm_memory_high_watermark``) and handing freed memory back.

The broker's resident set size (less the file pages it maps, which are page
cache) is read from ``/proc/self/statm`` (a few microseconds) once a second and, between those samples, whenever connections
have read another ``step`` bytes, so that a fast publisher cannot run far past
the limit between two timer ticks. Above the limit the broker raises the memory
alarm: every connection is blocked (``connection.blocked``, and publishers are
no longer read) until the resident size is below the limit again, as RabbitMQ
does.

CPython gives freed memory back to glibc's heap, which keeps it: after a large
free (a purge, a requeue of many messages, a closed connection) ``trim_soon``
asks for ``malloc_trim`` at the next tick (in a worker thread), so that the
resident size falls back to what the broker really holds.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
import os
import re
from typing import Any, Protocol


class AlarmTarget(Protocol):
    """What the monitor raises its alarm on (the broker node)."""

    alarms: set[str]

    def set_alarm(self, resource: str, active: bool) -> None: ...

    def probe_blocked(self) -> None: ...

log = logging.getLogger("warren.memory")

#: seconds between two samples of the resident size
INTERVAL = 1.0

_UNITS = {
    "": 1, "b": 1,
    "k": 1000, "kb": 1000, "kib": 1024,
    "m": 1000**2, "mb": 1000**2, "mib": 1024**2,
    "g": 1000**3, "gb": 1000**3, "gib": 1024**3,
    "t": 1000**4, "tb": 1000**4, "tib": 1024**4,
}


def parse_size(value: Any) -> int:
    """Bytes from an int or a size as RabbitMQ writes it ("200MB", "1GiB", "512000")."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", str(value))
    if m is None or m.group(2).lower() not in _UNITS:
        raise ValueError(f"not a size: {value!r} (bytes, or a number with kB/MB/GB/KiB/MiB/GiB)")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def total_memory() -> int:
    """Bytes of RAM this process may use: the machine's, or its cgroup's limit if lower."""
    total = 0
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (OSError, ValueError):
        pass
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path) as fh:
                text = fh.read().strip()
        except OSError:
            continue
        if text.isdigit() and 0 < int(text) < (total or 1 << 62):
            total = int(text)
    return total


def memory_limit(relative: float, absolute: int, total: int) -> int:
    """The watermark in bytes: ``absolute`` when set, else ``relative`` of ``total``."""
    if absolute > 0:
        return absolute
    return int(relative * total)


class _Statm:
    """Reads the resident set size; -1 where /proc is not available."""

    def __init__(self) -> None:
        self.page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
        try:
            self.fd = os.open("/proc/self/statm", os.O_RDONLY)
        except OSError:
            self.fd = -1

    def rss(self) -> int:
        if self.fd < 0:
            return -1
        try:
            fields = os.pread(self.fd, 128, 0).split()
            # resident minus shared: file pages mapped for reading message segments are
            # page cache the kernel can drop, not memory the broker holds
            return (int(fields[1]) - int(fields[2])) * self.page
        except (OSError, ValueError, IndexError):
            return -1

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _malloc_trim() -> Any:
    name = ctypes.util.find_library("c")
    try:
        fn = ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        fn = None
    if fn is not None:
        fn.argtypes = [ctypes.c_size_t]
        fn.restype = ctypes.c_int
    return fn


class MemoryMonitor:
    """Samples the resident size, raises and clears the broker's memory alarm."""

    def __init__(self, broker: AlarmTarget, limit: int = 1 << 62) -> None:
        self.broker = broker
        self.rss = 0
        self.alarm = False
        #: bytes read by connections since the last sample (connections add to it)
        self.unsampled = 0
        self.set_limit(limit)
        self._statm = _Statm()
        self._trim = _malloc_trim()
        self._trim_wanted = False
        self._trimming = False
        self._handle: asyncio.TimerHandle | None = None

    def set_limit(self, limit: int) -> None:
        self.limit = limit
        #: read this much and the next read samples again (bounds the overshoot)
        self.step = max(1 << 20, min(8 << 20, limit // 32))

    @property
    def enabled(self) -> bool:
        return self._statm.fd >= 0

    def start(self) -> None:
        self.check()
        self._handle = asyncio.get_running_loop().call_later(INTERVAL, self._tick)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._statm.close()

    def check(self) -> None:
        """Sample now; raise or clear the alarm."""
        self.unsampled = 0
        rss = self._statm.rss()
        if rss < 0:
            return
        self.rss = rss
        over = rss > self.limit
        if over != self.alarm:
            self.alarm = over
            if over:
                log.warning("resource alarm set resource=memory used=%d limit=%d: publishers are blocked", rss, self.limit)
                self._trim_wanted = True
            else:
                log.warning("resource alarm cleared resource=memory used=%d limit=%d", rss, self.limit)
            self.broker.set_alarm("memory", over)

    def trim_soon(self) -> None:
        """Much was freed: give the heap's free pages back to the system at the next tick."""
        self._trim_wanted = True

    def _tick(self) -> None:
        self.check()
        if self.broker.alarms:
            self.broker.probe_blocked()
        if (self._trim_wanted or self.alarm) and self._trim is not None and not self._trimming:
            self._trim_wanted = False
            self._trimming = True
            fut = asyncio.get_running_loop().run_in_executor(None, self._trim, 0)
            fut.add_done_callback(self._trimmed)
        self._handle = asyncio.get_running_loop().call_later(INTERVAL, self._tick)

    def _trimmed(self, fut: asyncio.Future) -> None:
        self._trimming = False
        if not fut.cancelled() and fut.exception() is None:
            before = self.rss
            self.check()
            log.debug("malloc_trim: resident %d -> %d bytes", before, self.rss)
