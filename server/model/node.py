"""The model's root: one node's vhosts, users, policies and definitions.

``Node`` holds what the broker model is made of and the rules that change it
(create and delete queues, vhosts, policies; save definitions). The network
side (listeners, sessions, alarms checks, the HTTP services) is the
:class:`warren.server.node.broker.Broker`, a ``Node`` subclass, so the model
never imports it. Sessions (AMQP connections) appear here only through the
:class:`~warren.server.model.delivery.Session` protocol.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from warren.server.core.config import Config
from warren.server.core.memory import MemoryMonitor
from warren.server.model.auth import Permission, User, hash_password
from warren.server.model.clock import Clock
from warren.server.model.delivery import Session
from warren.server.model.exchanges import EXCHANGE_TYPES, Exchange
from warren.server.model.persistence import Persistence
from warren.server.model.policies import Policy
from warren.server.model.queue_args import queue_type
from warren.server.model.queue_kind import QUEUE_KINDS
from warren.server.model.totals import ConnectionSet, Totals
from warren.server.model.tracing import Tracer
from warren.server.model.vhost import VHost

if TYPE_CHECKING:
    from warren.server.model.queue_kind import QueueKind

log = logging.getLogger("warren.broker")


class Node:
    """Everything one warren node holds, without the network."""

    def __init__(
        self,
        config: Config,
        clock: Clock | None = None,
        persistence: Callable[[Node], Persistence] | None = None,
    ) -> None:
        self.config = config
        #: what queues and delayed exchanges schedule on (the event loop; a fake one in model tests)
        self.clock: Clock = clock if clock is not None else asyncio.get_event_loop()
        self.cluster_name = config.cluster_name
        self.vhosts: dict[str, VHost] = {}
        self.users: dict[str, User] = {}
        #: accumulators for deleted queues / closed channels and connections (metrics)
        self.totals = Totals()
        #: open sessions (AMQP connections); the model reads vhost/user/opened and may close them
        self.connections: set[Session] = ConnectionSet(self.totals)
        self.tracer = Tracer(self, config.trace_ring_size)
        #: direct reply-to: token -> the session channel that consumes amq.rabbitmq.reply-to
        self.reply_channels: dict[str, Any] = {}
        #: resources in alarm ("disk", "memory"): publishers are blocked while any is
        self.alarms: set[str] = set()
        self.memory = MemoryMonitor(self)
        self._started = False
        #: cluster mode: the node's cluster role, with ``status() -> dict`` (None: single node)
        self.cluster: Any = None
        #: cluster mode: the secret followers sign a forwarded client's address with
        self.forward_secret: bytes | None = None
        # cluster mode passes its own (replicated stores, definitions mirrored to etcd)
        self.persistence = persistence(self) if persistence else Persistence(self, config.data_dir)
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
        owner: Session | None,
        auto_delete: bool,
        arguments: dict[str, Any],
    ) -> QueueKind:
        persistence = self.persistence
        q = QUEUE_KINDS[queue_type(arguments)](
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

    def queue_deleted(self, q: QueueKind) -> None:
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
            ex.delete()  # x-delayed-message: its held messages go too
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
