"""Delivery limit, queue expiry (x-expires) and auto-delete, on the fake clock."""

from __future__ import annotations

import pytest


def deliver_and_requeue(model, ch, q) -> list:
    """Deliver what the queue has to ``ch`` and requeue all of it; return the
    x-delivery-count headers the deliveries carried."""
    model.run()
    batch = ch.take()
    counts = [d.headers.get("x-delivery-count") for d in batch]
    for d in batch:
        ch.reject(d.tag, requeue=True)
    return counts


@pytest.mark.parametrize("kind", ["classic", "quorum"])
def test_delivery_limit_dead_letters_after_limit_returns(model, kind):
    dlq = model.queue("dlq")
    args = {"x-delivery-limit": 2, "x-dead-letter-exchange": "", "x-dead-letter-routing-key": "dlq"}
    if kind == "quorum":
        args["x-queue-type"] = "quorum"
    q = model.queue("q", args)
    ch = model.channel()
    ch.consume(q, prefetch=1)
    model.publish("", "q", "m")
    counts = []
    for _ in range(4):
        counts += deliver_and_requeue(model, ch, q)
    # delivered 3 times (count 0, 1, 2); the third return goes over the limit
    assert counts == [0, 1, 2]
    assert len(q.store) == 0
    item = dlq.get()
    assert item is not None and item[1].body == b"m"
    death = item[1].headers["x-death"][0]
    assert death["reason"] == "delivery_limit" and death["queue"] == "q"
    assert q.dead_lettered == {"delivery_limit": 1}


def test_delivery_limit_zero(model):
    q = model.queue("q", {"x-delivery-limit": 0})
    ch = model.channel()
    ch.consume(q)
    model.publish("", "q", "m")
    assert len(deliver_and_requeue(model, ch, q)) == 1
    model.run()
    assert ch.deliveries == [] and len(q.store) == 0
    assert q.dropped_no_dlx == {"delivery_limit": 1}


def test_reject_without_requeue_is_not_limited(model):
    q = model.queue("q", {"x-delivery-limit": 5, "x-dead-letter-exchange": "", "x-dead-letter-routing-key": "dlq"})
    dlq = model.queue("dlq")
    ch = model.channel()
    ch.consume(q)
    model.publish("", "q", "m")
    model.run()
    ch.reject(1, requeue=False)
    assert dlq.get()[1].headers["x-death"][0]["reason"] == "rejected"


def test_x_expires_deletes_an_unused_queue(model):
    q = model.queue("q", {"x-expires": 1000})
    model.publish("", "q", "m")  # publishing does not count as use
    model.clock.advance(0.999)
    assert model.vhost.queues.get("q") is q
    model.clock.advance(0.002)
    assert "q" not in model.vhost.queues and q.deleted
    assert model.node.totals.queues_created == 1


def test_x_expires_waits_while_consumed_and_restarts_after(model):
    q = model.queue("q", {"x-expires": 1000})
    ch = model.channel()
    c = ch.consume(q)
    model.clock.advance(5.0)
    assert model.vhost.queues.get("q") is q
    ch.cancel(c)
    model.clock.advance(0.9)
    assert model.vhost.queues.get("q") is q
    model.clock.advance(0.2)
    assert "q" not in model.vhost.queues


def test_basic_get_restarts_x_expires(model):
    q = model.queue("q", {"x-expires": 1000})
    model.clock.advance(0.8)
    assert q.get() is None
    model.clock.advance(0.8)
    assert model.vhost.queues.get("q") is q
    model.clock.advance(0.3)
    assert "q" not in model.vhost.queues


def test_deleting_a_queue_cancels_its_consumers_and_timers(model):
    q = model.queue("q", {"x-expires": 1000, "x-message-ttl": 500})
    model.exchange("f", "fanout")
    model.bind("f", q)
    ch = model.channel()
    ch.flow = False
    c = ch.consume(q)
    model.publish("f", "", "m")
    model.vhost.delete_queue(q)
    assert ch.cancelled == [c] and q.consumers == []
    assert not model.publish("f", "", "m").routed  # its bindings went too
    model.clock.advance(10.0)  # no timer of the deleted queue fires into anything
    assert q.expired == 0


def test_auto_delete_after_last_consumer(model):
    q = model.node.create_queue(model.vhost, "ad", False, None, True, {})
    ch = model.channel()
    c1, c2 = ch.consume(q), ch.consume(q)
    ch.cancel(c1)
    assert model.vhost.queues.get("ad") is q
    ch.cancel(c2)
    assert "ad" not in model.vhost.queues
