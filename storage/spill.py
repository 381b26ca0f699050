"""A lane that keeps records in RAM and spills to a log store when it grows.

For queues whose messages need not survive a restart (non-durable queues):
while the backlog is small (the usual case with active consumers) records
live in a :class:`MemoryStore` and cost no I/O; once the RAM part holds
``max_records`` records or ``max_bytes`` bytes, new records go to a log
store (created on first use) until that drains, so a backlog of millions
costs disk, not RAM. FIFO holds because the RAM part is always older than
the spilled part while both have records.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from warren.storage.memory import MemoryStore

# the RAM part's methods as plain functions: a global and a call, where Python 3.11
# would look ``MemoryStore.peek`` up on the class (unspecialised) every time
_mem_peek = MemoryStore.peek
_mem_requeue = MemoryStore.requeue
_mem_purge = MemoryStore.purge
_mem_drain = MemoryStore.drain
_mem_len = MemoryStore.__len__


class SpillStore(MemoryStore):
    """A :class:`MemoryStore` (the RAM part, which it is) first, a log store (from
    ``make_log()``) for the overflow.

    Positions carry their store in the low bit: ``pos << 1`` for RAM,
    ``pos << 1 | 1`` for the log. The RAM part's methods are called as
    plain functions (``_mem_peek(self)``), or inlined on the per-message paths: this class overrides them all.
    """

    __slots__ = ("_log", "_make_log", "max_records", "max_bytes", "_spilling")

    persistent = False

    def __init__(self, make_log: Callable[[], Any], max_records: int = 50_000, max_bytes: int = 32 << 20) -> None:
        super().__init__()
        self._log: Any = None
        self._make_log = make_log
        self.max_records = max_records
        self.max_bytes = max_bytes
        self._spilling = False

    def push(self, record: Any) -> int:
        if not self._spilling:
            if len(self._q) < self.max_records and self._bytes < self.max_bytes:
                # MemoryStore.push inlined: this is the per-message path of transient queues
                pos = self._next
                self._next = pos + 1
                self._q.append((pos, record))
                self._bytes += record.size
                return pos << 1
            self._spilling = True
            if self._log is None:
                self._log = self._make_log()
        return (self._log.push(record) << 1) | 1

    def shift(self) -> tuple[int, Any] | None:
        # MemoryStore.shift inlined (per message, in every dispatch)
        if self._requeued:
            item = self._requeued.popitem(0)
        elif self._q:
            item = self._q.popleft()
        else:
            item = None
        if item is not None:
            self._bytes -= item[1].size
            return item[0] << 1, item[1]
        if self._log is None:
            return None
        item = self._log.shift()
        if item is None:
            self._spilling = False
            return None
        if not self._log:
            self._spilling = False  # drained: new records may use RAM again
        return (item[0] << 1) | 1, item[1]

    def peek(self) -> tuple[int, Any] | None:
        item = _mem_peek(self)
        if item is not None:
            return item[0] << 1, item[1]
        if self._log is None:
            return None
        item = self._log.peek()
        return None if item is None else ((item[0] << 1) | 1, item[1])

    def requeue(self, position: int, record: Any, unchanged: bool = False) -> None:
        if position & 1:
            self._log.requeue(position >> 1, record, unchanged)
        else:
            _mem_requeue(self, position >> 1, record)

    def ack(self, position: int) -> None:
        if position & 1:
            self._log.ack(position >> 1)

    def purge(self) -> int:
        n = _mem_purge(self)
        if self._log is not None:
            n += self._log.purge()
        self._spilling = False
        return n

    def drain(self) -> list[tuple[int, Any]]:
        out = [(p << 1, r) for p, r in _mem_drain(self)]
        if self._log is not None:
            out += [((p << 1) | 1, r) for p, r in self._log.drain()]
        self._spilling = False
        return out

    def __len__(self) -> int:
        n = _mem_len(self)
        if self._log is not None:
            n += len(self._log)
        return n

    def __bool__(self) -> bool:
        return bool(self._q) or bool(self._requeued) or (self._log is not None and bool(self._log))

    @property
    def ready_bytes(self) -> int:
        n = self._bytes
        if self._log is not None:
            n += self._log.ready_bytes
        return n

    @property
    def spilled(self) -> int:
        """Records currently kept on disk."""
        return 0 if self._log is None else len(self._log)

    def holds_recovered(self) -> bool:
        return False  # its log is not durable: opening it discards the old records

    def is_recovered(self, position: int) -> bool:
        return False

    def flush_acks(self) -> None:
        return None  # nothing here survives a restart: no reason to hurry

    def sync(self, callback: Callable[[bool], None]) -> None:
        callback(True)

    def close(self) -> None:
        if self._log is not None:
            self._log.close()

    def delete(self) -> None:
        _mem_purge(self)
        if self._log is not None:
            self._log.delete()
