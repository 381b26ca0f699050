"""The line a cluster follower sends ahead of a client's bytes it forwards to the leader.

A follower carries AMQP clients to the leader byte for byte; without this line the
leader would see every such client as coming from the follower (so a remote client
could pass as loopback through a follower on the leader's machine, and logs and
per-address rules would name the wrong peer). The line names the client's address,
with a time and an HMAC-SHA256 over both under the cluster secret: only a node that
knows the secret can claim an address, and a captured line is good for a minute.

    WARREN-FWD1 <client ip> <client port> <unix ms> <hex hmac>\\r\\n
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import time

PREFIX = b"WARREN-FWD1 "
#: longest line accepted (an IPv6 address, a port, a time and 64 hex digits fit easily)
MAX_LINE = 200
#: a line older (or newer) than this is refused
MAX_SKEW_MS = 60_000


class ForwardedError(ValueError):
    """The line is malformed, too old, or its HMAC does not match."""


def _mac(secret: bytes, ip: str, port: int, ms: int) -> str:
    msg = b"warren-fwd\0" + f"{ip} {port} {ms}".encode()
    return hmac.new(secret, msg, hashlib.sha256).hexdigest()


def make_line(secret: bytes, ip: str, port: int, now_ms: int | None = None) -> bytes:
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    return PREFIX + f"{ip} {port} {ms} {_mac(secret, ip, port, ms)}\r\n".encode()


def parse_line(secret: bytes, line: bytes, now_ms: int | None = None) -> tuple[str, int]:
    """The client's (ip, port) from a complete line (``\\r\\n`` included)."""
    if not line.startswith(PREFIX) or not line.endswith(b"\r\n") or len(line) > MAX_LINE:
        raise ForwardedError("malformed forwarding line")
    try:
        ip, port_s, ms_s, mac = line[len(PREFIX):-2].decode("ascii").split(" ")
        port, ms = int(port_s), int(ms_s)
        ipaddress.ip_address(ip)
    except ValueError:
        raise ForwardedError("malformed forwarding line") from None
    if not 0 <= port < 65536:
        raise ForwardedError("malformed forwarding line")
    now = int(time.time() * 1000) if now_ms is None else now_ms
    if abs(now - ms) > MAX_SKEW_MS:
        raise ForwardedError("forwarding line too old")
    if not hmac.compare_digest(mac, _mac(secret, ip, port, ms)):
        raise ForwardedError("forwarding line not signed with the cluster secret")
    return ip, port


def starts_line(buf: bytes | bytearray) -> bool:
    """Whether ``buf``, a connection's first bytes, may be (the start of) a forwarding line."""
    return PREFIX.startswith(bytes(buf[: len(PREFIX)]))


def take_line(secret: bytes, buf: bytes | bytearray) -> tuple[tuple[str, int], bytes] | None:
    """The forwarding line ``buf`` starts with: the client it names and the bytes after
    it, or None while the line is incomplete. ForwardedError if it is too long or bad."""
    end = buf.find(b"\r\n")
    if end < 0:
        if len(buf) > MAX_LINE:
            raise ForwardedError("forwarding line too long")
        return None
    return parse_line(secret, bytes(buf[: end + 2])), bytes(buf[end + 2 :])
