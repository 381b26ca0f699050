"""An AMQP channel: the publish and deliver hot paths, acks, and method dispatch.

The rest lives beside it: content assembly and publish checks (``publishing``),
publisher confirms (``confirms``), unacked deliveries (``unacked``), transactions
(``tx``) and the consumer methods (``consumers``). Handlers there are plain functions
taking the channel, called from ``_HANDLERS`` exactly as methods would be.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from warren.protocol import commands as C
from warren.protocol.constants import (
    CHANNEL_ERROR,
    COMMAND_INVALID,
    NOT_FOUND,
    NOT_IMPLEMENTED,
    SYNTAX_ERROR,
)
from warren.protocol.errors import AMQPError
from warren.protocol.hotpath import deliver_parts
from warren.protocol.properties import EMPTY as EMPTY_PROPS
from warren.protocol.properties import scan
from warren.server.amqp import tx
from warren.server.amqp.confirms import ConfirmTracker, confirm_select
from warren.server.amqp.consumers import BasicMethods
from warren.server.amqp.publishing import (
    REPLY_TO,
    REPLY_TO_PREFIX,
    Content,
    check_expiration,
    rewrite_reply_to,
    sender_selected,
    unexpected_content_header,
)
from warren.server.amqp.replies import TOPOLOGY, HeldReplies, run_topology
from warren.server.amqp.tx import TxMethods
from warren.server.amqp.unacked import Unacked
from warren.server.core.errors import (
    ChannelError,
    ConnectionError_,
    access_refused,
    not_found_exchange,
    precondition,
)
from warren.server.model import commands as cmd
from warren.server.model.exchanges import Exchange
from warren.server.model.exchanges.topic import TopicExchange
from warren.server.model.message import Message
from warren.server.model.queue import Queue

if TYPE_CHECKING:
    from warren.server.amqp.connection import Connection
    from warren.server.model.consumer import Consumer

log = logging.getLogger("warren.channel")


class Channel(BasicMethods, TxMethods):
    """One channel of a connection."""

    #: as a publish origin (``model.delivery.Origin``): exchange counters count channel publishes
    kind = "amqp"
    counted = True

    def __init__(self, conn: Connection, number: int) -> None:
        self.conn = conn
        self.number = number
        # as instance attributes (read per publish; see Queue.__init__)
        self.kind = self.kind
        self.counted = self.counted
        self.vhost = conn.vhost
        #: what the publish pipeline reads of its origin (``model.delivery.Origin``)
        self.session = conn
        self.closing = False
        self.next_tag = 1
        self.unacked = Unacked(self)
        self.consumers: dict[str, Consumer] = {}
        self.prefetch = 0
        self.global_prefetch = 0
        self.global_unacked = 0
        self.flow = True
        self.confirm = False
        self.confirms = ConfirmTracker(self)
        #: reused by every publish of this channel (the pipeline adds the stores to sync to it)
        self._result = self.confirms.result
        self.tx = False
        self.tx_publishes: list[tuple] = []
        self.tx_acks: list[tuple] = []
        self.content = Content(self)
        self.last_queue: str | None = None
        self.max_message_size = conn.broker.config.max_message_size
        self.reply_token: str | None = None
        #: replies waiting for definition saves (replies.py; cluster mode)
        self.held: HeldReplies | None = None
        self.reply_consumer: Consumer | None = None
        # counters
        self.published = 0
        self.delivered = 0
        self.acked = 0
        self.delivered_noack = 0
        self.got = 0
        self.got_noack = 0
        self.get_empty = 0
        self.unroutable_returned = 0
        self.unroutable_dropped = 0

    @property
    def confirm_seq(self) -> int:
        """Publishes counted for confirms (the last publish's delivery tag)."""
        return self.confirms.seq

    @property
    def confirm_acked(self) -> int:
        """Publishes confirmed (acked or nacked) to the client."""
        return self.confirms.acked

    def send(self, method: Any) -> None:
        if self.held is not None:
            self.held.methods.append(method)  # behind a reply that waits for a save
            return
        self.conn.send_method(self.number, method)

    def can_deliver(self) -> bool:
        if not self.flow or self.closing:
            return False
        if self.global_prefetch and self.global_unacked >= self.global_prefetch:
            return False
        return self.conn.can_write()

    # ------------------------------------------------------------------ publish
    def on_message(
        self, exchange: str, routing_key: str, mandatory: int, immediate: int, exrk: bytes, header: bytes, body: bytes
    ) -> None:
        """A publish whose header and body arrived together (the reader's K_MESSAGE)."""
        if self.content.method is not None:
            raise unexpected_content_header()
        if len(body) > self.max_message_size:
            raise precondition(
                f"message size {len(body)} is larger than configured max size {self.max_message_size}"
            )
        self.publish_message(exchange, routing_key, mandatory, immediate, exrk, header, body)

    def publish_message(
        self, exchange: str, routing_key: str, mandatory: int, immediate: int, exrk: bytes, header: bytes, body: bytes
    ) -> None:
        vhost = self.vhost
        ex = vhost.exchanges.get(exchange)
        if ex is None:
            raise not_found_exchange(exchange, vhost.name)
        if immediate:
            raise ConnectionError_(NOT_IMPLEMENTED, "immediate=true", 60, 40)
        if ex.internal:
            raise access_refused(
                f"cannot publish to internal exchange '{exchange}' in vhost '{vhost.name}'"
            )
        conn = self.conn
        # RabbitMQ checks the default exchange under the name amq.default
        if not conn.perm_all and not conn.permission.can_write(exchange or "amq.default"):
            raise access_refused(
                f"access to exchange '{exchange or 'amq.default'}' in vhost '{vhost.name}' "
                f"refused for user '{conn.user.name}'"
            )
        if conn.topic_perms and type(ex) is TopicExchange:
            self._check_topic("write", ex.name, routing_key)
        if header[12] == 0 and header[13] == 0:  # no properties at all: nothing to scan
            props = EMPTY_PROPS
        else:
            try:
                props = scan(header)
            except (ValueError, IndexError, UnicodeDecodeError) as exc:
                raise ConnectionError_(SYNTAX_ERROR, f"malformed content header: {exc}", 60, 40) from None
        msg = Message(exchange, routing_key, exrk, header, body, props)
        extra: list[str] | None = None
        if props.flags:
            if props.user_id is not None and props.user_id != conn.user.name:
                raise precondition(
                    f"user_id property set to '{props.user_id}' but authenticated user was '{conn.user.name}'"
                )
            if props.expiration is not None:
                check_expiration(props.expiration)
            if props.headers_len:
                try:  # decoded once, here (linear, depth-bounded): later users get a sound table
                    msg.properties.headers  # noqa: B018
                except Exception as exc:  # noqa: BLE001 - any failure on client bytes is the client's
                    raise ConnectionError_(SYNTAX_ERROR, f"malformed content header: {exc}", 60, 40) from None
                extra = sender_selected(msg)
            if props.reply_to is not None and props.reply_to == REPLY_TO:
                rewrite_reply_to(self, msg)
        self.published += 1
        if self.tx:
            self.tx_publishes.append((ex, routing_key, msg, mandatory, extra))
            return
        self._route(ex, routing_key, msg, mandatory, extra)

    def _route(self, ex: Exchange, routing_key: str, msg: Message, mandatory: int, extra: list[str] | None) -> None:
        if self.confirm:
            confirms = self.confirms
            confirms.seq += 1
            if not confirms.dirty:
                # confirms go out once per read, when the connection ends the batch
                confirms.dirty = True
                self.conn._batch.add(confirms)
        if not ex.name and routing_key.startswith(REPLY_TO_PREFIX):
            # direct reply-to: straight to the consuming channel, no queue
            ex.published_in += 1
            target = self.conn.broker.reply_channels.get(routing_key[len(REPLY_TO_PREFIX):])
            if target is not None and target.reply_consumer is not None:
                target.deliver_reply(msg)
                return
        else:
            res = self.vhost.publish(ex, routing_key, msg, extra, self, mandatory, self._result)
            if res.refused and self.confirm:
                self.confirms.nacks.append(self.confirms.seq)
            if res.queues or res.delayed:
                return
        if mandatory:
            self.unroutable_returned += 1
            self.conn.send_return(self.number, msg, 312, "NO_ROUTE")
        else:
            self.unroutable_dropped += 1

    def trace_fields(self) -> dict[str, Any]:
        """Who published or received, as the tracer records it."""
        conn = self.conn
        return {"connection": conn.name, "channel": self.number, "user": getattr(conn.user, "name", "")}

    # ------------------------------------------------------------------ deliveries
    def deliver(self, consumer: Consumer, queue: Queue, pos: int, msg: Message) -> None:
        conn = self.conn
        tag = self.next_tag
        self.next_tag = tag + 1
        if consumer.no_ack:
            queue.ack(pos)
            self.delivered_noack += 1
            queue.delivered_noack += 1
        else:
            unacked = self.unacked
            unacked.entries[tag] = (queue, pos, msg, consumer, conn.loop.time())
            unacked.order.append(tag)
            consumer.unacked += 1
            self.global_unacked += 1
            queue.unacked += 1
        queue.delivered += 1
        redelivered = msg.redelivered
        if redelivered:
            queue.redelivered += 1
        self.delivered += 1
        consumer.delivered += 1
        if self.vhost.trace:
            self.vhost.trace.on_deliver(self, queue, msg, tag, consumer)
        body = msg.body
        conn.write_many(
            deliver_parts(self.number, consumer.prefix, tag, redelivered, msg.exrk, msg.header, body, conn.max_body),
            len(body),
        )

    def deliver_reply(self, msg: Message) -> None:
        conn = self.conn
        tag = self.next_tag
        self.next_tag = tag + 1
        body = msg.body
        conn.write_many(
            deliver_parts(
                self.number, self.reply_consumer.prefix, tag, False, msg.exrk, msg.header, body, conn.max_body
            ),
            len(body),
        )

    # ------------------------------------------------------------------ acks
    def on_ack(self, tag: int, multiple: int) -> None:
        if self.tx:
            self.unacked.check(tag, multiple)
            self.tx_acks.append((tx.ACK, tag, multiple, False))
            return
        if multiple or self.global_prefetch or self.vhost.trace:
            self.unacked.ack(tag, multiple)
            return
        # the common single ack, inline: without the list and set of the general path
        unacked = self.unacked
        e = unacked.entries.pop(tag, None)
        if e is None:
            raise precondition(f"unknown delivery tag {tag}")
        order = unacked.order
        if order and order[0] == tag:
            order.popleft()
        q, pos, _msg, c, _t = e
        self.acked += 1
        if q is not None:
            q.ack(pos)
            q.unacked -= 1
            if c is not None:
                c.unacked -= 1
                self.global_unacked -= 1
                q.schedule_dispatch()

    def on_nack(self, tag: int, multiple: int, requeue: int) -> None:
        unacked = self.unacked
        if self.tx:
            unacked.check(tag, multiple)
            self.tx_acks.append((tx.NACK, tag, multiple, requeue))
            return
        unacked.reject(unacked.take(tag, multiple), requeue)

    def oldest_unacked(self) -> tuple[float, Queue | None] | None:
        """Delivery time and queue of the oldest unacked consumer delivery."""
        return self.unacked.oldest()

    def consumer_cancelled_by_server(self, consumer: Consumer) -> None:
        self.consumers.pop(consumer.tag, None)
        if self.conn.capabilities.get("consumer_cancel_notify") and not self.closing:
            self.send(C.Basic.Cancel(consumer_tag=consumer.tag, nowait=True))

    # ------------------------------------------------------------------ close
    def close(self) -> None:
        """Release everything this channel holds (consumers, unacked messages)."""
        if not self.closing:
            self.conn.broker.totals.channel_gone(self)
        self.closing = True
        for c in list(self.consumers.values()):
            c.queue.remove_consumer(c)
        self.consumers.clear()
        if self.reply_token is not None:
            self.conn.broker.reply_channels.pop(self.reply_token, None)
            self.reply_token = None
            self.reply_consumer = None
        self.unacked.requeue_all()
        self.tx_publishes.clear()
        self.tx_acks.clear()
        self.content.reset()

    # ------------------------------------------------------------------ methods
    def handle(self, m: Any) -> None:
        handler = _HANDLERS.get(type(m))
        if handler is None:
            # RabbitMQ: any method a client may not send on a channel
            raise ConnectionError_(COMMAND_INVALID, "unimplemented method", *_ids(m))
        try:
            if type(m) in TOPOLOGY:
                run_topology(self, handler, m)  # a cluster's replies wait for the save
            else:
                handler(self, m)
        except AMQPError as exc:
            if not exc.class_id:
                exc.class_id, exc.method_id = _ids(m)
            raise

    # channel.* --------------------------------------------------------------
    def _channel_close(self, m: C.Channel.Close) -> None:
        """Client-initiated close: confirm what this read published, release
        consumers and unacked messages (requeued), answer close-ok, forget the channel."""
        self.confirms.end_batch()
        self.close()
        self.conn.channels.pop(self.number, None)
        # a client that sent Channel.Close takes only Close-Ok: replies still held go
        self.held = None
        self.send(C.Channel.CloseOk())

    def _channel_open(self, m: C.Channel.Open) -> None:
        raise ConnectionError_(CHANNEL_ERROR, "second 'channel.open' seen", 20, 10)

    # exchange.* -------------------------------------------------------------
    # the bodies are the model's topology commands (model.commands), shared with the
    # management API; these decode the method and send the reply
    def _actor(self) -> cmd.Actor:
        conn = self.conn
        return cmd.Actor(conn.user.name, None if conn.perm_all else conn.permission, conn.topic_perms, conn)

    def _exchange_declare(self, m: C.Exchange.Declare) -> None:
        cmd.exchange_declare(
            self.vhost, self._actor(), m.exchange, m.exchange_type, bool(m.durable), bool(m.auto_delete),
            bool(m.internal), m.arguments, bool(m.passive),
        )
        if not m.nowait:
            self.send(C.Exchange.DeclareOk())

    def _exchange_delete(self, m: C.Exchange.Delete) -> None:
        cmd.exchange_delete(self.vhost, self._actor(), m.exchange, bool(m.if_unused))
        if not m.nowait:
            self.send(C.Exchange.DeleteOk())

    def _exchange_bind(self, m: Any) -> None:
        unbind = isinstance(m, C.Exchange.Unbind)
        cmd.exchange_bind(self.vhost, self._actor(), m.destination, m.source, m.routing_key, m.arguments, unbind)
        if not m.nowait:
            self.send(C.Exchange.UnbindOk() if unbind else C.Exchange.BindOk())

    # queue.* ------------------------------------------------------------------
    def _queue_name(self, name: str) -> str:
        """An empty queue name means the channel's last declared queue (spec, RabbitMQ)."""
        if name == "":
            if self.last_queue is None:
                raise ChannelError(NOT_FOUND, "no previously declared queue")
            return self.last_queue
        return name

    def _lookup_queue(self, name: str) -> Queue:
        return cmd.lookup_queue(self.vhost, self._actor(), self._queue_name(name))

    def _queue_declare(self, m: C.Queue.Declare) -> None:
        if m.passive and m.queue == REPLY_TO:
            # RabbitMQ reports the pseudo-queue with one consumer
            if not m.nowait:
                self.send(C.Queue.DeclareOk(queue=m.queue, message_count=0, consumer_count=1))
            return
        q, _ = cmd.queue_declare(
            self.vhost, self._actor(), m.queue, bool(m.durable), bool(m.exclusive), bool(m.auto_delete),
            m.arguments, bool(m.passive),
        )
        self.last_queue = q.name
        if not m.nowait:
            self.send(C.Queue.DeclareOk(queue=q.name, message_count=len(q.store), consumer_count=len(q.consumers)))

    def _queue_bind(self, m: Any) -> None:
        unbind = isinstance(m, C.Queue.Unbind)
        qname = self._queue_name(m.queue)  # first, as RabbitMQ
        routing_key = m.routing_key
        if m.queue == "" and routing_key == "":
            routing_key = qname  # the last declared queue, bound with its own name as the key
        cmd.queue_bind(self.vhost, self._actor(), qname, m.exchange, routing_key, m.arguments, unbind)
        if unbind:
            self.send(C.Queue.UnbindOk())  # queue.unbind has no nowait
        elif not m.nowait:
            self.send(C.Queue.BindOk())

    def _queue_purge(self, m: C.Queue.Purge) -> None:
        n = cmd.queue_purge(self.vhost, self._actor(), self._queue_name(m.queue))
        if not m.nowait:
            self.send(C.Queue.PurgeOk(message_count=n))

    def _queue_delete(self, m: C.Queue.Delete) -> None:
        def ok(count: int) -> None:
            if not m.nowait:  # before the Basic.Cancel the deletion sends its consumers (RabbitMQ's order)
                self.send(C.Queue.DeleteOk(message_count=count))

        gone = cmd.queue_delete(
            self.vhost, self._actor(), self._queue_name(m.queue), bool(m.if_unused), bool(m.if_empty), ok
        )
        if gone is None and not m.nowait:
            self.send(C.Queue.DeleteOk(message_count=0))


    # permissions ----------------------------------------------------------------
    def _check_perm(self, kind: str, name: str, what: str) -> None:
        conn = self.conn
        if not conn.perm_all:
            cmd.check_permission(conn.permission, conn.user.name, kind, name, what, self.vhost.name)

    def _check_configure(self, name: str, what: str) -> None:
        self._check_perm("configure", name, what)

    def _check_topic(self, kind: str, exchange: str, routing_key: str) -> None:
        """Topic permissions (RabbitMQ's topic authorisation) of a topic exchange, if any."""
        conn = self.conn
        cmd.check_topic(conn.topic_perms, conn.user.name, kind, exchange, routing_key, self.vhost.name)


def _ids(m: Any) -> tuple[int, int]:
    idx = getattr(m, "index", 0)
    return idx >> 16, idx & 0xFFFF


_HANDLERS = {
    C.Exchange.Declare: Channel._exchange_declare,
    C.Exchange.Delete: Channel._exchange_delete,
    C.Exchange.Bind: Channel._exchange_bind,
    C.Exchange.Unbind: Channel._exchange_bind,
    C.Queue.Declare: Channel._queue_declare,
    C.Queue.Bind: Channel._queue_bind,
    C.Queue.Unbind: Channel._queue_bind,
    C.Queue.Purge: Channel._queue_purge,
    C.Queue.Delete: Channel._queue_delete,
    C.Basic.Qos: Channel._basic_qos,
    C.Basic.Consume: Channel._basic_consume,
    C.Basic.Cancel: Channel._basic_cancel,
    C.Basic.Get: Channel._basic_get,
    C.Basic.Ack: Channel._basic_ack,
    C.Basic.Nack: Channel._basic_nack,
    C.Basic.Reject: Channel._basic_reject,
    C.Basic.Recover: Channel._basic_recover,
    C.Basic.RecoverAsync: Channel._basic_recover,
    C.Channel.Flow: Channel._channel_flow,
    C.Channel.Close: Channel._channel_close,
    C.Channel.Open: Channel._channel_open,
    C.Confirm.Select: confirm_select,
    C.Tx.Select: Channel._tx_select,
    C.Tx.Commit: Channel._tx_commit,
    C.Tx.Rollback: Channel._tx_rollback,
}
