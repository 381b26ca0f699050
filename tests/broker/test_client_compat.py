"""Issue 8 through real clients (aio-pika, aiormq, pika): connection.update-secret and
names outside pamqp's name pattern. Bytes are checked in test_wire.py; the Node clients
in interop/test_cloudamqp.py and interop/test_update_secret.py.
"""

from __future__ import annotations

import asyncio

import aio_pika
import aiormq
import pika
import pytest
from pamqp import commands as C

#: names RabbitMQ accepts (any UTF-8 up to 255 bytes) that pamqp's encoder refused
ODD_NAMES = ["jobs!", "café", "a|b", "ключ 🙂", "x" * 200 + "é!"]


# ---------------------------------------------------------------- connection.update-secret
async def test_update_secret_aiormq(broker):
    """OAuth 2 token refresh: answered with Update-Secret-Ok (RabbitMQ 3.10's internal users
    accept any new secret: nothing to re-validate), and the connection keeps serving."""
    conn = await aiormq.connect(broker.url)
    try:
        ok = await conn.update_secret("guest", reason="token refresh", timeout=5)
        assert isinstance(ok, C.Connection.UpdateSecretOk)
        ok = await conn.update_secret("a new token", reason="", timeout=5)
        assert isinstance(ok, C.Connection.UpdateSecretOk)
        ch = await conn.channel()
        declared = await ch.queue_declare("", exclusive=True)
        assert declared.queue.startswith("amq.gen-")
    finally:
        await conn.close()


async def test_update_secret_aio_pika(broker):
    conn = await aio_pika.connect(broker.url)
    async with conn:
        await asyncio.wait_for(conn.update_secret("new secret", reason="refresh"), 5)
        ch = await conn.channel()
        q = await ch.declare_queue("", exclusive=True)
        await ch.default_exchange.publish(aio_pika.Message(b"after"), routing_key=q.name)
        msg = await q.get(timeout=5)
        assert msg.body == b"after"


def test_update_secret_pika(broker):
    conn = pika.BlockingConnection(pika.URLParameters(broker.url))
    try:
        conn.update_secret("new secret", "refresh")  # blocks until Update-Secret-Ok
        ch = conn.channel()
        q = ch.queue_declare("", exclusive=True).method.queue
        assert q.startswith("amq.gen-")
    finally:
        conn.close()


# ---------------------------------------------------------------- names
def test_odd_names_pika(broker):
    """declare / bind / publish / get / mandatory return / consume / cancel / delete with
    names pamqp's pattern refuses (pika sends any name; aio-pika and aiormq check names
    with pamqp on the client side): every reply arrives, the connection stays up."""
    conn = pika.BlockingConnection(pika.URLParameters(broker.url))
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        for name in ODD_NAMES:
            assert ch.queue_declare(name).method.queue == name
            ch.exchange_declare(name[:250] + ".x", "direct")
            ch.queue_bind(name, name[:250] + ".x", routing_key=name)
            ch.basic_publish(name[:250] + ".x", name, b"m")
            method, _props, body = ch.basic_get(name, auto_ack=True)
            assert (body, method.exchange, method.routing_key) == (b"m", name[:250] + ".x", name)
            with pytest.raises(pika.exceptions.UnroutableError):
                ch.basic_publish(name[:250] + ".x", "nowhere", b"r", mandatory=True)
            tag = ch.basic_consume(name, lambda *a: None, consumer_tag=name)
            assert tag == name
            ch.basic_cancel(name)
            assert ch.queue_delete(name).method.message_count == 0
            ch.exchange_delete(name[:250] + ".x")
        assert conn.is_open and ch.is_open
    finally:
        conn.close()
