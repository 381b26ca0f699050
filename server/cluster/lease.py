"""A node's session with etcd: one lease, kept alive, whose loss is detected and reported.

Membership and leadership keys are both bound to this lease, so losing it means leaving
the cluster and losing leadership at once.

Loss is detected two ways, whichever comes first:
- etcd answers a keep-alive with TTL 0 (the lease was revoked or has expired);
- the local deadline passes: the send time of the last successful keep-alive plus the TTL
  etcd granted with it. etcd starts that TTL when it *receives* the keep-alive, which is
  after we sent it, so the local deadline is never later than etcd's expiry (clock rates
  being equal). A node cut off from etcd therefore stops acting as leader no later than
  etcd lets another node take over.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from warren.server.cluster.etcd import Etcd, EtcdError

log = logging.getLogger("warren.cluster.lease")

DEFAULT_TTL = 5  # seconds; failover ~ TTL + a campaign round trip


class LeaseLost(Exception):
    """The session's lease is gone: membership and leadership bound to it are void."""


class Session:
    """Grants a lease and keeps it alive every ttl/3 until stopped or lost."""

    def __init__(self, etcd: Etcd, ttl: int = DEFAULT_TTL) -> None:
        self.etcd = etcd
        self.ttl = ttl
        self.lease_id = 0
        self.granted_ttl = 0
        self.deadline = 0.0  # time.monotonic() by which the lease may have expired
        self.lost = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._on_lost: list[Callable[[], None]] = []

    async def start(self) -> int:
        """Grant the lease and start keeping it alive; returns the lease id."""
        sent = time.monotonic()
        self.lease_id, self.granted_ttl = await self.etcd.grant(self.ttl)
        self.deadline = sent + self.granted_ttl
        self._task = asyncio.get_running_loop().create_task(
            self._keepalive(), name=f"etcd-lease-{self.lease_id:x}"
        )
        return self.lease_id

    def on_lost(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (once) when the lease is lost; at once if it already is."""
        if self.lost.is_set():
            callback()
        else:
            self._on_lost.append(callback)

    @property
    def alive(self) -> bool:
        """The lease is still ours by the local deadline (what a leader checks before a confirm)."""
        return not self.lost.is_set() and time.monotonic() < self.deadline

    def check(self) -> None:
        """Raise LeaseLost unless the lease is alive."""
        if not self.alive:
            self._mark_lost("local deadline passed")
            raise LeaseLost(f"lease {self.lease_id:x} lost")

    def _mark_lost(self, why: str) -> None:
        if self.lost.is_set():
            return
        level = logging.INFO if why == "stopped" else logging.WARNING
        log.log(level, "etcd lease %x ended: %s", self.lease_id, why)
        self.lost.set()
        callbacks, self._on_lost = self._on_lost, []
        for cb in callbacks:
            try:
                cb()
            except Exception:
                log.exception("lease-lost callback failed")

    async def _keepalive(self) -> None:
        interval = max(self.granted_ttl / 3, 0.2)
        while True:
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                self._mark_lost("no keep-alive answered within the TTL")
                return
            await asyncio.sleep(min(interval, remaining))
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                continue
            sent = time.monotonic()
            try:
                async with asyncio.timeout(remaining):
                    ttl = await self.etcd.keepalive(self.lease_id)
            except (EtcdError, TimeoutError) as e:
                log.warning("etcd lease %x keep-alive failed: %s", self.lease_id,
                            e or type(e).__name__)
                continue
            if ttl <= 0:
                self._mark_lost("etcd reports it expired or revoked")
                return
            self.deadline = sent + ttl

    def pause(self) -> None:
        """Stop sending keep-alives but keep believing the lease is ours (tests: a frozen node)."""
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def stop(self, revoke: bool = True) -> None:
        """Stop keeping the lease alive; revoke it so its keys go at once (a clean leave)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
        if revoke and self.lease_id and not self.lost.is_set():
            try:
                await self.etcd.revoke(self.lease_id)
            except EtcdError as e:
                log.warning("etcd lease %x revoke failed: %s", self.lease_id, e)
        self._mark_lost("stopped")
