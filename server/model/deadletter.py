"""Dead-lettering: the x-death header as RabbitMQ writes it, and cycle protection."""

from __future__ import annotations

import datetime
import logging
from typing import TYPE_CHECKING

from warren.protocol import table

if TYPE_CHECKING:
    from warren.server.model.message import Message
    from warren.server.model.queue import Queue

log = logging.getLogger("warren.deadletter")


def _s(v: object) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def routing_keys(msg: Message) -> list[str]:
    keys = [msg.routing_key]
    cc = msg.headers.get("CC")
    if isinstance(cc, list):
        keys.extend(_s(k) for k in cc)
    return keys


def dead_letter_copy(msg: Message, queue: Queue, reason: str, dlx: str, dlrk: str | None) -> tuple[Message, list[str]]:
    """A copy of ``msg`` with x-death updated; and the routing keys to publish it with."""
    # warren.protocol.table keeps every other header's wire type; the values added here
    # have RabbitMQ's types: count long ('l'), time timestamp ('T'), the rest longstr
    headers = msg.typed_headers()
    keys = routing_keys(msg)
    deaths = headers.get("x-death")
    deaths = list(deaths) if isinstance(deaths, list) else []
    now = datetime.datetime.now(tz=datetime.UTC).replace(microsecond=0)
    found = None
    for i, d in enumerate(deaths):
        if isinstance(d, dict) and _s(d.get("queue", "")) == queue.name and _s(d.get("reason", "")) == reason:
            found = i
            break
    if found is not None:
        d = dict(deaths.pop(found))
        count = d.get("count")
        if isinstance(count, int) and not isinstance(count, bool):
            # RabbitMQ keeps a signedint count signedint; anything else becomes a long
            keep_int = table.amqp_type(count) == "I" and count + 1 < 2**31
            d["count"] = table.signed_int(count + 1) if keep_int else table.long(count + 1)
        else:
            d["count"] = table.long(1)
        deaths.insert(0, d)
    else:
        d = {
            "count": table.long(1),
            "reason": reason,
            "queue": queue.name,
            "time": now,
            "exchange": msg.exchange,
            "routing-keys": list(keys),
        }
        if msg.props.expiration:
            d["original-expiration"] = msg.props.expiration
        deaths.insert(0, d)
    headers.setdefault("x-first-death-reason", reason)
    headers.setdefault("x-first-death-queue", queue.name)
    headers.setdefault("x-first-death-exchange", msg.exchange)
    headers["x-death"] = deaths
    headers.pop("BCC", None)
    if dlrk:
        headers.pop("CC", None)  # as RabbitMQ: the CC keys would be routed on again
    m = msg.copy()
    m.replace_headers(headers)
    if m.props.expiration is not None:
        m.set_property("expiration", None)
    m.expires_at = 0.0
    m.delivery_count = 0
    out_keys = [dlrk] if dlrk else keys
    m.set_route(dlx, out_keys[0])
    # the message keeps reporting the original exchange in x-death; deliveries show the DLX
    return m, out_keys


def is_cycle(msg: Message, target: Queue) -> bool:
    """True if delivering to ``target`` closes a dead-letter cycle with no rejection in it."""
    deaths = msg.headers.get("x-death")
    if not deaths:
        return False
    for d in deaths:  # newest first: only the deaths since the message last left target count
        if not isinstance(d, dict):
            continue
        if _s(d.get("reason", "")) == "rejected":
            return False
        if _s(d.get("queue", "")) == target.name:
            return True
    return False
