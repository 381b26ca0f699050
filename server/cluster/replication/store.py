"""The leader's side of a replicated store: a :class:`LogStore` that tells the link.

In cluster mode every durable queue lane and durable delayed exchange keeps its
records in a :class:`ReplicatedLogStore` under ``data_dir/stores/<hex of id>``,
the directory a follower keeps the same store in, and in the same record format
(``u64 origin | message bytes``): a follower promoted to leader opens its replica
files as its own stores, and a leader demoted to follower resyncs over them.

Each mutation is also handed to the :class:`Leader` in the order it was applied:
push -> ``append`` (the bytes just encoded), ack -> ``ack``, purge -> ``purge``
keeping the positions still unacked (delivered, not acked: they survive a purge),
delete -> ``delete_store``. ``sync(cb)`` completes when the local fsync is done
**and** every in-sync follower acknowledged the store's last operation: the
publisher confirm waits for both.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from warren.server.cluster.replication.follower import store_directory, strip_origin
from warren.server.cluster.replication.leader import Leader
from warren.server.cluster.replication.source import LogStoreSource
from warren.storage.log import LogStore

#: a leader's own records have no origin (a follower's name the leader position they copy)
NO_ORIGIN = bytes(8)


class ReplicatedLogStore(LogStore):
    """A LogStore whose mutations are streamed to the followers (module docstring)."""

    __slots__ = ("store_id", "leader", "source", "_unacked", "_last", "_top")

    def __init__(
        self,
        data_dir: str | Path,
        store_id: str,
        leader: Leader,
        source: LogStoreSource,
        encode: Callable[[Any], bytes],
        decode: Callable[[bytes], Any],
        *,
        decode_requeued: Callable[[bytes], Any] | None = None,
        **options: Any,
    ) -> None:
        self.store_id = store_id
        self.leader = leader
        self.source = source
        #: delivered and not yet acked: what a purge keeps
        self._unacked: set[int] = set()
        self._last = b""
        #: the last position pushed (a purge covers the records up to it)
        self._top = 0

        def encode_and_keep(record: Any) -> bytes:
            data = self._last = encode(record)
            return NO_ORIGIN + data

        super().__init__(
            store_directory(Path(data_dir), store_id),
            encode_and_keep,
            strip_origin(decode),
            decode_requeued=strip_origin(decode_requeued or decode),
            **options,
        )
        source.register(store_id, self)

    def push(self, record: Any) -> int:
        pos = self._top = LogStore.push(self, record)
        self.leader.append(self.store_id, pos, self._last)
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
        LogStore.ack(self, position)
        self.leader.ack(self.store_id, position)

    def purge(self) -> int:
        n = LogStore.purge(self)
        if n:
            self.leader.purge(self.store_id, sorted(self._unacked), self._top)
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


class ReplicatedSource(LogStoreSource):
    """The leader's stores for a full resync, as a follower stores them: the origin
    prefix of the leader's own files is not sent (the follower adds its own)."""

    skip = len(NO_ORIGIN)
