"""One basic property of a raw content header payload, read or rewritten in place.

``get_headers``/``replace_headers`` and ``get_property``/``set_property`` work on
the payload bytes (class, weight, body size, flags, properties) and leave every
other property byte as it was, so a header the broker changes (dead-lettering,
x-delivery-count, x-delay, BCC) costs no re-encoding of the rest.

Pure: no I/O, no broker state.
"""

from __future__ import annotations

import struct
from typing import Any

from warren.protocol import fieldtypes as _ft
from warren.protocol.fielddecode import decode_table
from warren.protocol.fieldencode import _encode_timestamp, encode_table
from warren.protocol.fieldtypes import _decode_timestamp

# Bound by assignment, not by ``from ... import``: CPython compiles ``name.method(...)``
# on a name an import binds as an attribute load (a bound method built per call)
# instead of a method call, and these are called for every property rewrite.
_U8 = _ft._U8
_U16 = _ft._U16
_U32 = _ft._U32
_U64 = _ft._U64

#: Basic properties in wire order: (pamqp attribute name, flag bit, kind)
PROPERTIES: tuple[tuple[str, int, str], ...] = (
    ("content_type", 0x8000, "shortstr"),
    ("content_encoding", 0x4000, "shortstr"),
    ("headers", 0x2000, "table"),
    ("delivery_mode", 0x1000, "octet"),
    ("priority", 0x0800, "octet"),
    ("correlation_id", 0x0400, "shortstr"),
    ("reply_to", 0x0200, "shortstr"),
    ("expiration", 0x0100, "shortstr"),
    ("message_id", 0x0080, "shortstr"),
    ("timestamp", 0x0040, "timestamp"),
    ("message_type", 0x0020, "shortstr"),
    ("user_id", 0x0010, "shortstr"),
    ("app_id", 0x0008, "shortstr"),
    ("cluster_id", 0x0004, "shortstr"),
)
_BY_NAME = {name: i for i, (name, _b, _k) in enumerate(PROPERTIES)}
_FLAGS_AT = 12  # class id (2), weight (2), body size (8)


def _locate(payload: bytes | bytearray | memoryview) -> tuple[int, int, list[tuple[int, int] | None]]:
    """(first flag word, offset of the first property, [(start, end) or None per property])."""
    try:
        (flags,) = _U16.unpack_from(payload, _FLAGS_AT)
        p = _FLAGS_AT + 2
        word = flags
        while word & 1:  # continuation flag words (none defined for basic): kept as they are
            (word,) = _U16.unpack_from(payload, p)
            p += 2
        first = p
        spans: list[tuple[int, int] | None] = []
        for _name, bit, kind in PROPERTIES:
            if not flags & bit:
                spans.append(None)
                continue
            start = p
            if kind == "shortstr":
                p += 1 + payload[p]
            elif kind == "octet":
                p += 1
            elif kind == "timestamp":
                p += 8
            else:
                (n,) = _U32.unpack_from(payload, p)
                p += 4 + n
            spans.append((start, p))
        if p > len(payload):
            raise ValueError("content header properties truncated")
        return flags, first, spans
    except (struct.error, IndexError) as exc:
        raise ValueError(f"malformed content header: {exc}") from None


def _decode_property(payload: Any, kind: str, start: int, end: int) -> Any:
    if kind == "shortstr":
        return bytes(payload[start + 1 : end]).decode("utf-8", "surrogateescape")
    if kind == "octet":
        return payload[start]
    if kind == "timestamp":
        (raw,) = _U64.unpack_from(payload, start)
        return _decode_timestamp(raw)
    return decode_table(payload, start)[0]


def _encode_property(kind: str, value: Any) -> bytes:
    if kind == "shortstr":
        data = value if isinstance(value, bytes) else str(value).encode("utf-8", "surrogateescape")
        if len(data) > 255:
            raise ValueError(f"shortstr over 255 bytes: {data[:40]!r}...")
        return _U8.pack(len(data)) + data
    if kind == "octet":
        if not 0 <= value <= 255:
            raise ValueError(f"octet out of range: {value}")
        return _U8.pack(value)
    if kind == "timestamp":
        return _encode_timestamp(value)
    return encode_table(value)


def get_property(payload: bytes | bytearray | memoryview, name: str) -> Any:
    """One basic property of a content header payload (None when absent).

    Tables are typed (see the module doc); shortstrs are str."""
    i = _BY_NAME[name]
    _flags, _first, spans = _locate(payload)
    span = spans[i]
    if span is None:
        return None
    return _decode_property(payload, PROPERTIES[i][2], *span)


def set_property(payload: bytes | bytearray | memoryview, name: str, value: Any) -> bytes:
    """``payload`` with one property set (``value``) or removed (None).

    Every other byte (class, weight, body size, the other properties, other flag
    bits) stays as it was."""
    i = _BY_NAME[name]
    bit, kind = PROPERTIES[i][1], PROPERTIES[i][2]
    flags, first, spans = _locate(payload)
    span = spans[i]
    if span is None:
        start = first
        for s in spans[:i]:
            if s is not None:
                start = s[1]
        end = start
    else:
        start, end = span
    if value is None:
        data = b""
        flags &= ~bit
    else:
        data = _encode_property(kind, value)
        flags |= bit
    mv = memoryview(payload)
    return b"".join((mv[:_FLAGS_AT], _U16.pack(flags), mv[_FLAGS_AT + 2 : start], data, mv[end:]))


def get_headers(payload: bytes | bytearray | memoryview) -> dict[str, Any]:
    """The headers table of a content header payload, typed; {} when absent."""
    return get_property(payload, "headers") or {}


def replace_headers(payload: bytes | bytearray | memoryview, headers: dict[str, Any] | None) -> bytes:
    """``payload`` with its headers table replaced (None removes the property; {}
    leaves an empty table, as RabbitMQ does). Other properties are not touched."""
    return set_property(payload, "headers", headers)


def decode_properties(payload: bytes | bytearray | memoryview) -> dict[str, Any]:
    """Every present property by pamqp attribute name (headers typed)."""
    _flags, _first, spans = _locate(payload)
    return {
        name: _decode_property(payload, kind, *span)
        for (name, _bit, kind), span in zip(PROPERTIES, spans, strict=True)
        if span is not None
    }

