"""This process's own figures (memory, file descriptors, disk), for the management API,
``/metrics`` and the stats a cluster node publishes to the others."""

from __future__ import annotations

import os
import resource
import shutil


def process_stats() -> dict[str, float]:
    rss = 0
    try:
        with open("/proc/self/statm") as fh:
            rss = int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    try:
        fds = len(os.listdir("/proc/self/fd"))
    except OSError:
        fds = 0
    return {
        "resident_memory_bytes": rss,
        "open_fds": fds,
        "max_fds": resource.getrlimit(resource.RLIMIT_NOFILE)[0],
    }


def disk_free(path: str) -> int:
    """Free bytes on the filesystem holding ``path`` (-1 if unknown)."""
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return -1
