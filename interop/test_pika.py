"""pika (BlockingConnection) against warren: the common scenario plus error cases.

``run_scenario(url, prefix)`` returns what the client observed; the warren test
checks it against RabbitMQ's known answers, ``test_differential.py`` runs it
against both brokers and compares.
"""

from __future__ import annotations

from typing import Any

import pika
import pika.exceptions

from interop.common import REPLY_TO, normalize, wait_until

TIMEOUT = 10.0


def _props(p: pika.BasicProperties) -> dict[str, Any]:
    return {
        "headers": p.headers,
        "content_type": p.content_type,
        "message_id": p.message_id,
        "delivery_mode": p.delivery_mode,
        "correlation_id": p.correlation_id,
        "reply_to": p.reply_to,
    }


def _closed_by_broker(conn: pika.BlockingConnection, action) -> list[Any]:
    """Run ``action(channel)`` on a fresh channel and return the broker's close."""
    ch = conn.channel()
    try:
        action(ch)
    except pika.exceptions.ChannelClosedByBroker as exc:
        return [exc.reply_code, exc.reply_text]
    return ["not closed"]


def run_scenario(url: str, p: str) -> dict[str, Any]:
    obs: dict[str, Any] = {}
    params = pika.URLParameters(url + "?connection_attempts=3&retry_delay=0.2")
    conn = pika.BlockingConnection(params)
    pump = lambda: conn.process_data_events(time_limit=0.05)  # noqa: E731
    try:
        ch = conn.channel()
        ok = ch.exchange_declare(f"{p}.ex", "direct")
        obs["exchange_declare"] = ok.method.NAME
        ok = ch.queue_declare(f"{p}.q")
        obs["queue_declare"] = [ok.method.queue, ok.method.message_count, ok.method.consumer_count]
        ch.queue_bind(f"{p}.q", f"{p}.ex", routing_key="rk")
        gen = ch.queue_declare("", exclusive=True).method.queue
        obs["server_named"] = gen

        ch.confirm_delivery()
        for i in range(3):
            ch.basic_publish(
                f"{p}.ex",
                "rk",
                f"m{i}".encode(),
                pika.BasicProperties(
                    headers={"n": i, "s": "text", "list": [1, "two"], "nested": {"k": True}},
                    content_type="text/plain",
                    message_id=f"id{i}",
                    delivery_mode=2,
                ),
            )
        obs["confirmed"] = 3  # basic_publish raises if a confirm is a nack
        try:
            ch.basic_publish(f"{p}.ex", "nowhere", b"lost", mandatory=True)
            obs["unroutable"] = "no return"
        except pika.exceptions.UnroutableError as exc:
            obs["unroutable"] = [
                [m.method.reply_code, m.method.reply_text, m.method.exchange, m.method.routing_key, m.body]
                for m in exc.messages
            ]
        ok = ch.queue_declare(f"{p}.q", passive=True)
        obs["count_before_consume"] = [ok.method.message_count, ok.method.consumer_count]

        # consume, ack, nack with requeue
        cch = conn.channel()
        cch.basic_qos(prefetch_count=10)
        deliveries: list[tuple] = []

        def on_msg(_ch, method, props, body):
            deliveries.append((method, props, body))

        ctag = cch.basic_consume(f"{p}.q", on_msg)
        wait_until(lambda: len(deliveries) >= 3, TIMEOUT, pump, "3 deliveries")
        cch.basic_ack(deliveries[0][0].delivery_tag)
        cch.basic_nack(deliveries[1][0].delivery_tag, requeue=True)
        wait_until(lambda: len(deliveries) >= 4, TIMEOUT, pump, "the redelivery")
        cch.basic_ack(deliveries[3][0].delivery_tag, multiple=True)
        obs["deliveries"] = [
            {
                "body": body,
                "tag": m.delivery_tag,
                "redelivered": m.redelivered,
                "exchange": m.exchange,
                "routing_key": m.routing_key,
                "ctag_matches": m.consumer_tag == ctag,
                **_props(pr),
            }
            for m, pr, body in deliveries
        ]
        ok = ch.queue_declare(f"{p}.q", passive=True)
        obs["count_after_acks"] = [ok.method.message_count, ok.method.consumer_count]
        cch.basic_cancel(ctag)
        ok = ch.queue_declare(f"{p}.q", passive=True)
        obs["count_after_cancel"] = [ok.method.message_count, ok.method.consumer_count]

        # basic.get + nack requeue: the message comes back redelivered, first in line
        ch.basic_publish(f"{p}.ex", "rk", b"g1")
        ch.basic_publish(f"{p}.ex", "rk", b"g2")
        m, _pr, body = ch.basic_get(f"{p}.q")
        obs["get1"] = [body, m.redelivered, m.message_count]
        ch.basic_nack(m.delivery_tag, requeue=True)
        m, _pr, body = ch.basic_get(f"{p}.q")
        obs["get2"] = [body, m.redelivered, m.message_count]
        ch.basic_ack(m.delivery_tag)
        m, _pr, body = ch.basic_get(f"{p}.q", auto_ack=True)
        obs["get3"] = [body, m.redelivered, m.message_count]
        obs["get_empty"] = list(ch.basic_get(f"{p}.q"))

        # RPC over direct reply-to
        ch.queue_declare(f"{p}.rpc", auto_delete=True)
        rpc = conn.channel()
        replies: list[tuple] = []
        rpc.basic_consume(REPLY_TO, lambda _c, m, pr, b: replies.append((m, pr, b)), auto_ack=True)
        rpc.basic_publish("", f"{p}.rpc", b"ping", pika.BasicProperties(reply_to=REPLY_TO, correlation_id="c-1"))
        srv = conn.channel()
        got: list = []

        def fetch():
            r = srv.basic_get(f"{p}.rpc", auto_ack=True)
            if r[0] is not None:
                got.append(r)
            return got

        wait_until(fetch, TIMEOUT, pump, "rpc request")
        m, pr, body = got[-1]
        obs["rpc_request"] = [body, pr.reply_to.startswith(REPLY_TO + "."), pr.correlation_id, pr.reply_to]
        srv.basic_publish("", pr.reply_to, b"pong:" + body, pika.BasicProperties(correlation_id=pr.correlation_id))
        wait_until(lambda: replies, TIMEOUT, pump, "rpc reply")
        rm, rpr, rbody = replies[0]
        obs["rpc_reply"] = [rbody, rpr.correlation_id, rm.redelivered, rm.exchange, rm.routing_key]
        ok = ch.queue_declare(f"{p}.rpc", passive=True)
        obs["rpc_queue_after"] = [ok.method.message_count, ok.method.consumer_count]

        # error cases, each on its own channel
        obs["err_passive_missing"] = _closed_by_broker(
            conn, lambda c: c.queue_declare(f"{p}.missing", passive=True))
        obs["err_inequivalent_queue"] = _closed_by_broker(
            conn, lambda c: c.queue_declare(f"{p}.q", durable=True))
        obs["err_inequivalent_exchange"] = _closed_by_broker(
            conn, lambda c: c.exchange_declare(f"{p}.ex", "fanout"))

        def unknown_tag(c):
            c.basic_ack(99)
            c.queue_declare(f"{p}.q", passive=True)  # a round trip to see the close

        obs["err_unknown_tag"] = _closed_by_broker(conn, unknown_tag)

        def missing_exchange(c):
            c.basic_publish(f"{p}.nope", "rk", b"x")
            c.queue_declare(f"{p}.q", passive=True)

        obs["err_publish_missing_exchange"] = _closed_by_broker(conn, missing_exchange)

        def reply_to_without_consumer(c):
            c.basic_publish("", f"{p}.rpc", b"x", pika.BasicProperties(reply_to=REPLY_TO))
            c.queue_declare(f"{p}.q", passive=True)

        obs["err_reply_to_without_consumer"] = _closed_by_broker(conn, reply_to_without_consumer)
        obs["err_bind_missing_queue"] = _closed_by_broker(
            conn, lambda c: c.queue_bind(f"{p}.missing", f"{p}.ex", "rk"))
        obs["err_delete_amq_exchange"] = _closed_by_broker(
            conn, lambda c: c.exchange_declare("amq.nope", "direct"))

        ok = ch.queue_delete(f"{p}.q")
        obs["queue_delete"] = ok.method.message_count
        ch.exchange_delete(f"{p}.ex")
        obs["connection_open_after_errors"] = conn.is_open
    finally:
        if conn.is_open:
            conn.close()
    return normalize(obs, p)


def test_pika_scenario(warren, prefix):
    obs = run_scenario(warren.url, prefix)
    assert obs["queue_declare"] == ["<p>.q", 0, 0]
    assert obs["server_named"].startswith("amq.gen-")
    assert obs["unroutable"] == [[312, "NO_ROUTE", "<p>.ex", "nowhere", "lost"]]
    assert obs["count_before_consume"] == [3, 0]
    d = obs["deliveries"]
    assert [(x["body"], x["tag"], x["redelivered"]) for x in d] == [
        ("m0", 1, False), ("m1", 2, False), ("m2", 3, False), ("m1", 4, True)]
    assert d[0]["headers"] == {"n": 0, "s": "text", "list": [1, "two"], "nested": {"k": True}}
    assert d[1]["message_id"] == d[3]["message_id"] == "id1"
    assert all(x["ctag_matches"] and x["exchange"] == "<p>.ex" and x["routing_key"] == "rk" for x in d)
    assert obs["count_after_acks"] == [0, 1]
    assert obs["count_after_cancel"] == [0, 0]
    assert obs["get1"] == ["g1", False, 1]
    assert obs["get2"] == ["g1", True, 1]
    assert obs["get3"] == ["g2", False, 0]
    assert obs["get_empty"] == [None, None, None]
    assert obs["rpc_request"] == ["ping", True, "c-1", "amq.rabbitmq.reply-to.<token>"]
    assert obs["rpc_reply"] == ["pong:ping", "c-1", False, "", "amq.rabbitmq.reply-to.<token>"]
    assert obs["err_passive_missing"] == [404, "NOT_FOUND - no queue '<p>.missing' in vhost '/'"]
    assert obs["err_inequivalent_queue"] == [
        406, "PRECONDITION_FAILED - inequivalent arg 'durable' for queue '<p>.q' in vhost '/': "
        "received 'true' but current is 'false'"]
    assert obs["err_unknown_tag"] == [406, "PRECONDITION_FAILED - unknown delivery tag 99"]
    assert obs["err_publish_missing_exchange"] == [404, "NOT_FOUND - no exchange '<p>.nope' in vhost '/'"]
    assert obs["err_reply_to_without_consumer"] == [406, "PRECONDITION_FAILED - fast reply consumer does not exist"]
    assert obs["queue_delete"] == 0
    assert obs["connection_open_after_errors"] is True
