"""The one publish pipeline seen from outside: the four ways a message enters a queue
(AMQP basic.publish, the management API's publish, an x-delayed-message exchange
firing, dead-lettering) give the same observable outcome: the target queue's
counters in /api/queues, the trace journey, the message itself, and the publisher's
confirm; and a reject-publish refusal reaches each publisher the way RabbitMQ reports it.
"""

from __future__ import annotations

import aio_pika
import aiohttp
import pytest
from pamqp import commands as spec

from tests.brokerproc import wait_port
from tests.management.conftest import Http, wait_for

pytestmark = pytest.mark.timeout(60)

TARGET = "pp-target"
ENTRY_POINTS = ["amqp", "management", "delayed", "dead_letter"]


@pytest.fixture
async def http(broker):
    wait_port(broker.mgmt_port)
    async with aiohttp.ClientSession() as s:
        yield Http(broker, s)


async def queue_info(http: Http, name: str) -> dict:
    return await http.get(f"/api/queues/%2F/{name}")


async def confirm_of(exchange: aio_pika.abc.AbstractExchange, message: aio_pika.Message, key: str) -> object:
    """The confirm frame the broker answered a publish with (Basic.Ack or Basic.Nack)."""
    try:
        return await exchange.publish(message, routing_key=key, timeout=10)
    except aio_pika.exceptions.DeliveryError as exc:  # aio-pika raises on a nack
        return exc.frame


def persistent(body: bytes, message_id: str, **headers: object) -> aio_pika.Message:
    return aio_pika.Message(
        body, message_id=message_id, delivery_mode=aio_pika.DeliveryMode.PERSISTENT, headers=headers or None
    )


async def publish_via(entry: str, ch: aio_pika.abc.AbstractChannel, http: Http, mid: str) -> None:
    """Publish one persistent message with ``mid`` into TARGET through ``entry``; check
    what that publisher is told."""
    body = f"body-{entry}".encode()
    if entry == "amqp":
        confirm = await confirm_of(ch.default_exchange, persistent(body, mid), TARGET)
        assert isinstance(confirm, spec.Basic.Ack)
    elif entry == "management":
        status, r = await http.req("POST", "/api/exchanges/%2F/amq.default/publish", json={
            "routing_key": TARGET, "payload": body.decode(), "payload_encoding": "string",
            "properties": {"delivery_mode": 2, "message_id": mid}})
        assert (status, r) == (200, {"routed": True})
    elif entry == "delayed":
        ex = await ch.declare_exchange("pp-delayed", "x-delayed-message", durable=True,
                                       arguments={"x-delayed-type": "direct"})
        await (await ch.get_queue(TARGET)).bind(ex, "k")
        confirm = await confirm_of(ex, persistent(body, mid, **{"x-delay": 150}), "k")
        assert isinstance(confirm, spec.Basic.Ack)
    elif entry == "dead_letter":
        await ch.declare_queue("pp-source", durable=True, arguments={
            "x-message-ttl": 100, "x-dead-letter-exchange": "", "x-dead-letter-routing-key": TARGET})
        confirm = await confirm_of(ch.default_exchange, persistent(body, mid), "pp-source")
        assert isinstance(confirm, spec.Basic.Ack)
    else:
        raise AssertionError(entry)


@pytest.mark.parametrize("entry", ENTRY_POINTS)
async def test_each_entry_point_has_the_same_outcome(broker, http, entry):
    mid = f"pp-{entry}"
    st, _ = await http.req("PUT", "/api/tracing/%2F", json={"journey": True})
    assert st == 200
    async with await aio_pika.connect(broker.url) as conn:
        ch = await conn.channel(publisher_confirms=True)
        await ch.declare_queue(TARGET, durable=True)
        before = await queue_info(http, TARGET)
        assert (before["messages"], before["message_stats"]["publish"]) == (0, 0)

        await publish_via(entry, ch, http, mid)

        async def arrived() -> bool:
            return (await queue_info(http, TARGET))["messages"] == 1

        await wait_for(arrived)
        q = await queue_info(http, TARGET)
        assert q["durable"] is True
        assert (q["messages"], q["messages_ready"], q["messages_unacknowledged"]) == (1, 1, 0)
        assert q["messages_persistent"] == 1
        # as RabbitMQ: a queue's publish count is of publishes through a channel (AMQP, and the
        # management API, which RabbitMQ runs over one); a delayed message firing and a
        # dead-lettered message reach the queue without one
        assert q["message_stats"]["publish"] == (1 if entry in ("amqp", "management") else 0)

        # the journey: one routed (or dead_lettered) event naming the target queue
        events = (await http.get(f"/api/trace/{mid}"))["events"]
        kinds = [e["event"] for e in events]
        if entry == "amqp":
            assert kinds == ["published", "routed"]
        elif entry == "management":
            assert kinds == ["published", "routed"]
            assert events[0]["connection"] == "management API"
        elif entry == "delayed":
            assert kinds == ["published", "delayed", "routed"]
            assert events[1]["exchange"] == "pp-delayed"
        else:
            assert kinds == ["published", "routed", "dead_lettered"]
            assert events[1]["queues"] == ["pp-source"]
            assert (events[2]["queue"], events[2]["reason"]) == ("pp-source", "expired")
        into_target = events[-1]
        assert into_target["queues"] == [TARGET]
        assert all(e["message_id"] == mid for e in events)
        assert events[0]["event"] == "published" and events[0]["exchange"] in ("", "pp-delayed")

        # the message itself: same body, id and delivery mode whichever way it came
        m = await (await ch.get_queue(TARGET)).get(timeout=5)
        assert m.body == f"body-{entry}".encode() and m.message_id == mid
        assert m.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
        if entry == "delayed":
            assert m.headers["x-delay"] == -150  # negated on firing, as the plugin does
        if entry == "dead_letter":
            assert m.headers["x-death"][0]["reason"] == "expired"
        await m.ack()
        after = await queue_info(http, TARGET)
        assert (after["messages"], after["message_stats"]["ack"]) == (0, 1)


async def test_dead_lettering_is_not_a_publish_to_the_target(broker, http):
    async with await aio_pika.connect(broker.url) as conn:
        ch = await conn.channel(publisher_confirms=True)
        await ch.declare_queue(TARGET, durable=True)
        await publish_via("dead_letter", ch, http, "pp-dl-stats")

        async def arrived() -> bool:
            return (await queue_info(http, TARGET))["messages"] == 1

        await wait_for(arrived)
        assert (await queue_info(http, "pp-source"))["message_stats"]["publish"] == 1
        assert (await queue_info(http, TARGET))["message_stats"]["publish"] == 0


async def full_queue(ch: aio_pika.abc.AbstractChannel, name: str) -> None:
    await ch.declare_queue(name, durable=True, arguments={"x-max-length": 1, "x-overflow": "reject-publish"})
    confirm = await confirm_of(ch.default_exchange, persistent(b"first", "pp-first"), name)
    assert isinstance(confirm, spec.Basic.Ack)


async def test_reject_publish_nacks_the_amqp_publisher(broker, http):
    async with await aio_pika.connect(broker.url) as conn:
        ch = await conn.channel(publisher_confirms=True)
        await full_queue(ch, "pp-full")
        confirm = await confirm_of(ch.default_exchange, persistent(b"second", "pp-second"), "pp-full")
        assert isinstance(confirm, spec.Basic.Nack)
        # the channel goes on confirming later publishes
        await ch.declare_queue("pp-other", durable=True)
        confirm = await confirm_of(ch.default_exchange, persistent(b"third", "pp-third"), "pp-other")
        assert isinstance(confirm, spec.Basic.Ack)
        q = await queue_info(http, "pp-full")
        assert (q["messages"], q["message_stats"]["publish"]) == (1, 1)


async def test_reject_publish_is_not_routed_for_the_management_publisher(broker, http):
    async with await aio_pika.connect(broker.url) as conn:
        ch = await conn.channel(publisher_confirms=True)
        await full_queue(ch, "pp-full")
        status, r = await http.req("POST", "/api/exchanges/%2F/amq.default/publish", json={
            "routing_key": "pp-full", "payload": "second", "payload_encoding": "string",
            "properties": {"delivery_mode": 2}})
        assert status in (200, 400), (status, r)
        if status == 200:
            assert r == {"routed": False}
        q = await queue_info(http, "pp-full")
        assert q["messages"] == 1


async def test_reject_publish_management_answer_is_rabbitmqs(broker, http):
    async with await aio_pika.connect(broker.url) as conn:
        ch = await conn.channel(publisher_confirms=True)
        await full_queue(ch, "pp-full")
        status, r = await http.req("POST", "/api/exchanges/%2F/amq.default/publish", json={
            "routing_key": "pp-full", "payload": "second", "payload_encoding": "string",
            "properties": {"delivery_mode": 2}})
        assert (status, r) == (
            400, {"error": "bad_request", "reason": "rejected Unable to publish message. Check queue limits."})
