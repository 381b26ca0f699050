"""x-queue-type quorum: a durable queue with quorum queues' rules and behaviour.

Declare checks (texts from RabbitMQ 3.10), every message stored durably whatever
its delivery mode, returned messages at the back with x-delivery-count, global
QoS refused, the type in the management API, policies applied by queue type.
The differential version runs in interop/test_quorum.py.
"""

from __future__ import annotations

import aio_pika
import aiohttp
import aiormq
import pytest

from tests.brokerproc import wait_port

Q = {"x-queue-type": "quorum"}


async def _declare_error(conn, name: str, **kw) -> str:
    ch = await conn.channel()
    with pytest.raises(aiormq.exceptions.ChannelPreconditionFailed) as info:
        await ch.declare_queue(name, **kw)
    return info.value.args[0]


async def test_declare_rules(broker):
    async with await aio_pika.connect(broker.url) as conn:
        ch = await conn.channel()
        q = await ch.declare_queue("qq", durable=True, arguments=Q)
        assert q.name == "qq"
        assert await _declare_error(conn, "qa", durable=False, arguments=Q) == (
            "PRECONDITION_FAILED - invalid property 'non-durable' for queue 'qa' in vhost '/'"
        )
        assert await _declare_error(conn, "qb", durable=True, exclusive=True, arguments=Q) == (
            "PRECONDITION_FAILED - invalid property 'exclusive-owner' for queue 'qb' in vhost '/'"
        )
        assert await _declare_error(conn, "qc", durable=True, auto_delete=True, arguments=Q) == (
            "PRECONDITION_FAILED - invalid property 'auto-delete' for queue 'qc' in vhost '/'"
        )
        assert await _declare_error(conn, "", durable=True, arguments=Q) == (
            "PRECONDITION_FAILED - Cannot declare a server-named queue for type rabbit_quorum_queue"
        )
        assert await _declare_error(
            conn, "qd", durable=False, arguments={**Q, "x-max-priority": 3}
        ) == (
            "PRECONDITION_FAILED - invalid arg 'x-max-priority' for queue 'qd' in vhost '/' "
            "of queue type rabbit_quorum_queue"
        )
        assert await _declare_error(conn, "qq", durable=True) == (
            "PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue 'qq' in vhost '/': "
            "received none but current is the value 'quorum' of type 'longstr'"
        )
        assert await _declare_error(conn, "qe", durable=True, arguments={"x-queue-type": "foo"}) == (
            "PRECONDITION_FAILED - invalid arg 'x-queue-type' for queue 'qe' in vhost '/': "
            "\"unsupported queue type 'foo'\""
        )
        # a classic queue redeclared with an explicit "classic" is the same queue
        ch = await conn.channel()
        await ch.declare_queue("cl", durable=True)
        await ch.declare_queue("cl", durable=True, arguments={"x-queue-type": "classic"})


async def test_transient_messages_survive_kill(broker):
    async with await aio_pika.connect(broker.url) as conn:
        ch = await conn.channel(publisher_confirms=True)
        await ch.declare_queue("qk", durable=True, arguments=Q)
        for i in range(20):
            mode = aio_pika.DeliveryMode.NOT_PERSISTENT if i % 2 else aio_pika.DeliveryMode.PERSISTENT
            await ch.default_exchange.publish(
                aio_pika.Message(str(i).encode(), delivery_mode=mode), routing_key="qk"
            )
    broker.kill()
    broker.start()
    async with await aio_pika.connect(broker.url) as conn:
        ch = await conn.channel()
        q = await ch.declare_queue("qk", durable=True, arguments=Q)
        bodies = []
        while (m := await q.get(fail=False)) is not None:
            bodies.append(int(m.body))
            # delivery mode as published: the queue stores it durably, it does not rewrite it
            assert m.delivery_mode == (1 if int(m.body) % 2 else 2)
            await m.ack()
        assert bodies == list(range(20))


async def test_returns_go_to_the_back_and_count(broker):
    async with await aio_pika.connect(broker.url) as conn:
        ch = await conn.channel()
        q = await ch.declare_queue("qr", durable=True, arguments=Q)
        for b in (b"a", b"b", b"c"):
            await ch.default_exchange.publish(aio_pika.Message(b), routing_key="qr")
        m = await q.get()
        assert (m.body, m.headers["x-delivery-count"], m.redelivered) == (b"a", 0, False)
        await m.nack(requeue=True)
        got = []
        for _ in range(3):
            m = await q.get()
            got.append((m.body, m.headers["x-delivery-count"], m.redelivered))
            await m.ack()
        assert got == [(b"b", 0, False), (b"c", 0, False), (b"a", 1, True)]


async def test_returned_message_and_its_count_survive_kill(broker):
    async with await aio_pika.connect(broker.url) as conn:
        ch = await conn.channel(publisher_confirms=True)
        q = await ch.declare_queue("qs", durable=True, arguments=Q)
        await ch.default_exchange.publish(aio_pika.Message(b"x"), routing_key="qs")
        for _ in range(2):
            m = await q.get()
            await m.reject(requeue=True)
        # a confirm on this channel waits for the fsync that covers the requeued copy
        await ch.default_exchange.publish(aio_pika.Message(b"y"), routing_key="qs")
    broker.kill()
    broker.start()
    async with await aio_pika.connect(broker.url) as conn:
        ch = await conn.channel()
        q = await ch.declare_queue("qs", durable=True, arguments=Q)
        got = []
        while (m := await q.get(fail=False)) is not None:
            got.append((m.body, m.headers["x-delivery-count"]))
            await m.ack()
        # the returned copy with its count, once: the old copies' acks were written
        # before the confirm of y was sent
        assert got == [(b"x", 2), (b"y", 0)]


async def test_global_qos_is_refused_on_consume(broker):
    conn = await aiormq.connect(broker.url)
    try:
        ch = await conn.channel()
        await ch.queue_declare("qg", durable=True, arguments=Q)
        await ch.basic_qos(prefetch_count=5, global_=True)
        with pytest.raises(aiormq.exceptions.ConnectionNotImplemented) as info:
            await ch.basic_consume("qg", lambda m: None)
        assert info.value.args[0] == "NOT_IMPLEMENTED - queue 'qg' in vhost '/' does not support global qos"
    finally:
        if not conn.is_closed:
            await conn.close()
    # others are unaffected, and per-consumer QoS works
    async with await aio_pika.connect(broker.url) as c2:
        ch = await c2.channel()
        await ch.set_qos(prefetch_count=5)
        q = await ch.declare_queue("qg", durable=True, arguments=Q)
        await q.consume(_ignore)


async def _ignore(_m: aio_pika.abc.AbstractIncomingMessage) -> None:
    pass


async def test_management_type_and_policy_by_queue_type(broker):
    async with await aio_pika.connect(broker.url) as conn:
        ch = await conn.channel()
        await ch.declare_queue("pq", durable=True, arguments=Q)
        await ch.declare_queue("pc", durable=True)
    wait_port(broker.mgmt_port)
    base = f"http://127.0.0.1:{broker.mgmt_port}"
    auth = {"Authorization": aiohttp.encode_basic_auth("guest", "guest")}
    async with aiohttp.ClientSession(headers=auth) as http:
        async with http.put(
            f"{base}/api/policies/%2F/lim",
            json={"pattern": "^p", "definition": {"max-length": 1}, "apply-to": "quorum_queues"},
        ) as r:
            assert r.status in (201, 204)
        async with http.get(f"{base}/api/queues/%2F/pq") as r:
            pq = await r.json()
        async with http.get(f"{base}/api/queues/%2F/pc") as r:
            pc = await r.json()
    assert (pq["type"], pq["policy"]) == ("quorum", "lim")
    assert (pc["type"], pc["policy"]) == ("classic", None)


async def test_management_put_applies_quorum_rules(broker):
    wait_port(broker.mgmt_port)
    base = f"http://127.0.0.1:{broker.mgmt_port}/api/queues/%2F"
    auth = {"Authorization": aiohttp.encode_basic_auth("guest", "guest")}
    async with aiohttp.ClientSession(headers=auth) as http:
        async with http.put(f"{base}/mq", json={"durable": False, "arguments": Q}) as r:
            assert r.status == 400
            assert (await r.json())["reason"] == "invalid property 'non-durable' for queue 'mq' in vhost '/'"
        async with http.put(f"{base}/mq", json={"durable": True, "arguments": Q}) as r:
            assert r.status == 201
        async with http.get(f"{base}/mq") as r:
            assert (await r.json())["type"] == "quorum"
