"""The broker node: the model (``Node``) plus its listeners, services and monitors."""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from warren.protocol.constants import PRECONDITION_FAILED
from warren.server.core.config import Config, ConfigError, ensure_dir
from warren.server.core.errors import ChannelError
from warren.server.model.node import Node
from warren.server.model.persistence import Persistence

log = logging.getLogger("warren.broker")

#: a service started with the broker (the HTTP listeners): ``start(broker)`` returns
#: what ``stop`` is later given
Service = tuple[Callable[["Broker"], Awaitable[Any]], Callable[[Any], Awaitable[None]]]


class Broker(Node):
    """Everything one warren node holds and serves.

    ``services`` are started after the AMQP listeners are bound and before they
    accept clients, and stopped first; ``warren.server.main`` passes the HTTP
    listeners, so this layer never imports the HTTP one.
    """

    def __init__(
        self,
        config: Config,
        services: Sequence[Service] = (),
        persistence: Callable[[Node], Persistence] | None = None,
    ) -> None:
        super().__init__(config, persistence=persistence)
        self._services = list(services)
        self._running: list[tuple[Service, Any]] = []
        self._server: asyncio.AbstractServer | None = None

    # -- resource alarms -------------------------------------------------------
    def _memory_limit(self) -> int:
        from warren.server.core.memory import memory_limit, parse_size, total_memory

        cfg = self.config
        try:
            absolute = parse_size(cfg.vm_memory_high_watermark_absolute) if cfg.vm_memory_high_watermark_absolute else 0
        except ValueError as exc:
            raise ConfigError(f"vm_memory_high_watermark_absolute: {exc}") from None
        if not 0 <= cfg.vm_memory_high_watermark <= 1:
            raise ConfigError(f"vm_memory_high_watermark must be between 0 and 1, not {cfg.vm_memory_high_watermark}")
        return memory_limit(cfg.vm_memory_high_watermark, absolute, total_memory())

    def _check_disk(self) -> None:
        try:
            free = shutil.disk_usage(self.config.data_dir).free
        except OSError:
            free = -1
        self.disk_free = free
        low = 0 <= free < self.config.disk_free_limit
        if low != ("disk" in self.alarms):
            if low:
                log.warning("resource alarm set resource=disk free=%s limit=%s", free, self.config.disk_free_limit)
            else:
                log.warning("resource alarm cleared resource=disk free=%s", free)
            self.set_alarm("disk", low)
        self._disk_handle = asyncio.get_running_loop().call_later(1.0, self._check_disk)

    # -- consumer timeout ------------------------------------------------------
    def _check_consumer_timeouts(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        default = self.config.consumer_timeout
        for conn in list(self.connections):
            for ch in list(conn.channels.values()):
                if ch.closing or not ch.unacked:
                    continue
                oldest = ch.oldest_unacked()
                if oldest is None:
                    continue
                t, q = oldest
                limit = q.consumer_timeout if q is not None and q.consumer_timeout is not None else default
                if limit and (now - t) * 1000 > limit:
                    conn.channel_error_async(
                        ch,
                        ChannelError(
                            PRECONDITION_FAILED,
                            f"delivery acknowledgement on channel {ch.number} timed out. Timeout value used: "
                            f"{limit} ms. This timeout value can be configured, see consumers doc guide to learn more",
                        ),
                    )
        self._timeout_handle = loop.call_later(self._timeout_interval(), self._check_consumer_timeouts)

    def _timeout_interval(self) -> float:
        ct = self.config.consumer_timeout
        return max(0.05, min(1.0, ct / 4000.0)) if ct else 1.0

    # -- lifecycle ----------------------------------------------------------
    async def start(self) -> None:
        ensure_dir(self.config.data_dir)
        t0 = time.monotonic()
        stored = self.persistence.prepare()
        if stored:
            from warren.server.model.definitions import import_definitions

            import_definitions(self, stored)
            n = sum(len(vh.queues) for vh in self.vhosts.values())
            msgs = sum(len(q.store) for vh in self.vhosts.values() for q in vh.queues.values())
            log.info("recovered definitions queues=%d messages=%d seconds=%.3f", n, msgs, time.monotonic() - t0)
        self.persistence.remove_orphans()
        self._started = True
        self.persistence.save_now()
        if self.config.definitions:
            import json

            from warren.server.model.definitions import import_definitions

            with open(self.config.definitions) as fh:
                import_definitions(self, json.load(fh))
            log.info("imported definitions file=%s", self.config.definitions)
        from warren.server.core.gctune import freeze_long_lived

        freeze_long_lived()  # recovered definitions live as long as the broker
        loop = asyncio.get_running_loop()
        from warren.server.amqp.connection import Connection

        self._server = await loop.create_server(
            lambda: Connection(self), self.config.host, self.config.port, backlog=1024, reuse_address=True,
            start_serving=False,  # clients are let in once everything below has started
        )
        if self.config.tls_port:
            from warren.server.amqp.tls import server_context

            ctx = server_context(self.config)
            if self.forward_secret is not None:
                from warren.server.amqp.tls_listener import ForwardingTLSServer

                def forwarded(peer: tuple[str, int] | None) -> Connection:
                    conn = Connection(self)
                    conn.forwarded_peer = peer
                    return conn

                # cluster mode: TLS clients may come through a follower, named by a line before TLS
                self._tls_server = ForwardingTLSServer(
                    forwarded, self.config.host, self.config.tls_port, ctx,
                    self.forward_secret, self.config.handshake_timeout,
                )
            else:
                self._tls_server = await loop.create_server(
                    lambda: Connection(self),
                    self.config.host,
                    self.config.tls_port,
                    ssl=ctx,
                    ssl_handshake_timeout=self.config.handshake_timeout,
                    backlog=1024,
                    reuse_address=True,
                    start_serving=False,
                )
            addrs = ", ".join(str(s.getsockname()) for s in self._tls_server.sockets)
            log.info("listening amqps=%s", addrs)
        self._timeout_handle = loop.call_later(self._timeout_interval(), self._check_consumer_timeouts)
        self._check_disk()
        self.memory.set_limit(self._memory_limit())
        if self.memory.enabled:
            self.memory.start()
            log.info("memory high watermark limit=%d bytes", self.memory.limit)
        addrs = ", ".join(str(s.getsockname()) for s in self._server.sockets)
        log.info("listening amqp=%s data_dir=%s", addrs, self.config.data_dir)
        for service in self._services:
            self._running.append((service, await service[0](self)))
        # AMQP last, as RabbitMQ starts its listeners last: a client (or a flood of them
        # using up every descriptor) never meets a half-started broker
        for server in (self._server, getattr(self, "_tls_server", None)):
            if server is not None:
                await server.start_serving()

    @property
    def port(self) -> int:
        """The AMQP port listened on (the configured one until the listener is bound)."""
        if self._server is None:
            return self.config.port
        return self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        for service, handle in reversed(self._running):
            await service[1](handle)
        self._running = []
        tls = getattr(self, "_tls_server", None)
        for server in (self._server, tls):
            if server is not None:
                server.close()
        for h in (getattr(self, "_timeout_handle", None), getattr(self, "_disk_handle", None)):
            if h is not None:
                h.cancel()
        self.memory.stop()
        for conn in list(self.connections):
            conn.close_by_broker()
        # give clients a moment to answer close-ok
        for _ in range(20):
            if not self.connections:
                break
            await asyncio.sleep(0.05)
        for server in (self._server, tls):
            if server is not None:
                await server.wait_closed()
        for vh in self.vhosts.values():
            for q in vh.queues.values():
                q.store.close()
            for ex in vh.exchanges.values():
                ex.close()  # x-delayed-message: flush its held messages
        self.persistence.save_now()
        log.info("stopped")
