"""A queue: ready messages in a store, consumers, dispatch, flow control, and the
message lifecycle (TTL, max-length/overflow, dead-lettering, delivery limit, expiry).

Dispatch runs as one ``call_soon`` callback per event-loop turn per queue (not
per message): publishes and acks only mark the queue as needing dispatch.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from warren.protocol.table import long
from warren.server.core.flow import DISPATCH_BUDGET, FLOW_HIGH, FLOW_LOW, OUT_HIGH
from warren.server.model.deadletter import dead_letter_copy
from warren.server.model.policies import Policy, effective_arguments
from warren.server.model.publish import DeadLetter
from warren.storage.base import MessageStore
from warren.storage.factory import open_store
from warren.storage.lanes import LanedStore

if TYPE_CHECKING:
    from warren.server.model.consumer import Consumer
    from warren.server.model.delivery import Session
    from warren.server.model.message import Message
    from warren.server.model.vhost import VHost

log = logging.getLogger("warren.queue")


def _str(v: Any) -> str | None:
    if v is None:
        return None
    return v.decode() if isinstance(v, bytes) else str(v)


class Queue:
    """A classic queue, and the base of the other kinds (``model.queue_kind.QueueKind``)."""

    #: x-queue-type, as the management API and policies' apply-to name it
    kind = "classic"
    #: a quorum queue (on one node): every message stored durably, returned messages go
    #: to the back, deliveries counted in x-delivery-count. A class attribute: the hot
    #: path reads it as a plain flag.
    quorum = False

    def __init__(
        self,
        vhost: VHost,
        name: str,
        durable: bool = False,
        exclusive_owner: Session | None = None,
        auto_delete: bool = False,
        arguments: dict | None = None,
        store_factory: Callable[[int], MessageStore] | None = None,
    ) -> None:
        self.vhost = vhost
        # the kind's class attributes copied onto the instance: Python 3.11 reads an
        # instance attribute in ~10 ns, a class attribute through an instance in ~30 ns,
        # and ``quorum`` is read several times per publish
        self.kind = self.kind
        self.quorum = self.quorum
        self.name = name
        self.durable = durable
        self.exclusive_owner = exclusive_owner
        self.exclusive = exclusive_owner is not None
        self.auto_delete = auto_delete
        self.arguments = dict(arguments or {})
        #: this object's entry in the definitions file, once encoded (declared objects never change)
        self.definition_json: str | None = None
        mp = self.arguments.get("x-max-priority")
        self.max_priority = int(mp) if mp else 0
        self.store: MessageStore
        if store_factory is not None:
            self.store = store_factory(self.max_priority)
        else:  # no broker persistence (in-process use): RAM only
            self.store = open_store(None, durable=False, lanes=self.max_priority + 1)
        self.laned = isinstance(self.store, LanedStore)
        #: True when persistent messages here must be fsynced before confirming (set by the broker)
        self.durable_store = False
        #: the store holds records written before a restart: mark them redelivered
        self._recovered = self.store.holds_recovered()
        self.flow_high = FLOW_HIGH
        self._flow_tick = 0
        self.consumers: list[Consumer] = []
        self._rr = 0
        self._uniform = True
        self.had_consumers = False
        self.deleted = False
        self._scheduled = False
        self._loop = vhost.clock
        self.throttled: set[Session] = set()
        self.unacked = 0
        self.policy: Policy | None = None
        self._ttl_handle: asyncio.TimerHandle | None = None
        self._ttl_at = 0.0
        self._expires_handle: asyncio.TimerHandle | None = None
        # counters read by metrics / management
        self.published = 0
        self.delivered = 0
        self.delivered_get = 0
        self.acked = 0
        self.redelivered = 0
        self.dead_lettered: dict[str, int] = {}
        self.expired = 0
        self.dropped = 0
        self.delivered_noack = 0
        self.get_noack = 0
        self.get_empty = 0
        #: messages that expired / overflowed / were rejected with no dead-letter exchange, by reason
        self.dropped_no_dlx: dict[str, int] = {}
        self.configure()
        if self.store:
            # recovered messages may carry an expiry
            self.has_ttl = True
            self._arm_ttl()

    # -- arguments and policy -------------------------------------------
    def configure(self, policy: Policy | None = None) -> None:
        """(Re)compute the lifecycle settings from arguments and the applied policy."""
        self.policy = policy
        args = effective_arguments(self.arguments, policy, "queue")
        self.effective = args
        ttl = args.get("x-message-ttl")
        self.message_ttl: int | None = ttl if isinstance(ttl, int) and not isinstance(ttl, bool) else None
        ml = args.get("x-max-length")
        self.max_length: int | None = ml if isinstance(ml, int) else None
        mlb = args.get("x-max-length-bytes")
        self.max_length_bytes: int | None = mlb if isinstance(mlb, int) else None
        self.overflow = _str(args.get("x-overflow")) or "drop-head"
        self.dlx = _str(args.get("x-dead-letter-exchange"))
        self.dlrk = _str(args.get("x-dead-letter-routing-key"))
        dl = args.get("x-delivery-limit")
        self.delivery_limit: int | None = dl if isinstance(dl, int) else None
        sac = args.get("x-single-active-consumer")
        self.single_active = sac is True
        ct = args.get("x-consumer-timeout")
        self.consumer_timeout: int | None = ct if isinstance(ct, int) else None
        exp = args.get("x-expires")
        self.expires: int | None = exp if isinstance(exp, int) and exp > 0 else None
        self.has_ttl = self.message_ttl is not None
        self.limited = self.max_length is not None or self.max_length_bytes is not None
        self.touch()

    # -- publishing -------------------------------------------------------
    def publish(self, msg: Message) -> bool:
        """Enqueue one message (a per-queue copy). False if refused (reject-publish)."""
        if (self.delivery_limit is not None or self.quorum) and msg.delivery_count == 0:
            # as quorum queues do, every delivery carries x-delivery-count (0 the first time)
            msg = msg.copy()
            msg.add_delivery_count()
            if self.quorum:
                msg.persistent = True  # stored durably whatever its delivery mode says
        elif self.quorum and not msg.persistent:
            msg = msg.copy()
            msg.persistent = True
        if self.limited:
            room = self._make_room(msg)
            if room is not True:
                # None: dropped at once by drop-head (confirmed, as RabbitMQ); False: refused
                return room is None
        ttl = self.message_ttl
        exp = msg.props.expiration
        if exp is not None:
            e = int(exp)
            ttl = e if ttl is None or e < ttl else ttl
        if ttl is not None:
            if ttl == 0 and not self.store:
                return self._publish_zero_ttl(msg)
            msg.expires_at = self._loop.time() + ttl / 1000.0
            self.has_ttl = True
        self._push(msg)
        if self.consumers:
            if not self._scheduled:
                self._scheduled = True
                self._loop.call_soon(self._dispatch)
        if ttl is not None and not self._ttl_handle:
            # also with consumers: one without credit must not keep expired messages alive
            self._arm_ttl()
        return True

    def _push(self, msg: Message) -> None:
        """Into the store; on a priority queue into its lane (priorities above the max count as the max)."""
        if self.laned:
            p = msg.priority
            self.store.push_lane(p if p <= self.max_priority else self.max_priority, msg)
        else:
            self.store.push(msg)

    def _publish_zero_ttl(self, msg: Message) -> bool:
        """x-message-ttl 0 / expiration "0": deliver now if a consumer can take it, else expire."""
        if self.consumers:
            c = self._pick()
            if c is not None:
                self._push(msg)
                item = self.store.shift()
                c.channel.deliver(c, self, item[0], item[1])
                return True
        self.expired += 1
        self.dead_letter(msg, "expired")
        return True

    def _make_room(self, msg: Message) -> bool | None:
        """True: msg may be stored; None: drop-head dropped msg itself (a limit of 0, or
        msg alone over max-length-bytes); False: refused (reject-publish)."""
        store = self.store
        ml, mlb = self.max_length, self.max_length_bytes
        def over(extra_n: int, extra_b: int) -> bool:
            return (ml is not None and len(store) + extra_n > ml) or (
                mlb is not None and store.ready_bytes + extra_b > mlb
            )
        if not over(1, msg.size):
            return True
        if self.overflow == "drop-head":
            while store and over(1, msg.size):
                pos, old = store.shift()
                store.ack(pos)
                self.dead_letter(old, "maxlen")
            if ml == 0 or (mlb is not None and msg.size > mlb):
                self.dead_letter(msg, "maxlen")
                return None
            return True
        # reject-publish / reject-publish-dlx
        if self.overflow == "reject-publish-dlx":
            self.dead_letter(msg, "maxlen")
        else:
            self.dropped += 1
        return False

    def over_flow_mark(self) -> bool:
        """True if publishers should pause; counts the backlog only every 64th call (cheap)."""
        self._flow_tick = t = (self._flow_tick + 1) & 63
        return t == 0 and len(self.store) >= self.flow_high

    def message_count(self) -> int:
        return len(self.store)

    # -- expiry -----------------------------------------------------------
    def expire_head(self) -> None:
        """Drop (or dead-letter) expired messages at the head, as RabbitMQ does."""
        store = self.store
        now = self._loop.time()
        while True:
            item = store.peek()
            if item is None:
                return
            m = item[1]
            if not m.expires_at or m.expires_at > now:
                if m.expires_at:
                    self._arm_ttl(m.expires_at)
                return
            store.shift()
            store.ack(item[0])
            self.expired += 1
            self.dead_letter(m, "expired")

    def _arm_ttl(self, at: float = 0.0) -> None:
        if not at:
            item = self.store.peek()
            if item is None or not item[1].expires_at:
                return
            at = item[1].expires_at
        if self._ttl_handle is not None:
            if self._ttl_at <= at:
                return
            self._ttl_handle.cancel()
        self._ttl_at = at
        self._ttl_handle = self._loop.call_at(at, self._ttl_fired)

    def _ttl_fired(self) -> None:
        self._ttl_handle = None
        if not self.deleted:
            self.expire_head()
            self.schedule_dispatch()

    def touch(self) -> None:
        """Queue activity: restart the x-expires countdown (only while unused)."""
        if self._expires_handle is not None:
            self._expires_handle.cancel()
            self._expires_handle = None
        if self.expires and not self.consumers and not self.deleted:
            self._expires_handle = self._loop.call_later(self.expires / 1000.0, self._expire_queue)

    def _expire_queue(self) -> None:
        self._expires_handle = None
        if not self.consumers and not self.deleted:
            log.info("queue expired vhost=%s queue=%s", self.vhost.name, self.name)
            self.vhost.delete_queue(self, reason="expired")

    # -- dead-lettering ----------------------------------------------------
    def dead_letter(self, msg: Message, reason: str) -> None:
        """Send ``msg`` to the dead-letter exchange, if there is one; else drop it."""
        ex = self.vhost.exchanges.get(self.dlx) if self.dlx is not None else None
        if ex is None:
            if self.dlx is not None:
                log.debug("dead-letter exchange missing vhost=%s queue=%s dlx=%s", self.vhost.name, self.name, self.dlx)
            self.dropped_no_dlx[reason] = self.dropped_no_dlx.get(reason, 0) + 1
            if self.vhost.trace:
                self.vhost.trace.on_dropped(self, msg, reason)
            return
        m, keys = dead_letter_copy(msg, self, reason, self.dlx, self.dlrk)
        self.dead_lettered[reason] = self.dead_lettered.get(reason, 0) + 1
        self.vhost.publish(ex, keys[0], m, keys[1:] or None, DeadLetter(self, reason))

    # -- consumers --------------------------------------------------------
    def add_consumer(self, consumer: Consumer) -> None:
        self.consumers.append(consumer)
        if not self.single_active:
            self.consumers.sort(key=lambda c: -c.priority)
        self._uniform = len({c.priority for c in self.consumers}) <= 1
        self.had_consumers = True
        if self._expires_handle is not None:
            self._expires_handle.cancel()
            self._expires_handle = None
        self.schedule_dispatch()

    def remove_consumer(self, consumer: Consumer) -> None:
        try:
            self.consumers.remove(consumer)
        except ValueError:
            return
        self._uniform = len({c.priority for c in self.consumers}) <= 1
        if not self.consumers:
            self._release_throttled()
            if self.auto_delete and self.had_consumers and not self.deleted:
                self.vhost.delete_queue(self, reason="auto_delete")
                return
            self.touch()
            if self.has_ttl:
                self._arm_ttl()
        else:
            self.schedule_dispatch()

    def active_consumer(self) -> Consumer | None:
        if self.single_active and self.consumers:
            return self.consumers[0]
        return None

    def schedule_dispatch(self) -> None:
        if not self._scheduled and self.consumers and not self.deleted:
            self._scheduled = True
            self._loop.call_soon(self._dispatch)

    def _pick(self) -> Consumer | None:
        consumers = self.consumers
        n = len(consumers)
        if n == 1 or self.single_active:
            c = consumers[0]
            return c if c.can_take() else None
        if self._uniform:
            rr = self._rr
            for k in range(n):
                i = (rr + k) % n
                c = consumers[i]
                if c.can_take():
                    self._rr = i + 1
                    return c
            return None
        # consumer priorities: highest group first, round-robin within a group
        start = 0
        while start < n:
            prio = consumers[start].priority
            end = start
            while end < n and consumers[end].priority == prio:
                end += 1
            size = end - start
            rr = self._rr
            for k in range(size):
                i = start + (rr + k) % size
                c = consumers[i]
                if c.can_take():
                    self._rr = (i - start) + 1
                    return c
            start = end
        return None

    def _dispatch(self) -> None:
        self._scheduled = False
        if self.deleted or not self.consumers:
            return
        store = self.store
        budget = DISPATCH_BUDGET
        pick = self._pick
        if self.has_ttl:
            self.expire_head()
            while budget and store:
                c = pick()
                if c is None:
                    break
                self.expire_head()
                item = store.shift()
                if item is None:
                    break
                if self._recovered and store.is_recovered(item[0]):
                    item[1].redelivered = True
                c.channel.deliver(c, self, item[0], item[1])
                budget -= 1
        elif len(self.consumers) == 1:
            # one consumer: work out its credit once instead of asking per message
            c = self.consumers[0]
            ch = c.channel
            if ch.can_deliver():
                n = budget
                if c.prefetch:
                    n = min(n, c.prefetch - c.unacked)
                if ch.global_prefetch:
                    n = min(n, ch.global_prefetch - ch.global_unacked)
                conn = ch.conn
                deliver = ch.deliver
                recovered = self._recovered
                shift = store.shift
                while n > 0 and store:
                    if conn.out_bytes >= OUT_HIGH:
                        conn.dispatch_blocked = True
                        break
                    pos, msg = shift()
                    if recovered and store.is_recovered(pos):
                        msg.redelivered = True
                    deliver(c, self, pos, msg)
                    n -= 1
                    budget -= 1
        else:
            while budget and store:
                c = pick()
                if c is None:
                    break
                pos, msg = store.shift()
                if self._recovered and store.is_recovered(pos):
                    msg.redelivered = True
                c.channel.deliver(c, self, pos, msg)
                budget -= 1
        if budget == 0 and store:
            self._scheduled = True
            self._loop.call_soon(self._dispatch)
        if self.throttled and len(store) < FLOW_LOW:
            self._release_throttled()

    def _release_throttled(self) -> None:
        conns = self.throttled
        self.throttled = set()
        for conn in conns:
            conn.unthrottle(self)

    # -- get / ack / requeue ----------------------------------------------
    def get(self) -> tuple[int, Message] | None:
        self.touch()
        if self.has_ttl:
            self.expire_head()
        item = self.store.shift()
        if item is not None:
            if self._recovered and self.store.is_recovered(item[0]):
                item[1].redelivered = True
            self.delivered_get += 1
            if item[1].redelivered:
                self.redelivered += 1
            if self.throttled and len(self.store) < FLOW_LOW:
                self._release_throttled()
        return item

    def ack(self, position: int) -> None:
        self.store.ack(position)
        self.acked += 1

    def requeue(self, position: int, msg: Message) -> None:
        msg.redelivered = True
        if self.delivery_limit is not None or self.quorum:
            msg.delivery_count += 1
            if self.delivery_limit is not None and msg.delivery_count > self.delivery_limit:
                self.store.ack(position)
                self.dead_letter(msg, "delivery_limit")
                return
            headers = msg.typed_headers()
            headers["x-delivery-count"] = long(msg.delivery_count)  # a long, as quorum queues send it
            msg.replace_headers(headers)
        self._return(position, msg)
        self.schedule_dispatch()
        if self.has_ttl and not self.consumers:
            self._arm_ttl()

    def _return(self, position: int, msg: Message) -> None:
        """Put a requeued message back where this kind keeps it: a classic queue, in place."""
        # not changed since it was stored (no x-delivery-count added): a disk-backed
        # store may drop it from RAM and read it back when it is delivered again
        self.store.requeue(position, msg, msg.delivery_count == 0)

    def discard(self, position: int, msg: Message, reason: str) -> None:
        """A message leaves the queue without being acked (reject/nack without requeue)."""
        self.store.ack(position)
        self.dead_letter(msg, reason)

    def purge(self) -> int:
        n = self.store.purge()
        if n > 1000:
            self.vhost.broker.memory.trim_soon()
        return n

    # -- lifecycle --------------------------------------------------------
    def close(self) -> None:
        self.deleted = True
        for h in (self._ttl_handle, self._expires_handle):
            if h is not None:
                h.cancel()
        self._release_throttled()

    def __repr__(self) -> str:
        return f"<Queue {self.vhost.name}/{self.name}>"
