"""Failover with a backlog: how long after a leader kill -9 publishes are confirmed again.

A new leader confirms nothing until a follower is back in sync (``min_insync=2``), and
a follower resyncs fully in a new term, so the window grows with what is queued. This
fills a durable queue on a 3-node warren cluster (confirmed, persistent 1 KiB), kills
the leader with SIGKILL and measures, from the kill: a new leader serving, 2 nodes in
sync, the first publish confirmed (retried until it is), and checks the queue depth.
With ``--restart`` it stops all three nodes instead (SIGTERM) and starts them again:
from the start, a leader serving, 2 and 3 nodes in sync, the first publish confirmed.

    python -m warren.bench.failover_bench --messages 100000,200000
    python -m warren.bench.failover_bench --messages 1000000 --restart
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import tempfile
import time
from pathlib import Path
from typing import Any

import aio_pika
from warren.bench.cluster_bench import WarrenCluster, wait_for, warren_env

log = logging.getLogger("failover_bench")


async def _fill(uri: str, queue: str, n: int) -> float:
    conn = await aio_pika.connect(uri)
    try:
        ch = await conn.channel(publisher_confirms=True)
        await ch.declare_queue(queue, durable=True)
        body = b"x" * 1024
        t0 = time.monotonic()
        sent = 0
        while sent < n:
            k = min(500, n - sent)
            await asyncio.gather(*[
                ch.default_exchange.publish(aio_pika.Message(body, delivery_mode=2), queue)
                for _ in range(k)])
            sent += k
        return time.monotonic() - t0
    finally:
        await conn.close()


async def _first_confirm(uri: str, queue: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            conn = await aio_pika.connect(uri, timeout=5)
            try:
                ch = await conn.channel(publisher_confirms=True)
                await ch.default_exchange.publish(aio_pika.Message(b"after", delivery_mode=2), queue)
                return
            finally:
                await conn.close()
        except Exception:  # noqa: BLE001 - refused, nacked or cut while failing over: retry
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)


async def _depth(uri: str, queue: str) -> int:
    conn = await aio_pika.connect(uri, timeout=10)
    try:
        ch = await conn.channel()
        q = await ch.declare_queue(queue, durable=True, passive=True)
        return int(q.declaration_result.message_count or 0)
    finally:
        await conn.close()


def run_one(n: int, base: Path, env: dict[str, str], options: str, restart: bool = False) -> dict[str, Any]:
    cluster = WarrenCluster(base / f"c{n}", env, "info", options=options)
    try:
        cluster.start()
        old = cluster.leader
        assert old is not None
        queue = "backlog"
        fill_s = asyncio.run(_fill(old.uri, queue, n))
        if restart:
            for node in cluster.nodes.values():
                node.proc.term()
            for node in cluster.nodes.values():
                node.proc.stop()
            t0 = time.monotonic()
            for node in cluster.nodes.values():
                node.start()
        else:
            old.proc.signal_group(signal.SIGKILL)
            t0 = time.monotonic()

        def status() -> dict[str, Any]:
            return cluster.status() or {}

        st = wait_for(lambda: (s := status()).get("role") == "leader" and (restart or s.get("leader") not in
                                                                            (None, old.name)) and s,
                      120, "a new leader", interval=0.02)
        t_leader = time.monotonic() - t0
        new = cluster.nodes[st["leader"]]
        wait_for(lambda: len(status().get("in_sync") or []) >= 2, 600, "2 nodes in sync", interval=0.02)
        t_sync = time.monotonic() - t0
        asyncio.run(_first_confirm(new.uri, queue, 600))
        t_confirm = time.monotonic() - t0
        row = {"messages": n, "scenario": "restart" if restart else "kill", "fill_s": round(fill_s, 1),
               "new_leader_s": round(t_leader, 2), "two_in_sync_s": round(t_sync, 2),
               "first_confirm_s": round(t_confirm, 2)}
        if restart:
            wait_for(lambda: len(status().get("in_sync") or []) >= 3, 600, "3 nodes in sync", interval=0.02)
            row["three_in_sync_s"] = round(time.monotonic() - t0, 2)
        depth = asyncio.run(_depth(new.uri, queue))
        row.update(depth_after=depth, depth_ok=depth == n + 1)
        log.info("%s", row)
        return row
    finally:
        cluster.stop()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", default="100000", help="comma list of backlog sizes (1 KiB each)")
    ap.add_argument("--cluster-options", default="lease_ttl=2&min_insync=2&follower_timeout=2")
    ap.add_argument("--restart", action="store_true",
                    help="stop and start all three nodes instead of killing the leader")
    ap.add_argument("--out", help="write the rows as JSON here")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    base = Path(tempfile.mkdtemp(prefix="failover-bench-"))
    env = warren_env(base)
    rows = [run_one(int(n), base, env, args.cluster_options, args.restart) for n in args.messages.split(",")]
    print(f"| backlog (1 KiB msgs) | {'leader serving' if args.restart else 'new leader'} | 2 in sync "
          f"| first confirm |{' 3 in sync |' if args.restart else ''} depth after |")
    print(f"|---:|---:|---:|---:|{'---:|' if args.restart else ''}---|")
    for r in rows:
        third = f" {r['three_in_sync_s']} s |" if args.restart else ""
        print(f"| {r['messages']:,} | {r['new_leader_s']} s | {r['two_in_sync_s']} s | {r['first_confirm_s']} s "
              f"|{third} {r['depth_after']:,}{'' if r['depth_ok'] else ' (WRONG)'} |")
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=1))
    return 0 if all(r["depth_ok"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
