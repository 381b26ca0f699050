"""Quorum queues on one node (``x-queue-type: quorum``).

What differs from a classic queue: every message is stored durably whatever its
delivery mode, every delivery carries ``x-delivery-count`` (0 the first time),
and a returned message goes to the back of the queue, as RabbitMQ's quorum
queues do. Replication across nodes is the cluster's job (server/cluster).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from warren.server.model.queue import Queue

if TYPE_CHECKING:
    from warren.server.model.message import Message


class QuorumQueue(Queue):
    """A quorum queue on one node."""

    kind = "quorum"
    quorum = True

    def _return(self, position: int, msg: Message) -> None:
        self._requeue_at_back(position, msg)

    def _requeue_at_back(self, position: int, msg: Message) -> None:
        """A quorum queue puts a returned message behind the others: a new record.

        The old record is acked only once the new one is durable, so a crash in
        between redelivers it twice rather than never.
        """
        msg.persistent = True
        self._push(msg)
        store = self.store
        if self.durable_store:

            def durable(ok: bool) -> None:
                # not written: keep the old record, which comes back after a restart
                if ok and not self.deleted:
                    store.ack(position)
                    # now, not at the next background flush: a crash in between
                    # would bring back the old copy as well
                    store.flush_acks()

            store.sync(durable)
        else:
            store.ack(position)
