"""max-length / max-length-bytes with drop-head, reject-publish and reject-publish-dlx."""

from __future__ import annotations

import pytest


def drain(q) -> list[bytes]:
    out = []
    while (item := q.get()) is not None:
        out.append(item[1].body)
    return out


def limited(model, name: str, overflow: str | None, **limits: int) -> tuple:
    dlq = model.queue(f"{name}-dlq")
    args = {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": dlq.name}
    if overflow is not None:
        args["x-overflow"] = overflow
    for k, v in limits.items():
        args["x-" + k.replace("_", "-")] = v
    return model.queue(name, args), dlq


@pytest.mark.parametrize("overflow", [None, "drop-head"])
def test_drop_head_dead_letters_the_oldest(model, overflow):
    q, dlq = limited(model, "q", overflow, max_length=2)
    results = [model.publish("", "q", f"m{i}") for i in range(4)]
    assert all(r.routed and r.refused == 0 for r in results)  # all confirmed
    assert drain(q) == [b"m2", b"m3"]
    assert drain(dlq) == [b"m0", b"m1"]
    assert q.dead_lettered == {"maxlen": 2}


def test_drop_head_max_length_zero_drops_the_message_itself(model):
    q, dlq = limited(model, "q", "drop-head", max_length=0)
    res = model.publish("", "q", "m")
    assert res.routed and res.refused == 0
    assert len(q.store) == 0 and drain(dlq) == [b"m"]


def test_drop_head_by_bytes(model):
    q, dlq = limited(model, "q", "drop-head", max_length_bytes=10)
    for body in ("aaaa", "bbbb", "cccc"):  # 12 bytes: the head goes
        model.publish("", "q", body)
    assert drain(q) == [b"bbbb", b"cccc"]
    assert drain(dlq) == [b"aaaa"]
    model.publish("", "q", "x" * 11)  # larger than the limit on its own
    assert len(q.store) == 0


def test_reject_publish_refuses_without_dead_lettering(model):
    q, dlq = limited(model, "q", "reject-publish", max_length=2)
    results = [model.publish("", "q", f"m{i}") for i in range(4)]
    assert [r.refused for r in results] == [0, 0, 1, 1]
    # the queue was reached (the channel nacks the refused ones) but did not take it
    assert [r.routed for r in results] == [True, True, False, False]
    assert all(r.queues == (q,) for r in results)
    assert drain(q) == [b"m0", b"m1"]
    assert len(dlq.store) == 0
    assert q.dropped == 2 and q.dead_lettered == {}
    # room again: accepted
    assert model.publish("", "q", "m4").refused == 0


def test_reject_publish_dlx_refuses_and_dead_letters(model):
    q, dlq = limited(model, "q", "reject-publish-dlx", max_length=1)
    assert model.publish("", "q", "m0").refused == 0
    res = model.publish("", "q", "m1")
    assert res.refused == 1 and not res.routed
    assert drain(q) == [b"m0"]
    item = dlq.get()
    assert item[1].body == b"m1"
    death = item[1].headers["x-death"][0]
    assert death["reason"] == "maxlen" and death["queue"] == "q"


def test_reject_publish_by_bytes(model):
    q, _dlq = limited(model, "q", "reject-publish", max_length_bytes=5)
    assert model.publish("", "q", "abc").refused == 0
    assert model.publish("", "q", "def").refused == 1
    assert model.publish("", "q", "de").refused == 0


def test_refused_by_one_of_several_queues(model):
    full, _ = limited(model, "full", "reject-publish", max_length=0)
    other = model.queue("other")
    model.exchange("f", "fanout")
    model.bind("f", full)
    model.bind("f", other)
    res = model.publish("f", "", "m")
    # the AMQP channel nacks when any queue refused; the management API answers routed
    # only if some queue took it
    assert sorted(q.name for q in res.queues) == ["full", "other"]
    assert res.refused == 1 and res.routed
    assert len(other.store) == 1 and len(full.store) == 0


def test_persistent_publish_to_a_durable_store_asks_for_a_sync(model):
    q = model.queue("q")
    res = model.publish("", "q", "m", delivery_mode=2)
    # a transient queue: nothing to fsync before the confirm
    assert res.sync == set()
    q.durable_store = True  # as create_queue sets it for a durable queue
    res = model.publish("", "q", "m", delivery_mode=2)
    assert res.sync == {q.store}
    res = model.publish("", "q", "m", delivery_mode=1)
    assert res.sync == set()
