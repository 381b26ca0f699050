"""Fixtures for the cluster tests: a private etcd (Debian's etcd-server) on free loopback ports.

``etcd_server``  one etcd per test module, with its own data directory, stopped afterwards.
``etcd_fresh``   one etcd for one test (tests that pause or stop it).
``etcd``         a connected server.cluster.etcd.Etcd client to the module's server.
``cluster``      a cluster name unique to the test, so tests sharing a server never meet.
``make_node``    a factory of nodes (own etcd client + session lease), all stopped afterwards.

Skipped when etcd is not installed, unless ``CI`` is set: then a missing etcd is a failure.
"""

from __future__ import annotations

import secrets

import pytest
from warren.server.cluster.etcd import Etcd
from warren.server.cluster.lease import Session

from tests.cluster.etcdproc import EtcdProcess

# generous: a loaded CI machine can be slow to answer, and a timed-out call is a failure
CLIENT_TIMEOUT = 5.0


@pytest.fixture(scope="module")
def etcd_server(tmp_path_factory):
    server = EtcdProcess(tmp_path_factory.mktemp("etcd")).start()
    try:
        yield server
    finally:
        server.remove()


@pytest.fixture
def etcd_fresh(tmp_path):
    server = EtcdProcess(tmp_path / "etcd").start()
    try:
        yield server
    finally:
        server.remove()


@pytest.fixture
async def etcd(etcd_server):
    client = Etcd([etcd_server.endpoint], timeout=CLIENT_TIMEOUT)
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
def cluster(request) -> str:
    return f"{request.node.name.split('[')[0][:24]}-{secrets.token_hex(3)}"


TEST_TTL = 2  # etcd's minimum lease TTL with default timing; keeps failover tests short


class Node:
    """What one warren node would hold: its own etcd connection and session lease."""

    def __init__(self, name: str, etcd: Etcd, session: Session) -> None:
        self.name = name
        self.etcd = etcd
        self.session = session


@pytest.fixture
async def make_node(etcd_server):
    """``await make_node("n1")``: a node with its own etcd client and a started session."""
    nodes: list[Node] = []

    async def make(name: str, ttl: int = TEST_TTL, endpoints=None) -> Node:
        client = Etcd(endpoints or [etcd_server.endpoint], timeout=CLIENT_TIMEOUT)
        session = Session(client, ttl)
        await session.start()
        node = Node(name, client, session)
        nodes.append(node)
        return node

    yield make
    for node in nodes:
        try:
            await node.session.stop(revoke=True)
        finally:
            await node.etcd.close()


@pytest.fixture
async def cluster3(tmp_path, etcd_fresh):
    """Three ``warren --cluster`` nodes on their own etcd (``clusterproc.LocalCluster``)."""
    from tests.cluster.clusterproc import LocalCluster

    c = LocalCluster(tmp_path / "cluster", etcd_fresh.endpoint).start()
    try:
        yield c
    finally:
        await c.close()
