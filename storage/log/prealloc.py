"""Preallocated segment files: the next segment is written full of zeros ahead of use.

On ext4 (and most journalling filesystems) an ``fdatasync`` of a file that grew
must commit the journal (new size, new blocks): a second device write, and one
that the fsyncs of every store and every node on the disk queue up for. A write
into blocks that are already allocated and written only flushes the data. A
store that fills its write segment therefore has the next one prepared in a
worker thread: ``seg-N.prep`` is written with zeros to the segment size and
fdatasynced, and when the segment is started the file is renamed into place
(the rename is made durable with the directory fsync a new segment needs
anyway). Measured here with three stores fsyncing at once: fdatasync p50
0.44 ms appending, 0.29 ms into a prepared file (``posix_fallocate`` only
reserves: 0.38 ms, its extents are converted on first write).

A crash can leave a ``.prep`` file (removed when the store is opened) and a
segment whose tail is zeros (the end of the log, not a torn write: recovery
truncates it without a warning).
"""

from __future__ import annotations

import mmap
import os
from pathlib import Path

#: zeros written per ``write`` call
_CHUNK = 1 << 20
_ZEROS = bytes(_CHUNK)

PREP_SUFFIX = ".prep"


def prep_name(segment_id: int) -> str:
    """File name of segment ``segment_id`` while it is being prepared."""
    return f"seg-{segment_id:09d}{PREP_SUFFIX}"


def zero_fill(path: Path, size: int) -> None:
    """Write ``path`` as ``size`` zero bytes and make them durable (any thread)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        left = size
        with memoryview(_ZEROS) as zeros:
            while left > 0:
                left -= os.write(fd, zeros[: min(left, _CHUNK)])
                # a chunk at a time: one 32 MiB writeback would stall the store's own
                # fsyncs (and every other store's on the disk) while it runs
                os.fdatasync(fd)
    finally:
        os.close(fd)


def all_zero(mm: mmap.mmap, start: int, end: int) -> bool:
    """True if ``mm[start:end]`` holds only zero bytes."""
    while start < end:
        n = min(end - start, _CHUNK)
        if mm[start : start + n] != _ZEROS[:n]:
            return False
        start += n
    return True
