"""Several ``warren --cluster`` processes on loopback ports, sharing one test etcd."""

from __future__ import annotations

import asyncio
import json
import secrets
import signal
import time
from pathlib import Path

from warren.server.cluster import keys
from warren.server.cluster.etcd import Etcd

from tests.brokerproc import BrokerProcess, free_port


class ClusterNodeProcess(BrokerProcess):
    """One node: a BrokerProcess started with the cluster flags."""

    def __init__(self, name: str, base: Path, etcd: tuple[str, int], cluster: str,
                 secret_file: Path, options: str) -> None:
        self.name = name
        self.repl_port = free_port()
        url = f"etcd://{etcd[0]}:{etcd[1]}/{cluster}?{options}"
        super().__init__(base / name, extra_args=[
            "--cluster", url, "--node-name", name, "--cluster-secret-file", str(secret_file),
            "--replication-port", str(self.repl_port), "--advertise-host", "127.0.0.1",
        ])
        self.log_path = base / f"{name}.log"


class LocalCluster:
    """``n`` nodes; ``etcd`` is an async client to read who leads and who is in sync."""

    def __init__(self, base: Path, etcd_endpoint: tuple[str, int], n: int = 3,
                 options: str = "lease_ttl=2&min_insync=2&follower_timeout=1",
                 node_etcd: dict[str, tuple[str, int]] | None = None,
                 etcd_credentials: tuple[str, str] | None = None) -> None:
        """``node_etcd``: where a node reaches etcd, if not directly (e.g. a CuttableLink);
        ``etcd_credentials``: (user, password) the test reads etcd with."""
        self.cluster = f"t-{secrets.token_hex(4)}"
        base.mkdir(parents=True, exist_ok=True)
        secret = base / "secret"
        secret.write_text(secrets.token_hex(32))
        self.nodes = {
            f"n{i}": ClusterNodeProcess(f"n{i}", base, (node_etcd or {}).get(f"n{i}", etcd_endpoint),
                                        self.cluster, secret, options)
            for i in range(1, n + 1)
        }
        self.etcd = Etcd([etcd_endpoint], timeout=5.0, credentials=etcd_credentials)

    def start(self, wait: bool = True) -> LocalCluster:
        for node in self.nodes.values():
            node.start(wait)
        return self

    async def close(self) -> None:
        for node in self.nodes.values():
            if node.proc is not None and node.proc.poll() is None:
                node.proc.send_signal(signal.SIGCONT)  # a paused node could not stop
            node.stop()
        await self.etcd.close()

    async def leader(self) -> tuple[str, int] | None:
        """(node name, fencing token) of the current leader, or None."""
        kv = await self.etcd.get(keys.leader_key(self.cluster))
        if kv is None:
            return None
        return json.loads(kv.value)["node"], kv.create_revision

    async def insync(self) -> list[str]:
        kv = await self.etcd.get(keys.isr_key(self.cluster))
        return [] if kv is None else list(json.loads(kv.value)["members"])

    async def wait(self, cond, timeout: float, what: str):
        deadline = time.monotonic() + timeout
        while True:
            got = await cond()
            if got:
                return got
            if time.monotonic() > deadline:
                logs = "\n".join(f"--- {n.name}\n{n.log_text()[-3000:]}" for n in self.nodes.values())
                raise AssertionError(f"timed out waiting for {what}\n{logs}")
            await asyncio.sleep(0.05)

    async def wait_serving(self, size: int, timeout: float = 30.0) -> str:
        """Wait until a leader serves and ``size`` nodes are in sync; returns the leader."""

        async def ready():
            lead = await self.leader()
            if lead is None:
                return None
            members = await self.insync()
            node = self.nodes[lead[0]]
            if members and members[0] == lead[0] and len(members) >= size and \
                    f"serves as leader (token {lead[1]})" in node.log_text():
                return lead[0]
            return None

        return await self.wait(ready, timeout, f"a leader with {size} in sync")
