"""JSON views of messages held by delayed-message exchanges (``x-delayed-message``).

``GET /api/delayed[/{vhost}]`` lists every delayed exchange with its pending
count and next due time; ``GET /api/exchanges/{vhost}/{name}/delayed?limit=N``
shows the first ``N`` (default 100, at most 1000) held messages in due order
with their due times. Reading a held message is a random read of the
exchange's store (no cursor move, nothing acked), so looking never changes
what fires.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from warren.server.http.management.views import iso
from warren.server.model.exchanges import DelayedExchange

log = logging.getLogger("warren.management")

MAX_LIMIT = 1000


def summary(ex: DelayedExchange) -> dict[str, Any]:
    """One delayed exchange: pending count and the next due time (or None)."""
    nxt = ex.next_due_ms()
    return {
        "vhost": ex.vhost.name,
        "name": ex.name,
        "delayed_type": ex.inner.describe_type(),
        "durable": ex.durable,
        "pending": ex.pending_count,
        "next_due": iso(nxt / 1000.0) if nxt is not None else None,
        "next_due_in_ms": max(0, nxt - int(time.time() * 1000)) if nxt is not None else None,
        "fired": ex.fired,
    }


def pending(ex: DelayedExchange, limit: int) -> dict[str, Any]:
    """``summary`` plus the first ``limit`` held messages in due order."""
    now = int(time.time() * 1000)
    out = summary(ex)
    msgs = []
    for due, held in ex.held(min(limit, MAX_LIMIT)):
        item: dict[str, Any] = {"due": iso(due / 1000.0), "due_in_ms": max(0, due - now)}
        if held is not None:
            msg, _extra = held
            props = msg.properties
            item.update({
                "routing_key": msg.routing_key,
                "payload_bytes": len(msg.body),
                "message_id": getattr(props, "message_id", None),
                "delay": (props.headers or {}).get("x-delay"),
            })
        msgs.append(item)
    out["messages"] = msgs
    return out


def delayed_exchanges(vhosts: list[Any]) -> list[DelayedExchange]:
    return [ex for vh in vhosts for ex in list(vh.exchanges.values()) if isinstance(ex, DelayedExchange)]
