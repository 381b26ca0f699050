"""Tracing: a message's journey (published, routed, delivered, requeued, redelivered,
rejected, dead-lettered) and RabbitMQ's firehose on amq.rabbitmq.trace."""

from __future__ import annotations

import asyncio

import aio_pika

from tests.brokerproc import wait_port

from .conftest import Http, wait_for


async def test_journey_requeue_redeliver_dead_letter(broker, http):
    st, r = await http.req("PUT", "/api/tracing/%2F", json={"journey": True})
    assert st == 200 and r == {"vhost": "/", "firehose": False, "journey": True}
    conn = await aio_pika.connect(broker.url)
    async with conn:
        ch = await conn.channel()
        await ch.declare_queue("tq-dead")
        q = await ch.declare_queue("tq", arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": "tq-dead"})
        await ch.default_exchange.publish(aio_pika.Message(b"payload", message_id="journey-1"), "tq")
        done = asyncio.Event()

        async def on_msg(m: aio_pika.abc.AbstractIncomingMessage) -> None:
            if not m.redelivered:
                await m.nack(requeue=True)
            else:
                await m.reject(requeue=False)
                done.set()

        await q.consume(on_msg, consumer_tag="tracer-ctag")
        await asyncio.wait_for(done.wait(), 10)

        async def dead_lettered() -> bool:
            _, r = await http.req("GET", "/api/trace/journey-1")
            return bool(r["events"]) and r["events"][-1]["event"] == "dead_lettered"

        await wait_for(dead_lettered)
        r = await http.get("/api/trace/journey-1")
        events = r["events"]
        assert [e["event"] for e in events] == [
            "published", "routed", "delivered", "requeued", "redelivered", "rejected", "dead_lettered"]
        ts = [e["ts"] for e in events]
        assert ts == sorted(ts)
        assert events[0]["exchange"] == "" and events[0]["routing_key"] == "tq"
        assert events[1]["queues"] == ["tq"]
        assert events[2]["consumer_tag"] == "tracer-ctag" and events[2]["queue"] == "tq"
        assert events[4]["consumer_tag"] == "tracer-ctag"
        assert events[6]["reason"] == "rejected" and events[6]["queues"] == ["tq-dead"]
        assert (await http.get("/api/trace/unknown-id"))["events"] == []


async def test_journey_ring_is_bounded(broker_factory, tmp_path):
    import aiohttp

    b = broker_factory("--trace-ring-size", "4")
    wait_port(b.mgmt_port)
    async with aiohttp.ClientSession() as s:
        http = Http(b, s)
        await http.req("PUT", "/api/tracing/%2F", json={"journey": True})
        for i in range(3):
            await http.req("POST", "/api/exchanges/%2F/amq.default/publish", json={
                "routing_key": "nowhere", "payload": "x", "payload_encoding": "string",
                "properties": {"message_id": f"r{i}"}})
        assert (await http.get("/api/trace/r0"))["events"] == []
        assert [e["event"] for e in (await http.get("/api/trace/r1"))["events"]] == ["published", "unroutable"]
        assert len((await http.get("/api/trace/r2"))["events"]) == 2


async def test_firehose_publish_and_deliver(broker, http):
    st, _ = await http.req("PUT", "/api/vhosts/%2F", json={"tracing": True})
    assert st in (201, 204)
    assert (await http.get("/api/vhosts/%2F"))["tracing"] is True
    conn = await aio_pika.connect(broker.url)
    async with conn:
        ch = await conn.channel()
        tq = await ch.declare_queue("firehose-sink")
        await tq.bind("amq.rabbitmq.trace", "#")
        q = await ch.declare_queue("fq")
        await ch.default_exchange.publish(aio_pika.Message(b"body!", message_id="f1", content_type="text/plain"), "fq")
        m = await q.get(no_ack=True)
        assert m.body == b"body!"

        async def two() -> bool:
            return (await http.get("/api/queues/%2F/firehose-sink"))["messages"] == 2

        await wait_for(two)
        pub = await tq.get(no_ack=True)
        dlv = await tq.get(no_ack=True)
        assert pub.routing_key == "publish." and pub.body == b"body!"
        h = pub.headers
        assert h["exchange_name"] == "" and h["routing_keys"] == ["fq"] and h["routed_queues"] == ["fq"]
        assert h["properties"]["message_id"] == "f1" and h["properties"]["content_type"] == "text/plain"
        assert h["vhost"] == "/" and h["user"] == "guest" and h["channel"] == 1 and "node" in h
        assert dlv.routing_key == "deliver.fq" and dlv.headers["redelivered"] == 0
        # nothing traced about the trace messages themselves
        assert await tq.get(fail=False) is None
