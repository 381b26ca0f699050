"""Publisher confirms of one channel: sequence numbers, fsync batches, acks and nacks.

The channel counts each publish (``seq``) and marks the tracker dirty; the connection
calls ``end_batch`` once per read. A read whose publishes reached no store that must
sync is acked at once (one Basic.Ack with ``multiple`` for the whole read); otherwise
its confirms wait in a ``Batch`` until every store it touched has synced. Batches
settle in order, so a later read never overtakes an earlier one's fsync.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

from warren.protocol import commands as C
from warren.protocol import hotpath
from warren.server.core.errors import precondition
from warren.server.model.publish import PublishResult

if TYPE_CHECKING:
    from warren.server.amqp.channel import Channel


class Batch:
    """The publishes of one read that await store syncs before they are confirmed.

    One per read, not per message: a slotted object costs nothing that matters here."""

    __slots__ = ("seq", "waiting", "ok", "started")

    def __init__(self, seq: int, waiting: int, started: float | None) -> None:
        #: the highest publish sequence number of the read
        self.seq = seq
        #: stores still to report their sync
        self.waiting = waiting
        #: False once a store failed its sync: the batch is nacked
        self.ok = True
        #: loop time the sync started (None: nothing to sync, only waits its turn)
        self.started = started


class ConfirmTracker:
    """Publisher-confirm state of one channel (``confirm.select``)."""

    __slots__ = ("ch", "seq", "acked", "dirty", "nacks", "sync", "result", "pending")

    def __init__(self, ch: Channel) -> None:
        self.ch = ch
        #: sequence number of the last publish (the client's delivery tag for it)
        self.seq = 0
        #: the highest sequence number confirmed (acked or nacked) to the client
        self.acked = 0
        #: publishes in the current read await end_batch
        self.dirty = False
        #: sequence numbers refused by a queue (overflow reject-publish) in this read
        self.nacks: list[int] = []
        #: stores that must sync before this read's publishes are confirmed; the channel's
        #: one PublishResult shares the set (the pipeline adds to it), so a publish
        #: allocates nothing for it; end_batch hands the set over and starts a new one
        self.sync: set = set()
        self.result = PublishResult(self.sync)
        self.pending: deque[Batch] = deque()

    def end_batch(self) -> None:
        """Called once per read: emit publisher confirms for what this read published."""
        if not self.dirty:
            return
        self.dirty = False
        ch = self.ch
        conn = ch.conn
        seq = self.seq
        if self.nacks:
            nacks = self.nacks
            self.nacks = []
            # acks before the first nack, then each nack on its own; as RabbitMQ, a nack
            # with nothing unconfirmed below it has multiple set, and requeue always
            for tag in nacks:
                below_confirmed = not self.pending
                if below_confirmed:
                    self._write_ack(tag - 1)
                conn.write(hotpath.confirm_nack_frame(ch.number, tag, below_confirmed, True))
                if not self.pending and tag > self.acked:
                    self.acked = tag
        if self.sync:
            stores = self.sync
            self.sync = self.result.sync = set()
            persistence = conn.broker.persistence
            if persistence.unsaved:
                # a new durable queue's definition must be on disk before its messages are confirmed
                stores.add(persistence)
            batch = Batch(seq, len(stores), conn.loop.time())
            self.pending.append(batch)
            for store in stores:
                # the fsync latency histogram is about message stores, not definitions saves
                fsync = store is not persistence
                store.sync(lambda ok=True, b=batch, f=fsync: self._synced(b, ok, f))
            return
        if self.pending:
            self.pending.append(Batch(seq, 0, None))
            return
        self._write_ack(seq)

    def _synced(self, batch: Batch, ok: bool, fsync: bool = False) -> None:
        conn = self.ch.conn
        totals = conn.broker.totals
        if fsync:
            totals.fsync.observe(conn.loop.time() - batch.started)
        batch.waiting -= 1
        if not ok:
            batch.ok = False
        pb = self.pending
        upto = 0
        while pb and pb[0].waiting <= 0:
            b = pb.popleft()
            if b.started is not None:
                totals.confirm.observe(conn.loop.time() - b.started)
            if not b.ok:
                if upto:
                    self._write_ack(upto)
                    upto = 0
                conn.write(hotpath.confirm_nack_frame(self.ch.number, b.seq, True, True))
                self.acked = b.seq
            else:
                upto = b.seq
        if upto:
            self._write_ack(upto)
        conn.flush_soon()

    def _write_ack(self, tag: int) -> None:
        if tag <= self.acked or self.ch.closing:
            return
        multiple = tag - self.acked > 1
        self.acked = tag
        self.ch.conn.write(hotpath.confirm_ack_frame(self.ch.number, tag, multiple))


def confirm_select(ch: Channel, m: Any) -> None:
    """confirm.select: from now on every publish of the channel is confirmed."""
    if ch.tx:
        raise precondition("cannot switch from tx to confirm mode")
    ch.confirm = True
    if not m.nowait:
        ch.send(C.Confirm.SelectOk())
