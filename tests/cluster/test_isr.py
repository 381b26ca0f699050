"""The in-sync replica set against a real etcd: written only by the current leader."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest
from warren.server.cluster.election import Election, Fenced
from warren.server.cluster.isr import InSyncReplicas

from tests.cluster.waiting import wait_for


async def test_leader_writes_followers_cannot(make_node, cluster):
    leader_node = await make_node("n1")
    follower = await make_node("n2")
    lead = await Election(leader_node.etcd, cluster, "n1").campaign(leader_node.session)
    isr = InSyncReplicas(leader_node.etcd, cluster, min_insync=2)
    assert await isr.read() is None and not isr.enough(None)

    first = await isr.write(lead, ["n2", "n3"])
    assert first.members == ("n1", "n2", "n3")  # leader first, always included
    assert first.token == lead.token and isr.enough(first)

    # a follower forging a leadership (its own name, a made-up or stale token) is refused
    theirs = InSyncReplicas(follower.etcd, cluster)
    for forged in (replace(lead, node="n2", token=lead.token + 1000),
                   replace(lead, node="n2", token=0)):
        with pytest.raises(Fenced):
            await theirs.write(forged, ["n2"])
    assert await theirs.read() == first

    # add / remove keep the leader and go through the fence
    after = await isr.remove(lead, "n3")
    assert after.members == ("n1", "n2") and isr.enough(after)
    after = await isr.remove(lead, "n2")
    assert after.members == ("n1",) and not isr.enough(after)
    after = await isr.add(lead, "n3")
    assert after.members == ("n1", "n3")


async def test_concurrent_updates_by_the_leader_do_not_lose_one_another(make_node, cluster):
    node = await make_node("n1")
    lead = await Election(node.etcd, cluster, "n1").campaign(node.session)
    isr = InSyncReplicas(node.etcd, cluster, min_insync=1)
    await asyncio.gather(*(isr.add(lead, f"f{i}") for i in range(6)))
    assert set((await isr.read()).members) == {"n1", *(f"f{i}" for i in range(6))}


async def test_followers_watch_the_set(make_node, cluster):
    node = await make_node("n1")
    lead = await Election(node.etcd, cluster, "n1").campaign(node.session)
    isr = InSyncReplicas(node.etcd, cluster)
    seen: list[tuple[str, ...] | None] = []

    async def follow():
        async for s in isr.watch():
            seen.append(None if s is None else s.members)

    task = asyncio.ensure_future(follow())
    try:
        await wait_for(lambda: seen == [None], 5, what="initial state")
        await isr.write(lead, ["n2"])
        await isr.remove(lead, "n2")
        await wait_for(lambda: seen == [None, ("n1", "n2"), ("n1",)], 5, what="both changes")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def test_min_insync_must_be_positive():
    with pytest.raises(ValueError):
        InSyncReplicas(None, "c", min_insync=0)  # type: ignore[arg-type]
