"""Virtual host and user limits, set through the management API: refusals with
RabbitMQ's codes and texts, other clients unaffected, limits kept across restarts."""

from __future__ import annotations

import asyncio

import aiohttp
import aiormq
import pytest

from tests.brokerproc import wait_port

AUTH = {"Authorization": aiohttp.encode_basic_auth("guest", "guest")}


def _refusal(url: str) -> str:
    """Connect with pika, which reports the Connection.Close a refused Connection.Open gets."""
    import pika

    try:
        pika.BlockingConnection(pika.URLParameters(url)).close()
    except pika.exceptions.AMQPConnectionError as exc:
        text = str(exc)
        code_at = text.index("(530) ")
        return text[code_at : text.index('"', text.index('"', code_at) + 1) + 1]
    return "connected"


async def _put(broker, path: str, body: dict) -> tuple[int, dict | None]:
    wait_port(broker.mgmt_port)
    async with aiohttp.ClientSession(headers=AUTH) as http:
        async with http.put(f"http://127.0.0.1:{broker.mgmt_port}/api/{path}", json=body) as r:
            return r.status, (await r.json() if r.status >= 400 else None)


async def _get(broker, path: str) -> object:
    async with aiohttp.ClientSession(headers=AUTH) as http:
        async with http.get(f"http://127.0.0.1:{broker.mgmt_port}/api/{path}") as r:
            assert r.status == 200
            return await r.json()


async def _delete(broker, path: str) -> int:
    async with aiohttp.ClientSession(headers=AUTH) as http:
        async with http.delete(f"http://127.0.0.1:{broker.mgmt_port}/api/{path}") as r:
            return r.status


async def test_vhost_connection_limit(broker):
    assert (await _put(broker, "vhost-limits/%2F/max-connections", {"value": 2}))[0] == 204
    a = await aiormq.connect(broker.url)
    b = await aiormq.connect(broker.url)
    try:
        assert await asyncio.to_thread(_refusal, broker.url) == (
            "(530) \"NOT_ALLOWED - access to vhost '/' refused for user 'guest': connection limit (2) is reached\""
        )
        await b.close()
        c = await aiormq.connect(broker.url)  # a slot is free again
        await c.close()
        assert await _get(broker, "vhost-limits") == [
            {"vhost": "/", "value": {"max-connections": 2}}
        ]
        assert await _delete(broker, "vhost-limits/%2F/max-connections") == 204
        assert await _get(broker, "vhost-limits") == []
    finally:
        await a.close()


async def test_vhost_queue_limit(broker):
    assert (await _put(broker, "vhost-limits/%2F/max-queues", {"value": 1}))[0] == 204
    conn = await aiormq.connect(broker.url)
    try:
        ch = await conn.channel()
        await ch.queue_declare("lq1")
        await ch.queue_declare("lq1")  # redeclaring is not a new queue
        with pytest.raises(aiormq.exceptions.ChannelPreconditionFailed) as info:
            await ch.queue_declare("lq2")
        assert info.value.args[0] == (
            "PRECONDITION_FAILED - cannot declare queue 'lq2': queue limit in vhost '/' (1) is reached"
        )
        ch = await conn.channel()
        with pytest.raises(aiormq.exceptions.ChannelPreconditionFailed) as info:
            await ch.queue_declare("", exclusive=True)
        assert info.value.args[0].startswith("PRECONDITION_FAILED - cannot declare queue 'amq.gen-")
        # -1: no limit
        assert (await _put(broker, "vhost-limits/%2F/max-queues", {"value": -1}))[0] == 204
        ch = await conn.channel()
        await ch.queue_declare("lq2")
    finally:
        await conn.close()


async def test_user_limits(broker):
    assert (await _put(broker, "user-limits/guest/max-channels", {"value": 3}))[0] == 204
    assert (await _put(broker, "user-limits/guest/max-connections", {"value": 2}))[0] == 204
    a = await aiormq.connect(broker.url)
    b = await aiormq.connect(broker.url)
    try:
        assert await asyncio.to_thread(_refusal, broker.url) == (
            "(530) \"NOT_ALLOWED - connection refused for user 'guest': user connection limit (2) is reached\""
        )
        await a.channel()
        await a.channel()
        await b.channel()  # three across both connections
        with pytest.raises(aiormq.exceptions.ConnectionNotAllowed) as info:
            await b.channel()
        assert info.value.args[0] == (
            "NOT_ALLOWED - number of channels opened for user 'guest' has reached "
            "the maximum allowed user limit of (3)"
        )
        # only that connection is closed
        assert b.is_closed and not a.is_closed
        assert await _get(broker, "user-limits/guest") == [
            {"user": "guest", "value": {"max-channels": 3, "max-connections": 2}}
        ]
    finally:
        await a.close()


async def test_limit_validation(broker):
    st, body = await _put(broker, "vhost-limits/%2F/max-queues", {"value": "x"})
    assert (
        st == 400
        and body["reason"]
        == 'Validation failed\n\nmax-queues should be a number, actually was <<"x">>\n'
    )
    st, body = await _put(broker, "vhost-limits/%2F/max-foo", {"value": 1})
    assert (
        st == 400
        and body["reason"]
        == 'Validation failed\n\nUnrecognised terms [{<<"max-foo">>,1}] in limits\n'
    )


async def test_limits_survive_restart_and_export(broker):
    await _put(broker, "vhost-limits/%2F/max-queues", {"value": 5})
    await _put(broker, "user-limits/guest/max-channels", {"value": 7})
    broker.restart()
    wait_port(broker.mgmt_port)
    assert await _get(broker, "vhost-limits/%2F") == [{"vhost": "/", "value": {"max-queues": 5}}]
    defs = await _get(broker, "definitions")
    assert {
        "value": {"max-queues": 5},
        "vhost": "/",
        "component": "vhost-limits",
        "name": "limits",
    } in defs["parameters"]
    assert [u["limits"] for u in defs["users"] if u["name"] == "guest"] == [{"max-channels": 7}]
