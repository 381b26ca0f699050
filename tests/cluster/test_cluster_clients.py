"""Client libraries ride through a leader failover as their users write them:
aio-pika's ``connect_robust``, pika with a host list, kombu with failover URLs.

In each test the leader is killed with -9 while the client works; the client
recovers through its own reconnect path (to a follower, which forwards to the new
leader, or to the new leader itself) and every message it had confirmed is read back.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time

import aio_pika
import pika
import pytest
from kombu import Connection as KombuConnection
from kombu import Exchange, Producer
from kombu import Queue as KombuQueue

from tests.cluster.clusterproc import LocalCluster

pytestmark = pytest.mark.timeout(150)



async def _new_leader_serving(c: LocalCluster, old: str) -> str:
    async def ready():
        lead = await c.leader()
        if lead is None or lead[0] == old:
            return None
        if f"serves as leader (token {lead[1]})" not in c.nodes[lead[0]].log_text():
            return None
        return lead[0] if len(await c.insync()) >= 2 else None

    return await c.wait(ready, 40, "a new leader serving with a follower in sync")


async def _read_all(url: str, queue: str) -> list[bytes]:
    conn = await aio_pika.connect(url, timeout=10)
    try:
        ch = await conn.channel()
        q = await ch.declare_queue(queue, durable=True, passive=True)
        out = []
        while (m := await q.get(timeout=10, fail=False)) is not None:
            out.append(m.body)
            await m.ack()
        return out
    finally:
        await conn.close()


async def test_aio_pika_connect_robust_recovers_through_a_follower(cluster3):
    leader = await cluster3.wait_serving(size=3)
    follower = next(n for n in cluster3.nodes.values() if n.name != leader)
    conn = await aio_pika.connect_robust(follower.url, timeout=10, reconnect_interval=0.2)
    reconnected = asyncio.Event()
    conn.reconnect_callbacks.add(lambda *_: reconnected.set())
    ch = await conn.channel(publisher_confirms=True)
    await ch.declare_queue("robust", durable=True)
    confirmed: list[bytes] = []

    async def publish(body: bytes) -> None:
        # what an application does with a robust connection: retry until confirmed
        for _ in range(100):
            try:
                await ch.default_exchange.publish(
                    aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                    routing_key="robust", timeout=5,
                )
                confirmed.append(body)
                return
            except (TimeoutError, aio_pika.exceptions.DeliveryError, aio_pika.exceptions.AMQPError, ConnectionError, RuntimeError):
                await asyncio.sleep(0.2)
        raise AssertionError(f"{body!r} never confirmed")

    for i in range(50):
        await publish(f"before-{i}".encode())
    cluster3.nodes[leader].kill()
    new = await _new_leader_serving(cluster3, leader)
    await asyncio.wait_for(reconnected.wait(), 40)
    for i in range(50):
        await publish(f"after-{i}".encode())
    await conn.close()
    got = await _read_all(cluster3.nodes[new].url, "robust")
    assert set(confirmed) <= set(got)
    assert {f"after-{i}".encode() for i in range(50)} <= set(got)


def _pika_params(c: LocalCluster) -> list[pika.ConnectionParameters]:
    return [
        pika.ConnectionParameters("127.0.0.1", n.port, connection_attempts=1, socket_timeout=5,
                                  blocked_connection_timeout=10)
        for n in c.nodes.values()
    ]


async def test_pika_with_a_host_list_fails_over(cluster3):
    leader = await cluster3.wait_serving(size=3)
    params = _pika_params(cluster3)
    # the leader first in the list, as if the application had been talking to it
    params.sort(key=lambda p: p.port != cluster3.nodes[leader].port)
    confirmed: list[bytes] = []
    errors: list[BaseException] = []
    killed = threading.Event()

    def app() -> None:
        """The usual pika loop: on a lost connection, reconnect with the same host list."""
        sent = 0
        deadline = time.monotonic() + 90
        while sent < 200 and time.monotonic() < deadline:
            try:
                conn = pika.BlockingConnection(params)
            except pika.exceptions.AMQPConnectionError:
                time.sleep(0.2)
                continue
            try:
                ch = conn.channel()
                ch.confirm_delivery()
                ch.queue_declare("pika-ha", durable=True)
                while sent < 200:
                    body = f"m{sent}".encode()
                    try:
                        ch.basic_publish("", "pika-ha", body,
                                         pika.BasicProperties(delivery_mode=2))
                    except pika.exceptions.NackError:
                        time.sleep(0.1)
                        continue
                    confirmed.append(body)
                    sent += 1
                    if sent == 100:
                        killed.wait(60)  # the test kills the leader here
            except (pika.exceptions.AMQPError, OSError):
                time.sleep(0.2)
            finally:
                if conn.is_open:
                    try:
                        conn.close()
                    except Exception:  # noqa: BLE001 - already broken
                        pass
        if sent < 200:
            errors.append(AssertionError(f"only {sent} published"))

    t = threading.Thread(target=app)
    t.start()
    await cluster3.wait(lambda: _true(len(confirmed) >= 100), 60, "100 confirms")
    cluster3.nodes[leader].kill()
    killed.set()
    new = await _new_leader_serving(cluster3, leader)
    await asyncio.get_running_loop().run_in_executor(None, t.join, 120)
    assert not errors, errors
    got = await _read_all(cluster3.nodes[new].url, "pika-ha")
    assert set(confirmed) <= set(got)
    assert len(set(confirmed)) == 200


async def test_kombu_failover_urls_publish_through_a_leader_kill(cluster3):
    leader = await cluster3.wait_serving(size=3)
    nodes = sorted(cluster3.nodes.values(), key=lambda n: n.name != leader)
    url = ";".join(f"amqp://guest:guest@127.0.0.1:{n.port}//" for n in nodes)
    queue = KombuQueue("kombu-ha", Exchange("kombu-ha", type="direct", durable=True),
                       routing_key="k", durable=True)
    published: list[str] = []

    def app(start: int, count: int) -> None:
        with KombuConnection(url, failover_strategy="round-robin", transport_options={
            "confirm_publish": True, "max_retries": 20, "interval_start": 0.2,
            "interval_step": 0.5, "interval_max": 1.0,
        }) as conn:
            producer = Producer(conn)
            publish = conn.ensure(producer, producer.publish, max_retries=40,
                                  interval_start=0.2, interval_step=0.2, interval_max=1.0)
            for i in range(start, start + count):
                body = f"k{i}"
                publish(body, exchange=queue.exchange, routing_key="k", declare=[queue],
                        delivery_mode=2, serializer="json")
                published.append(body)

    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, app, 0, 50)
    cluster3.nodes[leader].kill()
    # the next publishes meet the dead leader first: kombu fails over to the next URL
    await loop.run_in_executor(None, app, 50, 50)
    new = await _new_leader_serving(cluster3, leader)
    got = await _read_all(cluster3.nodes[new].url, "kombu-ha")

    bodies = {json.loads(b) for b in got}
    assert set(published) <= bodies
    assert len(published) == 100


async def _true(value: bool) -> bool:
    return value
