"""Encoding of non-hot-path frames through pamqp (the codec of record)."""

from __future__ import annotations

import functools

from pamqp import commands, frame, header
from pamqp.base import Frame

from .table import decode_properties


@functools.cache
def _unchecked_class(cls: type) -> type:
    # no __slots__ of its own: pamqp marshals the fields its class lists in __slots__
    return type(cls.__name__, (cls,), {"validate": lambda self: None})


def unchecked(cls: type, **fields: object) -> Frame:
    """``cls(**fields)`` without pamqp's validation, for methods that carry names a
    client chose: pamqp refuses names outside its patterns (``a b``) and exchange
    names over 127 bytes, which the wire format and RabbitMQ allow."""
    return _unchecked_class(cls)(**fields)


def method_frame(channel: int, method: Frame) -> bytes:
    """Marshal one method frame."""
    return frame.marshal(method, channel)


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
