"""Three warren nodes on one etcd: confirmed messages survive a kill -9 of the leader.

Clients are aio-pika over TCP; the nodes are real ``warren --cluster`` processes.
"""

from __future__ import annotations

import asyncio
import contextlib

import aio_pika
import pytest

from tests.cluster.clusterproc import LocalCluster
from tests.cluster.test_cluster_clients import _read_all

pytestmark = pytest.mark.timeout(180)



async def _connect(node) -> aio_pika.abc.AbstractConnection:
    return await aio_pika.connect(node.url, timeout=10)


async def publish_confirmed(url: str, queue: str, bodies: list[bytes]) -> list[bytes]:
    """Publish each body with confirms; return the ones the broker confirmed (acked)."""
    confirmed = []
    conn = await aio_pika.connect(url, timeout=10)
    try:
        ch = await conn.channel(publisher_confirms=True)
        for body in bodies:
            try:
                await ch.default_exchange.publish(
                    aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                    routing_key=queue, timeout=10,
                )
            except aio_pika.exceptions.DeliveryError:
                continue  # nacked: not confirmed, may or may not be delivered
            confirmed.append(body)
    finally:
        await conn.close()
    return confirmed


async def test_confirmed_messages_survive_a_leader_kill(cluster3):
    first = await cluster3.wait_serving(size=3)
    leader = cluster3.nodes[first]
    conn = await _connect(leader)
    ch = await conn.channel()
    await ch.declare_queue("jobs", durable=True)
    await conn.close()

    bodies = [f"m{i}".encode() for i in range(300)]
    confirmed = await publish_confirmed(leader.url, "jobs", bodies)
    # a follower slower than follower_timeout (a loaded machine) is dropped, and publishes
    # are nacked until it is back: those are not confirmed, and may or may not be delivered
    assert len(confirmed) > 0

    # a consumer takes 50 and acks them, and holds 20 more unacked when the leader dies
    conn = await _connect(leader)
    ch = await conn.channel()
    await ch.set_qos(prefetch_count=20)
    q = await ch.declare_queue("jobs", durable=True, passive=True)
    acked: list[bytes] = []
    for _ in range(50):
        msg = await q.get(timeout=5)
        await msg.ack()
        acked.append(msg.body)
    held = [await q.get(timeout=5) for _ in range(20)]
    # the acks are replicated before anything else is confirmed: one more confirmed publish
    # orders them (the follower applies operations in order)
    marks = [f"after-acks{i}".encode() for i in range(20)]
    for mark in marks:
        if await publish_confirmed(leader.url, "jobs", [mark]):
            confirmed.append(mark)
            break
    else:
        raise AssertionError("no publish confirmed after the acks")

    leader.kill()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(conn.close(), 5)
    new = await cluster3.wait(
        lambda: _new_leader(cluster3, first), 30, "a new leader"
    )
    survivor = cluster3.nodes[new]
    await cluster3.wait(lambda: _serving(cluster3, new), 30, "the new leader serving")

    conn = await _connect(survivor)
    ch = await conn.channel()
    q = await ch.declare_queue("jobs", durable=True, passive=True)
    got: list[tuple[bytes, bool]] = []
    while (msg := await q.get(timeout=5, fail=False)) is not None:
        got.append((msg.body, msg.redelivered))
        await msg.ack()
    await conn.close()

    bodies_got = {b for b, _ in got}
    expected = {b for b in confirmed if b not in acked}
    assert expected <= bodies_got  # nothing confirmed is lost
    assert not bodies_got & set(acked)  # nothing acked comes back
    assert bodies_got <= set(bodies) | set(marks)
    redelivered = {b for b, r in got if r}
    assert {m.body for m in held} <= redelivered  # the held ones come back as redelivered


async def _new_leader(cluster: LocalCluster, old: str) -> str | None:
    lead = await cluster.leader()
    return lead[0] if lead is not None and lead[0] != old else None


async def _serving(cluster: LocalCluster, name: str) -> bool:
    lead = await cluster.leader()
    return lead is not None and lead[0] == name and \
        f"serves as leader (token {lead[1]})" in cluster.nodes[name].log_text()


async def test_delayed_messages_survive_a_leader_kill_and_fire_on_time(cluster3):
    first = await cluster3.wait_serving(size=3)
    leader = cluster3.nodes[first]
    conn = await _connect(leader)
    ch = await conn.channel(publisher_confirms=True)
    dx = await ch.declare_exchange(
        "later", "x-delayed-message", durable=True, arguments={"x-delayed-type": "direct"}
    )
    q = await ch.declare_queue("due", durable=True)
    await q.bind(dx, routing_key="k")
    loop = asyncio.get_running_loop()
    due: dict[bytes, float] = {}
    for i in range(20):
        delay_ms = 4000 + 100 * i
        body = f"d{i}".encode()
        sent = loop.time()  # the broker counts the delay from when it receives the message
        try:
            await dx.publish(
                aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                                 headers={"x-delay": delay_ms}),
                routing_key="k", timeout=10,
            )
        except aio_pika.exceptions.DeliveryError:
            continue  # nacked (a slow follower was dropped): not confirmed
        due[body] = sent + delay_ms / 1000
    assert due
    await conn.close()
    leader.kill()

    new = await cluster3.wait(lambda: _new_leader(cluster3, first), 30, "a new leader")
    await cluster3.wait(lambda: _serving(cluster3, new), 30, "the new leader serving")
    conn = await _connect(cluster3.nodes[new])
    ch = await conn.channel()
    q = await ch.declare_queue("due", durable=True, passive=True)
    arrived: dict[bytes, float] = {}
    async with q.iterator() as it:
        async for msg in it:
            arrived[msg.body] = loop.time()
            await msg.ack()
            if set(due) <= set(arrived):
                break
    await conn.close()
    assert set(due) <= set(arrived)  # every confirmed delayed message fired on the new leader
    for body, t in due.items():
        # not early (20 ms: clock granularity), and on time once the new leader serves
        assert arrived[body] >= t - 0.02, (body, arrived[body] - t)
        assert arrived[body] - t < 2.0, (body, arrived[body] - t)


async def test_below_min_insync_publishes_are_nacked_until_a_follower_is_back(tmp_path, etcd_fresh):
    """min_insync=3 of 3: with a follower down, nothing is confirmed (publishes are nacked,
    as documented); once it is back and in sync, publishes are confirmed again."""
    c = LocalCluster(tmp_path / "cluster", etcd_fresh.endpoint,
                     options="lease_ttl=2&min_insync=3&follower_timeout=1").start()
    try:
        first = await c.wait_serving(size=3)
        leader = c.nodes[first]
        conn = await _connect(leader)
        await (await conn.channel()).declare_queue("strict", durable=True)
        await conn.close()
        assert await publish_confirmed(leader.url, "strict", [b"ok-1"]) == [b"ok-1"]
        follower = next(n for n in c.nodes.values() if n.name != first)
        follower.kill()
        await c.wait(lambda: _members_below(c, 3), 20, "the killed follower out of the in-sync set")
        assert await publish_confirmed(leader.url, "strict", [b"refused-1", b"refused-2"]) == []
        follower.start()
        await c.wait_serving(size=3)
        assert await publish_confirmed(leader.url, "strict", [b"ok-2"]) == [b"ok-2"]
    finally:
        await c.close()


async def _members_below(c: LocalCluster, n: int) -> bool:
    return len(await c.insync()) < n


async def test_a_leader_that_cannot_update_the_in_sync_set_steps_down_promptly(tmp_path, etcd_fresh):
    """Cut the leader off etcd and kill a follower: dropping it from the in-sync set fails,
    so the leader can confirm nothing more and must end its term. Handing back its key
    cannot reach etcd either, and must not keep it leading (with its clients): in a
    60-round fault run that resign hung ~30 s. It steps down within about a lease."""
    import time

    c, links = _cuttable_cluster(tmp_path, etcd_fresh)
    try:
        first = await c.wait_serving(size=3)
        leader = c.nodes[first]
        ended = leader.log_text().count("stopped leading")
        links[first].cut()
        next(n for n in c.nodes.values() if n.name != first).kill()
        t0 = time.monotonic()
        await c.wait(lambda: _logged(leader, "stopped leading", ended), 15, "the leader to step down")
        assert time.monotonic() - t0 < 10
    finally:
        await c.close()
        for link in links.values():
            link.close()


def _cuttable_cluster(tmp_path, etcd_fresh) -> tuple[LocalCluster, dict]:
    """Three nodes, each reaching etcd through a link the test can cut."""
    from tests.cluster.netcut import CuttableLink

    links = {f"n{i}": CuttableLink(etcd_fresh.endpoint).start() for i in (1, 2, 3)}
    c = LocalCluster(tmp_path / "cluster", etcd_fresh.endpoint,
                     node_etcd={name: link.endpoint for name, link in links.items()}).start()
    return c, links


async def _logged(node, text: str, before: int) -> bool:
    return node.log_text().count(text) > before


async def test_a_node_whose_role_fails_to_start_keeps_trying(tmp_path, etcd_fresh):
    """A listener that cannot be bound (here: the management port, taken) fails the node's
    role as it starts. The node says so and starts over; once the port is free it serves.
    A fault run saw a new leader's broker fail to start and the node then sit silent,
    neither leading nor following, while the cluster had no eligible leader."""
    import socket

    c = LocalCluster(tmp_path / "cluster", etcd_fresh.endpoint, n=1,
                     options="lease_ttl=2&min_insync=1&follower_timeout=1")
    node = c.nodes["n1"]
    taken = socket.socket()
    taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    taken.bind(("127.0.0.1", node.mgmt_port))
    taken.listen()
    try:
        # not waiting for its AMQP port: a node whose start fails listens only in moments
        c.start(wait=False)
        await c.wait(lambda: _logged(node, "a role failed; starting over", 1), 30,
                     "the node to report the failed start and try again")
        taken.close()
        leader = c.nodes[await c.wait_serving(size=1)]
        conn = await _connect(leader)
        await (await conn.channel()).declare_queue("after", durable=True)
        await conn.close()
        assert await publish_confirmed(leader.url, "after", [b"served"]) == [b"served"]
    finally:
        taken.close()
        await c.close()


async def test_declare_ok_means_the_definition_is_in_etcd(tmp_path, etcd_fresh):
    """RabbitMQ answers declare-ok once the queue is in its replicated metadata store;
    warren's leader once the definition is saved to etcd. Cut the leader off etcd: a
    declare is not answered OK (541 when the save fails, or the connection closes as the
    leader steps down at its lease), and the next leader indeed does not know that
    queue, while it knows the one declared before the cut."""
    c, links = _cuttable_cluster(tmp_path, etcd_fresh)
    try:
        first = await c.wait_serving(size=3)
        leader = c.nodes[first]
        conn = await _connect(leader)
        ch = await conn.channel()
        await ch.declare_queue("before-cut", durable=True)
        ex = await ch.declare_exchange("ev", aio_pika.ExchangeType.TOPIC, durable=True)
        ended = leader.log_text().count("stopped leading")
        links[first].cut()
        with pytest.raises((aio_pika.exceptions.AMQPException, ConnectionError, asyncio.TimeoutError)):
            # not answered OK: the save to etcd fails (541), or the term ends first
            await asyncio.wait_for(ch.declare_queue("during-cut", durable=True), 20)

        async def other_leader():
            lead = await c.leader()
            if lead is None or lead[0] == first:
                return None
            return lead[0] if f"serves as leader (token {lead[1]})" in c.nodes[lead[0]].log_text() else None

        await c.wait(lambda: _logged(leader, "stopped leading", ended), 15, "the cut-off leader to step down")
        new = c.nodes[await c.wait(other_leader, 30, "a leader other than the cut-off one")]
        links[first].heal()
        conn2 = await _connect(new)
        try:
            ch2 = await conn2.channel()
            await ch2.declare_queue("before-cut", passive=True)
            with pytest.raises(aio_pika.exceptions.ChannelNotFoundEntity):
                await ch2.declare_queue("during-cut", passive=True)
            # the other topology replies wait too (a bind), and the answers keep their order
            ch3 = await conn2.channel()
            q = await ch3.declare_queue("after", durable=True)
            await q.bind("ev", "k.#")
            assert ex.name == "ev"
        finally:
            await conn2.close()
        with contextlib.suppress(Exception):
            await conn.close()
    finally:
        await c.close()
        for link in links.values():
            link.close()


async def test_a_new_term_continues_the_log_without_a_full_resync(cluster3):
    """After a leader kill the follower left goes on in the new leader's log from where it
    was (its stores hold exactly what the new leader's do): no full resync. Records keep
    their names across terms: acks and a purge made by the new leader reach it, and a
    second failover (to a node that took them in the second term) serves exactly what
    was confirmed and not acked."""
    first = await cluster3.wait_serving(size=3)
    leader = cluster3.nodes[first]
    conn = await _connect(leader)
    ch = await conn.channel()
    await ch.declare_queue("jobs", durable=True)
    await ch.declare_queue("purged", durable=True)
    await conn.close()
    confirmed = await publish_confirmed(leader.url, "jobs", [f"a{i}".encode() for i in range(300)])
    await publish_confirmed(leader.url, "purged", [f"p{i}".encode() for i in range(50)])
    # a consumer acks 40 in the first term
    conn = await _connect(leader)
    ch = await conn.channel()
    q = await ch.declare_queue("jobs", durable=True, passive=True)
    acked = set()
    for _ in range(40):
        msg = await q.get(timeout=5)
        await msg.ack()
        acked.add(msg.body)
    await conn.close()
    marks = await publish_confirmed(leader.url, "jobs", [b"mark1"])  # orders the acks
    confirmed += marks

    leader.kill()
    second = await cluster3.wait(lambda: _new_leader(cluster3, first), 30, "a new leader")
    await cluster3.wait_serving(size=2)
    other = next(n for n in cluster3.nodes if n not in (first, second))
    assert "continues the log it followed" in cluster3.nodes[second].log_text()
    await cluster3.wait(lambda: _logged(cluster3.nodes[other], "continuing at seq", 0), 10,
                        "the follower continuing in the new log")
    assert f"full resync of {other}" not in cluster3.nodes[second].log_text()

    # the second term: acks of records named in the first, a purge before any publish to
    # that queue (covers the records it inherited), new records
    new = cluster3.nodes[second]
    conn = await _connect(new)
    ch = await conn.channel()
    q = await ch.declare_queue("jobs", durable=True, passive=True)
    for _ in range(30):
        msg = await q.get(timeout=5)
        await msg.ack()
        acked.add(msg.body)
    purged = await ch.declare_queue("purged", durable=True, passive=True)
    assert await purged.purge() is not None
    await conn.close()
    confirmed += await publish_confirmed(new.url, "jobs", [f"b{i}".encode() for i in range(100)])
    conn = await _connect(new)
    ch = await conn.channel()
    q = await ch.declare_queue("jobs", durable=True, passive=True)
    msgs = []
    while len(msgs) < 300:  # past the first term's records, into the second's
        msgs.append(await q.get(timeout=5))
    for msg in msgs[-20:]:
        await msg.ack()
        acked.add(msg.body)
    await conn.close()
    confirmed += await publish_confirmed(new.url, "jobs", [b"mark2"])

    # the third term, led by the node that continued (the killed one is still down)
    new.kill()
    third = await cluster3.wait(lambda: _new_leader(cluster3, second), 30, "a third leader")
    assert third == other
    await cluster3.wait(lambda: _serving(cluster3, third), 30, "the third leader serving")
    url = cluster3.nodes[third].url
    bodies = await _read_all(url, "jobs")
    assert len(bodies) == len(set(bodies))
    assert set(confirmed) - acked <= set(bodies)  # nothing confirmed is lost
    assert not set(bodies) & acked  # nothing acked comes back
    assert await _read_all(url, "purged") == []
