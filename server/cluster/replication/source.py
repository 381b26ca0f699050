"""What a leader streams to a follower that needs a full resync: its stores' live records."""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from typing import NamedTuple, Protocol

from warren.storage.log import LogStore
from warren.storage.log.scan import scan_files

log = logging.getLogger("warren.cluster.replication")


class StoreSnapshot(NamedTuple):
    """One store at the snapshot's seq. ``positions()`` lists its live records (it may run
    in a worker thread, and may leave out records removed after the snapshot);
    ``read(pos)`` (on the loop) gives a record's bytes, or None if it is gone since (acked
    and dropped, or the store deleted: the operations after the snapshot say so)."""

    store_id: str
    positions: Callable[[], list[int]]
    read: Callable[[int], bytes | None]


class SnapshotSource(Protocol):
    """The leader's stores, as a full resync needs them. ``snapshot`` must be synchronous:
    it is taken at one sequence number, with no operation in between."""

    def snapshot(self) -> list[StoreSnapshot]: ...


def _raw(data: bytes) -> bytes:
    return bytes(data)


class LogStoreSource:
    """A :class:`SnapshotSource` over registered :class:`LogStore` instances (by store id)."""

    def __init__(self) -> None:
        self.stores: dict[str, LogStore] = {}

    def register(self, store_id: str, store: LogStore) -> None:
        self.stores[store_id] = store

    def unregister(self, store_id: str) -> None:
        self.stores.pop(store_id, None)

    def snapshot(self) -> list[StoreSnapshot]:
        out = []
        for store_id, store in self.stores.items():
            plan = store.scan_plan()
            out.append(
                StoreSnapshot(store_id, partial(scan_files, plan), self._reader(store_id, store))
            )
        return out

    def _reader(self, store_id: str, store: LogStore) -> Callable[[int], bytes | None]:
        def read(pos: int) -> bytes | None:
            # a store deleted (and maybe re-made under the same id) since the snapshot:
            # its records are gone, and positions of the new one mean something else
            if self.stores.get(store_id) is not store:
                return None
            try:
                data = store.read(pos, _raw)
            except (KeyError, OSError, ValueError):
                return None  # acked and its segment dropped since the snapshot
            if not isinstance(data, bytes):
                # served from the store's tail cache: the record object, not its bytes
                data = store.encode(data)
            return data

        return read
