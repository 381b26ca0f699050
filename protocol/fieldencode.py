"""Encoder of AMQP field tables, arrays and values, keeping each value's wire type.

Plain values get RabbitMQ-compatible defaults, typed values (``protocol.fieldtypes``)
their own letter; see ``protocol.table`` for the rules.

Pure: no I/O, no broker state.
"""

from __future__ import annotations

import datetime
import decimal
import struct
from typing import Any

from warren.protocol import fieldtypes as _ft
from warren.protocol.fieldtypes import _FLOAT_STRUCTS, _INT_STRUCTS, _UTC, _check_int, amqp_type

# Bound by assignment, not by ``from ... import``: CPython compiles ``name.method(...)``
# on a name an import binds as an attribute load (a bound method built per call)
# instead of a method call, and these are called per field.
_U8 = _ft._U8
_U32 = _ft._U32
_U64 = _ft._U64
_DEC_S = _ft._DEC_S
_DEC_U = _ft._DEC_U


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

