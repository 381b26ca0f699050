"""Resilience of the management and Prometheus listeners (issue 12 items 4, 6, 7): while a
canary client round-trips a message every 50 ms, hostile HTTP use must not freeze the
broker (canary max round trip < 1 s) nor exhaust its file descriptors."""

from __future__ import annotations

import asyncio
import base64
import select
import socket
import sys
import time
from asyncio.subprocess import PIPE

import aio_pika
import aiohttp
import aiormq
import pika
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


def _eof_within(socks: list[socket.socket], timeout: float) -> list[socket.socket]:
    """Wait until the broker closed every socket (EOF or reset); returns the ones still open."""
    left = list(socks)
    deadline = time.monotonic() + timeout
    while left and time.monotonic() < deadline:
        readable, _, _ = select.select(left, [], [], 0.2)
        for s in readable:
            try:
                if s.recv(4096) == b"":
                    left.remove(s)
            except OSError:
                left.remove(s)
    return left


@pytest.mark.timeout(60)
def test_idle_and_slow_http_connections_are_closed(broker):
    """No request, a half-sent request (slowloris) or an idle keep-alive: closed within ~6 s, as RabbitMQ."""
    wait_port(broker.mgmt_port)
    wait_port(broker.prom_port)
    socks = [socket.create_connection(("127.0.0.1", port)) for port in (broker.mgmt_port, broker.prom_port)
             for _ in range(100)]
    slow = socket.create_connection(("127.0.0.1", broker.mgmt_port))
    slow.sendall(b"GET /api/overview HTTP/1.1\r\nHost: x\r\n")
    keep = socket.create_connection(("127.0.0.1", broker.prom_port))
    keep.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    t0 = time.monotonic()
    deadline = t0 + 3
    # the slowloris client keeps trickling header bytes, which must not extend its deadline
    while time.monotonic() < deadline:
        slow.sendall(b"X")
        time.sleep(0.5)
    head = keep.recv(65536)
    assert head.startswith(b"HTTP/1.1 200")
    left = _eof_within([*socks, slow, keep], timeout=20)
    elapsed = time.monotonic() - t0
    for s in [*socks, slow, keep]:
        s.close()
    assert not left, f"{len(left)} HTTP connections still open after {elapsed:.1f}s"
    assert elapsed < 8, f"idle HTTP connections closed only after {elapsed:.1f}s"


@pytest.mark.timeout(60)
def test_idle_http_sockets_do_not_starve_amqp(broker_factory, tmp_path):
    """With a low descriptor limit, hundreds of idle HTTP sockets leave room for AMQP clients."""
    from tests.brokerproc import BrokerProcess

    b = BrokerProcess(tmp_path / "lowfd", nofile=256).start()
    socks: list[socket.socket] = []
    try:
        wait_port(b.mgmt_port)
        wait_port(b.prom_port)
        for port in (b.mgmt_port, b.prom_port):
            for _ in range(200):
                socks.append(socket.create_connection(("127.0.0.1", port)))
        for _ in range(5):
            conn = pika.BlockingConnection(pika.URLParameters(b.url + "?socket_timeout=5"))
            ch = conn.channel()
            ch.queue_declare("starve-q")
            conn.close()
        assert "connection limit reached" in b.log_text()
    finally:
        for s in socks:
            s.close()
        b.stop()


@pytest.mark.timeout(60)
def test_fd_exhaustion_is_logged_and_the_listener_survives(tmp_path):
    """AMQP sockets up to the descriptor limit: one warning in the log; once they go, AMQP works again."""
    from tests.brokerproc import BrokerProcess

    # a long handshake timeout: idle sockets must not be closed (freeing descriptors) while
    # a loaded machine is still connecting the 200
    b = BrokerProcess(tmp_path / "fd", nofile=128, extra_args=["--handshake-timeout", "120"]).start()
    socks: list[socket.socket] = []
    try:
        for _ in range(200):
            socks.append(socket.create_connection(("127.0.0.1", b.port)))
        deadline = time.monotonic() + 30
        while "file descriptors exhausted" not in b.log_text():
            assert time.monotonic() < deadline, "no log line for EMFILE"
            time.sleep(0.1)
        for s in socks:
            s.close()
        socks.clear()
        deadline = time.monotonic() + 15
        while True:
            try:
                conn = pika.BlockingConnection(pika.URLParameters(b.url + "?socket_timeout=5"))
                break
            except pika.exceptions.AMQPConnectionError:
                assert time.monotonic() < deadline, "AMQP listener did not recover"
                time.sleep(0.2)
        conn.close()
        assert "Traceback" not in b.log_text()
    finally:
        for s in socks:
            s.close()
        b.stop()


async def _declare_many(url: str, n: int, prefix: str) -> None:
    """``n`` queues declared pipelined (nowait), then one round trip to know they all exist."""
    conn = await aiormq.connect(url)
    try:
        ch = await conn.channel()
        for i in range(n):
            await ch.queue_declare(f"{prefix}-{i:06d}", nowait=True)
        await ch.queue_declare(f"{prefix}-sync")
    finally:
        await conn.close()


#: a scraper in its own process (so reading 17 MB bodies does not compete with the canary thread
#: for this process's GIL): GETs ``url`` until ``seconds`` passed, prints how many it completed
SCRAPER = """
import base64, sys, time, urllib.request
url, seconds = sys.argv[1], float(sys.argv[2])
auth = "Basic " + base64.b64encode(b"guest:guest").decode()
stop, n = time.monotonic() + seconds, 0
while time.monotonic() < stop:
    with urllib.request.urlopen(urllib.request.Request(url, headers={"Authorization": auth}), timeout=120) as r:
        assert r.status == 200
        r.read()
    n += 1
print(n)
"""


@pytest.mark.timeout(180)
async def test_scraping_10k_queues_does_not_freeze_the_broker(broker, canary):
    """4 scrapers of /metrics/per-object and 4 of /api/queues for 10 s over 10k queues: canary max < 1 s."""
    wait_port(broker.mgmt_port)
    wait_port(broker.prom_port)
    await _declare_many(broker.url, 10_000, "scrape")
    canary.wait_rounds(3)
    canary.rtts.clear()
    per_object = f"http://127.0.0.1:{broker.prom_port}/metrics/per-object"
    queues = f"http://127.0.0.1:{broker.mgmt_port}/api/queues"
    procs = [await asyncio.create_subprocess_exec(sys.executable, "-c", SCRAPER, url, "10", stdout=PIPE)
             for url in [per_object] * 4 + [queues] * 4]
    counts = [int((await p.communicate())[0] or 0) for p in procs]
    assert all(p.returncode == 0 for p in procs) and min(counts) >= 1, counts
    async with aiohttp.ClientSession(headers=AUTH) as s:
        async with s.get(queues + "?page=3&page_size=100&name=scrape-00&sort=name") as r:
            page = await r.json()
    # 10k + scrape-sync + the canary's queue
    assert page["total_count"] == 10_002 and page["filtered_count"] == 10_000 and page["page"] == 3
    assert [q["name"] for q in page["items"]][:2] == ["scrape-000200", "scrape-000201"]
    canary.wait_rounds(3)
    print(f"canary max RTT {canary.max_rtt:.3f}s while scraping, scrapes per scraper {counts}")
    assert canary.max_rtt < MAX_RTT, f"canary max RTT {canary.max_rtt:.2f}s while scraping {counts}"


async def test_prometheus_basic_auth(broker_factory):
    b = broker_factory("--prometheus-user", "scraper", "--prometheus-pass", "s3cret")
    wait_port(b.prom_port)
    url = f"http://127.0.0.1:{b.prom_port}/metrics/per-object"
    good = {"Authorization": "Basic " + base64.b64encode(b"scraper:s3cret").decode()}
    async with aiohttp.ClientSession() as s:
        for headers in ({}, AUTH, {"Authorization": "Basic " + base64.b64encode(b"scraper:nope").decode()}):
            async with s.get(url, headers=headers) as r:
                assert r.status == 401
                assert r.headers["WWW-Authenticate"].startswith("Basic")
        async with s.get(url, headers=good) as r:
            assert r.status == 200
            assert "rabbitmq_connections" in await r.text()
