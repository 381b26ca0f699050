"""The storage interface the queue engine talks to.

A *message store* is one FIFO lane of records. Each record gets a monotonically
increasing integer *position* when pushed. ``shift`` hands out the record at the
read cursor (it becomes *unacked*: still stored, no longer ready); ``ack`` removes
it for good; ``requeue`` puts an unacked record back at its original place, ahead
of the cursor, so that it is shifted again before anything pushed after it.

Records are opaque to the store: the in-memory store keeps the caller's objects;
a persistent store encodes them with the codec it was given (``encode`` returns
bytes, ``decode`` rebuilds the object), so storage never learns AMQP.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable


class Record(Protocol):
    """What a store needs to know about a record it keeps."""

    #: bytes the record costs (used for byte counts and limits)
    size: int
    #: True if the record must survive a restart (fsynced before confirm)
    persistent: bool


@runtime_checkable
class MessageStore(Protocol):
    """One FIFO lane of records with per-record ack.

    Implemented by :class:`storage.memory.MemoryStore`,
    :class:`storage.spill.SpillStore`, :class:`storage.lanes.LanedStore` (and
    :class:`storage.log.LanedLogStore`) and :class:`storage.log.LogStore`; make
    one with :func:`storage.factory.open_store`. ``isinstance(x, MessageStore)``
    checks that every method is there (tests also compare signatures).
    """

    def push(self, record: Any) -> int:
        """Append a record; return its position."""

    def shift(self) -> tuple[int, Any] | None:
        """Take the next ready record (requeued ones first, lowest position first)."""

    def peek(self) -> tuple[int, Any] | None:
        """The record ``shift`` would return, without taking it."""

    def requeue(self, position: int, record: Any, unchanged: bool = False) -> None:
        """Return an unacked record to its original place. ``unchanged`` (the record
        is still what was pushed) lets a disk-backed store drop it from RAM and read
        it back when it is shifted again."""

    def ack(self, position: int) -> None:
        """Forget an unacked record for good."""

    def purge(self) -> int:
        """Drop every ready record (not the unacked ones); return how many."""

    def drain(self) -> list[tuple[int, Any]]:
        """Take every ready record at once (they become unacked, as with ``shift``)."""

    def __len__(self) -> int:
        """Number of ready records."""

    def __bool__(self) -> bool:
        """True if any record is ready (cheaper than ``len`` for some stores)."""

    @property
    def ready_bytes(self) -> int:
        """Sum of ``size`` over ready records."""

    def holds_recovered(self) -> bool:
        """True if the store holds records written before the last restart."""

    def is_recovered(self, position: int) -> bool:
        """True if the record at ``position`` was written before the last restart
        (it may have been delivered already: the broker marks it redelivered)."""

    def flush_acks(self) -> None:
        """Write buffered acks to disk now (no fsync); a no-op for stores in RAM."""

    def sync(self, callback: Callable[[bool], None]) -> None:
        """Call ``callback(ok)`` (on the event loop) once everything pushed so far is durable.

        ``ok`` is False if a write or fsync failed: the broker should then nack
        what it was about to confirm. Stores that keep nothing on disk call
        ``callback(True)`` at once.
        """

    def close(self) -> None:
        """Release files and memory; data stays on disk (if any)."""

    def delete(self) -> None:
        """Close and remove everything this store holds on disk."""
