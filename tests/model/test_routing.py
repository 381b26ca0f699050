"""Routing through VHost.publish: exchange types, e2e bindings, alternate exchanges, CC/BCC."""

from __future__ import annotations

import pytest


def names(res) -> list[str]:
    return sorted(q.name for q in res.queues)


def test_default_exchange_routes_by_queue_name(model):
    q = model.queue("q1")
    res = model.publish("", "q1", b"a")
    assert names(res) == ["q1"] and res.routed and res.refused == 0
    assert len(q.store) == 1
    assert not model.publish("", "nope", b"a").routed


def test_direct_exact_key(model):
    qa, qb = model.queue("qa"), model.queue("qb")
    model.exchange("d", "direct")
    model.bind("d", qa, "k1")
    model.bind("d", qb, "k1")
    model.bind("d", qb, "k2")
    assert names(model.publish("d", "k1")) == ["qa", "qb"]
    assert names(model.publish("d", "k2")) == ["qb"]
    assert names(model.publish("d", "K1")) == []
    assert (len(qa.store), len(qb.store)) == (1, 2)


def test_fanout_ignores_key(model):
    qa, qb = model.queue("qa"), model.queue("qb")
    model.exchange("f", "fanout")
    model.bind("f", qa, "x")
    model.bind("f", qb, "")
    assert names(model.publish("f", "anything")) == ["qa", "qb"]


@pytest.mark.parametrize(
    ("pattern", "key", "matches"),
    [
        ("a.b.c", "a.b.c", True),
        ("a.*.c", "a.b.c", True),
        ("a.*.c", "a.c", False),
        ("a.*.c", "a.b.b.c", False),
        ("*.b", "b", False),
        ("*", "", False),  # an empty key has no words (as RabbitMQ)
        ("*", ".", False),
        ("*.*", ".", True),  # two empty words
        ("#", ".", True),
        ("a.#", "a", True),  # '#' matches zero words
        ("a.#", "a.b.c", True),
        ("#.c", "c", True),
        ("#.c", "a.b.c", True),
        ("#.c", "a.b.cd", False),
        ("a.#.c", "a.c", True),
        ("a.#.c", "a.x.y.c", True),
        ("#", "", True),
        ("#", "any.thing.at.all", True),
        ("#.#", "a", True),
        ("*.#", "", False),
        ("*.*", "a", False),
        ("a.*.#", "a", False),
        ("a.*.#", "a.b", True),
    ],
)
def test_topic_patterns(model, pattern, key, matches):
    # expectations taken from RabbitMQ 3.10
    q = model.queue("q")
    model.exchange("t", "topic")
    model.bind("t", q, pattern)
    assert model.publish("t", key).routed is matches


def test_topic_reaches_each_queue_once(model):
    q = model.queue("q")
    model.exchange("t", "topic")
    model.bind("t", q, "a.#")
    model.bind("t", q, "a.*")
    model.bind("t", q, "#")
    res = model.publish("t", "a.b", b"m")
    assert names(res) == ["q"]
    assert len(q.store) == 1


def test_headers_all_and_any(model):
    qall, qany = model.queue("qall"), model.queue("qany")
    model.exchange("h", "headers")
    model.bind("h", qall, "", {"x-match": "all", "a": 1, "b": "x"})
    model.bind("h", qany, "", {"x-match": "any", "a": 1, "b": "x"})
    assert names(model.publish("h", "", headers={"a": 1, "b": "x"})) == ["qall", "qany"]
    assert names(model.publish("h", "", headers={"a": 1, "b": "y"})) == ["qany"]
    assert names(model.publish("h", "", headers={"b": "x", "c": 2})) == ["qany"]
    assert names(model.publish("h", "", headers={"a": 2})) == []
    assert names(model.publish("h", "")) == []  # no headers at all
    # the routing key plays no part
    assert names(model.publish("h", "whatever", headers={"a": 1, "b": "x"})) == ["qall", "qany"]


def test_headers_default_is_all_and_x_keys_are_ignored(model):
    q, qx = model.queue("q"), model.queue("qx")
    model.exchange("h", "headers")
    model.bind("h", q, "", {"a": 1, "x-ignored": "z"})
    model.bind("h", qx, "", {"x-match": "all-with-x", "a": 1, "x-ignored": "z"})
    assert names(model.publish("h", "", headers={"a": 1})) == ["q"]
    assert names(model.publish("h", "", headers={"a": 1, "x-ignored": "z"})) == ["q", "qx"]


def test_exchange_to_exchange(model):
    q1, q2, q3 = model.queue("q1"), model.queue("q2"), model.queue("q3")
    src = model.exchange("src", "direct")
    mid = model.exchange("mid", "fanout")
    leaf = model.exchange("leaf", "topic")
    model.bind(src, mid, "k")
    model.bind(mid, q1)
    model.bind(mid, leaf)
    model.bind(leaf, q2, "k")  # the original routing key travels through the fanout
    model.bind(leaf, q3, "other")
    model.bind(src, q1, "k")  # reached twice, stored once
    res = model.publish("src", "k", b"m")
    assert names(res) == ["q1", "q2"]
    assert (len(q1.store), len(q2.store), len(q3.store)) == (1, 1, 0)
    assert names(model.publish("src", "other")) == []


def test_exchange_binding_cycle_terminates(model):
    q = model.queue("q")
    a = model.exchange("a", "fanout")
    b = model.exchange("b", "fanout")
    model.bind(a, b)
    model.bind(b, a)
    model.bind(b, q)
    assert names(model.publish("a", "k")) == ["q"]
    assert names(model.publish("b", "k")) == ["q"]
    assert len(q.store) == 2


def test_alternate_exchange(model):
    q, qae = model.queue("q"), model.queue("qae")
    model.exchange("ae", "fanout")
    model.bind("ae", qae)
    model.exchange("main", "direct", {"alternate-exchange": "ae"})
    model.bind("main", q, "known")
    assert names(model.publish("main", "known")) == ["q"]
    assert names(model.publish("main", "unknown")) == ["qae"]
    assert (len(q.store), len(qae.store)) == (1, 1)


def test_alternate_exchange_chain_and_missing(model):
    q = model.queue("q")
    model.exchange("ae2", "fanout")
    model.bind("ae2", q)
    model.exchange("ae1", "direct", {"alternate-exchange": "ae2"})
    model.exchange("main", "direct", {"alternate-exchange": "ae1"})
    assert names(model.publish("main", "k")) == ["q"]
    # an alternate exchange that does not exist: unroutable, no error
    model.exchange("lonely", "direct", {"alternate-exchange": "missing"})
    res = model.publish("lonely", "k")
    assert not res.routed


def test_alternate_exchanges_in_a_loop_terminate(model):
    model.exchange("x1", "direct", {"alternate-exchange": "x2"})
    model.exchange("x2", "direct", {"alternate-exchange": "x1"})
    assert not model.publish("x1", "k").routed


def test_cc_bcc_extra_keys(model):
    qa, qb, qc = model.queue("qa"), model.queue("qb"), model.queue("qc")
    model.exchange("d", "direct")
    model.bind("d", qa, "a")
    model.bind("d", qb, "b")
    model.bind("d", qc, "c")
    # the channel turns CC and BCC headers into extra routing keys
    res = model.publish("d", "a", b"m", extra_keys=["b", "c", "a"])
    assert names(res) == ["qa", "qb", "qc"]
    assert (len(qa.store), len(qb.store), len(qc.store)) == (1, 1, 1)
    # each queue holds its own copy, sharing the body
    ma, mb = qa.store.peek()[1], qb.store.peek()[1]
    assert ma is not mb and ma.body is mb.body


def test_cc_keys_go_through_exchange_bindings(model):
    q = model.queue("q")
    model.exchange("src", "direct")
    model.exchange("dst", "direct")
    model.bind("src", model.vhost.exchanges["dst"], "cc")
    model.bind("dst", q, "cc")
    assert names(model.publish("src", "main", extra_keys=["cc"])) == ["q"]


def test_unroutable_result_and_exchange_counters(model):
    ex = model.exchange("d", "direct")
    q = model.queue("q")
    model.bind(ex, q, "k")
    res = model.publish("d", "none", mandatory=True)
    assert not res.routed and not res.delayed and res.refused == 0
    assert model.publish("d", "k").routed
    # counted origins count every publish in, only routed ones out
    assert (ex.published_in, ex.published_out) == (2, 1)


def test_mandatory_on_delayed_exchange_unroutable_is_not_held(model):
    model.exchange("dl", "x-delayed-message", {"x-delayed-type": "direct"})
    res = model.publish("dl", "k", headers={"x-delay": 5000}, mandatory=True)
    assert not res.routed and not res.delayed
    q = model.queue("q")
    model.bind("dl", q, "k")
    res = model.publish("dl", "k", headers={"x-delay": 5000}, mandatory=True)
    assert res.routed and res.delayed
    assert len(q.store) == 0  # held, not yet in the queue
