"""aiormq against warren: headers exchange, confirmed publishes (and a mandatory
return), consume/ack/nack-requeue, basic.get, direct reply-to RPC, error cases.

``run_scenario(url, prefix)`` returns what the client observed; ``test_differential``
runs it against RabbitMQ too.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiormq
import aiormq.exceptions
from aiormq.abc import DeliveredMessage
from pamqp import commands as spec

from interop.common import REPLY_TO, normalize

TIMEOUT = 10.0
Props = spec.Basic.Properties


async def _closed_by_broker(conn: aiormq.Connection, action) -> list[Any]:
    ch = await conn.channel()
    try:
        await asyncio.wait_for(action(ch), TIMEOUT)
    except aiormq.exceptions.AMQPChannelError as exc:
        return [type(exc).__name__, *exc.args]
    return ["not closed"]


def _delivery(m: DeliveredMessage) -> dict[str, Any]:
    pr = m.header.properties
    return {
        "body": m.body,
        "tag": m.delivery.delivery_tag,
        "redelivered": m.delivery.redelivered,
        "exchange": m.delivery.exchange,
        "routing_key": m.delivery.routing_key,
        "headers": pr.headers,
        "message_id": pr.message_id,
        "expiration": pr.expiration,
        "timestamp": pr.timestamp.isoformat() if pr.timestamp else None,
        "type": pr.message_type,
        "app_id": pr.app_id,
    }


async def _scenario(url: str, p: str) -> dict[str, Any]:
    obs: dict[str, Any] = {}
    conn = await aiormq.connect(url)
    try:
        ch = await conn.channel()  # publisher confirms on
        await ch.exchange_declare(f"{p}.hx", exchange_type="headers")
        ok = await ch.queue_declare(f"{p}.q")
        obs["declare"] = [ok.queue, ok.message_count, ok.consumer_count]
        await ch.queue_bind(f"{p}.q", f"{p}.hx", arguments={"x-match": "all", "kind": "job"})

        confirms = []
        for i in range(3):
            c = await ch.basic_publish(
                f"body-{i}".encode(), exchange=f"{p}.hx", routing_key="ignored",
                properties=Props(headers={"kind": "job", "n": i, "f": 1.5, "neg": -7, "big": 2**40},
                                 message_id=f"id{i}", message_type="t", app_id="interop",
                                 expiration="60000"),
            )
            confirms.append(type(c).__name__)
        obs["confirms"] = confirms
        try:
            await ch.basic_publish(b"lost", exchange=f"{p}.hx", routing_key="r", mandatory=True,
                                   properties=Props(headers={"kind": "other"}, message_id="lost"))
            obs["returned"] = "not returned"
        except aiormq.exceptions.PublishError as exc:
            rd = exc.message.delivery
            obs["returned"] = [rd.reply_code, rd.reply_text, rd.exchange, rd.routing_key, exc.message.body]
        ok = await ch.queue_declare(f"{p}.q", passive=True)
        obs["passive"] = [ok.message_count, ok.consumer_count]

        cch = await conn.channel()
        await cch.basic_qos(prefetch_count=10)
        inbox: asyncio.Queue[DeliveredMessage] = asyncio.Queue()

        async def on_message(m: DeliveredMessage) -> None:
            inbox.put_nowait(m)

        cok = await cch.basic_consume(f"{p}.q", on_message)
        got = [await asyncio.wait_for(inbox.get(), TIMEOUT) for _ in range(3)]
        await cch.basic_ack(got[0].delivery.delivery_tag)
        await cch.basic_nack(got[1].delivery.delivery_tag, requeue=True)
        got.append(await asyncio.wait_for(inbox.get(), TIMEOUT))
        await cch.basic_ack(got[3].delivery.delivery_tag, multiple=True)
        obs["deliveries"] = [_delivery(m) for m in got]
        obs["consumer_tags_match"] = all(m.delivery.consumer_tag == cok.consumer_tag for m in got)
        ok = await ch.queue_declare(f"{p}.q", passive=True)
        obs["after_acks"] = [ok.message_count, ok.consumer_count]
        await cch.basic_cancel(cok.consumer_tag)
        ok = await ch.queue_declare(f"{p}.q", passive=True)
        obs["after_cancel"] = [ok.message_count, ok.consumer_count]

        # basic.get, nack-requeue, get again
        for b in (b"g1", b"g2"):
            await ch.basic_publish(b, exchange=f"{p}.hx", properties=Props(headers={"kind": "job"}))
        m = await ch.basic_get(f"{p}.q")
        obs["get1"] = [m.body, m.delivery.redelivered, m.delivery.message_count]
        await ch.basic_nack(m.delivery.delivery_tag, requeue=True)
        m = await ch.basic_get(f"{p}.q", no_ack=True)
        obs["get2"] = [m.body, m.delivery.redelivered, m.delivery.message_count]
        m = await ch.basic_get(f"{p}.q", no_ack=True)
        obs["get3"] = [m.body, m.delivery.redelivered, m.delivery.message_count]
        m = await ch.basic_get(f"{p}.q")
        obs["get_empty"] = type(m.delivery).__name__

        # RPC over direct reply-to: a server consumer on another channel answers
        await ch.queue_declare(f"{p}.rpc", auto_delete=True)
        sch = await conn.channel()
        requests: list[Any] = []

        async def serve(m: DeliveredMessage) -> None:
            pr = m.header.properties
            requests.append([m.body, pr.reply_to, pr.correlation_id])
            await sch.basic_publish(b"pong:" + m.body, routing_key=pr.reply_to,
                                    properties=Props(correlation_id=pr.correlation_id))

        await sch.basic_consume(f"{p}.rpc", serve, no_ack=True)
        rch = await conn.channel()
        replies: asyncio.Queue[DeliveredMessage] = asyncio.Queue()

        async def on_reply(m: DeliveredMessage) -> None:
            replies.put_nowait(m)

        rok = await rch.basic_consume(REPLY_TO, on_reply, no_ack=True)
        obs["reply_consumer_ok"] = bool(rok.consumer_tag)
        c = await rch.basic_publish(b"ping", routing_key=f"{p}.rpc",
                                    properties=Props(reply_to=REPLY_TO, correlation_id="abc"))
        obs["rpc_publish_confirm"] = type(c).__name__
        r = await asyncio.wait_for(replies.get(), TIMEOUT)
        obs["rpc_request"] = requests
        obs["rpc_reply"] = [r.body, r.header.properties.correlation_id, r.delivery.redelivered,
                            r.delivery.exchange, r.delivery.routing_key]

        # error cases
        obs["err_passive_missing"] = await _closed_by_broker(
            conn, lambda c: c.queue_declare(f"{p}.missing", passive=True))
        obs["err_passive_missing_exchange"] = await _closed_by_broker(
            conn, lambda c: c.exchange_declare(f"{p}.nox", passive=True))
        obs["err_inequivalent_queue"] = await _closed_by_broker(
            conn, lambda c: c.queue_declare(f"{p}.q", auto_delete=True))
        obs["err_inequivalent_exchange"] = await _closed_by_broker(
            conn, lambda c: c.exchange_declare(f"{p}.hx", exchange_type="topic"))

        async def unknown_tag(c):
            await c.basic_ack(99)
            await c.queue_declare(f"{p}.q", passive=True)

        obs["err_unknown_tag"] = await _closed_by_broker(conn, unknown_tag)

        async def nack_unknown(c):
            await c.basic_nack(7, requeue=True)
            await c.queue_declare(f"{p}.q", passive=True)

        obs["err_nack_unknown_tag"] = await _closed_by_broker(conn, nack_unknown)

        other = await aiormq.connect(url)
        try:
            och = await other.channel()
            await och.queue_declare(f"{p}.excl", exclusive=True)
            await och.queue_declare(f"{p}.shared", auto_delete=True)
            await och.basic_consume(f"{p}.shared", on_message, exclusive=True)
            obs["err_exclusive_locked"] = await _closed_by_broker(
                conn, lambda c: c.queue_declare(f"{p}.excl", passive=True))
            obs["err_consumer_exclusive"] = await _closed_by_broker(
                conn, lambda c: c.basic_consume(f"{p}.shared", on_message))
        finally:
            await other.close()

        d = await ch.queue_delete(f"{p}.q")
        obs["queue_delete"] = d.message_count
        await ch.exchange_delete(f"{p}.hx")
        obs["connection_open"] = not conn.is_closed
    finally:
        await conn.close()
    return normalize(obs, p)


def run_scenario(url: str, p: str) -> dict[str, Any]:
    return asyncio.run(_scenario(url, p))


async def test_aiormq_scenario(warren, prefix):
    obs = await _scenario(warren.url, prefix)
    assert obs["declare"] == ["<p>.q", 0, 0]
    assert obs["confirms"] == ["Ack", "Ack", "Ack"]
    assert obs["returned"] == [312, "NO_ROUTE", "<p>.hx", "r", "lost"]
    assert obs["passive"] == [3, 0]
    d = obs["deliveries"]
    assert [(x["body"], x["tag"], x["redelivered"]) for x in d] == [
        ("body-0", 1, False), ("body-1", 2, False), ("body-2", 3, False), ("body-1", 4, True)]
    assert d[1]["headers"] == {"kind": "job", "n": 1, "f": 1.5, "neg": -7, "big": 2**40}
    assert d[3]["message_id"] == "id1" and d[3]["expiration"] == "60000" and d[3]["app_id"] == "interop"
    assert obs["consumer_tags_match"] is True
    assert obs["after_acks"] == [0, 1] and obs["after_cancel"] == [0, 0]
    assert obs["get1"] == ["g1", False, 1]
    assert obs["get2"] == ["g1", True, 1]
    assert obs["get3"] == ["g2", False, 0]
    assert obs["get_empty"] == "GetEmpty"
    assert obs["rpc_publish_confirm"] == "Ack"
    assert obs["rpc_request"] == [["ping", "amq.rabbitmq.reply-to.<token>", "abc"]]
    assert obs["rpc_reply"] == ["pong:ping", "abc", False, "", "amq.rabbitmq.reply-to.<token>"]
    assert obs["err_passive_missing"] == [
        "ChannelNotFoundEntity", "NOT_FOUND - no queue '<p>.missing' in vhost '/'"]
    assert obs["err_passive_missing_exchange"] == [
        "ChannelNotFoundEntity", "NOT_FOUND - no exchange '<p>.nox' in vhost '/'"]
    assert obs["err_inequivalent_queue"] == [
        "ChannelPreconditionFailed", "PRECONDITION_FAILED - inequivalent arg 'auto_delete' for queue "
        "'<p>.q' in vhost '/': received 'true' but current is 'false'"]
    assert obs["err_unknown_tag"] == ["ChannelPreconditionFailed", "PRECONDITION_FAILED - unknown delivery tag 99"]
    assert obs["err_nack_unknown_tag"] == ["ChannelPreconditionFailed", "PRECONDITION_FAILED - unknown delivery tag 7"]
    assert obs["err_exclusive_locked"][0] == "ChannelLockedResource"
    assert obs["err_consumer_exclusive"] == [
        "ChannelAccessRefused", "ACCESS_REFUSED - queue '<p>.shared' in vhost '/' in exclusive use"]
    assert obs["queue_delete"] == 0
    assert obs["connection_open"] is True
