"""A queue: ready messages in a store, consumers, dispatch, flow control.

Dispatch runs as one ``call_soon`` callback per event-loop turn per queue (not
per message): publishes and acks only mark the queue as needing dispatch.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from storage.lanes import LanedStore
from storage.memory import MemoryStore

if TYPE_CHECKING:
    from .connection import Connection
    from .consumer import Consumer
    from .message import Message
    from .vhost import VHost

log = logging.getLogger("warren.queue")

#: deliveries per dispatch callback before yielding to the loop
DISPATCH_BUDGET = 512
#: publishers to a queue with consumers pause reading above this many ready messages
FLOW_HIGH = 20000
FLOW_LOW = 10000


class Queue:
    """One AMQP queue."""

    def __init__(
        self,
        vhost: VHost,
        name: str,
        durable: bool = False,
        exclusive_owner: Connection | None = None,
        auto_delete: bool = False,
        arguments: dict | None = None,
        store_factory: Callable[[int], Any] | None = None,
    ) -> None:
        self.vhost = vhost
        self.name = name
        self.durable = durable
        self.exclusive_owner = exclusive_owner
        self.exclusive = exclusive_owner is not None
        self.auto_delete = auto_delete
        self.arguments = dict(arguments or {})
        mp = self.arguments.get("x-max-priority")
        self.max_priority = int(mp) if mp else 0
        if store_factory is not None:
            self.store = store_factory(self.max_priority)
        elif self.max_priority:
            self.store = LanedStore([MemoryStore() for _ in range(self.max_priority + 1)])
        else:
            self.store = MemoryStore()
        self.laned = isinstance(self.store, LanedStore)
        #: True when persistent messages here must be fsynced before confirming
        self.durable_store = durable and getattr(self.store, "persistent", False)
        self.flow_high = FLOW_HIGH
        self.consumers: list[Consumer] = []
        self._rr = 0
        self._uniform = True
        self.had_consumers = False
        self.deleted = False
        self._scheduled = False
        self._loop = asyncio.get_event_loop()
        self.throttled: set[Connection] = set()
        self.unacked = 0
        # counters read by metrics / management
        self.published = 0
        self.delivered = 0
        self.delivered_get = 0
        self.acked = 0
        self.redelivered = 0
        self.bindings: set = set()

    # -- publishing -------------------------------------------------------
    def publish(self, msg: Message) -> bool:
        """Enqueue one message (a per-queue copy). False if refused."""
        if self.laned:
            p = msg.priority
            self.store.push_lane(p if p <= self.max_priority else self.max_priority, msg)
        else:
            self.store.push(msg)
        self.published += 1
        if self.consumers and not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._dispatch)
        return True

    @property
    def overloaded(self) -> bool:
        return bool(self.consumers) and len(self.store) >= FLOW_HIGH

    def message_count(self) -> int:
        return len(self.store)

    # -- consumers --------------------------------------------------------
    def add_consumer(self, consumer: Consumer) -> None:
        self.consumers.append(consumer)
        self.consumers.sort(key=lambda c: -c.priority)
        self._uniform = len({c.priority for c in self.consumers}) <= 1
        self.had_consumers = True
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

    def schedule_dispatch(self) -> None:
        if not self._scheduled and self.consumers and not self.deleted:
            self._scheduled = True
            self._loop.call_soon(self._dispatch)

    def _pick(self) -> Consumer | None:
        consumers = self.consumers
        n = len(consumers)
        if n == 1:
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
        if self.deleted:
            return
        store = self.store
        budget = DISPATCH_BUDGET
        pick = self._pick
        while budget and store:
            c = pick()
            if c is None:
                break
            pos, msg = store.shift()
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
        item = self.store.shift()
        if item is not None:
            self.delivered_get += 1
            if self.throttled and len(self.store) < FLOW_LOW:
                self._release_throttled()
        return item

    def ack(self, position: int) -> None:
        self.store.ack(position)
        self.acked += 1

    def requeue(self, position: int, msg: Message) -> None:
        msg.redelivered = True
        self.store.requeue(position, msg)
        self.schedule_dispatch()

    def discard(self, position: int, msg: Message, reason: str) -> None:
        """A message leaves the queue without being acked (reject/nack without requeue)."""
        self.store.ack(position)

    def purge(self) -> int:
        return self.store.purge()

    # -- lifecycle --------------------------------------------------------
    def close(self) -> None:
        self.deleted = True
        self._release_throttled()

    def __repr__(self) -> str:
        return f"<Queue {self.vhost.name}/{self.name}>"
