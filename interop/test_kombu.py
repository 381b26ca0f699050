"""kombu (py-amqp transport) against warren: entities, confirmed publishes, consume,
ack, requeue (basic.reject), basic.get, direct reply-to RPC and error cases.

``run_scenario(url, prefix)`` returns what the client observed; ``test_differential``
runs it against RabbitMQ too.
"""

from __future__ import annotations

from typing import Any

import amqp.exceptions
from kombu import Connection, Consumer, Exchange, Producer, Queue

from interop.common import REPLY_TO, normalize, wait_until

TIMEOUT = 10.0


def _drain(conn: Connection) -> None:
    try:
        conn.drain_events(timeout=0.05)
    except TimeoutError:
        pass


def _closed_by_broker(conn: Connection, action) -> list[Any]:
    ch = conn.channel()
    try:
        action(ch)
    except amqp.exceptions.ChannelError as exc:
        return [exc.reply_code, exc.reply_text, list(exc.method_sig or ()), type(exc).__name__]
    return ["not closed"]


def _msg(m) -> dict[str, Any]:
    di = m.delivery_info
    return {
        "payload": m.payload,
        "redelivered": di["redelivered"],
        "exchange": di["exchange"],
        "routing_key": di["routing_key"],
        "tag": di["delivery_tag"],
        "content_type": m.content_type,
        "headers": m.headers,
        "correlation_id": m.properties.get("correlation_id"),
        "priority": m.properties.get("priority"),
        "delivery_mode": m.properties.get("delivery_mode"),
    }


def run_scenario(url: str, p: str) -> dict[str, Any]:
    obs: dict[str, Any] = {}
    ex = Exchange(f"{p}.ex", "topic", durable=False)
    q = Queue(f"{p}.q", ex, routing_key="jobs.#", durable=False)
    with Connection(url, transport_options={"confirm_publish": True}, connect_timeout=5) as conn:
        conn.connect()
        chan = conn.channel()
        q(chan).declare()
        returned: list[Any] = []
        producer = Producer(chan, exchange=ex, serializer="json",
                            on_return=lambda exc, exchange, routing_key, message: returned.append(
                                [exc.reply_code, exc.reply_text, exchange, routing_key]))
        for i in range(3):
            producer.publish({"i": i, "text": "héllo"}, routing_key=f"jobs.n{i}", headers={"n": i, "tag": "x"},
                             priority=i, delivery_mode=2, correlation_id=f"c{i}", retry=False)
        producer.publish({"lost": True}, routing_key="other", mandatory=True, retry=False)
        wait_until(lambda: returned, TIMEOUT, lambda: _drain(conn), "basic.return")
        obs["returned"] = returned
        name, count, consumers = chan.queue_declare(f"{p}.q", passive=True)
        obs["passive"] = [name, count, consumers]

        got: list[Any] = []
        cchan = conn.channel()
        with Consumer(cchan, queues=[q], callbacks=[lambda body, m: got.append(m)], prefetch_count=10,
                      accept=["json"]) as _consumer:
            wait_until(lambda: len(got) >= 3, TIMEOUT, lambda: _drain(conn), "3 deliveries")
            got[0].ack()
            got[1].requeue()
            wait_until(lambda: len(got) >= 4, TIMEOUT, lambda: _drain(conn), "the redelivery")
            got[2].ack()
            got[3].ack()
            obs["deliveries"] = [_msg(m) for m in got]
            _name, count, consumers = chan.queue_declare(f"{p}.q", passive=True)
            obs["after_acks"] = [count, consumers]
        _name, count, consumers = chan.queue_declare(f"{p}.q", passive=True)
        obs["after_cancel"] = [count, consumers]

        # basic.get via kombu's Queue.get; reject-requeue brings it back redelivered
        producer.publish("g1", routing_key="jobs.get", retry=False)
        producer.publish("g2", routing_key="jobs.get", retry=False)
        bq = q(chan)
        m1 = bq.get()
        obs["get1"] = [m1.payload, m1.delivery_info["redelivered"], m1.delivery_info["message_count"]]
        m1.requeue()
        m2 = bq.get()
        obs["get2"] = [m2.payload, m2.delivery_info["redelivered"], m2.delivery_info["message_count"]]
        m2.ack()
        m3 = bq.get(no_ack=True)
        obs["get3"] = [m3.payload, m3.delivery_info["redelivered"], m3.delivery_info["message_count"]]
        obs["get_empty"] = bq.get() is None
        obs["purge"] = bq.purge()

        # RPC over direct reply-to
        rpcq = Queue(f"{p}.rpc", Exchange(""), routing_key=f"{p}.rpc", auto_delete=True)
        rpcq(chan).declare()
        replies: list[Any] = []
        rchan = conn.channel()
        rchan.basic_consume(REPLY_TO, no_ack=True, callback=replies.append)
        Producer(rchan).publish({"op": "add", "args": [2, 3]}, exchange="", routing_key=f"{p}.rpc",
                                reply_to=REPLY_TO, correlation_id="rpc-1", serializer="json", retry=False)
        reqs: list[Any] = []

        def fetch():
            m = rpcq(chan).get(no_ack=True)
            if m is not None:
                reqs.append(m)
            return reqs

        wait_until(fetch, TIMEOUT, lambda: _drain(conn), "rpc request")
        req = reqs[0]
        reply_to = req.properties["reply_to"]
        obs["rpc_request"] = [req.payload, reply_to, req.properties["correlation_id"]]
        args = req.payload["args"]
        Producer(chan).publish({"result": args[0] + args[1]}, routing_key=reply_to, serializer="json",
                         correlation_id=req.properties["correlation_id"], retry=False)
        wait_until(lambda: replies, TIMEOUT, lambda: _drain(conn), "rpc reply")
        r = replies[0]
        obs["rpc_reply"] = [r.body, r.properties.get("correlation_id"), r.delivery_info["redelivered"],
                            r.delivery_info["exchange"], r.delivery_info["routing_key"]]

        # error cases
        obs["err_passive_missing"] = _closed_by_broker(
            conn, lambda c: c.queue_declare(f"{p}.missing", passive=True))
        obs["err_inequivalent_queue"] = _closed_by_broker(
            conn, lambda c: c.queue_declare(f"{p}.q", durable=True))
        obs["err_inequivalent_args"] = _closed_by_broker(
            conn, lambda c: c.queue_declare(f"{p}.q", durable=False, auto_delete=False,
                                            arguments={"x-max-length": 10}))
        obs["err_inequivalent_exchange"] = _closed_by_broker(
            conn, lambda c: c.exchange_declare(f"{p}.ex", "topic", durable=True))

        def unknown_tag(c):
            c.basic_ack(99)
            c.queue_declare(f"{p}.q", passive=True)

        obs["err_unknown_tag"] = _closed_by_broker(conn, unknown_tag)

        def double_ack(c):
            c.basic_publish(amqp.Message(b"d"), "", f"{p}.q")
            c.queue_declare(f"{p}.q", passive=True)  # make sure it is routed
            m = c.basic_get(f"{p}.q")
            c.basic_ack(m.delivery_tag)
            c.basic_ack(m.delivery_tag)
            c.queue_declare(f"{p}.q", passive=True)

        obs["err_double_ack"] = _closed_by_broker(conn, double_ack)
        obs["err_delete_in_use"] = _closed_by_broker(
            conn, lambda c: c.exchange_delete(f"{p}.ex", if_unused=True))
        obs["queue_delete"] = chan.queue_delete(f"{p}.q")
        chan.exchange_delete(f"{p}.ex")
        obs["connected_after_errors"] = conn.connected
    return normalize(obs, p)


def test_kombu_scenario(warren, prefix):
    obs = run_scenario(warren.url, prefix)
    assert obs["returned"] == [[312, "NO_ROUTE", "<p>.ex", "other"]]
    assert obs["passive"] == ["<p>.q", 3, 0]
    d = obs["deliveries"]
    assert [(x["payload"], x["redelivered"], x["tag"]) for x in d] == [
        ({"i": 0, "text": "héllo"}, False, 1), ({"i": 1, "text": "héllo"}, False, 2),
        ({"i": 2, "text": "héllo"}, False, 3), ({"i": 1, "text": "héllo"}, True, 4)]
    assert d[1]["headers"] == d[3]["headers"] == {"n": 1, "tag": "x"}
    assert [x["routing_key"] for x in d] == ["jobs.n0", "jobs.n1", "jobs.n2", "jobs.n1"]
    assert d[2]["priority"] == 2 and d[2]["correlation_id"] == "c2" and d[2]["delivery_mode"] == 2
    assert obs["after_acks"] == [0, 1]
    assert obs["after_cancel"] == [0, 0]
    assert obs["get1"] == ["g1", False, 1]
    assert obs["get2"] == ["g1", True, 1]
    assert obs["get3"] == ["g2", False, 0]
    assert obs["get_empty"] is True
    assert obs["rpc_request"] == [{"op": "add", "args": [2, 3]}, "amq.rabbitmq.reply-to.<token>", "rpc-1"]
    assert obs["rpc_reply"] == ['{"result": 5}', "rpc-1", False, "", "amq.rabbitmq.reply-to.<token>"]
    assert obs["err_passive_missing"] == [
        404, "NOT_FOUND - no queue '<p>.missing' in vhost '/'", [50, 10], "NotFound"]
    assert obs["err_inequivalent_queue"] == [
        406, "PRECONDITION_FAILED - inequivalent arg 'durable' for queue '<p>.q' in vhost '/': "
        "received 'true' but current is 'false'", [50, 10], "PreconditionFailed"]
    assert obs["err_inequivalent_args"] == [
        406, "PRECONDITION_FAILED - inequivalent arg 'x-max-length' for queue '<p>.q' in vhost '/': "
        "received the value '10' of type 'signedint' but current is none", [50, 10], "PreconditionFailed"]
    assert obs["err_unknown_tag"] == [
        406, "PRECONDITION_FAILED - unknown delivery tag 99", [60, 80], "PreconditionFailed"]
    assert obs["err_double_ack"][:2] == [406, "PRECONDITION_FAILED - unknown delivery tag 1"]
    assert obs["connected_after_errors"] is True
