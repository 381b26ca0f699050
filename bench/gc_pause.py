"""Event-loop pauses with many objects (full garbage collections): canary round trips
while declaring many queues, listing them, restarting (recovery) and declaring more.

    python -m warren.bench.gc_pause [--queues 50000]

Prints, per phase, the canary's max round trip and how many round trips took over
200 ms (the canary publishes and consumes every 50 ms on its own connection), and
the broker's full (generation 2) collections: how many and the longest (measured in
the broker by a ``gc.callbacks`` probe loaded through ``sitecustomize``, which the
bench puts on the broker's PYTHONPATH; the server itself is unchanged).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import tempfile
import time
import urllib.request
from pathlib import Path

import aio_pika

from tests.brokerproc import BrokerProcess, wait_port
from tests.resilience.canary import Canary


async def _declare(url: str, names: list[str], channels: int = 8) -> None:
    conn = await aio_pika.connect(url)
    async with conn:
        chans = [await conn.channel() for _ in range(channels)]

        async def worker(i: int) -> None:
            ch = chans[i]
            for n in names[i::channels]:
                await ch.declare_queue(n, durable=True)

        await asyncio.gather(*(worker(i) for i in range(channels)))


def _list(mgmt_port: int) -> float:
    req = urllib.request.Request(f"http://127.0.0.1:{mgmt_port}/api/queues?columns=name")
    req.add_header("Authorization", "Basic Z3Vlc3Q6Z3Vlc3Q=")
    t0 = time.monotonic()
    with urllib.request.urlopen(req, timeout=120) as r:
        r.read()
    return time.monotonic() - t0


_PROBE = """
import gc, sys, time
_t = [0.0]
def _probe(phase, info):
    if info["generation"] != 2:
        return
    if phase == "start":
        _t[0] = time.perf_counter()
    else:
        sys.stderr.write("gc-probe gen2 %.4f\\n" % (time.perf_counter() - _t[0]))
gc.callbacks.append(_probe)
"""


class _Gen2:
    """Full collections logged by the probe since the last call."""

    def __init__(self, b: BrokerProcess) -> None:
        self.b = b
        self.seen = 0

    def take(self) -> list[float]:
        found = [float(x) for x in re.findall(r"gc-probe gen2 ([0-9.]+)", self.b.log_text())]
        new, self.seen = found[self.seen :], len(found)
        return new


def _phase(name: str, canary: Canary, start: int, t0: float, gen2: _Gen2) -> None:
    rtts = canary.rtts[start:]
    slow = sum(1 for r in rtts if r > 0.2)
    g = gen2.take()
    print(f"{name:32s} {time.monotonic() - t0:7.1f}s  canary max RTT {max(rtts, default=0):.3f}s  >200ms: {slow}/{len(rtts)}"
          f"  full GCs: {len(g)} longest {max(g, default=0):.3f}s total {sum(g):.2f}s", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--queues", type=int, default=50000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        probe = Path(d) / "probe"
        probe.mkdir()
        (probe / "sitecustomize.py").write_text(_PROBE)
        os.environ["PYTHONPATH"] = str(probe) + os.pathsep + os.environ.get("PYTHONPATH", "")
        b = BrokerProcess(Path(d) / "data").start()
        gen2 = _Gen2(b)
        try:
            wait_port(b.mgmt_port)
            c = Canary(b.port).start()
            c.wait_rounds(3)
            n = args.queues
            s, t0 = len(c.rtts), time.monotonic()
            asyncio.run(_declare(b.url, [f"gc-q-{i}" for i in range(n)]))
            _phase(f"declare {n} queues", c, s, t0, gen2)
            s, t0 = len(c.rtts), time.monotonic()
            for _ in range(3):
                _list(b.mgmt_port)
            _phase("list /api/queues x3", c, s, t0, gen2)
            c.stop()
            t0 = time.monotonic()
            b.restart()
            gen2.take()
            wait_port(b.mgmt_port, timeout=300)
            print(f"restart (recovery)                 {time.monotonic() - t0:7.1f}s", flush=True)
            c = Canary(b.port).start()
            c.wait_rounds(3)
            s, t0 = len(c.rtts), time.monotonic()
            asyncio.run(_declare(b.url, [f"gc-r-{i}" for i in range(n // 5)]))
            _phase(f"after recovery: declare {n // 5}", c, s, t0, gen2)
            s, t0 = len(c.rtts), time.monotonic()
            for _ in range(3):
                _list(b.mgmt_port)
            _phase("after recovery: list x3", c, s, t0, gen2)
            c.stop()
        finally:
            b.stop()


if __name__ == "__main__":
    main()
