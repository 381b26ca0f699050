"""Crash tests: kill -9 under load at random moments, torn segment files, TTL across restarts.

The same rounds run many times from the command line (many random kill points):

    python -m tests.broker.test_crash --rounds 50
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
from pathlib import Path

import aio_pika
import pytest

from tests.brokerproc import BrokerProcess

QUEUE = "crash-q"


async def _publisher(url: str, pid: int, confirmed: set[int], stop: asyncio.Event) -> None:
    try:
        async with await aio_pika.connect(url) as conn:
            ch = await conn.channel(publisher_confirms=True)
            i = 0
            while not stop.is_set():
                n = pid * 10_000_000 + i
                body = str(n).encode() + b" " + b"x" * random.randint(0, 3000)
                await ch.default_exchange.publish(
                    aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT), routing_key=QUEUE
                )
                confirmed.add(n)
                i += 1
    except Exception:
        return  # the broker died under us: what was confirmed is in `confirmed`


async def _consumer(url: str, acked: set[int], stop: asyncio.Event, limit: int) -> None:
    """Consumes and acks up to ``limit`` messages while the publishers run (acked ones may not
    come back); the rest stay queued, so the crash hits a backlog."""
    try:
        async with await aio_pika.connect(url) as conn:
            ch = await conn.channel()
            await ch.set_qos(prefetch_count=50)
            q = await ch.declare_queue(QUEUE, passive=True)
            async with q.iterator() as it:
                async for m in it:
                    await m.ack()
                    acked.add(int(m.body.split(b" ")[0]))
                    if stop.is_set() or len(acked) >= limit:
                        return
    except Exception:
        return


async def _publish_durable(conn: aio_pika.abc.AbstractConnection, bodies: list[bytes]) -> None:
    """Declare the durable QUEUE and publish ``bodies`` to it persistent, each confirmed."""
    ch = await conn.channel(publisher_confirms=True)
    await ch.declare_queue(QUEUE, durable=True)
    for body in bodies:
        await ch.default_exchange.publish(aio_pika.Message(body, delivery_mode=2), routing_key=QUEUE)


async def _drain_all(url: str, timeout: float = 60.0) -> list[int]:
    async with await aio_pika.connect(url) as conn:
        ch = await conn.channel()
        q = await ch.declare_queue(QUEUE, passive=True)
        count = q.declaration_result.message_count
        got: list[int] = []
        if count:
            await ch.set_qos(prefetch_count=1000)
            done = asyncio.Event()

            async def on(m: aio_pika.IncomingMessage) -> None:
                got.append(int(m.body.split(b" ")[0]))
                await m.ack()
                if len(got) >= count:
                    done.set()

            await q.consume(on)
            await asyncio.wait_for(done.wait(), timeout)
        return got


async def crash_round(broker: BrokerProcess, seed: int) -> dict:
    """Publish from 3 connections (and consume from 1), kill -9 at a random moment,
    restart, and check every confirmed message that was not acked is there."""
    rnd = random.Random(seed)
    async with await aio_pika.connect(broker.url) as conn:
        ch = await conn.channel()
        await ch.declare_queue(QUEUE, durable=True)
    confirmed: set[int] = set()
    acked: set[int] = set()
    stop = asyncio.Event()
    tasks = [asyncio.create_task(_publisher(broker.url, p, confirmed, stop)) for p in range(3)]
    target = rnd.randint(50, 1500)
    tasks.append(asyncio.create_task(_consumer(broker.url, acked, stop, rnd.randint(0, target // 2))))
    deadline = asyncio.get_running_loop().time() + 30
    while len(confirmed) < target and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.002)
    broker.kill()
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    must_have = confirmed - acked
    broker.start()
    got = await _drain_all(broker.url)
    lost = must_have - set(got)
    return {"seed": seed, "confirmed": len(confirmed), "acked": len(acked), "recovered": len(got), "lost": len(lost)}


@pytest.mark.timeout(180)
@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_kill9_under_load_loses_nothing_confirmed(tmp_path: Path, seed: int) -> None:
    broker = BrokerProcess(tmp_path / "data").start()
    try:
        result = await crash_round(broker, seed)
    finally:
        broker.stop()
    assert result["lost"] == 0, result
    assert result["recovered"] >= result["confirmed"] - result["acked"]


@pytest.mark.timeout(120)
async def test_torn_segment_serves_every_intact_record(tmp_path: Path) -> None:
    """Cut a durable queue's segment at a random byte and flip a byte after it: the broker
    starts and serves exactly the records before the damage."""
    broker = BrokerProcess(tmp_path / "data").start()
    try:
        async with await aio_pika.connect(broker.url) as conn:
            await _publish_durable(conn, [f"{i} {'y' * 100}".encode() for i in range(200)])
        broker.kill()
        segs = sorted((tmp_path / "data" / "queues").rglob("seg-*.wlog"))
        assert segs, "no segment written"
        seg = max(segs, key=lambda p: p.stat().st_size)
        data = bytearray(seg.read_bytes())
        rnd = random.Random(7)
        cut = rnd.randint(len(data) // 3, len(data) - 1)
        del data[cut:]
        seg.write_bytes(bytes(data))
        broker.start()
        got = await _drain_all(broker.url)
        # a prefix, in order, and nothing invented
        assert got == list(range(len(got)))
        assert 0 < len(got) < 200
        assert "dropped" in broker.log_text() or "torn" in broker.log_text().lower()
    finally:
        broker.stop()


async def _wait_files(root: Path, name: str, present: bool, timeout: float = 30.0) -> None:
    """Until a file called ``name`` exists under ``root`` (or none does)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while any(root.rglob(name)) != present:
        assert loop.time() < deadline, f"{name} {'never appeared' if present else 'never went'}"
        await asyncio.sleep(0.01)


@pytest.mark.timeout(240)
async def test_kill9_while_writing_a_recycled_segment(tmp_path: Path) -> None:
    """A drained segment's file is recycled for a later segment (storage.log.spare),
    overwritten in place. Killed -9 while writing it, the broker comes back with every
    confirmed message and none of the acked ones the file held before: they lie past the
    new records with CRCs that were valid, and must not pass as new."""
    broker = BrokerProcess(tmp_path / "data").start()
    queues = tmp_path / "data" / "queues"
    # ~2,080 a 32 MiB segment, every record the same size: the new records end exactly
    # where an old one begins, which then has all it takes to pass but its CRC's seed
    pad = b" " + b"r" * 16000
    try:
        async with await aio_pika.connect(broker.url) as conn:
            ch = await conn.channel(publisher_confirms=True)
            await ch.declare_queue(QUEUE, durable=True)
            first = 5000  # three segments' worth, all consumed and acked
            for start in range(0, first, 100):
                await asyncio.gather(*(
                    ch.default_exchange.publish(
                        aio_pika.Message(b"%07d" % i + pad, delivery_mode=2), routing_key=QUEUE)
                    for i in range(start, start + 100)))
        assert sorted(await _drain_all(broker.url)) == list(range(first))
        await _wait_files(queues, "spare.wlog", True)  # segment 1's file, drained

        confirmed: list[int] = []
        stop = asyncio.Event()

        async def publish() -> None:
            try:
                async with await aio_pika.connect(broker.url) as conn:
                    ch = await conn.channel(publisher_confirms=True)
                    n = 100_000
                    while not stop.is_set():
                        await ch.default_exchange.publish(
                            aio_pika.Message(b"%07d" % n + pad, delivery_mode=2), routing_key=QUEUE)
                        confirmed.append(n)
                        n += 1
            except Exception:
                return  # killed under us

        task = asyncio.create_task(publish())
        await _wait_files(queues, "spare.wlog", False, 120)  # recycled: segment 4 is in it
        extra = len(confirmed) + random.Random(11).randint(20, 600)
        while len(confirmed) < extra:
            await asyncio.sleep(0.002)
        broker.kill()
        stop.set()
        await task
        broker.start()
        got = await _drain_all(broker.url)
        assert set(confirmed) <= set(got)
        # nothing from the recycled file's first life (segment 1: messages 0..~2,080)
        assert not [i for i in got if i < 2000]
        assert all(i < first or i >= 100_000 for i in got)  # nothing never published
        assert len(got) == len(set(got))
    finally:
        broker.stop()


@pytest.mark.timeout(90)
async def test_segment_size_setting(tmp_path: Path) -> None:
    """``--segment-size`` sets the queue logs' segment files; out of range, the broker
    refuses to start (exit 2) and says why."""
    import subprocess
    import sys

    bad = subprocess.run([sys.executable, "-m", "warren.server.main", "--segment-size", "100",
                          "--data-dir", str(tmp_path / "bad")], capture_output=True, text=True,
                         timeout=30)
    assert bad.returncode == 2
    assert "cannot start: segment_size must be between 65536 and 1073741824" in bad.stderr

    broker = BrokerProcess(tmp_path / "data", extra_args=["--segment-size", "65536"]).start()
    try:
        async with await aio_pika.connect(broker.url) as conn:
            await _publish_durable(conn, [b"%d " % i + b"s" * 1000 for i in range(300)])
        segs = list((tmp_path / "data" / "queues").rglob("seg-*.wlog"))
        assert len(segs) >= 4 and all(p.stat().st_size <= 65536 for p in segs)
        broker.restart()
        assert sorted(await _drain_all(broker.url)) == list(range(300))
    finally:
        broker.stop()


@pytest.mark.timeout(60)
async def test_ttl_survives_restart(tmp_path: Path) -> None:
    """A persistent message with a TTL in a durable queue expires (and is dead-lettered)
    after a restart, at its original expiry."""
    broker = BrokerProcess(tmp_path / "data").start()
    try:
        async with await aio_pika.connect(broker.url) as conn:
            ch = await conn.channel()
            dlx = await ch.declare_exchange("ttl-dlx", aio_pika.ExchangeType.FANOUT, durable=True)
            dead = await ch.declare_queue("ttl-dead", durable=True)
            await dead.bind(dlx)
            await ch.declare_queue("ttl-q", durable=True, arguments={"x-dead-letter-exchange": "ttl-dlx"})
            await ch.default_exchange.publish(
                aio_pika.Message(b"expiring", delivery_mode=2, expiration=1.0), routing_key="ttl-q"
            )
        broker.restart()
        async with await aio_pika.connect(broker.url) as conn:
            ch = await conn.channel()
            dead = await ch.declare_queue("ttl-dead", passive=True)
            for _ in range(1000):
                m = await dead.get(fail=False)
                if m is not None:
                    break
                await asyncio.sleep(0.01)
            assert m is not None and m.body == b"expiring"
            assert m.headers["x-death"][0]["reason"] == "expired"
    finally:
        broker.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description="kill -9 crash rounds against warren")
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    async def run() -> int:
        lost_total = 0
        for r in range(args.rounds):
            with tempfile.TemporaryDirectory() as d:
                broker = BrokerProcess(Path(d) / "data").start()
                try:
                    res = await crash_round(broker, args.seed + r)
                finally:
                    broker.stop()
            lost_total += res["lost"]
            print(res, flush=True)
        print(f"rounds={args.rounds} lost={lost_total}")
        return 1 if lost_total else 0

    raise SystemExit(asyncio.run(run()))


if __name__ == "__main__":
    main()
