"""Resilience of the management and Prometheus listeners (issue 12 items 4, 6, 7): while a
canary client round-trips a message every 50 ms, hostile HTTP use must not freeze the
broker (canary max round trip < 1 s) nor exhaust its file descriptors."""

from __future__ import annotations

import asyncio
import base64

import aio_pika
import aiohttp
import pytest

from tests.brokerproc import wait_port

AUTH = {"Authorization": "Basic " + base64.b64encode(b"guest:guest").decode()}
MAX_RTT = 1.0


@pytest.mark.timeout(90)
async def test_regex_name_filter_cannot_freeze_the_broker(broker, canary):
    """ReDoS: (a+)+$ against a 26-character name takes ~8 s with backtracking; RE2 is linear."""
    wait_port(broker.mgmt_port)
    conn = await aio_pika.connect(broker.url)
    async with conn:
        ch = await conn.channel()
        await ch.declare_queue("a" * 26 + "b")
        async with aiohttp.ClientSession(headers=AUTH) as s:
            url = f"http://127.0.0.1:{broker.mgmt_port}/api/queues?use_regex=true&name=(a%2B)%2B%24"
            for _ in range(3):
                async with s.get(url) as r:
                    assert r.status == 200
                    assert await r.json() == []
            # RE2 has no backreferences: a clear 400, not a 500
            async with s.get(f"http://127.0.0.1:{broker.mgmt_port}/api/queues?use_regex=true&name=(a)%5C1") as r:
                assert r.status == 400
                assert (await r.json())["error"] == "bad_request"
    canary.wait_rounds(3)
    assert canary.max_rtt < MAX_RTT, f"canary max RTT {canary.max_rtt:.2f}s"
    assert "Traceback" not in broker.log_text()
