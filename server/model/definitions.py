"""Definitions in RabbitMQ's JSON format: users, vhosts, permissions, policies,
exchanges, queues, bindings. Used for the durable definitions file, the
``--definitions`` start-up import and the management API."""

from __future__ import annotations

import decimal
import logging
from typing import TYPE_CHECKING, Any

from warren.server.model.auth import Permission, TopicPermission, User
from warren.server.model.exchanges import Exchange
from warren.server.model.limits import USER_LIMITS, VHOST_LIMITS, valid_limits
from warren.server.model.policies import Policy
from warren.server.model.queue import Queue
from warren.storage.definitions import dumps

if TYPE_CHECKING:
    from warren.server.model.node import Node

log = logging.getLogger("warren.definitions")

VERSION = "3.10.8"  # the RabbitMQ release whose format and behaviour warren follows


def _header() -> dict[str, Any]:
    return {
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


def _exchange_def(ex: Exchange, vhost: str) -> dict[str, Any]:
    return {
        "name": ex.name,
        "vhost": vhost,
        "type": ex.describe_type(),
        "durable": ex.durable,
        "auto_delete": ex.auto_delete,
        "internal": ex.internal,
        "arguments": _jsonable(ex.arguments),
    }


def _binding_def(ex: Exchange, b: Any, vhost: str) -> dict[str, Any]:
    return {
        "source": ex.name,
        "vhost": vhost,
        "destination": b.destination.name,
        "destination_type": "exchange" if isinstance(b.destination, Exchange) else "queue",
        "routing_key": b.routing_key,
        "arguments": _jsonable(b.arguments),
    }


def _queue_def(q: Queue, vhost: str) -> dict[str, Any]:
    return {
        "name": q.name,
        "vhost": vhost,
        "durable": q.durable,
        "auto_delete": q.auto_delete,
        "arguments": _jsonable(q.arguments),
    }


def _walk(broker: Node, durable_only: bool, out: dict[str, Any], queue, exchange, binding) -> None:
    """Fill ``out`` with users, vhosts, permissions and policies; hand each exchange,
    binding and queue to ``exchange(ex, vhost)``, ``binding(ex, b, vhost)``, ``queue(q, vhost)``."""
    for u in broker.users.values():
        out["users"].append(
            {
                "name": u.name,
                "password_hash": u.password_hash,
                "hashing_algorithm": "rabbit_password_hashing_sha256",
                "tags": list(u.tags),
                "limits": dict(u.limits),
            }
        )
        for vh, p in u.permissions.items():
            out["permissions"].append(
                {"user": u.name, "vhost": vh, "configure": p.configure, "write": p.write, "read": p.read}
            )
        for vh, table in u.topic_permissions.items():
            for ex, tp in table.items():
                out["topic_permissions"].append(tp.as_json(u.name, vh, ex))
    for vh in broker.vhosts.values():
        out["vhosts"].append({"name": vh.name, "limits": [], "metadata": {"description": "", "tags": []}})
        if vh.limits:
            out["parameters"].append(
                {"value": dict(vh.limits), "vhost": vh.name, "component": "vhost-limits", "name": "limits"}
            )
        for p in vh.policies.values():
            out["policies"].append(p.as_json())
        for ex in vh.exchanges.values():
            if not ex.name or ex.name.startswith("amq."):
                continue
            if durable_only and not ex.durable:
                continue
            exchange(ex, vh.name)
            for b in ex.bindings.values():
                if durable_only and not b.destination.durable:
                    continue
                binding(ex, b, vh.name)
        for q in vh.queues.values():
            if q.exclusive or (durable_only and not q.durable):
                continue
            queue(q, vh.name)
    # bindings from amq.* exchanges are definitions too
    for vh in broker.vhosts.values():
        for ex in vh.exchanges.values():
            if ex.name.startswith("amq."):
                for b in ex.bindings.values():
                    if durable_only and not b.destination.durable:
                        continue
                    binding(ex, b, vh.name)


def export_definitions(broker: Node, durable_only: bool = True) -> dict[str, Any]:
    """Everything a restart must bring back (``durable_only``) or everything declared."""
    out = _header()
    _walk(
        broker,
        durable_only,
        out,
        lambda q, vh: out["queues"].append(_queue_def(q, vh)),
        lambda ex, vh: out["exchanges"].append(_exchange_def(ex, vh)),
        lambda ex, b, vh: out["bindings"].append(_binding_def(ex, b, vh)),
    )
    return out


def durable_definitions_payload(broker: Node) -> bytes:
    """The definitions file's bytes: ``export_definitions(durable_only=True)`` as JSON.

    Queues, exchanges and bindings never change once declared, so each one's JSON
    is encoded once and kept on the object: a save with 10k queues joins 10k
    strings instead of building and encoding 10k dicts.
    """
    out = _header()
    queues: list[str] = []
    exchanges: list[str] = []
    bindings: list[str] = []

    def queue(q: Queue, vh: str) -> None:
        j = q.definition_json
        if j is None:
            j = q.definition_json = dumps(_queue_def(q, vh))
        queues.append(j)

    def exchange(ex: Exchange, vh: str) -> None:
        j = ex.definition_json
        if j is None:
            j = ex.definition_json = dumps(_exchange_def(ex, vh))
        exchanges.append(j)

    def binding(ex: Exchange, b: Any, vh: str) -> None:
        j = b.json
        if j is None:
            j = b.json = dumps(_binding_def(ex, b, vh))
        bindings.append(j)

    _walk(broker, True, out, queue, exchange, binding)
    del out["queues"], out["exchanges"], out["bindings"]
    head = dumps(out)[:-1]  # without its closing brace
    return (
        f'{head},"queues":[{",".join(queues)}],"exchanges":[{",".join(exchanges)}],'
        f'"bindings":[{",".join(bindings)}]}}'
    ).encode()


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_jsonable(x) for x in v]
    if isinstance(v, bytes | bytearray):  # non-UTF-8 longstr or byte array ('x')
        return bytes(v).decode(errors="replace")
    if hasattr(v, "isoformat"):
        return v.isoformat()
    if isinstance(v, decimal.Decimal):
        return float(v)
    return v


def import_definitions(broker: Node, data: dict[str, Any]) -> None:
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
        limits = u.get("limits") or {}
        if isinstance(limits, dict):
            user.limits = valid_limits(limits, USER_LIMITS)
    for v in data.get("vhosts", []):
        broker.add_vhost(v["name"])
    for prm in data.get("parameters", []):
        # RabbitMQ keeps vhost limits as a runtime parameter of component vhost-limits
        vh = broker.vhosts.get(prm.get("vhost", "/"))
        if vh is not None and prm.get("component") == "vhost-limits" and isinstance(prm.get("value"), dict):
            vh.limits = valid_limits(prm["value"], VHOST_LIMITS)
    for p in data.get("permissions", []):
        user = broker.users.get(p["user"])
        if user is not None and p["vhost"] in broker.vhosts:
            user.permissions[p["vhost"]] = Permission(p.get("configure", ".*"), p.get("write", ".*"), p.get("read", ".*"))
    for tp in data.get("topic_permissions", []):
        user = broker.users.get(tp.get("user", ""))
        if user is not None and tp.get("vhost") in broker.vhosts and "exchange" in tp:
            user.topic_permissions.setdefault(tp["vhost"], {})[tp["exchange"]] = TopicPermission(
                tp.get("write", ".*"), tp.get("read", ".*")
            )
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
