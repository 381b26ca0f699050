"""Encoding of non-hot-path frames through pamqp (the codec of record).

Server-sent methods are encoded field by field with pamqp's type encoders but
without pamqp's ``validate()``, and with RabbitMQ's bytes for reserved fields:

- pamqp checks outgoing names against ``[a-zA-Z0-9-_.:@#,/+ ]``; RabbitMQ
  accepts any UTF-8 short string as a queue, exchange or consumer tag name, and
  a broker must be able to echo back what it accepted (Queue.DeclareOk,
  Basic.ConsumeOk, Basic.Return, Basic.Cancel...); ``protocol.commands`` builds
  methods without those checks, this module encodes them without them;
- pamqp fills reserved fields with the spec's nominal values (Channel.OpenOk's
  long string ``"0"``); RabbitMQ sends them empty, and some clients
  (@cloudamqp/amqp-client) parse only that.
"""

from __future__ import annotations

import struct

from pamqp import commands, encode, header
from pamqp.base import Frame
from warren.protocol.headersplice import decode_properties

_FRAME_HDR = struct.Struct(">BHI")
_INDEX = struct.Struct(">I")

#: reserved fields of server-sent methods, as RabbitMQ 3.10 encodes them
_RESERVED: dict[int, dict[str, bytes]] = {
    commands.Channel.OpenOk.index: {"channel_id": b"\x00\x00\x00\x00"},  # empty long string
    commands.Connection.OpenOk.index: {"known_hosts": b"\x00"},  # empty short string
}


def encode_method(method: Frame) -> bytes:
    """A method's payload (class/method id + arguments), pamqp's encoding minus its validation."""
    reserved = _RESERVED.get(method.index)
    out = [_INDEX.pack(method.index)]
    byte = offset = 0
    in_bits = False
    for name in method.__slots__:
        kind = method.amqp_type(name)
        if kind == "bit":
            if not in_bits:
                byte = offset = 0
                in_bits = True
            if getattr(method, name, False):
                byte |= 1 << offset
            offset += 1
            if offset == 8:
                out.append(bytes((byte,)))
                in_bits = False
            continue
        if in_bits:
            out.append(bytes((byte,)))
            in_bits = False
        if reserved is not None and name in reserved:
            out.append(reserved[name])
        else:
            out.append(encode.by_type(getattr(method, name, 0), kind))
    if in_bits:
        out.append(bytes((byte,)))
    return b"".join(out)


def method_frame(channel: int, method: Frame) -> bytes:
    """Marshal one method frame."""
    payload = encode_method(method)
    return b"".join((_FRAME_HDR.pack(1, channel, len(payload)), payload, b"\xce"))


def encode_header(body_size: int, properties: commands.Basic.Properties) -> bytes:
    """The payload of a content header frame (no frame envelope)."""
    return header.ContentHeader(0, body_size, properties).marshal()


def decode_header(payload: bytes) -> commands.Basic.Properties:
    """Decode a content header payload's properties (absent ones are None, as pamqp).

    Decoded by ``protocol.table`` (one pass, depth-bounded, typed header values):
    pamqp's table decoding is quadratic in the table's size."""
    props = commands.Basic.Properties.__new__(commands.Basic.Properties)
    for name in commands.Basic.Properties.__slots__:
        setattr(props, name, None)
    props.cluster_id = ""
    for name, value in decode_properties(payload).items():
        setattr(props, name, value)
    return props
