"""Frame format and message codec of the replication link (pure: no I/O but frame reading).

Every frame is ``u32 length | u32 crc32(body) | body`` (little-endian); ``body``
starts with a one-byte type. Handshake, both ways authenticated by HMAC-SHA256
over fresh nonces with the shared cluster secret::

    follower -> HELLO     u16 version, 32-byte nonce_f, node id (utf-8)
    leader   -> CHALLENGE 32-byte nonce_l, proof_l = HMAC(secret, "leader"   | nonce_f | nonce_l | node)
    follower -> AUTH      proof_f = HMAC(secret, "follower" | nonce_l | nonce_f | node),
                          16-byte log id, u64 last durable seq, u8 exact (its stores hold
                          nothing past that seq: it may continue in the next term's log)
    leader   -> START     mode (TAIL: ops after the follower's seq follow; RESYNC), log id, seq,
                          u64 top (the leader's last seq sent to anyone: a follower that
                          crashed holds no op past it, and is exact again once it has it)

Then the leader sends operations, each with its sequence number, and the
follower answers ``ACKSEQ u64`` = the highest sequence number durable on its disk.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import struct
from typing import NamedTuple

from warren.storage.log.crc import crc32

#: 2: OP_PURGE carries the highest position it covers; 3: OP_ACK carries several;
#: 4: OP_APPEND carries several records; 5: RESYNC_RECORD too; 6: records are named
#: (not by the leader's position), AUTH says whether the follower's stores are exact
VERSION = 6
#: a frame's body may not be larger (a corrupt or hostile length cannot make us allocate more)
MAX_FRAME = 64 * 1024 * 1024
NONCE = 32
LOG_ID = 16

FRAME = struct.Struct("<II")

# handshake and control
HELLO = 1
CHALLENGE = 2
AUTH = 3
START = 4
ACKSEQ = 5
ERROR = 6
# operations (leader -> follower), each with a sequence number
OP_APPEND = 16
OP_ACK = 17
OP_PURGE = 18
OP_DELETE = 19
OP_DELAYED = 20  # the delayed index of a store: opaque here, handed to the follower's hook
OP_DEFINITIONS = 21  # definitions the leader owns: opaque here, same
RESYNC_BEGIN = 32
RESYNC_RECORD = 33
RESYNC_END = 34

MODE_TAIL = 0
MODE_RESYNC = 1

_HELLO = struct.Struct(f"<BH{NONCE}s")
_CHALLENGE = struct.Struct(f"<B{NONCE}s32s")
_AUTH = struct.Struct(f"<B32s{LOG_ID}sQ?")
_START = struct.Struct(f"<BB{LOG_ID}sQQ")
_SEQ = struct.Struct("<BQ")
#: type, seq, store id length; then the store id
_OP = struct.Struct("<BQH")
_POS = struct.Struct("<Q")
_COUNT = struct.Struct("<I")
#: a record in OP_APPEND: length of its bytes, the leader's position; then the bytes.
#: ``position | bytes`` is how a follower stores the record: it is copied out whole
_REC = struct.Struct("<IQ")
record_head = _REC.pack


class WireError(Exception):
    """A frame that is too large, fails its checksum or cannot be decoded."""


class AuthError(Exception):
    """The peer did not prove it knows the cluster secret."""


def frame(body: bytes) -> bytes:
    """``body`` with its length and checksum in front."""
    return FRAME.pack(len(body), crc32(body)) + body


#: largest handshake frame: an unauthenticated peer cannot make us buffer more
MAX_HANDSHAKE = 4096


async def read_frame(reader: asyncio.StreamReader, limit: int = MAX_FRAME) -> bytes:
    """The next frame's body; WireError if it is too large or corrupt, IncompleteReadError at EOF."""
    n, crc = FRAME.unpack(await reader.readexactly(FRAME.size))
    if n > limit or n == 0:
        raise WireError(f"frame length {n} out of range")
    body = await reader.readexactly(n)
    if crc32(body) != crc:
        raise WireError("frame checksum mismatch")
    return body


def split_frames(buf: bytearray, limit: int = MAX_FRAME) -> list[bytes]:
    """Take the complete frames at the start of ``buf`` (removed from it) and return their
    bodies; a partial frame stays. WireError as ``read_frame``. One call per read of the
    socket instead of two awaited reads per frame: the follower's hot path."""
    out: list[bytes] = []
    off = 0
    end = len(buf)
    unpack = FRAME.unpack_from
    while end - off >= 8:
        n, crc = unpack(buf, off)
        if n > limit or n == 0:
            raise WireError(f"frame length {n} out of range")
        stop = off + 8 + n
        if stop > end:
            break
        body = bytes(buf[off + 8 : stop])
        if crc32(body) != crc:
            raise WireError("frame checksum mismatch")
        out.append(body)
        off = stop
    if off:
        del buf[:off]
    return out


def split_frame_views(buf: bytearray, limit: int = MAX_FRAME) -> list[memoryview]:
    """As ``split_frames``, with the bodies as views of one copy of the frames taken: a
    follower's batch of appends is copied once here, not again per operation and record
    (``parse_op`` and ``records`` slice views of views)."""
    off = 0
    end = len(buf)
    unpack = FRAME.unpack_from
    spans: list[tuple[int, int, int]] = []
    while end - off >= 8:
        n, crc = unpack(buf, off)
        if n > limit or n == 0:
            raise WireError(f"frame length {n} out of range")
        stop = off + 8 + n
        if stop > end:
            break
        spans.append((off + 8, stop, crc))
        off = stop
    if not off:
        return []
    view = memoryview(bytes(buf[:off]))
    del buf[:off]
    out: list[memoryview] = []
    for start, stop, crc in spans:
        body = view[start:stop]
        if crc32(body) != crc:
            raise WireError("frame checksum mismatch")
        out.append(body)
    return out


# -- handshake ---------------------------------------------------------------
def _proof(secret: bytes, role: bytes, a: bytes, b: bytes, node: str) -> bytes:
    return hmac.new(
        secret, b"warren-repl/" + role + b"\0" + a + b + node.encode(), hashlib.sha256
    ).digest()


def leader_proof(secret: bytes, nonce_f: bytes, nonce_l: bytes, node: str) -> bytes:
    """What the leader sends to show it knows the secret (bound to both nonces)."""
    return _proof(secret, b"leader", nonce_f, nonce_l, node)


def follower_proof(secret: bytes, nonce_f: bytes, nonce_l: bytes, node: str) -> bytes:
    """What the follower sends back (a different label: a proof cannot be reflected)."""
    return _proof(secret, b"follower", nonce_l, nonce_f, node)


def check(expected: bytes, got: bytes) -> None:
    """Constant-time comparison of proofs; AuthError on mismatch."""
    if not hmac.compare_digest(expected, got):
        raise AuthError("bad proof of the cluster secret")


def hello(nonce_f: bytes, node: str) -> bytes:
    return _HELLO.pack(HELLO, VERSION, nonce_f) + node.encode()


def parse_hello(body: bytes) -> tuple[int, bytes, str]:
    """``(version, nonce_f, node)``."""
    _expect(body, HELLO, _HELLO.size)
    _t, version, nonce = _HELLO.unpack_from(body)
    return version, nonce, _text(body[_HELLO.size :])


def challenge(nonce_l: bytes, proof: bytes) -> bytes:
    return _CHALLENGE.pack(CHALLENGE, nonce_l, proof)


def parse_challenge(body: bytes) -> tuple[bytes, bytes]:
    _expect(body, CHALLENGE, _CHALLENGE.size)
    _t, nonce, proof = _CHALLENGE.unpack_from(body)
    return nonce, proof


def auth(proof: bytes, log_id: bytes, seq: int, exact: bool = False) -> bytes:
    return _AUTH.pack(AUTH, proof, log_id, seq, exact)


def parse_auth(body: bytes) -> tuple[bytes, bytes, int, bool]:
    """``(proof, log_id, last durable seq, exact)``."""
    _expect(body, AUTH, _AUTH.size)
    _t, proof, log_id, seq, exact = _AUTH.unpack_from(body)
    return proof, log_id, seq, exact


def start(mode: int, log_id: bytes, seq: int, top: int = 0) -> bytes:
    return _START.pack(START, mode, log_id, seq, top)


def parse_start(body: bytes) -> tuple[int, bytes, int, int]:
    """``(mode, log_id, seq, top)``."""
    _expect(body, START, _START.size)
    _t, mode, log_id, seq, top = _START.unpack_from(body)
    return mode, log_id, seq, top


def error(reason: str) -> bytes:
    return bytes([ERROR]) + reason.encode()


def seq_message(kind: int, seq: int) -> bytes:
    """ACKSEQ, RESYNC_BEGIN, RESYNC_END: a type and a sequence number."""
    return _SEQ.pack(kind, seq)


def parse_seq(body: bytes) -> int:
    if len(body) != _SEQ.size:
        raise WireError("bad sequence message")
    return _SEQ.unpack(body)[1]


# -- operations ----------------------------------------------------------------
def op_records(kind: int, seq: int, store: bytes, count: int, parts: list[bytes]) -> bytes:
    """OP_APPEND (records appended to ``store``) or RESYNC_RECORD (a resync's records of
    ``store``): ``count`` records; ``parts`` alternate ``record_head(len(data), position)``
    and ``data``."""
    return b"".join([_OP.pack(kind, seq, len(store)), store, _COUNT.pack(count), *parts])


def records(op: Op) -> list[tuple[int, bytes | memoryview]]:
    """An OP_APPEND's or RESYNC_RECORD's records: (the leader's position,
    ``position | bytes`` as stored)."""
    data = op.data
    end = len(data)
    off = 0
    out = []
    unpack = _REC.unpack_from
    try:
        for _ in range(op.position):
            n, pos = unpack(data, off)
            stop = off + 12 + n
            if stop > end:
                raise WireError("short record")
            out.append((pos, data[off + 4 : stop]))
            off = stop
    except struct.error as exc:
        raise WireError("short record head") from exc
    if off != end:
        raise WireError("bad append length")
    return out


def op_ack(seq: int, store: bytes, positions: list[int]) -> bytes:
    """Records of ``store`` acked (consecutive acks of one store travel as one operation)."""
    return (
        _OP.pack(OP_ACK, seq, len(store))
        + store
        + _COUNT.pack(len(positions))
        + struct.pack(f"<{len(positions)}Q", *positions)
    )


def op_purge(seq: int, store: bytes, keep: list[int], upto: int) -> bytes:
    """Drop every record of ``store`` at a position ``<= upto`` but those at ``keep`` (the
    leader's unacked ones). ``upto`` (the store's last position when it was purged) makes
    a replayed purge leave alone the records appended after it: positions only grow."""
    return (
        _OP.pack(OP_PURGE, seq, len(store))
        + store
        + _POS.pack(upto)
        + _COUNT.pack(len(keep))
        + struct.pack(f"<{len(keep)}Q", *keep)
    )


def op_plain(kind: int, seq: int, store: bytes, payload: bytes = b"") -> bytes:
    """OP_DELETE (no payload), OP_DELAYED, OP_DEFINITIONS (opaque payload)."""
    return _OP.pack(kind, seq, len(store)) + store + payload


class Op(NamedTuple):
    """A decoded operation: ``position`` for purge the highest position it covers, for
    appends and resync records the number of records; ``data`` for appends and resync
    records (see ``records``) and the opaque kinds, ``keep`` for purge (the positions
    it keeps) and ack (the positions acked)."""

    kind: int
    seq: int
    store: str
    position: int = 0
    data: bytes | memoryview = b""
    keep: tuple[int, ...] = ()


def parse_op(body: bytes | memoryview) -> Op:
    """Decode an operation frame (OP_* or RESYNC_RECORD). Of a view, an append's ``data``
    (and so its ``records``) are views too; other payloads are copied."""
    if len(body) < _OP.size:
        raise WireError("short operation")
    kind, seq, n = _OP.unpack_from(body)
    at = _OP.size + n
    if len(body) < at:
        raise WireError("short store id")
    store = _text(body[_OP.size : at])
    if kind == OP_APPEND or kind == RESYNC_RECORD:
        if len(body) < at + 4:
            raise WireError("short records")
        # position: the number of records; data: the records (see ``records``)
        return Op(kind, seq, store, _COUNT.unpack_from(body, at)[0], body[at + 4 :])
    if kind == OP_ACK:
        if len(body) < at + 4:
            raise WireError("short ack")
        count = _COUNT.unpack_from(body, at)[0]
        if len(body) != at + 4 + 8 * count:
            raise WireError("bad ack length")
        return Op(kind, seq, store, keep=struct.unpack_from(f"<{count}Q", body, at + 4))
    if kind == OP_PURGE:
        if len(body) < at + 12:
            raise WireError("short purge")
        upto = _POS.unpack_from(body, at)[0]
        count = _COUNT.unpack_from(body, at + 8)[0]
        if len(body) != at + 12 + 8 * count:
            raise WireError("bad purge length")
        return Op(kind, seq, store, upto, keep=struct.unpack_from(f"<{count}Q", body, at + 12))
    if kind in (OP_DELETE, OP_DELAYED, OP_DEFINITIONS):
        return Op(kind, seq, store, data=bytes(body[at:]))
    raise WireError(f"unknown operation type {kind}")


def _expect(body: bytes, kind: int, size: int) -> None:
    if not body or body[0] != kind:
        if body and body[0] == ERROR:
            raise WireError(f"peer error: {_text(body[1:])}")
        raise WireError(f"expected message type {kind}, got {body[:1].hex() or 'nothing'}")
    if len(body) < size:
        raise WireError(f"short message of type {kind}")


def _text(raw: bytes | memoryview) -> str:
    try:
        return str(raw, "utf-8")
    except UnicodeDecodeError as exc:
        raise WireError("bad utf-8") from exc
