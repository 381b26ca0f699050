"""The operations a leader numbers and frames (mixed into :class:`Leader`).

Each store operation gets the next sequence number and is framed once; the frame goes
to the backlog (for catch-up) and to the pending list the next flush writes to every
live follower. Consecutive appends, or acks, of one store are framed as one operation:
a follower then parses, checks and applies one frame per store and loop turn, not one
per message.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from warren.server.cluster.replication import wire

if TYPE_CHECKING:
    from collections.abc import Callable


#: longest a follower waits for acks when no publish comes to carry them (seconds)
ACK_DELAY = 0.01


class _Batch:
    """Consecutive appends or acks of one store, framed as one operation when it ends."""

    __slots__ = ("kind", "seq", "store", "items")

    def __init__(self, kind: int, seq: int, store: str) -> None:
        self.kind = kind
        self.seq = seq
        self.store = store
        #: appends: record heads and bytes, alternating; acks: positions
        self.items: list[Any] = []


class Operations:
    """Sequencing and framing; the state lives on the Leader (``leader.py``)."""

    seq: int
    _pending: list[bytes]
    _blog: list[bytes]
    _blog_base: int
    _blog_size: int
    backlog_bytes: int
    _scheduled: bool
    #: a flush of non-urgent operations (acks) due within ACK_DELAY
    _late: asyncio.TimerHandle | None
    _batch: _Batch | None
    _loop: asyncio.AbstractEventLoop | None
    _flush: Callable[[], None]

    def append(self, store: str, position: int, data: bytes) -> int:
        """A record appended to ``store`` at the leader's ``position``; returns its seq.
        Consecutive appends to one store (a loop turn's publishes) become one operation."""
        batch = self._batch
        if batch is None or batch.kind != wire.OP_APPEND or batch.store != store:
            batch = self._open_batch(wire.OP_APPEND, store)
        items = batch.items
        items.append(wire.record_head(len(data), position))
        items.append(data)
        return batch.seq

    def ack(self, store: str, position: int) -> int:
        """A record of ``store`` acked. Consecutive acks of one store (a consumer's acks
        read in one go) become one operation. Acks are not urgent: nothing waits for them
        (an ack a follower lacks at a failover only means a redelivery), so they ride
        with the next append, or go within ``ACK_DELAY``: a flush of acks alone would
        cost each follower a wakeup and an fsync that the next publishes queue behind."""
        batch = self._batch
        if batch is None or batch.kind != wire.OP_ACK or batch.store != store:
            batch = self._open_batch(wire.OP_ACK, store, urgent=False)
        batch.items.append(position)
        return batch.seq

    def purge(self, store: str, keep: list[int], upto: int) -> int:
        """Every record of ``store`` up to position ``upto`` (its last append) dropped but
        the unacked ones at ``keep``."""
        return self._emit(lambda seq: wire.op_purge(seq, store.encode(), keep, upto))

    def delete_store(self, store: str) -> int:
        return self._emit(lambda seq: wire.op_plain(wire.OP_DELETE, seq, store.encode()))

    def delayed(self, store: str, payload: bytes) -> int:
        """A change of ``store``'s delayed index (opaque here)."""
        return self._emit(lambda seq: wire.op_plain(wire.OP_DELAYED, seq, store.encode(), payload))

    def definitions(self, payload: bytes) -> int:
        """A change of the definitions the leader owns (opaque here)."""
        return self._emit(lambda seq: wire.op_plain(wire.OP_DEFINITIONS, seq, b"", payload))

    def _open_batch(self, kind: int, store: str, urgent: bool = True) -> _Batch:
        # its seq is taken now, its frame made when another operation comes or at the
        # flush: the order of operations is kept
        if self._batch is not None:
            self._finish_batch()
        self.seq += 1
        batch = self._batch = _Batch(kind, self.seq, store)
        if urgent:
            self.flush_soon()
        else:
            self._schedule_late()
        return batch

    def _finish_batch(self) -> None:
        batch = self._batch
        assert batch is not None
        self._batch = None
        sid = batch.store.encode()
        items = batch.items
        if batch.kind == wire.OP_APPEND:
            self._queue(wire.op_records(wire.OP_APPEND, batch.seq, sid, len(items) // 2, items))
        else:
            self._queue(wire.op_ack(batch.seq, sid, items))

    def _emit(self, body_of: Callable[[int], bytes]) -> int:
        """An operation on its own: ``body_of(seq)`` frames it, after the open batch."""
        if self._batch is not None:
            self._finish_batch()
        self.seq += 1
        self._queue(body_of(self.seq))
        self.flush_soon()
        return self.seq

    def _queue(self, body: bytes) -> None:
        fr = wire.frame(body)
        self._blog.append(fr)
        self._blog_size += len(fr)
        self._pending.append(fr)

    def flush_soon(self) -> None:
        """Write what is pending to the followers when this loop turn ends: one write per
        follower per loop turn, whatever the turn produced."""
        if not self._scheduled:
            self._scheduled = True
            (self._loop or asyncio.get_running_loop()).call_soon(self._flush)

    def _schedule_late(self) -> None:
        if not self._scheduled and self._late is None:
            self._late = (self._loop or asyncio.get_running_loop()).call_later(ACK_DELAY, self._flush)

    def _trim_backlog(self) -> None:
        if self._blog_size <= self.backlog_bytes:
            return
        cut = 0
        size = self._blog_size
        blog = self._blog
        while size > self.backlog_bytes * 3 // 4 and cut < len(blog):
            size -= len(blog[cut])
            cut += 1
        del blog[:cut]
        self._blog_base += cut
        self._blog_size = size
