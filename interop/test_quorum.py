"""x-queue-type quorum, differential: declare checks, FIFO with returns at the back,
x-delivery-count on every delivery, no priorities, global QoS refused.

The same script runs against warren and RabbitMQ 3.10 and what the client sees is
compared: reply codes and texts of every declare, and each delivery's body, headers,
redelivered flag and message count.
"""

from __future__ import annotations

from typing import Any

import aiormq
from pamqp.commands import Basic


def _declares(p: str) -> list[tuple[str, dict[str, Any]]]:
    q = {"x-queue-type": "quorum"}
    return [
        ("ok", dict(queue=f"{p}.q", durable=True, arguments=q)),
        ("non-durable", dict(queue=f"{p}.a", durable=False, arguments=q)),
        ("exclusive", dict(queue=f"{p}.b", durable=True, exclusive=True, arguments=q)),
        ("auto-delete", dict(queue=f"{p}.c", durable=True, auto_delete=True, arguments=q)),
        ("excl+nondurable", dict(queue=f"{p}.d", durable=False, exclusive=True, arguments=q)),
        ("excl+autodelete", dict(queue=f"{p}.e", durable=True, exclusive=True, auto_delete=True, arguments=q)),
        ("server-named", dict(queue="", durable=True, arguments=q)),
        ("priority", dict(queue=f"{p}.f", durable=True, arguments={**q, "x-max-priority": 5})),
        ("priority+nondurable", dict(queue=f"{p}.g", durable=False, arguments={**q, "x-max-priority": 5})),
        ("lazy", dict(queue=f"{p}.h", durable=True, arguments={**q, "x-queue-mode": "lazy"})),
        ("bad ttl", dict(queue=f"{p}.i", durable=True, arguments={**q, "x-message-ttl": -1})),
        ("bad overflow", dict(queue=f"{p}.j", durable=True, arguments={**q, "x-overflow": "bogus"})),
        ("bad dlx strategy", dict(queue=f"{p}.k", durable=True, arguments={**q, "x-dead-letter-strategy": "no"})),
        ("bad group size", dict(queue=f"{p}.l", durable=True, arguments={**q, "x-quorum-initial-group-size": "x"})),
        ("bad type", dict(queue=f"{p}.m", durable=True, arguments={"x-queue-type": "foo"})),
        ("type not a string", dict(queue=f"{p}.n", durable=True, arguments={"x-queue-type": 1})),
        ("redeclare without type", dict(queue=f"{p}.q", durable=True)),
        ("redeclare as classic", dict(queue=f"{p}.q", durable=True, arguments={"x-queue-type": "classic"})),
        ("classic", dict(queue=f"{p}.o", durable=True)),
        ("classic redeclared explicitly", dict(queue=f"{p}.o", durable=True, arguments={"x-queue-type": "classic"})),
        ("classic redeclared as quorum", dict(queue=f"{p}.o", durable=True, arguments=q)),
        ("passive", dict(queue=f"{p}.q", passive=True)),
    ]


async def run_quorum(url: str, p: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    conn = await aiormq.connect(url)
    try:
        for label, kw in _declares(p):
            ch = await conn.channel()
            try:
                await ch.queue_declare(**kw)
                out[label] = "ok"
                await ch.close()
            except aiormq.exceptions.AMQPChannelError as exc:
                out[label] = exc.args[0]
        ch = await conn.channel(publisher_confirms=True)
        q = f"{p}.q"
        await ch.basic_publish(b"m1", routing_key=q, properties=Basic.Properties(headers={"h": 1}))
        await ch.basic_publish(b"m2", routing_key=q, properties=Basic.Properties(priority=9, delivery_mode=1))
        await ch.basic_publish(b"m3", routing_key=q, properties=Basic.Properties(priority=1, delivery_mode=2))
        seen = []

        async def get() -> Any:
            m = await ch.basic_get(q)
            seen.append(
                (m.body, m.header.properties.headers, m.delivery.redelivered, m.delivery.message_count)
            )
            return m

        m = await get()  # m1
        await ch.basic_nack(m.delivery.delivery_tag, requeue=True)  # to the back: m2 m3 m1
        m = await get()  # m2
        await ch.basic_reject(m.delivery.delivery_tag, requeue=True)  # m3 m1 m2
        m = await get()  # m3
        await ch.basic_ack(m.delivery.delivery_tag)
        m = await get()  # m1 (second return)
        await ch.basic_recover(requeue=True)  # m2 m1
        for _ in range(2):
            m = await get()
            await ch.basic_ack(m.delivery.delivery_tag)
        out["deliveries"] = seen
        out["empty"] = isinstance((await ch.basic_get(q)).delivery, Basic.GetEmpty)
        await ch.basic_publish(b"m4", routing_key=q)
        out["purged"] = (await ch.queue_purge(q)).message_count
        for name in (q, f"{p}.o"):
            await ch.queue_delete(name)
        # global QoS and a quorum queue: the connection is closed with 540
        ch = await conn.channel()
        await ch.queue_declare(q, durable=True, arguments={"x-queue-type": "quorum"})
        await ch.basic_qos(prefetch_count=10, global_=True)
        try:
            await ch.basic_consume(q, lambda m: None)
            out["global_qos"] = "ok"
        except aiormq.exceptions.AMQPConnectionError as exc:
            out["global_qos"] = exc.args[0]
    finally:
        if not conn.is_closed:
            await conn.close()
    cleanup = await aiormq.connect(url)
    try:
        ch = await cleanup.channel()
        await ch.queue_delete(f"{p}.q")
    finally:
        await cleanup.close()
    # server-generated names and queue names embed the prefix: compare without it
    return {k: (v.replace(p, "P") if isinstance(v, str) else v) for k, v in out.items()}


async def test_quorum_differential(warren, rabbitmq, prefix):
    ours = await run_quorum(warren.url, prefix)
    theirs = await run_quorum(rabbitmq, prefix)
    assert ours == theirs
