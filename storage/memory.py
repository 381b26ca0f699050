"""In-memory message store: a deque plus a sorted map of requeued records."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from sortedcontainers import SortedDict


class MemoryStore:
    """A FIFO lane kept in RAM; nothing survives a restart.

    Requeued records go to a ``SortedDict`` keyed by position: they are always
    older than anything still in the deque, so they are shifted first, in order.
    """

    __slots__ = ("_q", "_requeued", "_next", "_bytes")

    def __init__(self) -> None:
        self._q: deque[tuple[int, Any]] = deque()
        self._requeued: SortedDict = SortedDict()
        self._next = 1
        self._bytes = 0

    def push(self, record: Any) -> int:
        pos = self._next
        self._next = pos + 1
        self._q.append((pos, record))
        self._bytes += record.size
        return pos

    def shift(self) -> tuple[int, Any] | None:
        if self._requeued:
            item = self._requeued.popitem(0)
        elif self._q:
            item = self._q.popleft()
        else:
            return None
        self._bytes -= item[1].size
        return item

    def peek(self) -> tuple[int, Any] | None:
        if self._requeued:
            return self._requeued.peekitem(0)
        if self._q:
            return self._q[0]
        return None

    def requeue(self, position: int, record: Any, unchanged: bool = False) -> None:
        # RAM is the only copy: the record stays whatever ``unchanged`` says
        self._requeued[position] = record
        self._bytes += record.size

    def ack(self, position: int) -> None:
        return None

    def purge(self) -> int:
        n = len(self._q) + len(self._requeued)
        self._q.clear()
        self._requeued.clear()
        self._bytes = 0
        return n

    def drain(self) -> list[tuple[int, Any]]:
        """Take every ready record at once (for dead-lettering on delete)."""
        out = list(self._requeued.items()) + list(self._q)
        self._q.clear()
        self._requeued.clear()
        self._bytes = 0
        return out

    def __len__(self) -> int:
        return len(self._q) + len(self._requeued)

    def __bool__(self) -> bool:
        return bool(self._q) or bool(self._requeued)

    @property
    def ready_bytes(self) -> int:
        return self._bytes

    def holds_recovered(self) -> bool:
        return False

    def is_recovered(self, position: int) -> bool:
        return False

    def flush_acks(self) -> None:
        return None

    def sync(self, callback: Callable[[bool], None]) -> None:
        callback(True)

    def close(self) -> None:
        return None

    def delete(self) -> None:
        self.purge()
