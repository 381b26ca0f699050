"""Every message counter an entity keeps, declared once, with where it is shown.

The hot path keeps counting in plain ``int`` attributes on the entity
(``q.published += 1``, ``self.delivered += 1``): no counters object, no lookup
per message. This module is the one list of those attributes. For each entity
(queue, channel, connection, exchange) it declares:

* the :class:`Counter` s: attribute name, and whether it *folds* into
  :class:`~warren.server.model.totals.Totals` when the object goes (exactly the
  counters some node-wide figure reads, so node-wide totals never go backwards);
* the Prometheus :class:`Family` s computed from them: name, HELP, value, and
  where the family appears (per object, aggregated node-wide, ``rabbitmq_global_*``);
* the management API :class:`Stat` s (``message_stats`` keys, or ``recv_oct``
  ... for connections), in the order RabbitMQ's JSON has them.

Readers (``Totals``, the Prometheus collector and scrape renderer, the
management views and history) go through these declarations. Values are read
with :func:`operator.attrgetter` built here, or by the ``value`` functions that
take the entity, or an :class:`Entity` ``Sums`` holding node-wide sums of its
folded counters: the same function serves a single object and the node.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

#: where a family appears
OBJECT = 1  # /metrics/per-object, labelled by the object
NODE = 2  # /metrics, one unlabelled sample summed over the node
GLOBAL_P = 4  # rabbitmq_global_*, labelled {protocol}
GLOBAL_PQ = 8  # rabbitmq_global_*, labelled {protocol, queue_type}


@dataclass(frozen=True, slots=True)
class Counter:
    """One counter attribute of an entity (an ``int``; a ``{reason: int}`` dict if ``keyed``)."""

    attr: str
    #: added into Totals when the object goes; node-wide figures may read only folded counters
    folds: bool = True
    keyed: bool = False
    #: read by some Prometheus family / some management :class:`Stat` (False only where RabbitMQ
    #: has no such figure; tests/management/test_counters.py checks both ways)
    prometheus: bool = True
    management: bool = True


@dataclass(frozen=True, slots=True)
class Family:
    """A Prometheus counter family computed from one entity's counters."""

    name: str
    help: str
    #: the value, from the entity itself (per object) or its ``Sums`` (node-wide)
    value: Callable[[Any], Any]
    where: int = OBJECT | NODE
    #: the value is a ``{key: int}`` dict, one sample per key with this label
    keyed_by: str = ""
    #: node-wide only: ``value`` reads this other entity's sums (a family named for one entity counted on another)
    reads: Entity | None = None


@dataclass(frozen=True, slots=True)
class Stat:
    """A management API statistic (``message_stats`` key, or a top-level ``*_oct`` for connections)."""

    key: str
    value: Callable[[Any], int]


class Sums:
    """Node-wide sums of one entity's folded counters (subclassed per entity with its slots)."""

    __slots__ = ()
    _entity: Entity

    def __init__(self) -> None:
        for c in self._entity.folded:
            setattr(self, c.attr, {} if c.keyed else 0)


class Entity:
    """The counters of one kind of object, and the families and stats read from them."""

    def __init__(self, name: str, counters: Iterable[Counter], families: Iterable[Family] = (),
                 stats: Iterable[Stat] = ()) -> None:
        self.name = name
        self.counters = tuple(counters)
        self.families = tuple(families)
        if any(f.reads is not None and f.where & OBJECT for f in self.families):
            raise ValueError("a family reading another entity's counters can only be node-wide")
        self.stats = tuple(stats)
        self.folded = tuple(c for c in self.counters if c.folds)
        self._plain = tuple(c.attr for c in self.folded if not c.keyed)
        self._keyed = tuple(c.attr for c in self.folded if c.keyed)
        # attrgetter of one name returns the bare value, of several a tuple: repeating the first
        # name makes it a tuple always (zip below drops the repeat)
        self._get_plain = attrgetter(*self._plain, *self._plain[:1]) if self._plain else (lambda _o: ())
        self._get_keyed = attrgetter(*self._keyed, *self._keyed[:1]) if self._keyed else (lambda _o: ())
        #: node-wide sums of the folded counters; reading any other counter from it is an AttributeError
        self.Sums: type[Sums] = type(f"{name.title()}Sums", (Sums,),
                                     {"__slots__": tuple(c.attr for c in self.folded), "_entity": self})

    def sums(self, objs: Iterable[Any] = ()) -> Sums:
        """A fresh ``Sums`` with ``objs`` added."""
        acc = self.Sums()
        for o in objs:
            self.add(acc, o)
        return acc

    def add(self, acc: Sums, obj: Any) -> None:
        """Add ``obj``'s folded counters (an entity or another ``Sums``) into ``acc``."""
        for attr, v in zip(self._plain, self._get_plain(obj), strict=False):
            setattr(acc, attr, getattr(acc, attr) + v)
        for attr, d in zip(self._keyed, self._get_keyed(obj), strict=False):
            into = getattr(acc, attr)
            for k, v in d.items():
                into[k] = into.get(k, 0) + v

    def copy(self, s: Sums) -> Sums:
        return self.sums((s,))

    def families_in(self, where: int) -> tuple[Family, ...]:
        return tuple(f for f in self.families if f.where & where)

    def node_values(self, where: int, sums: dict[Entity, Sums]) -> Iterator[tuple[Family, Any]]:
        """This entity's families shown in ``where``, each with its node-wide value from ``sums``."""
        for f in self.families:
            if f.where & where:
                yield f, f.value(sums[f.reads or self])

    def stats_of(self, obj: Any) -> dict[str, int]:
        """The management statistics of ``obj`` (an entity or a ``Sums``), in declaration order."""
        return {s.key: s.value(obj) for s in self.stats}


# ----------------------------------------------------------------------------- queue
QUEUE = Entity(
    "queue",
    (
        Counter("published"),
        Counter("delivered", folds=False),  # basic.consume deliveries
        Counter("delivered_get", folds=False),  # basic.get deliveries
        # management only: rabbitmq_prometheus has no per-queue auto-ack or get-empty families
        Counter("delivered_noack", folds=False, prometheus=False),
        Counter("get_noack", folds=False, prometheus=False),
        Counter("get_empty", folds=False, prometheus=False),
        Counter("acked", folds=False),  # including auto-ack
        Counter("redelivered"),
        # Prometheus only: RabbitMQ's management API has no expiry, overflow or dead-lettering statistics
        Counter("expired", management=False),
        Counter("dropped", management=False),  # reject-publish overflow
        Counter("dead_lettered", keyed=True, management=False),
        # expired / overflowed / rejected with no dead-letter exchange
        Counter("dropped_no_dlx", keyed=True, management=False),
    ),
    (
        Family("rabbitmq_queue_messages_published_total", "Total number of messages published to queues", lambda q: q.published),
        Family("warren_queue_messages_delivered_total", "Messages delivered to consumers (basic.consume)", lambda q: q.delivered, OBJECT),
        Family("warren_queue_messages_delivered_get_total", "Messages fetched with basic.get", lambda q: q.delivered_get, OBJECT),
        Family("warren_queue_messages_acked_total", "Messages acknowledged (including auto-ack)", lambda q: q.acked, OBJECT),
        Family("warren_queue_messages_redelivered_total", "Messages redelivered", lambda q: q.redelivered, OBJECT),
        Family("warren_queue_messages_expired_total", "Messages expired by TTL", lambda q: q.expired),
        Family("warren_queue_messages_dropped_total", "Messages refused by reject-publish overflow", lambda q: q.dropped),
        # labelled {reason}; node-wide it is rabbitmq_global_messages_dead_lettered_<reason>_total
        Family("warren_queue_messages_dead_lettered_total", "Messages dead-lettered, by reason", lambda q: q.dead_lettered,
               OBJECT, keyed_by="reason"),
    ),
    (
        Stat("ack", lambda q: q.acked - q.delivered_noack - q.get_noack),
        Stat("deliver", lambda q: q.delivered - q.delivered_noack),
        Stat("deliver_get", lambda q: q.delivered + q.delivered_get),
        Stat("deliver_no_ack", lambda q: q.delivered_noack),
        Stat("get", lambda q: q.delivered_get - q.get_noack),
        Stat("get_empty", lambda q: q.get_empty),
        Stat("get_no_ack", lambda q: q.get_noack),
        Stat("publish", lambda q: q.published),
        Stat("redeliver", lambda q: q.redelivered),
    ),
)

#: dead-letter reasons RabbitMQ counts (delivery_limit is quorum-only there; warren has it on classic)
DL_REASONS = ("expired", "maxlen", "rejected", "delivery_limit")
#: rabbitmq_global_messages_dead_lettered_<reason>_total {queue_type, dead_letter_strategy}: name, HELP, and
#: the keyed queue counter read for each strategy
DEAD_LETTERED_GLOBAL = (
    "rabbitmq_global_messages_dead_lettered_{}_total",
    "Total number of messages dead-lettered due to {}",
    (("at_most_once", lambda q: q.dead_lettered), ("disabled", lambda q: q.dropped_no_dlx)),
)

# ----------------------------------------------------------------------------- channel
CHANNEL = Entity(
    "channel",
    (
        Counter("published"),
        # publishes in confirm mode; the management API shows it only as messages_unconfirmed (a gauge)
        Counter("confirm_seq", management=False),
        Counter("confirm_acked"),
        Counter("delivered"),  # basic.consume deliveries
        Counter("delivered_noack"),
        Counter("got"),  # basic.get deliveries
        Counter("got_noack"),
        Counter("get_empty"),
        Counter("acked"),
        Counter("unroutable_returned"),
        Counter("unroutable_dropped"),
    ),
    (
        Family("rabbitmq_global_messages_received_total", "Total number of messages received from publishers",
               lambda c: c.published, GLOBAL_P),
        Family("rabbitmq_global_messages_received_confirm_total",
               "Total number of messages received from publishers expecting confirmations", lambda c: c.confirm_seq, GLOBAL_P),
        Family("rabbitmq_global_messages_routed_total", "Total number of messages routed to queues or streams",
               lambda c: max(0, c.published - c.unroutable_returned - c.unroutable_dropped), GLOBAL_P),
        Family("rabbitmq_global_messages_unroutable_dropped_total",
               "Total number of messages published as non-mandatory into an exchange and dropped as unroutable",
               lambda c: c.unroutable_dropped, GLOBAL_P),
        Family("rabbitmq_global_messages_unroutable_returned_total",
               "Total number of messages published as mandatory into an exchange and returned to the publisher as unroutable",
               lambda c: c.unroutable_returned, GLOBAL_P),
        Family("rabbitmq_global_messages_confirmed_total", "Total number of messages confirmed to publishers",
               lambda c: c.confirm_acked, GLOBAL_P),
        Family("rabbitmq_global_messages_delivered_total", "Total number of messages delivered to consumers",
               lambda c: c.delivered + c.got, GLOBAL_PQ),
        Family("rabbitmq_global_messages_delivered_consume_manual_ack_total",
               "Total number of messages delivered to consumers using basic.consume with manual acknowledgment",
               lambda c: c.delivered - c.delivered_noack, GLOBAL_PQ),
        Family("rabbitmq_global_messages_delivered_consume_auto_ack_total",
               "Total number of messages delivered to consumers using basic.consume with automatic acknowledgment",
               lambda c: c.delivered_noack, GLOBAL_PQ),
        Family("rabbitmq_global_messages_delivered_get_manual_ack_total",
               "Total number of messages delivered to consumers using basic.get with manual acknowledgment",
               lambda c: c.got - c.got_noack, GLOBAL_PQ),
        Family("rabbitmq_global_messages_delivered_get_auto_ack_total",
               "Total number of messages delivered to consumers using basic.get with automatic acknowledgment",
               lambda c: c.got_noack, GLOBAL_PQ),
        Family("rabbitmq_global_messages_get_empty_total", "Total number of times basic.get operations fetched no message",
               lambda c: c.get_empty, GLOBAL_PQ),
        # RabbitMQ counts redeliveries on the channel, warren on the queue: these read the queues' sum
        Family("rabbitmq_global_messages_redelivered_total", "Total number of messages redelivered to consumers",
               lambda q: q.redelivered, GLOBAL_PQ, reads=QUEUE),
        Family("rabbitmq_global_messages_acknowledged_total", "Total number of messages acknowledged by consumers",
               lambda c: c.acked, GLOBAL_PQ),
        Family("rabbitmq_channel_messages_published_total", "Total number of messages published into an exchange on a channel",
               lambda c: c.published),
        Family("rabbitmq_channel_messages_confirmed_total",
               "Total number of messages published into an exchange and confirmed on the channel", lambda c: c.confirm_acked),
        Family("rabbitmq_channel_messages_unroutable_returned_total",
               "Total number of messages published as mandatory into an exchange and returned to the publisher as unroutable",
               lambda c: c.unroutable_returned, NODE),
        Family("rabbitmq_channel_messages_unroutable_dropped_total",
               "Total number of messages published as non-mandatory into an exchange and dropped as unroutable",
               lambda c: c.unroutable_dropped, NODE),
        Family("rabbitmq_channel_messages_delivered_ack_total",
               "Total number of messages delivered to consumers in manual acknowledgement mode",
               lambda c: c.delivered - c.delivered_noack),
        Family("rabbitmq_channel_messages_delivered_total",
               "Total number of messages delivered to consumers in automatic acknowledgement mode", lambda c: c.delivered_noack),
        Family("rabbitmq_channel_get_ack_total",
               "Total number of messages fetched with basic.get in manual acknowledgement mode", lambda c: c.got - c.got_noack, NODE),
        Family("rabbitmq_channel_get_total",
               "Total number of messages fetched with basic.get in automatic acknowledgement mode", lambda c: c.got_noack, NODE),
        Family("rabbitmq_channel_get_empty_total", "Total number of times basic.get operations fetched no message",
               lambda c: c.get_empty, NODE),
        Family("rabbitmq_channel_messages_redelivered_total", "Total number of messages redelivered to consumers",
               lambda q: q.redelivered, NODE, reads=QUEUE),
        Family("rabbitmq_channel_messages_acked_total", "Total number of messages acknowledged by consumers", lambda c: c.acked),
    ),
    (
        Stat("ack", lambda c: c.acked),
        Stat("confirm", lambda c: c.confirm_acked),
        Stat("deliver", lambda c: c.delivered - c.delivered_noack),
        Stat("deliver_get", lambda c: c.delivered + c.got),
        Stat("deliver_no_ack", lambda c: c.delivered_noack),
        Stat("drop_unroutable", lambda c: c.unroutable_dropped),
        Stat("get", lambda c: c.got - c.got_noack),
        Stat("get_empty", lambda c: c.get_empty),
        Stat("get_no_ack", lambda c: c.got_noack),
        Stat("publish", lambda c: c.published),
        # counted per queue (QUEUE's redelivered): a vhost and the overview show the queues' sum
        Stat("redeliver", lambda c: 0),
        Stat("return_unroutable", lambda c: c.unroutable_returned),
    ),
)

# ----------------------------------------------------------------------------- connection
CONNECTION = Entity(
    "connection",
    (Counter("recv_bytes"), Counter("sent_bytes")),
    (
        Family("rabbitmq_connection_incoming_bytes_total", "Total number of bytes received on a connection", lambda c: c.recv_bytes),
        Family("rabbitmq_connection_outgoing_bytes_total", "Total number of bytes sent on a connection", lambda c: c.sent_bytes),
    ),
    (Stat("recv_oct", lambda c: c.recv_bytes), Stat("send_oct", lambda c: c.sent_bytes)),
)

# ----------------------------------------------------------------------------- exchange
EXCHANGE = Entity(
    "exchange",
    # nothing node-wide reads them, so they go with the exchange
    (Counter("published_in", folds=False), Counter("published_out", folds=False)),
    (
        Family("warren_exchange_messages_published_in_total", "Messages published into an exchange",
               lambda ex: ex.published_in, OBJECT),
        Family("warren_exchange_messages_published_out_total", "Messages an exchange routed to at least one queue",
               lambda ex: ex.published_out, OBJECT),
    ),
    (Stat("publish_in", lambda ex: ex.published_in), Stat("publish_out", lambda ex: ex.published_out)),
)

ENTITIES = (QUEUE, CHANNEL, CONNECTION, EXCHANGE)
