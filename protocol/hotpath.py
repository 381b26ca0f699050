"""Hand-written encoders for the per-message frames the broker sends.

Each function returns exactly the bytes pamqp's ``frame.marshal`` would; the
property test ``tests/protocol/test_hotpath.py`` checks that on random input.
"""

from __future__ import annotations

import struct

FRAME_HDR = struct.Struct(">BHI")
_QB = struct.Struct(">QB")
_QBI_TAIL = struct.Struct(">I")
_DELIVER_ID = b"\x00\x3c\x00\x3c"
_GET_OK_ID = b"\x00\x3c\x00\x47"
_ACK_FRAME = struct.Struct(">BHIIQBB")  # type ch size method_id tag bits frame_end
_ACK_METHOD = 0x003C0050
_NACK_METHOD = 0x003C0078
_END = b"\xce"
#: frame-end octet of one frame + the header of the next (type, channel, size)
_END_HDR = struct.Struct(">BBHI")


def shortstr(value: str) -> bytes:
    """Length-prefixed UTF-8 (max 255 bytes)."""
    raw = value.encode()
    if len(raw) > 255:
        raise ValueError("shortstr longer than 255 bytes")
    return bytes((len(raw),)) + raw


def deliver_prefix(consumer_tag: str) -> bytes:
    """Method id + consumer tag: the part of Basic.Deliver fixed per consumer."""
    return _DELIVER_ID + shortstr(consumer_tag)


def deliver_frame(channel: int, prefix: bytes, tag: int, redelivered: bool, exrk: bytes) -> bytes:
    """Basic.Deliver method frame. ``exrk`` = shortstr exchange + shortstr routing key."""
    return b"".join(
        (
            FRAME_HDR.pack(1, channel, len(prefix) + 9 + len(exrk)),
            prefix,
            _QB.pack(tag, 1 if redelivered else 0),
            exrk,
            _END,
        )
    )


def get_ok_frame(channel: int, tag: int, redelivered: bool, exrk: bytes, message_count: int) -> bytes:
    """Basic.GetOk method frame."""
    return b"".join(
        (
            FRAME_HDR.pack(1, channel, 4 + 9 + len(exrk) + 4),
            _GET_OK_ID,
            _QB.pack(tag, 1 if redelivered else 0),
            exrk,
            _QBI_TAIL.pack(message_count),
            _END,
        )
    )


def content_frames(channel: int, header: bytes, body: bytes, max_body: int) -> list[bytes]:
    """Content header frame + body frame(s), the body split at ``max_body`` bytes."""
    pack = FRAME_HDR.pack
    out = [pack(2, channel, len(header)), header, _END]
    n = len(body)
    if n <= max_body:
        if n:
            out += (pack(3, channel, n), body, _END)
        return out
    view = memoryview(body)
    for off in range(0, n, max_body):
        chunk = view[off : off + max_body]
        out += (pack(3, channel, len(chunk)), chunk, _END)
    return out


def deliver_parts(
    channel: int, prefix: bytes, tag: int, redelivered: bool, exrk: bytes, header: bytes, body: bytes, max_body: int
) -> tuple | list:
    """Basic.Deliver + content header + body frames as pieces to join: the same bytes as
    ``deliver_frame`` followed by ``content_frames``, built with fewer intermediate objects."""
    n = len(body)
    if 0 < n <= max_body:
        return (
            FRAME_HDR.pack(1, channel, len(prefix) + 9 + len(exrk)),
            prefix,
            _QB.pack(tag, 1 if redelivered else 0),
            exrk,
            _END_HDR.pack(0xCE, 2, channel, len(header)),
            header,
            _END_HDR.pack(0xCE, 3, channel, n),
            body,
            _END,
        )
    return [deliver_frame(channel, prefix, tag, redelivered, exrk), *content_frames(channel, header, body, max_body)]


def confirm_ack_frame(channel: int, tag: int, multiple: bool) -> bytes:
    """Basic.Ack sent as a publisher confirm."""
    return _ACK_FRAME.pack(1, channel, 13, _ACK_METHOD, tag, 1 if multiple else 0, 0xCE)


def confirm_nack_frame(channel: int, tag: int, multiple: bool, requeue: bool = False) -> bytes:
    """Basic.Nack sent as a negative publisher confirm."""
    bits = (1 if multiple else 0) | (2 if requeue else 0)
    return _ACK_FRAME.pack(1, channel, 13, _NACK_METHOD, tag, bits, 0xCE)


def heartbeat_frame() -> bytes:
    return b"\x08\x00\x00\x00\x00\x00\x00\xce"
