"""HTTP listeners that accept a cluster follower's forwarding line.

A follower carries HTTP clients (management API, dashboard, ``/metrics``) to the
leader byte for byte, sending first the signed line AMQP forwarding uses
(:mod:`warren.server.core.forwarded`). On the leader's listener a connection
that starts with that line is served as coming from the client it names: the
management API's ``loopback_users`` check and its logs see the real client,
not the follower. A line that does not verify drops the connection; a
connection without one is an ordinary client.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from aiohttp import web
from warren.server.core.forwarded import ForwardedError, starts_line, take_line

log = logging.getLogger("warren.management")


class _PeerTransport:
    """The socket's transport as the HTTP handler sees it: the forwarded client as peer."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self.peer: Any = transport.get_extra_info("peername")

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "peername":
            return self.peer
        return self._transport.get_extra_info(name, default)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class _Forwarded(asyncio.Protocol):
    """Wraps aiohttp's protocol: strips and checks a leading forwarding line, if any.

    The handler sees the connection at once (its idle timeout runs from the accept,
    line or no line); the first bytes decide whether a line comes.
    """

    def __init__(self, inner: Any, secret: bytes) -> None:
        self._inner = inner
        self._secret = secret
        self._transport: asyncio.Transport | None = None
        self._peer: _PeerTransport | None = None
        #: bytes of a possible line so far; None once decided
        self._head: bytearray | None = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        self._peer = _PeerTransport(transport)  # type: ignore[arg-type]
        self._inner.connection_made(self._peer)

    def data_received(self, data: bytes) -> None:
        head = self._head
        if head is None:
            self._inner.data_received(data)
            return
        head += data
        if not starts_line(head):
            self._head = None  # an ordinary client
            self._inner.data_received(bytes(head))
            return
        try:
            taken = take_line(self._secret, head)
        except ForwardedError as exc:
            self._refuse(str(exc))
            return
        if taken is None:
            return  # more of the line to come
        assert self._peer is not None
        self._peer.peer, rest = taken
        self._head = None
        if rest:
            self._inner.data_received(rest)

    def _refuse(self, why: str) -> None:
        assert self._transport is not None
        log.warning("http connection refused peer=%s: %s", self._transport.get_extra_info("peername"), why)
        self._head = None
        self._transport.abort()

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()


class ForwardedTCPSite(web.TCPSite):
    """A TCPSite whose connections may start with a follower's forwarding line."""

    def __init__(self, runner: web.AppRunner, *args: Any, secret: bytes, **kwargs: Any) -> None:
        super().__init__(runner, *args, **kwargs)
        self._secret = secret

    async def start(self) -> None:
        await web.BaseSite.start(self)
        server = self._runner.server
        assert server is not None
        secret = self._secret
        factory: Callable[[], asyncio.Protocol] = lambda: _Forwarded(server(), secret)  # noqa: E731
        self._server = await asyncio.get_running_loop().create_server(
            factory,
            self._host,
            self._port,
            ssl=self._ssl_context,
            backlog=self._backlog,
            reuse_address=self._reuse_address,
            reuse_port=self._reuse_port,
        )
