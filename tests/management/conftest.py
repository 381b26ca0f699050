"""Helpers for management/metrics tests: HTTP against a broker's management and Prometheus ports."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.brokerproc import BrokerProcess, wait_port

AUTH = {"Authorization": "Basic " + base64.b64encode(b"guest:guest").decode()}


class Http:
    """Small async client for one broker's management API and metrics endpoint."""

    def __init__(self, broker: BrokerProcess, session: aiohttp.ClientSession) -> None:
        self.broker = broker
        self.s = session
        self.base = f"http://127.0.0.1:{broker.mgmt_port}"
        self.prom = f"http://127.0.0.1:{broker.prom_port}"

    async def req(self, method: str, path: str, json: Any = None, auth: Any = AUTH, **kw: Any) -> tuple[int, Any]:
        async with self.s.request(method, self.base + path, json=json, headers=auth or {}, **kw) as r:
            text = await r.text()
            data: Any = text
            if r.content_type == "application/json" and text:
                data = await r.json()
            return r.status, data

    async def get(self, path: str) -> Any:
        status, data = await self.req("GET", path)
        assert status == 200, (path, status, data)
        return data

    async def metrics(self, per_object: bool = False) -> dict[tuple[str, frozenset], float]:
        url = self.prom + ("/metrics/per-object" if per_object else "/metrics")
        async with self.s.get(url) as r:
            assert r.status == 200
            text = await r.text()
        out: dict[tuple[str, frozenset], float] = {}
        for fam in text_string_to_metric_families(text):
            for s in fam.samples:
                out[(s.name, frozenset(s.labels.items()))] = s.value
        return out


def metric(m: dict, name: str, **labels: str) -> float:
    return m[(name, frozenset(labels.items()))]


async def wait_for(cond: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if await cond():
            return
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.02)


@pytest.fixture
async def http(broker):
    wait_port(broker.mgmt_port)
    wait_port(broker.prom_port)
    async with aiohttp.ClientSession() as s:
        yield Http(broker, s)
