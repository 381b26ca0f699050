"""Fast scan of the few basic properties the broker needs per message.

Decoding a whole content header with pamqp costs more than the rest of the
broker's per-message work, so the broker only scans for delivery-mode,
priority, expiration and whether a non-empty headers table is present. Full
decoding (``protocol.methods.decode_header``) is left to the features that
need it (headers exchange, CC/BCC, x-delay, dead-lettering).
"""

from __future__ import annotations

import struct

F_CONTENT_TYPE = 0x8000
F_CONTENT_ENCODING = 0x4000
F_HEADERS = 0x2000
F_DELIVERY_MODE = 0x1000
F_PRIORITY = 0x0800
F_CORRELATION_ID = 0x0400
F_REPLY_TO = 0x0200
F_EXPIRATION = 0x0100
F_MESSAGE_ID = 0x0080
F_TIMESTAMP = 0x0040
F_TYPE = 0x0020
F_USER_ID = 0x0010
F_APP_ID = 0x0008
F_CLUSTER_ID = 0x0004

_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")


class ScannedProperties:
    """The properties the broker looks at on every message."""

    __slots__ = ("flags", "delivery_mode", "priority", "expiration", "headers_len", "reply_to", "user_id", "message_id")

    def __init__(self) -> None:
        self.flags = 0
        self.delivery_mode = 0
        self.priority = 0
        self.expiration: str | None = None
        self.headers_len = 0
        self.reply_to: str | None = None
        self.user_id: str | None = None
        self.message_id: str | None = None


EMPTY = ScannedProperties()


def scan(payload: bytes) -> ScannedProperties:
    """Scan a content header payload (class, weight, size, flags, properties).

    Raises ValueError (only) on a malformed or truncated header.
    """
    try:
        (flags,) = _U16.unpack_from(payload, 12)
        if not flags:
            return EMPTY
        p = 14
        if flags & 1:  # continuation flag words (none defined for basic): skip them
            while True:
                (more,) = _U16.unpack_from(payload, p)
                p += 2
                if not more & 1:
                    break
        r = ScannedProperties()
        r.flags = flags
        if flags & F_CONTENT_TYPE:
            p += 1 + payload[p]
        if flags & F_CONTENT_ENCODING:
            p += 1 + payload[p]
        if flags & F_HEADERS:
            (hl,) = _U32.unpack_from(payload, p)
            r.headers_len = hl
            p += 4 + hl
        if flags & F_DELIVERY_MODE:
            r.delivery_mode = payload[p]
            p += 1
        if flags & F_PRIORITY:
            r.priority = payload[p]
            p += 1
        if flags & F_CORRELATION_ID:
            p += 1 + payload[p]
        if flags & F_REPLY_TO:
            n = payload[p]
            r.reply_to = payload[p + 1 : p + 1 + n].decode()
            p += 1 + n
        if flags & F_EXPIRATION:
            n = payload[p]
            r.expiration = payload[p + 1 : p + 1 + n].decode()
            p += 1 + n
        if flags & F_MESSAGE_ID:
            n = payload[p]
            r.message_id = payload[p + 1 : p + 1 + n].decode()
            p += 1 + n
        if flags & F_TIMESTAMP:
            p += 8
        if flags & F_TYPE:
            p += 1 + payload[p]
        if flags & F_USER_ID:
            n = payload[p]
            r.user_id = payload[p + 1 : p + 1 + n].decode()
            p += 1 + n
        if flags & (F_APP_ID | F_CLUSTER_ID):  # not needed, but their lengths must fit too
            if flags & F_APP_ID:
                p += 1 + payload[p]
            if flags & F_CLUSTER_ID:
                p += 1 + payload[p]
        if p > len(payload):
            raise ValueError("content header properties truncated")
        return r
    except (struct.error, IndexError) as exc:
        raise ValueError(f"malformed content header properties: {exc}") from None
