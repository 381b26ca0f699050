"""The publish pipeline's result and the publishers that are not channels.

Every way a message enters queues goes through :meth:`VHost.publish`
(``warren.server.model.vhost``): an AMQP basic.publish, the management API's
publish, a delayed message coming due, a dead-lettered message. It decides
once about delays, alternate exchanges (in routing), tracing, exchange
counters, refusals (reject-publish) and which stores must be synced before
a publisher confirm.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from warren.server.model.delivery import Session
    from warren.server.model.queue import Queue


class PublishResult:
    """What one publish did.

    A channel keeps one and passes it to every publish (no allocation on the hot
    path); ``sync`` is then the channel's set of stores to sync before its next
    confirm, which publishes add to.
    """

    __slots__ = ("queues", "refused", "delayed", "sync")

    def __init__(self, sync: set | None = None) -> None:
        #: the queues routing reached (for a held delayed message: the queues it would reach now)
        self.queues: Any = ()
        #: how many of them refused it (overflow reject-publish): a confirm is a nack
        self.refused = 0
        #: held by an x-delayed-message exchange, to be routed when due
        self.delayed = False
        #: stores that must be synced before the publish is confirmed (added to, never cleared here)
        self.sync: set = sync if sync is not None else set()

    @property
    def routed(self) -> bool:
        """A queue took it (or, held by a delayed exchange, one would take it now)."""
        return bool(self.queues) and (self.delayed or self.refused < len(self.queues))


class Publisher:
    """An origin that is not a channel (its trace fields are fixed)."""

    __slots__ = ("kind", "counted", "session", "_fields")

    def __init__(self, kind: str, counted: bool, fields: dict[str, Any]) -> None:
        self.kind = kind
        self.counted = counted
        self.session: Session | None = None
        self._fields = fields

    def trace_fields(self) -> dict[str, Any]:
        return dict(self._fields)


#: the management API's publish (RabbitMQ runs it over a channel: the exchange counts it)
MANAGEMENT = Publisher("management", True, {"connection": "management API", "channel": 0, "user": ""})
#: the firehose copying a publish or delivery to amq.rabbitmq.trace
FIREHOSE = Publisher("firehose", False, {"connection": "firehose", "channel": 0, "user": ""})
#: a delayed message coming due (counted when it was published)
DELAYED = Publisher("delayed", False, {"connection": "delayed", "channel": 0, "user": ""})


class DeadLetter(Publisher):
    """A message dead-lettered by ``queue`` for ``reason`` (not counted by the exchange, as RabbitMQ)."""

    __slots__ = ("queue", "reason")

    def __init__(self, queue: Queue, reason: str) -> None:
        super().__init__("dead_letter", False, {"queue": queue.name, "reason": reason})
        self.queue = queue
        self.reason = reason
