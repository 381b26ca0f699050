"""Topic permissions through the management API: applied to open connections at
once, listed, deleted, kept across restarts and in definitions.
(The refusal texts are compared with RabbitMQ's in interop/test_topic_permissions_diff.py.)"""

from __future__ import annotations

import aiohttp
import aiormq
import pytest

from tests.brokerproc import wait_port

AUTH = {"Authorization": aiohttp.encode_basic_auth("guest", "guest")}


async def _req(broker, method: str, path: str, body: dict | None = None) -> tuple[int, object]:
    wait_port(broker.mgmt_port)
    async with aiohttp.ClientSession(headers=AUTH) as http:
        async with http.request(
            method, f"http://127.0.0.1:{broker.mgmt_port}/api/{path}", json=body
        ) as r:
            return r.status, (await r.json() if r.status == 200 else None)


async def test_topic_permission_applies_to_open_connections(broker):
    conn = await aiormq.connect(broker.url)
    try:
        ch = await conn.channel(publisher_confirms=True)
        await ch.basic_publish(b"x", exchange="amq.topic", routing_key="b.before")
        st, _ = await _req(
            broker,
            "PUT",
            "topic-permissions/%2F/guest",
            {"exchange": "amq.topic", "write": "^a\\.", "read": ".*"},
        )
        assert st == 201
        with pytest.raises(aiormq.exceptions.ChannelAccessRefused) as info:
            await ch.basic_publish(b"x", exchange="amq.topic", routing_key="b.after")
        assert info.value.args[0] == (
            "ACCESS_REFUSED - access to topic 'b.after' in exchange 'amq.topic' in vhost '/' refused for user 'guest'"
        )
        ch = await conn.channel(publisher_confirms=True)
        await ch.basic_publish(b"x", exchange="amq.topic", routing_key="a.fine")
        st, listed = await _req(broker, "GET", "topic-permissions")
        assert listed == [
            {"user": "guest", "vhost": "/", "exchange": "amq.topic", "write": "^a\\.", "read": ".*"}
        ]
        assert (await _req(broker, "DELETE", "topic-permissions/%2F/guest"))[0] == 204
        await ch.basic_publish(b"x", exchange="amq.topic", routing_key="b.again")
        assert (await _req(broker, "GET", "topic-permissions"))[1] == []
    finally:
        await conn.close()


async def test_topic_permissions_survive_restart(broker):
    await _req(
        broker,
        "PUT",
        "topic-permissions/%2F/guest",
        {"exchange": "amq.topic", "write": "^w", "read": "^r"},
    )
    broker.restart()
    _, listed = await _req(broker, "GET", "topic-permissions/%2F/guest")
    assert listed == [
        {"user": "guest", "vhost": "/", "exchange": "amq.topic", "write": "^w", "read": "^r"}
    ]
    _, defs = await _req(broker, "GET", "definitions")
    assert defs["topic_permissions"] == listed
    conn = await aiormq.connect(broker.url)
    try:
        ch = await conn.channel()
        q = (await ch.queue_declare("", exclusive=True)).queue
        with pytest.raises(aiormq.exceptions.ChannelAccessRefused):
            await ch.queue_bind(q, "amq.topic", routing_key="x")
    finally:
        await conn.close()
