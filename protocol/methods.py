"""Encoding of non-hot-path frames through pamqp (the codec of record)."""

from __future__ import annotations

from pamqp import commands, frame, header
from pamqp.base import Frame


def method_frame(channel: int, method: Frame) -> bytes:
    """Marshal one method frame."""
    return frame.marshal(method, channel)


def encode_header(body_size: int, properties: commands.Basic.Properties) -> bytes:
    """The payload of a content header frame (no frame envelope)."""
    return header.ContentHeader(0, body_size, properties).marshal()


def decode_header(payload: bytes) -> commands.Basic.Properties:
    """Decode a content header payload's properties."""
    ch = header.ContentHeader()
    ch.unmarshal(payload)
    return ch.properties
