"""An AMQP declare/bind/delete and the management API's run the same command
(``model.commands``): the same checks, the same texts; the API answers them as
RabbitMQ's management plugin does (401 "Access refused.", 404 with the AMQP text,
400 with the AMQP text for everything else)."""

from __future__ import annotations

import base64

import aiormq
import pytest

REFUSED = {"error": "not_authorised", "reason": "Access refused."}


async def _amqp_error(broker, coro_fn) -> tuple[type, str]:
    """Run ``coro_fn(channel)`` on a fresh connection; the channel error it raised."""
    conn = await aiormq.connect(broker.url)
    try:
        ch = await conn.channel()
        with pytest.raises(aiormq.exceptions.AMQPError) as info:
            await coro_fn(ch)
        return type(info.value), info.value.args[0]
    finally:
        await conn.close()


def _text(amqp_text: str) -> str:
    """The reply text without RabbitMQ's "CODE - " prefix (the API's reason)."""
    return amqp_text.split(" - ", 1)[1]


async def test_inequivalent_queue_redeclare_refused_both_ways(broker, http):
    assert (await http.req("PUT", "/api/queues/%2F/sq", json={"durable": True}))[0] == 201
    kind, text = await _amqp_error(broker, lambda ch: ch.queue_declare("sq", durable=False))
    assert kind is aiormq.exceptions.ChannelPreconditionFailed
    assert text == ("PRECONDITION_FAILED - inequivalent arg 'durable' for queue 'sq' in vhost '/': "
                    "received 'false' but current is 'true'")
    st, body = await http.req("PUT", "/api/queues/%2F/sq", json={"durable": False})
    assert (st, body) == (400, {"error": "bad_request", "reason": _text(text)})
    # an argument RabbitMQ compares: named with its type when the other side has none
    st, body = await http.req("PUT", "/api/queues/%2F/sq", json={"durable": True, "arguments": {"x-max-length": 5}})
    assert (st, body) == (400, {"error": "bad_request", "reason": (
        "inequivalent arg 'x-max-length' for queue 'sq' in vhost '/': received the value '5' of type 'long' "
        "but current is none")})
    # one RabbitMQ does not compare: an equivalent redeclare, both ways
    assert (await http.req("PUT", "/api/queues/%2F/sq", json={"durable": True, "arguments": {"x-foo": 1}}))[0] == 204
    conn = await aiormq.connect(broker.url)
    try:
        ch = await conn.channel()
        ok = await ch.queue_declare("sq", durable=True, arguments={"x-foo": 2})
        assert ok.queue == "sq"
    finally:
        await conn.close()


async def test_inequivalent_exchange_redeclare_refused_both_ways(broker, http):
    conn = await aiormq.connect(broker.url)
    try:
        ch = await conn.channel()
        await ch.exchange_declare("sx", exchange_type="direct", durable=True)
    finally:
        await conn.close()
    kind, text = await _amqp_error(broker, lambda ch: ch.exchange_declare("sx", exchange_type="fanout", durable=True))
    assert kind is aiormq.exceptions.ChannelPreconditionFailed
    assert text == ("PRECONDITION_FAILED - inequivalent arg 'type' for exchange 'sx' in vhost '/': "
                    "received 'fanout' but current is 'direct'")
    st, body = await http.req("PUT", "/api/exchanges/%2F/sx", json={"type": "fanout", "durable": True})
    assert (st, body) == (400, {"error": "bad_request", "reason": _text(text)})
    st, body = await http.req("PUT", "/api/exchanges/%2F/sx",
                              json={"type": "direct", "durable": True, "arguments": {"alternate-exchange": "ae"}})
    assert (st, body) == (400, {"error": "bad_request", "reason": (
        "inequivalent arg 'alternate-exchange' for exchange 'sx' in vhost '/': received the value 'ae' of type "
        "'longstr' but current is none")})
    assert (await http.req("PUT", "/api/exchanges/%2F/sx", json={"type": "direct", "durable": True}))[0] == 204
    # an equivalent redeclare of a predeclared amq.* exchange is fine both ways
    assert (await http.req("PUT", "/api/exchanges/%2F/amq.direct", json={"type": "direct", "durable": True}))[0] == 204
    st, body = await http.req("PUT", "/api/exchanges/%2F/sx2", json={"type": "bogus"})
    assert (st, body) == (400, {"error": "bad_request", "reason": "unknown exchange type 'bogus'"})


async def test_reserved_names_refused_both_ways(broker, http):
    kind, text = await _amqp_error(broker, lambda ch: ch.queue_declare("amq.q"))
    assert kind is aiormq.exceptions.ChannelAccessRefused
    assert text == "ACCESS_REFUSED - queue name 'amq.q' contains reserved prefix 'amq.*'"
    kind, text = await _amqp_error(broker, lambda ch: ch.exchange_declare("amq.x", exchange_type="direct"))
    assert kind is aiormq.exceptions.ChannelAccessRefused
    assert text == "ACCESS_REFUSED - exchange name 'amq.x' contains reserved prefix 'amq.*'"
    kind, text = await _amqp_error(broker, lambda ch: ch.exchange_delete("amq.direct"))
    assert text == "ACCESS_REFUSED - deletion of system exchange 'amq.direct' in vhost '/' not allowed"
    # the API answers an access refusal as RabbitMQ's management plugin: 401 "Access refused."
    assert await http.req("PUT", "/api/queues/%2F/amq.q", json={}) == (401, REFUSED)
    assert await http.req("PUT", "/api/exchanges/%2F/amq.x", json={"type": "direct"}) == (401, REFUSED)
    assert await http.req("PUT", "/api/exchanges/%2F/amq.default", json={"type": "direct"}) == (401, REFUSED)
    assert await http.req("DELETE", "/api/exchanges/%2F/amq.direct") == (401, REFUSED)
    assert await http.req("DELETE", "/api/exchanges/%2F/amq.default") == (401, REFUSED)
    assert (await http.req("PUT", "/api/queues/%2F/bq", json={}))[0] == 201
    assert await http.req("POST", "/api/bindings/%2F/e/amq.default/q/bq", json={"routing_key": "k"}) == (401, REFUSED)
    # nothing was created by the refused declares
    assert (await http.req("GET", "/api/queues/%2F/amq.q"))[0] == 404
    assert (await http.req("GET", "/api/exchanges/%2F/amq.x"))[0] == 404


async def test_queue_limit_refused_both_ways(broker, http):
    assert (await http.req("PUT", "/api/vhost-limits/%2F/max-queues", json={"value": 1}))[0] == 204
    assert (await http.req("PUT", "/api/queues/%2F/lq1", json={}))[0] == 201
    kind, text = await _amqp_error(broker, lambda ch: ch.queue_declare("lq2"))
    assert kind is aiormq.exceptions.ChannelPreconditionFailed
    assert text == "PRECONDITION_FAILED - cannot declare queue 'lq2': queue limit in vhost '/' (1) is reached"
    st, body = await http.req("PUT", "/api/queues/%2F/lq2", json={})
    assert (st, body) == (400, {"error": "bad_request", "reason": _text(text)})
    assert (await http.req("PUT", "/api/queues/%2F/lq1", json={}))[0] == 204  # a redeclare is no new queue


async def test_bind_missing_and_if_unused_both_ways(broker, http):
    assert (await http.req("PUT", "/api/queues/%2F/mq", json={}))[0] == 201
    assert (await http.req("PUT", "/api/exchanges/%2F/mx", json={"type": "direct"}))[0] == 201
    kind, text = await _amqp_error(broker, lambda ch: ch.queue_bind("nq", "mx", routing_key="k"))
    assert kind is aiormq.exceptions.ChannelNotFoundEntity
    assert text == "NOT_FOUND - no queue 'nq' in vhost '/'"
    st, body = await http.req("POST", "/api/bindings/%2F/e/mx/q/nq", json={"routing_key": "k"})
    assert (st, body) == (404, {"error": "not_found", "reason": _text(text)})
    st, body = await http.req("POST", "/api/bindings/%2F/e/nx/q/mq", json={"routing_key": "k"})
    assert (st, body) == (404, {"error": "not_found", "reason": "no exchange 'nx' in vhost '/'"})
    assert (await http.req("POST", "/api/bindings/%2F/e/mx/q/mq", json={"routing_key": "k"}))[0] == 201
    kind, text = await _amqp_error(broker, lambda ch: ch.exchange_delete("mx", if_unused=True))
    assert text == "PRECONDITION_FAILED - exchange 'mx' in vhost '/' in use"
    st, body = await http.req("DELETE", "/api/exchanges/%2F/mx?if-unused=true")
    assert (st, body) == (400, {"error": "bad_request", "reason": _text(text)})
    assert (await http.req("DELETE", "/api/bindings/%2F/e/mx/q/mq/k"))[0] == 204
    assert (await http.req("DELETE", "/api/exchanges/%2F/mx?if-unused=true"))[0] == 204


async def test_api_declare_defaults_as_rabbitmq(broker, http):
    """RabbitMQ's management plugin fills a declare's missing fields with the AMQP
    method's defaults: transient, not auto-delete, type direct; booleans are JSON
    booleans or "true"/"false"."""
    assert (await http.req("PUT", "/api/queues/%2F/dq", json={}))[0] == 201
    q = await http.get("/api/queues/%2F/dq")
    assert (q["durable"], q["auto_delete"], q["exclusive"]) == (False, False, False)
    assert (await http.req("PUT", "/api/queues/%2F/dq", json={"durable": "false"}))[0] == 204
    st, body = await http.req("PUT", "/api/queues/%2F/dq", json={"durable": True})
    assert (st, body) == (400, {"error": "bad_request", "reason": (
        "inequivalent arg 'durable' for queue 'dq' in vhost '/': received 'true' but current is 'false'")})
    assert await http.req("PUT", "/api/queues/%2F/dq2", json={"durable": "yes"}) == (
        400, {"error": "bad_request", "reason": ["not_boolean", "yes"]})
    assert (await http.req("PUT", "/api/exchanges/%2F/dx", json={}))[0] == 201
    x = await http.get("/api/exchanges/%2F/dx")
    assert (x["type"], x["durable"], x["auto_delete"], x["internal"]) == ("direct", False, False, False)
    # and so a bare PUT of a predeclared (durable) amq.* exchange is inequivalent, as in RabbitMQ
    st, body = await http.req("PUT", "/api/exchanges/%2F/amq.direct", json={"type": "direct"})
    assert (st, body) == (400, {"error": "bad_request", "reason": (
        "inequivalent arg 'durable' for exchange 'amq.direct' in vhost '/': received 'false' but current is 'true'")})


async def test_exclusive_queue_locked_and_topic_permissions_both_ways(broker, http):
    owner = await aiormq.connect(broker.url)
    try:
        ch = await owner.channel()
        await ch.queue_declare("exq", exclusive=True)
        await ch.exchange_declare("tx", exchange_type="topic")
        kind, text = await _amqp_error(broker, lambda ch: ch.queue_delete("exq"))
        assert kind is aiormq.exceptions.ChannelLockedResource
        for method, path in (("DELETE", "/api/queues/%2F/exq"), ("DELETE", "/api/queues/%2F/exq/contents")):
            assert await http.req(method, path) == (400, {"error": "bad_request", "reason": _text(text)})
        assert "exq" in [q["name"] for q in await http.get("/api/queues/%2F")]
    finally:
        await owner.close()
    # a topic permission refuses the bind over AMQP and over the API
    assert (await http.req("PUT", "/api/users/tu", json={"password": "p", "tags": "management"}))[0] == 201
    assert (await http.req("PUT", "/api/permissions/%2F/tu", json={"configure": ".*", "write": ".*", "read": ".*"}))[0] == 201
    assert (await http.req("PUT", "/api/topic-permissions/%2F/tu", json={"exchange": "tx", "write": "^a", "read": "^a"}))[0] == 201
    assert (await http.req("PUT", "/api/queues/%2F/tq", json={}))[0] == 201
    conn = await aiormq.connect(broker.url.replace("guest:guest", "tu:p"))
    try:
        ch = await conn.channel()
        with pytest.raises(aiormq.exceptions.ChannelAccessRefused) as info:
            await ch.queue_bind("tq", "tx", routing_key="b.x")
        assert info.value.args[0] == (
            "ACCESS_REFUSED - access to topic 'b.x' in exchange 'tx' in vhost '/' refused for user 'tu'")
    finally:
        await conn.close()
    tu = {"Authorization": "Basic " + base64.b64encode(b"tu:p").decode()}
    assert await http.req("POST", "/api/bindings/%2F/e/tx/q/tq", json={"routing_key": "b.x"}, auth=tu) == (401, REFUSED)
    assert (await http.req("POST", "/api/bindings/%2F/e/tx/q/tq", json={"routing_key": "a.x"}, auth=tu))[0] == 201
