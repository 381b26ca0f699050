"""Encoding of non-hot-path frames through pamqp (the codec of record)."""

from __future__ import annotations

from pamqp import commands, frame, header
from pamqp.base import Frame

from .table import decode_properties


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
