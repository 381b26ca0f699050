"""The broker: vhosts, users, connections, and the listener."""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from typing import TYPE_CHECKING, Any

from warren.protocol.constants import PRECONDITION_FAILED
from warren.server.core.config import Config, ConfigError, ensure_dir
from warren.server.core.errors import ChannelError
from warren.server.model.auth import Permission, User, hash_password
from warren.server.model.exchanges import EXCHANGE_TYPES, Exchange
from warren.server.model.persistence import Persistence
from warren.server.model.policies import Policy
from warren.server.model.queue import Queue
from warren.server.model.vhost import VHost

if TYPE_CHECKING:
    from warren.server.amqp.channel import Channel
    from warren.server.amqp.connection import Connection

log = logging.getLogger("warren.broker")


class Broker:
    """Everything one warren node holds."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.cluster_name = config.cluster_name
        self.vhosts: dict[str, VHost] = {}
        self.users: dict[str, User] = {}
        from warren.server.http.metrics import ConnectionSet, Totals
        from warren.server.model.tracing import Tracer

        #: accumulators for deleted queues / closed channels and connections (metrics)
        self.totals = Totals()
        self.connections: set[Connection] = ConnectionSet(self.totals)
        self.tracer = Tracer(self, config.trace_ring_size)
        self._http: list = []
        self.reply_channels: dict[str, Channel] = {}
        #: resources in alarm ("disk", "memory"): publishers are blocked while any is
        self.alarms: set[str] = set()
        self.disk_free = -1
        from warren.server.node.memory import MemoryMonitor

        self.memory = MemoryMonitor(self)
        self._server: asyncio.AbstractServer | None = None
        self._started = False
        self.persistence = Persistence(self, config.data_dir)
        self.vhosts["/"] = VHost(self, "/")
        self.tracer.vhost_added(self.vhosts["/"])
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
        persistence = self.persistence
        q = Queue(
            vhost,
            name,
            durable,
            owner,
            auto_delete,
            arguments,
            store_factory=lambda max_priority: persistence.store_for(vhost, name, durable, max_priority),
        )
        q.durable_store = durable
        vhost.add_queue(q)
        self.totals.queues_created += 1
        self.definitions_changed(durable)
        return q

    def queue_deleted(self, q: Queue) -> None:
        """Hook for storage and metrics when a queue goes away."""
        self.totals.queue_gone(q)
        if q.durable:
            self.persistence.remove_queue_dir(q.vhost.name, q.name)

    def definitions_changed(self, durable: bool) -> None:
        """Durable definitions changed: rewrite the definitions file (once per loop turn)."""
        if durable and self._started:
            self.persistence.schedule_save()

    # -- vhosts, policies ---------------------------------------------------
    def add_vhost(self, name: str) -> VHost:
        vh = self.vhosts.get(name)
        if vh is None:
            vh = self.vhosts[name] = VHost(self, name)
            self.tracer.vhost_added(vh)
            self.definitions_changed(True)
        return vh

    def delete_vhost(self, name: str) -> bool:
        vh = self.vhosts.pop(name, None)
        if vh is None:
            return False
        for conn in list(self.connections):
            if conn.vhost is vh:
                conn.close_by_broker(320, f"vhost '{name}' is deleted")
        for q in list(vh.queues.values()):
            vh.delete_queue(q)
        for ex in vh.exchanges.values():
            if hasattr(ex, "pending_count"):  # x-delayed-message: its held messages go too
                ex.delete()
        for u in self.users.values():
            u.permissions.pop(name, None)
            u.topic_permissions.pop(name, None)
        self.definitions_changed(True)
        return True

    def set_policy(self, policy: Policy) -> None:
        vh = self.vhosts[policy.vhost]
        vh.policies[policy.name] = policy
        vh.reapply_policies()
        self.definitions_changed(True)

    def delete_policy(self, vhost: str, name: str) -> bool:
        vh = self.vhosts.get(vhost)
        if vh is None or vh.policies.pop(name, None) is None:
            return False
        vh.reapply_policies()
        self.definitions_changed(True)
        return True

    # -- resource alarms -------------------------------------------------------
    def _memory_limit(self) -> int:
        from warren.server.node.memory import memory_limit, parse_size, total_memory

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

    @property
    def alarm_active(self) -> bool:
        return bool(self.alarms)

    @property
    def alarm_reason(self) -> str:
        """RabbitMQ's connection.blocked reason: "low on disk & memory"."""
        return "low on " + " & ".join(sorted(self.alarms)) if self.alarms else ""

    def set_alarm(self, resource: str, active: bool) -> None:
        """Raise or clear a resource alarm; every connection is blocked while any is raised."""
        was = self.alarm_active
        if active:
            self.alarms.add(resource)
        else:
            self.alarms.discard(resource)
        if self.alarm_active != was:
            for conn in list(self.connections):
                conn.set_blocked(self.alarm_active, self.alarm_reason)

    def probe_blocked(self) -> None:
        """Connections blocked by an alarm are not read, so a client that went away is
        not noticed (nor the memory it holds freed) until a write to it fails: write a
        heartbeat frame to each (RabbitMQ, too, notices them by failed heartbeat sends)."""
        for conn in list(self.connections):
            if conn.blocked:
                conn.probe()

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

            self._tls_server = await loop.create_server(
                lambda: Connection(self),
                self.config.host,
                self.config.tls_port,
                ssl=server_context(self.config),
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
        from warren.server.http.management import start_http

        self._http = await start_http(self)
        # AMQP last, as RabbitMQ starts its listeners last: a client (or a flood of them
        # using up every descriptor) never meets a half-started broker
        for server in (self._server, getattr(self, "_tls_server", None)):
            if server is not None:
                await server.start_serving()

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        from warren.server.http.management import stop_http

        await stop_http(self._http)
        self._http = []
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
                if hasattr(ex, "pending_count"):  # x-delayed-message: flush its held messages
                    ex.close()
        self.persistence.save_now()
        log.info("stopped")
