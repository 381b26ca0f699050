"""Leader election against a real etcd: one leader among three, failover within the lease TTL,
loss of leadership detected promptly, only in-sync members eligible, and fencing of a
paused (deposed) leader's writes."""

from __future__ import annotations

import asyncio
import time

import pytest
from warren.server.cluster.election import Election, Fenced
from warren.server.cluster.etcd import Etcd
from warren.server.cluster.isr import InSyncReplicas
from warren.server.cluster.lease import LeaseLost, Session

from tests.cluster.conftest import TEST_TTL
from tests.cluster.waiting import wait_for


async def _campaigners(make_node, cluster, names=("n1", "n2", "n3")):
    nodes = [await make_node(n) for n in names]
    elections = {n.name: Election(n.etcd, cluster, n.name) for n in nodes}
    tasks = {
        n.name: asyncio.ensure_future(elections[n.name].campaign(n.session, {"amqp": n.name}))
        for n in nodes
    }
    return {n.name: n for n in nodes}, elections, tasks


async def _first_winner(tasks, exclude=(), timeout=TEST_TTL + 3):
    """The one campaign (outside ``exclude``) that has won, waiting for it if need be."""
    candidates = [t for name, t in tasks.items() if name not in exclude]
    if not any(t.done() for t in candidates):
        await asyncio.wait(candidates, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    done = [t for t in candidates if t.done()]
    assert done, "no node became leader in time"
    assert len(done) == 1, "two campaigners won at once"
    return done[0].result()


async def _cancel(tasks):
    for t in tasks.values():
        t.cancel()
    async with asyncio.timeout(5):  # a campaign that ignores cancellation is a bug: fail, don't hang
        await asyncio.gather(*tasks.values(), return_exceptions=True)


async def test_one_leader_among_three_and_failover_on_revoke(make_node, cluster):
    nodes, elections, tasks = await _campaigners(make_node, cluster)
    try:
        first = await _first_winner(tasks)
        # the others are still waiting: still exactly one leader
        assert sum(t.done() for t in tasks.values()) == 1
        current = await elections["n1"].leader()
        assert current.node == first.node and current.token == first.token
        assert current.info == {"node": first.node, "amqp": first.node}

        # the leader leaves cleanly (lease revoked): another one takes over at once
        start = time.monotonic()
        await nodes[first.node].session.stop(revoke=True)
        second = await _first_winner(tasks, exclude={first.node})
        assert second.node != first.node
        assert second.token > first.token
        assert time.monotonic() - start < TEST_TTL
    finally:
        await _cancel(tasks)


async def test_failover_when_the_leader_freezes_and_its_writes_are_fenced(make_node, cluster):
    nodes, elections, tasks = await _campaigners(make_node, cluster)
    try:
        first = await _first_winner(tasks)
        isr = InSyncReplicas(nodes[first.node].etcd, cluster, min_insync=2)
        await isr.write(first, ["n1", "n2", "n3"])

        # the leader freezes: no more keep-alives, and it does not know (a SIGSTOPped process)
        nodes[first.node].session.pause()
        frozen = time.monotonic()
        second = await _first_winner(tasks, exclude={first.node}, timeout=TEST_TTL + 3)
        failover = time.monotonic() - frozen
        assert second.node != first.node and second.token > first.token
        assert failover < TEST_TTL + 1.5, failover

        # the old leader wakes up and writes as if still leader: refused (fencing)
        with pytest.raises(Fenced):
            await isr.write(first, [first.node])
        with pytest.raises(Fenced):
            await isr.remove(first, second.node)
        # ... while the new leader's writes go through
        isr2 = InSyncReplicas(nodes[second.node].etcd, cluster)
        written = await isr2.remove(second, first.node)
        assert written.leader == second.node and first.node not in written
        stored = await isr.read()
        assert stored == written and stored.token == second.token
        # and its own session knows by now that its lease is gone (local deadline)
        assert not nodes[first.node].session.alive
    finally:
        await _cancel(tasks)


async def test_leadership_loss_is_reported_promptly(make_node, cluster, etcd):
    node = await make_node("n1")
    election = Election(node.etcd, cluster, "n1")
    won = await election.campaign(node.session)
    watcher = asyncio.ensure_future(election.wait_lost(node.session, won))
    await asyncio.sleep(0)  # let it start watching
    assert not watcher.done()
    start = time.monotonic()
    await etcd.revoke(node.session.lease_id)  # e.g. an operator, or etcd expiring it
    reason = await asyncio.wait_for(watcher, TEST_TTL)
    assert reason in ("leader key gone", "lease lost")
    assert time.monotonic() - start < TEST_TTL
    # the keep-alive loop also learns it within a third of the TTL
    await wait_for(lambda: node.session.lost.is_set(), TEST_TTL, what="session lost")
    with pytest.raises(LeaseLost):
        await election.campaign(node.session)


async def test_resign_hands_over(make_node, cluster):
    nodes, elections, tasks = await _campaigners(make_node, cluster, ("n1", "n2"))
    try:
        first = await _first_winner(tasks)
        assert await elections[first.node].resign(first)
        assert not await elections[first.node].resign(first)  # that term is over
        second = await _first_winner(tasks, exclude={first.node})
        assert second.node != first.node
    finally:
        await _cancel(tasks)


async def test_only_in_sync_members_may_become_leader(make_node, cluster):
    nodes = {n: await make_node(n) for n in ("n1", "n2", "n3")}
    elections = {n: Election(nodes[n].etcd, cluster, n) for n in nodes}
    lead = await elections["n1"].campaign(nodes["n1"].session)
    await InSyncReplicas(nodes["n1"].etcd, cluster).write(lead, ["n1", "n2"])

    # n3 (not in sync) campaigns first, n2 (in sync) after; then the leader goes
    n3 = asyncio.ensure_future(elections["n3"].campaign(nodes["n3"].session))
    n2 = asyncio.ensure_future(elections["n2"].campaign(nodes["n2"].session))
    try:
        observed: list[str | None] = []

        async def observe():
            async for leader in elections["n3"].observe():
                observed.append(None if leader is None else leader.node)

        obs = asyncio.ensure_future(observe())
        await wait_for(lambda: observed == ["n1"], 5, what="observer sees n1")
        await elections["n1"].resign(lead)
        won = await asyncio.wait_for(n2, TEST_TTL + 3)
        assert won.node == "n2"
        assert not n3.done()
        await wait_for(lambda: observed[-1] == "n2", 5, what="observer sees n2")
        obs.cancel()
        await asyncio.gather(obs, return_exceptions=True)
    finally:
        for t in (n2, n3):
            t.cancel()
        await asyncio.gather(n2, n3, return_exceptions=True)


@pytest.mark.timeout(60)
async def test_leader_cut_off_from_etcd_stops_within_the_ttl(etcd_fresh, cluster):
    """etcd hangs (SIGSTOP): the leader's own deadline passes before etcd could expire it."""
    client = Etcd([etcd_fresh.endpoint], timeout=1.0)
    session = Session(client, ttl=TEST_TTL)
    try:
        await session.start()
        won = await Election(client, cluster, "n1").campaign(session)
        assert won.node == "n1" and session.alive
        etcd_fresh.pause()
        cut = time.monotonic()
        try:
            await wait_for(lambda: session.lost.is_set(), TEST_TTL + 1, what="local lease loss")
            # at most a TTL after the last answered keep-alive (+ scheduling on a busy machine)
            assert time.monotonic() - cut <= TEST_TTL + 0.5
            assert not session.alive
        finally:
            etcd_fresh.resume()
    finally:
        await session.stop(revoke=False)
        await client.close()


@pytest.mark.timeout(60)
async def test_campaign_rides_out_a_short_etcd_outage(etcd_fresh, cluster, caplog):
    client = Etcd([etcd_fresh.endpoint], timeout=1.0)
    session = Session(client, ttl=6)
    try:
        await session.start()
        etcd_fresh.pause()
        try:
            task = asyncio.ensure_future(Election(client, cluster, "n1").campaign(session))
            await wait_for(lambda: "retrying" in caplog.text, 5, what="a failed attempt")
            assert not task.done()
        finally:
            etcd_fresh.resume()
        won = await asyncio.wait_for(task, 5)
        assert won.node == "n1" and session.alive
    finally:
        await session.stop()
        await client.close()
