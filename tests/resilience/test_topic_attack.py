"""Issue 12 item 2: topic bindings full of ``#`` against long routing keys must not
freeze the broker. The attacker binds ``#.z`` .. ``#.#.#.#.#.#.#.#.z`` to amq.topic
and publishes 120-word routing keys (one that matches, one that does not) while
the canary measures its round trip."""

from __future__ import annotations

import aio_pika
import pytest

ATTACK_PATTERNS = [".".join(["#"] * n) + ".z" for n in range(1, 9)]


@pytest.mark.timeout(120)
async def test_hash_patterns_with_long_keys_do_not_freeze(broker, canary):
    conn = await aio_pika.connect(broker.url)
    async with conn:
        ch = await conn.channel(publisher_confirms=True)
        topic = await ch.get_exchange("amq.topic")
        q = await ch.declare_queue("", exclusive=True)
        for p in ATTACK_PATTERNS:
            await q.bind(topic, p)
        start = canary.received
        miss = ".".join(chr(97 + i % 25) for i in range(120))  # 239 bytes, "z" never a word
        hit = miss + ".z"
        for i in range(40):
            # distinct keys: every publish misses the per-key cache and runs the matcher
            await topic.publish(aio_pika.Message(b"m"), routing_key=f"{i}.{miss}")
            await topic.publish(aio_pika.Message(b"h"), routing_key=f"{i}.{hit}")
        got = 0
        async with q.iterator() as it:
            async for m in it:
                await m.ack()
                assert m.body == b"h"
                got += 1
                if got == 40:
                    break
        canary.wait_rounds(3)
    assert canary.received > start
    assert canary.max_rtt < 1.0, f"canary max RTT {canary.max_rtt:.3f}s"
    assert canary.sent - canary.received <= 1  # at most the one in flight when stopped
