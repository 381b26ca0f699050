"""Transactions of a channel (tx.select, tx.commit, tx.rollback).

In tx mode the channel buffers publishes (``Channel._tx_publishes``) and acks, nacks
and rejects (``Channel._tx_acks``, entries ``(kind, tag, multiple, requeue)`` with
kind 0 for an ack); commit applies them in order, rollback drops them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from warren.protocol import commands as C
from warren.server.core.errors import precondition

if TYPE_CHECKING:
    from warren.server.amqp.channel import Channel

#: ``_tx_acks`` entry kinds
ACK, NACK = 0, 1


def tx_select(ch: Channel, m: C.Tx.Select) -> None:
    if ch.confirm:
        raise precondition("cannot switch from confirm to tx mode")
    ch.tx = True
    ch.send(C.Tx.SelectOk())


def tx_commit(ch: Channel, m: C.Tx.Commit) -> None:
    if not ch.tx:
        raise precondition("channel is not transactional")
    pubs, acks = ch._tx_publishes, ch._tx_acks
    ch._tx_publishes, ch._tx_acks = [], []
    for ex, rk, msg, mandatory, extra in pubs:
        ch._route(ex, rk, msg, mandatory, extra)
    ch.tx = False  # on_ack and on_nack buffer while the channel is transactional
    try:
        for kind, tag, multiple, requeue in acks:
            if kind == ACK:
                ch.on_ack(tag, multiple)
            else:
                ch.on_nack(tag, multiple, requeue)
    finally:
        ch.tx = True
    ch.send(C.Tx.CommitOk())


def tx_rollback(ch: Channel, m: C.Tx.Rollback) -> None:
    if not ch.tx:
        raise precondition("channel is not transactional")
    ch._tx_publishes.clear()
    ch._tx_acks.clear()
    ch.send(C.Tx.RollbackOk())
