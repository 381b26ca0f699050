"""x-delivery-limit: warren (any queue) against RabbitMQ's quorum queues, the only
RabbitMQ queue type with the feature. Compared: the x-delivery-count header on each
redelivery, the number of deliveries before the message is dead-lettered, and the
dead-lettered message's x-death reason and count."""

from __future__ import annotations

import time
from typing import Any

import pika


def run_delivery_limit(url: str, p: str, quorum: bool) -> dict[str, Any]:
    conn = pika.BlockingConnection(pika.URLParameters(url))
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        ch.exchange_declare(f"{p}.dlx", "fanout", durable=True)
        ch.queue_declare(f"{p}.dead", durable=True)
        ch.queue_bind(f"{p}.dead", f"{p}.dlx")
        args: dict[str, Any] = {"x-delivery-limit": 2, "x-dead-letter-exchange": f"{p}.dlx"}
        if quorum:
            args["x-queue-type"] = "quorum"
        ch.queue_declare(f"{p}.work", durable=True, arguments=args)
        ch.basic_publish("", f"{p}.work", b"poison", pika.BasicProperties(delivery_mode=2))
        counts: list[Any] = []
        redelivered: list[bool] = []
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            m, props, _body = ch.basic_get(f"{p}.work")
            if m is None:
                dm, dprops, dbody = ch.basic_get(f"{p}.dead", auto_ack=True)
                if dm is not None:
                    death = dprops.headers["x-death"][0]
                    ch.queue_delete(f"{p}.work")
                    ch.queue_delete(f"{p}.dead")
                    ch.exchange_delete(f"{p}.dlx")
                    return {
                        "delivery_counts": counts,
                        "redelivered": redelivered,
                        "dead_body": dbody,
                        "reason": death["reason"],
                        "count": death["count"],
                        "first_death_reason": dprops.headers["x-first-death-reason"],
                    }
                conn.process_data_events(time_limit=0.02)
                continue
            counts.append((props.headers or {}).get("x-delivery-count"))
            redelivered.append(m.redelivered)
            ch.basic_nack(m.delivery_tag, requeue=True)
        raise TimeoutError(f"poison message never dead-lettered; deliveries seen: {counts}")
    finally:
        conn.close()


def test_delivery_limit_warren(warren, prefix):
    obs = run_delivery_limit(warren.url, prefix, quorum=False)
    assert obs["delivery_counts"] == [0, 1, 2]
    assert obs["reason"] == "delivery_limit"


def test_delivery_limit_differential_quorum(warren, rabbitmq, prefix):
    ours = run_delivery_limit(warren.url, prefix, quorum=False)
    theirs = run_delivery_limit(rabbitmq, prefix + "r", quorum=True)
    assert ours == theirs
