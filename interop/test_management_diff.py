"""Differential: warren's and RabbitMQ's management API JSON for the same declared
objects have the same field names and JSON types (values are not compared).

Starts a private RabbitMQ with the management plugin (Debian's rabbitmq-server via
../shared/bench/start-rabbitmq.sh). Skipped when RabbitMQ is not installed and CI is unset.
"""

from __future__ import annotations

import asyncio
import base64
import os
import secrets
import subprocess
import time
from pathlib import Path
from typing import Any

import aio_pika
import aiohttp
import pytest

from tests.brokerproc import free_port, wait_port

from .conftest import BENCH, RABBITMQ_SERVER, _missing

AUTH = {"Authorization": "Basic " + base64.b64encode(b"guest:guest").decode()}
#: RabbitMQ fields that describe Erlang internals or clustering and that warren does not emulate
ERLANG_ONLY = {"garbage_collection", "reductions", "reductions_details", "memory", "recoverable_slaves",
               "backing_queue_status", "effective_policy_definition", "incoming", "deliveries", "statistics_db_event_queue",
               "sample_retention_policies", "contexts", "listeners", "erlang_full_version"}
#: fields whose keys are data (node names, client-chosen properties): compared by type only
OPAQUE = {"cluster_state", "client_properties", "arguments", "properties", "headers"}


@pytest.fixture(scope="module")
def rabbit_mgmt(tmp_path_factory):
    if not RABBITMQ_SERVER.exists():
        _missing(f"{RABBITMQ_SERVER} is not installed; the management differential test needs RabbitMQ")
    base = tmp_path_factory.mktemp("rmq-mgmt")
    port, mport = free_port(), free_port()
    env = dict(os.environ, RMQ_BENCH_BASE=str(base), RMQ_PORT=str(port), RMQ_MGMT_PORT=str(mport),
               RMQ_PROM_PORT=str(free_port()), RMQ_DIST_PORT=str(free_port()),
               RMQ_NODENAME=f"warrenmgmt{secrets.token_hex(4)}@localhost",
               RMQ_PLUGINS="rabbitmq_management")
    try:
        r = subprocess.run(["bash", str(BENCH / "start-rabbitmq.sh")], env=env, capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            pytest.fail(f"start-rabbitmq.sh failed: {r.stdout}\n{r.stderr}")
        wait_port(mport, timeout=60)
        yield port, mport
    finally:
        subprocess.run(["bash", str(BENCH / "stop-rabbitmq.sh")], env=env, capture_output=True, text=True, timeout=90)


def _type(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    if v is None:
        return "null"
    return type(v).__name__


def compare(rmq: Any, warren: Any, path: str = "") -> list[str]:
    """Differences in field names/types: every RabbitMQ field must be in warren with the same type."""
    problems: list[str] = []
    if isinstance(rmq, dict) and isinstance(warren, dict):
        for k, v in rmq.items():
            if k in ERLANG_ONLY:
                continue
            if k not in warren:
                problems.append(f"{path}{k}: missing")
                continue
            if k in OPAQUE:
                if _type(v) != _type(warren[k]):
                    problems.append(f"{path}{k}: rabbitmq {_type(v)} warren {_type(warren[k])}")
                continue
            problems += compare(v, warren[k], f"{path}{k}.")
        return problems
    tr, tw = _type(rmq), _type(warren)
    if tr != tw and "null" not in (tr, tw):
        problems.append(f"{path[:-1]}: rabbitmq {tr} warren {tw}")
    if isinstance(rmq, list) and isinstance(warren, list) and rmq and warren and isinstance(rmq[0], dict):
        problems += compare(rmq[0], warren[0], path + "[0].")
    return problems


async def _scenario(amqp_port: int, mgmt_port: int, name: str) -> dict[str, Any]:
    conn = await aio_pika.connect(f"amqp://guest:guest@127.0.0.1:{amqp_port}/")
    out: dict[str, Any] = {}
    async with conn, aiohttp.ClientSession(headers=AUTH) as s:
        base = f"http://127.0.0.1:{mgmt_port}/api"
        ch = await conn.channel()
        await ch.set_qos(prefetch_count=5)
        q = await ch.declare_queue(f"{name}-q", durable=True, arguments={"x-max-priority": 2})
        ex = await ch.declare_exchange(f"{name}-x", "topic", durable=True)
        await q.bind(ex, "a.#")
        for i in range(3):
            await ex.publish(aio_pika.Message(b"hello", message_id=f"m{i}"), "a.b")

        async def noop(m: aio_pika.abc.AbstractIncomingMessage) -> None:
            return None

        await q.consume(noop, consumer_tag="diff-ctag")

        async def get(path: str) -> Any:
            async with s.get(f"{base}/{path}") as r:
                assert r.status == 200, path
                return await r.json()

        # RabbitMQ emits stats every 5 s: wait until the queue shows its deliveries
        deadline = time.monotonic() + 12
        while time.monotonic() < deadline:
            qj = await get(f"queues/%2F/{name}-q")
            chans = await get("channels")
            if qj.get("message_stats", {}).get("deliver") == 3 and chans and "message_stats" in chans[0]:
                break
            await asyncio.sleep(0.25)
        out["queue"] = qj
        out["exchange"] = await get(f"exchanges/%2F/{name}-x")
        out["bindings"] = [b for b in await get("bindings") if b["destination"] == f"{name}-q"]
        out["connections"] = await get("connections")
        out["channels"] = await get("channels")
        out["consumers"] = await get("consumers")
        out["vhosts"] = await get("vhosts")
        out["users"] = await get("users")
        out["permissions"] = await get("permissions")
        out["overview"] = await get("overview")
        async with s.post(f"{base}/queues/%2F/{name}-q/get", json={"count": 1, "ackmode": "ack_requeue_true", "encoding": "auto"}) as r:
            out["get"] = await r.json()
        async with s.post(f"{base}/exchanges/%2F/{name}-x/publish", json={
                "routing_key": "a.c", "payload": "x", "payload_encoding": "string", "properties": {}}) as r:
            out["publish"] = await r.json()
        async with s.delete(f"{base}/queues/%2F/{name}-q") as r:
            assert r.status == 204
        async with s.delete(f"{base}/exchanges/%2F/{name}-x") as r:
            assert r.status == 204
    return out


async def test_management_json_matches_rabbitmq(rabbit_mgmt, warren):
    amqp, mgmt = rabbit_mgmt
    name = f"diff-{secrets.token_hex(3)}"
    rmq = await _scenario(amqp, mgmt, name)
    wait_port(warren.mgmt_port)
    ours = await _scenario(warren.port, warren.mgmt_port, name)
    problems: list[str] = []
    for key in rmq:
        problems += [f"{key}: {p}" for p in compare(rmq[key], ours[key])]
    assert not problems, "\n".join(problems)
    assert Path(BENCH).exists()


def _blanks_outside_strings(raw: bytes) -> int:
    """Whitespace bytes of a JSON document that are not inside a string."""
    blanks, in_str, escaped = 0, False, False
    for b in raw:
        if in_str:
            if escaped:
                escaped = False
            elif b == 0x5C:  # backslash
                escaped = True
            elif b == 0x22:
                in_str = False
        elif b == 0x22:
            in_str = True
        elif b in b" \t\r\n":
            blanks += 1
    return blanks


async def test_management_json_is_laid_out_as_rabbitmqs(rabbit_mgmt, warren):
    """Byte layout too: RabbitMQ answers compact JSON (nothing between ``,``/``:`` and the
    next value), so does warren: listings, paged listings, single objects and errors."""
    _amqp, mgmt = rabbit_mgmt
    wait_port(warren.mgmt_port)
    paths = ["overview", "whoami", "vhosts", "users", "exchanges", "queues?page=1&page_size=10",
             "exchanges/%2F/amq.direct", "queues/%2F/no-such-queue"]
    for port in (mgmt, warren.mgmt_port):
        async with aiohttp.ClientSession(headers=AUTH) as s:
            for path in paths:
                async with s.get(f"http://127.0.0.1:{port}/api/{path}") as r:
                    raw = await r.read()
                assert raw.startswith((b"{", b"[")), (port, path, raw[:200])
                assert _blanks_outside_strings(raw) == 0, (port, path, raw[:300])
