"""The deliveries of one channel that await an ack, nack or reject.

An entry is a plain tuple ``(queue, pos, msg, consumer, time)``, indexed by the
constants below: one is made for every delivery and dropped at its ack, and a tuple
costs about a quarter of a slotted object's construction (measured: 37 ns against
160 ns to build and read one). The hot paths (``Channel.deliver``, the single-ack
path of ``Channel.on_ack``) touch ``entries`` and ``order`` directly; everything
else (multiple acks, nacks, rejects, requeue on close) goes through this tracker.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from warren.server.core.errors import precondition

if TYPE_CHECKING:
    from warren.server.amqp.channel import Channel
    from warren.server.model.queue import Queue

#: entry fields: the queue (None for a direct reply-to), the message's position in the
#: queue's store, the message, the consumer (None for a basic.get) and the delivery's
#: loop time (0.0 for a basic.get)
QUEUE, POS, MSG, CONSUMER, TIME = range(5)


class Unacked:
    """Unacked deliveries of a channel, by delivery tag, oldest first."""

    __slots__ = ("ch", "entries", "order")

    def __init__(self, ch: Channel) -> None:
        self.ch = ch
        self.entries: dict[int, tuple] = {}
        #: delivery tags in delivery order; acked tags are removed lazily (from the front)
        self.order: deque[int] = deque()

    def __len__(self) -> int:
        return len(self.entries)

    def take(self, tag: int, multiple: int) -> list[tuple]:
        """Remove and return the entries an ack/nack of ``tag`` settles (tag 0 + multiple: all)."""
        entries = self.entries
        if multiple:
            if tag != 0 and tag not in entries:
                raise precondition(f"unknown delivery tag {tag}")
            out = []
            order = self.order
            while order and (tag == 0 or order[0] <= tag):
                e = entries.pop(order.popleft(), None)
                if e is not None:
                    out.append(e)
            return out
        e = entries.pop(tag, None)
        if e is None:
            raise precondition(f"unknown delivery tag {tag}")
        if self.order and self.order[0] == tag:
            self.order.popleft()
        return [e]

    def check(self, tag: int, multiple: int) -> None:
        """The tag an ack/nack in a transaction names must exist now (RabbitMQ checks at once)."""
        if (multiple and tag == 0) or tag in self.entries:
            return
        raise precondition(f"unknown delivery tag {tag}")

    def release(self, entries: list[tuple]) -> set:
        """Give back the credit the entries held; returns the queues that may dispatch again."""
        ch = self.ch
        wake = set()
        for q, _pos, _msg, c, _t in entries:
            if c is not None:
                c.unacked -= 1
                ch.global_unacked -= 1
                wake.add(q)
            if q is not None:
                q.unacked -= 1
        if wake and ch.global_prefetch:
            # channel-wide credit was freed: every queue this channel consumes from may go on
            for c in ch.consumers.values():
                wake.add(c.queue)
        return wake

    def ack(self, tag: int, multiple: int) -> None:
        """The general ack (multiple, global prefetch or tracing): see Channel.on_ack."""
        ch = self.ch
        entries = self.take(tag, multiple)
        for q, pos, _msg, _c, _t in entries:
            if q is not None:
                q.ack(pos)
        ch.acked += len(entries)
        if ch.vhost.trace:
            ch.vhost.trace.on_settle(ch, entries, "acked")
        for q in self.release(entries):
            if q is not None:
                q.schedule_dispatch()

    def reject(self, entries: list[tuple], requeue: int) -> None:
        """Nack/reject: requeue the entries' messages or discard them (dead-lettering)."""
        ch = self.ch
        if ch.vhost.trace:
            ch.vhost.trace.on_settle(ch, entries, "requeued" if requeue else "rejected")
        wake = self.release(entries)
        for q, pos, msg, _c, _t in entries:
            if q is None or q.deleted:
                continue
            if requeue:
                q.requeue(pos, msg)
            else:
                q.discard(pos, msg, "rejected")
        for q in wake:
            if q is not None:
                q.schedule_dispatch()

    def requeue_all(self) -> None:
        """Return every unacked message to its queue (channel close, recover)."""
        old = self.entries
        entries = [old[t] for t in sorted(old)]
        self.entries = {}
        self.order = deque()
        # the old bookkeeping is freed only after the requeue: the small objects the
        # stores allocate meanwhile then do not land in its freed slots, scattered over
        # the allocator's arenas, and keep them all alive
        self.reject(entries, True)
        if len(entries) > 1000:  # disk-backed stores let go of these: give the memory back
            self.ch.conn.broker.memory.trim_soon()
        del old, entries

    def oldest(self) -> tuple[float, Queue | None] | None:
        """Delivery time and queue of the oldest unacked consumer delivery."""
        entries = self.entries
        order = self.order
        while order and order[0] not in entries:
            order.popleft()
        for t in order:
            e = entries.get(t)
            if e is not None and e[CONSUMER] is not None:
                return e[TIME], e[QUEUE]
        return None
