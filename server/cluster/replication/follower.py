"""The follower's end of the replication link: apply, fsync in groups, acknowledge.

The follower keeps one :class:`LogStore` per store id under ``data_dir/stores``.
A record is kept as ``u64 leader position | the leader's bytes``: the leader
names records by its own positions, the follower's store assigns its own, and
the prefix lets a restarted follower rebuild the mapping from its files alone.

Operations are applied in sequence order as they arrive; whatever arrived while
the previous batch was being made durable forms the next batch: one fsync per
touched store, in the loop's own thread (``LogStore.sync_now``), then ``ACKSEQ``
of the batch's last seq. The
follower's position (``replica.state``) is written after that ``ACKSEQ`` went out (its
fsync would hold the acknowledgement back), with the seq just made durable, at most
every ``STATE_INTERVAL``: it may lag the disk, and
replaying operations over a state that already has them is harmless (appends
of a known position are skipped, acks of an unknown one ignored, a purge only
covers positions up to its own, delete repeats).

The stores are opened (scanned, to rebuild the position maps) only when the leader
resumes this follower from its position; a full resync (a new leader's log) renames
the ``stores`` directory aside unopened (removed in a worker thread: unlinking 1 GB
took 0.2 s of the loop), writes what it receives without an fsync per batch (starting
the writeback every ``RESYNC_SYNC_BYTES`` without waiting for it), and fsyncs every
store it wrote once, at ``RESYNC_END``, before the new position is recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import ssl as _ssl
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

from warren.server.cluster.replication import wire
from warren.server.cluster.replication.positions import PositionMap
from warren.server.cluster.replication.state import NO_LOG, ReplicaState
from warren.storage.log import LogStore
from warren.storage.log.scan import scan_heads

log = logging.getLogger("warren.cluster.replication")

#: the 8-byte prefix of a stored record: its name (DESIGN §10.8)
ORIGIN = struct.Struct("<Q")

MetaHook = Callable[[int, str, bytes], Any]

_READ_SIZE = 256 * 1024

#: seconds between writes of the follower's position (it is also written on close)
STATE_INTERVAL = 0.2

#: during a full resync, an fsync is started (not waited for) after this many bytes
#: received, so that the one at RESYNC_END finds little left to write
RESYNC_SYNC_BYTES = 64 * 1024 * 1024

#: what a full resync renames the old ``stores`` directory to (plus a random suffix)
_RETIRED = "stores.old-"


class ReplicaRecord:
    """A record as a follower keeps it: the leader's position and ``raw``, the stored
    bytes (``u64 position | the leader's bytes``, as OP_APPEND carries them)."""

    __slots__ = ("origin", "raw", "size")
    persistent = True

    def __init__(self, origin: int, raw: bytes | memoryview) -> None:
        self.origin = origin
        self.raw = raw
        self.size = len(raw) - 8

    @property
    def data(self) -> bytes | memoryview:
        """The leader's bytes."""
        return self.raw[8:]


def encode_replica(record: ReplicaRecord) -> bytes | memoryview:
    return record.raw


def decode_replica(raw: bytes) -> ReplicaRecord:
    return ReplicaRecord(ORIGIN.unpack_from(raw)[0], bytes(raw))


def _close_opened(fut: asyncio.Future[dict[str, _Replica]]) -> None:
    if not fut.cancelled() and fut.exception() is None:
        for replica in fut.result().values():
            replica.store.close()


def strip_origin(decode: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    """A decoder for a follower's store files that hands ``decode`` the leader's bytes
    (for a follower promoted to leader, which opens these stores as its own)."""
    return lambda raw: decode(raw[8:])


def store_directory(data_dir: Path, store_id: str) -> Path:
    """Where a follower keeps ``store_id`` (hex of its utf-8: any id is a safe name)."""
    return Path(data_dir) / "stores" / store_id.encode().hex()


def store_ids(data_dir: str | Path) -> list[str]:
    """The ids of the stores kept under ``data_dir`` (``store_directory``), in name order."""
    root = Path(data_dir) / "stores"
    if not root.is_dir():
        return []
    ids = []
    for entry in sorted(os.scandir(root), key=lambda e: e.name):
        if entry.is_dir():
            try:
                ids.append(bytes.fromhex(entry.name).decode())
            except ValueError:
                log.warning("replication: ignoring %s (not a replica store)", entry.path)
    return ids


class _Replica:
    __slots__ = ("store", "local")

    def __init__(self, store: LogStore) -> None:
        self.store = store
        #: leader position -> local position of each live record (16 bytes a record)
        self.local = PositionMap()


class Follower:
    """Follows the leader at ``host:port`` into ``data_dir`` (see the module docstring).

    ``on_meta(kind, store_id, payload)``: called for OP_DELAYED and OP_DEFINITIONS
    operations (in order; it must make them durable itself before returning, if it
    returns an awaitable it is awaited before the batch is acknowledged).
    """

    def __init__(
        self,
        node: str,
        host: str,
        port: int,
        secret: bytes,
        data_dir: str | Path,
        *,
        on_meta: MetaHook | None = None,
        reconnect_delay: float = 0.1,
        store_options: dict[str, Any] | None = None,
        ssl: _ssl.SSLContext | None = None,
    ) -> None:
        self.node = node
        #: TLS for the link (cluster_tls_*): the leader's certificate must name ``host``
        self._ssl = ssl
        self._tls_error = ""
        self.host = host
        self.port = port
        self._secret = secret
        self.data_dir = Path(data_dir)
        self._on_meta = on_meta
        self.reconnect_delay = reconnect_delay
        self._store_options = {"cache_records": 0, **(store_options or {})}
        self._stores: dict[str, _Replica] = {}
        self._state: ReplicaState | None = None
        self._state_written = 0.0
        #: highest seq applied (in RAM) and highest acknowledged (durable)
        self.applied = 0
        self.durable = 0
        self.log_id = NO_LOG
        self.auth_failures = 0
        self.connects = 0
        self.resyncs = 0
        #: times this follower went on in a new term's log without a full resync
        self.continued = 0
        self._resyncing = False
        self._reading = asyncio.Event()
        self._reading.set()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._writer: asyncio.StreamWriter | None = None
        self._dirs_to_sync: set[Path] = set()
        #: the local stores were opened (_open_all: only when resuming, not to resync)
        self._opened = False
        #: stores written since RESYNC_BEGIN, fsynced at RESYNC_END
        self._resync_touched: dict[str, _Replica] = {}
        #: bytes of resync records received since the last fsync started
        self._resync_unsynced = 0
        #: a batch is being applied (or failed half-way): the stores are not exact
        self._mid_batch = False
        #: the stores may hold operations past any position recorded (see ``start``), until
        #: the follower has durably applied seq ``_untainted_at`` of the same log (-1: unknown)
        self._tainted = False
        self._untainted_at = -1

    # -- life -----------------------------------------------------------------
    async def start(self) -> None:
        """Open the local stores (rebuilding the position maps) and start following."""
        loop = asyncio.get_running_loop()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.data_dir / "stores").mkdir(exist_ok=True)
        self._state = await loop.run_in_executor(
            None, ReplicaState, self.data_dir / "replica.state"
        )
        self.log_id, self.applied = self._state.log_id, self._state.seq
        self.durable = self.applied
        # a position recorded without the claim (a crash, or a close after one) may have
        # more in its files than it says: tainted until past a bound the leader gives
        self._tainted = self.log_id != NO_LOG and not self._state.exact
        self._untainted_at = -1
        if self._state.exact:
            # from here on the files may come to hold more than the state says (a crash
            # after applying): the claim goes, durably, before anything is applied
            await loop.run_in_executor(None, self._state.write, self.log_id, self.applied, False)
        for entry in os.scandir(self.data_dir):
            if entry.name.startswith(_RETIRED) and entry.is_dir():
                self._remove_later(Path(entry.path))  # a resync's leftover (crashed meanwhile)
        # the stores are opened once the leader says it resumes from our position: a new
        # leader (a new log) resyncs us fully, and opening (scanning) stores only to
        # delete them cost ~0.5 s per 150 MB queued in every failover
        self._task = asyncio.ensure_future(self._run())

    async def _open_all(self) -> None:
        """Open every local store (rebuilding the position maps), once. In a worker
        thread: scanning 1 GB took longer than the etcd lease, and a loop blocked that
        long lost the node its session (and so this follower) again and again."""
        if self._opened:
            return
        ids = [sid for sid in store_ids(self.data_dir) if sid not in self._stores]
        fut = asyncio.get_running_loop().run_in_executor(None, self._open_many, ids)
        try:
            opened = await asyncio.shield(fut)
        except asyncio.CancelledError:
            fut.add_done_callback(_close_opened)  # nobody will use them
            raise
        self._stores.update(opened)
        self._opened = True

    def _open_many(self, store_ids: list[str]) -> dict[str, _Replica]:
        opened: dict[str, _Replica] = {}
        try:
            for store_id in store_ids:
                opened[store_id] = self._open(store_id)
        except BaseException:
            for replica in opened.values():
                replica.store.abandon()
            raise
        return opened

    async def retarget(self, host: str | None, port: int = 0) -> None:
        """Follow the leader at ``host:port`` from now on (None: nobody for now), keeping the
        stores open: a follower that continues in a new term's log (DESIGN §10.8) need not
        scan them again (~1.5 s per GB). Its stores are exact if the link ended between
        batches (not half-way through one, nor through a full resync)."""
        await self._stop_link()
        if host is None or self._closed:
            return
        self.host, self.port = host, port
        self._task = asyncio.ensure_future(self._run())

    async def close(self) -> None:
        """Stop following; stores are closed (flushed) and the position recorded."""
        self._closed = True
        await self._stop_link()
        clean = not self._mid_batch and not self._tainted
        for replica in self._stores.values():
            replica.store.close()  # writes and fsyncs what it holds
            clean = clean and replica.store.last_error is None
        self._stores.clear()
        if self._state is not None:
            if self.log_id != NO_LOG and not self._resyncing:
                # every batch applied is on disk now: the position is exact (DESIGN §10.8)
                if clean:
                    self._state.write(self.log_id, self.applied, True)
                else:
                    self._state.write(self.log_id, self.durable)
            self._state.close()
            self._state = None

    async def _stop_link(self) -> None:
        if self._writer is not None:
            self._writer.transport.abort()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
            self._task = None

    def _exact(self) -> bool:
        """The stores hold exactly the operations up to ``applied`` of ``log_id`` (said in
        AUTH: this follower may continue in a new term's log): between batches, not in a
        full resync, not tainted by a crash."""
        return (not (self._mid_batch or self._resyncing or self._tainted)
                and self.log_id != NO_LOG and self.applied == self.durable)

    def pause(self) -> None:
        """Stop reading from the leader (a stalled follower, for tests and operators)."""
        self._reading.clear()

    def resume(self) -> None:
        self._reading.set()

    def stores(self) -> list[str]:
        return list(self._stores)

    # -- the link ---------------------------------------------------------------
    async def _run(self) -> None:
        while not self._closed:
            try:
                reader, writer = await asyncio.open_connection(
                    self.host, self.port, limit=_READ_SIZE, ssl=self._ssl
                )
            except _ssl.SSLError as exc:
                # a certificate refused, or no TLS on the other end: say so (once per cause)
                if str(exc) != self._tls_error:
                    self._tls_error = str(exc)
                    log.warning("replication: TLS with the leader %s:%d failed: %s", self.host, self.port, exc)
            except OSError as exc:
                log.debug("replication: cannot reach the leader: %s", exc)
            else:
                self._writer = writer
                try:
                    await self._session(reader, writer)
                except wire.AuthError as exc:
                    self.auth_failures += 1
                    log.warning("replication: the leader failed authentication: %s", exc)
                except (
                    asyncio.IncompleteReadError,
                    ConnectionError,
                    OSError,
                    wire.WireError,
                ) as exc:
                    log.info("replication: link to the leader lost: %r", exc)
                finally:
                    writer.transport.abort()
                    self._writer = None
            if not self._closed:
                await asyncio.sleep(self.reconnect_delay)  # back off before reconnecting

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonce_f = os.urandom(wire.NONCE)
        writer.write(wire.frame(wire.hello(nonce_f, self.node)))
        nonce_l, proof = wire.parse_challenge(await wire.read_frame(reader, wire.MAX_HANDSHAKE))
        # nothing more goes to a peer that cannot prove it knows the secret
        wire.check(wire.leader_proof(self._secret, nonce_f, nonce_l, self.node), proof)
        proof_f = wire.follower_proof(self._secret, nonce_f, nonce_l, self.node)
        exact = self._exact()
        writer.write(wire.frame(wire.auth(proof_f, self.log_id, self.durable, exact)))
        mode, log_id, seq, top = wire.parse_start(await wire.read_frame(reader, wire.MAX_HANDSHAKE))
        self.connects += 1
        if mode == wire.MODE_RESYNC:
            body = await wire.read_frame(reader)
            if body[0] != wire.RESYNC_BEGIN:
                raise wire.WireError("resync without RESYNC_BEGIN")
            await self._begin_resync(log_id)
        elif seq != self.durable or (log_id != self.log_id and not exact):
            raise wire.WireError("leader resumed from a position we did not ask for")
        else:
            if log_id != self.log_id:
                # a new term's log that continues ours from exactly this seq: same stores
                log.info("replication: continuing at seq %d in the new leader's log", seq)
                self.log_id = log_id
                self.continued += 1
            elif self._tainted:
                # whatever a crash left in the files was sent before this link: by the
                # leader's seq now at the latest. Once applied past it, they hold no more
                self._untainted_at = top
            await self._open_all()
            # ops after `durable` follow; anything applied past it is replayed (harmless)
            self.applied = self.durable
        await self._follow(reader, writer)

    async def _follow(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Read, apply, fsync, acknowledge; again. Whatever arrives while a batch is being
        applied and fsynced waits in the socket and forms the next batch (group commit)."""
        buf = bytearray()
        read = reader.read
        split = wire.split_frame_views
        while True:
            data = await read(_READ_SIZE)
            if not data:
                raise asyncio.IncompleteReadError(bytes(buf), None)
            buf += data
            bodies = split(buf)
            if not bodies:
                continue
            if not self._reading.is_set():
                await self._reading.wait()  # paused: even frames read already wait
            await self._apply_batch(bodies)
            writer.write(wire.frame(wire.seq_message(wire.ACKSEQ, self.durable)))
            self._record_position()

    def _record_position(self) -> None:
        """Write the durable position to ``replica.state``, at most every STATE_INTERVAL
        (not every batch: a position that lags only means more, harmless, replay)."""
        state = self._state
        if self._resyncing or self._mid_batch or state is None:
            return
        if (state.log_id, state.seq) == (self.log_id, self.durable):
            return
        now = asyncio.get_running_loop().time()
        if now - self._state_written >= STATE_INTERVAL:
            self._state_written = now
            state.write(self.log_id, self.durable)

    # -- applying ---------------------------------------------------------------
    async def _apply_batch(self, batch: list[memoryview]) -> None:
        self._mid_batch = True
        touched: dict[str, _Replica] = {}
        metas: list[Any] = []
        resync_end = -1
        for body in batch:
            kind = body[0]
            if kind == wire.RESYNC_END:
                resync_end = self.applied = wire.parse_seq(body)
                continue
            op = wire.parse_op(body)
            if kind != wire.RESYNC_RECORD:
                if op.seq <= self.applied:
                    continue  # already here (a replay)
                if op.seq != self.applied + 1 and not self._resyncing:
                    raise wire.WireError(f"gap in the stream: {self.applied} -> {op.seq}")
                self.applied = op.seq
            result = self._apply(op, touched)
            if result is not None:
                metas.append(result)
        if self._resyncing and resync_end < 0 and not metas:
            # mid-resync nothing is acknowledged (the position is valid only at its end):
            # one fsync of every store it wrote at RESYNC_END, not one per batch read
            self._resync_touched.update(touched)
            self._resync_unsynced += sum(len(b) for b in batch)
            if self._resync_unsynced >= RESYNC_SYNC_BYTES:
                # start the writeback now, overlapping the transfer (nothing waits for it:
                # a failure shows in the sync at RESYNC_END)
                self._resync_unsynced = 0
                for replica in self._resync_touched.values():
                    replica.store.sync(_ignore)
            return
        if resync_end >= 0:
            touched = {**self._resync_touched, **touched}
            self._resync_touched = {}
        # fsync here, blocking: this loop has nothing else to do but forward client
        # bytes, and each hop to a helper process and back cost more than the fsync
        ok = True
        for replica in touched.values():
            # the batch's acks go to the ack files now, not within the store's flush
            # interval: a follower killed after acknowledging the batch must not come back
            # holding records its position says were acked (they would be delivered
            # again after it is promoted, and its stores would not be exact)
            replica.store.flush_acks()
            ok = replica.store.sync_now() and ok
        for d in self._dirs_to_sync:
            _fsync_dir(d)
        self._dirs_to_sync = set()
        state = self._state
        assert state is not None
        loop = asyncio.get_running_loop()
        for m in metas:
            if (asyncio.iscoroutine(m) or isinstance(m, asyncio.Future)) and await m is False:
                ok = False
        if not ok:
            raise OSError("a replica store could not be fsynced")
        if resync_end >= 0:
            # the resync's records are durable: only now is the position valid
            self._resyncing = False
            await loop.run_in_executor(None, state.write, self.log_id, resync_end)
        if not self._resyncing:
            self.durable = self.applied
            if self._tainted and 0 <= self._untainted_at <= self.durable:
                self._tainted = False
        self._mid_batch = False

    def _apply(self, op: wire.Op, touched: dict[str, _Replica]) -> Any:
        kind = op.kind
        if kind == wire.OP_APPEND or kind == wire.RESYNC_RECORD:
            replica = self._stores.get(op.store)
            if replica is None:
                replica = self._stores[op.store] = self._open(op.store)
            local = replica.local
            recs = wire.records(op)
            ordered = bool(recs) and local.newer(recs[0][0]) and all(
                a[0] < b[0] for a, b in zip(recs, recs[1:], strict=False))
            if ordered:  # the usual: all new, in the leader's order
                fresh = [ReplicaRecord(position, raw) for position, raw in recs]
            else:  # a replay: some are here already
                fresh = [ReplicaRecord(position, raw) for position, raw in recs if position not in local]
            placed: list[int] = []
            try:
                replica.store.push_many(fresh, placed)
            finally:
                # what went in is known even if a push failed (a replay must not add it twice)
                local.add_many([r.origin for r in fresh[:len(placed)]], placed, ordered)
            touched[op.store] = replica
        elif kind == wire.OP_ACK:
            replica = self._stores.get(op.store)
            if replica is not None:
                ack = replica.store.ack
                for local in replica.local.pop_many(op.keep):
                    ack(local)
                touched[op.store] = replica
        elif kind == wire.OP_PURGE:
            replica = self._stores.get(op.store)
            if replica is not None:
                for local in replica.local.pop_upto(op.position, set(op.keep)):
                    replica.store.ack(local)
                touched[op.store] = replica
        elif kind == wire.OP_DELETE:
            self._delete(op.store)
            touched.pop(op.store, None)
        elif self._on_meta is not None:
            return self._on_meta(kind, op.store, op.data)
        return None

    def _open(self, store_id: str) -> _Replica:
        store = LogStore(
            store_directory(self.data_dir, store_id),
            encode_replica,
            decode_replica,
            **self._store_options,
        )
        replica = _Replica(store)
        # rebuild name -> local position from the records' prefixes (the follower never
        # consumes: acks work on records never shifted)
        origins: list[int] = []
        positions: list[int] = []
        unpack = ORIGIN.unpack_from
        for pos, head in scan_heads(store.scan_plan(), ORIGIN.size):
            origins.append(unpack(head)[0])
            positions.append(pos)
        replica.local.add_many(origins, positions)
        return replica

    def _delete(self, store_id: str) -> None:
        replica = self._stores.pop(store_id, None)
        if replica is not None:
            replica.store.delete()
        else:
            shutil.rmtree(store_directory(self.data_dir, store_id), ignore_errors=True)
        # the removal must be durable before the position moves past it
        self._dirs_to_sync.add(self.data_dir / "stores")

    async def _begin_resync(self, log_id: bytes) -> None:
        """Forget everything: first durably (a crash mid-resync resyncs again), then on disk."""
        loop = asyncio.get_running_loop()
        state = self._state
        assert state is not None
        self.resyncs += 1
        # before the first await: cut off anywhere below, a close must not record the old
        # position over stores that are gone
        self._resyncing = True
        await loop.run_in_executor(None, state.write, NO_LOG, 0)
        for replica in self._stores.values():
            replica.store.abandon()  # its files go with the directory
        self._stores.clear()
        # the old stores leave in one rename (durable before anything new is written);
        # unlinking their files is left to a worker thread
        retired = await loop.run_in_executor(None, _retire_stores, self.data_dir)
        self._remove_later(retired)
        self._opened = True  # nothing left to open: the resync brings every store
        self._resync_touched = {}
        self._resync_unsynced = 0
        self._dirs_to_sync = set()
        self.log_id = log_id
        self.applied = self.durable = 0
        self._tainted = False  # what the resync brings is all the stores hold

    def _remove_later(self, path: Path) -> None:
        # nothing waits for it (rmtree ignoring errors cannot fail)
        asyncio.get_running_loop().run_in_executor(None, shutil.rmtree, path, True)


def _ignore(ok: bool) -> None:
    pass


def _retire_stores(data_dir: Path) -> Path:
    """Rename ``data_dir/stores`` aside and make a new empty one, durably; the old path."""
    stores = data_dir / "stores"
    retired = data_dir / (_RETIRED + os.urandom(4).hex())
    os.rename(stores, retired)
    stores.mkdir()
    _fsync_dir(data_dir)
    return retired


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
