"""Transactions of a channel (tx.select, tx.commit, tx.rollback).

In tx mode the channel buffers publishes (``Channel.tx_publishes``) and acks, nacks
and rejects (``Channel.tx_acks``, entries ``(kind, tag, multiple, requeue)`` with
kind 0 for an ack); commit applies them in order, rollback drops them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from warren.protocol import commands as C
from warren.server.core.errors import precondition

if TYPE_CHECKING:
    from warren.server.amqp.channel import Channel

#: ``tx_acks`` entry kinds
ACK, NACK = 0, 1


class TxMethods:
    """tx.select, tx.commit and tx.rollback: methods of :class:`Channel`, kept here."""

    def _tx_select(self: Channel, m: C.Tx.Select) -> None:
        if self.confirm:
            raise precondition("cannot switch from confirm to tx mode")
        self.tx = True
        self.send(C.Tx.SelectOk())


    def _tx_commit(self: Channel, m: C.Tx.Commit) -> None:
        if not self.tx:
            raise precondition("channel is not transactional")
        pubs, acks = self.tx_publishes, self.tx_acks
        self.tx_publishes, self.tx_acks = [], []
        for ex, rk, msg, mandatory, extra in pubs:
            self._route(ex, rk, msg, mandatory, extra)
        self.tx = False  # on_ack and on_nack buffer while the channel is transactional
        try:
            for kind, tag, multiple, requeue in acks:
                if kind == ACK:
                    self.on_ack(tag, multiple)
                else:
                    self.on_nack(tag, multiple, requeue)
        finally:
            self.tx = True
        self.send(C.Tx.CommitOk())


    def _tx_rollback(self: Channel, m: C.Tx.Rollback) -> None:
        if not self.tx:
            raise precondition("channel is not transactional")
        self.tx_publishes.clear()
        self.tx_acks.clear()
        self.send(C.Tx.RollbackOk())
