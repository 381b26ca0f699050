"""One segment file's bookkeeping, and the small file helpers the log store shares.

See :mod:`storage.log.store` for the life of a record and :mod:`storage.log.format`
for the bytes on disk.
"""

from __future__ import annotations

import mmap
import os
from pathlib import Path
from typing import Any

from warren.storage.log.format import (
    FLAG_PERSISTENT,
    SEGMENT_HEADER,
    SEGMENT_SHIFT,
    ack_name,
    new_ack_array,
    segment_name,
)


class _Segment:
    """Bookkeeping for one segment file (no per-record state)."""

    __slots__ = (
        "id",
        "base",
        "path",
        "ack_path",
        "end",
        "start",
        "live",
        "mm",
        "recovered",
        "acks",
        "ack_i",
        "ackbuf",
        "rfd",
    )

    def __init__(self, directory: Path, segment_id: int) -> None:
        self.id = segment_id
        self.base = segment_id << SEGMENT_SHIFT
        self.path = directory / segment_name(segment_id)
        self.ack_path = directory / ack_name(segment_id)
        #: end of valid data (sealed segments; the write segment uses the store's offset)
        self.end = SEGMENT_HEADER
        #: offset where reading starts: the first live record of a recovered segment
        self.start = SEGMENT_HEADER
        #: records neither acked nor dropped: ready + unacked
        self.live = 0
        self.mm: mmap.mmap | None = None
        #: written before the restart: holds transient and acked records to skip
        self.recovered = False
        #: recovered segments: sorted offsets acked before the restart, and how
        #: far the cursor has walked through them
        self.acks: Any = None
        self.ack_i = 0
        #: acks not yet written to the ack file
        self.ackbuf = new_ack_array()
        #: read-only fd for ``LogStore.read`` (``pread``: random reads map no pages)
        self.rfd = -1

    def is_dead(self, offset: int, flags: int) -> bool:
        """True if the recovered record at ``offset`` must be skipped.

        Only called with increasing offsets (the cursor only moves forward),
        so a merge walk through the sorted acks is enough.
        """
        if not flags & FLAG_PERSISTENT:
            return True
        acks = self.acks
        if acks is None:
            return False
        i = self.ack_i
        n = len(acks)
        while i < n and acks[i] < offset:
            i += 1
        self.ack_i = i
        return i < n and acks[i] == offset

    def unmap(self) -> None:
        if self.mm is not None:
            self.mm.close()
            self.mm = None
        if self.rfd >= 0:
            _close_fd(self.rfd)
            self.rfd = -1


def _close_fd(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass


def _unlink(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
