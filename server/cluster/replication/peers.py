"""The leader's view of one follower, and the states it goes through (see leader.py)."""

from __future__ import annotations

import asyncio
import ssl as _ssl
from collections.abc import Awaitable, Callable
from typing import Any

from warren.server.cluster.replication import wire

Hook = Callable[[str], Awaitable[Any]]

CATCHUP = "catchup"
JOINING = "joining"
INSYNC = "insync"
REMOVING = "removing"
GONE = "gone"
#: states whose acks every wait needs
_COUNTED = (JOINING, INSYNC, REMOVING)

#: catch-up and resync write this much before waiting for the socket to drain
_CHUNK = 256 * 1024


class ReplicationError(Exception):
    """A wait failed: the in-sync set is below ``min_insync``, or the leader stopped leading."""


class _Peer:
    __slots__ = (
        "node",
        "writer",
        "acked",
        "state",
        "live",
        "join_seq",
        "task",
        "gone",
        "need",
        "caught",
    )

    def __init__(self, node: str, writer: asyncio.StreamWriter, acked: int) -> None:
        self.node = node
        self.writer = writer
        self.acked = acked
        self.state = CATCHUP
        #: gets frames as they are flushed (else the catch-up task feeds it)
        self.live = False
        self.join_seq = -1
        self.task: asyncio.Task[None] | None = None
        #: set once it is out of the in-sync set (or never was in it)
        self.gone = asyncio.Event()
        #: joining: the highest seq confirmed before it counted; it must ack that first
        self.need = 0
        self.caught = asyncio.Event()


class AckReader(asyncio.StreamReader):
    """A follower connection's reader: the handshake is read as from any StreamReader;
    then ``take_acks(on_ack)`` has every ``ACKSEQ`` handled as its bytes arrive, in the
    protocol's callback. Read by a task, each ack waited a loop turn before it counted,
    and on a busy leader a turn is as long as a follower's fsync. EOF and errors still
    reach whoever awaits ``read``."""

    _on_ack: Callable[[int], None] | None = None
    _pending: bytearray

    def take_acks(self, on_ack: Callable[[int], None]) -> None:
        self._pending = bytearray()
        self._on_ack = on_ack

    def feed_data(self, data: bytes) -> None:
        on_ack = self._on_ack
        if on_ack is None:
            super().feed_data(data)
            return
        buf = self._pending
        buf += data
        try:
            bodies = wire.split_frames(buf, wire.MAX_HANDSHAKE)  # acks are tiny
            last = -1
            for body in bodies:
                if body[0] != wire.ACKSEQ:
                    raise wire.WireError(f"unexpected message type {body[0]} from follower")
                last = wire.parse_seq(body)
        except wire.WireError as exc:
            self._on_ack = None
            self.set_exception(exc)  # the task awaiting read() drops the follower
            return
        if last >= 0:
            try:
                on_ack(last)
            except Exception as exc:  # noqa: BLE001 - a bug: end this link as a read error would
                self._on_ack = None
                self.set_exception(exc)


async def start_ack_server(
    serve: Callable[[AckReader, asyncio.StreamWriter], Awaitable[None]], host: str, port: int,
    ssl: _ssl.SSLContext | None = None,
) -> asyncio.Server:
    """``asyncio.start_server`` with :class:`AckReader` as the connections' reader."""
    loop = asyncio.get_running_loop()

    def factory() -> asyncio.StreamReaderProtocol:
        reader = AckReader(loop=loop)
        return asyncio.StreamReaderProtocol(reader, serve, loop=loop)  # type: ignore[arg-type]

    return await loop.create_server(factory, host, port, ssl=ssl)
