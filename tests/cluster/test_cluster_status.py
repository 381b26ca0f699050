"""Cluster status on every node (management API, /metrics, warrenctl), and clients
connecting to a follower are carried to the leader."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import subprocess
import sys

import aio_pika
import aiohttp
import pytest
from warren.server.cluster import keys
from warren.server.core.forwarded import make_line

pytestmark = pytest.mark.timeout(120)



async def _get(port: int, path: str) -> tuple[int, str]:
    auth = {"Authorization": "Basic " + base64.b64encode(b"guest:guest").decode()}
    async with aiohttp.ClientSession(headers=auth) as s, s.get(f"http://127.0.0.1:{port}{path}") as r:
        return r.status, await r.text()


async def _get_json(port: int, path: str):
    """The parsed answer of a 200, else None (a node not serving the API yet)."""
    try:
        status, body = await _get(port, path)
    except aiohttp.ClientError:
        return None
    return json.loads(body) if status == 200 else None


async def test_status_is_served_on_every_node(cluster3):
    leader = await cluster3.wait_serving(size=3)
    for node in cluster3.nodes.values():
        async def full(port=node.mgmt_port):
            st = await _get_json(port, "/api/cluster")
            return st if st and len(st["followers"]) == 2 and len(st["in_sync"]) == 3 else None

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
        assert "warren_cluster_nodes_down 0.0" in text
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


async def test_the_leader_sees_a_forwarded_clients_own_address(cluster3):
    leader = await cluster3.wait_serving(size=3)
    lead = cluster3.nodes[leader]
    follower = next(n for n in cluster3.nodes.values() if n.name != leader)
    conn = await aio_pika.connect(follower.url, timeout=10)
    # the client's own port, as the follower saw it (its only connection from 127.0.0.1)
    await conn.close()
    opened = [ln for ln in follower.log_text().splitlines() if "forwarding" in ln]
    assert opened
    ports = [ln.split("conn=127.0.0.1:")[1].split(" ")[0] for ln in lead.log_text().splitlines()
             if "connection opened conn=" in ln and " via " in ln]
    assert ports, lead.log_text()[-2000:]
    client_port = int(ports[-1])
    assert client_port != follower.port
    # named by the client's own address, and by the follower it came through
    line = next(ln for ln in lead.log_text().splitlines()
                if f"connection opened conn=127.0.0.1:{client_port} -> " in ln)
    assert " via 127.0.0.1:" in line


def _guest_login(port: int, first: bytes) -> bytes:
    """Send ``first`` then a PLAIN guest login; return what the broker sent back."""
    from pamqp import commands as C
    from pamqp import frame as pframe

    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        s.sendall(first + b"AMQP\x00\x00\x09\x01")
        got = b""
        s.settimeout(10)
        while b"\xce" not in got:  # Connection.Start (one frame) has arrived
            chunk = s.recv(65536)
            if not chunk:
                return got
            got += chunk
        s.sendall(pframe.marshal(C.Connection.StartOk(
            client_properties={}, mechanism="PLAIN", response="\0guest\0guest", locale="en_US"), 0))
        more = b""
        while True:
            try:
                chunk = s.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            more += chunk
            if b"guest" in more or b"Tune" in more or len(more) > 20:
                break
        return got + more
    finally:
        s.close()


async def test_a_forwarding_line_must_be_signed_and_is_honoured(cluster3):
    leader = await cluster3.wait_serving(size=3)
    lead = cluster3.nodes[leader]
    secret = (lead.data_dir.parent / "secret").read_bytes().strip()
    loop = asyncio.get_running_loop()
    # a line without the cluster secret: the connection is dropped, nothing else changes
    forged = make_line(b"not-the-cluster-secret!!", "127.0.0.1", 4242)
    got = await loop.run_in_executor(None, _guest_login, lead.port, forged)
    assert got == b""
    assert "bad forwarding line" in lead.log_text()
    # a signed line naming a remote client: guest (loopback only) is refused, as RabbitMQ does
    remote = make_line(secret, "192.0.2.7", 40000)
    got = await loop.run_in_executor(None, _guest_login, lead.port, remote)
    assert b"ACCESS_REFUSED - Login was refused" in got
    assert "user 'guest' can only connect via localhost conn=192.0.2.7:40000" in lead.log_text()
    # the same from loopback is let in (Connection.Tune follows)
    local = make_line(secret, "127.0.0.1", 40001)
    got = await loop.run_in_executor(None, _guest_login, lead.port, local)
    assert b"ACCESS_REFUSED" not in got and b"\x00\x0a\x00\x1e" in got


def _http_get(port: int, first: bytes, path: str = "/api/overview") -> bytes:
    """Send ``first`` then a GET as guest; return the response (b"" if dropped)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        auth = base64.b64encode(b"guest:guest")
        s.sendall(first + f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n".encode()
                  + b"Authorization: Basic " + auth + b"\r\n\r\n")
        got = b""
        while chunk := s.recv(65536):
            got += chunk
        return got
    except ConnectionResetError:
        return b""
    finally:
        s.close()


async def test_http_forwarding_names_the_client_to_the_leader(cluster3):
    """Followers carry HTTP behind the same signed line as AMQP: the leader's management API
    applies loopback_users to the real client (as RabbitMQ's does), not to the follower."""
    leader = await cluster3.wait_serving(size=3)
    lead = cluster3.nodes[leader]
    follower = next(n for n in cluster3.nodes.values() if n.name != leader)
    secret = (lead.data_dir.parent / "secret").read_bytes().strip()
    loop = asyncio.get_running_loop()
    forged = make_line(b"not-the-cluster-secret!!", "127.0.0.1", 4242)
    assert await loop.run_in_executor(None, _http_get, lead.mgmt_port, forged) == b""
    remote = make_line(secret, "192.0.2.7", 40000)
    got = await loop.run_in_executor(None, _http_get, lead.mgmt_port, remote)
    assert got.startswith(b"HTTP/1.1 401"), got[:200]
    assert got.endswith(b'{"error":"not_authorised","reason":"User can only log in via localhost"}'), got  # RabbitMQ's bytes
    assert "management login refused user=guest peer=192.0.2.7" in lead.log_text()
    local = make_line(secret, "127.0.0.1", 40001)
    got = await loop.run_in_executor(None, _http_get, lead.mgmt_port, local)
    assert got.startswith(b"HTTP/1.1 200"), got[:200]
    # no line: an ordinary client; and through a follower from loopback (its proxy signs)
    for port in (lead.mgmt_port, follower.mgmt_port):
        got = await loop.run_in_executor(None, _http_get, port, b"")
        assert got.startswith(b"HTTP/1.1 200"), (port, got[:200])
    got = await loop.run_in_executor(None, _http_get, follower.prom_port, b"", "/metrics")
    assert got.startswith(b"HTTP/1.1 200") and b"warren_cluster" in got


async def test_a_declare_on_one_node_is_seen_on_every_node(cluster3):
    leader = await cluster3.wait_serving(size=3)
    a, b = [n for n in cluster3.nodes.values() if n.name != leader]
    auth = {"Authorization": "Basic " + base64.b64encode(b"guest:guest").decode()}
    async with aiohttp.ClientSession(headers=auth) as s:
        async with s.put(f"http://127.0.0.1:{a.mgmt_port}/api/queues/%2F/seen-everywhere",
                         json={"durable": True}) as r:
            assert r.status in (201, 204)
        for node in cluster3.nodes.values():
            async with s.get(f"http://127.0.0.1:{node.mgmt_port}/api/queues/%2F/seen-everywhere") as r:
                assert r.status == 200, node.name
    # and it is in etcd, where the next leader loads it from
    async def in_etcd():
        found, _ = await cluster3.etcd.get_prefix(f"/warren/{cluster3.cluster}/definitions/queues/")
        return any(b"seen-everywhere" in kv.value for kv in found)

    await cluster3.wait(in_etcd, 10, "the queue's definition in etcd")


async def test_the_dashboard_shows_the_cluster(cluster3, tmp_path):
    """In headless Chromium, through a follower's management port (forwarded)."""
    from tests.management.cdp import Chromium, need_chromium
    from tests.management.test_dashboard import login

    need_chromium()
    leader = await cluster3.wait_serving(size=3)
    follower = next(n for n in cluster3.nodes.values() if n.name != leader)
    base = f"http://127.0.0.1:{follower.mgmt_port}"
    async with Chromium(tmp_path / "profile") as browser:
        page = await browser.page()
        await login(page, base)
        assert await page.wait("(() => { const e = document.querySelector('#cluster-leader');"
                               " return e && e.textContent; })()") == leader
        assert await page.text("#cluster-members") == "n1, n2, n3"
        assert await page.text("#cluster-down") == "none"
        insync = await page.wait("(() => { const e = document.querySelector('#cluster-insync');"
                                 " return e && e.textContent.split(',').length === 3 && e.textContent; })()")
        assert insync.startswith(leader)
        rows = await page.eval("document.querySelectorAll('#cluster-status tbody tr').length")
        assert rows == 2  # one per follower, with its lag
        # a node that goes down is shown as down (it stays on the node list)
        other = next(n for n in cluster3.nodes.values() if n.name not in (leader, follower.name))
        other.kill()
        assert await page.wait("(() => { const e = document.querySelector('#cluster-down');"
                               " return e && e.textContent !== 'none' && e.textContent; })()",
                               timeout=30) == other.name


async def test_api_nodes_lists_every_member_and_a_stopped_one_as_not_running(cluster3):
    """As RabbitMQ's /api/nodes lists every cluster node (``running`` false for one that
    is down): the leader with its own figures, the followers with what the leader knows
    and the figures they publish in etcd (none for a node that is down)."""
    leader = await cluster3.wait_serving(size=3)
    follower = next(n for n in cluster3.nodes if n != leader)

    async def listing(port: int, want_running: dict[str, bool]):
        nodes = await _get_json(port, "/api/nodes")
        got = {n["name"]: n for n in nodes or []}
        return got if got and {k: v["running"] for k, v in got.items()} == want_running else None

    everyone = {f"warren@{n}": True for n in cluster3.nodes}
    for node in cluster3.nodes.values():  # a follower's API is the leader's
        got = await cluster3.wait(lambda port=node.mgmt_port: listing(port, everyone), 20,
                                  f"/api/nodes on {node.name}")
        me = got[f"warren@{leader}"]
        assert me["cluster_role"] == "leader" and me["in_sync"] is True
        assert me["mem_used"] > 0 and me["fd_total"] > 0
        f = got[f"warren@{follower}"]
        assert f["cluster_role"] == "follower" and f["in_sync"] is True
        assert f["replication_state"] == "insync" and "replication_lag_seconds" in f
        # its own figures, as it published them (at its start, then every few seconds)
        assert f["mem_used"] > 10 << 20 and 0 < f["fd_used"] < f["fd_total"]
        assert f["disk_free"] > 0 and f["uptime"] > 0 and 0 <= f["stats_age_s"] < 30
        assert f["mem_used"] != me["mem_used"]  # the follower's, not the leader's
    port = cluster3.nodes[leader].mgmt_port
    status, body = await _get(port, f"/api/nodes/warren@{follower}")
    assert status == 200 and json.loads(body)["name"] == f"warren@{follower}"
    status, body = await _get(port, "/api/nodes/warren@nowhere")
    assert status == 404 and json.loads(body) == {"error": "Object Not Found", "reason": "Not Found"}

    # a running node (or this one) is not forgotten
    assert (await _delete(port, f"/api/cluster/nodes/warren@{follower}"))[0] == 400
    assert (await _delete(port, f"/api/cluster/nodes/{leader}"))[0] == 400

    cluster3.nodes[follower].kill()
    gone = dict(everyone, **{f"warren@{follower}": False})
    got = await cluster3.wait(lambda: listing(port, gone), 30, f"{follower} listed as not running")
    assert "mem_used" not in got[f"warren@{follower}"]  # down: no figures, not stale ones
    await cluster3.wait(lambda: _not_in_sync(port, f"warren@{follower}"), 30, f"{follower} out of sync")
    status, text = await _get(cluster3.nodes[leader].prom_port, "/metrics")
    assert "warren_cluster_nodes_down 1.0" in text
    out = subprocess.run([sys.executable, "-m", "warren.server.cli", "--port", str(port), "cluster", "status"],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    assert f"down: {follower} " in out
    # the node list is in etcd, not in the leader's memory: a leader started later lists it too
    found, _ = await cluster3.etcd.get_prefix(keys.nodes_prefix(cluster3.cluster))
    assert sorted(keys.unpart(kv.key.rsplit("/", 1)[1]) for kv in found) == sorted(cluster3.nodes)

    # forgotten (warrenctl cluster forget, through a follower's API): no longer listed
    other = next(n for n in cluster3.nodes if n not in (leader, follower))
    out = subprocess.run([sys.executable, "-m", "warren.server.cli", "--port", str(cluster3.nodes[other].mgmt_port),
                          "cluster", "forget", follower], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"node forgotten: {follower}"
    rest = {k: v for k, v in everyone.items() if k != f"warren@{follower}"}
    await cluster3.wait(lambda: listing(port, rest), 10, f"{follower} forgotten")
    assert (await _delete(port, f"/api/cluster/nodes/{follower}"))[0] == 404
    # ... until it starts again: it joins and is listed, running
    cluster3.nodes[follower].start()
    await cluster3.wait(lambda: listing(port, everyone), 60, f"{follower} listed again")


async def _delete(port: int, path: str) -> tuple[int, str]:
    auth = {"Authorization": "Basic " + base64.b64encode(b"guest:guest").decode()}
    async with aiohttp.ClientSession(headers=auth) as s, s.delete(f"http://127.0.0.1:{port}{path}") as r:
        return r.status, await r.text()


async def _not_in_sync(port: int, name: str) -> bool:
    status, body = await _get(port, "/api/nodes")
    return status == 200 and any(n["name"] == name and not n["in_sync"] for n in json.loads(body))


async def test_a_tls_client_of_a_follower_reaches_the_leader(tmp_path, etcd_fresh):
    """AMQPS through a follower: the follower carries the TLS bytes to the leader's AMQPS
    listener as they are (the session is the client's with the leader), behind the
    signed line naming the client; a direct TLS client of the leader is served too, and
    an unsigned line in front of TLS is refused."""
    import ssl

    import trustme

    from tests.brokerproc import free_port
    from tests.cluster.clusterproc import LocalCluster

    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    cert, key = tmp_path / "server.pem", tmp_path / "server.key"
    server.cert_chain_pems[0].write_to_path(cert)
    server.private_key_pem.write_to_path(key)
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    c = LocalCluster(tmp_path / "cluster", etcd_fresh.endpoint)
    tls = {}
    for name, node in c.nodes.items():
        tls[name] = free_port()
        node.extra_args += ["--tls-port", str(tls[name]), "--tls-cert", str(cert), "--tls-key", str(key)]
    c.start()
    try:
        leader = await c.wait_serving(size=3)
        lead = c.nodes[leader]
        follower = next(n for n in c.nodes if n != leader)
        for port in (tls[follower], tls[leader]):
            conn = await aio_pika.connect(f"amqps://guest:guest@127.0.0.1:{port}/", ssl_context=ctx, timeout=10)
            async with conn:
                ch = await conn.channel()
                q = await ch.declare_queue("", exclusive=True)
                await ch.default_exchange.publish(aio_pika.Message(b"over tls"), routing_key=q.name)
                assert (await q.get(timeout=5)).body == b"over tls"
        # the leader named the follower's client by its own address, via the follower
        opened = [ln for ln in lead.log_text().splitlines() if "connection opened conn=" in ln]
        assert any(" via 127.0.0.1:" in ln for ln in opened), opened
        # a line not signed with the cluster secret, then TLS: dropped before any handshake
        fake = make_line(b"not-the-secret-at-all", "10.9.8.7", 1234)
        with socket.create_connection(("127.0.0.1", tls[leader]), timeout=10) as s:
            s.sendall(fake)
            assert s.recv(100) == b""
        assert "bad forwarding line" in lead.log_text()
    finally:
        await c.close()
