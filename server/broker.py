"""The broker: vhosts, users, connections, and the listener."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from .auth import Permission, User, hash_password
from .config import Config, ensure_dir
from .exchanges import EXCHANGE_TYPES, Exchange
from .queue import Queue
from .vhost import VHost

if TYPE_CHECKING:
    from .channel import Channel
    from .connection import Connection

log = logging.getLogger("warren.broker")


class Broker:
    """Everything one warren node holds."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.cluster_name = config.cluster_name
        self.vhosts: dict[str, VHost] = {}
        self.users: dict[str, User] = {}
        self.connections: set[Connection] = set()
        self.reply_channels: dict[str, Channel] = {}
        self.alarm_active = False
        self.alarm_reason = ""
        self._server: asyncio.AbstractServer | None = None
        self.vhosts["/"] = VHost(self, "/")
        self.users[config.default_user] = User(
            config.default_user,
            hash_password(config.default_pass),
            ["administrator"],
            {"/": Permission()},
        )

    # -- factories ----------------------------------------------------------
    def exchange_type(self, name: str) -> type[Exchange] | None:
        return EXCHANGE_TYPES.get(name)

    def create_queue(
        self,
        vhost: VHost,
        name: str,
        durable: bool,
        owner: Connection | None,
        auto_delete: bool,
        arguments: dict[str, Any],
    ) -> Queue:
        q = Queue(vhost, name, durable, owner, auto_delete, arguments)
        vhost.add_queue(q)
        self.definitions_changed(durable)
        return q

    def queue_deleted(self, q: Queue) -> None:
        """Hook for storage and metrics when a queue goes away."""

    def definitions_changed(self, durable: bool) -> None:
        """Hook: durable definitions changed (persisted by the storage layer)."""

    # -- lifecycle ----------------------------------------------------------
    async def start(self) -> None:
        ensure_dir(self.config.data_dir)
        loop = asyncio.get_running_loop()
        from .connection import Connection

        self._server = await loop.create_server(
            lambda: Connection(self), self.config.host, self.config.port, backlog=1024, reuse_address=True
        )
        addrs = ", ".join(str(s.getsockname()) for s in self._server.sockets)
        log.info("listening amqp=%s data_dir=%s", addrs, self.config.data_dir)

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for conn in list(self.connections):
            conn.close_by_broker()
        # give clients a moment to answer close-ok
        for _ in range(20):
            if not self.connections:
                break
            await asyncio.sleep(0.05)
        if self._server is not None:
            await self._server.wait_closed()
        log.info("stopped")
