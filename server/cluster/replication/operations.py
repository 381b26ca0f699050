"""The operations a leader numbers and frames (mixed into :class:`Leader`).

Each store operation gets the next sequence number and is framed once; the frame goes
to the backlog (for catch-up) and to the pending list the next flush writes to every
live follower. Consecutive acks of one store are framed as one operation.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from warren.server.cluster.replication import wire

if TYPE_CHECKING:
    from collections.abc import Callable


class Operations:
    """Sequencing and framing; the state lives on the Leader (``leader.py``)."""

    seq: int
    _pending: list[bytes]
    _blog: list[bytes]
    _blog_base: int
    _blog_size: int
    backlog_bytes: int
    _scheduled: bool
    _acking: tuple[int, str, list[int]] | None
    _loop: asyncio.AbstractEventLoop | None
    _flush: Callable[[], None]

    def append(self, store: str, position: int, data: bytes) -> int:
        """A record appended to ``store`` at the leader's ``position``; returns its seq."""
        seq = self.seq + 1
        return self._emit(wire.op_append(wire.OP_APPEND, seq, store.encode(), position, data))

    def ack(self, store: str, position: int) -> int:
        """A record of ``store`` acked. Consecutive acks of one store (a consumer's acks
        read in one go) become one operation: its seq is taken now, its frame is made
        when another operation comes or at the flush, so the order is kept."""
        acking = self._acking
        if acking is not None:
            if acking[1] == store:
                acking[2].append(position)
                return acking[0]
            self._finish_acks()
        self.seq += 1
        self._acking = (self.seq, store, [position])
        if not self._scheduled:
            self._scheduled = True
            (self._loop or asyncio.get_running_loop()).call_soon(self._flush)
        return self.seq

    def _finish_acks(self) -> None:
        seq, store, positions = self._acking  # type: ignore[misc]
        self._acking = None
        fr = wire.frame(wire.op_ack(seq, store.encode(), positions))
        self._blog.append(fr)
        self._blog_size += len(fr)
        self._pending.append(fr)

    def purge(self, store: str, keep: list[int], upto: int) -> int:
        """Every record of ``store`` up to position ``upto`` (its last append) dropped but
        the unacked ones at ``keep``."""
        seq = self.seq + 1
        return self._emit(wire.op_purge(seq, store.encode(), keep, upto))

    def delete_store(self, store: str) -> int:
        seq = self.seq + 1
        return self._emit(wire.op_plain(wire.OP_DELETE, seq, store.encode()))

    def delayed(self, store: str, payload: bytes) -> int:
        """A change of ``store``'s delayed index (opaque here)."""
        seq = self.seq + 1
        return self._emit(wire.op_plain(wire.OP_DELAYED, seq, store.encode(), payload))

    def definitions(self, payload: bytes) -> int:
        """A change of the definitions the leader owns (opaque here)."""
        seq = self.seq + 1
        return self._emit(wire.op_plain(wire.OP_DEFINITIONS, seq, b"", payload))

    def _emit(self, body: bytes) -> int:
        if self._acking is not None:
            self._finish_acks()
        self.seq += 1
        fr = wire.frame(body)
        self._blog.append(fr)
        self._blog_size += len(fr)
        self._pending.append(fr)
        if not self._scheduled:
            # one write per follower per loop turn, whatever the turn produced
            self._scheduled = True
            loop = self._loop or asyncio.get_running_loop()
            loop.call_soon(self._flush)
        return self.seq

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
