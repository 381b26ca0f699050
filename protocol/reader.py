"""Incremental frame reader.

``FrameReader.feed(data)`` returns every complete frame in the bytes received so
far, as tuples whose first element is a ``K_*`` kind from ``constants``:

* ``(K_PUBLISH, ch, exchange, routing_key, mandatory, immediate, exrk)`` where
  ``exrk`` is the raw shortstr-encoded exchange + routing key, reused verbatim
  in Basic.Deliver so the hot path never re-encodes them;
* ``(K_ACK, ch, tag, multiple)``, ``(K_NACK, ch, tag, multiple, requeue)``,
  ``(K_REJECT, ch, tag, requeue)``;
* ``(K_MESSAGE, ch, exchange, routing_key, mandatory, immediate, exrk, header,
  body)``: a publish whose content header and single body frame came in the
  same buffer (the common case; ``unfuse`` expands it);
* ``(K_HEADER, ch, class_id, body_size, raw_payload)``;
* ``(K_BODY, ch, payload)``; ``(K_HEARTBEAT, ch)``;
* ``(K_METHOD, ch, pamqp_method)`` for every other method (decoded by pamqp);
* ``(K_ERROR, ch, FrameError)`` last, when the stream is broken; the reader
  then refuses further input.

The per-message frames are parsed by hand with precompiled structs; everything
else goes through pamqp, the codec of record.
"""

from __future__ import annotations

import os
import struct

from pamqp.base import Frame
from warren.protocol import commands
from warren.protocol.constants import (
    BASIC_ACK,
    BASIC_NACK,
    BASIC_PUBLISH,
    BASIC_REJECT,
    FRAME_BODY,
    FRAME_END,
    FRAME_ERROR,
    FRAME_HEADER,
    FRAME_HEARTBEAT,
    FRAME_METHOD,
    K_ACK,
    K_BODY,
    K_HEADER,
    K_HEARTBEAT,
    K_METHOD,
    K_NACK,
    K_PUBLISH,
    K_REJECT,
    NOT_IMPLEMENTED,
    UNEXPECTED_FRAME,
)
from warren.protocol.errors import FrameError
from warren.protocol.fielddecode import decode_table

try:  # the per-message frames in C when the extension was built (pip builds it if it can)
    from warren.protocol import _framescan
except ImportError:  # pragma: no cover - a build without a compiler: the same, in Python
    _framescan = None

K_ERROR = 99
#: publish + content header + single body frame, fused:
#: ``(K_MESSAGE, ch, exchange, routing_key, mandatory, immediate, exrk, header, body)``
K_MESSAGE = 14
#: the C scanner, unless absent, switched off, or built from another version's constants
_scan = (
    _framescan.scan
    if _framescan is not None
    and not os.environ.get("WARREN_PURE_PYTHON")
    and (_framescan.K_ACK, _framescan.K_MESSAGE) == (K_ACK, K_MESSAGE)
    else None
)


def unfuse(frames: list[tuple]) -> list[tuple]:
    """Expand K_MESSAGE tuples into the K_PUBLISH, K_HEADER, K_BODY tuples they stand for."""
    out: list[tuple] = []
    for t in frames:
        if t[0] != K_MESSAGE:
            out.append(t)
            continue
        _k, ch, ex, rk, mandatory, immediate, exrk, header, body = t
        class_id, _w, body_size = _HDR_PAYLOAD.unpack_from(header, 0)
        out.append((K_PUBLISH, ch, ex, rk, mandatory, immediate, exrk))
        out.append((K_HEADER, ch, class_id, body_size, header))
        if body_size:
            out.append((K_BODY, ch, body))
    return out

_FRAME_HDR = struct.Struct(">BHI")
_U32 = struct.Struct(">I")
_HDR_PAYLOAD = struct.Struct(">HHQ")
_ACK = struct.Struct(">QB")
_PUBLISH_ID = BASIC_PUBLISH
_ACK_ID = BASIC_ACK
_NACK_ID = BASIC_NACK
_REJECT_ID = BASIC_REJECT


def decode_method(payload: bytes | memoryview) -> Frame:
    """Decode a method frame payload into pamqp's method class; FrameError on anything wrong.

    The fields are read here, not by pamqp's ``unmarshal``: pamqp decodes tables by
    slicing the rest of the buffer for every value (quadratic in the frame size, and
    reachable before login through Start-Ok's client properties). ``protocol.table``
    decodes in one pass, keeps each value's wire type (error texts name the type
    the client sent, as RabbitMQ's do) and bounds the nesting depth."""
    if len(payload) < 4:
        raise FrameError(FRAME_ERROR, "method frame too short")
    (index,) = _U32.unpack_from(payload, 0)
    cls = commands.INDEX_MAPPING.get(index)
    if cls is None:
        raise FrameError(
            NOT_IMPLEMENTED if (index >> 16) in _KNOWN_CLASSES else FRAME_ERROR,
            f"unknown method class {index >> 16} method {index & 0xFFFF}",
            index >> 16,
            index & 0xFFFF,
        )
    method = cls.__new__(cls)
    try:
        _unmarshal(method, _FIELDS[index], bytes(payload[4:]))
    except UnicodeDecodeError as exc:
        raise FrameError(
            FRAME_ERROR, "Malformed UTF-8 in shortstr", index >> 16, index & 0xFFFF
        ) from exc
    except (ValueError, IndexError, struct.error) as exc:
        # RabbitMQ: 501 FRAME_ERROR "cannot decode <<...>>" with the method's ids
        raise FrameError(
            FRAME_ERROR, f"cannot decode {cls.name}: {exc}", index >> 16, index & 0xFFFF
        ) from None
    return method


_U16 = struct.Struct(">H")
_U64 = struct.Struct(">Q")


def _unmarshal(method: Frame, fields: tuple[tuple[str, str], ...], raw: bytes) -> None:
    """Set ``method``'s fields from ``raw`` (the payload after the method id), in one pass."""
    p = 0
    n = len(raw)
    bits = -1  # octet holding the current run of bit fields
    bit = 0
    for name, kind in fields:
        if kind == "bit":
            if bits < 0 or bit == 8:
                if p >= n:
                    raise ValueError("bit field truncated")
                bits = raw[p]
                p += 1
                bit = 0
            value: object = bool(bits >> bit & 1)
            bit += 1
        else:
            bits = -1
            if kind == "shortstr":
                if p >= n:
                    raise ValueError("shortstr truncated")
                end = p + 1 + raw[p]
                if end > n:
                    raise ValueError("shortstr truncated")
                value = raw[p + 1 : end].decode("utf-8")
                p = end
            elif kind == "table":
                value, p = decode_table(raw, p)
            elif kind == "longstr":
                if p + 4 > n:
                    raise ValueError("longstr truncated")
                end = p + 4 + _U32.unpack_from(raw, p)[0]
                if end > n:
                    raise ValueError("longstr truncated")
                data = raw[p + 4 : end]
                try:  # as pamqp: text when it is UTF-8, bytes otherwise (SASL responses)
                    value = data.decode("utf-8")
                except UnicodeDecodeError:
                    value = data
                p = end
            elif kind == "short":
                value = _U16.unpack_from(raw, p)[0]
                p += 2
            elif kind == "long":
                value = _U32.unpack_from(raw, p)[0]
                p += 4
            elif kind == "longlong":
                value = _U64.unpack_from(raw, p)[0]
                p += 8
            elif kind == "octet":
                if p >= n:
                    raise ValueError("octet truncated")
                value = raw[p]
                p += 1
            else:  # no AMQP 0-9-1 method has another field type
                raise ValueError(f"unsupported field type {kind}")
        setattr(method, name, value)


#: each method's fields in wire order with pamqp's type names, by method index
_FIELDS: dict[int, tuple[tuple[str, str], ...]] = {
    index: tuple((name, getattr(cls, "_" + name)) for name in cls.__slots__)
    for index, cls in commands.INDEX_MAPPING.items()
}


_KNOWN_CLASSES = frozenset({10, 20, 40, 50, 60, 85, 90})


class FrameReader:
    """Turns a byte stream (after the protocol header) into frame tuples."""

    __slots__ = ("_buf", "max_payload", "broken")

    def __init__(self, frame_max: int = 131072) -> None:
        self._buf = b""
        # RabbitMQ accepts payloads up to frame_max (frame_max - 8 plus an 8-byte
        # "fudge" for clients that forget the frame envelope); so do we.
        self.max_payload = frame_max
        self.broken = False

    def set_frame_max(self, frame_max: int) -> None:
        self.max_payload = frame_max or 0xFFFFFFFF

    def feed(self, data: bytes) -> list[tuple]:
        if self.broken:
            return []
        if self._buf:
            data = self._buf + data
        out: list[tuple] = []
        append = out.append
        unpack_hdr = _FRAME_HDR.unpack_from
        n = len(data)
        pos = 0
        max_payload = self.max_payload
        scan = _scan if type(data) is bytes else None
        try:
            while True:
                if scan is not None:
                    # the publishes and acks in C; it stops at any other frame (or at
                    # anything wrong), which the code below takes, with its checks
                    pos = scan(data, pos, max_payload, out)
                if n - pos < 7:  # a frame header is enough to refuse an oversized frame
                    break
                ftype, ch, size = unpack_hdr(data, pos)
                if size > max_payload:
                    raise FrameError(  # RabbitMQ's text
                        FRAME_ERROR,
                        f"type {ftype}, all octets = <<>>: {{frame_too_large,{size},{max_payload - 8}}}",
                    )
                end = pos + 7 + size
                if end >= n:
                    break
                if data[end] != FRAME_END:
                    # RabbitMQ's text: the frame type, its payload as an Erlang binary, the octet
                    octets = ",".join(str(b) for b in data[pos + 7:end])
                    raise FrameError(
                        FRAME_ERROR,
                        f"type {ftype}, all octets = <<{octets}>>: {{invalid_frame_end_marker,{data[end]}}}",
                    )
                start = pos + 7
                if ftype == FRAME_METHOD:
                    if size < 4:
                        raise FrameError(FRAME_ERROR, "method frame too short")
                    (mid,) = _U32.unpack_from(data, start)
                    if mid == _PUBLISH_ID:
                        # ticket(2) exchange(shortstr) routing_key(shortstr) bits(1)
                        if size < 9:
                            raise FrameError(FRAME_ERROR, "cannot decode Basic.Publish", 60, 40)
                        p = start + 6
                        ex_end = p + 1 + data[p]
                        if ex_end >= end:  # never read past this frame
                            raise FrameError(FRAME_ERROR, "cannot decode Basic.Publish", 60, 40)
                        rk_end = ex_end + 1 + data[ex_end]
                        if rk_end + 1 != end:
                            raise FrameError(FRAME_ERROR, "cannot decode Basic.Publish", 60, 40)
                        bits = data[rk_end]
                        exchange = data[p + 1 : ex_end].decode()
                        routing_key = data[ex_end + 1 : rk_end].decode()
                        exrk = data[p:rk_end]
                        # Fast path: when the content header and a single body frame
                        # follow complete in this buffer, yield one K_MESSAGE instead of
                        # three tuples (frames that do not fit take the general path).
                        hp = end + 1
                        if n - hp >= 21:
                            htype, hch, hsize = unpack_hdr(data, hp)
                            hend = hp + 7 + hsize
                            if (
                                htype == FRAME_HEADER
                                and hch == ch
                                and 14 <= hsize <= max_payload
                                and hend < n
                                and data[hend] == FRAME_END
                            ):
                                class_id, _w, body_size = _HDR_PAYLOAD.unpack_from(data, hp + 7)
                                if class_id == 60:
                                    body = None
                                    if body_size == 0:
                                        body, nxt = b"", hend + 1
                                    else:
                                        bp = hend + 1
                                        bend = bp + 7 + body_size
                                        if (
                                            body_size <= max_payload
                                            and bend < n
                                            and unpack_hdr(data, bp) == (FRAME_BODY, ch, body_size)
                                            and data[bend] == FRAME_END
                                        ):
                                            body, nxt = data[bp + 7 : bend], bend + 1
                                    if body is not None:
                                        append(
                                            (
                                                K_MESSAGE,
                                                ch,
                                                exchange,
                                                routing_key,
                                                bits & 1,
                                                bits & 2,
                                                exrk,
                                                data[hp + 7 : hend],
                                                body,
                                            )
                                        )
                                        pos = nxt
                                        continue
                        append((K_PUBLISH, ch, exchange, routing_key, bits & 1, bits & 2, exrk))
                    elif mid == _ACK_ID:
                        if size != 13:
                            raise FrameError(FRAME_ERROR, "cannot decode Basic.Ack", 60, 80)
                        tag, bits = _ACK.unpack_from(data, start + 4)
                        append((K_ACK, ch, tag, bits & 1))
                    elif mid == _NACK_ID:
                        if size != 13:
                            raise FrameError(FRAME_ERROR, "cannot decode Basic.Nack", 60, 120)
                        tag, bits = _ACK.unpack_from(data, start + 4)
                        append((K_NACK, ch, tag, bits & 1, bits & 2))
                    elif mid == _REJECT_ID:
                        if size != 13:
                            raise FrameError(FRAME_ERROR, "cannot decode Basic.Reject", 60, 90)
                        tag, bits = _ACK.unpack_from(data, start + 4)
                        append((K_REJECT, ch, tag, bits & 1))
                    else:
                        append((K_METHOD, ch, decode_method(data[start:end])))
                elif ftype == FRAME_HEADER:
                    if size < 14:
                        raise FrameError(FRAME_ERROR, "content header frame too short")
                    class_id, _weight, body_size = _HDR_PAYLOAD.unpack_from(data, start)
                    append((K_HEADER, ch, class_id, body_size, data[start:end]))
                elif ftype == FRAME_BODY:
                    append((K_BODY, ch, data[start:end]))
                elif ftype == FRAME_HEARTBEAT:
                    if size:
                        raise FrameError(FRAME_ERROR, f"heartbeat frame with a {size}-byte payload")
                    if ch != 0:  # RabbitMQ: 505, not the spec's 501
                        raise FrameError(UNEXPECTED_FRAME, f"heartbeat frame on channel {ch}")
                    append((K_HEARTBEAT, ch))
                else:
                    raise FrameError(FRAME_ERROR, f"unknown frame type {ftype}")
                pos = end + 1
        except FrameError as exc:
            self.broken = True
            self._buf = b""
            append((K_ERROR, 0, exc))
            return out
        except UnicodeDecodeError:  # only the fast path's shortstrs get here
            self.broken = True
            self._buf = b""
            append((K_ERROR, 0, FrameError(FRAME_ERROR, "Malformed UTF-8 in shortstr", 60, 40)))
            return out
        except Exception as exc:  # noqa: BLE001 - client bytes must never raise out of feed()
            self.broken = True
            self._buf = b""
            append((K_ERROR, 0, FrameError(FRAME_ERROR, f"malformed frame: {exc}")))
            return out
        self._buf = data[pos:] if pos < n else b""
        return out

    @property
    def buffered(self) -> int:
        return len(self._buf)
