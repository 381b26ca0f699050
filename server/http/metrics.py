"""Prometheus metrics, collected at scrape time from the counters the broker keeps.

Nothing here runs per message: the hot path only increments plain ``int``
attributes (``Queue.published``, ``Channel.delivered``, ``Connection.recv_bytes``
...), declared with the families and statistics read from them in
:mod:`warren.server.model.counters`. A custom prometheus_client ``Collector`` walks vhosts, queues, channels and
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
from warren.server.core.process import process_stats
from warren.server.model.counters import (
    CHANNEL,
    CONNECTION,
    DEAD_LETTERED_GLOBAL,
    DL_REASONS,
    EXCHANGE,
    GLOBAL_P,
    GLOBAL_PQ,
    NODE,
    OBJECT,
    QUEUE,
    Entity,
    Family,
)
from warren.server.model.exchanges import DelayedExchange

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


# ----------------------------------------------------------------------------- snapshots
def channels_of(broker: Broker) -> Iterator[Channel]:
    for conn in list(broker.connections):
        yield from list(conn.channels.values())


def global_counts(broker: Broker) -> dict[str, Any]:
    """Broker-wide figures. ``queue``, ``channel`` and ``connection`` are the
    :mod:`~warren.server.model.counters` ``Sums``: live objects plus what gone ones left in Totals."""
    t = broker.totals
    ch = CHANNEL.copy(t.channel)
    consumers = 0
    publishers = 0
    for c in channels_of(broker):
        CHANNEL.add(ch, c)
        consumers += len(c.consumers)
        if c.published:
            publishers += 1
    q = QUEUE.copy(t.queue)
    ready = unacked = ready_bytes = nqueues = qconsumers = 0
    for vh in broker.vhosts.values():
        for queue in vh.queues.values():
            nqueues += 1
            QUEUE.add(q, queue)
            ready += len(queue.store)
            unacked += queue.unacked
            ready_bytes += queue.store.ready_bytes
            qconsumers += len(queue.consumers)
    conn = CONNECTION.copy(t.connection)
    for c in list(broker.connections):
        CONNECTION.add(conn, c)
    return {
        "channel": ch,
        "queue": q,
        "connection": conn,
        "sums": {QUEUE: q, CHANNEL: ch, CONNECTION: conn},
        "consumers": consumers,
        "publishers": publishers,
        "ready": ready,
        "unacked": unacked,
        "ready_bytes": ready_bytes,
        "queues": nqueues,
        "queue_consumers": qconsumers,
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


def _family(f: Family, labels: list[str] | None = None, value: float | None = None) -> CounterMetricFamily:
    return _c(f.name, f.help, value, labels)


def _counters(entity: Entity) -> list[tuple[str, str, str, Any]]:
    """``entity``'s per-object counter families (not keyed ones) as (name, "c", help, value of the object)."""
    return [(f.name, "c", f.help, f.value) for f in entity.families_in(OBJECT) if not f.keyed_by]


#: per-object metric families: (name, g(auge)/c(ounter), help, value of the object); gauges read
#: the objects' state, counters come from the declarations in model/counters.py
QUEUE_METRICS: list[tuple[str, str, str, Any]] = [
    ("rabbitmq_queue_messages_ready", "g", "Messages ready to be delivered to consumers", lambda q: len(q.store)),
    ("rabbitmq_queue_messages_unacked", "g", "Messages delivered to consumers but not yet acknowledged", lambda q: q.unacked),
    ("rabbitmq_queue_messages", "g", "Sum of ready and unacknowledged messages - total queue depth", lambda q: len(q.store) + q.unacked),
    ("rabbitmq_queue_messages_ready_bytes", "g", "Size in bytes of ready messages", lambda q: q.store.ready_bytes),
    ("rabbitmq_queue_consumers", "g", "Consumers on a queue", lambda q: len(q.consumers)),
    *_counters(QUEUE),
]
#: the per-object queue families with a label per key (dead-lettered, by reason)
QUEUE_KEYED: tuple[Family, ...] = tuple(f for f in QUEUE.families_in(OBJECT) if f.keyed_by)
CHANNEL_METRICS: list[tuple[str, str, str, Any]] = [
    ("rabbitmq_channel_consumers", "g", "Consumers on a channel", lambda c: len(c.consumers)),
    ("rabbitmq_channel_messages_unacked", "g", "Delivered but not yet acknowledged messages", lambda c: len(c.unacked)),
    ("rabbitmq_channel_messages_unconfirmed", "g", "Published but not yet confirmed messages", lambda c: c.confirm_seq - c.confirm_acked),
    ("rabbitmq_channel_prefetch", "g", "Total limit of unacknowledged messages for all consumers on a channel", lambda c: c.prefetch),
    *_counters(CHANNEL),
]
CONNECTION_METRICS: list[tuple[str, str, str, Any]] = [
    *_counters(CONNECTION),
    ("rabbitmq_connection_channels", "g", "Channels on a connection", lambda c: len(c.channels)),
]
EXCHANGE_METRICS: list[tuple[str, str, str, Any]] = _counters(EXCHANGE)


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
        yield from self._cluster()
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

    def _cluster(self) -> Iterator[Metric]:
        """Cluster mode only: who leads, who is in sync, how far each follower lags."""
        cluster = self.broker.cluster
        if cluster is None:
            return
        st = cluster.status()
        yield _g("warren_cluster_leader", "1 on the node that leads the cluster", 1 if st["role"] == "leader" else 0)
        yield _g("warren_cluster_members", "Nodes registered in etcd (live leases)", len(st["members"]))
        yield _g("warren_cluster_nodes_down", "Nodes on the cluster's node list that are not running",
                 len(set(st.get("known", [])) - set(st["members"])))
        yield _g("warren_cluster_in_sync_members", "Nodes in the in-sync set, the leader included", len(st["in_sync"]))
        yield _g("warren_cluster_min_in_sync", "Confirms need at least this many nodes in sync", st["min_in_sync"])
        families = {
            key: _g(f"warren_cluster_follower_{key}", doc, labels=["follower"])
            for key, doc in (
                ("lag_operations", "Replication operations the follower has not acknowledged"),
                ("lag_bytes", "Bytes of replication frames the follower has not acknowledged"),
                ("lag_seconds", "Age of the oldest operation the follower has not acknowledged"),
            )
        }
        in_sync = _g("warren_cluster_follower_in_sync", "1 while the follower is in the in-sync set", labels=["follower"])
        for name, f in sorted(st["followers"].items()):
            for key, fam in families.items():
                fam.add_metric([name], f[key])
            in_sync.add_metric([name], 1 if f["state"] == "insync" else 0)
        yield from families.values()
        yield in_sync

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
        proto = [PROTO]
        m = _g("rabbitmq_global_consumers", "Current number of consumers", labels=["protocol"])
        m.add_metric(proto, g["consumers"])
        yield m
        m = _g("rabbitmq_global_publishers", "Current number of publishers", labels=["protocol"])
        m.add_metric(proto, g["publishers"])
        yield m
        for entity in (CHANNEL, QUEUE):
            for f, v in entity.node_values(GLOBAL_P | GLOBAL_PQ, g["sums"]):
                values, labels = (proto, ["protocol"]) if f.where & GLOBAL_P else ([PROTO, CLASSIC], ["protocol", "queue_type"])
                m = _family(f, labels)
                m.add_metric(values, v)
                yield m
        name, doc, strategies = DEAD_LETTERED_GLOBAL
        for reason in DL_REASONS:
            m = _c(name.format(reason), doc.format(reason), labels=["queue_type", "dead_letter_strategy"])
            for strategy, by_reason in strategies:
                m.add_metric([CLASSIC, strategy], by_reason(g["queue"]).get(reason, 0))
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
        conns = list(b.connections)
        nchannels = sum(len(c.channels) for c in conns)
        yield _g("rabbitmq_queue_messages_ready", "Messages ready to be delivered to consumers", g["ready"])
        yield _g("rabbitmq_queue_messages_unacked", "Messages delivered to consumers but not yet acknowledged", g["unacked"])
        yield _g("rabbitmq_queue_messages", "Sum of ready and unacknowledged messages - total queue depth", g["ready"] + g["unacked"])
        yield _g("rabbitmq_queue_messages_ready_bytes", "Size in bytes of ready messages", g["ready_bytes"])
        yield _g("rabbitmq_queue_consumers", "Consumers on a queue", g["queue_consumers"])
        # RabbitMQ's families first, warren's own after the gauges below
        own: list[Metric] = []
        for entity in (QUEUE, CHANNEL):
            for f, v in entity.node_values(NODE, g["sums"]):
                m = _family(f, value=v)
                if f.name.startswith("warren_"):
                    own.append(m)
                else:
                    yield m
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
        for f, v in CONNECTION.node_values(NODE, g["sums"]):
            yield _family(f, value=v)
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
                if isinstance(ex, DelayedExchange):
                    pending += ex.pending_count
        m = _g("warren_queue_lane_messages_ready", "Ready messages per priority lane (summed over laned queues)", labels=["lane"])
        for i in sorted(lanes):
            m.add_metric([str(i)], lanes[i])
        yield m
        yield _g("warren_delayed_messages_pending", "Messages held by x-delayed-message exchanges", pending)
        yield from own

    # -- per-object -------------------------------------------------------------
    @staticmethod
    def _spec(spec: list[tuple[str, str, str, Any]], L: list[str], objs: list[tuple[list[str], Any]]) -> Iterator[Metric]:
        for name, kind, doc, fn in spec:
            m = _g(name, doc, labels=L) if kind == "g" else _c(name, doc, labels=L)
            for labels, obj in objs:
                m.add_metric(labels, fn(obj))
            yield m

    def _queues_per_object(self) -> Iterator[Metric]:
        L = ["vhost", "queue"]
        queues = [([vh.name, q.name], q) for vh in self.broker.vhosts.values() for q in list(vh.queues.values())]
        yield from self._spec(QUEUE_METRICS, L, queues)
        for f in QUEUE_KEYED:
            m = _family(f, L + [f.keyed_by])
            for labels, q in queues:
                for key, n in sorted(f.value(q).items()):
                    m.add_metric(labels + [key], n)
            yield m
        m = _g("warren_queue_lane_messages_ready", "Ready messages per priority lane", labels=L + ["lane"])
        for labels, q in queues:
            if q.laned:
                for i, d in enumerate(q.store.lane_depths()):
                    m.add_metric(labels + [str(i)], d)
        yield m

    def _channels_per_object(self) -> Iterator[Metric]:
        chans = [([channel_label(c)], c) for c in channels_of(self.broker)]
        yield from self._spec(CHANNEL_METRICS, ["channel"], chans)
        yield _g("rabbitmq_channels", "Channels currently open", len(chans))

    def _connections_per_object(self) -> Iterator[Metric]:
        conns = [([conn_label(c)], c) for c in list(self.broker.connections)]
        yield from self._spec(CONNECTION_METRICS, ["channel"], conns)
        yield _g("rabbitmq_connections", "Connections currently open", len(conns))

    def _exchanges_per_object(self) -> Iterator[Metric]:
        L = ["vhost", "exchange"]
        exs = [([vh.name, ex.name], ex) for vh in self.broker.vhosts.values() for ex in list(vh.exchanges.values())]
        yield from self._spec(EXCHANGE_METRICS, L, exs)
        m = _g("warren_delayed_messages_pending", "Messages held by an x-delayed-message exchange", labels=L)
        for labels, ex in exs:
            if isinstance(ex, DelayedExchange):
                m.add_metric(labels, ex.pending_count)
        yield m

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
