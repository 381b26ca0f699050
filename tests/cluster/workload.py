"""A Jepsen-style workload and checker for a warren cluster.

Publishers send unique bodies (``p<i>.<attempt>``) with confirms to any node (followers
forward to the leader) and retry a body under a new attempt when it is nacked or the
connection drops. Consumers take messages with manual acks from any node. At the end
the queue is drained. The checker then verifies, over what clients observed:

* every confirmed body was delivered at least once (``lost`` must be empty);
* nothing was delivered that was never published (``unexpected`` must be empty);
and counts redeliveries and duplicates.

``WARREN_FAULT_PAD`` (bytes, default 4000) pads every body after its id, so that a run
writes enough to fill and recycle segment files (the fault suite runs its nodes with
small ones); a delivered body whose padding is not exactly what was sent counts as
unexpected (``corrupt:<id>``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
from dataclasses import dataclass, field

import aio_pika

PAD = b"p" * int(os.environ.get("WARREN_FAULT_PAD", "4000"))


def body_of(ident: str) -> bytes:
    """What is published for ``ident`` (the id, then the padding if any)."""
    return ident.encode() + b" " + PAD if PAD else ident.encode()


def ident_of(body: bytes) -> bytes:
    """The id a delivered body carries (``corrupt:<id>`` if its padding is not intact)."""
    if not PAD:
        return body
    head, _sep, rest = body.partition(b" ")
    return head if rest == PAD else b"corrupt:" + head


@dataclass
class History:
    published: set[bytes] = field(default_factory=set)
    confirmed: set[bytes] = field(default_factory=set)
    nacked: int = 0
    delivered: list[bytes] = field(default_factory=list)
    redelivered: int = 0
    reconnects: int = 0


@dataclass
class Verdict:
    confirmed: int
    delivered_unique: int
    lost: set[bytes]
    unexpected: set[bytes]
    duplicates: int
    redelivered: int
    nacked: int

    @property
    def ok(self) -> bool:
        return not self.lost and not self.unexpected


def check(h: History) -> Verdict:
    got = set(h.delivered)
    return Verdict(
        confirmed=len(h.confirmed),
        delivered_unique=len(got),
        lost=h.confirmed - got,
        unexpected=got - h.published,
        duplicates=len(h.delivered) - len(got),
        redelivered=h.redelivered,
        nacked=h.nacked,
    )


async def _connect(urls: list[str]) -> aio_pika.abc.AbstractConnection:
    url = random.choice(urls)
    return await aio_pika.connect(url, timeout=5)


async def publisher(urls: list[str], queue: str, h: History, stop: asyncio.Event, tag: str) -> None:
    i = 0
    attempt = 0
    while not stop.is_set():
        try:
            conn = await _connect(urls)
        except Exception:  # noqa: BLE001 - no node answers right now: try again
            await asyncio.sleep(0.1)
            continue
        try:
            ch = await conn.channel(publisher_confirms=True)
            while not stop.is_set():
                body = f"{tag}{i}.{attempt}".encode()
                h.published.add(body)
                try:
                    await ch.default_exchange.publish(
                        aio_pika.Message(body_of(body.decode()),
                                         delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                        routing_key=queue, timeout=10,
                    )
                except aio_pika.exceptions.DeliveryError:
                    h.nacked += 1
                    attempt += 1
                    await asyncio.sleep(0.02)
                    continue
                h.confirmed.add(body)
                i += 1
                attempt = 0
        except Exception:  # noqa: BLE001 - connection or channel lost: reconnect, new attempt
            attempt += 1
            h.reconnects += 1
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), 2)
        await asyncio.sleep(0.05)


async def consumer(urls: list[str], queue: str, h: History, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            conn = await _connect(urls)
        except Exception:  # noqa: BLE001
            await asyncio.sleep(0.1)
            continue
        try:
            ch = await conn.channel()
            await ch.set_qos(prefetch_count=20)
            q = await ch.declare_queue(queue, durable=True, passive=True)
            async with q.iterator(timeout=None) as it:
                while not stop.is_set():
                    try:
                        msg = await asyncio.wait_for(it.__anext__(), 0.5)
                    except TimeoutError:
                        if conn.is_closed:
                            break
                        continue
                    h.delivered.append(ident_of(msg.body))
                    h.redelivered += msg.redelivered
                    await msg.ack()
        except Exception:  # noqa: BLE001
            h.reconnects += 1
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), 2)
        await asyncio.sleep(0.05)


async def drain(url: str, queue: str, h: History) -> None:
    """Take everything left (the cluster is serving); ends when the queue is empty."""
    conn = await aio_pika.connect(url, timeout=10)
    try:
        ch = await conn.channel()
        q = await ch.declare_queue(queue, durable=True, passive=True)
        while (msg := await q.get(timeout=10, fail=False)) is not None:
            h.delivered.append(ident_of(msg.body))
            h.redelivered += msg.redelivered
            await msg.ack()
    finally:
        await conn.close()
