"""Virtual host and user limits (RabbitMQ's ``vhost-limits`` and user limits).

A vhost may cap its connections (``max-connections``) and queues
(``max-queues``); a user may cap its connections and its channels across all
its connections (``max-connections``, ``max-channels``). A negative value means
no limit, 0 means none allowed. The texts of the refusals are RabbitMQ 3.10's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from warren.protocol.constants import NOT_ALLOWED
from warren.server.core.errors import ConnectionError_, precondition

if TYPE_CHECKING:
    from warren.server.model.auth import User
    from warren.server.model.node import Node
    from warren.server.model.vhost import VHost

VHOST_LIMITS = ("max-connections", "max-queues")
USER_LIMITS = ("max-connections", "max-channels")


def validate(name: str, value: Any, known: tuple[str, ...]) -> str | None:
    """None if ``name: value`` is a valid limit, else the management API's reason text."""
    if name not in known:
        return f"Validation failed\n\nUnrecognised terms [{{<<\"{name}\">>,{value}}}] in limits\n"
    if isinstance(value, bool) or not isinstance(value, int):
        shown = f'<<"{value}">>' if isinstance(value, str) else value
        return f"Validation failed\n\n{name} should be a number, actually was {shown}\n"
    return None


def valid_limits(limits: dict[str, Any], known: tuple[str, ...]) -> dict[str, int]:
    """The valid entries of ``limits`` (a hand-edited definitions file may hold others)."""
    return {k: v for k, v in limits.items() if validate(k, v, known) is None}


def _limit(limits: dict[str, int], name: str) -> int | None:
    v = limits.get(name)
    return v if v is not None and v >= 0 else None


def check_connection(broker: Node, vhost: VHost, user: User) -> None:
    """At Connection.Open: 530 if the vhost's or the user's connection limit is reached."""
    lim = _limit(vhost.limits, "max-connections")
    if lim is not None and sum(1 for c in broker.connections if c.vhost is vhost and c.opened) >= lim:
        raise ConnectionError_(
            NOT_ALLOWED,
            f"access to vhost '{vhost.name}' refused for user '{user.name}': connection limit ({lim}) is reached",
            10,
            40,
        )
    lim = _limit(user.limits, "max-connections")
    if lim is not None and sum(1 for c in broker.connections if c.user is user and c.opened) >= lim:
        raise ConnectionError_(
            NOT_ALLOWED, f"connection refused for user '{user.name}': user connection limit ({lim}) is reached", 10, 40
        )


def check_channel(broker: Node, user: User) -> None:
    """At Channel.Open: 530 (closing the connection) if the user's channel limit is reached."""
    lim = _limit(user.limits, "max-channels")
    if lim is not None and sum(len(c.channels) for c in broker.connections if c.user is user) >= lim:
        raise ConnectionError_(
            NOT_ALLOWED,
            f"number of channels opened for user '{user.name}' has reached the maximum allowed user limit of ({lim})",
            20,
            10,
        )


def check_queue(vhost: VHost, name: str) -> None:
    """Before a new queue is made: 406 if the vhost's queue limit is reached."""
    lim = _limit(vhost.limits, "max-queues")
    if lim is not None and len(vhost.queues) >= lim:
        raise precondition(f"cannot declare queue '{name}': queue limit in vhost '{vhost.name}' ({lim}) is reached")
