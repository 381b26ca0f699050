"""Queue columns read straight off the queue (``CHEAP``): ``/api/queues`` sorted by
one of them is paged by ``.listing`` before any queue is turned into JSON, so a
page of 100 out of 10,000 queues builds 100 queue objects."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from warren.server.model.queue import Queue

CHEAP: dict[str, Callable[[Queue], Any]] = {
    "name": lambda q: q.name,
    "vhost": lambda q: q.vhost.name,
    "messages": lambda q: len(q.store) + q.unacked,
    "messages_ready": lambda q: len(q.store),
    "messages_unacknowledged": lambda q: q.unacked,
    "consumers": lambda q: len(q.consumers),
    "durable": lambda q: q.durable,
    "auto_delete": lambda q: q.auto_delete,
    "exclusive": lambda q: q.exclusive,
}
