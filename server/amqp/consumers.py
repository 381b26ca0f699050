"""basic.* methods of a channel other than publish and the fast-path acks: qos,
consume, cancel, get, recover, and channel.flow (the consumers' credit)."""

from __future__ import annotations

import os
from base64 import urlsafe_b64encode
from typing import TYPE_CHECKING, Any

from warren.protocol import commands as C
from warren.protocol import hotpath
from warren.protocol.constants import NOT_ALLOWED, NOT_IMPLEMENTED
from warren.protocol.table import type_name
from warren.server.amqp.publishing import REPLY_TO
from warren.server.core.errors import ConnectionError_, access_refused, precondition
from warren.server.model.consumer import Consumer

if TYPE_CHECKING:
    from warren.server.amqp.channel import Channel


def _token(n: int) -> str:
    return urlsafe_b64encode(os.urandom(n)).decode()


class BasicMethods:
    """basic.qos/consume/cancel/get/ack/nack/reject/recover and channel.flow: methods of :class:`Channel`, kept here."""

    def _basic_qos(self: Channel, m: C.Basic.Qos) -> None:
        if m.prefetch_size:
            raise ConnectionError_(NOT_IMPLEMENTED, f"prefetch_size!=0 ({m.prefetch_size})", 60, 10)
        if m.global_:
            self.global_prefetch = m.prefetch_count
            for c in self.consumers.values():
                c.queue.schedule_dispatch()
        else:
            self.prefetch = m.prefetch_count
        self.send(C.Basic.QosOk())


    def _basic_consume(self: Channel, m: C.Basic.Consume) -> None:
        tag = m.consumer_tag or "amq.ctag-" + _token(16).rstrip("=")
        if tag in self.consumers or (self.reply_consumer is not None and self.reply_consumer.tag == tag):
            raise ConnectionError_(NOT_ALLOWED, f"attempt to reuse consumer tag '{tag}'", 60, 20)
        if m.queue == REPLY_TO:
            if not m.no_ack:
                raise precondition("reply consumer cannot acknowledge")
            if self.reply_consumer is not None:
                raise precondition("reply consumer already set")
            self.reply_token = _token(18)
            self.reply_consumer = Consumer(tag, self, None, True, False, 0, {})  # type: ignore[arg-type]
            self.conn.broker.reply_channels[self.reply_token] = self
            if not m.nowait:
                self.send(C.Basic.ConsumeOk(consumer_tag=tag))
            return
        self._check_perm("read", self._queue_name(m.queue), "queue")  # before existence, as RabbitMQ
        q = self._lookup_queue(m.queue)
        vhost_name = self.vhost.name
        if q.quorum and self.global_prefetch:
            raise ConnectionError_(
                NOT_IMPLEMENTED, f"queue '{q.name}' in vhost '{vhost_name}' does not support global qos", 60, 20
            )
        for other in q.consumers:
            if other.exclusive or m.exclusive:
                raise access_refused(f"queue '{q.name}' in vhost '{vhost_name}' in exclusive use")
        args = dict(m.arguments or {})
        prio = args.get("x-priority", 0)
        if not isinstance(prio, int) or isinstance(prio, bool):
            raise precondition(
                f"invalid arg 'x-priority' for queue '{q.name}' in vhost '{vhost_name}': "
                f'"expected integer, got {type_name(prio)}"'
            )
        # RabbitMQ ignores prefetch for no-ack consumers: such a consumer gets no limit
        prefetch = 0 if m.no_ack else self.prefetch
        c = Consumer(tag, self, q, bool(m.no_ack), bool(m.exclusive), prefetch, args, prio)
        self.consumers[tag] = c
        if not m.nowait:
            self.send(C.Basic.ConsumeOk(consumer_tag=tag))
        q.add_consumer(c)


    def _basic_cancel(self: Channel, m: C.Basic.Cancel) -> None:
        tag = m.consumer_tag
        if self.reply_consumer is not None and self.reply_consumer.tag == tag:
            self.conn.broker.reply_channels.pop(self.reply_token, None)
            self.reply_consumer = None
            self.reply_token = None
        c = self.consumers.pop(tag, None)
        if not m.nowait:
            self.send(C.Basic.CancelOk(consumer_tag=tag))
        if c is not None:
            c.queue.remove_consumer(c)


    def _basic_get(self: Channel, m: C.Basic.Get) -> None:
        self._check_perm("read", self._queue_name(m.queue), "queue")  # before existence, as RabbitMQ
        q = self._lookup_queue(m.queue)
        item = q.get()
        if item is None:
            self.get_empty += 1
            q.get_empty += 1
            self.send(C.Basic.GetEmpty())
            return
        pos, msg = item
        tag = self.next_tag
        self.next_tag = tag + 1
        self.got += 1
        if self.vhost.trace:
            self.vhost.trace.on_deliver(self, q, msg, tag, None)
        if m.no_ack:
            self.got_noack += 1
            q.get_noack += 1
            q.ack(pos)
        else:
            unacked = self.unacked
            unacked.entries[tag] = (q, pos, msg, None, 0.0)
            unacked.order.append(tag)
            q.unacked += 1
        n = self.number
        conn = self.conn
        conn.write_many(
            [
                hotpath.get_ok_frame(n, tag, msg.redelivered, msg.exrk, len(q.store)),
                *hotpath.content_frames(n, msg.header, msg.body, conn.max_body),
            ],
            len(msg.body),
        )


    def _basic_ack(self: Channel, m: C.Basic.Ack) -> None:
        self.on_ack(m.delivery_tag, m.multiple)


    def _basic_nack(self: Channel, m: C.Basic.Nack) -> None:
        self.on_nack(m.delivery_tag, m.multiple, m.requeue)


    def _basic_reject(self: Channel, m: C.Basic.Reject) -> None:
        self.on_nack(m.delivery_tag, 0, m.requeue)


    def _basic_recover(self: Channel, m: Any) -> None:
        if not m.requeue:
            raise ConnectionError_(NOT_IMPLEMENTED, "requeue=false", 60, 110)
        self.unacked.requeue_all()
        if isinstance(m, C.Basic.Recover):
            self.send(C.Basic.RecoverOk())


    def _channel_flow(self: Channel, m: C.Channel.Flow) -> None:
        self.flow = bool(m.active)
        self.send(C.Channel.FlowOk(active=self.flow))
        if self.flow:
            for c in self.consumers.values():
                c.queue.schedule_dispatch()
