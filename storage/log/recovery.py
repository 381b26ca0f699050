"""Recovery of a log store's directory when it is opened.

Scans every segment, validates length + CRC of each record, truncates a torn or
corrupt tail (and logs what it dropped to the ``warren.storage`` logger), skips
transient and acked records and rebuilds the counts. Mixed into
:class:`storage.log.store.LogStore`, whose slots hold the state.
"""

from __future__ import annotations

import logging
import mmap
import os
from bisect import bisect_left
from pathlib import Path
from typing import Any

from warren.storage.log.crc import crc32
from warren.storage.log.format import (
    CRC_START,
    FLAG_PERSISTENT,
    FLAGS_KNOWN,
    MAGIC_RECYCLED,
    RECORD,
    RECORD_HEADER,
    SEGMENT_HEADER,
    ack_name,
    header_seed,
    load_acks,
    parse_name,
)
from warren.storage.log.segment import _Segment, _unlink
from warren.storage.log.spare import SPARE_NAME

log = logging.getLogger("warren.storage")

_rec_unpack = RECORD.unpack_from


class _Recovery:
    """Opening a store: rebuild segments and counts from what is on disk."""

    __slots__ = ()

    directory: Path
    _segments: dict[int, _Segment]
    _ready: int
    _bytes: int
    recovered_position_limit: int

    def _recover(self) -> tuple[int, int]:
        """Scan the directory, fill ``_segments`` and the counts.

        Returns the highest segment id seen and the position of the first live
        record (0 if none).
        """
        wlogs: list[int] = []
        ack_ids: set[int] = set()
        for entry in os.scandir(self.directory):
            parsed = parse_name(entry.name)
            if parsed is None:
                continue
            if parsed[1] == "wlog":
                wlogs.append(parsed[0])
            else:
                ack_ids.add(parsed[0])
        wlogs.sort()
        _unlink(self.directory / SPARE_NAME)  # a previous run's spare: not kept across a restart
        last_id = max([0, *wlogs, *ack_ids])
        cursor = 0
        for sid in wlogs:
            found = self._recover_segment(sid)
            if found is not None:
                seg, first_live = found
                self._segments[sid] = seg
                if not cursor:
                    cursor = seg.base | first_live
        for sid in ack_ids:
            if sid not in self._segments:
                # acks of a segment that is gone (or was just dropped)
                _unlink(self.directory / ack_name(sid))
        return last_id, cursor

    def _discard(self) -> int:
        """Non-durable store: remove what a previous run left; return the highest id seen."""
        last_id = 0
        for entry in os.scandir(self.directory):
            parsed = parse_name(entry.name)
            if parsed is not None:
                last_id = max(last_id, parsed[0])
                _unlink(Path(entry.path))
            elif entry.name == SPARE_NAME:
                _unlink(Path(entry.path))
        return last_id

    def _recover_segment(self, sid: int) -> tuple[_Segment, int] | None:
        """Validate one segment: its bookkeeping and first live offset, or None if it is dead."""
        seg = _Segment(self.directory, sid)
        path = seg.path
        size = path.stat().st_size
        if size < SEGMENT_HEADER:
            if size:
                log.warning("%s: dropped torn segment header at offset 0 (%d bytes)", path, size)
            _unlink(path)
            return None
        acks = load_acks(seg.ack_path)
        with open(path, "rb") as f, mmap.mmap(f.fileno(), size, access=mmap.ACCESS_READ) as mm:
            seed = header_seed(mm[:SEGMENT_HEADER], sid)
            recycled = mm[:SEGMENT_HEADER] == MAGIC_RECYCLED
            if seed is None:
                log.warning(
                    "%s: dropped segment with bad header at offset 0 (%d bytes)", path, size
                )
                good = 0
                live = nbytes = 0
                first_live = last_live = -1
            else:
                good, live, nbytes, first_live, last_live = _scan(mm, size, acks, seed)
        if good == 0:
            _unlink(path)
            _unlink(seg.ack_path)
            return None
        if good < size:
            # a recycled file (spare.py) always ends in its old records: expected, not loss
            log.log(
                logging.INFO if recycled else logging.WARNING,
                "%s: dropped torn/corrupt tail at offset %d (%d bytes%s)", path, good, size - good,
                ": a recycled file's old records, or a write torn by a crash" if recycled else "",
            )
        if live == 0:
            # everything acked or transient: nothing to deliver ever again
            _unlink(path)
            _unlink(seg.ack_path)
            return None
        if good < size:
            # new records go to a new segment, so this only keeps the next
            # recovery from logging the same loss again
            try:
                os.truncate(path, good)
            except OSError as exc:
                log.warning("%s: could not truncate the dropped tail: %s", path, exc)
        seg.end = good
        seg.start = first_live
        seg.live = live
        seg.recovered = True
        if acks:
            # the cursor starts at the first live record: only later acks matter
            cut = bisect_left(acks, first_live)
            seg.acks = acks[cut:] if cut else acks
        self._ready += live
        self._bytes += nbytes
        self.recovered_position_limit = max(self.recovered_position_limit, seg.base | last_live)
        return seg, first_live


def _scan(mm: mmap.mmap, size: int, acks: Any, seed: int) -> tuple[int, int, int, int, int]:
    """Validate the records of one segment (CRCs from ``seed``: ``format.header_seed``).

    Returns ``(good_end, live, live_bytes, first_live, last_live)``: where the
    valid prefix ends, how many persistent unacked records it holds and their
    total size, and the offsets of the first and last of them (-1 if none).
    Keeps nothing per record: this runs over millions of them at startup.
    """
    unpack = _rec_unpack
    header = RECORD_HEADER
    off = SEGMENT_HEADER
    live = nbytes = 0
    first_live = last_live = -1
    na = len(acks)
    ai = 0
    next_ack = acks[0] if na else -1
    with memoryview(mm) as mv:
        while off + header <= size:
            n, crc, flags, rsize = unpack(mm, off)
            end = off + header + n
            if end > size or flags & ~FLAGS_KNOWN or crc32(mv[off + CRC_START : end], seed) != crc:
                break
            if flags & FLAG_PERSISTENT:
                if next_ack >= 0 and next_ack < off:
                    while ai < na and acks[ai] < off:
                        ai += 1
                    next_ack = acks[ai] if ai < na else -1
                if next_ack != off:
                    live += 1
                    nbytes += rsize
                    if first_live < 0:
                        first_live = off
                    last_live = off
            off = end
    return off, live, nbytes, first_live, last_live
