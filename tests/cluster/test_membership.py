"""Membership against a real etcd: join, list, watch; a node whose keep-alives stop drops out."""

from __future__ import annotations

import asyncio
import time

from warren.server.cluster.membership import Membership

from tests.cluster.conftest import TEST_TTL
from tests.cluster.waiting import wait_for


async def test_join_list_and_expiry_within_the_ttl(make_node, cluster):
    nodes = [await make_node(n) for n in ("n1", "n2", "n3")]
    for i, node in enumerate(nodes):
        await Membership(node.etcd, cluster, node.name).join(
            node.session, {"amqp": f"127.0.0.1:{5672 + i}"}
        )
    view = Membership(nodes[0].etcd, cluster, "n1")
    members = await view.members()
    assert sorted(members) == ["n1", "n2", "n3"]
    assert members["n2"].info == {"node": "n2", "amqp": "127.0.0.1:5673"}
    assert members["n2"].lease == nodes[1].session.lease_id

    maps: list[set[str]] = []

    async def follow():
        async for current in view.watch():
            maps.append(set(current))

    task = asyncio.ensure_future(follow())
    try:
        await wait_for(lambda: maps and maps[-1] == {"n1", "n2", "n3"}, 5, what="initial map")
        # n2 freezes: it stops sending keep-alives (a SIGSTOPped or partitioned node)
        nodes[1].session.pause()
        frozen = time.monotonic()
        await wait_for(lambda: maps[-1] == {"n1", "n3"}, TEST_TTL + 3, what="n2 to expire")
        elapsed = time.monotonic() - frozen
        # etcd expires a lease TTL after the last keep-alive it got, checking every 500 ms;
        # the margin is for a loaded machine
        assert elapsed < TEST_TTL + 1.5, elapsed
        assert sorted(await view.members()) == ["n1", "n3"]

        # a clean leave (lease revoked) is seen at once
        await nodes[2].session.stop(revoke=True)
        await wait_for(lambda: maps[-1] == {"n1"}, 2, what="n3 to leave")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_names_with_odd_characters_round_trip(make_node, cluster):
    node = await make_node("n.1_x-y")
    await Membership(node.etcd, cluster, node.name).join(node.session, {})
    assert list(await Membership(node.etcd, cluster, "x").members()) == ["n.1_x-y"]


async def test_the_node_list_outlives_the_lease_until_forgotten(make_node, cluster):
    """``register`` keeps a node on the node list (no lease) after its session ends;
    ``forget`` takes it off, once; a watcher sees both."""
    nodes = [await make_node(n) for n in ("n1", "n/2")]
    for node in nodes:
        m = Membership(node.etcd, cluster, node.name)
        await m.join(node.session, {})
        await m.register({"amqp": "127.0.0.1:5672"})
    view = Membership(nodes[0].etcd, cluster, "n1")
    lists: list[set[str]] = []

    async def follow():
        async for names in view.watch_nodes():
            lists.append(names)

    task = asyncio.ensure_future(follow())
    try:
        await wait_for(lambda: lists and lists[-1] == {"n1", "n/2"}, 5, what="the node list")
        await nodes[1].session.stop(revoke=True)
        assert sorted(await view.members()) == ["n1"]  # not a member any more ...
        assert lists[-1] == {"n1", "n/2"}  # ... still on the list
        assert await view.forget("n/2") is True
        await wait_for(lambda: lists[-1] == {"n1"}, 5, what="n/2 forgotten")
        assert await view.forget("n/2") is False
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
