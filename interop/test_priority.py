"""Priority queues through pika: ordering across and within lanes, with requeues and
several consumers, on warren and (differential) on RabbitMQ."""

from __future__ import annotations

import random
from typing import Any

import pika

from interop.common import wait_until


def run_priority_scenario(url: str, p: str) -> dict[str, Any]:
    obs: dict[str, Any] = {}
    conn = pika.BlockingConnection(pika.URLParameters(url))
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        q = f"{p}.prio"
        ch.queue_declare(q, arguments={"x-max-priority": 10})
        rnd = random.Random(42)
        sent = []
        for i in range(60):
            prio = rnd.choice([None, 0, 1, 3, 5, 9, 10, 42])  # above max counts as max
            ch.basic_publish("", q, f"{i}".encode(), pika.BasicProperties(priority=prio))
            sent.append((i, prio))
        # basic.get drains strictly by priority, FIFO within a priority
        got = []
        last = 0
        for _ in range(5):  # take 5, then give them back: they return to their lane positions
            m, props, body = ch.basic_get(q, auto_ack=False)
            got.append((int(body), props.priority, m.redelivered))
            last = m.delivery_tag
        ch.basic_nack(last, multiple=True, requeue=True)
        for _ in range(15):
            m, props, body = ch.basic_get(q, auto_ack=False)
            got.append((int(body), props.priority, m.redelivered))
            ch.basic_ack(m.delivery_tag)
        obs["get_order"] = got
        # several consumers share the rest; the union in delivery order is still by priority
        deliveries: list[tuple[str, int, Any, bool]] = []
        ch.basic_qos(prefetch_count=1)

        def cb(tag: str):
            def f(chan, method, props, body):
                deliveries.append((tag, int(body), props.priority, method.redelivered))
                chan.basic_ack(method.delivery_tag)
            return f

        ch.basic_consume(q, cb("a"), consumer_tag="a")
        ch.basic_consume(q, cb("b"), consumer_tag="b")
        wait_until(lambda: len(deliveries) >= 45, 10, step=lambda: conn.process_data_events(time_limit=0.05),
                   what="45 deliveries")
        obs["consume_order"] = [(n, prio, red) for _t, n, prio, red in deliveries]
        obs["both_consumers_used"] = len({t for t, *_ in deliveries}) == 2
        ch.queue_delete(q)
    finally:
        conn.close()
    return obs


def _check(obs: dict[str, Any]) -> None:
    def eff(prio):
        return min(prio or 0, 10)

    order = [(n, p) for n, p, _r in obs["get_order"]] + [(n, p) for n, p, _r in obs["consume_order"]]
    # the 5 nacked messages come back first, in their original order, redelivered
    first5 = obs["get_order"][:5]
    again = obs["get_order"][5:10]
    assert [n for n, _p, _r in again] == [n for n, _p, _r in first5]
    assert all(r for _n, _p, r in again)
    dedup = [x for i, x in enumerate(order) if i < 5 or i >= 10]
    prios = [eff(p) for _n, p in dedup]
    assert prios == sorted(prios, reverse=True)
    for lane in set(prios):
        nums = [n for n, p in dedup if eff(p) == lane]
        assert nums == sorted(nums)
    assert obs["both_consumers_used"]


def test_priority_pika_warren(warren, prefix):
    _check(run_priority_scenario(warren.url, prefix))


def test_priority_pika_differential(warren, rabbitmq, prefix):
    ours = run_priority_scenario(warren.url, prefix)
    theirs = run_priority_scenario(rabbitmq, prefix + "r")
    _check(theirs)
    assert ours == theirs
