"""Message lifecycle: TTL, dead-lettering (x-death), max-length/overflow, delivery limit,
single active consumer, consumer timeout, queue expiry, delayed messages, policies."""

from __future__ import annotations

import asyncio
import json
import time

import aio_pika
import aiormq
import pytest


async def _get(q: aio_pika.abc.AbstractQueue, timeout: float = 5.0) -> aio_pika.IncomingMessage:
    """Poll basic.get until a message arrives (bounded)."""
    deadline = time.monotonic() + timeout
    while True:
        m = await q.get(fail=False, no_ack=True)
        if m is not None:
            return m
        if time.monotonic() > deadline:
            raise TimeoutError("no message")
        await asyncio.sleep(0.01)


async def _setup(broker, **queue_args):
    conn = await aio_pika.connect(broker.url)
    ch = await conn.channel()
    dlx = await ch.declare_exchange("dlx", aio_pika.ExchangeType.FANOUT)
    dead = await ch.declare_queue("dead")
    await dead.bind(dlx)
    args = {"x-dead-letter-exchange": "dlx", **queue_args}
    q = await ch.declare_queue("work", arguments=args)
    return conn, ch, q, dead


async def test_queue_ttl_dead_letters_with_x_death(broker):
    conn, ch, q, dead = await _setup(broker, **{"x-message-ttl": 50})
    async with conn:
        await ch.default_exchange.publish(aio_pika.Message(b"old", headers={"a": 1}), routing_key="work")
        m = await _get(dead)
        assert m.body == b"old"
        death = m.headers["x-death"][0]
        assert death["reason"] == "expired"
        assert death["queue"] == "work"
        assert death["count"] == 1
        assert death["exchange"] == ""
        assert death["routing-keys"] == ["work"]
        assert m.headers["x-first-death-reason"] == "expired"
        assert m.headers["x-first-death-queue"] == "work"
        assert m.headers["x-first-death-exchange"] == ""
        assert m.headers["a"] == 1
        assert m.exchange == "dlx"
        assert (await q.declare()).message_count == 0


async def test_per_message_expiration_and_original_expiration(broker):
    conn, ch, q, dead = await _setup(broker)
    async with conn:
        await ch.default_exchange.publish(aio_pika.Message(b"x", expiration=0.05), routing_key="work")
        m = await _get(dead)
        assert m.headers["x-death"][0]["original-expiration"] == "50"
        assert m.expiration is None


async def test_invalid_expiration_is_406(broker):
    conn = await aiormq.connect(broker.url)
    try:
        chan = await conn.channel()
        await chan.queue_declare("q1")
        with pytest.raises(aiormq.exceptions.ChannelPreconditionFailed) as e:
            await chan.basic_publish(
                b"x", routing_key="q1", properties=aiormq.spec.Basic.Properties(expiration="abc")
            )
            await asyncio.wait_for(chan.closing, 5)
        assert "invalid expiration 'abc': no_integer" in str(e.value)
    finally:
        await conn.close()


async def test_zero_ttl_without_consumer_expires_at_once(broker):
    conn, ch, q, dead = await _setup(broker, **{"x-message-ttl": 0})
    async with conn:
        await ch.default_exchange.publish(aio_pika.Message(b"z"), routing_key="work")
        m = await _get(dead)
        assert m.headers["x-death"][0]["reason"] == "expired"


async def test_reject_dead_letters_with_reason_rejected(broker):
    conn, ch, q, dead = await _setup(broker)
    async with conn:
        await ch.default_exchange.publish(aio_pika.Message(b"r"), routing_key="work")
        m = await _get_ack(q)
        await m.reject(requeue=False)
        d = await _get(dead)
        assert d.headers["x-death"][0]["reason"] == "rejected"


async def _get_ack(q, timeout=5.0):
    deadline = time.monotonic() + timeout
    while True:
        m = await q.get(fail=False)
        if m is not None:
            return m
        if time.monotonic() > deadline:
            raise TimeoutError
        await asyncio.sleep(0.01)


async def test_max_length_drop_head(broker):
    conn, ch, q, dead = await _setup(broker, **{"x-max-length": 2})
    async with conn:
        for i in range(4):
            await ch.default_exchange.publish(aio_pika.Message(str(i).encode()), routing_key="work")
        assert (await _get(dead)).body == b"0"
        assert (await _get(dead)).body == b"1"
        assert (await _get(q)).body == b"2"
        assert (await _get(q)).body == b"3"


async def test_max_length_bytes(broker):
    conn, ch, q, dead = await _setup(broker, **{"x-max-length-bytes": 10})
    async with conn:
        for body in (b"aaaaa", b"bbbbb", b"ccccc"):
            await ch.default_exchange.publish(aio_pika.Message(body), routing_key="work")
        assert (await _get(dead)).headers["x-death"][0]["reason"] == "maxlen"
        assert (await q.declare()).message_count == 2


async def test_reject_publish_nacks_publisher(broker):
    async with await aio_pika.connect(broker.url) as conn:
        ch = await conn.channel(publisher_confirms=True)
        await ch.declare_queue("lim", arguments={"x-max-length": 1, "x-overflow": "reject-publish"})
        await ch.default_exchange.publish(aio_pika.Message(b"1"), routing_key="lim")
        with pytest.raises(aio_pika.exceptions.DeliveryError):
            await ch.default_exchange.publish(aio_pika.Message(b"2"), routing_key="lim")


async def test_reject_publish_dlx(broker):
    conn, ch, q, dead = await _setup(broker, **{"x-max-length": 1, "x-overflow": "reject-publish-dlx"})
    async with conn:
        await ch.default_exchange.publish(aio_pika.Message(b"1"), routing_key="work")
        with pytest.raises(aio_pika.exceptions.DeliveryError):  # nacked, and dead-lettered
            await ch.default_exchange.publish(aio_pika.Message(b"2"), routing_key="work")
        d = await _get(dead)
        assert d.body == b"2"
        assert (await _get(q)).body == b"1"


async def test_delivery_limit_dead_letters_poison_message(broker):
    conn, ch, q, dead = await _setup(broker, **{"x-delivery-limit": 2})
    async with conn:
        await ch.default_exchange.publish(aio_pika.Message(b"poison"), routing_key="work")
        counts = []
        for _ in range(3):
            m = await _get_ack(q)
            counts.append((m.headers or {}).get("x-delivery-count", 0))
            await m.nack(requeue=True)
        d = await _get(dead)
        assert d.headers["x-death"][0]["reason"] == "delivery_limit"
        assert counts == [0, 1, 2]
        assert await q.get(fail=False) is None


async def test_single_active_consumer(broker):
    async with await aio_pika.connect(broker.url) as conn:
        ch = await conn.channel()
        q = await ch.declare_queue("sac", arguments={"x-single-active-consumer": True})
        got: dict[str, list] = {"a": [], "b": []}
        done = asyncio.Event()

        def cb(name):
            async def f(m):
                got[name].append(m.body)
                await m.ack()
                if sum(len(v) for v in got.values()) == 6:
                    done.set()
            return f

        ta = await q.consume(cb("a"))
        await q.consume(cb("b"))
        for i in range(3):
            await ch.default_exchange.publish(aio_pika.Message(str(i).encode()), routing_key="sac")
        await asyncio.wait_for(_until(lambda: len(got["a"]) == 3), 5)
        assert got["b"] == []
        await q.cancel(ta)
        for i in range(3, 6):
            await ch.default_exchange.publish(aio_pika.Message(str(i).encode()), routing_key="sac")
        await asyncio.wait_for(done.wait(), 5)
        assert got["b"] == [b"3", b"4", b"5"]


async def _until(pred, step=0.01):
    while not pred():
        await asyncio.sleep(step)


async def test_consumer_timeout_closes_channel(broker_factory):
    b = broker_factory("--consumer-timeout", "200")
    async with await aio_pika.connect(b.url) as conn:
        ch = await conn.channel()
        q = await ch.declare_queue("slow")
        closed = asyncio.get_running_loop().create_future()
        ch.close_callbacks.add(lambda _ch, exc: closed.done() or closed.set_result(exc))
        async def never_ack(_m: aio_pika.abc.AbstractIncomingMessage) -> None:
            pass

        await q.consume(never_ack)
        await ch.default_exchange.publish(aio_pika.Message(b"x"), routing_key="slow")
        exc = await asyncio.wait_for(closed, 5)
        assert "delivery acknowledgement on channel" in str(exc)
        # the message went back to the queue
        ch2 = await conn.channel()
        q2 = await ch2.declare_queue("slow", passive=True)
        m = await _get(q2)
        assert m.redelivered


async def test_queue_expires_when_unused(broker):
    async with await aio_pika.connect(broker.url) as conn:
        ch = await conn.channel()
        await ch.declare_queue("gone", arguments={"x-expires": 100})
        deadline = time.monotonic() + 5
        while True:
            ch2 = await conn.channel()
            try:
                await ch2.declare_queue("gone", passive=True)
            except aiormq.exceptions.ChannelNotFoundEntity:
                break
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)


async def test_invalid_argument_types_are_406(broker):
    async with await aio_pika.connect(broker.url) as conn:
        for args, text in (
            ({"x-message-ttl": "soon"}, "invalid arg 'x-message-ttl' for queue 'bad' in vhost '/'"),
            ({"x-max-length": -1}, "invalid arg 'x-max-length'"),
            ({"x-overflow": "explode"}, "invalid arg 'x-overflow'"),
            ({"x-max-priority": 300}, "invalid arg 'x-max-priority'"),
        ):
            ch = await conn.channel()
            with pytest.raises(aiormq.exceptions.ChannelPreconditionFailed) as e:
                await ch.declare_queue("bad", arguments=args)
            assert text in str(e.value)


async def test_delayed_exchange_routes_when_due(broker):
    async with await aio_pika.connect(broker.url) as conn:
        ch = await conn.channel()
        ex = await ch.declare_exchange(
            "delayed", "x-delayed-message", arguments={"x-delayed-type": "direct"}
        )
        q = await ch.declare_queue("later")
        await q.bind(ex, "k")
        t0 = time.monotonic()
        await ex.publish(aio_pika.Message(b"slow", headers={"x-delay": 300}), routing_key="k")
        await ex.publish(aio_pika.Message(b"now"), routing_key="k")
        first = await _get(q)
        assert first.body == b"now"
        second = await _get(q)
        assert second.body == b"slow"
        assert time.monotonic() - t0 >= 0.29
        assert second.headers["x-delay"] == -300


async def test_delayed_exchange_mandatory_at_publish_time(broker):
    async with await aio_pika.connect(broker.url) as conn:
        ch = await conn.channel()
        ex = await ch.declare_exchange("dm", "x-delayed-message", arguments={"x-delayed-type": "topic"})
        returned = asyncio.get_running_loop().create_future()
        ch.return_callbacks.add(lambda _c, m: returned.done() or returned.set_result(m))
        await ex.publish(aio_pika.Message(b"x", headers={"x-delay": 10000}), routing_key="nobody", mandatory=True)
        m = await asyncio.wait_for(returned, 5)
        assert m.body == b"x"


async def test_delayed_exchange_requires_type(broker):
    async with await aio_pika.connect(broker.url) as conn:
        ch = await conn.channel()
        with pytest.raises(aiormq.exceptions.ChannelPreconditionFailed):
            await ch.declare_exchange("dm2", "x-delayed-message")


async def test_policy_from_definitions_file(tmp_path, broker_factory):
    defs = {
        "policies": [
            {"vhost": "/", "name": "ttl", "pattern": "^short\\.", "apply-to": "queues",
             "definition": {"message-ttl": 50, "dead-letter-exchange": "amq.fanout"}, "priority": 0}
        ]
    }
    path = tmp_path / "defs.json"
    path.write_text(json.dumps(defs))
    b = broker_factory("--definitions", str(path))
    async with await aio_pika.connect(b.url) as conn:
        ch = await conn.channel()
        dead = await ch.declare_queue("dead-box")
        await dead.bind("amq.fanout")
        await ch.declare_queue("short.lived")
        await ch.default_exchange.publish(aio_pika.Message(b"p"), routing_key="short.lived")
        m = await _get(dead)
        assert m.headers["x-death"][0]["queue"] == "short.lived"


async def test_retry_with_backoff_recipe(broker):
    """The README recipe: work queue -> reject -> delayed retry -> work queue, with a delivery limit."""
    async with await aio_pika.connect(broker.url) as conn:
        ch = await conn.channel()
        retry = await ch.declare_exchange("retry", "x-delayed-message", arguments={"x-delayed-type": "direct"})
        parking = await ch.declare_queue("parking")
        dlx = await ch.declare_exchange("parking-x", aio_pika.ExchangeType.FANOUT)
        await parking.bind(dlx)
        work = await ch.declare_queue(
            "jobs", arguments={"x-dead-letter-exchange": "parking-x", "x-delivery-limit": 5}
        )
        await work.bind(retry, "jobs")
        await ch.default_exchange.publish(aio_pika.Message(b"job", headers={"attempt": 0}), routing_key="jobs")
        attempts = []
        for attempt in range(3):
            m = await _get_ack(work)
            attempts.append(m.headers.get("attempt"))
            # failed: republish with a growing delay, ack the original
            await retry.publish(
                aio_pika.Message(m.body, headers={"attempt": attempt + 1, "x-delay": 20 * 2**attempt}),
                routing_key="jobs",
            )
            await m.ack()
        m = await _get_ack(work)
        attempts.append(m.headers.get("attempt"))
        await m.reject(requeue=False)  # give up: parked with x-death
        parked = await _get(parking)
        assert attempts == [0, 1, 2, 3]
        assert parked.headers["x-death"][0]["reason"] == "rejected"
