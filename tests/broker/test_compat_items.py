"""Behaviours real clients hit where warren differed from RabbitMQ 3.10 (issue 8 items
3, 5, 6, 8, 9), driven through aio-pika and pika. interop/test_wire_sweep.py compares the
same cases byte for byte against RabbitMQ."""

from __future__ import annotations

import asyncio

import aio_pika
import pika
import pika.exceptions
import pytest


# ---------------------------------------------------------------- item 3
async def test_no_ack_consumer_ignores_prefetch(broker):
    """A no-ack consumer on a channel with basic.qos prefetch_count=1 gets every message."""
    conn = await aio_pika.connect(broker.url)
    async with conn:
        ch = await conn.channel()
        await ch.set_qos(prefetch_count=1)
        q = await ch.declare_queue("", exclusive=True)
        got: list[bytes] = []
        done = asyncio.Event()

        async def on_message(msg: aio_pika.abc.AbstractIncomingMessage) -> None:
            got.append(msg.body)
            if len(got) == 5:
                done.set()

        for i in range(5):  # a backlog first: the consumer must drain it without acking
            await ch.default_exchange.publish(aio_pika.Message(b"%d" % i), routing_key=q.name)
        await q.consume(on_message, no_ack=True)
        await asyncio.wait_for(done.wait(), 10)
        assert got == [b"0", b"1", b"2", b"3", b"4"]


async def test_prefetch_still_limits_ack_consumers(broker):
    """The fix does not touch consumers that ack: prefetch 1 still holds the second message."""
    conn = await aio_pika.connect(broker.url)
    async with conn:
        ch = await conn.channel()
        await ch.set_qos(prefetch_count=1)
        q = await ch.declare_queue("", exclusive=True)
        first: asyncio.Queue = asyncio.Queue()
        await q.consume(first.put)
        for i in range(2):
            await ch.default_exchange.publish(aio_pika.Message(b"%d" % i), routing_key=q.name)
        m = await asyncio.wait_for(first.get(), 10)
        assert m.body == b"0"
        ok = await ch.declare_queue(q.name, passive=True)  # a round trip: the broker is caught up
        assert ok.declaration_result.message_count == 1  # the second waits for the ack
        await m.ack()
        m2 = await asyncio.wait_for(first.get(), 10)
        assert m2.body == b"1"
        await m2.ack()


# ---------------------------------------------------------------- item 5
async def test_exchange_unbind_missing_exchanges_is_ok(broker):
    conn = await aio_pika.connect(broker.url)
    async with conn:
        ch = await conn.channel()
        dest = await ch.declare_exchange("compat-dest", "fanout", auto_delete=True)
        src = await ch.declare_exchange("compat-src", "fanout", auto_delete=True)
        await dest.bind(src)
        await dest.unbind(src)  # src auto-deletes with its last binding
        await dest.unbind("compat-src")  # a missing source: UnbindOk, as RabbitMQ
        await dest.unbind("never-existed", routing_key="k")
        under = await ch.get_underlay_channel()
        await under.exchange_unbind(destination="never-existed", source="amq.direct")  # missing destination
        assert not ch.is_closed


# ---------------------------------------------------------------- item 6
def test_passive_declare_of_default_exchange_refused(broker):
    conn = pika.BlockingConnection(pika.URLParameters(broker.url))
    try:
        ch = conn.channel()
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
            ch.exchange_declare(exchange="", passive=True)
        assert ei.value.reply_code == 403
        assert ei.value.reply_text == "ACCESS_REFUSED - operation not permitted on the default exchange"
        assert conn.is_open
    finally:
        conn.close()


# ---------------------------------------------------------------- item 8
def test_empty_queue_name_means_last_declared(broker):
    conn = pika.BlockingConnection(pika.URLParameters(broker.url))
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        name = ch.queue_declare("compat-last", exclusive=True).method.queue
        ch.queue_bind(queue="", exchange="amq.direct", routing_key="")  # key: the queue's name
        ch.queue_bind(queue="", exchange="amq.direct", routing_key="other")
        ch.basic_publish("amq.direct", name, b"by name")
        ch.basic_publish("amq.direct", "other", b"by other")
        assert ch.basic_get("", auto_ack=True)[2] == b"by name"
        assert ch.basic_get(name, auto_ack=True)[2] == b"by other"
        ch.queue_unbind(queue="", exchange="amq.direct", routing_key="other")
        ch.basic_publish("amq.direct", "other", b"dropped")
        assert ch.queue_purge("").method.message_count == 0
        assert ch.queue_delete("").method.message_count == 0
    finally:
        conn.close()


@pytest.mark.parametrize("op", ["bind", "unbind", "purge", "delete", "get", "consume"])
def test_empty_queue_name_without_declared_queue(broker, op):
    """RabbitMQ: 404 "no previously declared queue" (a passive declare of '' is 404 no queue '')."""
    conn = pika.BlockingConnection(pika.URLParameters(broker.url))
    try:
        ch = conn.channel()
        action = {
            "bind": lambda: ch.queue_bind(queue="", exchange="amq.direct", routing_key="k"),
            "unbind": lambda: ch.queue_unbind(queue="", exchange="amq.direct", routing_key="k"),
            "purge": lambda: ch.queue_purge(""),
            "delete": lambda: ch.queue_delete(""),
            "get": lambda: ch.basic_get(""),
            "consume": lambda: ch.basic_consume("", lambda *a: None),
        }[op]
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
            action()
        assert (ei.value.reply_code, ei.value.reply_text) == (404, "NOT_FOUND - no previously declared queue")
    finally:
        conn.close()


# ---------------------------------------------------------------- item 9
@pytest.mark.parametrize("arg", ["x-max-length", "x-max-length-bytes"])
async def test_zero_max_length_drop_head_confirms(broker, arg):
    """drop-head with a limit of 0: the publish is confirmed (ack) and nothing is kept."""
    conn = await aio_pika.connect(broker.url)
    async with conn:
        ch = await conn.channel(publisher_confirms=True)
        q = await ch.declare_queue("", exclusive=True, arguments={arg: 0})
        await ch.default_exchange.publish(aio_pika.Message(b"x"), routing_key=q.name)  # nack would raise
        ok = await ch.declare_queue(q.name, passive=True)
        assert ok.declaration_result.message_count == 0


@pytest.mark.parametrize("arg", ["x-max-length", "x-max-length-bytes"])
async def test_zero_max_length_reject_publish_nacks(broker, arg):
    conn = await aio_pika.connect(broker.url)
    async with conn:
        ch = await conn.channel(publisher_confirms=True)
        q = await ch.declare_queue("", exclusive=True, arguments={arg: 0, "x-overflow": "reject-publish"})
        with pytest.raises(aio_pika.exceptions.DeliveryError):
            await ch.default_exchange.publish(aio_pika.Message(b"x"), routing_key=q.name)
        ok = await ch.declare_queue(q.name, passive=True)
        assert ok.declaration_result.message_count == 0
