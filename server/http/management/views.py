"""JSON views of broker objects with the field names and types of RabbitMQ's
management API (3.10), so rabbitmqadmin and monitoring scripts read them unchanged.

Erlang-only fields (reductions, garbage_collection ...) are present with
neutral values where tools may read them. Rates (``*_details.rate``) are
computed from two samples of the same counter taken at request time
(:class:`Rates`), never on the message path.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from warren.server.http.metrics import channels_of, global_counts
from warren.server.model.counters import CHANNEL, CONNECTION, EXCHANGE, QUEUE, Sums
from warren.server.model.definitions import VERSION, _jsonable
from warren.server.model.exchanges import DelayedExchange, Exchange

if TYPE_CHECKING:
    from warren.server.amqp.channel import Channel
    from warren.server.amqp.connection import Connection
    from warren.server.model.consumer import Consumer
    from warren.server.model.queue import Queue
    from warren.server.model.vhost import VHost
    from warren.server.node.broker import Broker


class Rates:
    """Per-key rate from the two latest samples at least ``min_dt`` seconds apart."""

    def __init__(self, min_dt: float = 0.5, max_keys: int = 100000) -> None:
        self.min_dt = min_dt
        self.max_keys = max_keys
        self._s: dict[Any, tuple[float, float, float, float]] = {}

    def rate(self, key: Any, value: float) -> float:
        now = time.monotonic()
        s = self._s.get(key)
        if s is None:
            if len(self._s) >= self.max_keys:
                self._s.clear()
            self._s[key] = (now, value, now, value)
            return 0.0
        pt, pv, ct, cv = s
        if now - ct >= self.min_dt:
            pt, pv, ct, cv = ct, cv, now, value
            self._s[key] = (pt, pv, ct, cv)
        dt = ct - pt
        return round((cv - pv) / dt, 1) if dt > 0 else 0.0


def _stats(rates: Rates, key: Any, counts: dict[str, int]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in counts.items():
        out[k] = v
        out[k + "_details"] = {"rate": rates.rate((key, k), v)}
    return out


def _detail(rates: Rates, key: Any, name: str, v: int, out: dict[str, Any]) -> None:
    out[name] = v
    out[name + "_details"] = {"rate": rates.rate((key, name), v)}


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+00:00"


def node_name(broker: Broker) -> str:
    return getattr(broker, "node_name", "warren@localhost")


def cluster_node_name(node: str) -> str:
    """A cluster node's name as the management API shows it (RabbitMQ's ``name@host``)."""
    return node if "@" in node else f"warren@{node}"


# ----------------------------------------------------------------------------- queues
def queue_message_stats(q: Queue) -> dict[str, int]:
    return QUEUE.stats_of(q)


def consumer_json(c: Consumer) -> dict[str, Any]:
    ch = c.channel
    conn = ch.conn
    q = c.queue
    active = True
    if q is not None and q.single_active:
        active = bool(q.consumers) and q.consumers[0] is c
    return {
        "arguments": _jsonable(c.arguments),
        "ack_required": not c.no_ack,
        "active": active,
        "activity_status": ("single_active" if active else "waiting") if q is not None and q.single_active else "up",
        "channel_details": {
            "connection_name": conn.name,
            "name": channel_name(ch),
            "node": node_name(conn.broker),
            "number": ch.number,
            "peer_host": conn.peer[0],
            "peer_port": conn.peer[1],
            "user": getattr(conn.user, "name", ""),
        },
        "consumer_tag": c.tag,
        "exclusive": c.exclusive,
        "prefetch_count": c.prefetch,
        "queue": {"name": q.name if q is not None else "", "vhost": ch.vhost.name},
    }


def queue_json(broker: Broker, rates: Rates, q: Queue, detail: bool = False) -> dict[str, Any]:
    key = ("q", q.vhost.name, q.name)
    ready = len(q.store)
    unacked = q.unacked
    ready_bytes = q.store.ready_bytes
    sac = q.active_consumer() if q.single_active else None
    excl = [c for c in q.consumers if c.exclusive]
    out: dict[str, Any] = {
        "arguments": _jsonable(q.arguments),
        "auto_delete": q.auto_delete,
        "backing_queue_status": {
            "mode": "default",
            "len": ready,
            "priority_lengths": {str(i): d for i, d in enumerate(q.store.lane_depths())} if q.laned else {},
            "version": 2,
        },
        "consumer_capacity": 1.0 if q.consumers else 0,
        "consumer_utilisation": 1.0 if q.consumers else 0,
        "consumers": len(q.consumers),
        "durable": q.durable,
        "effective_policy_definition": dict(q.policy.definition) if q.policy else {},
        "exclusive": q.exclusive,
        "exclusive_consumer_tag": excl[0].tag if excl else None,
        "garbage_collection": {"fullsweep_after": 0, "max_heap_size": 0, "min_bin_vheap_size": 0, "min_heap_size": 0, "minor_gcs": 0},
        "head_message_timestamp": None,
        "idle_since": iso(time.time()),
        "memory": 0,
        "message_bytes": ready_bytes,
        "message_bytes_paged_out": 0,
        "message_bytes_persistent": ready_bytes if q.durable else 0,
        "message_bytes_ram": ready_bytes,
        "message_bytes_ready": ready_bytes,
        "message_bytes_unacknowledged": 0,
        "message_stats": _stats(rates, key, queue_message_stats(q)),
        "messages_paged_out": 0,
        "messages_persistent": ready + unacked if q.durable else 0,
        "messages_ram": ready + unacked,
        "messages_ready_ram": ready,
        "messages_unacknowledged_ram": unacked,
        "name": q.name,
        "node": node_name(broker),
        "operator_policy": None,
        "policy": q.policy.name if q.policy else None,
        "recoverable_slaves": None,
        "reductions": 0,
        "reductions_details": {"rate": 0.0},
        "single_active_consumer_tag": sac.tag if sac is not None else None,
        "state": "running",
        "type": "quorum" if q.quorum else "classic",
        "vhost": q.vhost.name,
    }
    _detail(rates, key, "messages", ready + unacked, out)
    _detail(rates, key, "messages_ready", ready, out)
    _detail(rates, key, "messages_unacknowledged", unacked, out)
    if q.laned:
        out["lane_depths"] = q.store.lane_depths()
    if detail:
        out["consumer_details"] = [consumer_json(c) for c in q.consumers]
        out["deliveries"] = []
        out["incoming"] = []
    return dict(sorted(out.items()))


# ----------------------------------------------------------------------------- exchanges
def exchange_json(rates: Rates, ex: Exchange) -> dict[str, Any]:
    key = ("x", ex.vhost.name, ex.name)
    out: dict[str, Any] = {
        "arguments": _jsonable(ex.arguments),
        "auto_delete": ex.auto_delete,
        "durable": ex.durable,
        "internal": ex.internal,
        "message_stats": _stats(rates, key, EXCHANGE.stats_of(ex)),
        "name": ex.name,
        "type": ex.describe_type(),
        "user_who_performed_action": "rmq-internal" if not ex.name or ex.name.startswith("amq.") else "guest",
        "vhost": ex.vhost.name,
    }
    if ex.policy is not None:
        out["policy"] = ex.policy.name
    if isinstance(ex, DelayedExchange):
        out["delayed_pending"] = ex.pending_count
    return out


# ----------------------------------------------------------------------------- bindings
def properties_key(routing_key: str, arguments: dict) -> str:
    if not arguments:
        return quote(routing_key, safe="") if routing_key else "~"
    import hashlib

    from warren.server.model.exchanges.base import args_key

    h = hashlib.md5(repr(args_key(arguments)).encode()).hexdigest()[:22]
    return f"{quote(routing_key, safe='')}~{h}"


def binding_json(vh: VHost, source: str, dest: Any, routing_key: str, arguments: dict) -> dict[str, Any]:
    return {
        "source": source,
        "vhost": vh.name,
        "destination": dest.name,
        "destination_type": "exchange" if isinstance(dest, Exchange) else "queue",
        "routing_key": routing_key,
        "arguments": _jsonable(arguments),
        "properties_key": properties_key(routing_key, arguments),
    }


def vhost_bindings(vh: VHost) -> list[dict[str, Any]]:
    out = [binding_json(vh, "", q, q.name, {}) for q in vh.queues.values()]
    for ex in vh.exchanges.values():
        if not ex.name:
            continue
        for b in ex.bindings.values():
            out.append(binding_json(vh, ex.name, b.destination, b.routing_key, b.arguments))
    return out


# ----------------------------------------------------------------------------- connections / channels
def channel_name(ch: Channel) -> str:
    return f"{ch.conn.name} ({ch.number})"


def channel_message_stats(ch: Channel) -> dict[str, int]:
    return CHANNEL.stats_of(ch)


def channel_json(broker: Broker, rates: Rates, ch: Channel) -> dict[str, Any]:
    conn = ch.conn
    name = channel_name(ch)
    return {
        "acks_uncommitted": len(ch.tx_acks),
        "confirm": ch.confirm,
        "connection_details": {"name": conn.name, "peer_host": conn.peer[0], "peer_port": conn.peer[1]},
        "consumer_count": len(ch.consumers),
        "garbage_collection": {"fullsweep_after": 0, "max_heap_size": 0, "min_bin_vheap_size": 0, "min_heap_size": 0, "minor_gcs": 0},
        "global_prefetch_count": ch.global_prefetch,
        "idle_since": iso(time.time()),
        "message_stats": _stats(rates, ("ch", name), channel_message_stats(ch)),
        "messages_unacknowledged": len(ch.unacked),
        "messages_uncommitted": len(ch.tx_publishes),
        "messages_unconfirmed": ch.confirm_seq - ch.confirm_acked,
        "name": name,
        "node": node_name(broker),
        "number": ch.number,
        "pending_raft_commands": 0,
        "prefetch_count": ch.prefetch,
        "reductions": 0,
        "reductions_details": {"rate": 0.0},
        "state": "flow" if not ch.flow else "running",
        "transactional": ch.tx,
        "user": getattr(conn.user, "name", ""),
        "user_who_performed_action": getattr(conn.user, "name", ""),
        "vhost": ch.vhost.name,
    }


def connection_json(broker: Broker, rates: Rates, conn: Connection) -> dict[str, Any]:
    sock = conn.transport.get_extra_info("sockname") if conn.transport is not None else None
    key = ("c", conn.name)
    out: dict[str, Any] = {
        "auth_mechanism": "PLAIN",
        "channel_max": conn.channel_max,
        "channels": len(conn.channels),
        "client_properties": _jsonable(conn.client_properties),
        "connected_at": int(conn.connected_at * 1000),
        "frame_max": conn.frame_max,
        "garbage_collection": {"fullsweep_after": 0, "max_heap_size": 0, "min_bin_vheap_size": 0, "min_heap_size": 0, "minor_gcs": 0},
        "host": sock[0] if sock else "",
        "name": conn.name,
        "node": node_name(broker),
        "peer_cert_issuer": None,
        "peer_cert_subject": None,
        "peer_cert_validity": None,
        "peer_host": conn.peer[0],
        "peer_port": conn.peer[1],
        "port": sock[1] if sock else 0,
        "protocol": "AMQP 0-9-1",
        "recv_cnt": 0,
        "reductions": 0,
        "reductions_details": {"rate": 0.0},
        "send_cnt": 0,
        "send_pend": 0,
        "ssl": False,
        "ssl_cipher": None,
        "ssl_hash": None,
        "ssl_key_exchange": None,
        "ssl_protocol": None,
        "state": "blocked" if conn.blocked else "running",
        "timeout": conn.heartbeat,
        "type": "network",
        "user": getattr(conn.user, "name", ""),
        "user_who_performed_action": getattr(conn.user, "name", ""),
        "vhost": conn.vhost.name if conn.vhost is not None else "/",
    }
    for k, v in CONNECTION.stats_of(conn).items():
        _detail(rates, key, k, v, out)
    return dict(sorted(out.items()))


# ----------------------------------------------------------------------------- vhosts, users
def vhost_json(broker: Broker, rates: Rates, vh: VHost) -> dict[str, Any]:
    key = ("v", vh.name)
    ready = unacked = 0
    for q in vh.queues.values():
        ready += len(q.store)
        unacked += q.unacked
    conns = [conn for conn in list(broker.connections) if conn.vhost is vh]
    chans = CHANNEL.sums(ch for conn in conns for ch in list(conn.channels.values()))
    stats = node_message_stats(chans, QUEUE.sums(vh.queues.values()))
    meta = getattr(vh, "metadata", None) or {"description": "", "tags": []}
    out: dict[str, Any] = {
        "cluster_state": {node_name(broker): "running"},
        "default_queue_type": "undefined",
        "description": meta.get("description", "") or ("Default virtual host" if vh.name == "/" else ""),
        "message_stats": _stats(rates, key, stats),
        "metadata": {"description": meta.get("description", ""), "tags": list(meta.get("tags", []))},
        "name": vh.name,
        "tags": list(meta.get("tags", [])),
        "tracing": vh.name in broker.tracer.firehose,
    }
    _detail(rates, key, "messages", ready + unacked, out)
    _detail(rates, key, "messages_ready", ready, out)
    _detail(rates, key, "messages_unacknowledged", unacked, out)
    for k, v in CONNECTION.stats_of(CONNECTION.sums(conns)).items():
        _detail(rates, key, k, v, out)
    return dict(sorted(out.items()))


def user_json(u: Any) -> dict[str, Any]:
    return {
        "name": u.name,
        "password_hash": u.password_hash,
        "hashing_algorithm": "rabbit_password_hashing_sha256",
        "tags": list(u.tags),
        "limits": {},
    }


# ----------------------------------------------------------------------------- overview
EXCHANGE_TYPE_DESC = {
    "direct": "AMQP direct exchange, as per the AMQP specification",
    "fanout": "AMQP fanout exchange, as per the AMQP specification",
    "headers": "AMQP headers exchange, as per the AMQP specification",
    "topic": "AMQP topic exchange, as per the AMQP specification",
    "x-delayed-message": "Delayed Message Exchange.",
}


def node_message_stats(channels: Sums, queues: Sums, overview: bool = False) -> dict[str, int]:
    """``message_stats`` of a vhost or the node: its channels' sums, with redeliveries from its queues."""
    stats = CHANNEL.stats_of(channels)
    stats["redeliver"] = queues.redelivered  # counted per queue (see model/counters.py)
    if overview:
        stats["disk_reads"] = stats["disk_writes"] = 0
    return dict(sorted(stats.items()))


def overview_json(broker: Broker, rates: Rates) -> dict[str, Any]:
    from warren.server.model.exchanges import EXCHANGE_TYPES

    g = global_counts(broker)
    node = node_name(broker)
    stats = node_message_stats(g["channel"], g["queue"], overview=True)
    t = broker.totals
    conns = list(broker.connections)
    nchannels = sum(len(c.channels) for c in conns)
    churn = {
        "channel_closed": t.channels_closed,
        "channel_created": t.channels_closed + nchannels,
        "connection_closed": t.connections_closed,
        "connection_created": t.connections_closed + sum(1 for c in conns if c.vhost is not None),
        "queue_created": t.queues_created,
        "queue_declared": t.queues_created,
        "queue_deleted": t.queues_deleted,
    }
    qt: dict[str, Any] = {}
    _detail(rates, "overview", "messages", g["ready"] + g["unacked"], qt)
    _detail(rates, "overview", "messages_ready", g["ready"], qt)
    _detail(rates, "overview", "messages_unacknowledged", g["unacked"], qt)
    cfg = broker.config
    listeners = [
        {"node": node, "protocol": "amqp", "ip_address": cfg.host, "port": broker.port,
         "socket_opts": {"backlog": 1024, "nodelay": True}},
    ]
    if cfg.tls_port:
        listeners.append({"node": node, "protocol": "amqp/ssl", "ip_address": cfg.host, "port": cfg.tls_port,
                          "socket_opts": {"backlog": 1024, "nodelay": True}})
    if cfg.management_port:
        listeners.append({"node": node, "protocol": "http", "ip_address": cfg.management_host or cfg.host,
                          "port": cfg.management_port, "socket_opts": {"port": cfg.management_port}})
    if cfg.prometheus_port:
        listeners.append({"node": node, "protocol": "http/prometheus", "ip_address": cfg.management_host or cfg.host,
                          "port": cfg.prometheus_port, "socket_opts": {"port": cfg.prometheus_port}})
    return {
        "management_version": VERSION,
        "rates_mode": "basic",
        "sample_retention_policies": {"global": [600, 3600, 28800, 86400], "basic": [600, 3600], "detailed": [600]},
        "exchange_types": [
            {"name": n, "description": EXCHANGE_TYPE_DESC.get(n, ""), "enabled": True} for n in sorted(EXCHANGE_TYPES)
        ],
        "product_version": "0.1.0",
        "product_name": "warren",
        "rabbitmq_version": VERSION,
        "cluster_name": broker.cluster_name,
        "erlang_version": "none",
        "erlang_full_version": "none (warren is written in Python)",
        "release_series_support_status": "supported",
        "disable_stats": False,
        "enable_queue_totals": False,
        "message_stats": _stats(rates, "overview", stats),
        "churn_rates": _stats(rates, "churn", churn),
        "queue_totals": qt,
        "object_totals": {
            "channels": nchannels,
            "connections": len(conns),
            "consumers": g["consumers"],
            "exchanges": sum(len(vh.exchanges) for vh in broker.vhosts.values()),
            "queues": g["queues"],
        },
        "statistics_db_event_queue": 0,
        "node": node,
        "listeners": listeners,
        "contexts": [{"ssl_opts": [], "node": node, "description": "warren management", "path": "/",
                      "ip": cfg.management_host or cfg.host, "port": str(cfg.management_port)}],
    }


def all_channels(broker: Broker) -> list[Channel]:
    return [c for c in channels_of(broker) if not c.closing]
