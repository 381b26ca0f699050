"""Exchanges: declare/delete and their errors, bindings (incl. exchange-to-exchange), routing
of every type (topic/headers matrices taken from RabbitMQ 3.10), alternate exchanges,
auto-delete."""

import asyncio

import aio_pika
import aiormq
import pytest
from pamqp import commands as C

E = aiormq.exceptions


async def drain(q: aio_pika.abc.AbstractQueue) -> list[bytes]:
    """Every message ready in ``q`` right now (basic.get until empty)."""
    out = []
    while True:
        m = await q.get(no_ack=True, fail=False)
        if m is None:
            return out
        out.append(m.body)


async def sync(ch: aio_pika.abc.AbstractChannel) -> None:
    """A round trip on the channel: everything published on it before has been routed."""
    await ch.declare_exchange("amq.direct", passive=True)


# ---------------------------------------------------------------- declare / delete
async def test_declare_kinds_and_passive(broker):
    conn = await aio_pika.connect(broker.url)
    async with conn:
        ch = await conn.channel()
        for name, kind in (("x.d", "direct"), ("x.f", "fanout"), ("x.t", "topic"), ("x.h", "headers")):
            await ch.declare_exchange(name, kind, durable=True)
            ex = await ch.declare_exchange(name, passive=True)
            assert ex.name == name
        # equivalent redeclare is fine
        await ch.declare_exchange("x.d", "direct", durable=True)
        await ch.declare_exchange("x.ad", "fanout", auto_delete=True)
        await ch.declare_exchange("x.int", "fanout", internal=True)


async def test_passive_declare_missing_404(broker):
    conn = await aio_pika.connect(broker.url)
    async with conn:
        ch = await conn.channel()
        with pytest.raises(E.ChannelNotFoundEntity) as ei:
            await ch.declare_exchange("nx", passive=True)
        assert ei.value.args[0] == "NOT_FOUND - no exchange 'nx' in vhost '/'"


@pytest.mark.parametrize("name", ["amq.direct", "amq.fanout", "amq.topic", "amq.headers", "amq.match"])
async def test_builtin_exchanges_exist(broker, name):
    conn = await aio_pika.connect(broker.url)
    async with conn:
        ch = await conn.channel()
        await ch.declare_exchange(name, passive=True)


async def test_builtin_exchange_types(broker):
    conn = await aiormq.connect(broker.url)
    try:
        ch = await conn.channel()
        for name, kind in (
            ("amq.direct", "direct"),
            ("amq.fanout", "fanout"),
            ("amq.topic", "topic"),
            ("amq.headers", "headers"),
            ("amq.match", "headers"),
        ):
            # an equivalent redeclare of an existing amq.* exchange is allowed (as in RabbitMQ)
            await ch.exchange_declare(name, exchange_type=kind, durable=True)
    finally:
        await conn.close()


async def test_reserved_amq_prefix_403(broker):
    conn = await aio_pika.connect(broker.url)
    async with conn:
        ch = await conn.channel()
        with pytest.raises(E.ChannelAccessRefused) as ei:
            await ch.declare_exchange("amq.foo", "direct")
        assert ei.value.args[0] == "ACCESS_REFUSED - exchange name 'amq.foo' contains reserved prefix 'amq.*'"


async def test_default_exchange_declare_and_delete_403(broker):
    conn = await aiormq.connect(broker.url)
    try:
        ch = await conn.channel()
        with pytest.raises(E.ChannelAccessRefused) as ei:
            await ch.exchange_declare("", exchange_type="direct", durable=True)
        assert ei.value.args[0] == "ACCESS_REFUSED - operation not permitted on the default exchange"
        ch = await conn.channel()
        with pytest.raises(E.ChannelAccessRefused) as ei:
            await ch.exchange_delete("")
        assert ei.value.args[0] == "ACCESS_REFUSED - operation not permitted on the default exchange"
    finally:
        await conn.close()


async def test_delete_builtin_exchange_403(broker):
    conn = await aiormq.connect(broker.url)
    try:
        ch = await conn.channel()
        with pytest.raises(E.ChannelAccessRefused) as ei:
            await ch.exchange_delete("amq.direct")
        assert ei.value.args[0] == (
            "ACCESS_REFUSED - deletion of system exchange 'amq.direct' in vhost '/' not allowed"
        )
    finally:
        await conn.close()


@pytest.mark.parametrize(
    "kw,arg,received,current",
    [
        ({"exchange_type": "fanout"}, "type", "'fanout'", "'direct'"),
        ({"exchange_type": "direct", "durable": True}, "durable", "'true'", "'false'"),
        ({"exchange_type": "direct", "auto_delete": True}, "auto_delete", "'true'", "'false'"),
        ({"exchange_type": "direct", "internal": True}, "internal", "'true'", "'false'"),
        (
            {"exchange_type": "direct", "arguments": {"alternate-exchange": "zz"}},
            "alternate-exchange",
            "the value 'zz' of type 'longstr'",
            "none",
        ),
    ],
)
async def test_inequivalent_redeclare_406(broker, kw, arg, received, current):
    conn = await aiormq.connect(broker.url)
    try:
        ch = await conn.channel()
        await ch.exchange_declare("ex_d", exchange_type="direct")
        with pytest.raises(E.ChannelPreconditionFailed) as ei:
            await ch.exchange_declare("ex_d", **kw)
        assert ei.value.args[0] == (
            f"PRECONDITION_FAILED - inequivalent arg '{arg}' for exchange 'ex_d' in vhost '/': "
            f"received {received} but current is {current}"
        )
    finally:
        await conn.close()


async def test_unknown_exchange_type_is_connection_error_503(broker):
    conn = await aio_pika.connect(broker.url)
    closed = asyncio.get_running_loop().create_future()
    conn.close_callbacks.add(lambda _c, exc: closed.done() or closed.set_result(exc))
    ch = await conn.channel()
    with pytest.raises(E.ConnectionCommandInvalid) as ei:
        await ch.declare_exchange("ex_u", "topics")
    # RabbitMQ's text for a name that is not an Erlang atom it knows ("foo" would give
    # "invalid exchange type", an artefact of its atom table that warren does not copy)
    assert ei.value.args[0] == "COMMAND_INVALID - unknown exchange type 'topics'"
    exc = await asyncio.wait_for(closed, 5)
    assert isinstance(exc, E.ConnectionCommandInvalid)


async def test_delete_missing_exchange_is_ok(broker):
    conn = await aiormq.connect(broker.url)
    try:
        ch = await conn.channel()
        ok = await ch.exchange_delete("nx")
        assert isinstance(ok, C.Exchange.DeleteOk)
    finally:
        await conn.close()


async def test_delete_if_unused(broker):
    conn = await aio_pika.connect(broker.url)
    async with conn:
        ch = await conn.channel()
        ex = await ch.declare_exchange("busy", "direct")
        q = await ch.declare_queue("", exclusive=True)
        await q.bind(ex, "k")
        with pytest.raises(E.ChannelPreconditionFailed) as ei:
            await ex.delete(if_unused=True)
        assert ei.value.args[0] == "PRECONDITION_FAILED - exchange 'busy' in vhost '/' in use"
        ch = await conn.channel()
        ex = await ch.declare_exchange("busy", passive=True)
        q = await ch.declare_queue(q.name, passive=True)
        await q.unbind(ex, "k")
        await ex.delete(if_unused=True)
        with pytest.raises(E.ChannelNotFoundEntity):
            await ch.declare_exchange("busy", passive=True)


async def test_delete_exchange_removes_its_bindings(broker):
    conn = await aio_pika.connect(broker.url)
    async with conn:
        ch = await conn.channel()
        ex = await ch.declare_exchange("tmp", "fanout")
        q = await ch.declare_queue("", exclusive=True)
        await q.bind(ex)
        await ex.delete()
        ex = await ch.declare_exchange("tmp", "fanout")
        await ex.publish(aio_pika.Message(b"x"), "")
        await sync(ch)
        assert await drain(q) == []


# ---------------------------------------------------------------- binding errors
async def test_bind_errors(broker):
    conn = await aiormq.connect(broker.url)
    try:
        ch = await conn.channel()
        await ch.queue_declare("qq", exclusive=True)
        with pytest.raises(E.ChannelNotFoundEntity) as ei:
            await ch.queue_bind("qq", "nx", routing_key="k")
        assert ei.value.args[0] == "NOT_FOUND - no exchange 'nx' in vhost '/'"
        ch = await conn.channel()
        with pytest.raises(E.ChannelNotFoundEntity) as ei:
            await ch.queue_bind("nq", "amq.direct", routing_key="k")
        assert ei.value.args[0] == "NOT_FOUND - no queue 'nq' in vhost '/'"
        ch = await conn.channel()
        with pytest.raises(E.ChannelAccessRefused) as ei:
            await ch.queue_bind("qq", "", routing_key="k")
        assert ei.value.args[0] == "ACCESS_REFUSED - operation not permitted on the default exchange"
        ch = await conn.channel()
        with pytest.raises(E.ChannelNotFoundEntity) as ei:
            await ch.exchange_bind("nx", "amq.direct", routing_key="k")
        assert ei.value.args[0] == "NOT_FOUND - no exchange 'nx' in vhost '/'"
        ch = await conn.channel()
        with pytest.raises(E.ChannelNotFoundEntity) as ei:
            await ch.exchange_bind("amq.direct", "nx", routing_key="k")
        assert ei.value.args[0] == "NOT_FOUND - no exchange 'nx' in vhost '/'"
        # unbinding what is not bound is fine
        ch = await conn.channel()
        assert isinstance(await ch.queue_unbind("qq", "amq.direct", routing_key="nokey"), C.Queue.UnbindOk)
        ok = await ch.exchange_unbind("amq.fanout", "amq.direct", routing_key="nokey")
        assert isinstance(ok, C.Exchange.UnbindOk)
    finally:
        await conn.close()


# ---------------------------------------------------------------- routing
async def test_default_exchange_routes_by_queue_name(broker):
    conn = await aio_pika.connect(broker.url)
    async with conn:
        ch = await conn.channel(publisher_confirms=True)
        q = await ch.declare_queue("by-name", exclusive=True)
        await ch.default_exchange.publish(aio_pika.Message(b"1"), routing_key="by-name")
        await ch.default_exchange.publish(aio_pika.Message(b"2"), routing_key="other")
        assert await drain(q) == [b"1"]


async def test_direct_routing(broker):
    conn = await aio_pika.connect(broker.url)
    async with conn:
        ch = await conn.channel(publisher_confirms=True)
        ex = await ch.declare_exchange("dx", "direct")
        q1 = await ch.declare_queue("", exclusive=True)
        q2 = await ch.declare_queue("", exclusive=True)
        await q1.bind(ex, "red")
        await q2.bind(ex, "red")
        await q2.bind(ex, "blue")
        await q2.bind(ex, "blue")  # duplicate binding: still one delivery
        for k in ("red", "blue", "green"):
            await ex.publish(aio_pika.Message(k.encode()), k)
        assert await drain(q1) == [b"red"]
        assert await drain(q2) == [b"red", b"blue"]
        await q2.unbind(ex, "blue")
        await ex.publish(aio_pika.Message(b"blue2"), "blue")
        assert await drain(q2) == []


async def test_fanout_routing(broker):
    conn = await aio_pika.connect(broker.url)
    async with conn:
        ch = await conn.channel(publisher_confirms=True)
        ex = await ch.declare_exchange("fx", "fanout")
        qs = [await ch.declare_queue("", exclusive=True) for _ in range(3)]
        for q in qs:
            await q.bind(ex, "ignored")
        await ex.publish(aio_pika.Message(b"all"), "whatever")
        for q in qs:
            assert await drain(q) == [b"all"]


# What RabbitMQ 3.10 routes, binding key -> routing keys that reach it.
TOPIC_KEYS = ["", "a", "b", "a.b", "a.x.b", "a.x.y.b", "a.b.c", "a..b", "a.", ".", ".b", "x.b", "a.b.b", "a.b.x.b"]
ALL = TOPIC_KEYS
TOPIC_MATRIX = {
    "#": ALL,
    "#.#": ALL,
    "*": ["a", "b"],
    "a.#.b": ["a.b", "a.x.b", "a.x.y.b", "a..b", "a.b.b", "a.b.x.b"],
    "a.*.b": ["a.x.b", "a..b", "a.b.b"],
    "a.#": ["a", "a.b", "a.x.b", "a.x.y.b", "a.b.c", "a..b", "a.", "a.b.b", "a.b.x.b"],
    "#.b": ["b", "a.b", "a.x.b", "a.x.y.b", "a..b", ".b", "x.b", "a.b.b", "a.b.x.b"],
    "a.*": ["a.b", "a."],
    "*.*": ["a.b", "a.", ".", ".b", "x.b"],
    "a..b": ["a..b"],
    "a.*.#": ["a.b", "a.x.b", "a.x.y.b", "a.b.c", "a..b", "a.", "a.b.b", "a.b.x.b"],
    "": [""],
    "a": ["a"],
    "*.b.#": ["a.b", "a.b.c", ".b", "x.b", "a.b.b", "a.b.x.b"],
    "a.b.c": ["a.b.c"],
}


async def test_topic_matching_matrix(broker):
    conn = await aio_pika.connect(broker.url)
    async with conn:
        ch = await conn.channel(publisher_confirms=True)
        ex = await ch.declare_exchange("tmx", "topic")
        queues = {}
        for binding in TOPIC_MATRIX:
            q = await ch.declare_queue("", exclusive=True)
            await q.bind(ex, binding)
            queues[binding] = q
        for key in TOPIC_KEYS:
            await ex.publish(aio_pika.Message(key.encode() or b"<empty>"), key)
        for binding, q in queues.items():
            got = [b.decode() for b in await drain(q)]
            want = [k or "<empty>" for k in TOPIC_MATRIX[binding]]
            assert got == want, binding


async def test_topic_unbind_stops_matching(broker):
    conn = await aio_pika.connect(broker.url)
    async with conn:
        ch = await conn.channel(publisher_confirms=True)
        ex = await ch.declare_exchange("tu", "topic")
        q = await ch.declare_queue("", exclusive=True)
        await q.bind(ex, "a.#")
        await q.bind(ex, "a.*")
        await ex.publish(aio_pika.Message(b"1"), "a.b")  # one copy despite two matching bindings
        await q.unbind(ex, "a.#")
        await ex.publish(aio_pika.Message(b"2"), "a.b")
        await ex.publish(aio_pika.Message(b"3"), "a.b.c")
        await q.unbind(ex, "a.*")
        await ex.publish(aio_pika.Message(b"4"), "a.b")
        assert await drain(q) == [b"1", b"2"]


HEADER_BINDINGS = {
    "all_ab": {"x-match": "all", "a": 1, "b": "x"},
    "any_ab": {"x-match": "any", "a": 1, "b": "x"},
    "default_a": {"a": 1},
    "all_empty": {"x-match": "all"},
    "any_empty": {"x-match": "any"},
    "all_x": {"x-match": "all", "x-k": "v"},
    "allwx_x": {"x-match": "all-with-x", "x-k": "v"},
    "any_x": {"x-match": "any", "x-k": "v", "a": 2},
    "anywx_x": {"x-match": "any-with-x", "x-k": "v", "a": 2},
}
HEADER_MESSAGES = {
    "none": None,
    "a1": {"a": 1},
    "a1bx": {"a": 1, "b": "x"},
    "bx": {"b": "x"},
    "a2": {"a": 2},
    "xk": {"x-k": "v"},
    "a1str": {"a": "1"},
    "a1bxc": {"a": 1, "b": "x", "c": 3},
}
# RabbitMQ 3.10's answer
HEADER_MATRIX = {
    "all_ab": ["a1bx", "a1bxc"],
    "any_ab": ["a1", "a1bx", "bx", "a1bxc"],
    "default_a": ["a1", "a1bx", "a1bxc"],
    "all_empty": list(HEADER_MESSAGES),
    "any_empty": [],
    "all_x": list(HEADER_MESSAGES),
    "allwx_x": ["xk"],
    "any_x": ["a2"],
    "anywx_x": ["a2", "xk"],
}


@pytest.mark.parametrize("exchange", ["hx", "amq.headers", "amq.match"])
async def test_headers_matching_matrix(broker, exchange):
    conn = await aio_pika.connect(broker.url)
    async with conn:
        ch = await conn.channel(publisher_confirms=True)
        if exchange == "hx":
            ex = await ch.declare_exchange("hx", "headers")
        else:
            ex = await ch.get_exchange(exchange)
        queues = {}
        for name, args in HEADER_BINDINGS.items():
            q = await ch.declare_queue("", exclusive=True)
            await q.bind(ex, "", arguments=args)
            queues[name] = q
        for name, headers in HEADER_MESSAGES.items():
            await ex.publish(aio_pika.Message(name.encode(), headers=headers), "rk")
        for name, q in queues.items():
            got = [b.decode() for b in await drain(q)]
            assert got == HEADER_MATRIX[name], name


async def test_headers_invalid_x_match_406(broker):
    conn = await aiormq.connect(broker.url)
    try:
        ch = await conn.channel()
        await ch.queue_declare("hq", exclusive=True)
        with pytest.raises(E.ChannelPreconditionFailed) as ei:
            await ch.queue_bind("hq", "amq.headers", arguments={"x-match": "foo"})
        assert ei.value.args[0] == (
            'PRECONDITION_FAILED - Invalid x-match field value <<"foo">>; '
            "expected all, any, all-with-x, or any-with-x"
        )
    finally:
        await conn.close()


# ---------------------------------------------------------------- exchange-to-exchange
async def test_exchange_to_exchange_bind_unbind(broker):
    conn = await aio_pika.connect(broker.url)
    async with conn:
        ch = await conn.channel(publisher_confirms=True)
        src = await ch.declare_exchange("e2e.src", "topic")
        mid = await ch.declare_exchange("e2e.mid", "fanout")
        dst = await ch.declare_exchange("e2e.dst", "direct")
        q_mid = await ch.declare_queue("", exclusive=True)
        q_dst = await ch.declare_queue("", exclusive=True)
        await mid.bind(src, "orders.#")
        await dst.bind(mid, "")
        await q_mid.bind(mid)
        await q_dst.bind(dst, "orders.new")
        await src.publish(aio_pika.Message(b"o1"), "orders.new")
        await src.publish(aio_pika.Message(b"o2"), "orders.old")
        await src.publish(aio_pika.Message(b"x"), "misc")
        assert await drain(q_mid) == [b"o1", b"o2"]
        assert await drain(q_dst) == [b"o1"]
        await mid.unbind(src, "orders.#")
        await src.publish(aio_pika.Message(b"o3"), "orders.new")
        assert await drain(q_mid) == []
        assert await drain(q_dst) == []


async def test_exchange_binding_cycle_delivers_once(broker):
    conn = await aio_pika.connect(broker.url)
    async with conn:
        ch = await conn.channel(publisher_confirms=True)
        a = await ch.declare_exchange("cyc.a", "fanout")
        b = await ch.declare_exchange("cyc.b", "fanout")
        await b.bind(a)
        await a.bind(b)
        q = await ch.declare_queue("", exclusive=True)
        await q.bind(a)
        await q.bind(b)
        await a.publish(aio_pika.Message(b"once"), "")
        assert await drain(q) == [b"once"]


# ---------------------------------------------------------------- internal / alternate / auto-delete
async def test_publish_to_internal_exchange_403(broker):
    conn = await aio_pika.connect(broker.url)
    async with conn:
        ch = await conn.channel(publisher_confirms=True)
        await ch.declare_exchange("int", "fanout", internal=True)
        # an internal exchange is still reachable through an e2e binding
        front = await ch.declare_exchange("front", "fanout")
        internal = await ch.get_exchange("int")
        await internal.bind(front)
        q = await ch.declare_queue("", exclusive=True)
        await q.bind(internal)
        await front.publish(aio_pika.Message(b"via-e2e"), "")
        assert await drain(q) == [b"via-e2e"]
        with pytest.raises(E.ChannelAccessRefused) as ei:
            await internal.publish(aio_pika.Message(b"direct"), "")
        assert ei.value.args[0] == "ACCESS_REFUSED - cannot publish to internal exchange 'int' in vhost '/'"


async def test_publish_to_missing_exchange_404(broker):
    conn = await aiormq.connect(broker.url)
    try:
        ch = await conn.channel()
        await ch.confirm_delivery()
        with pytest.raises(E.ChannelNotFoundEntity) as ei:
            await ch.basic_publish(b"x", exchange="nx")
        assert ei.value.args[0] == "NOT_FOUND - no exchange 'nx' in vhost '/'"
    finally:
        await conn.close()


async def test_alternate_exchange(broker):
    conn = await aio_pika.connect(broker.url)
    async with conn:
        ch = await conn.channel(publisher_confirms=True)
        ae = await ch.declare_exchange("ae", "fanout")
        main = await ch.declare_exchange("main", "direct", arguments={"alternate-exchange": "ae"})
        q_main = await ch.declare_queue("", exclusive=True)
        q_ae = await ch.declare_queue("", exclusive=True)
        await q_main.bind(main, "known")
        await q_ae.bind(ae)
        await main.publish(aio_pika.Message(b"k"), "known")
        await main.publish(aio_pika.Message(b"u"), "unknown")
        # routed via the AE: a mandatory publish is not returned
        await main.publish(aio_pika.Message(b"m"), "unknown", mandatory=True)
        assert await drain(q_main) == [b"k"]
        assert await drain(q_ae) == [b"u", b"m"]


async def test_alternate_exchange_missing_means_unroutable(broker):
    conn = await aio_pika.connect(broker.url)
    async with conn:
        ch = await conn.channel(publisher_confirms=True, on_return_raises=False)
        main = await ch.declare_exchange("main2", "direct", arguments={"alternate-exchange": "gone"})
        returned = asyncio.get_running_loop().create_future()
        ch.return_callbacks.add(lambda _ch, m: returned.done() or returned.set_result(m))
        await main.publish(aio_pika.Message(b"x"), "nowhere", mandatory=True)
        m = await asyncio.wait_for(returned, 5)
        assert m.body == b"x"


async def test_auto_delete_exchange_goes_with_last_queue_binding(broker):
    conn = await aio_pika.connect(broker.url)
    async with conn:
        ch = await conn.channel()
        ex = await ch.declare_exchange("adx", "direct", auto_delete=True)
        q1 = await ch.declare_queue("", exclusive=True)
        q2 = await ch.declare_queue("", exclusive=True)
        await q1.bind(ex, "a")
        await q2.bind(ex, "b")
        await q1.unbind(ex, "a")
        await ch.declare_exchange("adx", passive=True)  # one binding left
        await q2.unbind(ex, "b")
        with pytest.raises(E.ChannelNotFoundEntity):
            await ch.declare_exchange("adx", passive=True)


async def test_auto_delete_exchange_goes_when_bound_queue_deleted(broker):
    conn = await aio_pika.connect(broker.url)
    async with conn:
        ch = await conn.channel()
        ex = await ch.declare_exchange("adq", "fanout", auto_delete=True)
        q = await ch.declare_queue("adq-q")
        await q.bind(ex)
        await q.delete()
        with pytest.raises(E.ChannelNotFoundEntity):
            await ch.declare_exchange("adq", passive=True)


async def test_auto_delete_exchange_e2e(broker):
    conn = await aio_pika.connect(broker.url)
    async with conn:
        ch = await conn.channel()
        src = await ch.declare_exchange("ad.src", "fanout", auto_delete=True)
        dst = await ch.declare_exchange("ad.dst", "fanout")
        await dst.bind(src)
        await dst.unbind(src)
        with pytest.raises(E.ChannelNotFoundEntity):
            await ch.declare_exchange("ad.src", passive=True)
        ch = await conn.channel()
        await ch.declare_exchange("ad.dst", passive=True)


async def test_auto_delete_exchange_survives_until_first_binding(broker):
    conn = await aio_pika.connect(broker.url)
    async with conn:
        ch = await conn.channel()
        await ch.declare_exchange("ad.fresh", "fanout", auto_delete=True)
        await ch.declare_exchange("ad.fresh", passive=True)
