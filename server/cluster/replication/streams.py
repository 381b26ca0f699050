"""Small helpers on asyncio streams shared by the replication link's ends."""

from __future__ import annotations

import asyncio


def abort(writer: asyncio.StreamWriter) -> None:
    """Drop the connection now (no flush): the peer is gone or misbehaving."""
    transport = writer.transport
    if not transport.is_closing():
        transport.abort()


def peer_name(writer: asyncio.StreamWriter) -> str:
    peer = writer.get_extra_info("peername")
    return f"{peer[0]}:{peer[1]}" if peer else "?"
