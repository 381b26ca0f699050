"""Replication link benchmark: 1 KiB appends, leader -> 2 followers on loopback, fsyncs real.

The leader (this process) pushes each record into its own LogStore and hands it to
the replication :class:`Leader`; each follower runs in its own process (as a node
would) with its own data directory and fsyncs every batch before acknowledging.
A publisher-like loop keeps ``--window`` records in flight: a record counts as
done when ``when_replicated`` calls back (both followers acknowledged it durable);
with ``--local-sync`` it also waits for the leader's own fsync, as a confirm will.

Prints ops/s and the wait latency p50/p99 (append -> callback).

Usage: ``python -m warren.bench.repl_bench [--seconds 10] [--window 100] [--size 1024]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from warren.server.cluster.replication.follower import Follower
from warren.server.cluster.replication.leader import Leader
from warren.storage.log import LogStore

SECRET = b"bench-secret"


class _Rec:
    __slots__ = ("data", "size")
    persistent = True

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.size = len(data)


async def _follower(name: str, port: int, data_dir: str) -> None:
    f = Follower(name, "127.0.0.1", port, SECRET, data_dir)
    await f.start()
    # runs until the parent closes stdin
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)
    await f.close()


async def _leader(args: argparse.Namespace, root: Path) -> dict:
    leader = Leader(SECRET, min_insync=3, follower_timeout=5.0)
    await leader.start()
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "warren.bench.repl_bench",
                "--follower",
                name,
                "--port",
                str(leader.port),
                "--dir",
                str(root / name),
            ],
            stdin=subprocess.PIPE,
        )
        for name in ("f1", "f2")
    ]
    try:
        deadline = time.monotonic() + 30
        while leader.insync != {"f1", "f2"}:
            if time.monotonic() > deadline:
                raise RuntimeError("followers did not join")
            await asyncio.sleep(0.05)
        store = LogStore(root / "leader", lambda r: r.data, _Rec)
        payload = os.urandom(args.size)
        lat: list[float] = []
        loop = asyncio.get_running_loop()
        done = asyncio.Event()
        state = {"inflight": 0, "failed": 0}
        stop_at = time.monotonic() + args.seconds
        slot = asyncio.Event()

        def finish(t0: float, need: list[int], ok: bool) -> None:
            if not ok:
                state["failed"] += 1
            need[0] -= 1
            if need[0] == 0:
                lat.append(time.monotonic() - t0)
                state["inflight"] -= 1
                slot.set()

        t_start = time.monotonic()
        while time.monotonic() < stop_at:
            while state["inflight"] < args.window:
                t0 = time.monotonic()
                pos = store.push(_Rec(payload))
                seq = leader.append("q", pos, payload)
                need = [2 if args.local_sync else 1]
                state["inflight"] += 1
                leader.when_replicated(seq, lambda ok, t0=t0, need=need: finish(t0, need, ok))
                if args.local_sync:
                    store.sync(lambda ok, t0=t0, need=need: finish(t0, need, ok))
            slot.clear()
            await slot.wait()
        while state["inflight"]:
            slot.clear()
            await slot.wait()
        elapsed = time.monotonic() - t_start
        done.set()
        store.close()
        lat.sort()
        del loop
        return {
            "ops": len(lat),
            "ops_per_s": round(len(lat) / elapsed),
            "p50_ms": round(lat[len(lat) // 2] * 1000, 2),
            "p99_ms": round(lat[int(len(lat) * 0.99)] * 1000, 2),
            "failed": state["failed"],
            "window": args.window,
            "size": args.size,
            "local_sync": args.local_sync,
        }
    finally:
        for p in procs:
            assert p.stdin is not None
            p.stdin.close()
        for p in procs:
            p.wait(timeout=30)
        await leader.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--window", type=int, default=100)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--local-sync", action="store_true")
    ap.add_argument("--follower")
    ap.add_argument("--port", type=int)
    ap.add_argument("--dir")
    args = ap.parse_args()
    if args.follower:
        asyncio.run(_follower(args.follower, args.port, args.dir))
        return
    root = Path(tempfile.mkdtemp(prefix="repl-bench-", dir=os.environ.get("BENCH_DIR")))
    try:
        print(json.dumps(asyncio.run(_leader(args, root))))
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
