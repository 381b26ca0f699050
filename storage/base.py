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
from typing import Any, Protocol


class Record(Protocol):
    """What a store needs to know about a record it keeps."""

    #: bytes the record costs (used for byte counts and limits)
    size: int
    #: True if the record must survive a restart (fsynced before confirm)
    persistent: bool


class MessageStore(Protocol):
    """One FIFO lane of records with per-record ack."""

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

    def __len__(self) -> int:
        """Number of ready records."""

    @property
    def ready_bytes(self) -> int:
        """Sum of ``size`` over ready records."""

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
