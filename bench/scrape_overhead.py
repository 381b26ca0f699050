"""Throughput with /metrics scraped every second vs not scraped (issue: under 3% apart).

    python -m warren.bench.scrape_overhead [--seconds 10] [--rounds 4] [--queues 50]

Starts one warren (subprocess), declares ``--queues`` idle queues (so a scrape has
objects to walk) plus one work queue, then runs alternating rounds of a
publish+consume workload, with and
without a thread scraping ``/metrics`` and ``/metrics/per-object`` every second.
The load is the C ``amqp-perf`` (S2: 1 KiB, manual ack, prefetch 100) when built,
else ``warren-perf``.
Prints the median msg/s of each mode and the difference in percent; exits 1 when
the difference is 3% or more.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import aio_pika
from warren.bench.scenarios import find_c_tool

from tests.brokerproc import BrokerProcess, wait_port


def _scraper(port: int, stop: threading.Event, count: list[int]) -> None:
    while not stop.is_set():
        t0 = time.monotonic()
        for path in ("/metrics", "/metrics/per-object"):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
                r.read()
        count[0] += 1
        stop.wait(max(0.0, 1.0 - (time.monotonic() - t0)))


async def _round(url: str, seconds: float, tool: list[str]) -> float:
    """One S2-like run (1 producer, 1 consumer, 1 KiB, manual ack, prefetch 100) by the load tool."""
    cmd = tool + [
        "--uri", url, "--producers", "1", "--consumers", "1", "--size", "1024", "--prefetch", "100",
        "--multi-ack-every", "10", "--queue", "bench-work", "--time", str(seconds), "--cleanup",
    ]
    proc = await asyncio.create_subprocess_exec(
        *cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
    )
    out, _ = await proc.communicate()
    return float(json.loads(out)["consume_rate"])


async def main_async(args: argparse.Namespace) -> int:
    c_tool = find_c_tool(None)
    tool = [c_tool] if c_tool else [sys.executable, "-m", "warren.bench.perf", "--json"]
    print(f"load tool: {tool[0]}")
    with tempfile.TemporaryDirectory() as d:
        b = BrokerProcess(Path(d) / "data", extra_args=["--log-level", "WARNING"]).start()
        try:
            wait_port(b.prom_port)
            conn = await aio_pika.connect(b.url)
            async with conn:
                ch = await conn.channel()
                for i in range(args.queues):
                    await ch.declare_queue(f"idle-{i}")
            results: dict[str, list[float]] = {"not scraped": [], "scraped 1/s": []}
            for r in range(args.rounds):
                for mode in (("not scraped", "scraped 1/s") if r % 2 == 0 else ("scraped 1/s", "not scraped")):
                    stop = threading.Event()
                    count = [0]
                    th = None
                    if mode == "scraped 1/s":
                        th = threading.Thread(target=_scraper, args=(b.prom_port, stop, count), daemon=True)
                        th.start()
                    rate = await _round(b.url, args.seconds, tool)
                    stop.set()
                    if th is not None:
                        th.join()
                    results[mode].append(rate)
                    print(f"round {r + 1} {mode:12s} {rate:10.0f} msg/s" + (f"  scrapes={count[0]}" if th else ""))
        finally:
            b.stop()
    base = statistics.median(results["not scraped"])
    scraped = statistics.median(results["scraped 1/s"])
    diff = (base - scraped) / base * 100
    print(f"median not scraped {base:.0f} msg/s, scraped {scraped:.0f} msg/s, difference {diff:+.2f}%")
    return 0 if diff < 3.0 else 1


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=10.0, help="length of each run")
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--queues", type=int, default=50)
    return asyncio.run(main_async(p.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
