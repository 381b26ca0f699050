"""A follower's replication position on disk: which leader log it follows, up to which seq.

Two fixed 64-byte slots written in turn, each ``log_id | u64 seq | u64 counter |
u8 exact | u32 crc``; the valid slot with the highest counter wins, so a torn write
of one slot leaves the other. One ``pwrite`` + ``fsync`` per update, no rename.

``exact``: the stores hold the operations up to ``seq`` and nothing after it (written
by a clean close, after the stores' final fsync). Only then may the node continue in
the next term's log (DESIGN §10.8): a follower killed with operations applied but not
acknowledged may find some of them in its files. The flag is cleared (durably) before
anything is applied again.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

from warren.server.cluster.replication.wire import LOG_ID
from warren.storage.log.crc import crc32

_SLOT = struct.Struct(f"<{LOG_ID}sQQ?")
#: the slot before the exact flag (read as not exact)
_SLOT_V1 = struct.Struct(f"<{LOG_ID}sQQ")
_CRC = struct.Struct("<I")
SLOT_SIZE = 64
#: "no valid position": the follower must resync fully
NO_LOG = bytes(LOG_ID)


class ReplicaState:
    """The durable ``(log_id, seq, exact)`` of a follower's data directory."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.log_id = NO_LOG
        self.seq = 0
        self.exact = False
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
            for layout in (_SLOT, _SLOT_V1):
                if len(raw) < layout.size + _CRC.size:
                    continue
                if crc32(raw[: layout.size]) != _CRC.unpack_from(raw, layout.size)[0]:
                    continue
                log_id, seq, counter, *flag = layout.unpack_from(raw)
                if counter > best:
                    best = counter
                    self.log_id, self.seq, self._counter = log_id, seq, counter
                    self.exact = bool(flag and flag[0])
                break

    def write(self, log_id: bytes, seq: int, exact: bool = False) -> None:
        """Record ``(log_id, seq, exact)`` durably (blocking: run it in an executor)."""
        counter = self._counter + 1
        body = _SLOT.pack(log_id, seq, counter, exact)
        slot = (body + _CRC.pack(crc32(body))).ljust(SLOT_SIZE, b"\0")
        os.pwrite(self._fd, slot, (counter % 2) * SLOT_SIZE)
        os.fdatasync(self._fd)  # the data and, if it grew, the size: not the times
        self._counter = counter
        self.log_id, self.seq, self.exact = log_id, seq, exact

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
