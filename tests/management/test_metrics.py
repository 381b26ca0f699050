"""/metrics and /metrics/per-object report exact counter values after known traffic."""

from __future__ import annotations

import asyncio
import re
from urllib.parse import quote

import aio_pika

from .conftest import metric, wait_for

P = {"protocol": "amqp091"}
PQ = {"protocol": "amqp091", "queue_type": "rabbit_classic_queue"}


async def _traffic(conn: aio_pika.abc.AbstractConnection) -> None:
    ch = await conn.channel(publisher_confirms=True)
    qa = await ch.declare_queue("qa")
    qb = await ch.declare_queue("qb")
    await ch.declare_queue("dl-dst")
    src = await ch.declare_queue("dl-src", arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": "dl-dst"})
    for i in range(10):
        await ch.default_exchange.publish(aio_pika.Message(f"a{i}".encode()), "qa")
    for i in range(3):
        await ch.default_exchange.publish(aio_pika.Message(f"b{i}".encode()), "qb")
    for _ in range(2):
        await ch.default_exchange.publish(aio_pika.Message(b"lost"), "nowhere", mandatory=False)
    await ch.default_exchange.publish(aio_pika.Message(b"dl"), "dl-src")
    # qa: two gets with auto-ack, one get with manual ack
    for _ in range(2):
        assert await qa.get(no_ack=True)
    m = await qa.get()
    await m.ack()
    # qb: consume 3 with manual ack; requeue the third once, then ack its redelivery
    done = asyncio.Event()
    seen: list[tuple[bytes, bool]] = []

    async def on_msg(msg: aio_pika.abc.AbstractIncomingMessage) -> None:
        seen.append((msg.body, msg.redelivered))
        if msg.body == b"b2" and not msg.redelivered:
            await msg.nack(requeue=True)
            return
        await msg.ack()
        if len(seen) == 4:
            done.set()

    tag = await qb.consume(on_msg)
    await asyncio.wait_for(done.wait(), 10)
    await qb.cancel(tag)
    assert await qb.get(fail=False) is None  # one get-empty
    # dl-src: get, then reject without requeue -> dead-lettered to dl-dst
    m = await src.get()
    await m.reject(requeue=False)
    await ch.close()


async def test_global_counters_exact(broker, http):
    conn = await aio_pika.connect(broker.url)
    await _traffic(conn)
    m = await http.metrics()
    assert metric(m, "rabbitmq_global_messages_received_total", **P) == 16
    assert metric(m, "rabbitmq_global_messages_received_confirm_total", **P) == 16
    assert metric(m, "rabbitmq_global_messages_confirmed_total", **P) == 16
    assert metric(m, "rabbitmq_global_messages_routed_total", **P) == 14
    assert metric(m, "rabbitmq_global_messages_unroutable_dropped_total", **P) == 2
    assert metric(m, "rabbitmq_global_messages_unroutable_returned_total", **P) == 0
    assert metric(m, "rabbitmq_global_messages_delivered_total", **PQ) == 8
    assert metric(m, "rabbitmq_global_messages_delivered_consume_manual_ack_total", **PQ) == 4
    assert metric(m, "rabbitmq_global_messages_delivered_consume_auto_ack_total", **PQ) == 0
    assert metric(m, "rabbitmq_global_messages_delivered_get_manual_ack_total", **PQ) == 2
    assert metric(m, "rabbitmq_global_messages_delivered_get_auto_ack_total", **PQ) == 2
    assert metric(m, "rabbitmq_global_messages_get_empty_total", **PQ) == 1
    assert metric(m, "rabbitmq_global_messages_redelivered_total", **PQ) == 1
    assert metric(m, "rabbitmq_global_messages_acknowledged_total", **PQ) == 4
    dl = {"queue_type": "rabbit_classic_queue", "dead_letter_strategy": "at_most_once"}
    assert metric(m, "rabbitmq_global_messages_dead_lettered_rejected_total", **dl) == 1
    assert metric(m, "rabbitmq_global_messages_dead_lettered_expired_total", **dl) == 0
    # queues: qa 7 ready, dl-dst 1 ready
    assert metric(m, "rabbitmq_queue_messages_ready") == 8
    assert metric(m, "rabbitmq_queue_messages_unacked") == 0
    assert metric(m, "rabbitmq_queue_messages") == 8
    # as RabbitMQ (channel_queue_metrics): publishes through channels only, not the dead-letter copy
    assert metric(m, "rabbitmq_queue_messages_published_total") == 14
    assert metric(m, "rabbitmq_queues") == 4
    assert metric(m, "rabbitmq_connections") == 1
    assert metric(m, "rabbitmq_channels") == 0
    assert metric(m, "rabbitmq_queues_created_total") == 4
    assert metric(m, "rabbitmq_process_open_fds") > 0
    assert metric(m, "rabbitmq_process_resident_memory_bytes") > 0

    # totals survive queue deletion and connection close
    ch = await conn.channel()
    await ch.queue_delete("qa")
    await conn.close()

    async def closed() -> bool:
        return metric(await http.metrics(), "rabbitmq_connections") == 0

    await wait_for(closed)
    m2 = await http.metrics()
    assert metric(m2, "rabbitmq_queue_messages_published_total") == 14
    assert metric(m2, "rabbitmq_global_messages_received_total", **P) == 16
    assert metric(m2, "rabbitmq_global_messages_acknowledged_total", **PQ) == 4
    assert metric(m2, "rabbitmq_global_messages_delivered_total", **PQ) == 8
    assert metric(m2, "rabbitmq_queues") == 3
    assert metric(m2, "rabbitmq_queues_deleted_total") == 1
    assert metric(m2, "rabbitmq_queue_messages_ready") == 1
    assert metric(m2, "rabbitmq_connections_closed_total") == 1
    assert metric(m2, "rabbitmq_connection_incoming_bytes_total") > 0


async def test_per_object_and_lanes(broker, http):
    conn = await aio_pika.connect(broker.url)
    async with conn:
        ch = await conn.channel()
        await ch.declare_queue("prio", arguments={"x-max-priority": 2})
        await ch.declare_queue("plain")
        for p in (0, 1, 1, 2, 2, 2):
            await ch.default_exchange.publish(aio_pika.Message(b"x", priority=p), "prio")
        for _ in range(4):
            await ch.default_exchange.publish(aio_pika.Message(b"yy"), "plain")
        dx = await ch.declare_exchange("delayed", "x-delayed-message", arguments={"x-delayed-type": "direct"})
        await dx.publish(aio_pika.Message(b"later", headers={"x-delay": 60000}), "k", mandatory=False)
        m = await http.metrics(per_object=True)
        assert metric(m, "rabbitmq_queue_messages_ready", vhost="/", queue="prio") == 6
        assert metric(m, "rabbitmq_queue_messages_ready", vhost="/", queue="plain") == 4
        assert metric(m, "rabbitmq_queue_messages_ready_bytes", vhost="/", queue="plain") == 8
        assert metric(m, "rabbitmq_queue_messages_published_total", vhost="/", queue="plain") == 4
        for lane, n in ((0, 1), (1, 2), (2, 3)):
            assert metric(m, "warren_queue_lane_messages_ready", vhost="/", queue="prio", lane=str(lane)) == n
        assert metric(m, "warren_delayed_messages_pending", vhost="/", exchange="delayed") == 1
        assert metric(m, "warren_exchange_messages_published_in_total", vhost="/", exchange="") == 10
        assert metric(m, "rabbitmq_connections") == 1
        conn_label = next(dict(k[1])["channel"] for k in m if k[0] == "rabbitmq_connection_incoming_bytes_total")
        # pid-shaped, as RabbitMQ's; never the client's address
        assert re.fullmatch(r"<0\.\d+\.0>", conn_label) and "127.0.0.1" not in str(m)
        assert metric(m, "rabbitmq_channel_messages_published_total", channel=conn_label[:-2] + "1>") == 11
        agg = await http.metrics()
        assert metric(agg, "warren_queue_lane_messages_ready", lane="2") == 3
        assert metric(agg, "warren_delayed_messages_pending") == 1
        assert metric(agg, "rabbitmq_queue_messages_ready") == 10


async def test_confirm_and_fsync_latency_histograms(broker, http):
    conn = await aio_pika.connect(broker.url)
    async with conn:
        ch = await conn.channel(publisher_confirms=True)
        await ch.declare_queue("durable-q", durable=True)
        for _ in range(5):
            await ch.default_exchange.publish(
                aio_pika.Message(b"p", delivery_mode=aio_pika.DeliveryMode.PERSISTENT), "durable-q"
            )
        m = await http.metrics()
        assert metric(m, "warren_confirm_latency_seconds_count") >= 1
        assert metric(m, "warren_fsync_seconds_count") >= 1
        assert metric(m, "warren_fsync_seconds_bucket", le="+Inf") == metric(m, "warren_fsync_seconds_count")


async def test_per_object_labels_escape_odd_names(broker, http):
    """Per-object text is written by hand (server/management/scrape.py): names with quotes,
    and backslashes (possible through the HTTP API) parse back to themselves."""
    odd = 'odd "name" \\ with'
    path = "/api/queues/%2F/" + quote(odd, safe="")
    assert (await http.req("PUT", path, {"durable": False}))[0] == 201
    st, _ = await http.req("POST", "/api/exchanges/%2F/amq.default/publish",
                           {"routing_key": odd, "payload": "x", "payload_encoding": "string", "properties": {}})
    assert st == 200
    m = await http.metrics(per_object=True)
    assert metric(m, "rabbitmq_queue_messages_ready", vhost="/", queue=odd) == 1
    assert metric(m, "rabbitmq_queue_messages_published_total", vhost="/", queue=odd) == 1
