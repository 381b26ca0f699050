"""A virtual host: its exchanges, queues and the routing of a published message."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from warren.protocol.table import long, signed_int
from warren.server.model.deadletter import is_cycle
from warren.server.model.exchanges import EXCHANGE_TYPES, DelayedExchange, DirectExchange, Exchange
from warren.server.model.exchanges.delayed import delay_of
from warren.server.model.publish import DELAYED, PublishResult

if TYPE_CHECKING:
    from warren.server.model.delivery import Origin
    from warren.server.model.message import Message
    from warren.server.model.node import Node
    from warren.server.model.queue_kind import QueueKind

log = logging.getLogger("warren.vhost")

DEFAULT_EXCHANGES = (
    ("amq.direct", "direct"),
    ("amq.fanout", "fanout"),
    ("amq.topic", "topic"),
    ("amq.headers", "headers"),
    ("amq.match", "headers"),
)


class DefaultExchange(DirectExchange):
    """The nameless exchange: routing key = queue name, no explicit bindings."""

    def match(self, routing_key: str, message: Any) -> Any:
        q = self.vhost.queues.get(routing_key)
        return (q,) if q is not None else ()


class VHost:
    """Exchanges and queues of one vhost, and routing across them."""

    def __init__(self, broker: Node, name: str) -> None:
        self.broker = broker
        self.name = name
        self.clock = broker.clock
        self.exchanges: dict[str, Exchange] = {}
        self.queues: dict[str, QueueKind] = {}
        self.policies: dict = {}
        #: vhost limits: max-connections, max-queues (server/limits.py)
        self.limits: dict[str, int] = {}
        #: the broker's Tracer while tracing is on for this vhost, else None (one check on the hot path)
        self.trace: Any = None
        self.exchanges[""] = DefaultExchange(self, "", durable=True)
        for name_, type_ in DEFAULT_EXCHANGES:
            self.exchanges[name_] = EXCHANGE_TYPES[type_](self, name_, durable=True)

    # -- exchanges --------------------------------------------------------
    def add_exchange(self, ex: Exchange) -> None:
        self.exchanges[ex.name] = ex
        if isinstance(ex, DelayedExchange):
            ex.on_due = self._delayed_due
        self.apply_policy_to_exchange(ex)

    def _delayed_due(self, ex: DelayedExchange, routing_key: str, msg: Message, extra: list[str] | None) -> PublishResult:
        """A delayed message is due: negate x-delay (as the plugin does) and publish it now."""
        headers = msg.typed_headers()
        d = headers.get("x-delay")
        if isinstance(d, int) and not isinstance(d, bool) and d > 0:
            # the plugin sets it as a signedint ('I'); other headers keep their types
            headers["x-delay"] = signed_int(-d) if d <= 2**31 else long(-d)
            msg.replace_headers(headers)
        return self.publish(ex, routing_key, msg, extra, DELAYED)

    # -- policies ---------------------------------------------------------
    def apply_policy_to_exchange(self, ex: Exchange) -> None:
        from warren.server.model.policies import effective_arguments, pick_policy

        if not ex.name or ex.name.startswith("amq."):
            return
        policy = pick_policy(self.policies, "exchange", ex.name)
        args = effective_arguments(ex.arguments, policy, "exchange")
        ae = args.get("alternate-exchange")
        # only a string names an exchange (a client may send any field type)
        ex.alternate = ae.decode(errors="replace") if isinstance(ae, bytes) else ae if isinstance(ae, str) else None
        ex.policy = policy

    def apply_policy_to_queue(self, q: QueueKind) -> None:
        from warren.server.model.policies import pick_policy

        q.configure(pick_policy(self.policies, "queue", q.name, q.kind))

    def reapply_policies(self) -> None:
        for ex in self.exchanges.values():
            self.apply_policy_to_exchange(ex)
        for q in self.queues.values():
            self.apply_policy_to_queue(q)

    def delete_exchange(self, ex: Exchange) -> None:
        if self.exchanges.get(ex.name) is not ex:
            return
        del self.exchanges[ex.name]
        ex.delete()
        # bindings where it is the source
        for b in list(ex.bindings.values()):
            ex.unbind(b.destination, b.routing_key, b.arguments)
        # bindings where it is the destination
        for other in list(self.exchanges.values()):
            if other.e2e_count and other.unbind_destination(ex):
                self.maybe_auto_delete_exchange(other)
        self.broker.definitions_changed(ex.durable)

    def maybe_auto_delete_exchange(self, ex: Exchange) -> None:
        if ex.auto_delete and not ex.bindings and self.exchanges.get(ex.name) is ex:
            self.delete_exchange(ex)

    # -- queues -----------------------------------------------------------
    def add_queue(self, q: QueueKind) -> None:
        self.queues[q.name] = q
        if self.policies:
            self.apply_policy_to_queue(q)

    def delete_queue(self, q: QueueKind, reason: str = "deleted") -> int:
        """Remove a queue, its bindings and consumers; return the ready count it had."""
        if self.queues.get(q.name) is not q:
            return 0
        del self.queues[q.name]
        count = len(q.store)
        for ex in list(self.exchanges.values()):
            if ex.unbind_destination(q):
                self.maybe_auto_delete_exchange(ex)
        for c in list(q.consumers):
            c.channel.consumer_cancelled_by_server(c)
        q.consumers.clear()
        q.close()
        q.store.delete()
        if count > 1000:
            self.broker.memory.trim_soon()
        self.broker.queue_deleted(q)
        self.broker.definitions_changed(q.durable)
        log.debug("queue deleted vhost=%s queue=%s reason=%s", self.name, q.name, reason)
        return count

    # -- publishing -------------------------------------------------------
    def publish(
        self,
        ex: Exchange,
        routing_key: str,
        msg: Message,
        extra_keys: list[str] | None,
        origin: Origin,
        mandatory: bool = False,
        result: PublishResult | None = None,
    ) -> PublishResult:
        """The one way into queues: route ``msg`` (or hold it, on an x-delayed-message
        exchange), trace it, count it, copy it into every queue reached.

        ``result`` is reused when given (a channel passes its own: no allocation per
        message). Positional arguments on purpose: this runs once per message.
        """
        res = PublishResult() if result is None else result
        counted = origin.counted
        if counted:
            ex.published_in += 1
        if type(ex) is DelayedExchange and msg.props.headers_len:
            delay = delay_of(msg.headers)
            if delay > 0:
                return self._hold(ex, delay, routing_key, msg, extra_keys, origin, mandatory, res)
        queues = self.route(ex, routing_key, msg, extra_keys)
        if queues and not counted and origin.kind == "dead_letter":  # channels never dead-letter
            queues = self._break_cycles(msg, queues)
        if self.trace:
            self.trace.on_publish(origin, self, ex, routing_key, msg, queues)
        res.delayed = False
        if not queues:
            res.queues = ()
            res.refused = 0
            return res
        if counted:
            ex.published_out += 1
        sync = res.sync
        session = origin.session
        refused = 0
        first = True
        for q in queues:
            if first:
                m = msg
                first = False
            else:
                m = msg.copy()
            if not q.publish(m):
                refused += 1
                continue
            if counted:  # as RabbitMQ, a queue's publish count is of channel publishes
                q.published += 1
            if (m.persistent or q.quorum) and q.durable_store:
                sync.add(q.store)
            if session is not None and q.consumers and q.over_flow_mark():
                session.throttle(q)
        res.queues = queues
        res.refused = refused
        return res

    def _break_cycles(self, msg: Message, queues: Any) -> list[QueueKind]:
        """A dead-lettered message does not go back into a queue it died in with no
        rejection since (RabbitMQ drops it): those queues are left out of the result
        and the trace, as they never get it."""
        out = []
        for q in queues:
            if is_cycle(msg, q):
                log.debug("dead-letter cycle dropped vhost=%s queue=%s", self.name, q.name)
            else:
                out.append(q)
        return out

    def _hold(
        self, ex: DelayedExchange, delay: int, routing_key: str, msg: Message, extra_keys: list[str] | None,
        origin: Origin, mandatory: bool, res: PublishResult,
    ) -> PublishResult:
        """x-delayed-message: keep the message until it is due (``_delayed_due``)."""
        res.queues = self.route(ex, routing_key, msg, extra_keys)
        res.refused = 0
        if mandatory and not res.queues:
            res.delayed = False  # returned to the publisher, not held
            return res
        if self.trace:
            self.trace.on_publish(origin, self, ex, routing_key, msg, None)
        res.delayed = True
        store = ex.hold(delay, routing_key, msg, extra_keys)
        if store is not None:
            res.sync.add(store)
        return res

    # -- routing ----------------------------------------------------------
    def route(self, ex: Exchange, routing_key: str, msg: Message, extra_keys: list[str] | None) -> Any:
        """Queues a message published to ``ex`` reaches (e2e bindings, alternate exchanges, CC/BCC)."""
        dests = ex.match(routing_key, msg)
        if not ex.e2e_count and not extra_keys and (dests or ex.alternate is None):
            return dests
        found: dict[QueueKind, None] = {}
        seen: set[int] = set()
        self._route_into(ex, [routing_key] + (extra_keys or []), msg, found, seen)
        return list(found)

    def _route_into(
        self, ex: Exchange, keys: list[str], msg: Message, found: dict, seen: set[int]
    ) -> None:
        if id(ex) in seen:
            return
        seen.add(id(ex))
        before = len(found)
        for key in keys:
            for d in ex.match(key, msg):
                if isinstance(d, Exchange):
                    self._route_into(d, keys, msg, found, seen)
                else:
                    found[d] = None
        if len(found) == before and ex.alternate is not None:
            ae = self.exchanges.get(ex.alternate)
            if ae is not None:
                self._route_into(ae, keys, msg, found, seen)
