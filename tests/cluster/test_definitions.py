"""Cluster definitions against a real etcd: a put on one node is seen by another's watch."""

from __future__ import annotations

import asyncio

import pytest
from warren.server.cluster.definitions import (
    ClusterDefinitions,
    DefinitionChange,
    DefinitionError,
    DefinitionsReset,
)
from warren.server.cluster.election import Election, Fenced

from tests.cluster.waiting import wait_for

QUEUE = {"name": "orders/eu", "vhost": "/", "durable": True, "auto_delete": False,
         "arguments": {"x-queue-type": "classic"}}
EXCHANGE = {"name": "ev", "vhost": "/", "type": "topic", "durable": True, "auto_delete": False,
            "internal": False, "arguments": {}}
BINDING = {"source": "ev", "vhost": "/", "destination": "orders/eu", "destination_type": "queue",
           "routing_key": "order.#", "arguments": {}}
BINDING_ARGS = {**BINDING, "arguments": {"x-match": "any"}}


async def test_put_on_one_node_is_seen_by_anothers_watch(make_node, cluster):
    a, b = await make_node("n1"), await make_node("n2")
    writer, reader = ClusterDefinitions(a.etcd, cluster), ClusterDefinitions(b.etcd, cluster)
    await writer.put("vhosts", {"name": "/", "limits": [], "metadata": {}})
    snapshot, rev = await reader.load()
    assert snapshot["vhosts"] == [{"name": "/", "limits": [], "metadata": {}}]
    assert snapshot["queues"] == []

    changes: list[DefinitionChange] = []

    async def follow():
        async for change in reader.watch(rev + 1):
            changes.append(change)

    task = asyncio.ensure_future(follow())
    try:
        await writer.put("exchanges", EXCHANGE)
        await writer.put("queues", QUEUE)
        await writer.put("bindings", BINDING)
        await writer.put("bindings", BINDING_ARGS)  # same endpoints, other arguments: another binding
        await writer.delete("bindings", BINDING)
        await wait_for(lambda: len(changes) == 5, 5, what="five changes")
        assert [(c.kind, c.op) for c in changes] == [
            ("exchanges", "put"), ("queues", "put"), ("bindings", "put"),
            ("bindings", "put"), ("bindings", "delete"),
        ]
        assert changes[1].obj == QUEUE  # the whole object, as written
        assert changes[4].obj == BINDING  # a delete carries what was deleted
        assert all(x.revision < y.revision for x, y in zip(changes, changes[1:], strict=False))
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    snapshot, _ = await reader.load()
    assert snapshot["queues"] == [QUEUE] and snapshot["bindings"] == [BINDING_ARGS]


async def test_fenced_writes_need_the_current_leadership(make_node, cluster):
    a = await make_node("n1")
    election = Election(a.etcd, cluster, "n1")
    lead = await election.campaign(a.session)
    defs = ClusterDefinitions(a.etcd, cluster)
    await defs.put("queues", QUEUE, fenced_by=lead)
    await election.resign(lead)
    with pytest.raises(Fenced):
        await defs.put("queues", {**QUEUE, "durable": False}, fenced_by=lead)
    with pytest.raises(Fenced):
        await defs.delete("queues", QUEUE, fenced_by=lead)
    snapshot, _ = await defs.load()
    assert snapshot["queues"] == [QUEUE]


async def test_keys_are_safe_for_slashes_and_unknown_kinds_refused(etcd, cluster):
    defs = ClusterDefinitions(etcd, cluster)
    k1 = defs.key("queues", {"vhost": "a/b", "name": "c"})
    k2 = defs.key("queues", {"vhost": "a", "name": "b/c"})
    assert k1 != k2 and k1.count("/") == k2.count("/")
    with pytest.raises(DefinitionError, match="unknown definition kind"):
        defs.key("widgets", {"name": "x"})
    with pytest.raises(DefinitionError, match="lacks field 'vhost'"):
        await defs.put("queues", {"name": "x"})


async def test_a_watcher_behind_compacted_history_gets_the_whole_set_again(etcd, cluster):
    defs = ClusterDefinitions(etcd, cluster)
    _, rev = await defs.load()
    await defs.put("queues", QUEUE)
    latest = await defs.put("exchanges", EXCHANGE)
    await etcd.compact(latest)

    async def first():
        async for item in defs.watch(rev + 1):
            return item

    item = await asyncio.wait_for(first(), 5)
    assert isinstance(item, DefinitionsReset)
    assert item.definitions["queues"] == [QUEUE] and item.definitions["exchanges"] == [EXCHANGE]
    assert item.revision >= latest
