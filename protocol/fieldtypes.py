"""AMQP field values with their wire types: the typed wrappers, the type letters and names.

A decoded value whose wire type is not its plain type's default is a subclass of
the plain type carrying ``amqp_type`` (``TypedInt``, ``TypedFloat``,
``TypedBytes``, ``TypedDatetime``); ``typed(value, letter)`` and the helpers
(``long``, ``signed_int``, ...) make one; ``amqp_type(value)`` is the letter a
value is encoded with; ``type_name`` is RabbitMQ's name for it. The struct
formats of every field type live here too, shared by ``fielddecode``,
``fieldencode`` and ``headersplice``. See ``protocol.table`` for the whole codec.

Pure: no I/O, no broker state.
"""

from __future__ import annotations

import datetime
import decimal
import struct
from typing import Any

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



def _decode_timestamp(raw: int) -> Any:
    if raw <= 0xFFFFFFFF:
        return _EPOCH + datetime.timedelta(seconds=raw)
    # pamqp: "anything above the year 2106 is likely milliseconds"
    try:
        dt = datetime.datetime.fromtimestamp(raw / 1000.0, tz=_UTC)
    except (OverflowError, ValueError, OSError):
        return TypedInt(raw, "T")
    return TypedDatetime.from_raw(raw, dt)



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
