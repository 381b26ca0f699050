"""The memory alarm as a client and a monitoring system see it: connection.blocked
"low on memory" (with RabbitMQ's text), RabbitMQ's alarm and watermark metrics, the
node's mem_alarm, and the watermark settings (relative by default, absolute when set)."""

from __future__ import annotations

import os
import subprocess
import sys

import aiohttp
import pytest
from pamqp import commands as C

from tests.broker.fuzz_live import content_header, method, raw_frame
from tests.brokerproc import ROOT, free_port, wait_port
from tests.management.conftest import Http, metric
from tests.resilience.test_memory import _open, _recv_frame


async def test_memory_alarm_blocks_publishers_and_shows_in_metrics(broker_factory):
    b = broker_factory("--vm-memory-high-watermark-absolute", "1MB")  # always over: alarm at once
    wait_port(b.mgmt_port)
    wait_port(b.prom_port)
    async with aiohttp.ClientSession() as s:
        http = Http(b, s)
        m = await http.metrics()
        assert metric(m, "rabbitmq_resident_memory_limit_bytes") == 1_000_000
        assert metric(m, "rabbitmq_alarms_memory_used_watermark") == 1
        assert metric(m, "rabbitmq_alarms_free_disk_space_watermark") == 0
        assert metric(m, "rabbitmq_alarms_file_descriptor_limit") == 0
        node = (await http.get("/api/nodes"))[0]
        assert node["mem_alarm"] is True and node["disk_free_alarm"] is False
        assert node["mem_limit"] == 1_000_000
        status, body = await http.req("GET", "/api/health/checks/alarms")
        assert status == 503 and body["alarms"][0]["resource"] == "memory"
    assert "resource alarm set resource=memory" in b.log_text()


def test_connection_blocked_reason_is_rabbitmqs(broker_factory):
    b = broker_factory("--vm-memory-high-watermark-absolute", "1MB")
    seen: list[bytes] = []
    s, buf = _open(b.port, seen)  # announces the connection.blocked capability
    try:
        s.sendall(method(C.Basic.Publish, 1, exchange="", routing_key="nowhere") + content_header(1, 1, {})
                  + raw_frame(3, 1, b"x"))
        while not any(p[:4] == b"\x00\x0a\x00\x3c" for p in seen):  # Connection.Blocked
            t, p = _recv_frame(s, buf)
            if t == 1:
                seen.append(p)
    finally:
        s.close()
    (p,) = [p for p in seen if p[:4] == b"\x00\x0a\x00\x3c"]
    assert p[5 : 5 + p[4]] == b"low on memory"


async def test_relative_watermark_is_the_default(broker):
    wait_port(broker.prom_port)
    async with aiohttp.ClientSession() as s:
        m = await Http(broker, s).metrics()
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    limit = metric(m, "rabbitmq_resident_memory_limit_bytes")
    assert 0 < limit <= 0.4 * total + 1
    assert metric(m, "rabbitmq_alarms_memory_used_watermark") == 0


@pytest.mark.parametrize("args", [["--vm-memory-high-watermark", "1.5"], ["--vm-memory-high-watermark-absolute", "lots"]])
def test_bad_watermark_settings_refuse_to_start(tmp_path, args):
    cmd = [sys.executable, "-m", "warren.server.main", "--host", "127.0.0.1", "--port", str(free_port()),
           "--data-dir", str(tmp_path), "--management-port", str(free_port()),
           "--prometheus-port", str(free_port()), *args]
    r = subprocess.run(cmd, cwd=str(ROOT), capture_output=True, text=True, timeout=30,
                       env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert r.returncode == 2
    assert "vm_memory_high_watermark" in r.stderr
