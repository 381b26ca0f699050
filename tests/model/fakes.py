"""Test doubles for in-process model tests: a clock advanced by hand and a channel.

``FakeClock`` implements :class:`warren.server.model.clock.Clock` (the part of
the event loop the model schedules on): callbacks queue up and run only when a
test calls :meth:`FakeClock.run_ready` or :meth:`FakeClock.advance`, in due
order, so TTLs, x-expires and dispatch are deterministic and take no real time.

``FakeChannel`` implements :class:`warren.server.model.delivery.DeliveryTarget`:
it records deliveries and tracks unacked messages as the AMQP channel does, and
its credit (``flow``, ``global_prefetch``) is set by the test.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pamqp import commands as C
from warren.protocol.hotpath import shortstr
from warren.protocol.methods import decode_header, encode_header
from warren.protocol.properties import scan
from warren.server.model.consumer import Consumer
from warren.server.model.message import Message
from warren.server.model.queue import Queue
from warren.server.model.vhost import VHost


class FakeHandle:
    """What call_soon/call_at return: cancellable."""

    __slots__ = ("when", "seq", "callback", "args", "cancelled")

    def __init__(self, when: float, seq: int, callback: Callable[..., Any], args: tuple) -> None:
        self.when = when
        self.seq = seq
        self.callback = callback
        self.args = args
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True

    def __lt__(self, other: FakeHandle) -> bool:
        return (self.when, self.seq) < (other.when, other.seq)


class FakeClock:
    """A deterministic scheduler: time moves only when the test says so."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self._heap: list[FakeHandle] = []
        self._seq = itertools.count()

    # -- the Clock protocol ------------------------------------------------
    def time(self) -> float:
        return self.now

    def call_soon(self, callback: Callable[..., Any], *args: Any) -> FakeHandle:
        return self.call_at(self.now, callback, *args)

    def call_at(self, when: float, callback: Callable[..., Any], *args: Any) -> FakeHandle:
        h = FakeHandle(when, next(self._seq), callback, args)
        heapq.heappush(self._heap, h)
        return h

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> FakeHandle:
        return self.call_at(self.now + delay, callback, *args)

    # -- driving it --------------------------------------------------------
    def pending(self) -> list[FakeHandle]:
        """Scheduled, not cancelled callbacks, earliest first."""
        return sorted(h for h in self._heap if not h.cancelled)

    def run_ready(self, limit: int = 100_000) -> int:
        """Run every callback due now, including ones they schedule for now; return how many ran."""
        ran = 0
        while self._heap and self._heap[0].when <= self.now:
            h = heapq.heappop(self._heap)
            if h.cancelled:
                continue
            h.callback(*h.args)
            ran += 1
            if ran >= limit:
                raise RuntimeError("run_ready: callbacks keep scheduling themselves")
        return ran

    def advance(self, seconds: float) -> int:
        """Move time forward by ``seconds``, running callbacks at their due times, in order."""
        end = self.now + seconds
        ran = self.run_ready()
        while True:
            live = [h for h in self._heap if not h.cancelled]
            nxt = min(live).when if live else None
            if nxt is None or nxt > end:
                break
            self.now = max(self.now, nxt)
            ran += self.run_ready()
        self.now = end
        ran += self.run_ready()
        return ran


@dataclass
class Outlet:
    """The session side of a FakeChannel (``warren.server.model.delivery.Outlet``)."""

    out_bytes: int = 0
    dispatch_blocked: bool = False
    name: str = "fake connection"
    user: Any = "guest"


@dataclass
class Delivery:
    tag: int
    consumer: Consumer
    queue: Queue
    pos: int
    msg: Message
    #: the redelivered flag and content header as sent (the message object is reused
    #: when it is requeued and delivered again, and requeueing may change its headers)
    redelivered: bool = False
    header: bytes = b""

    @property
    def body(self) -> bytes:
        return self.msg.body

    @property
    def properties(self) -> C.Basic.Properties:
        return decode_header(self.header)

    @property
    def headers(self) -> dict:
        return self.properties.headers or {}


class FakeChannel:
    """A DeliveryTarget that records deliveries and settles them like the AMQP channel."""

    def __init__(self, vhost: VHost, number: int = 1) -> None:
        self.conn = Outlet()
        self.number = number
        self.vhost = vhost
        self.global_prefetch = 0
        self.global_unacked = 0
        #: False stops all deliveries (as channel.flow / a closing channel)
        self.flow = True
        self.deliveries: list[Delivery] = []
        self.unacked: dict[int, Delivery] = {}
        self.consumers: list[Consumer] = []
        self.cancelled: list[Consumer] = []
        self._tag = 0
        self._ctag = 0

    # -- the DeliveryTarget protocol ---------------------------------------
    def can_deliver(self) -> bool:
        if not self.flow:
            return False
        return not (self.global_prefetch and self.global_unacked >= self.global_prefetch)

    def deliver(self, consumer: Consumer, queue: Queue, pos: int, msg: Message) -> None:
        self._tag += 1
        d = Delivery(self._tag, consumer, queue, pos, msg, msg.redelivered, msg.header)
        if consumer.no_ack:
            queue.ack(pos)
        else:
            self.unacked[d.tag] = d
            consumer.unacked += 1
            self.global_unacked += 1
            queue.unacked += 1
        queue.delivered += 1
        consumer.delivered += 1
        self.deliveries.append(d)

    def consumer_cancelled_by_server(self, consumer: Consumer) -> None:
        if consumer in self.consumers:
            self.consumers.remove(consumer)
        self.cancelled.append(consumer)

    def trace_fields(self) -> dict[str, Any]:
        return {"connection": self.conn.name, "channel": self.number, "user": "guest"}

    # -- what a client does ------------------------------------------------
    def consume(
        self, queue: Queue, prefetch: int = 0, priority: int = 0, no_ack: bool = False, tag: str = ""
    ) -> Consumer:
        self._ctag += 1
        args = {"x-priority": priority} if priority else {}
        c = Consumer(tag or f"ctag-{self._ctag}", self, queue, no_ack, False, prefetch, args, priority)
        self.consumers.append(c)
        queue.add_consumer(c)
        return c

    def cancel(self, consumer: Consumer) -> None:
        self.consumers.remove(consumer)
        consumer.queue.remove_consumer(consumer)

    def _settle(self, tag: int) -> Delivery:
        d = self.unacked.pop(tag)
        d.consumer.unacked -= 1
        self.global_unacked -= 1
        d.queue.unacked -= 1
        return d

    def _wake(self, d: Delivery) -> None:
        d.queue.schedule_dispatch()
        if self.global_prefetch:
            # channel-wide credit was freed: every queue this channel consumes from may go on
            for c in self.consumers:
                c.queue.schedule_dispatch()

    def ack(self, tag: int) -> None:
        d = self._settle(tag)
        d.queue.ack(d.pos)
        self._wake(d)

    def reject(self, tag: int, requeue: bool) -> None:
        d = self._settle(tag)
        if requeue:
            d.queue.requeue(d.pos, d.msg)
        else:
            d.queue.discard(d.pos, d.msg, "rejected")
        self._wake(d)

    def bodies(self) -> list[bytes]:
        return [d.body for d in self.deliveries]

    def take(self) -> list[Delivery]:
        """The deliveries so far, forgetting them (unacked ones stay unacked)."""
        out, self.deliveries = self.deliveries, []
        return out


def make_message(
    body: bytes | str = b"",
    routing_key: str = "",
    exchange: str = "",
    **properties: Any,
) -> Message:
    """A Message as the broker builds one from a publish (pamqp Basic.Properties names)."""
    data = body.encode() if isinstance(body, str) else body
    header = encode_header(len(data), C.Basic.Properties(**properties))
    return Message(exchange, routing_key, shortstr(exchange) + shortstr(routing_key), header, data, scan(header))
