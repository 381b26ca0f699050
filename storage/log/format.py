"""On-disk format of a log store: segment files, record headers, ack files.

A lane directory holds ``seg-NNNNNNNNN.wlog`` segment files and, next to each,
an optional ``seg-NNNNNNNNN.acks`` ack file.

Segment file::

    b"WLOG" u32 version            (8 bytes, little-endian; 1, 2 or 3)
    record*

Record (13-byte header, little-endian)::

    u32 length   of payload
    u32 crc32    of flags + size + payload (so a flipped flag or size is caught);
                 versions 2 and 3: started from ``crc_seed(segment id)``, version 1: from 0
    u8  flags    bit 0: persistent; other bits must be 0
    u32 size     the record's ``size`` attribute, so that recovery can rebuild
                 byte counts without decoding payloads
    payload      ``encode(record)``

Ack file: a sequence of u32 little-endian record offsets within its segment, in
the order they were acked (a torn last entry is ignored).

Version 2 exists for recycled segment files (:mod:`storage.log.spare`): a drained
segment's file is renamed to the next segment's name and overwritten in place, so
past the end of the new records the file still holds the old ones, with CRCs that
were valid. Seeded by the segment id, the old CRCs no longer match: recovery, and a
resync scan racing a recycle, stop where the new records end. (For one length, the
CRCs of the same bytes from two different seeds always differ: a whole stale record
never passes; a torn one is as unlikely as any corruption.) Version 3 is version 2 in a
recycled file: recovery expects the old records there and does not warn of a torn tail.

A record's *position* is ``segment_id << 32 | offset``: unique and increasing
within a store (segment ids never repeat, offsets grow within a segment).
"""

from __future__ import annotations

import re
import struct
import sys
from array import array
from pathlib import Path

#: the header of segments written now (version 2: CRCs seeded by the segment id)
MAGIC = b"WLOG" + struct.pack("<I", 2)
#: version 2 in a recycled file (old records lie past the new ones)
MAGIC_RECYCLED = b"WLOG" + struct.pack("<I", 3)
#: the header of segments written before version 2 (CRCs from 0); still read
MAGIC_V1 = b"WLOG" + struct.pack("<I", 1)
#: bytes before the first record of a segment
SEGMENT_HEADER = len(MAGIC)

#: length, crc, flags, size
RECORD = struct.Struct("<IIBI")
RECORD_HEADER = RECORD.size  # 13
#: length + crc, written in front of META
LEN_CRC = struct.Struct("<II")
#: flags + size: the start of what the crc covers
META = struct.Struct("<BI")
#: where the crc-covered part of a record starts, relative to the record
CRC_START = LEN_CRC.size

FLAG_PERSISTENT = 1
#: flag bits a valid record may carry
FLAGS_KNOWN = FLAG_PERSISTENT

OFFSET_MASK = 0xFFFFFFFF
SEGMENT_SHIFT = 32
#: records may not reach past this offset (ack files hold u32 offsets)
MAX_OFFSET = 1 << 32

_SEGMENT_RE = re.compile(r"^seg-(\d+)\.(wlog|acks)$")

_BIG_ENDIAN = sys.byteorder == "big"


def crc_seed(segment_id: int) -> int:
    """The CRC start value of records in version-2 segment ``segment_id``: an odd
    multiplier is a bijection mod 2**32, so ids less than 2**32 apart never share a
    seed, and only id 0 (never used: ids start at 1) gets 0, version 1's start."""
    return (segment_id * 0x9E3779B1) & 0xFFFFFFFF


def header_seed(header: bytes | memoryview, segment_id: int) -> int | None:
    """The CRC seed of a segment's records given its first ``SEGMENT_HEADER`` bytes
    (None: not a segment header)."""
    if header == MAGIC or header == MAGIC_RECYCLED:
        return crc_seed(segment_id)
    if header == MAGIC_V1:
        return 0
    return None


def segment_name(segment_id: int) -> str:
    """File name of segment ``segment_id``."""
    return f"seg-{segment_id:09d}.wlog"


def ack_name(segment_id: int) -> str:
    """File name of the ack file of segment ``segment_id``."""
    return f"seg-{segment_id:09d}.acks"


def parse_name(name: str) -> tuple[int, str] | None:
    """``(segment_id, "wlog" | "acks")`` for a store file name, else None."""
    m = _SEGMENT_RE.match(name)
    if m is None:
        return None
    return int(m.group(1)), m.group(2)


def new_ack_array() -> array:
    """An empty array of u32 ack offsets (native order in memory)."""
    return array("I")


def ack_bytes(acks: array) -> bytes:
    """``acks`` as the little-endian bytes an ack file holds."""
    if _BIG_ENDIAN:  # pragma: no cover - exercised only on big-endian hosts
        acks = array("I", acks)
        acks.byteswap()
    return acks.tobytes()


def load_acks(path: Path) -> array:
    """Sorted ack offsets from an ack file (missing file: none; torn last entry ignored)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return new_ack_array()
    acks = new_ack_array()
    acks.frombytes(data[: len(data) - len(data) % 4])
    if _BIG_ENDIAN:  # pragma: no cover
        acks.byteswap()
    # Acks arrive in consume order, which is nearly always log order: check
    # before paying for a sort.
    if any(acks[i] > acks[i + 1] for i in range(len(acks) - 1)):
        acks = array("I", sorted(acks))
    return acks
