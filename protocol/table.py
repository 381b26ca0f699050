"""Type-preserving AMQP 0-9-1 field tables, with RabbitMQ's type letters.

pamqp (the codec of record) decodes a table into plain Python values and, on
encode, picks the smallest integer type for every int: a header that arrived as
a long ('l') would go out as a short-short ('b'). When the broker changes a
message's headers (dead-lettering, x-delivery-count, x-delay, BCC) the other
values must keep their wire types, and the values the broker adds must have
RabbitMQ's types (x-death ``count`` is a long). This module is that codec.

Type letters (RabbitMQ's ``rabbit_binary_parser``; the AMQP 0-9-1 errata):

====  =====================  ==========================================
t     boolean                ``bool``
b     int8                   ``int``
B     uint8                  ``int``
s     int16                  ``int`` (RabbitMQ: signed short)
u     uint16                 ``int``
I     int32                  ``int``
i     uint32                 ``int``
l     int64                  ``int``
f     float32                ``float``
d     float64                ``float``
D     decimal                ``decimal.Decimal`` (scale octet + 32-bit mantissa)
S     longstr                ``str`` (``bytes`` when not UTF-8, as pamqp)
x     byte array             ``bytearray`` (as pamqp)
A     array                  ``list``
T     timestamp (uint64 s)   ``datetime`` (UTC-aware, as pamqp)
F     table                  ``dict``
V     void                   ``None``
====  =====================  ==========================================

Decoded values are equal (``==``) to what ``pamqp.decode.field_table`` returns
(so a decimal's mantissa is read signed, as pamqp does; RabbitMQ reads it
unsigned: the bytes, which are all the broker passes on, are the same).
Where the plain value's default type (below) is not the wire type, the value is
a subclass of the plain type carrying ``amqp_type`` (``TypedInt``,
``TypedFloat``, ``TypedBytes``, ``TypedDatetime``), so encoding a decoded table
gives back the same bytes. Plain values get RabbitMQ-compatible defaults (the
same as pika's): bool 't', int 'I' if it fits int32 else 'l', float 'd',
str 'S', bytes/bytearray 'x', list 'A', dict 'F', datetime 'T', None 'V',
Decimal 'D'. ``typed(value, letter)`` and the helpers (``long``, ``signed_int``,
``longstr``, ...) make a value with an explicit type. Arithmetic on a typed
value gives a plain value (``count + 1`` is a plain int): wrap it again.

Byte-for-byte round trips hold for everything RabbitMQ, pamqp, pika and this
encoder produce. Not preserved: a boolean octet other than 0/1, pamqp's
undocumented void b'\\x00' (re-encoded as 'V'), and duplicate keys in a table.
Table keys that are not UTF-8 decode with ``surrogateescape`` and re-encode to
the same bytes (pamqp refuses them).

The second half works on a raw content header payload (class, weight, body
size, flags, properties): ``get_headers``/``replace_headers`` and
``get_property``/``set_property`` rewrite one property and leave every other
property byte as it was.

Pure: no I/O, no broker state.
"""

from __future__ import annotations

import datetime
import decimal
import struct
from typing import Any

__all__ = [
    "TYPE_NAMES",
    "type_name",
    "TypedInt",
    "TypedFloat",
    "TypedBytes",
    "TypedDatetime",
    "typed",
    "amqp_type",
    "byte",
    "octet",
    "short",
    "ushort",
    "signed_int",
    "unsigned_int",
    "long",
    "float32",
    "double",
    "longstr",
    "timestamp",
    "encode_table",
    "decode_table",
    "encode_array",
    "decode_array",
    "encode_value",
    "decode_value",
    "MAX_DEPTH",
    "PROPERTIES",
    "get_headers",
    "replace_headers",
    "get_property",
    "set_property",
    "decode_properties",
]

# ----------------------------------------------------------------------------- typed values

_INT_STRUCTS: dict[str, struct.Struct] = {
    "b": struct.Struct(">b"),
    "B": struct.Struct(">B"),
    "s": struct.Struct(">h"),
    "u": struct.Struct(">H"),
    "I": struct.Struct(">i"),
    "i": struct.Struct(">I"),
    "l": struct.Struct(">q"),
    "L": struct.Struct(">q"),  # not RabbitMQ's; pamqp and pika read it as int64: kept as such
    "T": struct.Struct(">Q"),  # a timestamp too far out for datetime stays an int
}
_INT_RANGES: dict[str, tuple[int, int]] = {
    "b": (-(2**7), 2**7 - 1),
    "B": (0, 2**8 - 1),
    "s": (-(2**15), 2**15 - 1),
    "u": (0, 2**16 - 1),
    "I": (-(2**31), 2**31 - 1),
    "i": (0, 2**32 - 1),
    "l": (-(2**63), 2**63 - 1),
    "L": (-(2**63), 2**63 - 1),
    "T": (0, 2**64 - 1),
}
_FLOAT_STRUCTS = {"f": struct.Struct(">f"), "d": struct.Struct(">d")}
_U8 = struct.Struct(">B")
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_DEC_U = struct.Struct(">BI")
_DEC_S = struct.Struct(">Bi")

_UTC = datetime.UTC
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=_UTC)


def _check_int(value: int, letter: str) -> None:
    lo, hi = _INT_RANGES[letter]
    if not lo <= value <= hi:
        raise ValueError(f"{value} out of range for field type {letter!r} ({lo}..{hi})")


class TypedInt(int):
    """An int with its wire type (one of b B s u I i l, or T for an out-of-range timestamp)."""

    amqp_type: str

    def __new__(cls, value: int, amqp_type: str) -> TypedInt:
        if amqp_type not in _INT_RANGES:
            raise ValueError(f"not an integer field type: {amqp_type!r}")
        _check_int(value, amqp_type)
        self = super().__new__(cls, value)
        self.amqp_type = amqp_type
        return self

    def __repr__(self) -> str:
        return f"TypedInt({int(self)!r}, {self.amqp_type!r})"

    def __str__(self) -> str:  # str() and f-strings show the number, as for a plain int
        return int.__repr__(self)

    def __reduce__(self) -> tuple:
        return (TypedInt, (int(self), self.amqp_type))


class TypedFloat(float):
    """A float with its wire type ('f' or 'd'); ``raw`` keeps decoded bytes (NaN payloads)."""

    amqp_type: str
    raw: bytes | None

    def __new__(cls, value: float, amqp_type: str, raw: bytes | None = None) -> TypedFloat:
        if amqp_type not in _FLOAT_STRUCTS:
            raise ValueError(f"not a float field type: {amqp_type!r}")
        self = super().__new__(cls, value)
        self.amqp_type = amqp_type
        self.raw = raw
        return self

    def __repr__(self) -> str:
        return f"TypedFloat({float(self)!r}, {self.amqp_type!r})"

    def __str__(self) -> str:
        return float.__repr__(self)

    def __reduce__(self) -> tuple:
        return (TypedFloat, (float(self), self.amqp_type, self.raw))


class TypedBytes(bytes):
    """Bytes with their wire type: 'S' (a longstr that is not UTF-8) or 'x'."""

    amqp_type: str

    def __new__(cls, value: bytes, amqp_type: str) -> TypedBytes:
        if amqp_type not in ("S", "x"):
            raise ValueError(f"not a byte-string field type: {amqp_type!r}")
        self = super().__new__(cls, value)
        self.amqp_type = amqp_type
        return self

    def __repr__(self) -> str:
        return f"TypedBytes({bytes(self)!r}, {self.amqp_type!r})"

    def __reduce__(self) -> tuple:
        return (TypedBytes, (bytes(self), self.amqp_type))


class TypedDatetime(datetime.datetime):
    """A timestamp ('T') whose raw value is not whole seconds since the epoch in 32 bits.

    pamqp reads a value above 2**32 - 1 as milliseconds; the datetime shows that,
    ``raw`` keeps the integer that was on the wire."""

    amqp_type = "T"
    raw: int | None = None

    @classmethod
    def from_raw(cls, raw: int, dt: datetime.datetime) -> TypedDatetime:
        self = cls(dt.year, dt.month, dt.day, dt.hour, dt.minute, dt.second, dt.microsecond, dt.tzinfo)
        self.raw = raw
        return self

    def __reduce_ex__(self, protocol: Any) -> tuple:  # copy/pickle keep ``raw``
        plain = datetime.datetime(
            self.year, self.month, self.day, self.hour, self.minute, self.second, self.microsecond, self.tzinfo
        )
        return (_typed_datetime, (self.raw, plain))


def _typed_datetime(raw: int, dt: datetime.datetime) -> TypedDatetime:
    return TypedDatetime.from_raw(raw, dt)


def typed(value: Any, amqp_type: str) -> Any:
    """``value`` with an explicit wire type (checked: ValueError when it cannot have it)."""
    t = amqp_type
    if t in ("b", "B", "s", "u", "I", "i", "l", "L"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"field type {t!r} needs an int, got {type(value).__name__}")
        return TypedInt(value, t)
    if t in ("f", "d"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(f"field type {t!r} needs a float, got {type(value).__name__}")
        if t == "d":
            return float(value)
        try:
            _FLOAT_STRUCTS["f"].pack(value)
        except OverflowError as exc:
            raise ValueError(f"{value!r} does not fit field type 'f'") from exc
        return TypedFloat(value, "f")
    if t == "S":
        if isinstance(value, str):
            return str(value)
        if isinstance(value, bytes | bytearray):
            return TypedBytes(bytes(value), "S")
        raise TypeError(f"field type 'S' needs str or bytes, got {type(value).__name__}")
    if t == "x":
        if isinstance(value, bytes | bytearray):
            return bytearray(value)
        raise TypeError(f"field type 'x' needs bytes, got {type(value).__name__}")
    if t == "T":
        if isinstance(value, datetime.datetime):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return _decode_timestamp(value)
        raise TypeError(f"field type 'T' needs a datetime or int, got {type(value).__name__}")
    if t == "t":
        return bool(value)
    if t == "D":
        return value if isinstance(value, decimal.Decimal) else decimal.Decimal(value)
    if t == "A":
        return list(value)
    if t == "F":
        return dict(value)
    if t == "V":
        if value is not None:
            raise TypeError("field type 'V' holds only None")
        return None
    raise ValueError(f"unknown field type {t!r}")


def byte(v: int) -> TypedInt:
    """int8 ('b')."""
    return TypedInt(v, "b")


def octet(v: int) -> TypedInt:
    """uint8 ('B')."""
    return TypedInt(v, "B")


def short(v: int) -> TypedInt:
    """int16 ('s')."""
    return TypedInt(v, "s")


def ushort(v: int) -> TypedInt:
    """uint16 ('u')."""
    return TypedInt(v, "u")


def signed_int(v: int) -> TypedInt:
    """int32 ('I', RabbitMQ's ``signedint``)."""
    return TypedInt(v, "I")


def unsigned_int(v: int) -> TypedInt:
    """uint32 ('i')."""
    return TypedInt(v, "i")


def long(v: int) -> TypedInt:
    """int64 ('l', RabbitMQ's ``long``)."""
    return TypedInt(v, "l")


def float32(v: float) -> TypedFloat:
    """float32 ('f')."""
    return typed(v, "f")


def double(v: float) -> float:
    """float64 ('d'): the default for a float."""
    return float(v)


def longstr(v: str | bytes) -> str | TypedBytes:
    """longstr ('S'): str stays str, bytes become TypedBytes('S')."""
    return typed(v, "S")


def timestamp(v: datetime.datetime | int) -> datetime.datetime | TypedInt:
    """timestamp ('T') from a datetime or seconds since the epoch."""
    return typed(v, "T")


def amqp_type(value: Any) -> str:
    """The type letter ``value`` is encoded with."""
    t = getattr(value, "amqp_type", None)
    if t is not None:
        return t
    if value is None:
        return "V"
    if isinstance(value, bool):
        return "t"
    if isinstance(value, int):
        return "I" if -(2**31) <= value < 2**31 else "l"
    if isinstance(value, float):
        return "d"
    if isinstance(value, str):
        return "S"
    if isinstance(value, bytes | bytearray | memoryview):
        return "x"
    if isinstance(value, dict):
        return "F"
    if isinstance(value, list | tuple):
        return "A"
    if isinstance(value, datetime.datetime):
        return "T"
    if isinstance(value, decimal.Decimal):
        return "D"
    raise TypeError(f"no AMQP field type for {type(value).__name__} ({value!r})")


# ----------------------------------------------------------------------------- encode


def _longstr(data: bytes) -> bytes:
    if len(data) > 0xFFFFFFFF:
        raise ValueError("longstr over 4 GiB")
    return _U32.pack(len(data)) + data


def _encode_decimal(value: decimal.Decimal) -> bytes:
    exponent = value.as_tuple().exponent
    if not isinstance(exponent, int):
        raise ValueError(f"cannot encode {value} as an AMQP decimal")
    if exponent > 0:
        scale, mantissa = 0, int(value)
    else:
        scale = -exponent
        mantissa = int(value.scaleb(scale, decimal.Context(prec=60)))
    if scale > 255:
        raise ValueError(f"decimal scale {scale} out of range 0..255")
    if -(2**31) <= mantissa < 2**31:  # pamqp's (signed) packing
        return _DEC_S.pack(scale, mantissa)
    if 0 <= mantissa <= 0xFFFFFFFF:  # RabbitMQ's (unsigned) range; reads back negative
        return _DEC_U.pack(scale, mantissa)
    raise ValueError(f"decimal mantissa {mantissa} out of range")


def _encode_timestamp(value: Any) -> bytes:
    raw = getattr(value, "raw", None)
    if raw is not None:
        return _U64.pack(raw)
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
            value = value.replace(tzinfo=_UTC)  # naive: UTC, as pamqp
        secs = int(value.timestamp())
    elif isinstance(value, int) and not isinstance(value, bool):
        secs = int(value)
    else:
        raise TypeError(f"field type 'T' needs a datetime or int, got {type(value).__name__}")
    if not 0 <= secs <= 0xFFFFFFFFFFFFFFFF:
        raise ValueError(f"timestamp {secs} out of range (unsigned 64-bit seconds)")
    return _U64.pack(secs)


def _encode_into(out: list[bytes], value: Any) -> None:
    t = amqp_type(value)
    if t in _INT_STRUCTS and t != "T":
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"field type {t!r} needs an int, got {type(value).__name__}")
        _check_int(value, t)
        out.append(t.encode() + _INT_STRUCTS[t].pack(value))
    elif t == "S":
        if isinstance(value, str):
            out.append(b"S" + _longstr(value.encode("utf-8", "surrogateescape")))
        else:
            out.append(b"S" + _longstr(bytes(value)))
    elif t == "F":
        out.append(b"F")
        out.append(encode_table(value))
    elif t == "A":
        out.append(b"A")
        out.append(encode_array(value))
    elif t == "t":
        out.append(b"t\x01" if value else b"t\x00")
    elif t == "V":
        out.append(b"V")
    elif t in _FLOAT_STRUCTS:
        raw = getattr(value, "raw", None)
        s = _FLOAT_STRUCTS[t]
        if raw is not None and len(raw) == s.size:
            out.append(t.encode() + raw)
        else:
            try:
                out.append(t.encode() + s.pack(value))
            except (OverflowError, struct.error) as exc:
                raise ValueError(f"{value!r} does not fit field type {t!r}") from exc
    elif t == "x":
        out.append(b"x" + _longstr(bytes(value)))
    elif t == "T":
        out.append(b"T" + _encode_timestamp(value))
    elif t == "D":
        if not isinstance(value, decimal.Decimal):
            raise TypeError(f"field type 'D' needs a Decimal, got {type(value).__name__}")
        out.append(b"D" + _encode_decimal(value))
    else:
        raise ValueError(f"unknown field type {t!r}")


def encode_value(value: Any) -> bytes:
    """One field value: type letter + data."""
    out: list[bytes] = []
    _encode_into(out, value)
    return b"".join(out)


def encode_table(table: dict[str, Any] | None) -> bytes:
    """A field table with its uint32 length prefix; keys keep their order."""
    if not table:
        return b"\x00\x00\x00\x00"
    out: list[bytes] = []
    for key, value in table.items():
        if not isinstance(key, str):
            raise TypeError(f"table keys are str, got {type(key).__name__}")
        k = key.encode("utf-8", "surrogateescape")
        if len(k) > 255:
            raise ValueError(f"table key over 255 bytes: {key[:40]!r}...")
        out.append(_U8.pack(len(k)) + k)
        try:
            _encode_into(out, value)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"{key}: {exc}") from None
    return _longstr(b"".join(out))


def encode_array(items: list[Any] | tuple[Any, ...]) -> bytes:
    """A field array with its uint32 length prefix."""
    out: list[bytes] = []
    for v in items:
        _encode_into(out, v)
    return _longstr(b"".join(out))


# ----------------------------------------------------------------------------- decode


def _decode_timestamp(raw: int) -> Any:
    if raw <= 0xFFFFFFFF:
        return _EPOCH + datetime.timedelta(seconds=raw)
    # pamqp: "anything above the year 2106 is likely milliseconds"
    try:
        dt = datetime.datetime.fromtimestamp(raw / 1000.0, tz=_UTC)
    except (OverflowError, ValueError, OSError):
        return TypedInt(raw, "T")
    return TypedDatetime.from_raw(raw, dt)


def _need(buf: Any, end: int, limit: int) -> None:
    if end > limit:
        raise ValueError("field table truncated")


#: deepest nesting of tables/arrays decoded (RabbitMQ has no limit; no client nests
#: more than a few levels, and an unbounded depth is unbounded recursion here)
MAX_DEPTH = 64


def _int_value(v: int, t: str) -> int:
    """A decoded integer: plain when its wire type is the default one, else typed
    (built without TypedInt's range check: the struct already bounds it)."""
    if t == "I" or (t == "l" and not -(2**31) <= v < 2**31):
        return v
    if t == "b" or t == "B":  # 512 possible values: shared (typed values are never mutated)
        ti = _SMALL.get((t, v))
        if ti is None:
            ti = _SMALL[(t, v)] = _int_value_new(v, t)
        return ti
    return _int_value_new(v, t)


def _int_value_new(v: int, t: str) -> TypedInt:
    ti = int.__new__(TypedInt, v)
    ti.amqp_type = t
    return ti


_SMALL: dict[tuple[str, int], TypedInt] = {}


def _value(buf: Any, p: int, limit: int, depth: int = 0) -> tuple[Any, int]:
    """Decode the value whose type letter is at ``buf[p]``; returns (value, next offset).

    One pass, no copies beyond each value's own bytes: O(size of the value)."""
    if p >= limit:
        raise ValueError("field value truncated")
    t = chr(buf[p])
    p += 1
    if t == "S" or t == "x":
        _need(buf, p + 4, limit)
        (n,) = _U32.unpack_from(buf, p)
        p += 4
        _need(buf, p + n, limit)
        data = bytes(buf[p : p + n])
        p += n
        if t == "x":
            return bytearray(data), p
        try:
            return data.decode("utf-8"), p
        except UnicodeDecodeError:
            return TypedBytes(data, "S"), p
    if t == "V" or t == "\x00":
        return None, p
    if t == "t":
        _need(buf, p + 1, limit)
        return buf[p] != 0, p + 1
    s = _INT_STRUCTS.get(t)
    if s is not None:
        _need(buf, p + s.size, limit)
        (v,) = s.unpack_from(buf, p)
        p += s.size
        if t == "T":
            return _decode_timestamp(v), p
        return _int_value(v, t), p
    if t == "F":
        return _table(buf, p, limit, depth + 1)
    if t == "A":
        return _array(buf, p, limit, depth + 1)
    if t == "d":
        _need(buf, p + 8, limit)
        return _FLOAT_STRUCTS["d"].unpack_from(buf, p)[0], p + 8
    if t == "f":
        _need(buf, p + 4, limit)
        raw = bytes(buf[p : p + 4])
        return TypedFloat(_FLOAT_STRUCTS["f"].unpack(raw)[0], "f", raw), p + 4
    if t == "D":
        _need(buf, p + 5, limit)
        scale, mantissa = _DEC_S.unpack_from(buf, p)
        return decimal.Decimal(mantissa).scaleb(-scale, decimal.Context(prec=60)), p + 5
    raise ValueError(f"unknown field type {t!r}")


def _array(buf: Any, p: int, limit: int, depth: int = 0) -> tuple[list[Any], int]:
    if depth > MAX_DEPTH:
        raise ValueError(f"field tables and arrays nested deeper than {MAX_DEPTH} levels")
    _need(buf, p + 4, limit)
    (n,) = _U32.unpack_from(buf, p)
    p += 4
    end = p + n
    _need(buf, end, limit)
    items = []
    while p < end:
        v, p = _value(buf, p, end, depth)
        items.append(v)
    return items, p


def _table(buf: Any, p: int, limit: int, depth: int = 0) -> tuple[dict[str, Any], int]:
    if depth > MAX_DEPTH:
        raise ValueError(f"field tables and arrays nested deeper than {MAX_DEPTH} levels")
    _need(buf, p + 4, limit)
    (n,) = _U32.unpack_from(buf, p)
    p += 4
    end = p + n
    _need(buf, end, limit)
    out: dict[str, Any] = {}
    while p < end:
        kl = buf[p]
        p += 1
        _need(buf, p + kl, end)
        key = bytes(buf[p : p + kl]).decode("utf-8", "surrogateescape")
        p += kl
        out[key], p = _value(buf, p, end, depth)
    return out, p


def decode_table(buf: bytes | bytearray | memoryview, offset: int = 0) -> tuple[dict[str, Any], int]:
    """Decode the table (uint32 length + fields) at ``offset``: (table, offset after it).

    Linear in the table's size; raises ValueError on malformed or truncated data
    and on nesting deeper than ``MAX_DEPTH``."""
    try:
        return _table(buf, offset, len(buf))
    except (struct.error, IndexError) as exc:
        raise ValueError(f"malformed field table: {exc}") from None


def decode_array(buf: bytes | bytearray | memoryview, offset: int = 0) -> tuple[list[Any], int]:
    """Decode the array (uint32 length + values) at ``offset``: (items, offset after it)."""
    try:
        return _array(buf, offset, len(buf))
    except (struct.error, IndexError) as exc:
        raise ValueError(f"malformed field array: {exc}") from None


def decode_value(buf: bytes | bytearray | memoryview, offset: int = 0) -> tuple[Any, int]:
    """Decode one field value (type letter + data) at ``offset``."""
    try:
        return _value(buf, offset, len(buf))
    except (struct.error, IndexError) as exc:
        raise ValueError(f"malformed field value: {exc}") from None


# ----------------------------------------------------------------------------- content header properties

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


#: RabbitMQ's names of the field types, as its error texts spell them
TYPE_NAMES = {
    "t": "bool",
    "b": "byte",
    "B": "unsignedbyte",
    "s": "short",
    "u": "unsignedshort",
    "I": "signedint",
    "i": "unsignedint",
    "l": "long",
    "f": "float",
    "d": "double",
    "D": "decimal",
    "S": "longstr",
    "x": "binary",
    "A": "array",
    "T": "timestamp",
    "F": "table",
    "V": "void",
}


def type_name(value: Any) -> str:
    """RabbitMQ's name for the field type ``value`` is (or would be) encoded with."""
    try:
        return TYPE_NAMES.get(amqp_type(value), "longstr")
    except TypeError:
        return type(value).__name__
