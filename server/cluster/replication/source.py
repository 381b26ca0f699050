"""What a leader streams to a follower that needs a full resync: its stores' live records."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from typing import NamedTuple, Protocol

from warren.storage.log import LogStore
from warren.storage.log.scan import scan_records


class StoreSnapshot(NamedTuple):
    """One store at the snapshot's seq. ``batches()`` iterates over its live records as
    lists of (position, bytes), read from its files (advance it in a worker thread). It
    may leave out records removed after the snapshot, or still hold some: either way the
    operations after the snapshot (acks, a delete) follow and say what is gone."""

    store_id: str
    batches: Callable[[], Iterator[list[tuple[int, bytes]]]]


class SnapshotSource(Protocol):
    """The leader's stores, as a full resync needs them. ``snapshot`` must be synchronous:
    it is taken at one sequence number, with no operation in between."""

    def snapshot(self) -> list[StoreSnapshot]: ...


class LogStoreSource:
    """A :class:`SnapshotSource` over registered :class:`LogStore` instances (by store id)."""

    #: ``plan -> batches`` of what is sent of each record (a subclass names them its way)
    read = staticmethod(scan_records)

    def __init__(self) -> None:
        self.stores: dict[str, LogStore] = {}

    def register(self, store_id: str, store: LogStore) -> None:
        self.stores[store_id] = store

    def unregister(self, store_id: str) -> None:
        self.stores.pop(store_id, None)

    def snapshot(self) -> list[StoreSnapshot]:
        # the plans are taken now, on the loop (buffers written); the files are read later
        return [
            StoreSnapshot(store_id, partial(self.read, store.scan_plan()))
            for store_id, store in self.stores.items()
        ]
