"""Differential runs: the same scenario through the same client against warren and
a private RabbitMQ node; what the client observed must be equal once normalised
(server-generated names and reply-to tokens, the tests' unique name prefixes).

Skipped where RabbitMQ is not installed (failed if ``CI`` is set).
"""

from __future__ import annotations

from typing import Any

import pika
import pika.exceptions
import pytest

from interop import test_aiormq, test_amqplib, test_kombu, test_pika
from interop.common import assert_same, normalize, wait_until


@pytest.mark.parametrize("client", ["pika", "kombu", "aiormq"])
def test_client_scenario_matches_rabbitmq(client, warren, rabbitmq, prefix):
    run = {"pika": test_pika.run_scenario, "kombu": test_kombu.run_scenario,
           "aiormq": test_aiormq.run_scenario}[client]
    assert_same(run(warren.url, prefix), run(rabbitmq, prefix))


def test_amqplib_scenario_matches_rabbitmq(warren, rabbitmq, prefix, node_scenario):
    assert_same(test_amqplib.run_scenario(node_scenario, warren.url, prefix),
                test_amqplib.run_scenario(node_scenario, rabbitmq, prefix))


# ---------------------------------------------------------------------------- edge cases (pika)
def _connect(url: str) -> pika.BlockingConnection:
    return pika.BlockingConnection(pika.URLParameters(url + "?connection_attempts=3&retry_delay=0.2"))


def _channel_error(conn: pika.BlockingConnection, action) -> list[Any]:
    ch = conn.channel()
    try:
        r = action(ch)
    except pika.exceptions.ChannelClosedByBroker as exc:
        return [exc.reply_code, exc.reply_text]
    return ["ok", r]


def _connection_error(url: str, action) -> list[Any]:
    conn = _connect(url)
    try:
        action(conn.channel())
        conn.process_data_events(time_limit=0)
        return ["ok"]
    except pika.exceptions.ConnectionClosedByBroker as exc:
        return [exc.reply_code, exc.reply_text]
    finally:
        if conn.is_open:
            conn.close()


def _x_death(headers: dict | None) -> Any:
    if not headers or "x-death" not in headers:
        return None
    return [{k: v for k, v in d.items() if k != "time"} for d in headers["x-death"]]


def edge_scenario(url: str, p: str) -> dict[str, Any]:
    obs: dict[str, Any] = {}
    conn = _connect(url)
    try:
        ch = conn.channel()
        # idempotent deletes/unbinds of things that do not exist
        obs["delete_missing_queue"] = _channel_error(conn, lambda c: c.queue_delete(f"{p}.none").method.message_count)
        obs["delete_missing_exchange"] = _channel_error(conn, lambda c: c.exchange_delete(f"{p}.none").method.NAME)
        obs["purge_missing"] = _channel_error(conn, lambda c: c.queue_purge(f"{p}.none"))
        obs["passive_missing_exchange"] = _channel_error(
            conn, lambda c: c.exchange_declare(f"{p}.none", passive=True))
        obs["reserved_queue_name"] = _channel_error(conn, lambda c: c.queue_declare("amq.interop"))
        obs["reserved_exchange_name"] = _channel_error(conn, lambda c: c.exchange_declare("amq.interop", "direct"))
        obs["bind_default_exchange"] = _channel_error(
            conn, lambda c: (c.queue_declare(f"{p}.b", auto_delete=True), c.queue_bind(f"{p}.b", "", "x")))
        obs["delete_default_exchange"] = _channel_error(conn, lambda c: c.exchange_delete(""))
        obs["reply_consumer_with_acks"] = _channel_error(
            conn, lambda c: c.basic_consume("amq.rabbitmq.reply-to", lambda *a: None, auto_ack=False))
        obs["declare_amq_default_passive"] = _channel_error(
            conn, lambda c: c.exchange_declare("amq.direct", "direct", durable=True, passive=True).method.NAME)
        obs["unbind_missing_binding"] = _channel_error(
            conn, lambda c: (c.queue_declare(f"{p}.u", auto_delete=True),
                             c.queue_unbind(f"{p}.u", "amq.direct", "nothing").method.NAME)[1])
        obs["queue_arg_invalid"] = _channel_error(
            conn, lambda c: c.queue_declare(f"{p}.bad", arguments={"x-max-length": "ten"}))

        # dead-lettering: reject without requeue, then max-length overflow, then expiry
        ch.exchange_declare(f"{p}.dlx", "fanout")
        ch.queue_declare(f"{p}.dead")
        ch.queue_bind(f"{p}.dead", f"{p}.dlx")
        ch.queue_declare(f"{p}.work", arguments={"x-dead-letter-exchange": f"{p}.dlx", "x-max-length": 2})
        ch.confirm_delivery()
        ch.basic_publish("", f"{p}.work", b"rejected", pika.BasicProperties(headers={"h": 1}))
        m, _pr, _b = ch.basic_get(f"{p}.work")
        ch.basic_reject(m.delivery_tag, requeue=False)
        for body in (b"a", b"b", b"c"):
            ch.basic_publish("", f"{p}.work", body)
        ok = ch.queue_declare(f"{p}.work", passive=True)
        obs["work_count"] = ok.method.message_count
        obs["work_head"] = [ch.basic_get(f"{p}.work", auto_ack=True)[2] for _ in range(2)]
        # RabbitMQ expires per-message TTL only at the head of the queue: keep it there
        ch.basic_publish("", f"{p}.work", b"expired", pika.BasicProperties(expiration="0"))
        dead: list[Any] = []

        def fetch_dead() -> bool:
            m, pr, body = ch.basic_get(f"{p}.dead", auto_ack=True)
            if m is not None:
                dead.append([body, m.exchange, m.routing_key, _x_death(pr.headers), pr.expiration,
                             {k: v for k, v in (pr.headers or {}).items() if k not in ("x-death",)}])
            return len(dead) >= 3

        wait_until(fetch_dead, 10.0, lambda: conn.process_data_events(time_limit=0.02), "3 dead letters")
        obs["dead"] = dead
        obs["work_count_after"] = ch.queue_declare(f"{p}.work", passive=True).method.message_count

        # priorities: higher first, FIFO within a priority
        ch.queue_declare(f"{p}.prio", arguments={"x-max-priority": 5}, auto_delete=True)
        for body, prio in ((b"low1", 1), (b"high", 5), (b"none", None), (b"low2", 1), (b"over", 9)):
            ch.basic_publish("", f"{p}.prio", body, pika.BasicProperties(priority=prio))
        order = []
        while True:
            m, _pr, body = ch.basic_get(f"{p}.prio", auto_ack=True)
            if m is None:
                break
            order.append(body)
        obs["priority_order"] = order

        # headers exchange, x-match any; topic wildcards
        ch.exchange_declare(f"{p}.h", "headers", auto_delete=True)
        ch.queue_declare(f"{p}.hq", auto_delete=True)
        ch.queue_bind(f"{p}.hq", f"{p}.h", arguments={"x-match": "any", "a": 1, "b": "two"})
        ch.exchange_declare(f"{p}.t", "topic", auto_delete=True)
        ch.queue_bind(f"{p}.hq", f"{p}.t", "a.*.c")
        ch.queue_bind(f"{p}.hq", f"{p}.t", "x.#")
        for ex, rk, h in ((f"{p}.h", "", {"a": 1}), (f"{p}.h", "", {"b": "two", "c": 3}),
                          (f"{p}.h", "", {"a": 2}), (f"{p}.t", "a.b.c", None), (f"{p}.t", "a.b.b.c", None),
                          (f"{p}.t", "x", None), (f"{p}.t", "x.y.z", None)):
            ch.basic_publish(ex, rk, f"{ex[-1]}:{rk}:{h}".encode(), pika.BasicProperties(headers=h))
        routed = []
        while True:
            m, _pr, body = ch.basic_get(f"{p}.hq", auto_ack=True)
            if m is None:
                break
            routed.append(body)
        obs["routed"] = routed

        # transactions: rollback drops publishes and acks, commit applies them
        tch = conn.channel()
        tch.queue_declare(f"{p}.tx", auto_delete=True)
        tch.tx_select()
        tch.basic_publish("", f"{p}.tx", b"t1")
        tch.tx_rollback()
        tch.basic_publish("", f"{p}.tx", b"t2")
        tch.tx_commit()
        m, _pr, body = tch.basic_get(f"{p}.tx")
        tch.basic_ack(m.delivery_tag)
        tch.tx_rollback()  # the ack is undone: the message stays unacked on this channel
        obs["tx_after_rollback"] = [body, ch.queue_declare(f"{p}.tx", passive=True).method.message_count]
        tch.basic_ack(m.delivery_tag)
        tch.tx_commit()
        obs["tx_after_commit"] = ch.queue_declare(f"{p}.tx", passive=True).method.message_count
        obs["confirm_after_tx"] = _channel_error(conn, lambda c: (c.tx_select(), c.confirm_delivery()))

        for q in (f"{p}.dead", f"{p}.work"):
            ch.queue_delete(q)
        ch.exchange_delete(f"{p}.dlx")
    finally:
        if conn.is_open:
            conn.close()

    # connection-level errors: the whole connection is closed
    obs["prefetch_size"] = _connection_error(url, lambda c: c.basic_qos(prefetch_size=1))
    obs["reuse_consumer_tag"] = _connection_error(url, lambda c: (
        c.queue_declare(f"{p}.ct", auto_delete=True),
        c._impl._send_method(pika.spec.Basic.Consume(queue=f"{p}.ct", consumer_tag="same", no_ack=True)),
        c._impl._send_method(pika.spec.Basic.Consume(queue=f"{p}.ct", consumer_tag="same", no_ack=True)),
        c.queue_declare("", exclusive=True)))
    obs["immediate_publish"] = _connection_error(url, lambda c: (
        c._impl._send_method(pika.spec.Basic.Publish(exchange="", routing_key="x", immediate=True),
                             (pika.BasicProperties(), b"x")),
        c.queue_declare("", exclusive=True)))
    return normalize(obs, p)


def test_edge_cases_match_rabbitmq(warren, rabbitmq, prefix):
    assert_same(edge_scenario(warren.url, prefix), edge_scenario(rabbitmq, prefix))


def dead_letter_types(url: str, p: str) -> dict[str, Any]:
    """The field-table types pika decoded x-death's values as (pika keeps 'l' apart
    from the smaller integer types)."""
    conn = _connect(url)
    try:
        ch = conn.channel()
        ch.queue_declare(f"{p}.dead", auto_delete=True)
        ch.queue_declare(f"{p}.work", auto_delete=True, arguments={
            "x-dead-letter-exchange": "", "x-dead-letter-routing-key": f"{p}.dead"})
        ch.confirm_delivery()
        # a small value sent as a long must stay a long (pamqp would re-encode it as 'b')
        headers = {"big": 2**40, "small_long": pika.compat.long(5), "small_int": 5}
        ch.basic_publish("", f"{p}.work", b"x", pika.BasicProperties(headers=headers))
        m, _pr, _b = ch.basic_get(f"{p}.work")
        ch.basic_reject(m.delivery_tag, requeue=False)
        got: list[Any] = []
        wait_until(lambda: got.append(ch.basic_get(f"{p}.dead", auto_ack=True)) or got[-1][0],
                   10.0, what="the dead letter")
        _m, pr, _b = got[-1]
        death = pr.headers["x-death"][0]
        return normalize({
            "x-death": {k: type(v).__name__ for k, v in death.items()},
            "headers": {k: type(pr.headers[k]).__name__ for k in headers},
        }, p)
    finally:
        conn.close()


def test_dead_letter_header_types_match_rabbitmq(warren, rabbitmq, prefix):
    assert_same(dead_letter_types(warren.url, prefix), dead_letter_types(rabbitmq, prefix))


def long_error_texts(url: str, p: str) -> dict[str, Any]:
    """Reply texts over 255 bytes: RabbitMQ sends the first 252 bytes plus '...'.

    RabbitMQ cuts bytes even inside a UTF-8 sequence (pika then hands out raw bytes);
    warren cuts at the last whole character. The padding below makes the cut fall on
    a character boundary, where both send the same text."""
    head = len("NOT_FOUND - no queue '") + len(p) + 1
    utf8_name = f"{p}." + "x" * (head % 2) + "é" * 100
    conn = _connect(url)
    try:
        return normalize({
            "ascii": _channel_error(conn, lambda c: c.queue_declare(f"{p}." + "q" * 200, passive=True)),
            "utf8": _channel_error(conn, lambda c: c.queue_declare(utf8_name, passive=True)),
            "connection_open": conn.is_open,
        }, p)
    finally:
        if conn.is_open:
            conn.close()


def test_long_error_texts_match_rabbitmq(warren, rabbitmq, prefix):
    assert_same(long_error_texts(warren.url, prefix), long_error_texts(rabbitmq, prefix))
