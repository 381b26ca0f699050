"""A full disk: publishes that cannot be written are nacked, the broker keeps serving,
and every message confirmed before stays intact."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import aio_pika
import pytest

from tests.brokerproc import BrokerProcess


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 4 MiB tmpfs (needs root and mount; skipped where that is not allowed)."""
    d = tmp_path / "data"
    d.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(d)], capture_output=True
    )
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode().strip()}")
    try:
        yield d
    finally:
        subprocess.run(["umount", "-l", str(d)], capture_output=True)


@pytest.mark.timeout(90)
async def test_write_error_nacks_and_keeps_what_was_stored(small_disk: Path) -> None:
    broker = BrokerProcess(small_disk, extra_args=["--disk-free-limit", "0"]).start()
    try:
        confirmed: list[int] = []
        nacked = 0
        body = os.urandom(60_000)
        async with await aio_pika.connect(broker.url) as conn:
            ch = await conn.channel(publisher_confirms=True)
            await ch.declare_queue("full", durable=True)
            for i in range(300):
                try:
                    await ch.default_exchange.publish(
                        aio_pika.Message(i.to_bytes(4, "big") + body, delivery_mode=2),
                        routing_key="full",
                    )
                    confirmed.append(i)
                except aio_pika.exceptions.DeliveryError:
                    nacked += 1
                    if nacked >= 3:
                        break
        assert nacked >= 1, "the disk never filled up"
        assert confirmed, "nothing was confirmed before the disk filled"
        assert broker.proc is not None and broker.proc.poll() is None, "broker died"
        # the broker still serves: every confirmed message is there, intact
        got: list[int] = []
        async with await aio_pika.connect(broker.url) as conn:
            ch = await conn.channel()
            q = await ch.declare_queue("full", passive=True)
            for _ in range(len(confirmed) + 10):
                m = await q.get(fail=False, no_ack=True)
                if m is None:
                    break
                assert m.body[4:] == body
                got.append(int.from_bytes(m.body[:4], "big"))
                await asyncio.sleep(0)
        assert set(confirmed) <= set(got)
    finally:
        broker.stop()


def _fill(directory: Path) -> Path:
    """Write a file until the filesystem is full; return it (delete it to free the space)."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        for size in (65536, 4096, 1):
            chunk = b"\0" * size
            try:
                while os.write(fd, chunk) == size:
                    pass
            except OSError:
                pass
    finally:
        os.close(fd)
    return filler


@pytest.mark.timeout(90)
async def test_declare_and_publish_on_a_full_disk_nack_then_recover(small_disk: Path) -> None:
    broker = BrokerProcess(small_disk, extra_args=["--disk-free-limit", "0"]).start()
    try:
        async with await aio_pika.connect(broker.url) as conn:
            ch = await conn.channel(publisher_confirms=True)
            filler = _fill(small_disk)
            await ch.declare_queue("late", durable=True)
            # neither the queue's definition nor the message can be written: nacked
            with pytest.raises(aio_pika.exceptions.DeliveryError):
                await ch.default_exchange.publish(
                    aio_pika.Message(b"x" * 10_000, delivery_mode=2), routing_key="late"
                )
            filler.unlink()
            # space again: the definitions are saved (retried every second) and it confirms
            await asyncio.wait_for(
                ch.default_exchange.publish(
                    aio_pika.Message(b"kept", delivery_mode=2), routing_key="late"
                ),
                15,
            )
        broker.kill()
        broker.start()
        async with await aio_pika.connect(broker.url) as conn:
            ch = await conn.channel()
            q = await ch.declare_queue("late", passive=True)
            bodies = []
            while (m := await q.get(fail=False, no_ack=True)) is not None:
                bodies.append(m.body)
            assert b"kept" in bodies
    finally:
        broker.stop()
