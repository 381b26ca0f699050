"""VHost.publish as the one pipeline: origins, exchange counters, delayed firing, tracing."""

from __future__ import annotations

from typing import Any

from warren.server.model.publish import MANAGEMENT

from tests.model.fakes import make_message


class AmqpOrigin:
    """What a channel is to the pipeline (``warren.server.model.delivery.Origin``)."""

    kind = "amqp"
    counted = True

    def __init__(self) -> None:
        self.session = FakeSession()

    def trace_fields(self) -> dict[str, Any]:
        return {"connection": "client 1", "channel": 1, "user": "guest"}


class FakeSession:
    def __init__(self) -> None:
        self.throttled: list = []

    def throttle(self, q) -> None:
        self.throttled.append(q)

    def unthrottle(self, q) -> None:
        self.throttled.remove(q)


def test_delayed_message_fires_on_the_clock(model):
    model.node.tracer.set("/", journey=True)
    q = model.queue("q")
    ex = model.exchange("dx", "x-delayed-message", {"x-delayed-type": "direct"})
    model.bind(ex, q, "k")
    for body, delay in (("late", 800), ("early", 200), ("mid", 500)):
        res = model.publish("dx", "k", body, headers={"x-delay": delay}, message_id=body)
        assert res.delayed and res.routed and res.refused == 0
    assert len(q.store) == 0 and ex.pending_count == 3
    model.clock.advance(0.199)
    assert len(q.store) == 0
    model.clock.advance(0.002)
    assert len(q.store) == 1
    model.clock.advance(0.6)
    assert ex.pending_count == 0
    got = []
    while (item := q.get()) is not None:
        got.append((item[1].body, item[1].headers["x-delay"]))
    # due-time order; x-delay negated on firing, as the plugin does
    assert got == [(b"early", -200), (b"mid", -500), (b"late", -800)]
    # counted once, when published; firing is not a second publish
    assert (ex.published_in, ex.published_out) == (3, 0)
    events = model.node.tracer.events("early")
    assert [e["event"] for e in events] == ["published", "delayed", "routed"]
    assert events[2]["queues"] == ["q"]


def test_delayed_message_without_positive_delay_routes_at_once(model):
    q = model.queue("q")
    ex = model.exchange("dx", "x-delayed-message", {"x-delayed-type": "fanout"})
    model.bind(ex, q)
    for headers in ({}, {"x-delay": 0}, {"x-delay": -5}, {"x-delay": "100"}):
        res = model.publish("dx", "", "m", headers=headers)
        assert res.routed and not res.delayed
    assert len(q.store) == 4


def test_origins_and_exchange_counters(model):
    dlq = model.queue("dlq")
    dlx = model.exchange("dlx", "fanout")
    model.bind(dlx, dlq)
    src = model.exchange("src", "direct")
    q = model.queue("q", {"x-dead-letter-exchange": "dlx"})
    model.bind(src, q, "k")
    # an AMQP publish and a management publish are both counted by the exchange
    model.vhost.publish(src, "k", make_message("a", "k", "src"), None, AmqpOrigin())
    model.vhost.publish(src, "k", make_message("b", "k", "src"), None, MANAGEMENT)
    model.vhost.publish(src, "none", make_message("c", "none", "src"), None, MANAGEMENT)
    assert (src.published_in, src.published_out) == (3, 2)
    # dead-lettering is not counted by the dead-letter exchange (as RabbitMQ)
    ch = model.channel()
    ch.consume(q)
    model.run()
    for d in list(ch.deliveries):
        ch.reject(d.tag, requeue=False)
    assert len(dlq.store) == 2
    assert (dlx.published_in, dlx.published_out) == (0, 0)


def test_every_entry_point_traces_routed_or_dead_lettered(model):
    model.node.tracer.set("/", journey=True)
    target = model.queue("target")
    src = model.queue("src", {"x-message-ttl": 10, "x-dead-letter-exchange": "", "x-dead-letter-routing-key": "target"})
    assert src is not None
    dx = model.exchange("dx", "x-delayed-message", {"x-delayed-type": "direct"})
    model.bind(dx, target, "target")
    ex = model.vhost.exchanges[""]
    model.vhost.publish(ex, "target", make_message("1", "target", message_id="amqp"), None, AmqpOrigin())
    model.vhost.publish(ex, "target", make_message("2", "target", message_id="mgmt"), None, MANAGEMENT)
    model.publish("dx", "target", "3", headers={"x-delay": 5}, message_id="delayed")
    model.publish("", "src", "4", message_id="dead")
    model.clock.advance(0.1)
    assert len(target.store) == 4
    tracer = model.node.tracer
    last = {mid: tracer.events(mid)[-1] for mid in ("amqp", "mgmt", "delayed", "dead")}
    assert {mid: (e["event"], e["queues"]) for mid, e in last.items()} == {
        "amqp": ("routed", ["target"]),
        "mgmt": ("routed", ["target"]),
        "delayed": ("routed", ["target"]),
        "dead": ("dead_lettered", ["target"]),
    }
    assert tracer.events("amqp")[0]["connection"] == "client 1"
    assert tracer.events("mgmt")[0]["connection"] == "management API"
    # the target counts each arrival the same way
    # as RabbitMQ, a queue counts publishes that came through a channel (AMQP, management)
    assert target.published == 2


def test_publisher_is_throttled_by_a_backlogged_queue(model):
    q = model.queue("q")
    q.flow_high = 1
    ch = model.channel()
    ch.flow = False  # a consumer that takes nothing: the backlog grows
    ch.consume(q)
    origin = AmqpOrigin()
    ex = model.vhost.exchanges[""]
    for _ in range(64):  # the backlog is looked at every 64th publish
        model.vhost.publish(ex, "q", make_message("m", "q"), None, origin)
    assert origin.session.throttled == [q]
    assert model.vhost.publish(ex, "q", make_message("m", "q"), None, MANAGEMENT).routed  # no session: never paused


def test_a_result_is_reused(model):
    from warren.server.model.publish import PublishResult

    q = model.queue("q")
    q.durable_store = True
    res = PublishResult()
    ex = model.vhost.exchanges[""]
    for _ in range(3):
        assert model.vhost.publish(ex, "q", make_message("m", "q", delivery_mode=2), None, MANAGEMENT, False, res) is res
    assert res.queues == (q,) and res.sync == {q.store}
    model.vhost.publish(ex, "nowhere", make_message("m", "nowhere"), None, MANAGEMENT, False, res)
    assert not res.routed and res.refused == 0
