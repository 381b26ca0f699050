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


def basic_qos(ch: Channel, m: C.Basic.Qos) -> None:
    if m.prefetch_size:
        raise ConnectionError_(NOT_IMPLEMENTED, f"prefetch_size!=0 ({m.prefetch_size})", 60, 10)
    if m.global_:
        ch.global_prefetch = m.prefetch_count
        for c in ch.consumers.values():
            c.queue.schedule_dispatch()
    else:
        ch.prefetch = m.prefetch_count
    ch.send(C.Basic.QosOk())


def basic_consume(ch: Channel, m: C.Basic.Consume) -> None:
    tag = m.consumer_tag or "amq.ctag-" + _token(16).rstrip("=")
    if tag in ch.consumers or (ch.reply_consumer is not None and ch.reply_consumer.tag == tag):
        raise ConnectionError_(NOT_ALLOWED, f"attempt to reuse consumer tag '{tag}'", 60, 20)
    if m.queue == REPLY_TO:
        if not m.no_ack:
            raise precondition("reply consumer cannot acknowledge")
        if ch.reply_consumer is not None:
            raise precondition("reply consumer already set")
        ch.reply_token = _token(18)
        ch.reply_consumer = Consumer(tag, ch, None, True, False, 0, {})  # type: ignore[arg-type]
        ch.conn.broker.reply_channels[ch.reply_token] = ch
        if not m.nowait:
            ch.send(C.Basic.ConsumeOk(consumer_tag=tag))
        return
    ch._check_perm("read", ch._queue_name(m.queue), "queue")  # before existence, as RabbitMQ
    q = ch._lookup_queue(m.queue)
    vhost_name = ch.vhost.name
    if q.quorum and ch.global_prefetch:
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
    prefetch = 0 if m.no_ack else ch.prefetch
    c = Consumer(tag, ch, q, bool(m.no_ack), bool(m.exclusive), prefetch, args, prio)
    ch.consumers[tag] = c
    if not m.nowait:
        ch.send(C.Basic.ConsumeOk(consumer_tag=tag))
    q.add_consumer(c)


def basic_cancel(ch: Channel, m: C.Basic.Cancel) -> None:
    tag = m.consumer_tag
    if ch.reply_consumer is not None and ch.reply_consumer.tag == tag:
        ch.conn.broker.reply_channels.pop(ch.reply_token, None)
        ch.reply_consumer = None
        ch.reply_token = None
    c = ch.consumers.pop(tag, None)
    if not m.nowait:
        ch.send(C.Basic.CancelOk(consumer_tag=tag))
    if c is not None:
        c.queue.remove_consumer(c)


def basic_get(ch: Channel, m: C.Basic.Get) -> None:
    ch._check_perm("read", ch._queue_name(m.queue), "queue")  # before existence, as RabbitMQ
    q = ch._lookup_queue(m.queue)
    item = q.get()
    if item is None:
        ch.get_empty += 1
        q.get_empty += 1
        ch.send(C.Basic.GetEmpty())
        return
    pos, msg = item
    tag = ch.next_tag
    ch.next_tag = tag + 1
    ch.got += 1
    if ch.vhost.trace:
        ch.vhost.trace.on_deliver(ch, q, msg, tag, None)
    if m.no_ack:
        ch.got_noack += 1
        q.get_noack += 1
        q.ack(pos)
    else:
        unacked = ch.unacked
        unacked.entries[tag] = (q, pos, msg, None, 0.0)
        unacked.order.append(tag)
        q.unacked += 1
    n = ch.number
    conn = ch.conn
    conn.write_many(
        [
            hotpath.get_ok_frame(n, tag, msg.redelivered, msg.exrk, len(q.store)),
            *hotpath.content_frames(n, msg.header, msg.body, conn.max_body),
        ],
        len(msg.body),
    )


def basic_ack(ch: Channel, m: C.Basic.Ack) -> None:
    ch.on_ack(m.delivery_tag, m.multiple)


def basic_nack(ch: Channel, m: C.Basic.Nack) -> None:
    ch.on_nack(m.delivery_tag, m.multiple, m.requeue)


def basic_reject(ch: Channel, m: C.Basic.Reject) -> None:
    ch.on_nack(m.delivery_tag, 0, m.requeue)


def basic_recover(ch: Channel, m: Any) -> None:
    if not m.requeue:
        raise ConnectionError_(NOT_IMPLEMENTED, "requeue=false", 60, 110)
    ch.unacked.requeue_all()
    if isinstance(m, C.Basic.Recover):
        ch.send(C.Basic.RecoverOk())


def channel_flow(ch: Channel, m: C.Channel.Flow) -> None:
    ch.flow = bool(m.active)
    ch.send(C.Channel.FlowOk(active=ch.flow))
    if ch.flow:
        for c in ch.consumers.values():
            c.queue.schedule_dispatch()
