"""Decoder of AMQP field tables, arrays and values into typed Python values.

On the publish path (every message with headers or arguments): one pass, no
copies beyond each value's own bytes, nesting bounded by ``MAX_DEPTH``.

Pure: no I/O, no broker state.
"""

from __future__ import annotations

import decimal
import struct
from typing import Any

from warren.protocol import fieldtypes as _ft
from warren.protocol.fieldtypes import (
    _FLOAT_STRUCTS,
    TypedBytes,
    TypedFloat,
    TypedInt,
    _decode_timestamp,
)

# Bound by assignment, not by ``from ... import``: CPython compiles ``name.method(...)``
# on a name an import binds as an attribute load (a bound method built per call)
# instead of a method call, and these are called per field on the publish path.
_INT_STRUCTS = _ft._INT_STRUCTS
_U32 = _ft._U32
_DEC_S = _ft._DEC_S


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

