"""An AMQP channel: content assembly, publishing, consumers, acks, confirms, tx."""

from __future__ import annotations

import logging
import os
import re
from base64 import urlsafe_b64encode
from collections import deque
from typing import TYPE_CHECKING, Any

from warren.protocol import commands as C
from warren.protocol import hotpath
from warren.protocol.constants import (
    CHANNEL_ERROR,
    COMMAND_INVALID,
    FRAME_ERROR,
    NOT_ALLOWED,
    NOT_FOUND,
    NOT_IMPLEMENTED,
    SYNTAX_ERROR,
    UNEXPECTED_FRAME,
)
from warren.protocol.errors import AMQPError
from warren.protocol.hotpath import deliver_parts
from warren.protocol.properties import EMPTY as EMPTY_PROPS
from warren.protocol.properties import scan
from warren.protocol.table import type_name
from warren.server.core.errors import (
    ChannelError,
    ConnectionError_,
    access_refused,
    not_found_exchange,
    precondition,
)
from warren.server.model import commands as cmd
from warren.server.model.consumer import Consumer
from warren.server.model.exchanges import Exchange
from warren.server.model.exchanges.topic import TopicExchange
from warren.server.model.message import Message
from warren.server.model.publish import PublishResult
from warren.server.model.queue import Queue

if TYPE_CHECKING:
    from warren.server.amqp.connection import Connection

log = logging.getLogger("warren.channel")

REPLY_TO = "amq.rabbitmq.reply-to"
REPLY_TO_PREFIX = "amq.rabbitmq.reply-to."

_gen_name = cmd.gen_name

class Channel:
    """One channel of a connection."""

    #: as a publish origin (``model.delivery.Origin``): exchange counters count channel publishes
    kind = "amqp"
    counted = True

    def __init__(self, conn: Connection, number: int) -> None:
        self.conn = conn
        self.number = number
        self.vhost = conn.vhost
        self.closing = False
        self.next_tag = 1
        self.unacked: dict[int, tuple[Queue | None, int, Message, Consumer | None, float]] = {}
        self.unacked_order: deque[int] = deque()
        self.consumers: dict[str, Consumer] = {}
        self.prefetch = 0
        self.global_prefetch = 0
        self.global_unacked = 0
        self.flow = True
        self.confirm = False
        self.tx = False
        self._tx_publishes: list[tuple] = []
        self._tx_acks: list[tuple] = []
        # publisher confirms
        self.confirm_seq = 0
        self.confirm_acked = 0
        self._confirm_dirty = False
        self._nacks: list[int] = []
        self._sync_stores: set = set()
        #: reused by every publish of this channel (the pipeline adds to _sync_stores through it)
        self._result = PublishResult(self._sync_stores)
        #: what the publish pipeline reads of its origin (``model.delivery.Origin``)
        self.session = conn
        self._pending_batches: deque[list] = deque()
        # content assembly
        self._publish: tuple | None = None
        self._header: bytes | None = None
        self._body_size = 0
        self._body: list[bytes] = []
        self._received = 0
        self.last_queue: str | None = None
        self.max_message_size = conn.broker.config.max_message_size
        self.reply_token: str | None = None
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

    # ------------------------------------------------------------------ output
    def send(self, method: Any) -> None:
        self.conn.send_method(self.number, method)

    # ------------------------------------------------------------------ credit
    def can_deliver(self) -> bool:
        if not self.flow or self.closing:
            return False
        if self.global_prefetch and self.global_unacked >= self.global_prefetch:
            return False
        return self.conn.can_write()

    # ------------------------------------------------------------------ content frames
    def on_publish(self, exchange: str, routing_key: str, mandatory: int, immediate: int, exrk: bytes) -> None:
        if self._publish is not None:
            raise ConnectionError_(
                UNEXPECTED_FRAME,
                "expected content header for class 60, got non content header frame instead",
                60,
                40,
            )
        self._publish = (exchange, routing_key, mandatory, immediate, exrk)

    def on_header(self, class_id: int, body_size: int, payload: bytes) -> None:
        if self._publish is None or self._header is not None:
            raise ConnectionError_(
                UNEXPECTED_FRAME, "expected method frame, got non method frame instead"
            )
        if class_id != 60:
            raise ConnectionError_(
                UNEXPECTED_FRAME,
                f"expected content header for class 60, got one for class {class_id} instead",
                60,
                40,
            )
        limit = self.max_message_size
        if body_size > limit:
            self._publish = None
            raise precondition(
                f"message size {body_size} is larger than configured max size {limit}"
            )
        if body_size == 0:
            self._complete(payload, b"")
            return
        self._header = payload
        self._body_size = body_size
        self._received = 0

    def on_body(self, payload: bytes) -> None:
        if self._header is None:
            raise ConnectionError_(
                UNEXPECTED_FRAME, "expected method frame, got non method frame instead"
            )
        n = self._received + len(payload)
        if n >= self._body_size:
            if n > self._body_size:
                raise ConnectionError_(
                    FRAME_ERROR,
                    f"content body is {n} bytes, more than the {self._body_size} declared",
                )
            if self._body:
                self._body.append(payload)
                body = b"".join(self._body)
                self._body = []
            else:
                body = payload
            header = self._header
            self._header = None
            self._complete(header, body)
        else:
            self._received = n
            self._body.append(payload)

    def expecting_content(self) -> bool:
        return self._publish is not None

    # ------------------------------------------------------------------ publish
    def on_message(
        self, exchange: str, routing_key: str, mandatory: int, immediate: int, exrk: bytes, header: bytes, body: bytes
    ) -> None:
        """A publish whose header and body arrived together (the reader's K_MESSAGE)."""
        if self._publish is not None:
            self.on_publish(exchange, routing_key, mandatory, immediate, exrk)  # raises 505
        if len(body) > self.max_message_size:
            raise precondition(
                f"message size {len(body)} is larger than configured max size {self.max_message_size}"
            )
        self._publish_message(exchange, routing_key, mandatory, immediate, exrk, header, body)

    def _complete(self, header: bytes, body: bytes) -> None:
        exchange, routing_key, mandatory, immediate, exrk = self._publish
        self._publish = None
        self._publish_message(exchange, routing_key, mandatory, immediate, exrk, header, body)

    def _publish_message(
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
                _check_expiration(props.expiration)
            if props.headers_len:
                try:  # decoded once, here (linear, depth-bounded): later users get a sound table
                    msg.properties.headers  # noqa: B018
                except Exception as exc:  # noqa: BLE001 - any failure on client bytes is the client's
                    raise ConnectionError_(SYNTAX_ERROR, f"malformed content header: {exc}", 60, 40) from None
                extra = self._sender_selected(msg)
            if props.reply_to is not None and props.reply_to == REPLY_TO:
                self._rewrite_reply_to(msg)
        self.published += 1
        if self.tx:
            self._tx_publishes.append((ex, routing_key, msg, mandatory, extra))
            return
        self._route(ex, routing_key, msg, mandatory, extra)

    def _sender_selected(self, msg: Message) -> list[str] | None:
        """CC and BCC headers add routing keys; BCC is removed before delivery."""
        try:
            headers = msg.headers
        except ValueError as exc:  # the properties' lengths scanned fine, their contents do not decode
            raise ConnectionError_(SYNTAX_ERROR, f"malformed content header: {exc}", 60, 40) from None
        extra: list[str] = []
        for name in ("CC", "BCC"):
            v = headers.get(name)
            if v is None:
                continue
            if not isinstance(v, list):
                wire = msg.typed_headers()[name]  # RabbitMQ names the wire type
                raise precondition(f'invalid message: {{unacceptable_type_in_header,"{name}",{type_name(wire)}}}')
            for k in v:
                extra.append(k.decode(errors="replace") if isinstance(k, bytes) else str(k))
        if "BCC" in headers:
            typed = msg.typed_headers()  # the other headers keep their wire types
            typed.pop("BCC", None)
            msg.replace_headers(typed)
        return extra or None

    def _rewrite_reply_to(self, msg: Message) -> None:
        if self.reply_consumer is None:
            raise precondition("fast reply consumer does not exist")
        msg.set_property("reply_to", REPLY_TO_PREFIX + self.reply_token)

    def _route(self, ex: Exchange, routing_key: str, msg: Message, mandatory: int, extra: list[str] | None) -> None:
        if self.confirm:
            self.confirm_seq += 1
            if not self._confirm_dirty:
                # confirms go out once per read, when the connection ends the batch
                self._confirm_dirty = True
                self.conn._batch.add(self)
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
                self._nacks.append(self.confirm_seq)
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

    def end_batch(self) -> None:
        """Called once per read: emit publisher confirms for what this read published."""
        if not self._confirm_dirty:
            return
        self._confirm_dirty = False
        seq = self.confirm_seq
        if self._nacks:
            nacks = self._nacks
            self._nacks = []
            # acks before the first nack, then each nack on its own; as RabbitMQ, a nack
            # with nothing unconfirmed below it has multiple set, and requeue always
            for tag in nacks:
                below_confirmed = not self._pending_batches
                if below_confirmed:
                    self._write_ack(tag - 1)
                self.conn.write(hotpath.confirm_nack_frame(self.number, tag, below_confirmed, True))
                if not self._pending_batches and tag > self.confirm_acked:
                    self.confirm_acked = tag
        if self._sync_stores:
            stores = self._sync_stores
            self._sync_stores = self._result.sync = set()
            persistence = self.conn.broker.persistence
            if persistence.unsaved:
                # a new durable queue's definition must be on disk before its messages are confirmed
                stores.add(persistence)
            batch = [seq, len(stores), True, self.conn.loop.time()]
            self._pending_batches.append(batch)
            for store in stores:
                # the fsync latency histogram is about message stores, not definitions saves
                fsync = store is not persistence
                store.sync(lambda ok=True, b=batch, f=fsync: self._synced(b, ok, f))
            return
        if self._pending_batches:
            self._pending_batches.append([seq, 0, True])
            return
        self._write_ack(seq)

    def _synced(self, batch: list, ok: bool, fsync: bool = False) -> None:
        totals = self.conn.broker.totals
        if fsync:
            totals.fsync.observe(self.conn.loop.time() - batch[3])
        batch[1] -= 1
        if not ok:
            batch[2] = False
        pb = self._pending_batches
        upto = 0
        while pb and pb[0][1] <= 0:
            b = pb.popleft()
            if len(b) > 3:
                totals.confirm.observe(self.conn.loop.time() - b[3])
            if not b[2]:
                if upto:
                    self._write_ack(upto)
                    upto = 0
                self.conn.write(hotpath.confirm_nack_frame(self.number, b[0], True, True))
                self.confirm_acked = b[0]
            else:
                upto = b[0]
        if upto:
            self._write_ack(upto)
        self.conn.flush_soon()

    def _write_ack(self, tag: int) -> None:
        if tag <= self.confirm_acked or self.closing:
            return
        multiple = tag - self.confirm_acked > 1
        self.confirm_acked = tag
        self.conn.write(hotpath.confirm_ack_frame(self.number, tag, multiple))

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
            self.unacked[tag] = (queue, pos, msg, consumer, conn.loop.time())
            self.unacked_order.append(tag)
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
    def _take(self, tag: int, multiple: int) -> list[tuple]:
        unacked = self.unacked
        if multiple:
            if tag != 0 and tag not in unacked:
                raise precondition(f"unknown delivery tag {tag}")
            out = []
            order = self.unacked_order
            while order and (tag == 0 or order[0] <= tag):
                t = order.popleft()
                e = unacked.pop(t, None)
                if e is not None:
                    out.append(e)
            return out
        e = unacked.pop(tag, None)
        if e is None:
            raise precondition(f"unknown delivery tag {tag}")
        if self.unacked_order and self.unacked_order[0] == tag:
            self.unacked_order.popleft()
        return [e]

    def _release(self, entries: list[tuple]) -> set:
        wake = set()
        for q, _pos, _msg, c, _t in entries:
            if c is not None:
                c.unacked -= 1
                self.global_unacked -= 1
                wake.add(q)
            if q is not None:
                q.unacked -= 1
        if wake and self.global_prefetch:
            # channel-wide credit was freed: every queue this channel consumes from may go on
            for c in self.consumers.values():
                wake.add(c.queue)
        return wake

    def on_ack(self, tag: int, multiple: int) -> None:
        if self.tx:
            self._check_tag(tag, multiple)
            self._tx_acks.append((0, tag, multiple, False))
            return
        if not multiple and not self.global_prefetch and not self.vhost.trace:
            # the common single ack, without the list and set of the general path
            e = self.unacked.pop(tag, None)
            if e is None:
                raise precondition(f"unknown delivery tag {tag}")
            order = self.unacked_order
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
            return
        entries = self._take(tag, multiple)
        for q, pos, _msg, _c, _t in entries:
            if q is not None:
                q.ack(pos)
        self.acked += len(entries)
        if self.vhost.trace:
            self.vhost.trace.on_settle(self, entries, "acked")
        for q in self._release(entries):
            if q is not None:
                q.schedule_dispatch()

    def on_nack(self, tag: int, multiple: int, requeue: int) -> None:
        if self.tx:
            self._check_tag(tag, multiple)
            self._tx_acks.append((1, tag, multiple, requeue))
            return
        self._reject(self._take(tag, multiple), requeue)

    def _check_tag(self, tag: int, multiple: int) -> None:
        if (multiple and tag == 0) or tag in self.unacked:
            return
        raise precondition(f"unknown delivery tag {tag}")

    def _reject(self, entries: list[tuple], requeue: int) -> None:
        if self.vhost.trace:
            self.vhost.trace.on_settle(self, entries, "requeued" if requeue else "rejected")
        wake = self._release(entries)
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
        old = self.unacked
        entries = [old[t] for t in sorted(old)]
        self.unacked = {}
        self.unacked_order = deque()
        # the old bookkeeping is freed only after the requeue: the small objects the
        # stores allocate meanwhile then do not land in its freed slots, scattered over
        # the allocator's arenas, and keep them all alive
        self._reject(entries, True)
        if len(entries) > 1000:  # disk-backed stores let go of these: give the memory back
            self.conn.broker.memory.trim_soon()
        del old, entries

    def oldest_unacked(self) -> tuple[float, Queue | None] | None:
        """Delivery time and queue of the oldest unacked consumer delivery."""
        unacked = self.unacked
        order = self.unacked_order
        while order and order[0] not in unacked:
            order.popleft()
        for t in order:
            e = unacked.get(t)
            if e is not None and e[3] is not None:
                return e[4], e[0]
        return None

    # ------------------------------------------------------------------ server-side cancel
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
        self.requeue_all()
        self._tx_publishes.clear()
        self._tx_acks.clear()
        self._publish = None
        self._header = None
        self._body = []

    # ------------------------------------------------------------------ methods
    def handle(self, m: Any) -> None:
        handler = _HANDLERS.get(type(m))
        if handler is None:
            # RabbitMQ: any method a client may not send on a channel
            raise ConnectionError_(COMMAND_INVALID, "unimplemented method", *_ids(m))
        try:
            handler(self, m)
        except AMQPError as exc:
            if not exc.class_id:
                exc.class_id, exc.method_id = _ids(m)
            raise

    # channel.* --------------------------------------------------------------
    def _channel_close(self, m: C.Channel.Close) -> None:
        """Client-initiated close: confirm what this read published, release
        consumers and unacked messages (requeued), answer close-ok, forget the channel."""
        self.end_batch()
        self.close()
        self.conn.channels.pop(self.number, None)
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

    # basic.* ------------------------------------------------------------------
    def _basic_qos(self, m: C.Basic.Qos) -> None:
        if m.prefetch_size:
            raise ConnectionError_(NOT_IMPLEMENTED, f"prefetch_size!=0 ({m.prefetch_size})", 60, 10)
        if m.global_:
            self.global_prefetch = m.prefetch_count
            for c in self.consumers.values():
                c.queue.schedule_dispatch()
        else:
            self.prefetch = m.prefetch_count
        self.send(C.Basic.QosOk())

    def _basic_consume(self, m: C.Basic.Consume) -> None:
        tag = m.consumer_tag or _gen_name("amq.ctag-")
        if tag in self.consumers or (self.reply_consumer is not None and self.reply_consumer.tag == tag):
            raise ConnectionError_(NOT_ALLOWED, f"attempt to reuse consumer tag '{tag}'", 60, 20)
        if m.queue == REPLY_TO:
            if not m.no_ack:
                raise precondition("reply consumer cannot acknowledge")
            if self.reply_consumer is not None:
                raise precondition("reply consumer already set")
            self.reply_token = urlsafe_b64encode(os.urandom(18)).decode()
            self.reply_consumer = Consumer(tag, self, None, True, False, 0, {})  # type: ignore[arg-type]
            self.conn.broker.reply_channels[self.reply_token] = self
            if not m.nowait:
                self.send(C.Basic.ConsumeOk(consumer_tag=tag))
            return
        self._check_perm("read", self._queue_name(m.queue), "queue")  # before existence, as RabbitMQ
        q = self._lookup_queue(m.queue)
        if q.quorum and self.global_prefetch:
            raise ConnectionError_(
                NOT_IMPLEMENTED, f"queue '{q.name}' in vhost '{self.vhost.name}' does not support global qos", 60, 20
            )
        for other in q.consumers:
            if other.exclusive or m.exclusive:
                raise access_refused(f"queue '{q.name}' in vhost '{self.vhost.name}' in exclusive use")
        args = dict(m.arguments or {})
        prio = args.get("x-priority", 0)
        if not isinstance(prio, int) or isinstance(prio, bool):
            raise precondition(
                f"invalid arg 'x-priority' for queue '{q.name}' in vhost '{self.vhost.name}': "
                f'"expected integer, got {type_name(prio)}"'
            )
        # RabbitMQ ignores prefetch for no-ack consumers: such a consumer gets no limit
        prefetch = 0 if m.no_ack else self.prefetch
        c = Consumer(tag, self, q, bool(m.no_ack), bool(m.exclusive), prefetch, args, prio)
        self.consumers[tag] = c
        if not m.nowait:
            self.send(C.Basic.ConsumeOk(consumer_tag=tag))
        q.add_consumer(c)

    def _basic_cancel(self, m: C.Basic.Cancel) -> None:
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

    def _basic_get(self, m: C.Basic.Get) -> None:
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
            self.unacked[tag] = (q, pos, msg, None, 0.0)
            self.unacked_order.append(tag)
            q.unacked += 1
        n = self.number
        self.conn.write_many(
            [
                hotpath.get_ok_frame(n, tag, msg.redelivered, msg.exrk, len(q.store)),
                *hotpath.content_frames(n, msg.header, msg.body, self.conn.max_body),
            ],
            len(msg.body),
        )

    def _basic_reject(self, m: C.Basic.Reject) -> None:
        self.on_nack(m.delivery_tag, 0, m.requeue)

    def _basic_ack(self, m: C.Basic.Ack) -> None:
        self.on_ack(m.delivery_tag, m.multiple)

    def _basic_nack(self, m: C.Basic.Nack) -> None:
        self.on_nack(m.delivery_tag, m.multiple, m.requeue)

    def _basic_recover(self, m: Any) -> None:
        if not m.requeue:
            raise ConnectionError_(NOT_IMPLEMENTED, "requeue=false", 60, 110)
        self.requeue_all()
        if isinstance(m, C.Basic.Recover):
            self.send(C.Basic.RecoverOk())

    # channel.*, confirm.*, tx.* -------------------------------------------------
    def _channel_flow(self, m: C.Channel.Flow) -> None:
        self.flow = bool(m.active)
        self.send(C.Channel.FlowOk(active=self.flow))
        if self.flow:
            for c in self.consumers.values():
                c.queue.schedule_dispatch()

    def _confirm_select(self, m: C.Confirm.Select) -> None:
        if self.tx:
            raise precondition("cannot switch from tx to confirm mode")
        self.confirm = True
        if not m.nowait:
            self.send(C.Confirm.SelectOk())

    def _tx_select(self, m: C.Tx.Select) -> None:
        if self.confirm:
            raise precondition("cannot switch from confirm to tx mode")
        self.tx = True
        self.send(C.Tx.SelectOk())

    def _tx_commit(self, m: C.Tx.Commit) -> None:
        if not self.tx:
            raise precondition("channel is not transactional")
        pubs, acks = self._tx_publishes, self._tx_acks
        self._tx_publishes, self._tx_acks = [], []
        for ex, rk, msg, mandatory, extra in pubs:
            self._route(ex, rk, msg, mandatory, extra)
        self.tx = False
        try:
            for kind, tag, multiple, requeue in acks:
                if kind == 0:
                    self.on_ack(tag, multiple)
                else:
                    self.on_nack(tag, multiple, requeue)
        finally:
            self.tx = True
        self.send(C.Tx.CommitOk())

    def _tx_rollback(self, m: C.Tx.Rollback) -> None:
        if not self.tx:
            raise precondition("channel is not transactional")
        self._tx_publishes.clear()
        self._tx_acks.clear()
        self.send(C.Tx.RollbackOk())

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


#: RabbitMQ's largest per-message TTL (ms): ten years
MAX_EXPIRATION = 315_360_000_000
_EXPIRATION = re.compile(r"([+-]?[0-9]+)(.*)", re.S)


def _check_expiration(exp: str) -> None:
    """As RabbitMQ (string:to_integer, then the range check), with its error texts."""
    m = _EXPIRATION.fullmatch(exp)
    if m is None:
        raise precondition(f"invalid expiration '{exp}': no_integer")
    n = int(m.group(1))
    if m.group(2):
        raise precondition(f"invalid expiration '{exp}': {{leftover_string,\"{m.group(2)}\"}}")
    if n < 0:
        raise precondition(f"invalid expiration '{exp}': {{value_negative,{n}}}")
    if n > MAX_EXPIRATION:
        prefix = f"invalid expiration '{exp}': "
        term = f"{{value_too_large,{n}}}"
        if len(prefix) + len(term) >= 78:  # Erlang's ~p breaks a term that runs past the line
            term = f"{{value_too_large,\n{' ' * (len(prefix) + 1)}{n}}}"
        raise precondition(prefix + term)


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
    C.Confirm.Select: Channel._confirm_select,
    C.Tx.Select: Channel._tx_select,
    C.Tx.Commit: Channel._tx_commit,
    C.Tx.Rollback: Channel._tx_rollback,
}

