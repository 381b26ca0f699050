"""A follower's replication position on disk: which leader log it follows, up to which seq.

Two fixed 64-byte slots written in turn, each ``log_id | u64 seq | u64 counter |
u32 crc``; the valid slot with the highest counter wins, so a torn write of one
slot leaves the other. One ``pwrite`` + ``fsync`` per update, no rename.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from zlib import crc32

from warren.server.cluster.replication.wire import LOG_ID

_SLOT = struct.Struct(f"<{LOG_ID}sQQ")
_CRC = struct.Struct("<I")
SLOT_SIZE = 64
#: "no valid position": the follower must resync fully
NO_LOG = bytes(LOG_ID)


class ReplicaState:
    """The durable ``(log_id, seq)`` of a follower's data directory."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.log_id = NO_LOG
        self.seq = 0
        self._counter = 0
        created = not path.exists()
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        if created:
            # the file's name must be durable before its contents count
            dfd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        best = -1
        for i in range(2):
            raw = os.pread(self._fd, SLOT_SIZE, i * SLOT_SIZE)
            end = _SLOT.size + _CRC.size
            if len(raw) < end:
                continue
            if crc32(raw[: _SLOT.size]) != _CRC.unpack_from(raw, _SLOT.size)[0]:
                continue
            log_id, seq, counter = _SLOT.unpack_from(raw)
            if counter > best:
                best = counter
                self.log_id, self.seq, self._counter = log_id, seq, counter

    def write(self, log_id: bytes, seq: int) -> None:
        """Record ``(log_id, seq)`` durably (blocking: run it in an executor)."""
        counter = self._counter + 1
        body = _SLOT.pack(log_id, seq, counter)
        slot = (body + _CRC.pack(crc32(body))).ljust(SLOT_SIZE, b"\0")
        os.pwrite(self._fd, slot, (counter % 2) * SLOT_SIZE)
        os.fsync(self._fd)
        self._counter = counter
        self.log_id, self.seq = log_id, seq

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
