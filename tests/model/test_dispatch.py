"""Dispatch from a queue to consumers: round-robin, priorities, prefetch credit, single active consumer."""

from __future__ import annotations


def publish_n(model, queue: str, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        assert model.publish("", queue, f"m{i}").routed


def bodies(ch) -> list[str]:
    return [b.decode() for b in ch.bodies()]


def test_dispatch_runs_on_the_clock_not_inline(model):
    q = model.queue("q")
    ch = model.channel()
    ch.consume(q)
    publish_n(model, "q", 3)
    assert ch.deliveries == []  # a publish only schedules dispatch
    assert model.run() >= 1
    assert bodies(ch) == ["m0", "m1", "m2"]
    assert len(q.store) == 0 and q.unacked == 3


def test_round_robin_across_consumers(model):
    q = model.queue("q")
    ch1, ch2, ch3 = model.channel(1), model.channel(2), model.channel(3)
    for ch in (ch1, ch2, ch3):
        ch.consume(q)
    publish_n(model, "q", 7)
    model.run()
    assert bodies(ch1) == ["m0", "m3", "m6"]
    assert bodies(ch2) == ["m1", "m4"]
    assert bodies(ch3) == ["m2", "m5"]


def test_round_robin_skips_consumers_without_credit(model):
    q = model.queue("q")
    ch1, ch2 = model.channel(1), model.channel(2)
    ch1.consume(q, prefetch=1)
    ch2.consume(q)
    publish_n(model, "q", 5)
    model.run()
    assert bodies(ch1) == ["m0"]
    assert bodies(ch2) == ["m1", "m2", "m3", "m4"]


def test_prefetch_credit(model):
    q = model.queue("q")
    ch = model.channel()
    ch.consume(q, prefetch=2)
    publish_n(model, "q", 5)
    model.run()
    assert bodies(ch) == ["m0", "m1"]
    assert len(q.store) == 3
    ch.ack(1)
    model.run()
    assert bodies(ch) == ["m0", "m1", "m2"]
    ch.ack(2)
    ch.ack(3)
    model.run()
    assert bodies(ch) == ["m0", "m1", "m2", "m3", "m4"]
    assert len(q.store) == 0 and q.acked == 3


def test_no_ack_consumer_has_no_limit(model):
    q = model.queue("q")
    ch = model.channel()
    ch.consume(q, no_ack=True)
    publish_n(model, "q", 4)
    model.run()
    assert len(ch.deliveries) == 4 and q.unacked == 0 and ch.unacked == {}


def test_channel_credit_stops_and_resumes_dispatch(model):
    q = model.queue("q")
    ch = model.channel()
    ch.consume(q)
    ch.flow = False  # channel.flow off (or the channel closing)
    publish_n(model, "q", 3)
    model.run()
    assert ch.deliveries == [] and len(q.store) == 3
    ch.flow = True
    q.schedule_dispatch()  # what the session does when it can write again
    model.run()
    assert bodies(ch) == ["m0", "m1", "m2"]


def test_global_prefetch_spans_queues(model):
    q1, q2 = model.queue("q1"), model.queue("q2")
    ch = model.channel()
    ch.global_prefetch = 3
    ch.consume(q1)
    ch.consume(q2)
    publish_n(model, "q1", 3)
    publish_n(model, "q2", 3, start=10)
    model.run()
    assert len(ch.deliveries) == 3
    assert len(q1.store) + len(q2.store) == 3
    ch.ack(ch.deliveries[0].tag)
    model.run()
    assert len(ch.deliveries) == 4


def test_requeued_message_goes_back_to_the_head(model):
    q = model.queue("q")
    ch = model.channel()
    ch.consume(q, prefetch=1)
    publish_n(model, "q", 3)
    model.run()
    assert bodies(ch) == ["m0"]
    ch.reject(1, requeue=True)
    model.run()
    assert bodies(ch) == ["m0", "m0"]
    assert ch.deliveries[1].redelivered and not ch.deliveries[0].redelivered


def test_consumer_priorities(model):
    q = model.queue("q")
    lo, hi = model.channel(1), model.channel(2)
    lo.consume(q)
    hi.consume(q, prefetch=2, priority=10)
    publish_n(model, "q", 5)
    model.run()
    # the higher priority consumer takes what its credit allows, the rest goes lower
    assert bodies(hi) == ["m0", "m1"]
    assert bodies(lo) == ["m2", "m3", "m4"]
    hi.ack(1)
    publish_n(model, "q", 2, start=5)
    model.run()
    assert bodies(hi) == ["m0", "m1", "m5"]
    assert bodies(lo) == ["m2", "m3", "m4", "m6"]


def test_round_robin_within_a_priority_level(model):
    q = model.queue("q")
    a, b, low = model.channel(1), model.channel(2), model.channel(3)
    low.consume(q, priority=1)
    a.consume(q, priority=5)
    b.consume(q, priority=5)
    publish_n(model, "q", 4)
    model.run()
    assert bodies(a) == ["m0", "m2"] and bodies(b) == ["m1", "m3"] and bodies(low) == []


def test_single_active_consumer(model):
    q = model.queue("q", {"x-single-active-consumer": True})
    ch1, ch2 = model.channel(1), model.channel(2)
    c1 = ch1.consume(q)
    ch2.consume(q)
    assert q.active_consumer() is c1
    publish_n(model, "q", 3)
    model.run()
    assert bodies(ch1) == ["m0", "m1", "m2"] and bodies(ch2) == []
    ch1.cancel(c1)
    assert q.active_consumer() is not None and q.active_consumer().channel is ch2
    publish_n(model, "q", 2, start=3)
    model.run()
    assert bodies(ch2) == ["m3", "m4"]


def test_single_active_consumer_without_credit_blocks_the_others(model):
    q = model.queue("q", {"x-single-active-consumer": True})
    ch1, ch2 = model.channel(1), model.channel(2)
    ch1.consume(q, prefetch=1)
    ch2.consume(q)
    publish_n(model, "q", 3)
    model.run()
    # only the active consumer gets messages, even when it has no credit left
    assert bodies(ch1) == ["m0"] and bodies(ch2) == []
    assert len(q.store) == 2
    ch1.ack(1)
    model.run()
    assert bodies(ch1) == ["m0", "m1"]


def test_single_active_consumer_ignores_priority(model):
    # RabbitMQ 3.10: the first consumer registered is the active one
    q = model.queue("q", {"x-single-active-consumer": True})
    ch1, ch2 = model.channel(1), model.channel(2)
    c1 = ch1.consume(q, priority=0)
    ch2.consume(q, priority=10)
    assert q.active_consumer() is c1


def test_basic_get_takes_from_the_head(model):
    q = model.queue("q")
    publish_n(model, "q", 2)
    pos, msg = q.get()
    assert msg.body == b"m0" and q.delivered_get == 1
    q.ack(pos)
    assert len(q.store) == 1
