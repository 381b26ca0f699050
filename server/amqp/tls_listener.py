"""The AMQPS listener of a cluster node: TLS clients may come through a follower.

A follower carries a client to the leader byte for byte, TLS included (the session is
the client's with the leader; the follower never sees the plaintext), and sends first
the signed line naming the client (:mod:`warren.server.core.forwarded`). That line is
plaintext ahead of the client's TLS ClientHello, which ``create_server(ssl=...)`` cannot
take: it starts the handshake on the first byte. So this listener accepts the socket
itself, *peeks* at the first bytes (``MSG_PEEK``: nothing is consumed), reads exactly the
line if there is one and checks it, then hands the socket with the ClientHello still
unread to ``loop.connect_accepted_socket(..., ssl=...)``. A connection without a line is
an ordinary TLS client; a line that does not verify drops the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Callable
from typing import Any

from warren.server.core.forwarded import MAX_LINE, ForwardedError, parse_line, starts_line

log = logging.getLogger("warren.amqp")


class ForwardingTLSServer:
    """What the broker needs of an ``asyncio.Server``: ``sockets``, ``start_serving``,
    ``close``, ``wait_closed``. ``factory(peer)`` makes the connection's protocol;
    ``peer`` is the forwarded client's (ip, port), or None for a direct client."""

    def __init__(self, factory: Callable[[tuple[str, int] | None], asyncio.Protocol],
                 host: str, port: int, ctx: ssl.SSLContext, secret: bytes,
                 handshake_timeout: float, backlog: int = 1024) -> None:
        self._factory = factory
        self._ctx = ctx
        self._secret = secret
        self._timeout = handshake_timeout
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.create_server((host or "0.0.0.0", port), family=family, backlog=backlog,
                                    reuse_port=False)
        sock.setblocking(False)
        self._sock = sock
        self.sockets = [sock]
        self._accepting: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Task[None]] = set()

    async def start_serving(self) -> None:
        if self._accepting is None:
            self._accepting = asyncio.ensure_future(self._accept())

    def close(self) -> None:
        if self._accepting is not None:
            self._accepting.cancel()
        for task in list(self._pending):
            task.cancel()
        with contextlib.suppress(OSError):
            self._sock.close()

    async def wait_closed(self) -> None:
        for task in [self._accepting, *self._pending]:
            if task is not None:
                with contextlib.suppress(BaseException):
                    await task

    async def _accept(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, _addr = await loop.sock_accept(self._sock)
            except asyncio.CancelledError:
                raise
            except OSError as exc:
                # out of descriptors, say: the others keep being served; try again shortly
                log.warning("amqps accept failed: %s", exc)
                await asyncio.sleep(0.1)
                continue
            task = asyncio.ensure_future(self._start(conn))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    async def _start(self, conn: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        conn.setblocking(False)
        try:
            peer = await asyncio.wait_for(self._take_line(loop, conn), self._timeout)
            await loop.connect_accepted_socket(
                lambda: self._factory(peer), conn, ssl=self._ctx, ssl_handshake_timeout=self._timeout)
        except ForwardedError as exc:
            log.warning("bad forwarding line peer=%s: %s", _peername(conn), exc)
            conn.close()
        except (OSError, ssl.SSLError, TimeoutError, EOFError) as exc:
            # a failed handshake concerns that client only
            log.info("amqps connection from %s failed: %r", _peername(conn), exc)
            conn.close()
        except asyncio.CancelledError:
            conn.close()
            raise

    async def _take_line(self, loop: asyncio.AbstractEventLoop, conn: socket.socket) -> tuple[str, int] | None:
        """The forwarded client, its line consumed; None (nothing consumed) without one."""
        seen = b""
        while True:
            await _readable(loop, conn)
            head = conn.recv(MAX_LINE + 1, socket.MSG_PEEK)
            if not head:
                raise EOFError("closed before the handshake")
            if not starts_line(head):
                return None  # a TLS client: its ClientHello stays unread for the handshake
            end = head.find(b"\r\n")
            if end >= 0:
                line = conn.recv(end + 2)  # exactly the line; what follows stays
                return parse_line(self._secret, line)
            if len(head) > MAX_LINE:
                raise ForwardedError("forwarding line too long")
            if head == seen:
                await asyncio.sleep(0.01)  # the rest of the line is on its way
            seen = head


async def _readable(loop: asyncio.AbstractEventLoop, conn: socket.socket) -> None:
    fut = loop.create_future()
    fd = conn.fileno()
    loop.add_reader(fd, lambda: fut.done() or fut.set_result(None))
    try:
        await fut
    finally:
        loop.remove_reader(fd)


def _peername(conn: socket.socket) -> Any:
    try:
        return conn.getpeername()
    except OSError:
        return "?"
