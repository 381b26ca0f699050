"""Queues: naming, passive/durable/exclusive/auto-delete, bind/unbind, purge, delete
preconditions, DeclareOk counts, argument validation and x-max-priority."""

import asyncio

import aio_pika
import aiormq
import pytest
from pamqp import commands as C

E = aiormq.exceptions

LOCKED = (
    "RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '{}' in vhost '/'. "
    "It could be originally declared on another connection or the exclusive property "
    "value does not match that of the original declaration."
)


async def _noop(_message) -> None:
    return None


async def test_server_named_queue(broker):
    conn = await aiormq.connect(broker.url)
    try:
        ch = await conn.channel()
        ok = await ch.queue_declare("", exclusive=True)
        assert ok.queue.startswith("amq.gen-") and len(ok.queue) > len("amq.gen-") + 10
        ok2 = await ch.queue_declare("", exclusive=True)
        assert ok2.queue != ok.queue
        # the server-named queue is usable by name
        await ch.basic_publish(b"x", routing_key=ok.queue)
        ok3 = await ch.queue_declare(ok.queue, passive=True)
        assert ok3.message_count == 1
    finally:
        await conn.close()


async def test_passive_missing_404(broker):
    conn = await aio_pika.connect(broker.url)
    async with conn:
        ch = await conn.channel()
        with pytest.raises(E.ChannelNotFoundEntity) as ei:
            await ch.declare_queue("x", passive=True)
        assert ei.value.args[0] == "NOT_FOUND - no queue 'x' in vhost '/'"


async def test_reserved_prefix_403(broker):
    conn = await aio_pika.connect(broker.url)
    async with conn:
        ch = await conn.channel()
        with pytest.raises(E.ChannelAccessRefused) as ei:
            await ch.declare_queue("amq.foo")
        assert ei.value.args[0] == "ACCESS_REFUSED - queue name 'amq.foo' contains reserved prefix 'amq.*'"
        # passive is a lookup: 404, not 403
        ch = await conn.channel()
        with pytest.raises(E.ChannelNotFoundEntity):
            await ch.declare_queue("amq.foo", passive=True)


async def test_declare_ok_counts(broker):
    conn = await aiormq.connect(broker.url)
    try:
        ch = await conn.channel()
        ok = await ch.queue_declare("counts")
        assert (ok.message_count, ok.consumer_count) == (0, 0)
        await ch.confirm_delivery()
        for _ in range(3):
            await ch.basic_publish(b"m", routing_key="counts")
        ch2 = await conn.channel()
        await ch2.basic_qos(prefetch_count=1)
        await ch2.basic_consume("counts", lambda m: None)
        await ch2.basic_consume("counts", lambda m: None)
        ok = await ch.queue_declare("counts")
        # two deliveries outstanding (one per consumer, prefetch 1): one message still ready
        assert ok.consumer_count == 2
        assert ok.message_count == 1
        ok = await ch.queue_declare("counts", passive=True)
        assert (ok.message_count, ok.consumer_count) == (1, 2)
    finally:
        await conn.close()


@pytest.mark.parametrize(
    "kw,arg,received,current",
    [
        ({"durable": True}, "durable", "'true'", "'false'"),
        ({"auto_delete": True}, "auto_delete", "'true'", "'false'"),
        ({"arguments": {"x-message-ttl": 5}}, "x-message-ttl", "'5'", "'100000'"),
        ({"arguments": {"x-message-ttl": 100000, "x-dead-letter-exchange": "b"}}, "x-dead-letter-exchange", "'b'", "'a'"),
    ],
)
async def test_inequivalent_redeclare_406(broker, kw, arg, received, current):
    conn = await aiormq.connect(broker.url)
    try:
        ch = await conn.channel()
        base = {"x-message-ttl": 100000, "x-dead-letter-exchange": "a"}
        await ch.queue_declare("ineq", arguments=base)
        kw = dict(kw)
        kw.setdefault("arguments", base)
        with pytest.raises(E.ChannelPreconditionFailed) as ei:
            await ch.queue_declare("ineq", **kw)
        assert ei.value.args[0] == (
            f"PRECONDITION_FAILED - inequivalent arg '{arg}' for queue 'ineq' in vhost '/': "
            f"received {received} but current is {current}"
        )
    finally:
        await conn.close()


async def test_inequivalent_missing_argument_406(broker):
    conn = await aiormq.connect(broker.url)
    try:
        ch = await conn.channel()
        await ch.queue_declare("prio", arguments={"x-max-priority": 5})
        with pytest.raises(E.ChannelPreconditionFailed) as ei:
            await ch.queue_declare("prio")
        assert ei.value.args[0].startswith(
            "PRECONDITION_FAILED - inequivalent arg 'x-max-priority' for queue 'prio' in vhost '/': "
            "received none but current is the value '5' of type '"
        )
    finally:
        await conn.close()


async def test_inequivalent_names_wire_type(broker):
    conn = await aiormq.connect(broker.url)
    try:
        ch = await conn.channel()
        await ch.queue_declare("prio", arguments={"x-max-priority": 5})
        with pytest.raises(E.ChannelPreconditionFailed) as ei:
            await ch.queue_declare("prio")
        assert ei.value.args[0].endswith("received none but current is the value '5' of type 'byte'")
    finally:
        await conn.close()


@pytest.mark.parametrize(
    "args,detail",
    [
        ({"x-max-priority": 300}, "{max_value_exceeded,300}"),
        ({"x-max-priority": -1}, "{value_negative,-1}"),
        ({"x-max-priority": "x"}, '"expected integer, got longstr"'),
        ({"x-message-ttl": -1}, "{value_negative,-1}"),
        ({"x-message-ttl": "x"}, '"expected integer, got longstr"'),
        ({"x-expires": 0}, "{value_zero,0}"),
        ({"x-max-length": -1}, "{value_negative,-1}"),
        ({"x-overflow": "bad"}, "invalid_overflow"),
        ({"x-queue-mode": "bad"}, "\"unsupported queue mode 'bad'\""),
        ({"x-single-active-consumer": "x"}, "{unacceptable_type,longstr}"),
        ({"x-dead-letter-routing-key": "k"}, "routing_key_but_no_dlx_defined"),
    ],
)
async def test_invalid_arguments_406(broker, args, detail):
    conn = await aiormq.connect(broker.url)
    try:
        ch = await conn.channel()
        with pytest.raises(E.ChannelPreconditionFailed) as ei:
            await ch.queue_declare("badarg", arguments=args)
        key = next(iter(args))
        assert ei.value.args[0] == (
            f"PRECONDITION_FAILED - invalid arg '{key}' for queue 'badarg' in vhost '/': {detail}"
        )
    finally:
        await conn.close()


async def test_durable_queue_declared(broker):
    conn = await aio_pika.connect(broker.url)
    async with conn:
        ch = await conn.channel()
        q = await ch.declare_queue("dq", durable=True)
        q2 = await ch.declare_queue("dq", durable=True)
        assert q2.name == q.name
        await ch.declare_queue("dq", passive=True)


async def test_exclusive_queue_locked_from_other_connection(broker):
    c1 = await aiormq.connect(broker.url)
    c2 = await aiormq.connect(broker.url)
    try:
        ch1 = await c1.channel()
        await ch1.queue_declare("exq", exclusive=True)
        ops = [
            lambda ch: ch.queue_declare("exq", passive=True),
            lambda ch: ch.queue_declare("exq", exclusive=True),
            lambda ch: ch.queue_declare("exq"),
            lambda ch: ch.basic_consume("exq", lambda m: None),
            lambda ch: ch.basic_get("exq"),
            lambda ch: ch.queue_purge("exq"),
            lambda ch: ch.queue_delete("exq"),
            lambda ch: ch.queue_bind("exq", "amq.direct", routing_key="k"),
        ]
        for op in ops:
            ch = await c2.channel()
            with pytest.raises(E.ChannelLockedResource) as ei:
                await op(ch)
            assert ei.value.args[0] == LOCKED.format("exq")
        # the owner is unaffected
        ok = await ch1.queue_declare("exq", exclusive=True)
        assert ok.queue == "exq"
        # exclusive mismatch on the owner's connection is also 405
        ch1b = await c1.channel()
        with pytest.raises(E.ChannelLockedResource):
            await ch1b.queue_declare("exq")
    finally:
        await c1.close()
        await c2.close()


async def test_exclusive_queue_deleted_with_its_connection(broker):
    c1 = await aio_pika.connect(broker.url)
    ch = await c1.channel()
    await ch.declare_queue("gone-with-conn", exclusive=True)
    await c1.close()
    c2 = await aio_pika.connect(broker.url)
    async with c2:
        ch = await c2.channel()
        with pytest.raises(E.ChannelNotFoundEntity):
            await ch.declare_queue("gone-with-conn", passive=True)
        # and the name is free again for someone else
        await (await c2.channel()).declare_queue("gone-with-conn", exclusive=True)


async def test_auto_delete_when_last_consumer_cancels(broker):
    conn = await aio_pika.connect(broker.url)
    async with conn:
        ch = await conn.channel()
        q = await ch.declare_queue("adq", auto_delete=True)
        # never consumed: stays
        await ch.declare_queue("adq", passive=True)
        t1 = await q.consume(_noop, no_ack=True)
        t2 = await q.consume(_noop, no_ack=True)
        await q.cancel(t1)
        await ch.declare_queue("adq", passive=True)  # one consumer left
        await q.cancel(t2)
        with pytest.raises(E.ChannelNotFoundEntity):
            await ch.declare_queue("adq", passive=True)


async def test_auto_delete_when_consumer_channel_closes(broker):
    conn = await aio_pika.connect(broker.url)
    async with conn:
        ch = await conn.channel()
        q = await ch.declare_queue("adq2", auto_delete=True)
        await q.consume(_noop, no_ack=True)
        await ch.close()
        ch = await conn.channel()
        with pytest.raises(E.ChannelNotFoundEntity):
            await ch.declare_queue("adq2", passive=True)


async def test_bind_unbind(broker):
    conn = await aio_pika.connect(broker.url)
    async with conn:
        ch = await conn.channel(publisher_confirms=True)
        ex = await ch.declare_exchange("bx", "direct")
        q = await ch.declare_queue("bq", exclusive=True)
        await q.bind(ex, "k1")
        await q.bind(ex, "k2")
        await ex.publish(aio_pika.Message(b"1"), "k1")
        await ex.publish(aio_pika.Message(b"2"), "k2")
        await q.unbind(ex, "k1")
        await ex.publish(aio_pika.Message(b"3"), "k1")
        await ex.publish(aio_pika.Message(b"4"), "k2")
        got = []
        while (m := await q.get(no_ack=True, fail=False)) is not None:
            got.append(m.body)
        assert got == [b"1", b"2", b"4"]


async def test_unbind_missing_is_ok(broker):
    conn = await aiormq.connect(broker.url)
    try:
        ch = await conn.channel()
        await ch.queue_declare("uq", exclusive=True)
        assert isinstance(await ch.queue_unbind("nx", "amq.direct", routing_key="k"), C.Queue.UnbindOk)
        assert isinstance(await ch.queue_unbind("uq", "nx", routing_key="k"), C.Queue.UnbindOk)
        with pytest.raises(E.ChannelAccessRefused):
            await ch.queue_unbind("uq", "", routing_key="k")
    finally:
        await conn.close()


async def test_purge(broker):
    conn = await aiormq.connect(broker.url)
    try:
        ch = await conn.channel()
        await ch.confirm_delivery()
        await ch.queue_declare("pq")
        for i in range(5):
            await ch.basic_publish(str(i).encode(), routing_key="pq")
        # one unacked delivery is not purged
        got = await ch.basic_get("pq")
        assert got.body == b"0"
        ok = await ch.queue_purge("pq")
        assert ok.message_count == 4
        ok = await ch.queue_declare("pq", passive=True)
        assert ok.message_count == 0
        await ch.basic_reject(got.delivery.delivery_tag, requeue=True)
        again = await ch.basic_get("pq", no_ack=True)
        assert again.body == b"0" and again.delivery.redelivered
        with pytest.raises(E.ChannelNotFoundEntity) as ei:
            await ch.queue_purge("nx")
        assert ei.value.args[0] == "NOT_FOUND - no queue 'nx' in vhost '/'"
    finally:
        await conn.close()


async def test_delete_if_unused_and_if_empty(broker):
    conn = await aiormq.connect(broker.url)
    try:
        ch = await conn.channel()
        await ch.confirm_delivery()
        await ch.queue_declare("dq")
        await ch.basic_publish(b"x", routing_key="dq")
        with pytest.raises(E.ChannelPreconditionFailed) as ei:
            await ch.queue_delete("dq", if_empty=True)
        assert ei.value.args[0] == "PRECONDITION_FAILED - queue 'dq' in vhost '/' not empty"
        ch = await conn.channel()
        await ch.queue_purge("dq")
        ch2 = await conn.channel()
        await ch2.basic_consume("dq", lambda m: None)
        with pytest.raises(E.ChannelPreconditionFailed) as ei:
            await ch.queue_delete("dq", if_unused=True)
        assert ei.value.args[0] == "PRECONDITION_FAILED - queue 'dq' in vhost '/' in use"
        ch = await conn.channel()
        ok = await ch.queue_delete("dq", if_empty=True)
        assert ok.message_count == 0
        with pytest.raises(E.ChannelNotFoundEntity):
            await ch.queue_declare("dq", passive=True)
    finally:
        await conn.close()


async def test_delete_returns_message_count_and_missing_is_ok(broker):
    conn = await aiormq.connect(broker.url)
    try:
        ch = await conn.channel()
        await ch.confirm_delivery()
        await ch.queue_declare("dq2")
        for _ in range(3):
            await ch.basic_publish(b"x", routing_key="dq2")
        ok = await ch.queue_delete("dq2")
        assert ok.message_count == 3
        ok = await ch.queue_delete("dq2")
        assert isinstance(ok, C.Queue.DeleteOk) and ok.message_count == 0
    finally:
        await conn.close()


async def test_max_priority_ordering(broker):
    conn = await aio_pika.connect(broker.url)
    async with conn:
        ch = await conn.channel(publisher_confirms=True)
        q = await ch.declare_queue("prioq", arguments={"x-max-priority": 5})
        # (priority, body); priorities above the max count as the max; none counts as 0
        sends = [(None, "n0"), (1, "p1a"), (5, "p5a"), (3, "p3"), (9, "p9"), (1, "p1b"), (5, "p5b"), (0, "p0")]
        for prio, body in sends:
            await ch.default_exchange.publish(aio_pika.Message(body.encode(), priority=prio), "prioq")
        got = []
        while (m := await q.get(no_ack=True, fail=False)) is not None:
            got.append(m.body.decode())
        assert got == ["p5a", "p9", "p5b", "p3", "p1a", "p1b", "n0", "p0"]


async def test_max_priority_to_consumer(broker):
    conn = await aio_pika.connect(broker.url)
    async with conn:
        ch = await conn.channel(publisher_confirms=True)
        q = await ch.declare_queue("prioc", arguments={"x-max-priority": 10})
        for i, prio in enumerate([1, 10, 5, 0, 10]):
            await ch.default_exchange.publish(aio_pika.Message(f"{prio}-{i}".encode(), priority=prio), "prioc")
        got = []
        done = asyncio.Event()

        async def on(m):
            got.append(m.body.decode())
            await m.ack()
            if len(got) == 5:
                done.set()

        await q.consume(on)
        await asyncio.wait_for(done.wait(), 5)
        assert got == ["10-1", "10-4", "5-2", "1-0", "0-3"]
