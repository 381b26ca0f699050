"""A consumer: a channel's subscription to one queue."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from warren.protocol.hotpath import deliver_prefix

if TYPE_CHECKING:
    from warren.server.model.delivery import DeliveryTarget
    from warren.server.model.queue import Queue


class Consumer:
    """Credit (prefetch) and identity of one Basic.Consume."""

    __slots__ = (
        "tag",
        "channel",
        "queue",
        "no_ack",
        "exclusive",
        "priority",
        "prefetch",
        "unacked",
        "arguments",
        "prefix",
        "delivered",
    )

    def __init__(
        self,
        tag: str,
        channel: DeliveryTarget,
        queue: Queue,
        no_ack: bool,
        exclusive: bool,
        prefetch: int,
        arguments: dict[str, Any],
        priority: int = 0,
    ) -> None:
        self.tag = tag
        self.channel = channel
        self.queue = queue
        self.no_ack = no_ack
        self.exclusive = exclusive
        self.prefetch = prefetch
        self.priority = priority
        self.unacked = 0
        self.arguments = arguments
        self.prefix = deliver_prefix(tag)
        self.delivered = 0

    def can_take(self) -> bool:
        """True if this consumer may be sent one more message now."""
        if self.prefetch and self.unacked >= self.prefetch:
            return False
        return self.channel.can_deliver()
