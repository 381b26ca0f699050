"""Differential: declare/bind/delete/purge through the management API, against
RabbitMQ 3.10's management plugin and warren (both run the AMQP method's checks:
warren through ``model.commands``, the code its channel runs). Every answer's
status and JSON body must be the same, in sequence, from the same starting state."""

from __future__ import annotations

import base64
from typing import Any

import aiohttp
import aiormq
import pytest

from tests.brokerproc import wait_port

from .test_management_diff import rabbit_mgmt  # noqa: F401 - fixture

AUTH = {"Authorization": "Basic " + base64.b64encode(b"guest:guest").decode()}

CASES: list[tuple[str, str, Any]] = [
    # queues: defaults, equivalence (only the arguments RabbitMQ compares), reserved names, validation
    ("PUT", "queues/%2F/cq", {}),
    ("PUT", "queues/%2F/cq", {"durable": "false"}),
    ("PUT", "queues/%2F/cq", {"durable": True}),
    ("PUT", "queues/%2F/cq", {"auto_delete": True}),
    ("PUT", "queues/%2F/cq", {"arguments": {"x-max-length": 5}}),
    ("PUT", "queues/%2F/cq", {"arguments": {"x-bogus": 2}}),
    ("PUT", "queues/%2F/cq2", {"durable": "yes"}),
    ("PUT", "queues/%2F/amq.cq", {}),
    ("PUT", "queues/%2F/cq3", {"arguments": {"x-max-length": "bad"}}),
    ("PUT", "queues/%2F/cq4", {"arguments": {"x-queue-type": "quorum"}}),
    # exchanges
    ("PUT", "exchanges/%2F/cx", {}),
    ("PUT", "exchanges/%2F/cx", {"type": "fanout"}),
    ("PUT", "exchanges/%2F/cx", {"type": "direct", "durable": True}),
    ("PUT", "exchanges/%2F/cx", {"type": "direct", "arguments": {"alternate-exchange": "ae"}}),
    ("PUT", "exchanges/%2F/cx2", {"type": "bogus"}),
    ("PUT", "exchanges/%2F/amq.cx", {"type": "direct"}),
    ("PUT", "exchanges/%2F/amq.default", {"type": "direct"}),
    ("PUT", "exchanges/%2F/amq.direct", {"type": "direct"}),
    ("PUT", "exchanges/%2F/amq.direct", {"type": "direct", "durable": True}),
    ("PUT", "exchanges/%2F/amq.direct", {"type": "topic", "durable": True}),
    ("DELETE", "exchanges/%2F/amq.direct", None),
    ("DELETE", "exchanges/%2F/amq.default", None),
    ("DELETE", "exchanges/%2F/nox", None),
    # bindings
    ("POST", "bindings/%2F/e/cx/q/cq", {"routing_key": "k"}),
    ("POST", "bindings/%2F/e/amq.default/q/cq", {"routing_key": "k"}),
    ("POST", "bindings/%2F/e/cx/q/noq", {"routing_key": "k"}),
    ("POST", "bindings/%2F/e/nox/q/cq", {"routing_key": "k"}),
    ("POST", "bindings/%2F/e/cx/e/amq.default", {"routing_key": "k"}),
    ("POST", "bindings/%2F/e/cx/e/nox", {"routing_key": "k"}),
    ("DELETE", "exchanges/%2F/cx?if-unused=true", None),
    ("DELETE", "bindings/%2F/e/cx/q/cq/k", None),
    ("DELETE", "bindings/%2F/e/cx/q/cq/k", None),
    ("DELETE", "exchanges/%2F/cx?if-unused=true", None),
    # purge, delete
    ("DELETE", "queues/%2F/cq/contents", None),
    ("DELETE", "queues/%2F/noq/contents", None),
    ("DELETE", "queues/%2F/cq?if-empty=true", None),
    ("DELETE", "queues/%2F/cq", None),
]


async def _run(base: str) -> list[tuple[str, str, int, Any]]:
    out = []
    async with aiohttp.ClientSession() as s:
        for method, path, body in CASES:
            kw = {"json": body} if body is not None else {}
            async with s.request(method, f"{base}/api/{path}", headers=AUTH, **kw) as r:
                text = await r.text()
                data = await r.json() if r.content_type == "application/json" and text else text
                out.append((method, path, r.status, data))
    return out


@pytest.mark.timeout(180)
async def test_api_commands_answer_as_rabbitmq(rabbit_mgmt, warren):  # noqa: F811
    _, rabbit_http = rabbit_mgmt
    wait_port(rabbit_http)
    wait_port(warren.mgmt_port)
    rabbit = await _run(f"http://127.0.0.1:{rabbit_http}")
    ours = await _run(f"http://127.0.0.1:{warren.mgmt_port}")
    diffs = [f"{r[0]} {r[1]}: RabbitMQ {r[2]} {r[3]!r}, warren {w[2]} {w[3]!r}"
             for r, w in zip(rabbit, ours, strict=True) if r != w]
    assert not diffs, "\n".join(diffs)


async def _run_with_session(amqp_port: int, http_port: int) -> list[tuple[str, str, int, Any]]:
    """An AMQP connection holds an exclusive queue; a management user with topic
    permissions binds to a topic exchange."""
    conn = await aiormq.connect(f"amqp://guest:guest@127.0.0.1:{amqp_port}/")
    try:
        ch = await conn.channel()
        await ch.queue_declare("exq", exclusive=True)
        await ch.exchange_declare("tx", exchange_type="topic")
        out = []
        tu = {"Authorization": "Basic " + base64.b64encode(b"tu:p").decode()}
        steps: list[tuple[str, str, Any, dict[str, str]]] = [
            ("PUT", "queues/%2F/exq", {}, AUTH),
            ("POST", "bindings/%2F/e/amq.direct/q/exq", {"routing_key": "k"}, AUTH),
            ("DELETE", "queues/%2F/exq/contents", None, AUTH),
            ("DELETE", "queues/%2F/exq", None, AUTH),
            ("PUT", "users/tu", {"password": "p", "tags": "management"}, AUTH),
            ("PUT", "permissions/%2F/tu", {"configure": ".*", "write": ".*", "read": ".*"}, AUTH),
            ("PUT", "topic-permissions/%2F/tu", {"exchange": "tx", "write": "^a", "read": "^a"}, AUTH),
            ("PUT", "queues/%2F/tq", {}, AUTH),
            ("POST", "bindings/%2F/e/tx/q/tq", {"routing_key": "b.x"}, tu),
            ("POST", "bindings/%2F/e/tx/q/tq", {"routing_key": "a.x"}, tu),
        ]
        async with aiohttp.ClientSession() as s:
            for method, path, body, auth in steps:
                kw = {"json": body} if body is not None else {}
                async with s.request(method, f"http://127.0.0.1:{http_port}/api/{path}", headers=auth, **kw) as r:
                    text = await r.text()
                    data = await r.json() if r.content_type == "application/json" and text else text
                    out.append((method, path, r.status, data))
        return out
    finally:
        await conn.close()


@pytest.mark.timeout(180)
async def test_api_is_no_session_of_exclusive_queues_and_obeys_topic_permissions(rabbit_mgmt, warren):  # noqa: F811
    """RabbitMQ runs the API's commands on an internal connection: another connection's
    exclusive queue is locked to it (400, the AMQP text), and the user's topic
    permissions apply to a bind (refused: 401 "Access refused.")."""
    rabbit_amqp, rabbit_http = rabbit_mgmt
    wait_port(rabbit_http)
    wait_port(warren.mgmt_port)
    rabbit = await _run_with_session(rabbit_amqp, rabbit_http)
    ours = await _run_with_session(warren.port, warren.mgmt_port)
    diffs = [f"{r[0]} {r[1]}: RabbitMQ {r[2]} {r[3]!r}, warren {w[2]} {w[3]!r}"
             for r, w in zip(rabbit, ours, strict=True) if r != w]
    assert not diffs, "\n".join(diffs)
