"""The leader's side of a replicated store: a :class:`LogStore` that tells the link.

In cluster mode every durable queue lane and durable delayed exchange keeps its
records in a :class:`ReplicatedLogStore` under ``data_dir/stores/<hex of id>``,
the directory a follower keeps the same store in, and in the same record format
(``u64 origin | message bytes``): a follower promoted to leader opens its replica
files as its own stores, and a leader demoted to follower resyncs over them.

Each mutation is also handed to the :class:`Leader` in the order it was applied:
push -> ``append`` (the bytes just encoded), ack -> ``ack``, purge -> ``purge``
keeping the records still unacked (delivered, not acked: they survive a purge),
delete -> ``delete_store``.

On the link a record is known by its *name*, the same on every node and in every term
(DESIGN §10.8): a record this node pushed is named by its position here (its origin
prefix is 0), a record it holds from a former leader by the name in its prefix (what
that leader sent). A store opened with such records renumbers its positions past the
highest name it holds, so names only grow in a store's order and no record pushed
now takes a name a copied one has. ``sync(cb)`` completes when the local fsync is done
**and** every in-sync follower acknowledged the store's last operation: the
publisher confirm waits for both.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from warren.server.cluster.replication.follower import (
    ORIGIN,
    store_directory,
    store_ids,
    strip_origin,
)
from warren.server.cluster.replication.leader import Leader
from warren.server.cluster.replication.source import LogStoreSource
from warren.storage.log import LogStore
from warren.storage.log.scan import scan_records

#: a leader's own records carry no name in their prefix: their position is their name
NO_ORIGIN = bytes(8)


def _stored_name(raw: bytes | memoryview) -> int:
    return ORIGIN.unpack_from(raw)[0]


class ReplicatedLogStore(LogStore):
    """A LogStore whose mutations are streamed to the followers (module docstring)."""

    __slots__ = ("store_id", "leader", "source", "_unacked", "_last", "_top", "_limit")

    def __init__(
        self,
        data_dir: str | Path,
        store_id: str,
        leader: Leader,
        source: LogStoreSource,
        encode: Callable[[Any], bytes] | None,
        decode: Callable[[bytes], Any] | None,
        *,
        decode_requeued: Callable[[bytes], Any] | None = None,
        **options: Any,
    ) -> None:
        """``encode``/``decode`` None: opened ahead of them (``open_ahead``), ``bind``
        gives them before the store is used."""
        self.store_id = store_id
        self.leader = leader
        self.source = source
        #: delivered and not yet acked: what a purge keeps
        self._unacked: set[int] = set()
        self._last = b""
        #: the name of the last record pushed (a purge covers the records up to it)
        self._top = 0
        #: positions up to this were here when the store was opened (may carry a name)
        self._limit = 0
        super().__init__(store_directory(Path(data_dir), store_id), _unbound, _unbound)
        if encode is not None and decode is not None:
            self.bind(encode, decode, decode_requeued=decode_requeued, **options)
        limit = self._limit = self.recovered_position_limit
        if limit:
            # the last live record carries the highest name held (names grow in store order)
            self._top = self.name_of(limit)
            self.skip_positions(self._top)
        source.register(store_id, self)

    def bind(self, encode: Callable[[Any], bytes], decode: Callable[[bytes], Any], *,
             decode_requeued: Callable[[bytes], Any] | None = None,
             cache_records: int | None = None, cache_bytes: int | None = None) -> None:
        """Set the codecs (and the tail cache's bounds) of the store's records."""

        def encode_and_keep(record: Any) -> bytes:
            data = self._last = encode(record)
            return NO_ORIGIN + data

        self._encode = encode_and_keep
        self._decode = strip_origin(decode)
        self._decode_requeued = strip_origin(decode_requeued or decode)
        if cache_records is not None:
            self._cache_max = max(0, cache_records)
        if cache_bytes is not None:
            self._cache_max_bytes = max(0, cache_bytes)

    def name_of(self, position: int) -> int:
        """The name of the record at ``position`` (live: not acked yet)."""
        if position > self._limit:
            return position
        return self.read(position, _stored_name) or position

    def push(self, record: Any) -> int:
        leader = self.leader
        # the followers' send is scheduled before the local fsync's start (which
        # LogStore.push schedules): theirs is the longer way
        leader.flush_soon()
        pos = self._top = LogStore.push(self, record)
        leader.append(self.store_id, pos, self._last)
        return pos

    def shift(self) -> tuple[int, Any] | None:
        item = LogStore.shift(self)
        if item is not None:
            self._unacked.add(item[0])
        return item

    def requeue(self, position: int, record: Any, unchanged: bool = False) -> None:
        self._unacked.discard(position)
        LogStore.requeue(self, position, record, unchanged)

    def ack(self, position: int) -> None:
        self._unacked.discard(position)
        # name_of's test inline: acks are per message, a call is not free
        name = position if position > self._limit else self.name_of(position)
        LogStore.ack(self, position)
        self.leader.ack(self.store_id, name)

    def purge(self) -> int:
        n = LogStore.purge(self)
        if n:
            self.leader.purge(self.store_id, sorted(map(self.name_of, self._unacked)), self._top)
        return n

    def sync(self, callback: Callable[[bool], None]) -> None:
        seq = self.leader.seq
        pending = [2, True]

        def part(ok: bool) -> None:
            pending[0] -= 1
            pending[1] = pending[1] and ok
            if pending[0] == 0:
                callback(pending[1])

        LogStore.sync(self, part)
        self.leader.when_replicated(seq, part)

    def close(self) -> None:
        if self.source.stores.get(self.store_id) is self:
            self.source.unregister(self.store_id)
        LogStore.close(self)

    def delete(self) -> None:
        if self.source.stores.get(self.store_id) is self:
            self.source.unregister(self.store_id)
        self.leader.delete_store(self.store_id)
        LogStore.delete(self)


def _unbound(_: Any) -> Any:
    raise RuntimeError("a store opened ahead is used before bind()")


def open_ahead(data_dir: str | Path, leader: Leader, source: LogStoreSource) -> dict[str, ReplicatedLogStore]:
    """Open (recover: scan and check) every store under ``data_dir/stores``, without codecs,
    for the model to ``bind`` as it declares them. Blocking, in any thread: a promoted
    follower runs it in a worker thread, since recovering 1 GB took 0.8 s, and a loop
    blocked longer than the etcd lease loses the node its leadership."""
    stores: dict[str, ReplicatedLogStore] = {}
    try:
        for store_id in store_ids(data_dir):
            stores[store_id] = ReplicatedLogStore(data_dir, store_id, leader, source, None, None)
    except BaseException:
        for store in stores.values():
            store.close()
        raise
    return stores


def _scan_named(plan: Any) -> Iterator[list[tuple[int, bytes]]]:
    """The records of ``plan`` as ``(name, bytes)``: the name in the prefix, or the
    position for a record pushed here (prefix 0)."""
    unpack = ORIGIN.unpack_from
    skip = ORIGIN.size
    for batch in scan_records(plan):
        yield [(unpack(raw)[0] or pos, raw[skip:]) for pos, raw in batch]


class ReplicatedSource(LogStoreSource):
    """The leader's stores for a full resync, as a follower stores them: records by
    name, the prefix not sent (the follower writes the name there)."""

    read = staticmethod(_scan_named)
