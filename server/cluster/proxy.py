"""A follower's client port: a byte proxy to the leader's AMQP listener.

AMQP 0-9-1 has no redirect, so a client that connects to a follower is carried to
the leader byte for byte. With no leader known the connection is closed at once
(clients reconnect, as they do on a failover). On a leader change every proxied
connection is closed: its broker session is gone anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from warren.server.core.forwarded import make_line

log = logging.getLogger("warren.cluster.proxy")

_CHUNK = 256 * 1024


class LeaderProxy:
    """Listens on ``host:port`` and forwards each connection to ``target`` (host, port)."""

    def __init__(self, host: str, port: int, secret: bytes | None = None) -> None:
        self.host = host
        self.port = port
        #: with a secret, each connection starts with a signed line naming the client
        #: (``core/forwarded.py``), so the leader sees the real peer, not this node
        self.secret = secret
        self.target: tuple[str, int] | None = None
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()
        self._closing = False

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port, reuse_address=True)
        log.info("forwarding amqp=%s:%d to the leader", self.host, self.port)

    def retarget(self, target: tuple[str, int] | None) -> None:
        """The leader changed: forward new connections there, drop the old ones."""
        if target == self.target:
            return
        self.target = target
        for task in list(self._pipes):
            task.cancel()

    async def close(self) -> None:
        """Stop listening and drop every forwarded connection. Not ``wait_closed``: a
        connection accepted as the listener closed would still be piped to the old
        leader, and a frozen old leader would hold this node's promotion."""
        self._closing = True
        if self._server is not None:
            self._server.close()
            self._server = None
        while self._pipes:
            for task in list(self._pipes):
                task.cancel()
            for task in list(self._pipes):
                with contextlib.suppress(BaseException):
                    await task

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._pipes.add(task)
        try:
            target = self.target
            if target is None or self._closing:
                return
            try:
                up_reader, up_writer = await asyncio.open_connection(*target)
            except OSError as exc:
                log.info("leader %s:%d unreachable: %s", target[0], target[1], exc)
                return
            if self.secret is not None:
                peer = writer.get_extra_info("peername") or ("0.0.0.0", 0)
                up_writer.write(make_line(self.secret, peer[0], peer[1]))
            try:
                await pump_both(reader, writer, up_reader, up_writer)
            finally:
                up_writer.transport.abort()
        except asyncio.CancelledError:
            pass
        finally:
            self._pipes.discard(task)
            writer.transport.abort()


async def _pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    while data := await src.read(_CHUNK):
        dst.write(data)
        await dst.drain()
    if dst.can_write_eof():
        dst.write_eof()


async def pump_both(r1: asyncio.StreamReader, w1: asyncio.StreamWriter,
                    r2: asyncio.StreamReader, w2: asyncio.StreamWriter) -> None:
    """Copy bytes both ways until either side ends."""
    a = asyncio.ensure_future(_pump(r1, w2))
    b = asyncio.ensure_future(_pump(r2, w1))
    try:
        # when either side closes (or fails), the connection is over
        await asyncio.wait({a, b}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in (a, b):
            t.cancel()
        for t in (a, b):
            with contextlib.suppress(BaseException):
                await t
