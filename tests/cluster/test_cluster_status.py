"""Cluster status on every node (management API, /metrics, warrenctl), and clients
connecting to a follower are carried to the leader."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys

import aio_pika
import aiohttp
import pytest

from tests.cluster.clusterproc import LocalCluster

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
async def cluster3(tmp_path, etcd_fresh):
    c = LocalCluster(tmp_path / "cluster", etcd_fresh.endpoint).start()
    try:
        yield c
    finally:
        await c.close()


async def _get(port: int, path: str) -> tuple[int, str]:
    auth = {"Authorization": "Basic " + base64.b64encode(b"guest:guest").decode()}
    async with aiohttp.ClientSession(headers=auth) as s, s.get(f"http://127.0.0.1:{port}{path}") as r:
        return r.status, await r.text()


async def test_status_is_served_on_every_node(cluster3):
    leader = await cluster3.wait_serving(size=3)
    for node in cluster3.nodes.values():
        async def full(port=node.mgmt_port):
            try:
                status, body = await _get(port, "/api/cluster")
            except aiohttp.ClientError:
                return None
            if status != 200:
                return None
            st = json.loads(body)
            return st if len(st["followers"]) == 2 and len(st["in_sync"]) == 3 else None

        st = await cluster3.wait(full, 20, f"/api/cluster on {node.name}")
        assert st["leader"] == leader and st["role"] == "leader"
        assert st["members"] == ["n1", "n2", "n3"]
        assert st["in_sync"][0] == leader
        for f in st["followers"].values():
            assert f["state"] == "insync"
            assert {"lag_operations", "lag_bytes", "lag_seconds", "acked_seq"} <= set(f)
        status, text = await _get(node.prom_port, "/metrics")
        assert status == 200
        assert "warren_cluster_in_sync_members 3.0" in text
        assert "warren_cluster_leader 1.0" in text  # served by the leader, through the follower
        assert 'warren_cluster_follower_lag_seconds{follower="' in text
    node = cluster3.nodes[leader]
    out = subprocess.run(
        [sys.executable, "-m", "warren.server.cli", "--port", str(node.mgmt_port), "cluster", "status"],
        capture_output=True, text=True, timeout=30, check=True,
    ).stdout
    assert f"leader {leader}" in out and "in sync:" in out
    assert "lag_seconds" in out


async def test_a_client_of_a_follower_reaches_the_leader(cluster3):
    leader = await cluster3.wait_serving(size=3)
    follower = next(n for n in cluster3.nodes.values() if n.name != leader)
    conn = await aio_pika.connect(follower.url, timeout=10)
    ch = await conn.channel(publisher_confirms=True)
    q = await ch.declare_queue("via-follower", durable=True)
    for i in range(20):
        await ch.default_exchange.publish(
            aio_pika.Message(f"{i}".encode(), delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
            routing_key="via-follower", timeout=10,
        )
    await conn.close()
    # the messages are on the leader (read through the leader's own port)
    conn = await aio_pika.connect(cluster3.nodes[leader].url, timeout=10)
    ch = await conn.channel()
    q = await ch.declare_queue("via-follower", durable=True, passive=True)
    got = []
    while (m := await q.get(timeout=5, fail=False)) is not None:
        got.append(m.body)
        await m.ack()
    await conn.close()
    assert got == [f"{i}".encode() for i in range(20)]
    # the leader's log names the connection (forwarded by the follower)
    await asyncio.sleep(0)
    assert "connection opened" in cluster3.nodes[leader].log_text()
