"""Dead-lettering: reasons, the x-death header, the dead-letter routing key, cycles."""

from __future__ import annotations

import datetime


def get(q):
    item = q.get()
    assert item is not None, f"{q.name} is empty"
    q.ack(item[0])
    return item[1]


def reject_one(model, q, requeue: bool = False):
    ch = model.channel()
    c = ch.consume(q, prefetch=1)
    model.run()
    assert ch.deliveries, f"nothing delivered from {q.name}"
    ch.cancel(c)
    ch.reject(ch.deliveries[0].tag, requeue=requeue)
    model.run()
    return ch.deliveries[0].msg


def test_rejected_x_death_fields(model):
    dlq = model.queue("dlq")
    model.exchange("dlx", "fanout")
    model.bind("dlx", dlq)
    q = model.queue("q", {"x-dead-letter-exchange": "dlx"})
    model.publish("", "q", "m", message_id="id-1", headers={"app": "kept"})
    reject_one(model, q)
    m = get(dlq)
    assert m.body == b"m" and m.properties.message_id == "id-1"
    # delivered from the dead-letter exchange with the original routing key
    assert (m.exchange, m.routing_key) == ("dlx", "q")
    h = m.headers
    assert h["app"] == "kept"
    (death,) = h["x-death"]
    assert death["count"] == 1
    assert death["reason"] == "rejected"
    assert death["queue"] == "q"
    assert death["exchange"] == ""
    assert death["routing-keys"] == ["q"]
    assert isinstance(death["time"], datetime.datetime)
    assert "original-expiration" not in death
    assert (h["x-first-death-reason"], h["x-first-death-queue"], h["x-first-death-exchange"]) == ("rejected", "q", "")
    assert q.dead_lettered == {"rejected": 1}


def test_expired_x_death_keeps_original_expiration(model):
    dlq = model.queue("dlq")
    model.queue("q", {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": "dlq"})
    model.publish("", "q", "m", expiration="250")
    model.clock.advance(0.3)
    m = get(dlq)
    assert m.properties.expiration is None  # removed, so it does not expire again
    (death,) = m.headers["x-death"]
    assert death["reason"] == "expired" and death["original-expiration"] == "250"
    assert m.routing_key == "dlq"


def test_maxlen_reason(model):
    dlq = model.queue("dlq")
    q = model.queue("q", {"x-max-length": 1, "x-dead-letter-exchange": "", "x-dead-letter-routing-key": "dlq"})
    model.publish("", "q", "old")
    model.publish("", "q", "new")
    assert get(dlq).headers["x-death"][0]["reason"] == "maxlen"
    assert get(q).body == b"new"


def test_dead_letter_routing_key_replaces_key_and_cc(model):
    by_dlrk, by_orig, by_cc = model.queue("by-dlrk"), model.queue("by-orig"), model.queue("by-cc")
    model.exchange("dlx", "direct")
    model.bind("dlx", by_dlrk, "dead")
    model.bind("dlx", by_orig, "orig")
    model.bind("dlx", by_cc, "cc1")
    with_key = model.queue("with-key", {"x-dead-letter-exchange": "dlx", "x-dead-letter-routing-key": "dead"})
    without = model.queue("without", {"x-dead-letter-exchange": "dlx"})
    model.exchange("in", "direct")
    model.bind("in", with_key, "orig")
    model.bind("in", without, "orig")
    # CC as a header (the channel also routes on it: here it matches nothing on "in")
    model.publish("in", "orig", "m", headers={"CC": ["cc1"]})
    reject_one(model, with_key)
    reject_one(model, without)
    assert [len(q.store) for q in (by_dlrk, by_orig, by_cc)] == [1, 1, 1]
    m = get(by_dlrk)
    assert m.routing_key == "dead"
    # x-death records the keys the message was published with (CC included)
    assert m.headers["x-death"][0]["routing-keys"] == ["orig", "cc1"]
    assert get(by_orig).headers["x-death"][0]["queue"] == "without"
    assert get(by_cc).body == b"m"


def test_bcc_header_is_removed(model):
    dlq = model.queue("dlq")
    q = model.queue("q", {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": "dlq"})
    model.publish("", "q", "m", headers={"BCC": ["secret"], "keep": 1})
    reject_one(model, q)
    h = get(dlq).headers
    assert "BCC" not in h and h["keep"] == 1
    assert h["x-death"][0]["routing-keys"] == ["q"]


def test_x_death_count_increments_in_a_rejection_cycle(model):
    # q dead-letters to itself; a cycle with a rejection in it is allowed
    q = model.queue("q", {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": "q"})
    model.publish("", "q", "m")
    for _ in range(3):
        reject_one(model, q)
    m = get(q)
    (death,) = m.headers["x-death"]
    assert death["count"] == 3 and death["reason"] == "rejected"
    assert m.headers["x-first-death-reason"] == "rejected"
    assert q.dead_lettered == {"rejected": 3}


def test_x_death_newest_first_and_first_death_kept(model):
    dlq = model.queue("dlq")
    q2 = model.queue("q2", {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": "dlq"})
    model.queue("q1", {"x-message-ttl": 100, "x-dead-letter-exchange": "", "x-dead-letter-routing-key": "q2"})
    model.publish("", "q1", "m")
    model.clock.advance(0.2)
    reject_one(model, q2)
    h = get(dlq).headers
    assert [(d["queue"], d["reason"]) for d in h["x-death"]] == [("q2", "rejected"), ("q1", "expired")]
    assert (h["x-first-death-queue"], h["x-first-death-reason"]) == ("q1", "expired")


def test_expiry_cycle_is_dropped(model):
    # q dead-letters expired messages back to itself: the cycle has no rejection, so the
    # message is dropped (as RabbitMQ) instead of looping forever
    q = model.queue("q", {"x-message-ttl": 100, "x-dead-letter-exchange": "", "x-dead-letter-routing-key": "q"})
    model.publish("", "q", "m")
    model.clock.advance(0.15)
    assert len(q.store) == 0 and q.expired == 1
    model.clock.advance(1.0)
    assert len(q.store) == 0 and q.expired == 1
    assert model.clock.pending() == []


def test_two_queue_expiry_cycle_is_dropped(model):
    a = model.queue("a", {"x-message-ttl": 100, "x-dead-letter-exchange": "", "x-dead-letter-routing-key": "b"})
    b = model.queue("b", {"x-message-ttl": 100, "x-dead-letter-exchange": "", "x-dead-letter-routing-key": "a"})
    model.publish("", "a", "m")
    model.clock.advance(0.15)
    assert (len(a.store), len(b.store)) == (0, 1)
    model.clock.advance(0.1)  # b -> a would close the cycle a -> b -> a
    assert (len(a.store), len(b.store)) == (0, 0)
    assert model.clock.pending() == []


def test_older_rejection_does_not_hide_a_later_expiry_cycle(model):
    # a rejects into b; b expires into itself: x-death [b expired, a rejected]
    model.queue("a", {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": "b"})
    b = model.queue("b", {"x-message-ttl": 100, "x-dead-letter-exchange": "", "x-dead-letter-routing-key": "b"})
    model.publish("", "a", "m")
    reject_one(model, model.vhost.queues["a"])
    assert len(b.store) == 1
    model.clock.advance(1.0)
    assert len(b.store) == 0 and b.expired == 1


def test_missing_dead_letter_exchange_drops(model):
    q = model.queue("q", {"x-dead-letter-exchange": "nope"})
    model.publish("", "q", "m")
    reject_one(model, q)
    assert q.dead_lettered == {} and q.dropped_no_dlx == {"rejected": 1}


def test_dead_lettering_is_traced(model):
    model.node.tracer.set("/", journey=True)
    dlq = model.queue("dlq")
    model.queue("q", {"x-message-ttl": 50, "x-dead-letter-exchange": "", "x-dead-letter-routing-key": "dlq"})
    model.publish("", "q", "m", message_id="trace-me")
    model.clock.advance(0.1)
    events = model.node.tracer.events("trace-me")
    assert [e["event"] for e in events] == ["published", "routed", "dead_lettered"]
    assert events[1]["queues"] == ["q"]
    dl = events[2]
    assert (dl["queue"], dl["reason"], dl["exchange"], dl["queues"]) == ("q", "expired", "", ["dlq"])
    assert len(dlq.store) == 1
    assert events[0]["connection"] == "management API"


def test_cycle_drop_leaves_the_queue_out_of_result_and_trace(model):
    # dlx reaches the queue the message died in (dropped: a cycle) and another one
    model.node.tracer.set("/", journey=True)
    model.exchange("dlx", "fanout")
    q = model.queue("q", {"x-message-ttl": 10, "x-dead-letter-exchange": "dlx"})
    other = model.queue("other")
    model.bind("dlx", q)
    model.bind("dlx", other)
    model.publish("", "q", "m", message_id="cyc")
    model.clock.advance(0.1)
    assert (len(q.store), len(other.store)) == (0, 1)
    dead = [e for e in model.node.tracer.events("cyc") if e["event"] == "dead_lettered"]
    assert [e["queues"] for e in dead] == [["other"]]


def test_cc_header_kept_without_a_dead_letter_routing_key(model):
    dlq = model.queue("dlq")
    model.exchange("dlx", "fanout")
    model.bind("dlx", dlq)
    q = model.queue("q", {"x-dead-letter-exchange": "dlx"})
    model.publish("", "q", "m", headers={"CC": ["cc1"]})
    reject_one(model, q)
    assert get(dlq).headers["CC"] == ["cc1"]


def test_cc_header_removed_with_a_dead_letter_routing_key(model):
    dlq = model.queue("dlq")
    q = model.queue("q", {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": "dlq"})
    model.publish("", "q", "m", headers={"CC": ["cc1"], "keep": 1})
    reject_one(model, q)
    h = get(dlq).headers
    assert h["x-death"][0]["routing-keys"] == ["q", "cc1"]
    assert "CC" not in h and h["keep"] == 1
