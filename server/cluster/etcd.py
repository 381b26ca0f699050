"""A thin async wrapper over the aetcd client: endpoint failover, plain result types, resumable watch.

aetcd talks to one endpoint and ends every watch on a stream error; this module adds what the
cluster code needs on top: try the next endpoint when one is unreachable, bound every call,
and resume a watch from the last revision it delivered, so a watcher sees every change once
and in order even across an etcd restart or an endpoint switch.

Keys are ``str`` (UTF-8 on the wire); values are ``bytes``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import aetcd
from aetcd import exceptions as _exceptions
from aetcd import rpc
from aetcd import transactions as _tx
from aetcd import utils as _utils

log = logging.getLogger("warren.cluster.etcd")

T = TypeVar("T")

# What "this endpoint is not answering" looks like (worth trying another one): aetcd's
# mapped errors, or a raw gRPC status from a stub called directly (txn).
_UNREACHABLE = (aetcd.ConnectionFailedError, aetcd.ConnectionTimeoutError)
_UNREACHABLE_CODES = (rpc.StatusCode.UNAVAILABLE, rpc.StatusCode.DEADLINE_EXCEEDED)


class EtcdError(Exception):
    """etcd refused or failed a request."""


class EtcdUnavailable(EtcdError):
    """No endpoint answered within the time allowed."""


class WatchCompacted(EtcdError):
    """The watch's start revision has been compacted away: re-read, then watch again."""

    def __init__(self, compact_revision: int) -> None:
        super().__init__(f"revision compacted below {compact_revision}")
        self.compact_revision = compact_revision


@dataclass(frozen=True, slots=True)
class KV:
    """One key as etcd holds it."""

    key: str
    value: bytes
    create_revision: int
    mod_revision: int
    version: int
    lease: int


@dataclass(frozen=True, slots=True)
class WatchEvent:
    """A put or a delete of one key; ``kv.mod_revision`` is the revision of the change."""

    kind: str  # "put" | "delete"
    kv: KV
    prev: KV | None = None  # the key before the change, when the watch asked for it

    @property
    def revision(self) -> int:
        return self.kv.mod_revision


@dataclass(frozen=True, slots=True)
class TxnResult:
    """Whether the compares held, and the revision the transaction was applied at."""

    succeeded: bool
    revision: int


def _kv(raw: Any) -> KV:
    return KV(
        key=bytes(raw.key).decode(),
        value=bytes(raw.value),
        create_revision=raw.create_revision,
        mod_revision=raw.mod_revision,
        version=raw.version,
        lease=raw.lease,
    )


def _raise_if_cancelled() -> None:
    """Re-raise a cancellation a library call swallowed.

    aetcd waits for a watch to be created with 3.11's asyncio.wait_for, which returns the
    result instead of raising when the cancel and the result arrive together; the task's
    pending-cancel count still shows it.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        log.debug("re-raising a cancellation swallowed by the etcd client")
        raise asyncio.CancelledError


async def cancel_and_wait(*tasks: asyncio.Future[Any], grace: float = 0.5) -> None:
    """Cancel tasks and wait until they end, cancelling again if one swallowed the first."""
    pending = {t for t in tasks if not t.done()}
    for t in pending:
        t.cancel()
    for _ in range(10):
        if not pending:
            break
        _, pending = await asyncio.wait(pending, timeout=grace)
        for t in pending:
            t.cancel()
    if pending:
        log.error("%d task(s) ignored cancellation: %s", len(pending), pending)
    for t in tasks:
        if t.done() and not t.cancelled():
            t.exception()  # retrieved, so asyncio does not log it as never retrieved


def prefix_end(prefix: str) -> bytes:
    """The range end that makes ``[prefix, end)`` exactly the keys starting with prefix."""
    return _utils.prefix_range_end(prefix.encode())


# Transaction building blocks (compares and operations), so callers need not import aetcd.


def create_revision_is(key: str, revision: int) -> Any:
    """Compare: the key's create_revision equals ``revision`` (0 = the key does not exist)."""
    return _tx.Create(key.encode()) == revision


def mod_revision_is(key: str, revision: int) -> Any:
    """Compare: the key's mod_revision equals ``revision`` (0 = the key does not exist)."""
    return _tx.Mod(key.encode()) == revision


def op_put(key: str, value: bytes, lease: int | None = None) -> Any:
    return rpc.RequestOp(request_put=rpc.PutRequest(key=key.encode(), value=value, lease=lease or 0))


def op_delete(key: str) -> Any:
    return rpc.RequestOp(request_delete_range=rpc.DeleteRangeRequest(key=key.encode()))


def op_get(key: str) -> Any:
    return rpc.RequestOp(request_range=rpc.RangeRequest(key=key.encode()))


@dataclass(frozen=True)
class EtcdTLS:
    """TLS to etcd: PEM bytes of the CA that signed etcd's certificate (None: the system's
    CAs) and of this node's client certificate and key (for etcd's --client-cert-auth)."""

    ca: bytes | None = None
    cert: bytes | None = None
    key: bytes | None = None


class _TLSClient(aetcd.Client):
    """aetcd's client on a TLS channel (aetcd 1.0 opens only plaintext ones): its
    ``connect`` with ``secure_channel``; the rest is aetcd's."""

    def __init__(self, *args: Any, tls: EtcdTLS, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._tls = tls

    async def connect(self) -> None:
        if self._connected.is_set():
            return
        if self._is_connecting:
            await asyncio.wait_for(self._connected.wait(), self._connect_wait_timeout)
            return
        import grpc
        from aetcd import watcher as _watcher

        try:
            self._is_connecting = True
            creds = grpc.ssl_channel_credentials(self._tls.ca, self._tls.key, self._tls.cert)
            self.channel = grpc.aio.secure_channel(f"{self._host}:{self._port}", creds,
                                                   options=list(self._options.items()))
            if self._username is not None and self._password is not None:
                # as aetcd's own connect: a token for this channel, sent with every call
                self.auth_stub = rpc.AuthStub(self.channel)
                resp = await self.auth_stub.Authenticate(
                    rpc.AuthenticateRequest(name=self._username, password=self._password),
                    timeout=self._timeout,
                )
                self.metadata = (("token", resp.token),)
            self.kvstub = rpc.KVStub(self.channel)
            self.clusterstub = rpc.ClusterStub(self.channel)
            self.leasestub = rpc.LeaseStub(self.channel)
            self.maintenancestub = rpc.MaintenanceStub(self.channel)
            self._watcher = _watcher.Watcher(rpc.WatchStub(self.channel), timeout=self._timeout,
                                             metadata=self.metadata)
            self._connected.set()
        finally:
            self._is_connecting = False


class Etcd:
    """A connection to an etcd cluster given as several endpoints; fails over between them.

    ``credentials`` (user, password): for an etcd with authentication enabled. Each client
    (one per endpoint in use) authenticates when it connects; a token etcd no longer knows
    (an etcd restart, or a token that expired) makes the call reconnect and authenticate
    again, once per endpoint tried."""

    def __init__(
        self, endpoints: Sequence[tuple[str, int]], *, timeout: float = 2.0, tls: EtcdTLS | None = None,
        credentials: tuple[str, str] | None = None,
    ) -> None:
        if not endpoints:
            raise ValueError("at least one etcd endpoint is needed")
        self.endpoints = list(endpoints)
        self.timeout = timeout
        self.tls = tls
        self.credentials = credentials
        self._index = 0
        self._client: aetcd.Client | None = None
        self._closed = False

    @property
    def endpoint(self) -> str:
        host, port = self.endpoints[self._index]
        return f"{host}:{port}"

    def _new_client(self) -> aetcd.Client:
        host, port = self.endpoints[self._index]
        kwargs: dict[str, Any] = {
            "host": host,
            "port": port,
            "timeout": self.timeout,
            # gRPC pings notice a dead TCP peer (e.g. a paused etcd) without waiting on the OS
            "options": {
                "grpc.keepalive_time_ms": 2000,
                "grpc.keepalive_timeout_ms": 2000,
                "grpc.keepalive_permit_without_calls": 1,
            },
        }
        if self.credentials is not None:
            kwargs["username"], kwargs["password"] = self.credentials
        if self.tls is not None:
            return _TLSClient(tls=self.tls, **kwargs)
        return aetcd.Client(**kwargs)

    async def _switch(self, failed: aetcd.Client) -> None:
        """Drop the client that failed and move on to the next endpoint."""
        if self._client is failed:
            self._client = None
            self._index = (self._index + 1) % len(self.endpoints)
        try:
            await failed.close()
        except Exception:  # closing a broken channel may itself fail; nothing to do about it
            pass

    async def _drop(self, failed: aetcd.Client) -> None:
        """Drop the client (the next call makes a new one on the same endpoint)."""
        if self._client is failed:
            self._client = None
        try:
            await failed.close()
        except Exception:
            pass

    async def _call(self, fn: Callable[[aetcd.Client], Awaitable[T]]) -> T:
        """Run one request, trying each endpoint once when it is unreachable."""
        if self._closed:
            raise EtcdError("etcd client closed")
        last: Exception | None = None
        tries = len(self.endpoints)
        reauth = 1  # one new token per call (a second refusal is not a stale token)
        while tries > 0:
            tries -= 1
            client = self._client
            if client is None:
                client = self._client = self._new_client()
            try:
                # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancellation
                # that races with the result, leaving a cancelled task running on
                async with asyncio.timeout(self.timeout):
                    return await fn(client)
            except (_exceptions.UnauthenticatedError, rpc.AioRpcError) as e:
                if isinstance(e, rpc.AioRpcError) and e.code() in _UNREACHABLE_CODES:
                    last = e
                    log.warning("etcd %s unreachable: %s", self.endpoint, e.details())
                    await self._switch(client)
                    continue
                if isinstance(e, rpc.AioRpcError) and e.code() != rpc.StatusCode.UNAUTHENTICATED:
                    raise EtcdError(e.details() or str(e.code())) from e
                # etcd does not know our token (it restarted, or the token expired):
                # a new client authenticates again
                last = e
                log.info("etcd %s: authentication token refused (%s); authenticating again",
                         self.endpoint, e.details() if isinstance(e, rpc.AioRpcError) else e)
                await self._drop(client)
                if reauth:
                    reauth -= 1
                    tries += 1
            except (*_UNREACHABLE, TimeoutError) as e:
                last = e
                why = e.details() if isinstance(e, rpc.AioRpcError) else (str(e) or type(e).__name__)
                log.warning("etcd %s unreachable: %s", self.endpoint, why)
                await self._switch(client)
            except aetcd.ClientError as e:
                raise EtcdError(str(e)) from e
        raise EtcdUnavailable(f"no etcd endpoint answered: {last}") from last

    async def close(self) -> None:
        self._closed = True
        client, self._client = self._client, None
        if client is not None:
            await client.close()

    async def __aenter__(self) -> Etcd:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ---- key-value

    async def get(self, key: str) -> KV | None:
        raw = await self._call(lambda c: c.get(key.encode()))
        return None if raw is None else _kv(raw)

    async def read(self, key: str) -> tuple[KV | None, int]:
        """One key and the store revision it was read at (to watch from +1)."""
        k = key.encode()
        # the range [key, key+NUL) is exactly the key; unlike get(), the reply keeps the header
        res = await self._call(lambda c: c.get_range(k, k + b"\0"))
        kvs = [_kv(raw) for raw in res.kvs]
        return (kvs[0] if kvs else None), res.header.revision

    async def get_prefix(self, prefix: str) -> tuple[list[KV], int]:
        """All keys under prefix, and the store revision they were read at (to watch from +1)."""
        res = await self._call(lambda c: c.get_prefix(prefix.encode(), sort_target="key"))
        return [_kv(raw) for raw in res.kvs], res.header.revision

    async def put(self, key: str, value: bytes, lease: int | None = None) -> int:
        res = await self._call(lambda c: c.put(key.encode(), value, lease=lease))
        return res.header.revision

    async def delete(self, key: str) -> bool:
        res = await self._call(lambda c: c.delete(key.encode()))
        return res is not None

    async def txn(
        self, compare: list[Any], success: list[Any], failure: list[Any] | None = None
    ) -> TxnResult:
        """Apply ``success`` if every compare holds, else ``failure``; atomically."""
        req = rpc.TxnRequest(
            compare=[cmp.build_message() for cmp in compare],
            success=success,
            failure=failure or [],
        )

        async def run(c: aetcd.Client) -> TxnResult:
            # the stub directly: aetcd's transaction() drops the header, whose revision is the
            # create_revision of what the txn put (the fencing token of an election)
            await c.connect()
            resp = await c.kvstub.Txn(req, timeout=self.timeout, metadata=c.metadata)
            return TxnResult(resp.succeeded, resp.header.revision)

        return await self._call(run)

    async def compact(self, revision: int) -> None:
        """Drop history before ``revision`` (what etcd's auto-compaction does on its own)."""
        await self._call(lambda c: c.compact(revision))

    # ---- leases

    async def grant(self, ttl: int) -> tuple[int, int]:
        """A new lease: (id, granted ttl). etcd may raise a tiny ttl to its minimum."""
        lease = await self._call(lambda c: c.lease(ttl))
        return lease.id, lease.ttl

    async def keepalive(self, lease_id: int) -> int:
        """Refresh a lease once; returns its new TTL, 0 when the lease no longer exists."""
        reply = await self._call(lambda c: c.refresh_lease(lease_id))
        return 0 if reply is None else int(reply.TTL)

    async def revoke(self, lease_id: int) -> None:
        """Revoke a lease (deleting its keys); a lease already gone is not an error."""
        try:
            await self._call(lambda c: c.revoke_lease(lease_id))
        except EtcdError as e:
            if "not found" not in str(e):
                raise

    # ---- watch

    async def watch_prefix(
        self, prefix: str, start_revision: int, *, prev_kv: bool = False,
        retry_delay: float = 0.2,
    ) -> AsyncIterator[WatchEvent]:
        """Every change under prefix from ``start_revision`` on, in order, across reconnects.

        Raises WatchCompacted if etcd no longer has the history to resume from.
        """
        next_rev = start_revision
        while not self._closed:
            client = self._client
            if client is None:
                client = self._client = self._new_client()
            watch = None
            try:
                async with asyncio.timeout(self.timeout):
                    watch = await client.watch_prefix(
                        prefix.encode(), start_revision=next_rev, prev_kv=prev_kv
                    )
                _raise_if_cancelled()
                async for ev in watch:
                    kv = _kv(ev.kv)
                    kind = "delete" if ev.kind == aetcd.EventKind.DELETE else "put"
                    next_rev = kv.mod_revision + 1
                    prev = _kv(ev.prev_kv) if prev_kv and ev.prev_kv is not None else None
                    yield WatchEvent(kind, kv, prev)
            except aetcd.RevisionCompactedError as e:
                raise WatchCompacted(e.compacted_revision) from e
            except (aetcd.ClientError, TimeoutError) as e:
                log.warning("etcd watch on %s interrupted (%s); resuming at revision %d",
                            self.endpoint, e or type(e).__name__, next_rev)
                await self._switch(client)
                await asyncio.sleep(retry_delay)
            except Exception as e:  # a gRPC error the client did not map; same recovery
                log.warning("etcd watch error (%r); resuming at revision %d", e, next_rev)
                await self._switch(client)
                await asyncio.sleep(retry_delay)
            finally:
                if watch is not None:
                    try:
                        await watch.cancel()
                    except Exception:
                        pass
