"""Overview, identity and node endpoints."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from warren.server.http.management import authz as A
from warren.server.http.management import views as V
from warren.server.http.management.common import (
    Ctx,
    bad_request,
    jresp,
    not_found,
)
from warren.server.http.management.history import add_samples


async def overview(c: Ctx) -> web.Response:
    data = V.overview_json(c.broker, c.api.rates)
    try:
        add_samples(data, c.api.history, c.request.query)
    except ValueError as exc:
        raise bad_request(str(exc)) from None
    if not A.is_monitor(c.user):
        _restrict_overview(c, data)
    return jresp(data)


def _restrict_overview(c: Ctx, data: dict[str, Any]) -> None:
    """As RabbitMQ for users without the monitoring tag: no node, listeners or contexts, and
    totals only over the vhosts they may use and the connections they own."""
    for k in ("node", "listeners", "contexts"):
        data.pop(k, None)
    vhosts = [vh for vh in c.broker.vhosts.values() if c.visible(vh.name)]
    conns = [conn for conn in list(c.broker.connections)
             if conn.vhost is not None and conn.user is not None and c.sees(conn.user.name)]
    data["object_totals"] = {
        "channels": sum(len(conn.channels) for conn in conns),
        "connections": len(conns),
        "exchanges": sum(len(vh.exchanges) for vh in vhosts),
        "queues": sum(len(vh.queues) for vh in vhosts),
    }
    qt: dict[str, Any] = {}
    if vhosts:
        ready = sum(len(q.store) for vh in vhosts for q in vh.queues.values())
        unacked = sum(q.unacked for vh in vhosts for q in vh.queues.values())
        for k, v in (("messages", ready + unacked), ("messages_ready", ready), ("messages_unacknowledged", unacked)):
            qt[k] = v
            qt[f"{k}_details"] = {"rate": 0.0}
    data["queue_totals"] = qt
    # warren keeps message rates per node, not per vhost: not shown to users who may not see the node
    data["message_stats"] = {}


async def whoami(c: Ctx) -> web.Response:
    return jresp({"name": c.user.name, "tags": list(c.user.tags)})


async def cluster_name(c: Ctx) -> web.Response:
    return jresp({"name": c.broker.cluster_name})


async def cluster_status(c: Ctx) -> web.Response:
    """warren's own: members, leader, in-sync set and per-follower replication lag."""
    cluster = c.broker.cluster
    if cluster is None:
        return jresp({"mode": "single", "node": V.node_name(c.broker)})
    return jresp(cluster.status())


async def forget_node(c: Ctx) -> web.Response:
    """warren's own (``rabbitmqctl forget_cluster_node``): take a node that is down off
    the cluster's node list. 400 for a running node, one in the in-sync set, this node or
    a single node; 404 for a node not on the list."""
    from warren.server.node.cluster_node import ForgetRefused

    cluster = c.broker.cluster
    if cluster is None:
        raise bad_request("not a cluster node")
    name = c.params["name"]
    if name.startswith("warren@"):
        name = name[len("warren@"):]
    try:
        await cluster.forget(name)
    except ForgetRefused as exc:
        raise bad_request(str(exc)) from None
    except KeyError:
        raise not_found() from None
    return web.Response(status=204)


async def extensions(c: Ctx) -> web.Response:
    return jresp([])


async def nodes(c: Ctx) -> web.Response:
    return jresp(_nodes(c))


async def node(c: Ctx) -> web.Response:
    name = c.params["name"]
    for n in _nodes(c):
        if n["name"] == name:
            return jresp(n)
    raise not_found()


def _nodes(c: Ctx) -> list[dict[str, Any]]:
    """This node with its figures; in a cluster (this node leads: followers forward the
    API to it) every other node on the cluster's node list (every node that joined, until
    ``warrenctl cluster forget``) or in the in-sync set, with what the leader knows of it: running (its session lease is alive
    in etcd), in sync, replication lag, and the memory/fd/disk figures it publishes in
    its member key (every few seconds, ``stats_age_s`` old; a node that is down has
    none: not shown, not zero)."""
    from warren.server.core.process import process_stats

    p = process_stats()
    me = {
        "name": V.node_name(c.broker), "type": "disc", "running": True,
        "mem_used": p["resident_memory_bytes"], "fd_used": p["open_fds"], "fd_total": p["max_fds"],
        "sockets_used": len(c.broker.connections), "disk_free": getattr(c.broker, "disk_free", -1),
        "mem_alarm": "memory" in c.broker.alarms, "disk_free_alarm": "disk" in c.broker.alarms,
        "mem_limit": c.broker.memory.limit, "disk_free_limit": c.broker.config.disk_free_limit,
    }
    cluster = c.broker.cluster
    if cluster is None:
        return [me]
    st = cluster.status()
    me["cluster_role"] = st["role"]
    me["in_sync"] = cluster.name in st["in_sync"]
    out = [me]
    followers = st.get("followers") or {}
    for name in sorted(set(st["known"]) | set(followers)):
        if name == cluster.name:
            continue
        f = followers.get(name, {})
        entry: dict[str, Any] = {
            "name": V.cluster_node_name(name), "type": "disc", "running": name in st["members"],
            "cluster_role": "follower", "in_sync": name in st["in_sync"],
        }
        for k in ("state", "acked_seq", "lag_operations", "lag_bytes", "lag_seconds"):
            if k in f:
                entry[f"replication_{k}"] = f[k]
        own = (st.get("member_stats") or {}).get(name) if entry["running"] else None
        if own:
            for k in ("mem_used", "fd_used", "fd_total", "disk_free", "uptime"):
                if k in own:
                    entry[k] = own[k]
            entry["stats_age_s"] = own.get("age_s")
        out.append(entry)
    return out
