"""A cluster leader holds a topology method's reply until the definition is in etcd
(``server/amqp/replies.py``): the paths around that hold, seen on the wire.

Frames are sent by hand (tests/broker/_raw.py) because what matters is their order in one
TCP write, which the client libraries do not let a test choose: a ``Channel.Close``
right behind a held ``queue.declare``, and a ``nowait`` declare right before one that
waits. Both are sent in one write, so the broker handles the second method while the
first one's save to etcd is still on its way.
"""

from __future__ import annotations

import pamqp.frame
import pytest
from pamqp import commands as C
from warren.server.cluster.definitions import ClusterDefinitions

from tests.broker._raw import RawConn
from tests.cluster.clusterproc import LocalCluster

pytestmark = pytest.mark.timeout(120)


def _one_node(tmp_path, etcd_fresh) -> LocalCluster:
    # min_insync=1: a single node serves on its own; the definitions still go to etcd
    return LocalCluster(tmp_path / "cluster", etcd_fresh.endpoint, n=1,
                        options="lease_ttl=2&min_insync=1&follower_timeout=1").start()


async def _open(c: LocalCluster, channel: int = 1) -> RawConn:
    leader = c.nodes[await c.wait_serving(size=1)]
    conn = await RawConn.connect(leader.port)
    assert isinstance(await conn.handshake(), C.Connection.OpenOk)
    conn.send(C.Channel.Open(), channel)
    await conn.expect(C.Channel.OpenOk)
    return conn


def _write(conn: RawConn, *frames: tuple[object, int]) -> None:
    conn.send_raw(b"".join(pamqp.frame.marshal(f, ch) for f, ch in frames))


async def _queues_in_etcd(c: LocalCluster) -> set[str]:
    found, _rev = await ClusterDefinitions(c.etcd, c.cluster).load()
    return {q["name"] for q in found.get("queues", [])}


async def test_channel_close_behind_a_held_declare_gets_close_ok_and_nothing_after(tmp_path, etcd_fresh):
    """The client that sent Channel.Close takes only Close-Ok on that channel: the held
    declare-ok is dropped, and never turns up later on the channel number reopened."""
    c = _one_node(tmp_path, etcd_fresh)
    try:
        conn = await _open(c)
        bye = C.Channel.Close(reply_code=200, reply_text="Normal shutdown", class_id=0, method_id=0)
        _write(conn, (C.Queue.Declare(queue="held", durable=True), 1), (bye, 1))
        ch, f = await conn.recv()
        assert (ch, type(f)) == (1, C.Channel.CloseOk), f"got {f!r} on channel {ch}"
        # the save went on: the queue is in etcd (what the next leader loads)
        await c.wait(lambda: _has(c, "held"), 15, "the queue in etcd")
        # the same channel number again: its replies are its own, in order
        _write(conn, (C.Channel.Open(), 1), (C.Queue.Declare(queue="held", passive=True), 1),
               (C.Basic.Qos(prefetch_count=5), 1))
        got = [(await conn.recv())[1] for _ in range(3)]
        assert [type(f) for f in got] == [C.Channel.OpenOk, C.Queue.DeclareOk, C.Basic.QosOk], got
        assert got[1].queue == "held"
        conn.close()
    finally:
        await c.close()


async def _has(c: LocalCluster, name: str) -> bool:
    return name in await _queues_in_etcd(c)


async def test_a_nowait_declare_holds_nothing_and_is_saved(tmp_path, etcd_fresh):
    """A nowait declare has no reply and its client does not wait: the declare behind it
    is answered once its own save is done, and the nowait queue is in etcd too."""
    c = _one_node(tmp_path, etcd_fresh)
    try:
        conn = await _open(c)
        _write(conn, (C.Queue.Declare(queue="nw", durable=True, nowait=True), 1),
               (C.Queue.Declare(queue="waited", durable=True), 1),
               (C.Queue.Bind(queue="nw", exchange="amq.direct", routing_key="k", nowait=True), 1),
               (C.Queue.Bind(queue="waited", exchange="amq.direct", routing_key="k"), 1))
        first = await conn.expect(C.Queue.DeclareOk)
        assert first.queue == "waited"
        await conn.expect(C.Queue.BindOk)
        assert {"nw", "waited"} <= await _queues_in_etcd(c)
        # nothing else was sent on the channel: the next reply is the next method's
        conn.send(C.Basic.Qos(prefetch_count=1), 1)
        await conn.expect(C.Basic.QosOk)
        conn.close()
    finally:
        await c.close()
