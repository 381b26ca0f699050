"""Scale: recovery time and memory for a million records, throughput of the hot path.

Numbers are printed (run with ``-s`` to see them), not asserted, except a
generous memory bound: a backlog must cost disk, not RAM.
"""

from __future__ import annotations

import asyncio
import gc
import time
from pathlib import Path

import pytest
import uvloop
from logstore_helpers import Rec, open_store, rss_bytes

MILLION = 1_000_000


def report(capsys: pytest.CaptureFixture, line: str) -> None:
    with capsys.disabled():
        print(f"\n[logstore] {line}")


def test_recovery_of_a_million_records(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    payload = b"p" * 100
    r = Rec(100, True, payload)
    s = open_store(tmp_path)
    t0 = time.perf_counter()
    push = s.push
    for _ in range(MILLION):
        push(r)
    acked = [s.shift()[0] for _ in range(1000)]
    for p in acked[::2]:
        s.ack(p)
    s.close()
    t_write = time.perf_counter() - t0
    disk = sum(f.stat().st_size for f in tmp_path.iterdir())

    t0 = time.perf_counter()
    s = open_store(tmp_path)
    t_recover = time.perf_counter() - t0
    assert len(s) == MILLION - 500
    assert s.ready_bytes == (MILLION - 500) * 100
    first = s.shift()
    assert first[0] == acked[1] and first[1] == r
    s.close()
    report(
        capsys,
        f"1M x 100 B records: push+close {t_write:.2f} s ({MILLION / t_write:,.0f}/s), "
        f"{disk / 2**20:.0f} MiB on disk, recovery {t_recover:.2f} s "
        f"({MILLION / t_recover:,.0f} records/s)",
    )


def test_memory_stays_bounded_for_a_million_record_backlog(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    gc.collect()
    before = rss_bytes()
    s = open_store(tmp_path)
    push = s.push
    for i in range(MILLION):
        push(Rec(100, True, b"%0100d" % i))
    gc.collect()
    after_push = rss_bytes()
    n = 0
    shift = s.shift
    ack = s.ack
    t0 = time.perf_counter()
    while (item := shift()) is not None:
        ack(item[0])
        n += 1
    t_drain = time.perf_counter() - t0
    assert n == MILLION
    gc.collect()
    after_drain = rss_bytes()
    s.close()
    assert list(tmp_path.iterdir()) == []  # every segment acked and deleted
    grow_push = (after_push - before) / 2**20
    grow_drain = (after_drain - before) / 2**20
    report(
        capsys,
        f"RSS growth: after 1M pushes {grow_push:.1f} MiB, after shifting+acking all "
        f"{grow_drain:.1f} MiB; shift+ack of the backlog (from disk) {MILLION / t_drain:,.0f}/s",
    )
    assert grow_push < 100 and grow_drain < 100


async def _throughput(
    path: Path, n: int, persistent: bool, batch: int, wait_each: bool = False
) -> float:
    """push + shift + ack ``n`` 1 KiB records; with ``persistent``, a sync per ``batch``.

    ``wait_each``: wait for each batch's sync before the next (one publisher
    waiting for its confirms), else keep going (many publishers: fsyncs overlap
    with work and group-commit several batches).
    """
    s = open_store(path)
    r = Rec(1024, persistent, b"x" * 1024)
    loop = asyncio.get_running_loop()
    outstanding = 0
    all_done = loop.create_future()
    failed = []

    def confirmed(ok: bool) -> None:
        nonlocal outstanding
        if not ok:
            failed.append(1)
        outstanding -= 1
        if outstanding == 0 and not all_done.done():
            all_done.set_result(None)

    push, shift, ack = s.push, s.shift, s.ack
    t0 = time.perf_counter()
    for i in range(0, n, batch):
        for _ in range(batch):
            push(r)
        if persistent:
            outstanding += 1
            s.sync(confirmed)
            if wait_each:
                await all_done
                all_done = loop.create_future()
        # a consumer keeping up: the tail cache serves it, no disk reads
        for _ in range(batch):
            ack(shift()[0])
        if i % (batch * 16) == 0:
            await asyncio.sleep(0)  # let fsync completions run, as a broker's loop would
    if outstanding:
        await asyncio.wait_for(all_done, 30)
    elapsed = time.perf_counter() - t0
    assert not failed and len(s) == 0
    s.close()
    return n / elapsed


def test_throughput_1k_records(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    n = 200_000
    results = {}
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        results["transient"] = runner.run(_throughput(tmp_path / "t", n, False, 100))
        results["persistent+sync/100 pipelined"] = runner.run(
            _throughput(tmp_path / "p", n, True, 100)
        )
        results["persistent+sync/100 waiting for each"] = runner.run(
            _throughput(tmp_path / "w", n // 10, True, 100, wait_each=True)
        )
    report(
        capsys,
        "push+shift+ack 1 KiB records: " + ", ".join(f"{k} {v:,.0f}/s" for k, v in results.items()),
    )
