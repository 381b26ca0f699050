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

``get_headers``/``replace_headers`` and ``get_property``/``set_property``
work on a raw content header payload (class, weight, body size, flags,
properties): they rewrite one property and leave every other property byte as
it was.

This module gathers the codec's public names; the code lives by concern in
``fieldtypes`` (typed values, type letters and names), ``fielddecode``,
``fieldencode`` and ``headersplice`` (content header properties).

Pure: no I/O, no broker state.
"""


from __future__ import annotations

from warren.protocol.fielddecode import MAX_DEPTH, decode_array, decode_table, decode_value
from warren.protocol.fieldencode import encode_array, encode_table, encode_value
from warren.protocol.fieldtypes import (
    TYPE_NAMES,
    TypedBytes,
    TypedDatetime,
    TypedFloat,
    TypedInt,
    amqp_type,
    byte,
    double,
    float32,
    long,
    longstr,
    octet,
    short,
    signed_int,
    timestamp,
    type_name,
    typed,
    unsigned_int,
    ushort,
)
from warren.protocol.headersplice import (
    PROPERTIES,
    decode_properties,
    get_headers,
    get_property,
    replace_headers,
    set_property,
)

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
