"""Fault injection on a three-node cluster while clients publish and consume.

Each round injects one fault, chosen at random: kill -9 the leader (and restart it once
another node serves), freeze the leader with SIGSTOP past its lease (then SIGCONT: it
must step down, not confirm), cut the leader off from etcd (each node reaches etcd
through its own cuttable link) until another node serves, or kill -9 a follower and
restart it. Publishers and a
consumer run throughout (``workload.py``); at the end the queue is drained and the
checker verifies that every confirmed message was delivered and nothing unpublished was.

``WARREN_FAULT_ROUNDS`` (default 3) sets the number of rounds; ``WARREN_FAULT_SEED`` the
seed. The totals are printed (run with ``-s`` to see them). The nodes run with 1 MiB
segment files (``WARREN_FAULT_SEGMENT``) and 4 KB bodies (``WARREN_FAULT_PAD``), so that
drained segments are recycled (``storage/log/spare.py``) and nodes are killed while they
write recycled files, whose old records must never come back.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import signal
import statistics
import time

import aio_pika
import pytest

from tests.cluster.clusterproc import LocalCluster
from tests.cluster.netcut import CuttableLink
from tests.cluster.workload import History, check, consumer, drain, publisher

ROUNDS = int(os.environ.get("WARREN_FAULT_ROUNDS", "3"))
SEED = int(os.environ.get("WARREN_FAULT_SEED", str(int(time.time()))))
SEGMENT = int(os.environ.get("WARREN_FAULT_SEGMENT", str(1 << 20)))

pytestmark = pytest.mark.timeout(120 + 60 * ROUNDS)


async def _serving_leader(c: LocalCluster, min_size: int, not_node: str | None = None,
                          timeout: float = 30.0) -> str:
    async def ready():
        lead = await c.leader()
        if lead is None or lead[0] == not_node:
            return None
        node = c.nodes[lead[0]]
        if f"serves as leader (token {lead[1]})" not in node.log_text():
            return None
        members = await c.insync()
        return lead[0] if len(members) >= min_size else None

    return await c.wait(ready, timeout, f"a leader (not {not_node}) with {min_size} in sync")


async def test_confirmed_messages_survive_random_faults(tmp_path, etcd_fresh):
    rng = random.Random(SEED)
    print(f"\nfault seed {SEED}, {ROUNDS} rounds")
    links = {f"n{i}": CuttableLink(etcd_fresh.endpoint).start() for i in (1, 2, 3)}
    c = LocalCluster(tmp_path / "cluster", etcd_fresh.endpoint,
                     node_etcd={name: link.endpoint for name, link in links.items()})
    for node in c.nodes.values():
        node.extra_args += ["--segment-size", str(SEGMENT)]
    try:
        await _run_rounds(c, links, rng)
    finally:
        await c.close()
        for link in links.values():
            link.close()


async def _run_rounds(c: LocalCluster, links: dict[str, CuttableLink], rng: random.Random) -> None:
    c.start()
    urls = [n.url for n in c.nodes.values()]
    h = History()
    stop = asyncio.Event()
    tasks: list[asyncio.Task] = []
    failovers: list[float] = []
    faults: list[str] = []
    try:
        leader = await _serving_leader(c, 3)
        conn = await aio_pika.connect(c.nodes[leader].url, timeout=10)
        await (await conn.channel()).declare_queue("work", durable=True)
        await conn.close()
        tasks = [asyncio.ensure_future(publisher(urls, "work", h, stop, tag))
                 for tag in ("a", "b")]
        tasks.append(asyncio.ensure_future(consumer(urls, "work", h, stop)))
        for _ in range(ROUNDS):
            # let traffic flow before each fault
            before = len(h.confirmed)
            await c.wait(lambda b=before: _true(len(h.confirmed) >= b + 50), 30, "confirms flowing")
            leader = await _serving_leader(c, 2)
            fault = rng.choice(["kill-leader", "pause-leader", "kill-follower", "cut-leader"])
            faults.append(fault)
            node = c.nodes[leader]
            ended = _terms_ended(node)
            t0 = time.monotonic()
            if fault == "kill-leader":
                node.kill()
                await _serving_leader(c, 1, not_node=leader)
                failovers.append(time.monotonic() - t0)
                node.start()
            elif fault == "pause-leader":
                assert node.proc is not None
                node.proc.send_signal(signal.SIGSTOP)
                try:
                    await _serving_leader(c, 1, not_node=leader)
                    failovers.append(time.monotonic() - t0)
                finally:
                    node.proc.send_signal(signal.SIGCONT)
                # woken past its lease, the old leader steps down (and follows again)
                await c.wait(lambda n=node, e=ended: _true(_terms_ended(n) > e), 30,
                             "the paused leader to step down")
            elif fault == "cut-leader":
                # the leader loses etcd (not its clients nor its followers): at its lease's
                # local deadline it stops leading, before etcd lets another node win
                links[leader].cut()
                try:
                    await _serving_leader(c, 1, not_node=leader)
                    failovers.append(time.monotonic() - t0)
                    await c.wait(lambda n=node, e=ended: _true(_terms_ended(n) > e), 30,
                                 "the cut-off leader to step down")
                finally:
                    links[leader].heal()
            else:
                follower = rng.choice([n for n in c.nodes.values() if n.name != leader])
                follower.kill()
                await asyncio.sleep(rng.uniform(0.2, 2.0))
                follower.start()
        leader = await _serving_leader(c, 2)
        before = len(h.confirmed)
        await c.wait(lambda: _true(len(h.confirmed) >= before + 50), 30, "confirms after the faults")
    finally:
        stop.set()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    leader = await _serving_leader(c, 1)
    await drain(c.nodes[leader].url, "work", h)
    v = check(h)
    p50 = statistics.median(failovers) if failovers else 0.0
    p99 = max(failovers) if failovers else 0.0
    print(f"faults {faults}: confirmed {v.confirmed}, lost {len(v.lost)}, unexpected "
          f"{len(v.unexpected)}, delivered {v.delivered_unique} (+{v.duplicates} duplicates, "
          f"{v.redelivered} flagged redelivered), nacked {v.nacked}, reconnects {h.reconnects}, "
          f"failover p50 {p50:.2f}s max {p99:.2f}s")
    overlaps, terms = _fencing(c)
    logs = [node.log_text() for node in c.nodes.values()]
    continued = sum(t.count("continuing at seq") for t in logs)
    resynced = sum(t.count("replication: full resync of") for t in logs)
    print(f"terms {terms}; a deposed leader's last replicated confirm after its successor "
          f"began: {overlaps}; followers that continued in a new term's log {continued}, "
          f"full resyncs {resynced}")
    assert not overlaps, overlaps
    assert not v.lost, f"confirmed but never delivered: {sorted(v.lost)[:20]}"
    assert not v.unexpected, f"delivered but never published: {sorted(v.unexpected)[:20]}"
    assert v.confirmed > 0


_SERVES = re.compile(r"serves as leader \(token (\d+)\) since=([\d.]+)")
_STOPPED = re.compile(r"stopped leading \(token (\d+)\) last_replicated=([\d.]+)")


def _fencing(c: LocalCluster) -> tuple[list[tuple[int, int]], int]:
    """Pairs of terms (old token, new token) where the old leader completed a replicated
    wait (what a confirm waits for) after the new one began serving: none may exist.
    A leader killed with -9 logs no end of term; it confirms nothing once dead."""
    began: dict[int, float] = {}
    last: dict[int, float] = {}
    for node in c.nodes.values():
        text = node.log_text()
        began.update({int(t): float(at) for t, at in _SERVES.findall(text)})
        last.update({int(t): float(at) for t, at in _STOPPED.findall(text)})
    overlaps = [(old, new) for old, at in last.items() for new, start in began.items()
                if new > old and at >= start]
    return overlaps, len(began)


def _terms_ended(node) -> int:
    """How many times the node logged the end of a term as leader."""
    return node.log_text().count("stopped leading")


async def _true(value: bool) -> bool:
    return value
