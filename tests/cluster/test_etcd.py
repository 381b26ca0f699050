"""The etcd wrapper against a real etcd: key-value, txn, leases, endpoint failover, watch resume."""

from __future__ import annotations

import asyncio

import pytest
from warren.server.cluster.etcd import (
    Etcd,
    EtcdUnavailable,
    create_revision_is,
    op_put,
)
from warren.server.cluster.lease import Session

from tests.brokerproc import free_port
from tests.cluster.waiting import wait_for


async def test_put_get_read_prefix_delete(etcd, cluster):
    k = f"/t/{cluster}/a"
    rev = await etcd.put(k, b"1")
    kv = await etcd.get(k)
    assert kv.value == b"1" and kv.create_revision == rev == kv.mod_revision
    got, at = await etcd.read(k)
    assert got == kv and at >= rev
    await etcd.put(f"/t/{cluster}/b", b"2")
    await etcd.put(f"/t/{cluster}-other", b"x")
    found, _ = await etcd.get_prefix(f"/t/{cluster}/")
    assert [(x.key, x.value) for x in found] == [(k, b"1"), (f"/t/{cluster}/b", b"2")]
    assert await etcd.delete(k)
    assert await etcd.get(k) is None
    assert (await etcd.read(k))[0] is None


async def test_create_if_absent_txn(etcd, cluster):
    k = f"/t/{cluster}/once"
    first = await etcd.txn([create_revision_is(k, 0)], [op_put(k, b"first")])
    second = await etcd.txn([create_revision_is(k, 0)], [op_put(k, b"second")])
    assert first.succeeded and not second.succeeded
    assert (await etcd.get(k)).value == b"first"
    assert (await etcd.get(k)).create_revision == first.revision


async def test_lease_keys_go_with_the_lease(etcd, cluster):
    session = Session(etcd, ttl=2)
    lease = await session.start()
    await etcd.put(f"/t/{cluster}/leased", b"v", lease=lease)
    assert (await etcd.get(f"/t/{cluster}/leased")).lease == lease
    assert session.alive
    await session.stop(revoke=True)
    assert session.lost.is_set() and not session.alive
    assert await etcd.get(f"/t/{cluster}/leased") is None
    assert await etcd.keepalive(lease) == 0  # a revoked lease cannot be refreshed


async def test_fails_over_to_the_next_endpoint(etcd_server, cluster):
    dead = ("127.0.0.1", free_port())
    for first in ("txn", "put"):  # the txn goes through the gRPC stub directly: same failover
        async with Etcd([dead, etcd_server.endpoint], timeout=1.0) as client:
            k = f"/t/{cluster}/{first}"
            if first == "txn":
                assert (await client.txn([create_revision_is(k, 0)], [op_put(k, b"v")])).succeeded
            else:
                await client.put(k, b"v")
            assert (await client.get(k)).value == b"v"
            assert client.endpoint == f"127.0.0.1:{etcd_server.client_port}"


async def test_no_endpoint_answers():
    async with Etcd([("127.0.0.1", free_port())], timeout=0.5) as client:
        with pytest.raises(EtcdUnavailable):
            await client.get("/t/x")


@pytest.mark.timeout(90)
async def test_watch_resumes_after_etcd_restart_without_loss_or_duplicates(etcd_fresh):
    async with Etcd([etcd_fresh.endpoint], timeout=1.0) as client:
        _, rev = await client.get_prefix("/w/")
        seen: list[tuple[str, str]] = []

        async def follow():
            async for ev in client.watch_prefix("/w/", rev + 1, retry_delay=0.1):
                seen.append((ev.kind, ev.kv.key))

        task = asyncio.ensure_future(follow())
        try:
            await client.put("/w/1", b"a")
            await wait_for(lambda: len(seen) == 1, 10, what="first event")
            etcd_fresh.stop()
            etcd_fresh.start()  # same data dir and ports: history is kept
            writer = Etcd([etcd_fresh.endpoint], timeout=5.0)
            try:
                await writer.put("/w/2", b"b")
                await writer.delete("/w/1")
            finally:
                await writer.close()
            await wait_for(lambda: len(seen) == 3, 30, what="events after the restart")
            assert seen == [("put", "/w/1"), ("put", "/w/2"), ("delete", "/w/1")]
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
