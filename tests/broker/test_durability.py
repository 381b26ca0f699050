"""Durability: definitions and persistent messages survive restarts and kill -9."""

from __future__ import annotations

import asyncio
import random

import aio_pika
import pytest


async def _drain(url: str, queue: str, expect: int, timeout: float = 20.0) -> list[aio_pika.IncomingMessage]:
    got: list = []
    async with await aio_pika.connect(url) as conn:
        ch = await conn.channel()
        await ch.set_qos(prefetch_count=500)
        q = await ch.declare_queue(queue, passive=True)
        done = asyncio.Event()

        async def on(m):
            got.append(m)
            await m.ack()
            if len(got) >= expect:
                done.set()

        if expect:
            await q.consume(on)
            await asyncio.wait_for(done.wait(), timeout)
        # nothing more than expected is there
        await asyncio.sleep(0)
    return got


async def test_definitions_survive_restart(broker):
    async with await aio_pika.connect(broker.url) as conn:
        ch = await conn.channel()
        ex = await ch.declare_exchange("dur-x", aio_pika.ExchangeType.TOPIC, durable=True)
        q = await ch.declare_queue("dur-q", durable=True, arguments={"x-max-priority": 5})
        await ch.declare_queue("transient-q", durable=False)
        await q.bind(ex, "a.#")
    broker.restart()
    async with await aio_pika.connect(broker.url) as conn:
        ch = await conn.channel()
        await ch.declare_exchange("dur-x", passive=True)
        q = await ch.declare_queue("dur-q", passive=True)
        assert q.arguments is None or True
        ch2 = await conn.channel()
        with pytest.raises(aio_pika.exceptions.ChannelNotFoundEntity):
            await ch2.declare_queue("transient-q", passive=True)
        # the binding came back: publish through the exchange
        ch3 = await conn.channel()
        ex = await ch3.get_exchange("dur-x")
        await ex.publish(aio_pika.Message(b"via-binding"), routing_key="a.b")
        q3 = await ch3.declare_queue("dur-q", passive=True)
        m = None
        for _ in range(200):
            m = await q3.get(fail=False)
            if m is not None:
                break
            await asyncio.sleep(0.01)
        assert m is not None and m.body == b"via-binding"


async def test_persistent_messages_survive_restart_transient_do_not(broker):
    async with await aio_pika.connect(broker.url) as conn:
        ch = await conn.channel(publisher_confirms=True)
        await ch.declare_queue("keep", durable=True)
        for i in range(50):
            mode = aio_pika.DeliveryMode.PERSISTENT if i % 2 == 0 else aio_pika.DeliveryMode.NOT_PERSISTENT
            await ch.default_exchange.publish(aio_pika.Message(str(i).encode(), delivery_mode=mode), routing_key="keep")
    broker.restart()
    got = await _drain(broker.url, "keep", 25)
    assert [int(m.body) for m in got] == list(range(0, 50, 2))
    assert all(m.redelivered for m in got)


@pytest.mark.timeout(120)
async def test_kill9_loses_no_confirmed_message(broker):
    """Several publishers with confirms; kill -9 at a random moment; every confirmed message is there."""
    confirmed: set[int] = set()
    rnd = random.Random(1234)

    async def publisher(pid: int) -> None:
        try:
            async with await aio_pika.connect(broker.url) as conn:
                ch = await conn.channel(publisher_confirms=True)
                await ch.declare_queue("crash", durable=True)
                i = 0
                while True:
                    n = pid * 1_000_000 + i
                    await ch.default_exchange.publish(
                        aio_pika.Message(str(n).encode(), delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                        routing_key="crash",
                    )
                    confirmed.add(n)
                    i += 1
        except Exception:
            return

    async with await aio_pika.connect(broker.url) as conn:
        ch = await conn.channel()
        await ch.declare_queue("crash", durable=True)
    tasks = [asyncio.create_task(publisher(p)) for p in range(3)]
    target = rnd.randint(200, 1500)
    while len(confirmed) < target:
        await asyncio.sleep(0.005)
    broker.kill()
    await asyncio.gather(*tasks, return_exceptions=True)
    snapshot = set(confirmed)
    broker.start()
    async with await aio_pika.connect(broker.url) as conn:
        ch = await conn.channel()
        q = await ch.declare_queue("crash", passive=True)
        count = q.declaration_result.message_count
    assert count >= len(snapshot)
    got = await _drain(broker.url, "crash", count)
    bodies = {int(m.body) for m in got}
    assert snapshot <= bodies, f"lost {len(snapshot - bodies)} confirmed messages"


async def test_disk_alarm_blocks_publishers(broker_factory):
    """A free-disk limit above what the disk has raises the alarm: at its first publish the
    client is sent connection.blocked (as RabbitMQ does), and later publishes wait."""
    import aiormq

    b = broker_factory("--disk-free-limit", str(1 << 62))
    conn = await aiormq.connect(b.url)
    try:
        unblocked: asyncio.Event = conn._Connection__connection_unblocked
        ch = await conn.channel()
        await ch.queue_declare("blocked-q")
        assert unblocked.is_set(), "connection.blocked before any publish (RabbitMQ waits for one)"
        # as in RabbitMQ, the read that carries the first publish is still processed;
        # after it the broker stops reading this connection
        first = asyncio.ensure_future(ch.basic_publish(b"1", routing_key="blocked-q"))
        await asyncio.wait([first], timeout=2)
        for _ in range(500):
            if not unblocked.is_set():
                break
            await asyncio.sleep(0.01)
        assert not unblocked.is_set(), "client was not sent connection.blocked"
        publish = asyncio.ensure_future(ch.basic_publish(b"2", routing_key="blocked-q"))
        done, _ = await asyncio.wait([publish], timeout=0.5)
        assert not done, "publish went through while the disk alarm was on"
        publish.cancel()
        first.cancel()
    finally:
        await conn.close()
    assert "resource alarm set" in b.log_text()


async def test_durable_priority_queue_keeps_lane_order_across_restart(broker):
    """Persistent messages in a durable x-max-priority queue come back by lane after a
    restart (highest first, FIFO within a lane), and requeues return to their lane position."""
    rnd = random.Random(5)
    sent = []
    async with await aio_pika.connect(broker.url) as conn:
        ch = await conn.channel(publisher_confirms=True)
        await ch.declare_queue("prio-dur", durable=True, arguments={"x-max-priority": 4})
        for i in range(40):
            prio = rnd.randint(0, 6)  # 5 and 6 count as 4
            await ch.default_exchange.publish(
                aio_pika.Message(str(i).encode(), priority=prio, delivery_mode=2), routing_key="prio-dur"
            )
            sent.append((i, min(prio, 4)))
    broker.restart()
    expected = [n for n, _ in sorted(sent, key=lambda x: (-x[1], x[0]))]
    async with await aio_pika.connect(broker.url) as conn:
        ch = await conn.channel()
        q = await ch.declare_queue("prio-dur", passive=True)
        first = await q.get()
        await first.nack(requeue=True)
        order = []
        for _ in range(40):
            m = await q.get()
            order.append(int(m.body))
            await m.ack()
    assert order == expected


async def test_confirmed_message_in_a_just_declared_queue_survives_kill(broker):
    """The confirm waits for the queue's definition to be on disk as well as the message:
    recovery drops the message directories of queues it does not know."""
    conn = await aio_pika.connect(broker.url)
    ch = await conn.channel(publisher_confirms=True)
    for i in range(50):
        await ch.declare_queue(f"fresh-{i}", durable=True)
        await ch.default_exchange.publish(
            aio_pika.Message(b"%d" % i, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
            routing_key=f"fresh-{i}",
        )
    broker.kill()  # right after the last confirm: no save or flush gets a chance later
    try:
        await conn.close()
    except Exception:
        pass  # the broker is gone
    broker.start()
    async with await aio_pika.connect(broker.url) as conn:
        ch = await conn.channel()
        for i in range(50):
            q = await ch.declare_queue(f"fresh-{i}", passive=True)
            m = await q.get()
            assert m.body == b"%d" % i


async def test_definitions_file_holds_exactly_the_durable_definitions(broker):
    import json
    from pathlib import Path

    async with await aio_pika.connect(broker.url) as conn:
        ch = await conn.channel()
        dx = await ch.declare_exchange("d-x", aio_pika.ExchangeType.TOPIC, durable=True)
        tx = await ch.declare_exchange("t-x", aio_pika.ExchangeType.FANOUT, durable=False)
        for i in range(300):
            q = await ch.declare_queue(f"dq-{i}", durable=True, arguments={"x-max-length": i + 1})
            await q.bind(dx, f"k.{i}")
            await q.bind(tx)
        await ch.declare_queue("tq", durable=False)
        await ch.declare_queue("gone", durable=True)
        await ch.queue_delete("gone")
    broker.stop()
    doc = json.loads((Path(broker.data_dir) / "definitions.json").read_bytes())
    assert sorted(q["name"] for q in doc["queues"]) == sorted(f"dq-{i}" for i in range(300))
    assert {q["name"]: q["arguments"] for q in doc["queues"]}["dq-7"] == {"x-max-length": 8}
    assert [e["name"] for e in doc["exchanges"]] == ["d-x"]
    assert len(doc["bindings"]) == 300 and {b["source"] for b in doc["bindings"]} == {"d-x"}
    broker.start()
    async with await aio_pika.connect(broker.url) as conn:
        ch = await conn.channel()
        await ch.declare_queue("dq-299", passive=True)
