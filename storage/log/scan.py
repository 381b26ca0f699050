"""Listing the live records of an open log store (for a replica's full resync).

A replication leader that must bring a new follower up to date sends it every
record its stores still hold: persistent and not acked, delivered or not (an
unacked message must survive a failover too). The store keeps no per-record
index in RAM, so this scans the segment files, as recovery does.
"""

from __future__ import annotations

import mmap
import os

from warren.storage.log.format import (
    FLAG_PERSISTENT,
    RECORD,
    RECORD_HEADER,
    SEGMENT_HEADER,
    load_acks,
)
from warren.storage.log.store import LogStore

_rec_unpack = RECORD.unpack_from


def live_positions(store: LogStore) -> list[int]:
    """Positions of every persistent, not yet acked record of ``store``, in log order.

    Writes the store's buffered records and acks to its files first (no fsync),
    so the answer reflects every ``push`` and ``ack`` made so far.
    """
    # same package: the scan needs the store's segment bookkeeping
    store._flush_write()
    store._flush_acks()
    out: list[int] = []
    for sid in sorted(store._segments):
        seg = store._segments[sid]
        if seg is store._wseg:
            if store._wfd < 0:
                continue  # nothing written to it yet
            end = store._wflushed
        else:
            end = seg.end
        if end <= SEGMENT_HEADER:
            continue
        acks = set(load_acks(seg.ack_path))
        try:
            fd = os.open(seg.path, os.O_RDONLY)
        except FileNotFoundError:
            continue
        try:
            size = min(end, os.fstat(fd).st_size)
            if size <= SEGMENT_HEADER:
                continue
            with mmap.mmap(fd, size, access=mmap.ACCESS_READ) as mm:
                off = SEGMENT_HEADER
                while off + RECORD_HEADER <= size:
                    n, _crc, flags, _size = _rec_unpack(mm, off)
                    if flags & FLAG_PERSISTENT and off not in acks:
                        out.append(seg.base | off)
                    off += RECORD_HEADER + n
        finally:
            os.close(fd)
    return out
