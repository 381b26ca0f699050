"""A real Prometheus scrapes warren; every PromQL expression of RabbitMQ's
RabbitMQ-Overview dashboard and of warren's own dashboard (grafana/warren-overview.json)
returns data through Prometheus's HTTP API.

Prometheus is Debian's ``prometheus`` package, started by the test on a free port
with a 1 s scrape interval. Grafana's template variables are resolved the way
Grafana does it (``label_values`` through the label-values API) and substituted;
``$__rate_interval`` becomes ``1m``. Skipped without ``prometheus`` unless CI is set.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import aio_pika
import aiohttp
import pytest

from tests.brokerproc import free_port, wait_port
from tests.grafana.rabbitmq_overview import EXPRS, TEMPLATE_QUERIES

REPO = Path(__file__).resolve().parents[2]
WARREN_DASHBOARD = REPO / "grafana" / "warren-overview.json"
OVERVIEW_JSON = Path(__file__).with_name("RabbitMQ-Overview.json")
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
NAMESPACE = "warren-test"


def dashboard_exprs(dash: dict[str, Any]) -> list[str]:
    """Every target expression of a Grafana dashboard (rows' nested panels included)."""
    out: list[str] = []

    def walk(panels: list[dict[str, Any]]) -> None:
        for p in panels:
            walk(p.get("panels") or [])
            out.extend(t["expr"] for t in p.get("targets") or [] if t.get("expr"))

    walk(dash["panels"])
    return out


def overview_exprs() -> list[str]:
    if OVERVIEW_JSON.exists():
        return dashboard_exprs(json.loads(OVERVIEW_JSON.read_text()))
    return EXPRS


class Prometheus:
    """A private Prometheus scraping one target every second."""

    def __init__(self, tmp: Path, target: str) -> None:
        if not os.path.exists(PROMETHEUS):
            if os.environ.get("CI"):
                pytest.fail("prometheus is not installed (CI is set, so this is a failure)")
            pytest.skip("prometheus is not installed (apt-get install prometheus)")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cfg = tmp / "prometheus.yml"
        cfg.write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            "scrape_configs:\n  - job_name: warren\n    static_configs:\n"
            f"      - targets: ['{target}']\n        labels:\n          namespace: {NAMESPACE}\n"
        )
        self.log = open(tmp / "prometheus.log", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [PROMETHEUS, f"--config.file={cfg}", f"--storage.tsdb.path={tmp / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
            stdout=self.log, stderr=subprocess.STDOUT,
        )

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


async def query(s: aiohttp.ClientSession, prom: Prometheus, expr: str) -> list[dict[str, Any]]:
    async with s.get(prom.url + "/api/v1/query", params={"query": expr}) as r:
        body = await r.json()
    assert body["status"] == "success", (expr, body)
    return body["data"]["result"]


async def label_values(s: aiohttp.ClientSession, prom: Prometheus, q: str) -> list[str]:
    """Grafana's ``label_values(selector, label)`` through Prometheus's API."""
    m = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", q)
    assert m, q
    async with s.get(f"{prom.url}/api/v1/label/{m.group(2)}/values", params={"match[]": m.group(1)}) as r:
        body = await r.json()
    assert body["status"] == "success", body
    return body["data"]


def substitute(expr: str, variables: dict[str, str]) -> str:
    for k in sorted(variables, key=len, reverse=True):
        expr = expr.replace("$" + k, variables[k])
    return expr


async def traffic(url: str, stop: asyncio.Event) -> None:
    """Persistent publishes with confirms (fsync, confirm latency), deliveries, acks, gets."""
    conn = await aio_pika.connect(url)
    async with conn:
        ch = await conn.channel()
        await ch.set_qos(prefetch_count=50)
        q = await ch.declare_queue("metrics-durable", durable=True)
        ex = await ch.declare_exchange("later", "x-delayed-message", durable=True,
                                       arguments={"x-delayed-type": "direct"})
        held = await ch.declare_queue("later-q", durable=True)
        await held.bind(ex, "k")
        await ex.publish(aio_pika.Message(b"in an hour", headers={"x-delay": 3_600_000}), "k")
        lanes = await ch.declare_queue("metrics-lanes", arguments={"x-max-priority": 4})
        for p in (0, 2, 4, 4):
            await ch.default_exchange.publish(aio_pika.Message(b"p", priority=p), lanes.name)

        async def consume(msg: aio_pika.abc.AbstractIncomingMessage) -> None:
            await msg.ack()

        await q.consume(consume)
        while not stop.is_set():
            await asyncio.gather(*(ch.default_exchange.publish(
                aio_pika.Message(b"x" * 100, delivery_mode=aio_pika.DeliveryMode.PERSISTENT), q.name)
                for _ in range(20)))
            await ch.default_exchange.publish(aio_pika.Message(b"nowhere"), "no-such-queue")
            await held.get(fail=False)  # an empty basic.get
            await asyncio.sleep(0.05)


@pytest.mark.timeout(120)
async def test_dashboards_queries_return_data_from_a_real_prometheus(broker, tmp_path):
    wait_port(broker.prom_port)
    prom = Prometheus(tmp_path, f"127.0.0.1:{broker.prom_port}")
    stop = asyncio.Event()
    task = asyncio.create_task(traffic(broker.url, stop))
    try:
        async with aiohttp.ClientSession() as s:
            deadline = time.monotonic() + 60
            while True:  # ready, and a few scrapes taken while traffic flows
                try:
                    res = await query(s, prom, 'count_over_time(up{job="warren"}[1m])')
                    if res and float(res[0]["value"][1]) >= 6:
                        res = await query(s, prom, "rabbitmq_channel_messages_confirmed_total")
                        if res and float(res[0]["value"][1]) > 0:
                            break
                except (aiohttp.ClientError, ValueError):
                    pass  # not listening yet
                assert prom.proc.poll() is None, (tmp_path / "prometheus.log").read_text()[-2000:]
                assert not task.done() or task.exception() is None, task.exception()
                assert time.monotonic() < deadline, "prometheus did not scrape warren"
                await asyncio.sleep(0.2)
            up = await query(s, prom, 'up{job="warren"}')
            assert float(up[0]["value"][1]) == 1

            # Grafana's template variables, resolved as Grafana would
            namespaces = await label_values(s, prom, TEMPLATE_QUERIES["namespace"])
            assert namespaces == [NAMESPACE]
            variables = {"namespace": NAMESPACE}
            clusters = await label_values(s, prom, substitute(TEMPLATE_QUERIES["rabbitmq_cluster"], variables))
            assert clusters == ["warren"]
            variables["rabbitmq_cluster"] = clusters[0]

            warren = json.loads(WARREN_DASHBOARD.read_text())
            instance_q = next(v for v in warren["templating"]["list"] if v["name"] == "instance")["definition"]
            instances = await label_values(s, prom, instance_q)
            assert instances == [f"127.0.0.1:{broker.prom_port}"]
            # Grafana escapes a regex variable's value, inside a PromQL string literal
            variables.update({"instance": re.escape(instances[0]).replace("\\", "\\\\"), "__rate_interval": "1m"})

            failures = []
            exprs = [("RabbitMQ-Overview", e) for e in overview_exprs()] + \
                [("warren", e) for e in dashboard_exprs(warren)]
            assert len(exprs) >= 41 + 18
            for dash, expr in exprs:
                q = substitute(expr, variables)
                assert "$" not in q, q
                result = await query(s, prom, q)
                values = [float(r["value"][1]) for r in result]
                if not values:
                    failures.append(f"{dash}: no data: {q}")
                elif not all(math.isfinite(v) for v in values):
                    failures.append(f"{dash}: not a number {values}: {q}")
            assert not failures, "\n".join(failures)

            # spot checks that the joins carry warren's identity and the values are warren's
            ready = await query(s, prom, substitute(EXPRS[0], variables))
            assert float(ready[0]["value"][1]) >= 4  # the priority queue's messages at least
            nodes = await query(s, prom, substitute(EXPRS[10], variables))
            assert nodes[0]["metric"]["rabbitmq_node"].startswith("warren@")
            lanes = await query(s, prom, f'sum by (lane) (warren_queue_lane_messages_ready{{instance=~"{variables["instance"]}"}})')
            assert {r["metric"]["lane"]: float(r["value"][1]) for r in lanes} == \
                {"0": 1, "1": 0, "2": 1, "3": 0, "4": 2}
            pending = await query(s, prom, "sum(warren_delayed_messages_pending)")
            assert float(pending[0]["value"][1]) == 1
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        prom.stop()
