"""etcd with authentication enabled (``etcd_username`` / ``etcd_password_file``): nodes log
in, keep serving across an etcd restart (which forgets every token), and a node with a
wrong password says so and never leads."""

from __future__ import annotations

import base64
import json
import logging
import ssl
import urllib.request
from pathlib import Path

import aio_pika
import pytest
from warren.server.cluster.etcd import Etcd, EtcdError, EtcdTLS

from tests.cluster.clusterproc import LocalCluster
from tests.cluster.test_cluster_failover import publish_confirmed

pytestmark = pytest.mark.timeout(180)

ROOT_PW = "root-secret"
USER, USER_PW = "warren", "warren-secret"


def _b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


def _gateway(endpoint: tuple[str, int], path: str, body: dict, ca: Path | None = None) -> dict:
    """etcd's JSON gateway (etcd 3.4: /v3/...): the setup an operator does with etcdctl."""
    scheme = "https" if ca else "http"
    req = urllib.request.Request(
        f"{scheme}://{endpoint[0]}:{endpoint[1]}/v3/{path}", data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/json"})
    ctx = ssl.create_default_context(cafile=str(ca)) if ca else None
    with urllib.request.urlopen(req, timeout=10, context=ctx) as r:
        return json.loads(r.read() or b"{}")


def enable_auth(endpoint: tuple[str, int], ca: Path | None = None) -> None:
    """root (etcd needs it to enable auth) and a user ``warren`` with read-write on /warren/."""
    _gateway(endpoint, "auth/user/add", {"name": "root", "password": ROOT_PW}, ca)
    _gateway(endpoint, "auth/user/grant", {"user": "root", "role": "root"}, ca)
    _gateway(endpoint, "auth/role/add", {"name": "warren"}, ca)
    _gateway(endpoint, "auth/role/grant", {"name": "warren", "perm": {
        "permType": "READWRITE", "key": _b64("/warren/"), "range_end": _b64("/warren0")}}, ca)
    _gateway(endpoint, "auth/user/add", {"name": USER, "password": USER_PW}, ca)
    _gateway(endpoint, "auth/user/grant", {"user": USER, "role": "warren"}, ca)
    _gateway(endpoint, "auth/enable", {}, ca)


def _cluster(tmp_path, etcd_fresh, password: str, n: int = 3) -> LocalCluster:
    # a lease that outlives an etcd restart: the nodes keep their roles, and must log in
    # again to keep their leases (a restarted etcd knows none of the tokens it gave out)
    c = LocalCluster(tmp_path / "cluster", etcd_fresh.endpoint, n=n, etcd_credentials=("root", ROOT_PW),
                     options="lease_ttl=10&min_insync=2&follower_timeout=1")
    pw = tmp_path / "etcd-password"
    pw.write_text(password + "\n")
    pw.chmod(0o600)
    for node in c.nodes.values():
        node.extra_args += ["--etcd-username", USER, "--etcd-password-file", str(pw)]
    return c


async def test_the_client_authenticates_and_refuses_without_credentials(etcd_fresh):
    enable_auth(etcd_fresh.endpoint)
    async with Etcd([etcd_fresh.endpoint], timeout=5.0, credentials=(USER, USER_PW)) as etcd:
        await etcd.put("/warren/x/k", b"v")
        assert (await etcd.get("/warren/x/k")).value == b"v"
        with pytest.raises(EtcdError, match="permission denied"):
            await etcd.put("/elsewhere", b"v")  # outside the role's range
    async with Etcd([etcd_fresh.endpoint], timeout=5.0) as anonymous:
        with pytest.raises(EtcdError, match="user name is empty"):
            await anonymous.get("/warren/x/k")
    async with Etcd([etcd_fresh.endpoint], timeout=5.0, credentials=(USER, "wrong")) as wrong:
        with pytest.raises(EtcdError, match="authentication failed"):
            await wrong.get("/warren/x/k")


async def test_the_client_authenticates_again_after_an_etcd_restart(etcd_fresh, caplog):
    enable_auth(etcd_fresh.endpoint)
    async with Etcd([etcd_fresh.endpoint], timeout=5.0, credentials=(USER, USER_PW)) as etcd:
        await etcd.put("/warren/x/k", b"1")
        etcd_fresh.stop()  # a restarted etcd knows none of the tokens it gave out
        etcd_fresh.start()
        with caplog.at_level(logging.INFO, logger="warren.cluster.etcd"):
            await etcd.put("/warren/x/k", b"2")
        assert "authentication token refused" in caplog.text
        assert (await etcd.get("/warren/x/k")).value == b"2"


async def test_password_login_over_tls(tmp_path, caplog):
    """etcds:// with a password (etcd serves TLS, no client certificates): the same login,
    on the TLS channel warren opens itself, and again after a restart."""
    import trustme

    from tests.cluster.etcdproc import EtcdProcess

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    files = {k: tmp_path / f"etcd-{k}.pem" for k in ("cert", "key", "ca")}
    cert.cert_chain_pems[0].write_to_path(files["cert"])
    cert.private_key_pem.write_to_path(files["key"])
    ca.cert_pem.write_to_path(files["ca"])
    server = EtcdProcess(tmp_path / "etcd", tls=files, client_cert_auth=False).start()
    try:
        enable_auth(server.endpoint, files["ca"])
        tls = EtcdTLS(ca=files["ca"].read_bytes())
        async with Etcd([server.endpoint], timeout=5.0, tls=tls, credentials=(USER, USER_PW)) as etcd:
            await etcd.put("/warren/x/k", b"1")
            server.stop()
            server.start()
            with caplog.at_level(logging.INFO, logger="warren.cluster.etcd"):
                await etcd.put("/warren/x/k", b"2")
            assert "authentication token refused" in caplog.text
            assert (await etcd.get("/warren/x/k")).value == b"2"
        async with Etcd([server.endpoint], timeout=5.0, tls=tls, credentials=(USER, "wrong")) as wrong:
            with pytest.raises(EtcdError, match="authentication failed"):
                await wrong.get("/warren/x/k")
        async with Etcd([server.endpoint], timeout=5.0, tls=tls) as anonymous:
            with pytest.raises(EtcdError, match="user name is empty"):
                await anonymous.get("/warren/x/k")
    finally:
        server.remove()


async def test_a_cluster_on_an_etcd_with_authentication_serves_and_outlives_an_etcd_restart(
        tmp_path, etcd_fresh):
    enable_auth(etcd_fresh.endpoint)
    c = _cluster(tmp_path, etcd_fresh, USER_PW).start()
    try:
        first = await c.wait_serving(size=3, timeout=60)
        url = c.nodes[first].url
        conn = await aio_pika.connect(url, timeout=10)
        await (await conn.channel()).declare_queue("auth-jobs", durable=True)
        await conn.close()
        bodies = [f"a{i}".encode() for i in range(20)]
        assert await publish_confirmed(url, "auth-jobs", bodies) == bodies
        etcd_fresh.stop()
        etcd_fresh.start()
        # still the same leader, all three in sync, and etcd takes its writes: a durable
        # declare is answered only once it is in etcd
        assert (await c.leader())[0] == first
        assert await c.wait_serving(size=3, timeout=30) == first
        conn = await aio_pika.connect(url, timeout=10)
        await (await conn.channel()).declare_queue("auth-jobs-2", durable=True)
        await conn.close()
        more = [f"b{i}".encode() for i in range(20)]
        assert await publish_confirmed(url, "auth-jobs-2", more) == more
        for node in c.nodes.values():
            assert "stopped leading" not in node.log_text()
    finally:
        await c.close()


async def test_a_node_with_a_wrong_etcd_password_says_so_and_never_leads(tmp_path, etcd_fresh):
    enable_auth(etcd_fresh.endpoint)
    c = _cluster(tmp_path, etcd_fresh, "not-the-password", n=1).start(wait=False)
    try:
        node = c.nodes["n1"]
        await c.wait(lambda: _logged(node, "authentication failed"), 30, "the refusal in the log")
        assert await c.leader() is None
    finally:
        await c.close()


async def _logged(node, text: str) -> bool:
    return text in node.log_text()


async def test_a_cluster_logs_in_to_etcd_over_tls(tmp_path):
    """etcds:// and a password together, with node processes: etcd serves TLS only (no
    client certificates) and wants a login; two nodes serve and confirm."""
    import trustme

    from tests.cluster.etcdproc import EtcdProcess

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    files = {k: tmp_path / f"etcd-{k}.pem" for k in ("cert", "key", "ca")}
    cert.cert_chain_pems[0].write_to_path(files["cert"])
    cert.private_key_pem.write_to_path(files["key"])
    ca.cert_pem.write_to_path(files["ca"])
    server = EtcdProcess(tmp_path / "etcd", tls=files, client_cert_auth=False).start()
    try:
        enable_auth(server.endpoint, files["ca"])
        c = _cluster(tmp_path, server, USER_PW, n=2)
        await c.etcd.close()
        c.etcd = Etcd([server.endpoint], timeout=5.0, tls=EtcdTLS(ca=files["ca"].read_bytes()),
                      credentials=("root", ROOT_PW))
        for node in c.nodes.values():
            i = node.extra_args.index("--cluster") + 1
            node.extra_args[i] = node.extra_args[i].replace("etcd://", "etcds://", 1)
            node.extra_args += ["--etcd-ca", str(files["ca"])]
        c.start()
        try:
            leader = await c.wait_serving(size=2, timeout=60)
            url = c.nodes[leader].url
            conn = await aio_pika.connect(url, timeout=10)
            await (await conn.channel()).declare_queue("auth-tls-jobs", durable=True)
            await conn.close()
            bodies = [f"t{i}".encode() for i in range(20)]
            assert await publish_confirmed(url, "auth-tls-jobs", bodies) == bodies
        finally:
            await c.close()
    finally:
        server.remove()
