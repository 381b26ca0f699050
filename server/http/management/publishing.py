"""Message properties between AMQP and the management API's JSON (publish, get)."""

from __future__ import annotations

from datetime import UTC
from typing import Any

from pamqp import commands as C
from warren.server.http.management.common import bad_request
from warren.server.model.message import Message

_PROP_MAP = {
    "content_type": "content_type",
    "content_encoding": "content_encoding",
    "headers": "headers",
    "delivery_mode": "delivery_mode",
    "priority": "priority",
    "correlation_id": "correlation_id",
    "reply_to": "reply_to",
    "expiration": "expiration",
    "message_id": "message_id",
    "timestamp": "timestamp",
    "type": "message_type",
    "user_id": "user_id",
    "app_id": "app_id",
    "cluster_id": "cluster_id",
}



def _properties(p: dict[str, Any]) -> C.Basic.Properties:
    kw: dict[str, Any] = {}
    for k, v in p.items():
        attr = _PROP_MAP.get(k)
        if attr is None:
            raise bad_request(f"invalid property {k!r}")
        if attr in ("delivery_mode", "priority"):
            v = int(v)
        elif attr == "timestamp":
            from datetime import datetime

            v = datetime.fromtimestamp(int(v), UTC)
        elif attr == "headers":
            v = dict(v or {})
        else:
            v = str(v)
        kw[attr] = v
    return C.Basic.Properties(**kw)


def props_json(msg: Message) -> dict[str, Any]:
    props = msg.properties
    out: dict[str, Any] = {}
    for key, attr in _PROP_MAP.items():
        v = getattr(props, attr, None)
        if v is None:
            continue
        if key == "timestamp" and hasattr(v, "timestamp"):
            v = int(v.timestamp())
        out[key] = v
    return out
