"""Structural check of a client's field table without decoding it.

The decoders (pamqp's and ``protocol.table``) and everything that later walks a
decoded table (JSON for the management API, re-encoding for dead-lettering) are
recursive: a table nested a few hundred levels deep, which fits in 14 KB, would
raise RecursionError far from where it came in. This check walks the bytes with
an explicit stack, so a client's table is refused where it arrives, with a
one-line reason, when it is malformed or nested deeper than ``MAX_DEPTH``.
RabbitMQ has no nesting limit; no real client nests tables more than a few levels.
"""

from __future__ import annotations

import struct

#: deepest nesting of tables/arrays accepted from a client (the outermost table is 1)
MAX_DEPTH = 64

_U32 = struct.Struct(">I")
#: payload sizes of the fixed-size field types (as protocol.table reads them)
_FIXED = {
    ord("t"): 1, ord("b"): 1, ord("B"): 1, ord("s"): 2, ord("u"): 2, ord("I"): 4, ord("i"): 4,
    ord("l"): 8, ord("L"): 8, ord("T"): 8, ord("d"): 8, ord("f"): 4, ord("D"): 5, ord("V"): 0,
}
_LONG = (ord("S"), ord("x"))
_TABLE, _ARRAY = ord("F"), ord("A")


def check_table(buf: bytes | bytearray | memoryview, offset: int = 0, max_depth: int = MAX_DEPTH) -> int:
    """Check the field table (uint32 length + fields) at ``offset``; return the offset after it.

    Raises ValueError with a short reason if it is truncated, has an unknown field
    type, or nests tables/arrays more than ``max_depth`` levels."""
    limit = len(buf)
    if offset + 4 > limit:
        raise ValueError("field table truncated")
    end = offset + 4 + _U32.unpack_from(buf, offset)[0]
    if end > limit:
        raise ValueError("field table truncated")
    p = offset + 4
    # (is_table, end offset) of each open table/array
    stack = [(True, end)]
    while stack:
        is_table, end = stack[-1]
        if p == end:
            stack.pop()
            continue
        if is_table:
            p += 1 + buf[p]  # field name (shortstr)
        if p >= end:
            raise ValueError("field table truncated")
        t = buf[p]
        p += 1
        size = _FIXED.get(t)
        if size is not None:
            p += size
        elif t in _LONG or t == _TABLE or t == _ARRAY:
            if p + 4 > end:
                raise ValueError("field table truncated")
            n = _U32.unpack_from(buf, p)[0]
            p += 4
            if t in _LONG:
                p += n
            else:
                if len(stack) >= max_depth:
                    raise ValueError(f"field tables nested more than {max_depth} levels deep")
                if p + n > end:
                    raise ValueError("field table truncated")
                stack.append((t == _TABLE, p + n))
                continue
        else:
            raise ValueError(f"unknown field type {chr(t)!r}")
        if p > end:
            raise ValueError("field table truncated")
    return p


def headers_offset(header: bytes | bytearray | memoryview) -> int:
    """Offset of the headers table in a basic content header payload (-1 if absent).
    The payload has been through ``protocol.properties.scan``, so its layout is sound."""
    flags = (header[12] << 8) | header[13]
    if not flags & 0x2000:
        return -1
    p = 14
    more = flags
    while more & 1:  # continuation flag words (none defined for basic)
        more = (header[p] << 8) | header[p + 1]
        p += 2
    if flags & 0x8000:
        p += 1 + header[p]
    if flags & 0x4000:
        p += 1 + header[p]
    return p
