"""Prometheus metrics, collected at scrape time from the counters the broker keeps.

Nothing here runs per message: the hot path only increments plain ``int``
attributes (``Queue.published``, ``Channel.delivered``, ``Connection.recv_bytes``
...). A custom prometheus_client ``Collector`` walks vhosts, queues, channels and
connections when ``/metrics`` is scraped and yields metric families named as
rabbitmq_prometheus names them (``rabbitmq_queue_messages_ready``,
``rabbitmq_global_messages_received_total`` ...), plus warren's own under
``warren_`` (lane depths, pending delayed messages, fsync and confirm latency).

Counts of objects that go away (deleted queues, closed channels and
connections) are folded into :class:`Totals` so broker-level totals never go
backwards.

``/metrics`` aggregates (no per-object labels), ``/metrics/per-object`` labels
each queue ``{vhost, queue}``, exchange ``{vhost, exchange}``, channel and
connection ``{channel}``. RabbitMQ puts the Erlang pid there; warren an opaque
pid-shaped id (``<0.N.0>`` for connection N, ``<0.N.C>`` for its channel C),
never the client's address.
"""

from __future__ import annotations

import itertools
import os
import resource
import time
import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
    UnknownMetricFamily,
)
from prometheus_client.registry import Collector
from warren.server.model.totals import LATENCY_BUCKETS, ConnectionSet, LatencyHistogram, Totals  # noqa: F401 - re-exported

if TYPE_CHECKING:
    from warren.server.amqp.channel import Channel
    from warren.server.node.broker import Broker

_conn_ids: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()
_next_id = itertools.count(1)


def conn_label(conn: Any) -> str:
    """A connection's per-object label: pid-shaped, stable while it lives, no peer address."""
    n = _conn_ids.get(conn)
    if n is None:
        n = _conn_ids[conn] = next(_next_id)
    return f"<0.{n}.0>"


def channel_label(ch: Any) -> str:
    return conn_label(ch.conn)[:-2] + f"{ch.number}>"


PROTO = "amqp091"
CLASSIC = "rabbit_classic_queue"
#: dead-letter reasons RabbitMQ counts (delivery_limit is quorum-only there; warren has it on classic)
DL_REASONS = ("expired", "maxlen", "rejected", "delivery_limit")

# ----------------------------------------------------------------------------- snapshots
def channels_of(broker: Broker) -> Iterator[Channel]:
    for conn in list(broker.connections):
        yield from list(conn.channels.values())


def global_counts(broker: Broker) -> dict[str, Any]:
    """Broker-wide counters: live objects plus what deleted ones left in Totals."""
    t = broker.totals
    ch = dict(t.channel)
    consumers = 0
    publishers = 0
    for c in channels_of(broker):
        for f in Totals.CHANNEL_FIELDS:
            ch[f] += getattr(c, f, 0)
        consumers += len(c.consumers)
        if c.published:
            publishers += 1
    q = dict(t.queue)
    dl = dict(t.dead_lettered)
    dl_off = dict(t.dropped_no_dlx)
    ready = unacked = ready_bytes = nqueues = qconsumers = 0
    for vh in broker.vhosts.values():
        for queue in vh.queues.values():
            nqueues += 1
            for f in Totals.QUEUE_FIELDS:
                q[f] += getattr(queue, f, 0)
            for k, v in queue.dead_lettered.items():
                dl[k] = dl.get(k, 0) + v
            for k, v in getattr(queue, "dropped_no_dlx", {}).items():
                dl_off[k] = dl_off.get(k, 0) + v
            ready += len(queue.store)
            unacked += queue.unacked
            ready_bytes += queue.store.ready_bytes
            qconsumers += len(queue.consumers)
    return {
        "channel": ch,
        "queue": q,
        "dead_lettered": dl,
        "dead_lettered_disabled": dl_off,
        "consumers": consumers,
        "publishers": publishers,
        "ready": ready,
        "unacked": unacked,
        "ready_bytes": ready_bytes,
        "queues": nqueues,
        "queue_consumers": qconsumers,
    }


def process_stats() -> dict[str, float]:
    rss = 0
    try:
        with open("/proc/self/statm") as fh:
            rss = int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    try:
        fds = len(os.listdir("/proc/self/fd"))
    except OSError:
        fds = 0
    return {
        "resident_memory_bytes": rss,
        "open_fds": fds,
        "max_fds": resource.getrlimit(resource.RLIMIT_NOFILE)[0],
    }


def physical_memory() -> int:
    """Total RAM in bytes (0 if unknown): the memory limit when no watermark is configured."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (OSError, ValueError):
        return 0


# ----------------------------------------------------------------------------- collector
def _g(name: str, doc: str, value: float | None = None, labels: list[str] | None = None) -> GaugeMetricFamily:
    if labels is not None:
        return GaugeMetricFamily(name, doc, labels=labels)
    return GaugeMetricFamily(name, doc, value=value)


def _c(name: str, doc: str, value: float | None = None, labels: list[str] | None = None) -> CounterMetricFamily:
    # prometheus_client appends _total itself; give it the bare name
    base = name[: -len("_total")] if name.endswith("_total") else name
    if labels is not None:
        return CounterMetricFamily(base, doc, labels=labels)
    return CounterMetricFamily(base, doc, value=value)


#: per-object metric families: (name, g(auge)/c(ounter), help, value of the object)
QUEUE_METRICS: list[tuple[str, str, str, Any]] = [
    ("rabbitmq_queue_messages_ready", "g", "Messages ready to be delivered to consumers", lambda q: len(q.store)),
    ("rabbitmq_queue_messages_unacked", "g", "Messages delivered to consumers but not yet acknowledged", lambda q: q.unacked),
    ("rabbitmq_queue_messages", "g", "Sum of ready and unacknowledged messages - total queue depth", lambda q: len(q.store) + q.unacked),
    ("rabbitmq_queue_messages_ready_bytes", "g", "Size in bytes of ready messages", lambda q: q.store.ready_bytes),
    ("rabbitmq_queue_consumers", "g", "Consumers on a queue", lambda q: len(q.consumers)),
    ("rabbitmq_queue_messages_published_total", "c", "Total number of messages published to queues", lambda q: q.published),
    ("warren_queue_messages_delivered_total", "c", "Messages delivered to consumers (basic.consume)", lambda q: q.delivered),
    ("warren_queue_messages_delivered_get_total", "c", "Messages fetched with basic.get", lambda q: q.delivered_get),
    ("warren_queue_messages_acked_total", "c", "Messages acknowledged (including auto-ack)", lambda q: q.acked),
    ("warren_queue_messages_redelivered_total", "c", "Messages redelivered", lambda q: q.redelivered),
    ("warren_queue_messages_expired_total", "c", "Messages expired by TTL", lambda q: q.expired),
    ("warren_queue_messages_dropped_total", "c", "Messages refused by reject-publish overflow", lambda q: q.dropped),
]
CHANNEL_METRICS: list[tuple[str, str, str, Any]] = [
    ("rabbitmq_channel_consumers", "g", "Consumers on a channel", lambda c: len(c.consumers)),
    ("rabbitmq_channel_messages_unacked", "g", "Delivered but not yet acknowledged messages", lambda c: len(c.unacked)),
    ("rabbitmq_channel_messages_unconfirmed", "g", "Published but not yet confirmed messages", lambda c: c.confirm_seq - c.confirm_acked),
    ("rabbitmq_channel_prefetch", "g", "Total limit of unacknowledged messages for all consumers on a channel", lambda c: c.prefetch),
    ("rabbitmq_channel_messages_published_total", "c", "Total number of messages published into an exchange on a channel", lambda c: c.published),
    ("rabbitmq_channel_messages_confirmed_total", "c", "Total number of messages published into an exchange and confirmed on the channel", lambda c: c.confirm_acked),
    ("rabbitmq_channel_messages_delivered_ack_total", "c", "Total number of messages delivered to consumers in manual acknowledgement mode", lambda c: c.delivered - getattr(c, "delivered_noack", 0)),
    ("rabbitmq_channel_messages_delivered_total", "c", "Total number of messages delivered to consumers in automatic acknowledgement mode", lambda c: getattr(c, "delivered_noack", 0)),
    ("rabbitmq_channel_messages_acked_total", "c", "Total number of messages acknowledged by consumers", lambda c: c.acked),
]
CONNECTION_METRICS: list[tuple[str, str, str, Any]] = [
    ("rabbitmq_connection_incoming_bytes_total", "c", "Total number of bytes received on a connection", lambda c: c.recv_bytes),
    ("rabbitmq_connection_outgoing_bytes_total", "c", "Total number of bytes sent on a connection", lambda c: c.sent_bytes),
    ("rabbitmq_connection_channels", "g", "Channels on a connection", lambda c: len(c.channels)),
]

EXCHANGE_METRICS: list[tuple[str, str, str, Any]] = [
    ("warren_exchange_messages_published_in_total", "c", "Messages published into an exchange", lambda ex: ex.published_in),
    ("warren_exchange_messages_published_out_total", "c", "Messages an exchange routed to at least one queue",
     lambda ex: ex.published_out),
]


class WarrenCollector(Collector):
    """Yields every metric family from the broker's counters at scrape time."""

    def __init__(self, broker: Broker, per_object: bool = False) -> None:
        self.broker = broker
        self.per_object = per_object

    def describe(self) -> list[Metric]:  # no scrape at registration time
        return []

    def collect(self) -> Iterator[Metric]:
        yield from self.head()
        if self.per_object:
            yield from self.per_object_families()
        yield from self.tail()

    def head(self) -> Iterator[Metric]:
        """Families before the per-object ones (the aggregated ones too, unless per-object)."""
        g = global_counts(self.broker)
        yield from self._identity()
        yield from self._process()
        yield from self._global(g)
        yield from self._churn()
        if not self.per_object:
            yield from self._aggregated(g)

    def per_object_families(self) -> Iterator[Metric]:
        yield from self._queues_per_object()
        yield from self._channels_per_object()
        yield from self._connections_per_object()
        yield from self._exchanges_per_object()

    def tail(self) -> Iterator[Metric]:
        yield from self._latency()

    # -- identity / process ---------------------------------------------------
    def _identity(self) -> Iterator[Metric]:
        from warren.server.model.definitions import VERSION

        m = GaugeMetricFamily(
            "rabbitmq_build_info",
            "RabbitMQ & Erlang/OTP version info",
            labels=["rabbitmq_version", "prometheus_plugin_version", "prometheus_client_version", "erlang_version", "product"],
        )
        m.add_metric([VERSION, VERSION, "python", "none", "warren"], 1)
        yield m
        m = GaugeMetricFamily(
            "rabbitmq_identity_info",
            "RabbitMQ node & cluster identity info",
            labels=["rabbitmq_node", "rabbitmq_cluster", "rabbitmq_cluster_permanent_id"],
        )
        node = getattr(self.broker, "node_name", "warren@localhost")
        m.add_metric([node, self.broker.cluster_name, f"warren-cluster-id-{self.broker.cluster_name}"], 1)
        yield m

    def _process(self) -> Iterator[Metric]:
        p = process_stats()
        yield _g("rabbitmq_process_resident_memory_bytes", "Memory used in bytes", p["resident_memory_bytes"])
        yield _g("rabbitmq_process_open_fds", "Open file descriptors", p["open_fds"])
        yield _g("rabbitmq_process_max_fds", "Open file descriptors limit", p["max_fds"])
        conns = sum(1 for _ in list(self.broker.connections))
        yield _g("rabbitmq_process_open_tcp_sockets", "Open TCP sockets", conns)
        # a socket is a file descriptor: the descriptor limit bounds the sockets
        yield _g("rabbitmq_process_max_tcp_sockets", "Open TCP sockets limit", p["max_fds"])
        yield from self._resources(p)

    def _resources(self, p: dict[str, float]) -> Iterator[Metric]:
        """Memory and disk limits and the alarm gauges RabbitMQ's dashboards read."""
        b = self.broker
        yield _g("rabbitmq_resident_memory_limit_bytes", "Memory high watermark in bytes", b.memory.limit)
        yield _g("rabbitmq_disk_space_available_limit_bytes", "Free disk space low watermark in bytes", b.config.disk_free_limit)
        yield _g("rabbitmq_disk_space_available_bytes", "Disk space available in bytes", max(0, b.disk_free))
        # RabbitMQ exposes the alarms untyped
        for name, doc, on in (
            ("rabbitmq_alarms_file_descriptor_limit", "is 1 if file descriptor limit alarm is in effect", p["open_fds"] >= p["max_fds"]),
            ("rabbitmq_alarms_free_disk_space_watermark", "is 1 if free disk space watermark alarm is in effect", "disk" in b.alarms),
            ("rabbitmq_alarms_memory_used_watermark", "is 1 if VM memory watermark alarm is in effect", "memory" in b.alarms),
        ):
            yield UnknownMetricFamily(name, doc, value=int(on))

    # -- global counters --------------------------------------------------------
    def _global(self, g: dict[str, Any]) -> Iterator[Metric]:
        ch, q = g["channel"], g["queue"]
        proto = [PROTO]
        pq = [PROTO, CLASSIC]

        def pc(name: str, doc: str, v: int) -> CounterMetricFamily:
            m = _c(name, doc, labels=["protocol"])
            m.add_metric(proto, v)
            return m

        def pqc(name: str, doc: str, v: int) -> CounterMetricFamily:
            m = _c(name, doc, labels=["protocol", "queue_type"])
            m.add_metric(pq, v)
            return m

        m = _g("rabbitmq_global_consumers", "Current number of consumers", labels=["protocol"])
        m.add_metric(proto, g["consumers"])
        yield m
        m = _g("rabbitmq_global_publishers", "Current number of publishers", labels=["protocol"])
        m.add_metric(proto, g["publishers"])
        yield m
        received = ch["published"]
        returned = ch["unroutable_returned"]
        dropped = ch["unroutable_dropped"]
        yield pc("rabbitmq_global_messages_received_total", "Total number of messages received from publishers", received)
        yield pc(
            "rabbitmq_global_messages_received_confirm_total",
            "Total number of messages received from publishers expecting confirmations",
            ch["confirm_seq"],
        )
        yield pc("rabbitmq_global_messages_routed_total", "Total number of messages routed to queues or streams", max(0, received - returned - dropped))
        yield pc("rabbitmq_global_messages_unroutable_dropped_total", "Total number of messages published as non-mandatory into an exchange and dropped as unroutable", dropped)
        yield pc("rabbitmq_global_messages_unroutable_returned_total", "Total number of messages published as mandatory into an exchange and returned to the publisher as unroutable", returned)
        yield pc("rabbitmq_global_messages_confirmed_total", "Total number of messages confirmed to publishers", ch["confirm_acked"])
        consume_auto = ch["delivered_noack"]
        consume_manual = ch["delivered"] - consume_auto
        get_auto = ch["got_noack"]
        get_manual = ch["got"] - get_auto
        yield pqc("rabbitmq_global_messages_delivered_total", "Total number of messages delivered to consumers", ch["delivered"] + ch["got"])
        yield pqc("rabbitmq_global_messages_delivered_consume_manual_ack_total", "Total number of messages delivered to consumers using basic.consume with manual acknowledgment", consume_manual)
        yield pqc("rabbitmq_global_messages_delivered_consume_auto_ack_total", "Total number of messages delivered to consumers using basic.consume with automatic acknowledgment", consume_auto)
        yield pqc("rabbitmq_global_messages_delivered_get_manual_ack_total", "Total number of messages delivered to consumers using basic.get with manual acknowledgment", get_manual)
        yield pqc("rabbitmq_global_messages_delivered_get_auto_ack_total", "Total number of messages delivered to consumers using basic.get with automatic acknowledgment", get_auto)
        yield pqc("rabbitmq_global_messages_get_empty_total", "Total number of times basic.get operations fetched no message", ch["get_empty"])
        yield pqc("rabbitmq_global_messages_redelivered_total", "Total number of messages redelivered to consumers", q["redelivered"])
        yield pqc("rabbitmq_global_messages_acknowledged_total", "Total number of messages acknowledged by consumers", ch["acked"])
        dl, off = g["dead_lettered"], g["dead_lettered_disabled"]
        for reason in DL_REASONS:
            m = _c(
                f"rabbitmq_global_messages_dead_lettered_{reason}_total",
                f"Total number of messages dead-lettered due to {reason}",
                labels=["queue_type", "dead_letter_strategy"],
            )
            m.add_metric([CLASSIC, "at_most_once"], dl.get(reason, 0))
            m.add_metric([CLASSIC, "disabled"], off.get(reason, 0))
            yield m
        m = _c(
            "rabbitmq_global_messages_dead_lettered_confirmed_total",
            "Total number of messages dead-lettered and confirmed by target queues",
            labels=["queue_type", "dead_letter_strategy"],
        )
        m.add_metric([CLASSIC, "at_least_once"], 0)
        yield m

    def _churn(self) -> Iterator[Metric]:
        t = self.broker.totals
        chans = sum(len(c.channels) for c in list(self.broker.connections))
        opened = t.connections_closed + sum(1 for c in list(self.broker.connections) if c.vhost is not None)
        yield _c("rabbitmq_connections_opened_total", "Total number of connections opened", opened)
        yield _c("rabbitmq_connections_closed_total", "Total number of connections closed or terminated", t.connections_closed)
        yield _c("rabbitmq_channels_opened_total", "Total number of channels opened", t.channels_closed + chans)
        yield _c("rabbitmq_channels_closed_total", "Total number of channels closed", t.channels_closed)
        yield _c("rabbitmq_queues_declared_total", "Total number of queues declared", t.queues_created)
        yield _c("rabbitmq_queues_created_total", "Total number of queues created", t.queues_created)
        yield _c("rabbitmq_queues_deleted_total", "Total number of queues deleted", t.queues_deleted)

    # -- aggregated object metrics --------------------------------------------
    def _aggregated(self, g: dict[str, Any]) -> Iterator[Metric]:
        b = self.broker
        q, ch = g["queue"], g["channel"]
        conns = list(b.connections)
        nchannels = sum(len(c.channels) for c in conns)
        yield _g("rabbitmq_queue_messages_ready", "Messages ready to be delivered to consumers", g["ready"])
        yield _g("rabbitmq_queue_messages_unacked", "Messages delivered to consumers but not yet acknowledged", g["unacked"])
        yield _g("rabbitmq_queue_messages", "Sum of ready and unacknowledged messages - total queue depth", g["ready"] + g["unacked"])
        yield _g("rabbitmq_queue_messages_ready_bytes", "Size in bytes of ready messages", g["ready_bytes"])
        yield _g("rabbitmq_queue_consumers", "Consumers on a queue", g["queue_consumers"])
        yield _c("rabbitmq_queue_messages_published_total", "Total number of messages published to queues", q["published"])
        yield _c("rabbitmq_channel_messages_published_total", "Total number of messages published into an exchange on a channel", ch["published"])
        yield _c("rabbitmq_channel_messages_confirmed_total", "Total number of messages published into an exchange and confirmed on the channel", ch["confirm_acked"])
        yield _c("rabbitmq_channel_messages_unroutable_returned_total", "Total number of messages published as mandatory into an exchange and returned to the publisher as unroutable", ch["unroutable_returned"])
        yield _c("rabbitmq_channel_messages_unroutable_dropped_total", "Total number of messages published as non-mandatory into an exchange and dropped as unroutable", ch["unroutable_dropped"])
        yield _c("rabbitmq_channel_messages_delivered_ack_total", "Total number of messages delivered to consumers in manual acknowledgement mode", ch["delivered"] - ch["delivered_noack"])
        yield _c("rabbitmq_channel_messages_delivered_total", "Total number of messages delivered to consumers in automatic acknowledgement mode", ch["delivered_noack"])
        yield _c("rabbitmq_channel_get_ack_total", "Total number of messages fetched with basic.get in manual acknowledgement mode", ch["got"] - ch["got_noack"])
        yield _c("rabbitmq_channel_get_total", "Total number of messages fetched with basic.get in automatic acknowledgement mode", ch["got_noack"])
        yield _c("rabbitmq_channel_get_empty_total", "Total number of times basic.get operations fetched no message", ch["get_empty"])
        yield _c("rabbitmq_channel_messages_redelivered_total", "Total number of messages redelivered to consumers", q["redelivered"])
        yield _c("rabbitmq_channel_messages_acked_total", "Total number of messages acknowledged by consumers", ch["acked"])
        unconfirmed = 0
        prefetch = 0
        ch_unacked = 0
        for c in channels_of(b):
            unconfirmed += c.confirm_seq - c.confirm_acked
            prefetch += c.prefetch
            ch_unacked += len(c.unacked)
        yield _g("rabbitmq_channel_consumers", "Consumers on a channel", g["consumers"])
        yield _g("rabbitmq_channel_messages_unacked", "Delivered but not yet acknowledged messages", ch_unacked)
        yield _g("rabbitmq_channel_messages_unconfirmed", "Published but not yet confirmed messages", unconfirmed)
        yield _g("rabbitmq_channel_prefetch", "Total limit of unacknowledged messages for all consumers on a channel", prefetch)
        t = b.totals
        yield _c("rabbitmq_connection_incoming_bytes_total", "Total number of bytes received on a connection", t.recv_bytes + sum(c.recv_bytes for c in conns))
        yield _c("rabbitmq_connection_outgoing_bytes_total", "Total number of bytes sent on a connection", t.sent_bytes + sum(c.sent_bytes for c in conns))
        yield _g("rabbitmq_connection_channels", "Channels on a connection", nchannels)
        yield _g("rabbitmq_connections", "Connections currently open", len(conns))
        yield _g("rabbitmq_channels", "Channels currently open", nchannels)
        yield _g("rabbitmq_queues", "Queues available", g["queues"])
        yield _g("rabbitmq_consumers", "Consumers currently connected", g["consumers"])
        # warren's own, aggregated
        lanes: dict[int, int] = {}
        pending = 0
        for vh in b.vhosts.values():
            for queue in vh.queues.values():
                if queue.laned:
                    for i, d in enumerate(queue.store.lane_depths()):
                        lanes[i] = lanes.get(i, 0) + d
            for ex in vh.exchanges.values():
                pending += getattr(ex, "pending_count", 0)
        m = _g("warren_queue_lane_messages_ready", "Ready messages per priority lane (summed over laned queues)", labels=["lane"])
        for i in sorted(lanes):
            m.add_metric([str(i)], lanes[i])
        yield m
        yield _g("warren_delayed_messages_pending", "Messages held by x-delayed-message exchanges", pending)
        yield _c("warren_queue_messages_expired_total", "Messages expired by TTL", q["expired"])
        yield _c("warren_queue_messages_dropped_total", "Messages refused by reject-publish overflow", q["dropped"])

    # -- per-object -------------------------------------------------------------
    def _queues_per_object(self) -> Iterator[Metric]:
        L = ["vhost", "queue"]
        spec = QUEUE_METRICS
        queues = [(vh.name, q) for vh in self.broker.vhosts.values() for q in list(vh.queues.values())]
        for name, kind, doc, fn in spec:
            m = _g(name, doc, labels=L) if kind == "g" else _c(name, doc, labels=L)
            for vhn, q in queues:
                m.add_metric([vhn, q.name], fn(q))
            yield m
        m = _c("warren_queue_messages_dead_lettered_total", "Messages dead-lettered, by reason", labels=L + ["reason"])
        for vhn, q in queues:
            for reason, n in sorted(q.dead_lettered.items()):
                m.add_metric([vhn, q.name, reason], n)
        yield m
        m = _g("warren_queue_lane_messages_ready", "Ready messages per priority lane", labels=L + ["lane"])
        for vhn, q in queues:
            if q.laned:
                for i, d in enumerate(q.store.lane_depths()):
                    m.add_metric([vhn, q.name, str(i)], d)
        yield m

    def _channels_per_object(self) -> Iterator[Metric]:
        L = ["channel"]
        chans = [(channel_label(c), c) for c in channels_of(self.broker)]
        spec = CHANNEL_METRICS
        for name, kind, doc, fn in spec:
            m = _g(name, doc, labels=L) if kind == "g" else _c(name, doc, labels=L)
            for label, c in chans:
                m.add_metric([label], fn(c))
            yield m
        yield _g("rabbitmq_channels", "Channels currently open", len(chans))

    def _connections_per_object(self) -> Iterator[Metric]:
        L = ["channel"]
        conns = list(self.broker.connections)
        for name, kind, doc, fn in CONNECTION_METRICS:
            m = _g(name, doc, labels=L) if kind == "g" else _c(name, doc, labels=L)
            for c in conns:
                m.add_metric([conn_label(c)], fn(c))
            yield m
        yield _g("rabbitmq_connections", "Connections currently open", len(conns))

    def _exchanges_per_object(self) -> Iterator[Metric]:
        L = ["vhost", "exchange"]
        exs = [(vh.name, ex) for vh in self.broker.vhosts.values() for ex in list(vh.exchanges.values())]
        (n_in, _, d_in, _), (n_out, _, d_out, _) = EXCHANGE_METRICS
        m_in = _c(n_in, d_in, labels=L)
        m_out = _c(n_out, d_out, labels=L)
        m_pending = _g("warren_delayed_messages_pending", "Messages held by an x-delayed-message exchange", labels=L)
        for vhn, ex in exs:
            m_in.add_metric([vhn, ex.name], ex.published_in)
            m_out.add_metric([vhn, ex.name], ex.published_out)
            if hasattr(ex, "pending_count"):
                m_pending.add_metric([vhn, ex.name], ex.pending_count)
        yield m_in
        yield m_out
        yield m_pending

    # -- latency ----------------------------------------------------------------
    def _latency(self) -> Iterator[Metric]:
        t = self.broker.totals
        for name, doc, h in (
            ("warren_fsync_seconds", "Latency of a group-commit fsync (sync request to completion)", t.fsync),
            ("warren_confirm_latency_seconds", "Latency from a publish batch to its publisher confirm", t.confirm),
        ):
            m = HistogramMetricFamily(name, doc, buckets=h.buckets(), sum_value=h.sum)
            yield m


def make_registry(broker: Broker, per_object: bool = False) -> CollectorRegistry:
    reg = CollectorRegistry(auto_describe=False)
    reg.register(WarrenCollector(broker, per_object))
    return reg


def render(broker: Broker, per_object: bool = False) -> bytes:
    """The text exposition for one scrape."""
    return generate_latest(make_registry(broker, per_object))


def now() -> float:
    return time.monotonic()
