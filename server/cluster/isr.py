"""The in-sync replica set: the nodes that hold every confirmed message, leader included.

Stored as one JSON key (``isr``) and written only by the current leader, in a transaction
guarded by the fencing token (the leader key's create_revision) and by the set's own
mod_revision (so two updates by the same leader cannot lose one another). A deposed
leader's write fails with Fenced, however late it arrives.

The rule this set serves (enforced by the replication layer, not here): a publish is
confirmed only once it is fsynced on the leader and on every member of the set; a follower
is removed from the set *before* any further confirm that it has not acknowledged; publishes
are held (bounded) while the set is smaller than ``min_insync``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass

from warren.server.cluster import keys
from warren.server.cluster.election import Fenced, Leadership, fence
from warren.server.cluster.etcd import KV, Etcd, mod_revision_is, op_put

DEFAULT_MIN_INSYNC = 2


@dataclass(frozen=True, slots=True)
class InSyncSet:
    """The set as stored: members (leader first), the term that wrote it, its mod_revision."""

    leader: str
    members: tuple[str, ...]
    token: int
    revision: int

    def __contains__(self, node: object) -> bool:
        return node in self.members


def _decode(kv: KV) -> InSyncSet:
    data = json.loads(kv.value)
    return InSyncSet(
        leader=data["leader"],
        members=tuple(data["members"]),
        token=int(data["token"]),
        revision=kv.mod_revision,
    )


class InSyncReplicas:
    """Read, watch and (as leader) write the in-sync replica set of one cluster."""

    def __init__(self, etcd: Etcd, cluster: str, min_insync: int = DEFAULT_MIN_INSYNC) -> None:
        if min_insync < 1:
            raise ValueError("min_insync must be at least 1")
        self.etcd = etcd
        self.cluster = cluster
        self.key = keys.isr_key(cluster)
        self.leader_key = keys.leader_key(cluster)
        self.min_insync = min_insync

    def enough(self, isr: InSyncSet | None) -> bool:
        """Whether publishes may be confirmed: the set has at least ``min_insync`` members."""
        return isr is not None and len(isr.members) >= self.min_insync

    async def read(self) -> InSyncSet | None:
        kv = await self.etcd.get(self.key)
        return None if kv is None else _decode(kv)

    async def write(
        self, leadership: Leadership, members: Iterable[str], *, expect_revision: int | None = None
    ) -> InSyncSet:
        """Replace the set (the leader is always included); Fenced unless ``leadership`` is current.

        With ``expect_revision`` (the set's mod_revision as read; 0 = absent), the write also
        requires the set to be unchanged since it was read.
        """
        ordered = [leadership.node] + sorted(set(members) - {leadership.node})
        value = json.dumps(
            {"leader": leadership.node, "members": ordered, "token": leadership.token}
        ).encode()
        compare = [fence(self.cluster, leadership)]
        if expect_revision is not None:
            compare.append(mod_revision_is(self.key, expect_revision))
        res = await self.etcd.txn(compare, [op_put(self.key, value)])
        if not res.succeeded:
            if expect_revision is not None and await self._still_leader(leadership):
                raise _Conflict
            raise Fenced(
                f"node {leadership.node} is no longer leader (token {leadership.token}):"
                " in-sync set not written"
            )
        return InSyncSet(leadership.node, tuple(ordered), leadership.token, res.revision)

    async def _still_leader(self, leadership: Leadership) -> bool:
        kv = await self.etcd.get(self.leader_key)
        return kv is not None and kv.create_revision == leadership.token

    async def _update(self, leadership: Leadership, change: str, node: str) -> InSyncSet:
        while True:
            current = await self.read()
            members = set(current.members if current is not None else ())
            if change == "add":
                members.add(node)
            else:
                members.discard(node)
            try:
                return await self.write(
                    leadership, members, expect_revision=current.revision if current else 0
                )
            except _Conflict:
                continue  # another update by this same leader raced us: re-read, retry

    async def add(self, leadership: Leadership, node: str) -> InSyncSet:
        """Add a follower that has caught up (fenced)."""
        return await self._update(leadership, "add", node)

    async def remove(self, leadership: Leadership, node: str) -> InSyncSet:
        """Drop a lagging or unreachable follower (fenced); do this before the next confirm."""
        return await self._update(leadership, "remove", node)

    async def watch(self) -> AsyncIterator[InSyncSet | None]:
        """The current set, then again at every change."""
        kv, rev = await self.etcd.read(self.key)
        yield None if kv is None else _decode(kv)
        async for ev in self.etcd.watch_prefix(self.key, rev + 1):
            if ev.kv.key == self.key:
                yield None if ev.kind == "delete" else _decode(ev.kv)


class _Conflict(Exception):
    """The set changed between read and write (same leader): retry."""


__all__ = ["DEFAULT_MIN_INSYNC", "Fenced", "InSyncReplicas", "InSyncSet"]
