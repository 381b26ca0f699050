"""Tracing: RabbitMQ's firehose and warren's message journeys.

Both are switched on per vhost. While a vhost's tracing is off its ``trace``
attribute is ``None`` and the hot path pays one attribute check; while it is on,
``trace`` is the broker's :class:`Tracer` and the channel / queue hooks call it.

* Firehose (as RabbitMQ's ``rabbit_trace``): every publish is re-published to
  the topic exchange ``amq.rabbitmq.trace`` with routing key
  ``publish.<exchange>``, every delivery (consume or get) with
  ``deliver.<queue>``, carrying RabbitMQ's headers (``exchange_name``,
  ``routing_keys``, ``properties``, ``node``, ``vhost``, ``connection``,
  ``channel``, ``user``, ``routed_queues`` / ``redelivered``) and the original
  body. Messages published to the trace exchange itself are not traced.
* Journey: for messages that carry a ``message_id``, events (published, routed,
  delivered, redelivered, requeued, acked, rejected, dead_lettered, expired,
  dropped) with wall-clock timestamps, kept in one bounded ring (a deque of
  at most ``trace_ring_size`` small dicts, strings truncated) and looked up
  by message id (``/api/trace/{message_id}``, ``warrenctl trace ID``).
"""

from __future__ import annotations

import time
from collections import deque
from typing import TYPE_CHECKING, Any

from pamqp import commands as C
from warren.protocol.hotpath import shortstr
from warren.protocol.methods import encode_header
from warren.protocol.properties import scan
from warren.server.model.exchanges import EXCHANGE_TYPES
from warren.server.model.message import Message
from warren.server.model.publish import FIREHOSE

if TYPE_CHECKING:
    from warren.server.model.consumer import Consumer
    from warren.server.model.delivery import DeliveryTarget as Channel
    from warren.server.model.delivery import Origin
    from warren.server.model.exchanges import Exchange
    from warren.server.model.node import Node
    from warren.server.model.queue import Queue
    from warren.server.model.vhost import VHost

TRACE_EXCHANGE = "amq.rabbitmq.trace"
#: longest string kept in a journey event (ids, names)
MAX_STR = 256

_PROP_NAMES = (
    ("content_type", "content_type"),
    ("content_encoding", "content_encoding"),
    ("headers", "headers"),
    ("delivery_mode", "delivery_mode"),
    ("priority", "priority"),
    ("correlation_id", "correlation_id"),
    ("reply_to", "reply_to"),
    ("expiration", "expiration"),
    ("message_id", "message_id"),
    ("timestamp", "timestamp"),
    ("message_type", "type"),
    ("user_id", "user_id"),
    ("app_id", "app_id"),
    ("cluster_id", "cluster_id"),
)


def properties_table(msg: Message) -> dict[str, Any]:
    """The message's basic properties as a field table with RabbitMQ's names."""
    props = msg.properties
    out: dict[str, Any] = {}
    for attr, key in _PROP_NAMES:
        v = getattr(props, attr, None)
        if v is not None:
            out[key] = v
    return out


def _s(v: Any) -> str:
    s = v if isinstance(v, str) else str(v)
    return s if len(s) <= MAX_STR else s[:MAX_STR]


class Tracer:
    """Per-vhost switches, the firehose publisher, and the journey ring."""

    def __init__(self, broker: Node, ring_size: int = 10000) -> None:
        self.broker = broker
        self.ring: deque[dict[str, Any]] = deque(maxlen=max(1, int(ring_size)))
        self.firehose: set[str] = set()
        self.journey: set[str] = set()
        self.node = "warren@localhost"

    # -- switches -----------------------------------------------------------------
    def vhost_added(self, vh: VHost) -> None:
        if TRACE_EXCHANGE not in vh.exchanges:
            vh.exchanges[TRACE_EXCHANGE] = EXCHANGE_TYPES["topic"](vh, TRACE_EXCHANGE, durable=True, internal=True)
        self._apply(vh)

    def _apply(self, vh: VHost) -> None:
        on = vh.name in self.firehose or vh.name in self.journey
        vh.trace = self if on else None

    def set(self, vhost: str, firehose: bool | None = None, journey: bool | None = None) -> dict[str, bool]:
        """Switch the firehose and/or journeys for ``vhost``; returns the new state."""
        if firehose is not None:
            (self.firehose.add if firehose else self.firehose.discard)(vhost)
        if journey is not None:
            (self.journey.add if journey else self.journey.discard)(vhost)
        vh = self.broker.vhosts.get(vhost)
        if vh is not None:
            self._apply(vh)
        return self.status(vhost)

    def status(self, vhost: str) -> dict[str, bool]:
        return {"firehose": vhost in self.firehose, "journey": vhost in self.journey}

    # -- journey ring ---------------------------------------------------------------
    def events(self, message_id: str, vhost: str | None = None) -> list[dict[str, Any]]:
        """The timeline of one message id (oldest first)."""
        return [
            dict(e) for e in list(self.ring) if e["message_id"] == message_id and (vhost is None or e["vhost"] == vhost)
        ]

    def record(self, vh: VHost, msg: Message, event: str, **fields: Any) -> None:
        if vh.name not in self.journey:
            return
        mid = msg.properties.message_id if msg.props.flags else None
        if mid is None:
            return
        e = {"ts": time.time(), "vhost": vh.name, "message_id": _s(mid), "event": event}
        for k, v in fields.items():
            if isinstance(v, str):
                v = _s(v)
            elif isinstance(v, list):
                v = [_s(x) for x in v[:32]]
            e[k] = v
        self.ring.append(e)

    # -- firehose -----------------------------------------------------------------
    def _firehose(self, vh: VHost, rk: str, msg: Message, extra: dict[str, Any]) -> None:
        if vh.name not in self.firehose or msg.exchange == TRACE_EXCHANGE:
            return
        ex = vh.exchanges.get(TRACE_EXCHANGE)
        if ex is None or not ex.bindings:
            return
        headers = {
            "exchange_name": msg.exchange,
            "routing_keys": [msg.routing_key],
            "properties": properties_table(msg),
            "node": self.node,
        }
        headers.update(extra)
        header = encode_header(len(msg.body), C.Basic.Properties(headers=headers))
        m = Message(TRACE_EXCHANGE, rk, shortstr(TRACE_EXCHANGE) + shortstr(rk), header, msg.body, scan(header))
        vh.publish(ex, rk, m, None, FIREHOSE)  # on_publish ignores amq.rabbitmq.trace: no loop

    @staticmethod
    def _who(ch: Channel) -> dict[str, Any]:
        return {"vhost": ch.vhost.name, **ch.trace_fields()}

    # -- hooks (called only while the vhost's tracing is on) ----------------------
    def on_publish(self, origin: Origin, vh: VHost, ex: Exchange, routing_key: str, msg: Message, queues: Any) -> None:
        """The pipeline routed (``queues``) or held (``queues`` None: delayed) a message."""
        if msg.exchange == TRACE_EXCHANGE:
            return
        kind = origin.kind
        names = [q.name for q in queues] if queues is not None else []
        if kind == "dead_letter":
            self.record(vh, msg, "dead_lettered", queue=origin.queue.name, reason=origin.reason,  # type: ignore[attr-defined]
                        exchange=ex.name, queues=names)
            return
        fields = origin.trace_fields()
        if kind != "delayed":
            self.record(vh, msg, "published", exchange=ex.name, routing_key=routing_key,
                        connection=fields["connection"], channel=fields["channel"])
        if queues is None:
            self.record(vh, msg, "delayed", exchange=ex.name)
        elif names:
            self.record(vh, msg, "routed", queues=names)
        else:
            self.record(vh, msg, "unroutable", exchange=ex.name)
        if kind != "delayed" and vh.name in self.firehose:
            extra = {"vhost": vh.name, **fields, "routed_queues": names}
            self._firehose(vh, f"publish.{ex.name}", msg, extra)

    def on_deliver(self, ch: Channel, q: Queue, msg: Message, tag: int, consumer: Consumer | None) -> None:
        vh = ch.vhost
        if msg.exchange == TRACE_EXCHANGE:
            return
        self.record(
            vh, msg, "redelivered" if msg.redelivered else "delivered", queue=q.name,
            consumer_tag=consumer.tag if consumer is not None else "", method="consume" if consumer is not None else "get",
            delivery_tag=tag, connection=ch.conn.name, channel=ch.number,
        )
        if vh.name in self.firehose:
            extra = self._who(ch)
            extra["redelivered"] = 1 if msg.redelivered else 0
            self._firehose(vh, f"deliver.{q.name}", msg, extra)

    def on_settle(self, ch: Channel, entries: list[tuple], what: str) -> None:
        vh = ch.vhost
        for q, _pos, msg, _c, _t in entries:
            if q is not None and msg.exchange != TRACE_EXCHANGE:
                self.record(vh, msg, what, queue=q.name, connection=ch.conn.name, channel=ch.number)

    def on_dropped(self, q: Queue, msg: Message, reason: str) -> None:
        """A message left ``q`` with no dead-letter exchange to go to."""
        self.record(q.vhost, msg, "expired" if reason == "expired" else "dropped", queue=q.name, reason=reason)
