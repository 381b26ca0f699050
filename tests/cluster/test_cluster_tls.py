"""TLS on the replication link (``cluster_tls_cert`` / ``_key`` / ``_ca``): confirms and a
failover work over it, a plain connection to it gets nothing, and a node whose certificate
another CA signed is not let in (it never joins the in-sync set)."""

from __future__ import annotations

import base64
import socket
import subprocess
import sys

import aio_pika
import aiohttp
import pytest
import trustme

from tests.brokerproc import ROOT, free_port
from tests.cluster.clusterproc import LocalCluster
from tests.cluster.test_cluster_failover import publish_confirmed

pytestmark = pytest.mark.timeout(180)


def _pki(tmp_path, name: str, ca: trustme.CA) -> list[str]:
    cert = ca.issue_cert("127.0.0.1", "localhost", common_name=name)
    paths = [tmp_path / f"{name}.pem", tmp_path / f"{name}.key", tmp_path / f"{name}-ca.pem"]
    cert.cert_chain_pems[0].write_to_path(paths[0])
    cert.private_key_pem.write_to_path(paths[1])
    ca.cert_pem.write_to_path(paths[2])
    return ["--cluster-tls-cert", str(paths[0]), "--cluster-tls-key", str(paths[1]),
            "--cluster-tls-ca", str(paths[2])]


def _tls_cluster(tmp_path, etcd_fresh, ca_of: dict[str, trustme.CA]) -> LocalCluster:
    c = LocalCluster(tmp_path / "cluster", etcd_fresh.endpoint)
    for name, node in c.nodes.items():
        node.extra_args += _pki(tmp_path, name, ca_of[name])
    return c


async def test_replication_over_tls_confirms_and_fails_over(tmp_path, etcd_fresh):
    ca = trustme.CA()
    c = _tls_cluster(tmp_path, etcd_fresh, {n: ca for n in ("n1", "n2", "n3")}).start()
    try:
        first = await c.wait_serving(size=3)
        leader = c.nodes[first]
        conn = await aio_pika.connect(leader.url, timeout=10)
        await (await conn.channel()).declare_queue("tls-jobs", durable=True)
        await conn.close()
        bodies = [f"m{i}".encode() for i in range(50)]
        assert await publish_confirmed(leader.url, "tls-jobs", bodies) == bodies
        # the link speaks TLS: a plain peer's hello gets no challenge, only the close
        with socket.create_connection(("127.0.0.1", leader.repl_port), timeout=10) as s:
            s.sendall(b"\x00\x00\x00\x10" + b"hello, plain    ")
            try:
                data = s.recv(100)
            except ConnectionResetError:
                data = b""
            assert data == b"" or data[0] == 0x15, data  # closed, or a TLS alert record
        leader.kill()
        second = await c.wait(lambda: _other_leader(c, first), 30, "a new leader")
        await c.wait_serving(size=2)
        conn = await aio_pika.connect(c.nodes[second].url, timeout=10)
        ch = await conn.channel()
        q = await ch.declare_queue("tls-jobs", durable=True, passive=True)
        got = []
        async with q.iterator() as it:
            async for m in it:
                got.append(m.body)
                await m.ack()
                if len(got) == len(bodies):
                    break
        await conn.close()
        assert sorted(got) == sorted(bodies)
        auth = {"Authorization": "Basic " + base64.b64encode(b"guest:guest").decode()}
        async with aiohttp.ClientSession(headers=auth) as s, \
                s.get(f"http://127.0.0.1:{c.nodes[second].mgmt_port}/api/cluster") as r:
            assert (await r.json())["replication_tls"] is True
    finally:
        await c.close()


async def _other_leader(c: LocalCluster, old: str) -> str | None:
    lead = await c.leader()
    return lead[0] if lead and lead[0] != old else None


async def test_a_node_with_a_certificate_of_another_ca_is_not_let_in(tmp_path, etcd_fresh):
    ca, other = trustme.CA(), trustme.CA()
    c = _tls_cluster(tmp_path, etcd_fresh, {"n1": ca, "n2": ca, "n3": other})
    try:
        # n3 comes last, so that it cannot lead first (a lone leader would wait for followers)
        c.nodes["n1"].start()
        c.nodes["n2"].start()
        await c.wait_serving(size=2)
        c.nodes["n3"].start()
        await c.wait(lambda: _logged_any(c.nodes["n3"], "TLS with the leader"), 20,
                     "n3 to report the failed TLS handshake")
        assert "n3" not in await c.insync()
        bodies = [b"still confirmed"]
        lead = c.nodes[(await c.leader())[0]]
        conn = await aio_pika.connect(lead.url, timeout=10)
        await (await conn.channel()).declare_queue("q", durable=True)
        await conn.close()
        assert await publish_confirmed(lead.url, "q", bodies) == bodies
    finally:
        await c.close()


async def _logged_any(node, text: str) -> bool:
    return text in node.log_text()


def test_cluster_tls_needs_all_three_files(tmp_path):
    port = free_port()
    secret = tmp_path / "secret"
    secret.write_text("s" * 32)
    cert = tmp_path / "x.pem"
    cert.write_text("not a cert")
    out = subprocess.run(
        [sys.executable, "-m", "warren.server.main", "--port", str(port), "--data-dir", str(tmp_path / "d"),
         "--management-port", "0", "--prometheus-port", "0",
         "--cluster", f"etcd://127.0.0.1:{free_port()}/t", "--node-name", "n1",
         "--cluster-secret-file", str(secret), "--cluster-tls-cert", str(cert)],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )
    assert out.returncode != 0
    assert "cluster_tls_cert, cluster_tls_key and cluster_tls_ca" in out.stdout + out.stderr


async def test_a_cluster_on_etcd_over_tls(tmp_path):
    """etcds://: the nodes talk to an etcd that serves TLS only and wants a client
    certificate; a node without one never reaches it (and never leads)."""
    from tests.cluster.etcdproc import EtcdProcess

    ca = trustme.CA()
    etcd_cert = ca.issue_cert("127.0.0.1", "localhost")
    node_cert = ca.issue_cert("warren-node", common_name="warren-node")
    files = {k: tmp_path / f"etcd-{k}.pem" for k in ("cert", "key", "ca", "client_cert", "client_key")}
    etcd_cert.cert_chain_pems[0].write_to_path(files["cert"])
    etcd_cert.private_key_pem.write_to_path(files["key"])
    ca.cert_pem.write_to_path(files["ca"])
    node_cert.cert_chain_pems[0].write_to_path(files["client_cert"])
    node_cert.private_key_pem.write_to_path(files["client_key"])
    etcd = EtcdProcess(tmp_path / "etcd", tls=files).start()
    try:
        c = LocalCluster(tmp_path / "cluster", etcd.endpoint, n=2,
                         options="lease_ttl=2&min_insync=1&follower_timeout=1")
        url_of = {}
        for name, node in c.nodes.items():
            i = node.extra_args.index("--cluster") + 1
            node.extra_args[i] = url_of[name] = node.extra_args[i].replace("etcd://", "etcds://", 1)
            node.extra_args += ["--etcd-ca", str(files["ca"])]
        # n1 has a client certificate; n2 has none, so etcd refuses it
        c.nodes["n1"].extra_args += ["--etcd-cert", str(files["client_cert"]),
                                     "--etcd-key", str(files["client_key"])]
        c.etcd = _tls_etcd_client(etcd, files)
        c.start(wait=False)
        try:
            leader = await c.wait(c.leader, 30, "a leader")
            assert leader[0] == "n1"
            n1 = c.nodes["n1"]
            await c.wait(lambda: _logged_any(n1, f"serves as leader (token {leader[1]})"), 30, "n1 serving")
            conn = await aio_pika.connect(n1.url, timeout=10)
            await (await conn.channel()).declare_queue("over-etcds", durable=True)
            await conn.close()
            assert await publish_confirmed(n1.url, "over-etcds", [b"x"]) == [b"x"]
            from warren.server.cluster.definitions import ClusterDefinitions

            found, _ = await ClusterDefinitions(c.etcd, c.cluster).load()
            assert "over-etcds" in {q["name"] for q in found["queues"]}
            # "etcd <endpoint> unreachable" (the client), then "etcd unreachable" (the node's
            # loop) once the call gives up: either says it
            await c.wait(lambda: _logged_any(c.nodes["n2"], "unreachable"), 90,
                         "n2 to report that it cannot reach etcd")
            assert "n2" not in {m for m in await _members(c)}
        finally:
            await c.close()
    finally:
        etcd.remove()


def _tls_etcd_client(etcd, files):
    from warren.server.cluster.etcd import Etcd, EtcdTLS

    return Etcd([etcd.endpoint], timeout=5.0, tls=EtcdTLS(
        ca=files["ca"].read_bytes(), cert=files["client_cert"].read_bytes(),
        key=files["client_key"].read_bytes()))


async def _members(c: LocalCluster) -> list[str]:
    from warren.server.cluster.membership import Membership

    return list(await Membership(c.etcd, c.cluster, "observer").members())
