"""Listing the live records of an open log store (for a replica's full resync).

A replication leader that must bring a new follower up to date sends it every
record its stores still hold: persistent and not acked, delivered or not (an
unacked message must survive a failover too). The store keeps no per-record
index in RAM, so this scans the segment files, as recovery does.

Two steps, so that the scan can leave the event loop: :meth:`LogStore.scan_plan` (on the
store's loop) writes buffered records and acks to the files and notes how far
each segment reaches; :func:`scan_records` (any thread) reads only the files. An
ack or a dropped segment that lands between the two only makes the scan skip a
record that was removed after the plan.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

from warren.storage.log.crc import crc32
from warren.storage.log.format import (
    CRC_START,
    FLAG_PERSISTENT,
    META,
    RECORD,
    RECORD_HEADER,
    SEGMENT_HEADER,
    SEGMENT_SHIFT,
    header_seed,
    load_acks,
)

_rec_unpack = RECORD.unpack_from


class SegmentExtent(NamedTuple):
    """One segment as the plan saw it: where its records are and how far they reach."""

    base: int
    path: Path
    ack_path: Path
    end: int


class _Scan:
    """LogStore's side of the scan (a mixin: it reads the store's segment bookkeeping)."""

    __slots__ = ()

    def scan_plan(self) -> list[SegmentExtent]:
        """Flush the buffers to the files (no fsync) and note each segment's extent.

        Call on the store's loop: the plan reflects every ``push`` and ``ack`` made so far.
        """
        self._flush_write()
        self._flush_acks()
        plan = []
        for sid in sorted(self._segments):
            seg = self._segments[sid]
            if seg is self._wseg:
                if self._wfd < 0:
                    continue  # nothing written to it yet
                end = self._wflushed
            else:
                end = seg.end
            if end > SEGMENT_HEADER:
                plan.append(SegmentExtent(seg.base, seg.path, seg.ack_path, end))
        return plan


def _mapped(plan: list[SegmentExtent]) -> Iterator[tuple[int, mmap.mmap, int, set[int], int]]:
    """(base, the segment's map, how far it reaches, its acked offsets, its CRC seed) of each
    segment of ``plan`` still there (the map is valid until the next step)."""
    for base, path, ack_path, end in plan:
        acks = set(load_acks(ack_path))
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            continue  # every record acked and the segment dropped since the plan
        try:
            size = min(end, os.fstat(fd).st_size)
            if size <= SEGMENT_HEADER:
                continue
            with mmap.mmap(fd, size, access=mmap.ACCESS_READ) as mm:
                seed = header_seed(mm[:SEGMENT_HEADER], base >> SEGMENT_SHIFT)
                if seed is not None:  # else: recycled and rewritten since (spare.py)
                    yield base, mm, size, acks, seed
        finally:
            os.close(fd)


def _walk(plan: list[SegmentExtent]) -> Iterator[tuple[int, mmap.mmap, int, int]]:
    """(position, the segment's map, offset of the bytes, their length) of each persistent,
    not acked record within ``plan``, in file order (the map is valid until the next step).
    The records are not checked: for a store no other thread writes to."""
    for base, mm, size, acks, _seed in _mapped(plan):
        off = SEGMENT_HEADER
        while off + RECORD_HEADER <= size:
            n, _crc, flags, _size = _rec_unpack(mm, off)
            if off + RECORD_HEADER + n > size:
                break
            if flags & FLAG_PERSISTENT and off not in acks:
                yield base | off, mm, off + RECORD_HEADER, n
            off += RECORD_HEADER + n


def scan_records(
    plan: list[SegmentExtent], batch_bytes: int = 256 * 1024, skip: int = 0
) -> Iterator[list[tuple[int, bytes]]]:
    """The persistent, not acked records within ``plan`` as (position, stored bytes
    without their first ``skip``), in batches of about ``batch_bytes``: read in file
    order, not one ``read`` (two ``pread``) per record. Reads files only (any thread).

    Each record is copied, then its CRC checked on the copy: a segment drained after the
    plan may be recycled (``spare.py``) and overwritten while this reads it; where its
    CRCs stop matching, its records are gone (all acked) and the scan moves on."""
    batch: list[tuple[int, bytes]] = []
    held = 0
    start = CRC_START
    cut = META.size + skip
    for base, mm, size, acks, seed in _mapped(plan):
        off = SEGMENT_HEADER
        while off + RECORD_HEADER <= size:
            n, crc, flags, _size = _rec_unpack(mm, off)
            end = off + RECORD_HEADER + n
            if end > size:
                break
            if flags & FLAG_PERSISTENT and off not in acks:
                rec = mm[off + start : end]
                if crc32(rec, seed) != crc:
                    break
                batch.append((base | off, rec[cut:]))
                held += n
                if held >= batch_bytes:
                    yield batch
                    batch, held = [], 0
            off = end
    if batch:
        yield batch


def live_positions(store: Any) -> list[int]:
    """Positions of every persistent, not yet acked record of a LogStore, in log order."""
    return [pos for pos, _mm, _at, _n in _walk(store.scan_plan())]


def scan_heads(plan: list[SegmentExtent], size: int) -> Iterator[tuple[int, bytes]]:
    """(position, the first ``size`` bytes) of each record ``scan_records`` would list: for
    a caller that keeps a key at the start of its records and must rebuild an index of
    them without copying whole records. Reads files only (any thread)."""
    for pos, mm, at, n in _walk(plan):
        yield pos, mm[at : at + min(size, n)]
