"""Replies to topology methods that wait until the definitions they changed are saved.

In a cluster the definitions (durable exchanges, queues, bindings) are mirrored to
etcd by the leader. RabbitMQ answers ``queue.declare-ok`` once the queue is in its
replicated metadata store; warren answers a topology method that changed a durable
definition once ``Persistence.sync`` reports the change saved (the local file, then
etcd): a client that got declare-ok finds its queue on whichever node leads next.

While such a reply waits, the channel's later replies wait behind it, so a client
sees them in the order it sent the methods. A save that fails (etcd unreachable,
the leadership lost) closes the connection with 541 INTERNAL_ERROR: the change is
not known to be kept, and the client (reconnecting) declares again. Single-node
warren saves in the background as before (publisher confirms wait for the save).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from warren.protocol import commands as C
from warren.protocol.constants import INTERNAL_ERROR
from warren.protocol.errors import AMQPError
from warren.server.core.errors import ConnectionError_

if TYPE_CHECKING:
    from warren.server.amqp.channel import Channel

#: methods that may change a durable definition (the others never wait)
TOPOLOGY = frozenset({
    C.Exchange.Declare, C.Exchange.Delete, C.Exchange.Bind, C.Exchange.Unbind,
    C.Queue.Declare, C.Queue.Delete, C.Queue.Bind, C.Queue.Unbind,
})


class HeldReplies:
    """The replies of one channel held until definition saves are done (module docstring)."""

    __slots__ = ("ch", "methods", "saves")

    def __init__(self, ch: Channel) -> None:
        self.ch = ch
        self.methods: list[Any] = []
        #: saves this channel's replies still wait for
        self.saves = 0

    def after(self, changed: bool) -> None:
        """A topology method ran: if it changed a definition, its reply (and what follows)
        waits for the save; else what is held goes out unless a save is still awaited."""
        if changed:
            self.saves += 1
            self.ch.conn.broker.persistence.sync(self._saved)
        elif not self.saves:
            self.release()

    def _saved(self, ok: bool) -> None:
        self.saves -= 1
        ch = self.ch
        if not ok:
            self.methods.clear()
            if ch.conn.channels.get(ch.number) is ch:
                ch.conn.connection_error(ConnectionError_(
                    INTERNAL_ERROR, "INTERNAL_ERROR - the definitions could not be saved", 0, 0))
            return
        if not self.saves:
            self.release()

    def release(self) -> None:
        """Send what is held, in order (nothing if the channel is gone)."""
        ch = self.ch
        methods, self.methods = self.methods, []
        if ch.held is self:
            ch.held = None
        if ch.closing or ch.conn.channels.get(ch.number) is not ch:
            return  # a channel closed meanwhile takes no more replies
        for m in methods:
            ch.conn.send_method(ch.number, m)


def run_topology(ch: Channel, handler: Callable[[Channel, Any], None], m: Any) -> None:
    """Run a topology method's handler; in a cluster, its reply (and the channel's later
    ones) waits until a definition it changed is saved. A ``nowait`` method has no reply
    and its client does not wait: nothing is held for it."""
    persistence = ch.conn.broker.persistence
    if persistence.mirror is None or getattr(m, "nowait", False):
        handler(ch, m)
        return
    held = ch.held = ch.held or HeldReplies(ch)
    before = persistence.changes
    try:
        handler(ch, m)
    except AMQPError:
        if not held.saves:
            held.release()  # the replies before the error, then its close
        raise
    held.after(persistence.changes != before)
