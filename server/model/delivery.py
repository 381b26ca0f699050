"""What the model knows of sessions: small protocols, never the connection itself.

The AMQP layer (``warren.server.amqp``) implements these; the model calls them
to hand out deliveries, to cancel consumers, to pause and resume publishers and
to block connections on an alarm. They are for type checking only: the hot
path calls the methods directly, no adapter in between.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from warren.server.model.consumer import Consumer
    from warren.server.model.message import Message
    from warren.server.model.queue import Queue
    from warren.server.model.vhost import VHost


class Outlet(Protocol):
    """A session's output side, as a queue's dispatch loop sees it."""

    #: bytes written and not yet flushed; dispatch stops above ``flow.OUT_HIGH``
    out_bytes: int
    #: set by a queue that stopped dispatching for lack of room; the session resumes it
    dispatch_blocked: bool
    name: str
    user: Any


class DeliveryTarget(Protocol):
    """A channel that consumers belong to: it takes deliveries and tracks their acks."""

    conn: Outlet
    number: int
    vhost: VHost
    global_prefetch: int
    global_unacked: int

    def can_deliver(self) -> bool: ...

    def deliver(self, consumer: Consumer, queue: Queue, pos: int, msg: Message) -> None: ...

    def consumer_cancelled_by_server(self, consumer: Consumer) -> None: ...

    def trace_fields(self) -> dict[str, Any]: ...


class Session(Protocol):
    """An AMQP connection, as the model sees it (owner of exclusive queues, publisher)."""

    vhost: VHost | None
    user: Any
    opened: bool
    blocked: bool
    name: str
    channels: dict[int, Any]
    exclusive_queues: list[Queue]

    def close_by_broker(self, code: int = ..., text: str = ...) -> None: ...

    def set_blocked(self, blocked: bool, reason: str = "") -> None: ...

    def probe(self) -> None: ...

    def throttle(self, q: Queue) -> None: ...

    def unthrottle(self, q: Queue) -> None: ...


class Origin(Protocol):
    """Who published a message into the pipeline (``VHost.publish``).

    ``kind`` is ``"amqp"``, ``"management"``, ``"delayed"`` or ``"dead_letter"``;
    ``counted`` says whether the exchange's publish counters count it (as in
    RabbitMQ, only publishes that come through a channel do); ``session`` is the
    publishing connection to pause when a queue is over its flow mark, if any.
    """

    kind: str
    counted: bool
    session: Session | None

    def trace_fields(self) -> dict[str, Any]: ...
