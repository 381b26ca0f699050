"""What a queue is, whatever its kind: the interface the publish pipeline, the
sessions (consumers, get, acks) and the management API rely on.

Every kind implements :class:`QueueKind`: classic (``model.queue.Queue``) and
quorum on one node (``model.quorum.QuorumQueue``) today; a stream (a log that
does not delete on ack, read from offsets) or a remote queue (one led by another
cluster node, a proxy that forwards publishes and deliveries) implement the same
methods. ``QUEUE_KINDS`` maps ``x-queue-type`` to the class that implements it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from warren.server.model.queue import Queue
from warren.server.model.quorum import QuorumQueue

if TYPE_CHECKING:
    from warren.server.model.consumer import Consumer
    from warren.server.model.delivery import Session
    from warren.server.model.message import Message
    from warren.server.model.policies import Policy
    from warren.server.model.vhost import VHost
    from warren.storage.base import MessageStore


@runtime_checkable
class QueueKind(Protocol):
    """A queue as the rest of the broker uses it."""

    # -- identity and declaration (management API, definitions, policies) ----------
    #: the x-queue-type value ("classic", "quorum"; "stream" later)
    kind: str
    #: quorum semantics (durable storage of every message, at-the-back requeue)
    quorum: bool
    vhost: VHost
    name: str
    durable: bool
    exclusive: bool
    exclusive_owner: Session | None
    auto_delete: bool
    arguments: dict
    #: the arguments with the applied policy's definition merged in
    effective: dict
    policy: Policy | None

    # -- storage ----------------------------------------------------------------------
    store: MessageStore
    #: persistent messages must be synced before they are confirmed
    durable_store: bool

    # -- state the sessions read ---------------------------------------------------
    consumers: list[Consumer]
    deleted: bool
    #: deliveries not yet acked
    unacked: int
    #: x-consumer-timeout in ms, if set
    consumer_timeout: int | None
    single_active: bool

    # -- the publish pipeline -----------------------------------------------------
    def publish(self, msg: Message) -> bool:
        """Take a (per-queue) copy of a message; False if refused (overflow reject-publish)."""
        ...

    def over_flow_mark(self) -> bool:
        """True when publishers to it should be paused (cheap, called per publish)."""
        ...

    # -- consumers and sessions ----------------------------------------------------
    def add_consumer(self, consumer: Consumer) -> None: ...

    def remove_consumer(self, consumer: Consumer) -> None: ...

    def active_consumer(self) -> Consumer | None:
        """The single active consumer, if the queue has one."""
        ...

    def schedule_dispatch(self) -> None:
        """Credit came back or a consumer appeared: deliver what can be delivered."""
        ...

    def get(self) -> tuple[int, Message] | None:
        """basic.get: the head message and its position, or None."""
        ...

    def ack(self, position: int) -> None: ...

    def requeue(self, position: int, msg: Message) -> None: ...

    def discard(self, position: int, msg: Message, reason: str) -> None:
        """Leave without an ack (reject/nack without requeue): dead-letter it."""
        ...

    # -- management and lifecycle ------------------------------------------------------
    def message_count(self) -> int: ...

    def purge(self) -> int: ...

    def configure(self, policy: Policy | None = None) -> None:
        """(Re)apply arguments and a policy."""
        ...

    def touch(self) -> None:
        """Activity: restart the x-expires countdown."""
        ...

    def close(self) -> None: ...


#: x-queue-type -> the class of that kind
QUEUE_KINDS: dict[str, type[Any]] = {"classic": Queue, "quorum": QuorumQueue}
