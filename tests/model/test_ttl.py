"""Message TTL on the fake clock: per-queue x-message-ttl, per-message expiration, head-only expiry."""

from __future__ import annotations


def with_dlq(model, name: str, arguments: dict) -> tuple:
    """Queue ``name`` dead-lettering (via the default exchange) into ``<name>-dlq``."""
    dlq = model.queue(f"{name}-dlq")
    q = model.queue(name, {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": dlq.name, **arguments})
    return q, dlq


def dlq_bodies(dlq) -> list[bytes]:
    out = []
    while (item := dlq.get()) is not None:
        out.append(item[1].body)
    return out


def test_queue_ttl_expires_on_the_clock(model):
    q = model.queue("q", {"x-message-ttl": 1000})
    model.publish("", "q", "a")
    model.publish("", "q", "b")
    model.clock.advance(0.5)
    model.publish("", "q", "c")
    model.clock.advance(0.499)
    assert len(q.store) == 3 and q.expired == 0
    model.clock.advance(0.002)  # t = 1.001: a and b are due
    assert len(q.store) == 1 and q.expired == 2
    model.clock.advance(0.5)
    assert len(q.store) == 0 and q.expired == 3
    assert model.clock.pending() == []  # nothing left armed


def test_per_message_expiration(model):
    q = model.queue("q")
    model.publish("", "q", "short", expiration="200")
    model.clock.advance(0.199)
    assert len(q.store) == 1
    model.clock.advance(0.002)
    assert len(q.store) == 0 and q.expired == 1


def test_lower_of_queue_and_message_ttl_wins(model):
    q = model.queue("q", {"x-message-ttl": 1000})
    model.publish("", "q", "m", expiration="100")
    model.clock.advance(0.101)
    assert len(q.store) == 0
    model.publish("", "q", "m", expiration="5000")
    model.clock.advance(1.001)
    assert len(q.store) == 0 and q.expired == 2


def test_expiry_only_at_the_head(model):
    # as RabbitMQ: a message whose expiration passed behind a longer-lived one stays
    # (counted, not delivered) until it reaches the head; then both go, in order
    q, dlq = with_dlq(model, "q", {})
    model.publish("", "q", "long", expiration="10000")
    model.publish("", "q", "short", expiration="100")
    model.clock.advance(1.0)
    assert len(q.store) == 2 and q.expired == 0
    model.clock.advance(9.001)
    assert len(q.store) == 0 and q.expired == 2
    assert dlq_bodies(dlq) == [b"long", b"short"]


def test_expired_messages_are_not_delivered(model):
    q = model.queue("q", {"x-message-ttl": 100})
    model.publish("", "q", "old")
    model.clock.advance(0.05)
    model.publish("", "q", "new")
    model.clock.now += 0.06  # time passes without the timer running (a busy loop)
    ch = model.channel()
    ch.consume(q)
    model.run()
    assert ch.bodies() == [b"new"]
    assert q.expired == 1


def test_expired_at_basic_get(model):
    q = model.queue("q", {"x-message-ttl": 100})
    model.publish("", "q", "old")
    model.clock.now += 0.2
    assert q.get() is None
    assert q.expired == 1


def test_ttl_zero_delivers_only_to_a_ready_consumer(model):
    q, dlq = with_dlq(model, "q", {"x-message-ttl": 0})
    model.publish("", "q", "nobody")
    assert len(q.store) == 0 and q.expired == 1
    ch = model.channel()
    ch.consume(q, prefetch=1)
    model.publish("", "q", "taken")
    model.publish("", "q", "no-credit")
    model.run()
    assert ch.bodies() == [b"taken"]
    assert dlq_bodies(dlq) == [b"nobody", b"no-credit"]


def test_requeued_message_keeps_its_expiry(model):
    q = model.queue("q", {"x-message-ttl": 1000})
    ch = model.channel()
    c = ch.consume(q)
    model.publish("", "q", "m")
    model.run()
    model.clock.advance(0.6)
    ch.cancel(c)
    ch.reject(1, requeue=True)
    model.clock.advance(0.3)
    assert len(q.store) == 1
    model.clock.advance(0.2)  # 1.1 s after publish
    assert len(q.store) == 0 and q.expired == 1


def test_messages_expire_while_the_consumer_has_no_credit(model):
    q, dlq = with_dlq(model, "q", {"x-message-ttl": 500})
    ch = model.channel()
    ch.consume(q, prefetch=1)
    for i in range(3):
        model.publish("", "q", f"m{i}")
    model.run()
    assert ch.bodies() == [b"m0"]
    model.clock.advance(2.0)
    assert len(q.store) == 0
    assert dlq_bodies(dlq) == [b"m1", b"m2"]
