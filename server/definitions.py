"""Definitions in RabbitMQ's JSON format: users, vhosts, permissions, policies,
exchanges, queues, bindings. Used for the durable definitions file, the
``--definitions`` start-up import and the management API."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from .auth import Permission, User
from .exchanges import Exchange
from .policies import Policy
from .queue import Queue

if TYPE_CHECKING:
    from .broker import Broker

log = logging.getLogger("warren.definitions")

VERSION = "3.10.8"  # the RabbitMQ release whose format and behaviour warren follows


def export_definitions(broker: Broker, durable_only: bool = True) -> dict[str, Any]:
    """Everything a restart must bring back (``durable_only``) or everything declared."""
    out: dict[str, Any] = {
        "rabbit_version": VERSION,
        "rabbitmq_version": VERSION,
        "product_name": "warren",
        "product_version": "0.1.0",
        "users": [],
        "vhosts": [],
        "permissions": [],
        "topic_permissions": [],
        "parameters": [],
        "global_parameters": [],
        "policies": [],
        "queues": [],
        "exchanges": [],
        "bindings": [],
    }
    for u in broker.users.values():
        out["users"].append(
            {
                "name": u.name,
                "password_hash": u.password_hash,
                "hashing_algorithm": "rabbit_password_hashing_sha256",
                "tags": list(u.tags),
                "limits": {},
            }
        )
        for vh, p in u.permissions.items():
            out["permissions"].append(
                {"user": u.name, "vhost": vh, "configure": p.configure, "write": p.write, "read": p.read}
            )
    for vh in broker.vhosts.values():
        out["vhosts"].append({"name": vh.name, "limits": [], "metadata": {"description": "", "tags": []}})
        for p in vh.policies.values():
            out["policies"].append(p.as_json())
        for ex in vh.exchanges.values():
            if not ex.name or ex.name.startswith("amq."):
                continue
            if durable_only and not ex.durable:
                continue
            out["exchanges"].append(
                {
                    "name": ex.name,
                    "vhost": vh.name,
                    "type": ex.describe_type(),
                    "durable": ex.durable,
                    "auto_delete": ex.auto_delete,
                    "internal": ex.internal,
                    "arguments": _jsonable(ex.arguments),
                }
            )
            for b in ex.bindings.values():
                dest = b.destination
                if durable_only and not dest.durable:
                    continue
                out["bindings"].append(
                    {
                        "source": ex.name,
                        "vhost": vh.name,
                        "destination": dest.name,
                        "destination_type": "exchange" if isinstance(dest, Exchange) else "queue",
                        "routing_key": b.routing_key,
                        "arguments": _jsonable(b.arguments),
                    }
                )
        for q in vh.queues.values():
            if q.exclusive or (durable_only and not q.durable):
                continue
            out["queues"].append(
                {
                    "name": q.name,
                    "vhost": vh.name,
                    "durable": q.durable,
                    "auto_delete": q.auto_delete,
                    "arguments": _jsonable(q.arguments),
                }
            )
    # bindings from amq.* exchanges are definitions too
    for vh in broker.vhosts.values():
        for ex in vh.exchanges.values():
            if ex.name.startswith("amq."):
                for b in ex.bindings.values():
                    if durable_only and not b.destination.durable:
                        continue
                    out["bindings"].append(
                        {
                            "source": ex.name,
                            "vhost": vh.name,
                            "destination": b.destination.name,
                            "destination_type": "exchange" if isinstance(b.destination, Exchange) else "queue",
                            "routing_key": b.routing_key,
                            "arguments": _jsonable(b.arguments),
                        }
                    )
    return out


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_jsonable(x) for x in v]
    if isinstance(v, bytes):
        return v.decode(errors="replace")
    if hasattr(v, "isoformat"):
        return v.isoformat()
    return v


def import_definitions(broker: Broker, data: dict[str, Any]) -> None:
    """Create what ``data`` describes (existing objects are left as they are)."""
    for u in data.get("users", []):
        tags = u.get("tags", [])
        if isinstance(tags, str):
            tags = [t for t in tags.split(",") if t]
        user = broker.users.get(u["name"])
        if user is None:
            user = User(u["name"], u.get("password_hash", ""), tags, {})
            broker.users[u["name"]] = user
        else:
            user.password_hash = u.get("password_hash", user.password_hash)
            user.tags = tags
    for v in data.get("vhosts", []):
        broker.add_vhost(v["name"])
    for p in data.get("permissions", []):
        user = broker.users.get(p["user"])
        if user is not None and p["vhost"] in broker.vhosts:
            user.permissions[p["vhost"]] = Permission(p.get("configure", ".*"), p.get("write", ".*"), p.get("read", ".*"))
    for p in data.get("policies", []):
        vh = broker.vhosts.get(p.get("vhost", "/"))
        if vh is None:
            continue
        vh.policies[p["name"]] = Policy(
            vh.name, p["name"], p["pattern"], dict(p.get("definition", {})), int(p.get("priority", 0)), p.get("apply-to", "all")
        )
    for e in data.get("exchanges", []):
        vh = broker.vhosts.get(e.get("vhost", "/"))
        if vh is None or e["name"] in vh.exchanges:
            continue
        cls = broker.exchange_type(e.get("type", "direct"))
        if cls is None:
            log.warning("skipping exchange %r of unknown type %r", e["name"], e.get("type"))
            continue
        try:
            ex = cls(vh, e["name"], bool(e.get("durable", True)), bool(e.get("auto_delete", False)),
                     bool(e.get("internal", False)), dict(e.get("arguments") or {}))
        except Exception as exc:  # invalid arguments in a hand-edited file
            log.warning("skipping exchange %r: %s", e["name"], exc)
            continue
        vh.add_exchange(ex)
    for q in data.get("queues", []):
        vh = broker.vhosts.get(q.get("vhost", "/"))
        if vh is None or q["name"] in vh.queues:
            continue
        broker.create_queue(vh, q["name"], bool(q.get("durable", True)), None,
                            bool(q.get("auto_delete", False)), dict(q.get("arguments") or {}))
    for b in data.get("bindings", []):
        vh = broker.vhosts.get(b.get("vhost", "/"))
        if vh is None:
            continue
        src = vh.exchanges.get(b["source"])
        if b.get("destination_type", "queue") == "exchange":
            dest: Any = vh.exchanges.get(b["destination"])
        else:
            dest = vh.queues.get(b["destination"])
        if src is None or dest is None or not src.name:
            continue
        src.bind(dest, b.get("routing_key", ""), dict(b.get("arguments") or {}))
    for vh in broker.vhosts.values():
        vh.reapply_policies()


__all__ = ["export_definitions", "import_definitions", "Queue"]
