"""Leader election: create-if-absent on ``leader``, bound to the campaigner's session lease.

The leader key's create_revision is the **fencing token**: every write only a leader may make
(the in-sync set, definitions) is a transaction guarded by ``create_revision(leader) == token``.
When the lease ends, etcd deletes the key; a new leader's key has a higher create_revision;
either way a deposed leader's fenced write fails, however late it arrives.

Only a member of the in-sync set may become leader (it has every confirmed message). The
campaign transaction checks that atomically: it compares the in-sync set's mod_revision with
the one it read, so the set cannot change between the check and the win. With no in-sync set
yet (a new cluster), any member may win; it then writes the first set.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

from warren.server.cluster import keys
from warren.server.cluster.etcd import (
    KV,
    Etcd,
    EtcdUnavailable,
    cancel_and_wait,
    create_revision_is,
    mod_revision_is,
    op_delete,
    op_put,
)
from warren.server.cluster.lease import LeaseLost, Session

log = logging.getLogger("warren.cluster.election")

RETRY_DELAY = 0.2  # seconds between campaign attempts while etcd does not answer


class Fenced(Exception):
    """A leader-only write was refused: the writer is no longer (or never was) the leader."""


@dataclass(frozen=True, slots=True)
class Leadership:
    """Who leads, and the fencing token (leader key's create_revision) of that term."""

    node: str
    token: int
    lease: int
    info: dict[str, Any]


def _leadership(kv: KV) -> Leadership:
    info = json.loads(kv.value)
    return Leadership(node=info.get("node", ""), token=kv.create_revision, lease=kv.lease,
                      info=info)


def fence(cluster: str, leadership: Leadership) -> Any:
    """The compare that holds only while ``leadership`` is the current term."""
    return create_revision_is(keys.leader_key(cluster), leadership.token)


def isr_members(kv: KV | None) -> list[str] | None:
    """The node names in a stored in-sync set (None when there is no set yet)."""
    if kv is None:
        return None
    return list(json.loads(kv.value).get("members", []))


class Election:
    """Campaign for, resign from and observe the leadership of one cluster."""

    def __init__(self, etcd: Etcd, cluster: str, node: str) -> None:
        self.etcd = etcd
        self.cluster = cluster
        self.node = node
        self.key = keys.leader_key(cluster)
        self.isr_key = keys.isr_key(cluster)

    async def leader(self) -> Leadership | None:
        kv = await self.etcd.get(self.key)
        return None if kv is None else _leadership(kv)

    async def campaign(self, session: Session, info: dict[str, Any] | None = None) -> Leadership:
        """Wait until this node is leader (and eligible: in the in-sync set, or no set yet).

        Raises LeaseLost if the session's lease ends first.
        """
        payload = json.dumps({"node": self.node, **(info or {})}).encode()
        while True:
            session.check()
            try:
                won = await self._attempt(session, payload)
            except EtcdUnavailable as e:
                # etcd briefly unreachable: keep trying until the lease's own deadline says stop
                log.warning("campaign of %s: %s; retrying", self.node, e)
                await asyncio.sleep(RETRY_DELAY)
                continue
            if won is not None:
                log.info("node %s is leader of cluster %s (fencing token %d)",
                         self.node, self.cluster, won.token)
                return won

    async def _attempt(self, session: Session, payload: bytes) -> Leadership | None:
        """One try: win, or wait until the leader or the in-sync set changes and return None."""
        leader, rev = await self.etcd.read(self.key)
        if leader is not None:
            if leader.lease == session.lease_id:
                # an earlier attempt won but its reply was lost (retried after a timeout)
                return _leadership(leader)
            await self._wait_change(session, rev)
            return None
        isr, rev2 = await self.etcd.read(self.isr_key)
        members = isr_members(isr)
        if members is not None and self.node not in members:
            log.info("node %s not in the in-sync set %s; waiting to be eligible",
                     self.node, members)
            await self._wait_change(session, max(rev, rev2))
            return None
        res = await self.etcd.txn(
            [create_revision_is(self.key, 0),
             mod_revision_is(self.isr_key, 0 if isr is None else isr.mod_revision)],
            [op_put(self.key, payload, lease=session.lease_id)],
        )
        if not res.succeeded:
            return None  # someone else won, or the set changed: look again
        return Leadership(self.node, res.revision, session.lease_id, json.loads(payload))

    async def _wait_change(self, session: Session, revision: int) -> None:
        """Return when the leader key or the in-sync set changes after ``revision``."""
        prefix = keys.cluster_prefix(self.cluster)
        lost = asyncio.ensure_future(session.lost.wait())

        async def changed() -> None:
            async with aclosing(self.etcd.watch_prefix(prefix, revision + 1)) as events:
                async for ev in events:
                    if ev.kv.key in (self.key, self.isr_key):
                        return

        watch = asyncio.ensure_future(changed())
        try:
            await asyncio.wait({lost, watch}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            await cancel_and_wait(lost, watch)
        if session.lost.is_set():
            raise LeaseLost(f"lease {session.lease_id:x} lost while campaigning")
        if watch.done() and not watch.cancelled() and watch.exception() is not None:
            raise watch.exception()  # type: ignore[misc]

    async def resign(self, leadership: Leadership) -> bool:
        """Give up leadership of this term (no-op if it already ended)."""
        res = await self.etcd.txn([fence(self.cluster, leadership)], [op_delete(self.key)])
        return res.succeeded

    async def wait_lost(self, session: Session, leadership: Leadership) -> str:
        """Return (with the reason) as soon as this term ends: lease lost or key gone/replaced."""
        lost = asyncio.ensure_future(session.lost.wait())

        async def key_gone() -> str:
            while True:
                try:
                    kv, rev = await self.etcd.read(self.key)
                    break
                except EtcdUnavailable:  # the session's deadline decides, not one failed read
                    await asyncio.sleep(RETRY_DELAY)
            if kv is None or kv.create_revision != leadership.token:
                return "leader key gone"
            async with aclosing(self.etcd.watch_prefix(self.key, rev + 1)) as events:
                async for ev in events:
                    if ev.kv.key == self.key and (
                        ev.kind == "delete" or ev.kv.create_revision != leadership.token
                    ):
                        return "leader key gone"
            return "watch ended"

        gone = asyncio.ensure_future(key_gone())
        try:
            await asyncio.wait({lost, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            await cancel_and_wait(lost, gone)
        reason = "lease lost" if session.lost.is_set() else gone.result()
        log.warning("node %s lost leadership (token %d): %s", self.node, leadership.token, reason)
        return reason

    async def observe(self) -> AsyncIterator[Leadership | None]:
        """The current leader (None when there is none), then again at every change."""
        kv, rev = await self.etcd.read(self.key)
        current = None if kv is None else _leadership(kv)
        yield current
        async for ev in self.etcd.watch_prefix(self.key, rev + 1):
            if ev.kv.key != self.key:
                continue
            nxt = None if ev.kind == "delete" else _leadership(ev.kv)
            if nxt != current:
                current = nxt
                yield current
