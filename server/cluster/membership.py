"""Cluster membership: each node's key under ``members/``, bound to its session lease.

A node is a member exactly while its key exists; a node whose keep-alives stop drops out
when etcd expires its lease (within the TTL), with no action by anyone else.

Every node that joined also has a key under ``nodes/`` with no lease: the cluster's node
list, which keeps a node that is down (RabbitMQ lists a stopped node, not running, until
``forget_cluster_node``); ``forget`` removes one.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from warren.server.cluster import keys
from warren.server.cluster.etcd import KV, Etcd
from warren.server.cluster.lease import Session


@dataclass(frozen=True, slots=True)
class Member:
    """A live node: its name, what it advertised (addresses, version), and since when."""

    name: str
    info: dict[str, Any]
    lease: int
    joined_revision: int


def _member(prefix: str, kv: KV) -> Member:
    return Member(
        name=keys.unpart(kv.key[len(prefix):]),
        info=json.loads(kv.value),
        lease=kv.lease,
        joined_revision=kv.create_revision,
    )


class Membership:
    """Register this node and list or watch the live members of the cluster."""

    def __init__(self, etcd: Etcd, cluster: str, node: str) -> None:
        self.etcd = etcd
        self.cluster = cluster
        self.node = node
        self.prefix = keys.members_prefix(cluster)
        self.key = keys.member_key(cluster, node)

    async def join(self, session: Session, info: dict[str, Any]) -> None:
        """Announce this node (e.g. its AMQP, HTTP and replication addresses) under its lease."""
        payload = {"node": self.node, **info}
        await self.etcd.put(self.key, json.dumps(payload).encode(), lease=session.lease_id)

    async def register(self, info: dict[str, Any]) -> None:
        """Put this node in the cluster's node list (kept while it is down)."""
        await self.etcd.put(keys.node_key(self.cluster, self.node), json.dumps({"node": self.node, **info}).encode())

    async def forget(self, node: str) -> bool:
        """Take ``node`` off the node list; False if it was not on it."""
        return bool(await self.etcd.delete(keys.node_key(self.cluster, node)))

    async def watch_nodes(self) -> AsyncIterator[set[str]]:
        """The names on the node list now, then again after every change."""
        prefix = keys.nodes_prefix(self.cluster)
        found, revision = await self.etcd.get_prefix(prefix)
        current = {keys.unpart(kv.key[len(prefix):]) for kv in found}
        yield set(current)
        async for ev in self.etcd.watch_prefix(prefix, revision + 1):
            name = keys.unpart(ev.kv.key[len(prefix):])
            if ev.kind == "delete":
                current.discard(name)
            else:
                current.add(name)
            yield set(current)

    async def leave(self) -> None:
        await self.etcd.delete(self.key)

    async def members(self) -> dict[str, Member]:
        found, _ = await self.etcd.get_prefix(self.prefix)
        return {m.name: m for m in (_member(self.prefix, kv) for kv in found)}

    async def watch(self) -> AsyncIterator[dict[str, Member]]:
        """The full member map now, then again after every join or departure."""
        found, revision = await self.etcd.get_prefix(self.prefix)
        current = {m.name: m for m in (_member(self.prefix, kv) for kv in found)}
        yield dict(current)
        async for ev in self.etcd.watch_prefix(self.prefix, revision + 1):
            name = keys.unpart(ev.kv.key[len(self.prefix):])
            if ev.kind == "delete":
                if current.pop(name, None) is None:
                    continue
            else:
                current[name] = _member(self.prefix, ev.kv)
            yield dict(current)
