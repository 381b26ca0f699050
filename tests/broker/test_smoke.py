"""The smallest end-to-end check: declare, bind, publish with confirms, consume, ack."""

import aio_pika


async def test_publish_consume_topic(broker):
    conn = await aio_pika.connect(broker.url)
    async with conn:
        ch = await conn.channel(publisher_confirms=True)
        q = await ch.declare_queue("", exclusive=True)
        ex = await ch.declare_exchange("smoke", aio_pika.ExchangeType.TOPIC)
        await q.bind(ex, "a.*.c")
        for i in range(5):
            await ex.publish(aio_pika.Message(body=f"m{i}".encode()), routing_key="a.b.c")
        got = []
        async with q.iterator() as it:
            async for m in it:
                async with m.process():
                    got.append(m.body)
                if len(got) == 5:
                    break
        assert got == [b"m0", b"m1", b"m2", b"m3", b"m4"]
        assert await q.get(fail=False) is None
