"""The cluster's definitions in etcd: one key per object, watched by every node.

Objects are in RabbitMQ's definitions JSON format (the shape server/definitions.py imports and
exports), one etcd key each under ``definitions/<kind>/<identity>``, where the identity is
the object's natural key (a queue: vhost + name; a binding: vhost, source, destination type,
destination, routing key and a digest of its arguments). Limits travel as RabbitMQ exports
them: vhost limits as ``parameters`` (component ``vhost-limits``), user limits inside ``users``.
Message bodies never go here.

A node loads the whole set with ``load()`` and then follows ``watch(revision + 1)``; writes may
be fenced by the writer's leadership so a deposed leader cannot change definitions.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from warren.server.cluster import keys
from warren.server.cluster.election import Fenced, Leadership, fence
from warren.server.cluster.etcd import Etcd, WatchCompacted, op_delete, op_put

#: operations per etcd transaction (etcd's default --max-txn-ops is 128)
TXN_OPS = 100


class DefinitionError(ValueError):
    """An object lacks a field its kind is identified by, or the kind is unknown."""


def _args_digest(arguments: Any) -> str:
    canonical = json.dumps(arguments or {}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _fields(*names: str) -> Callable[[dict[str, Any]], tuple[str, ...]]:
    def identity(obj: dict[str, Any]) -> tuple[str, ...]:
        try:
            return tuple(str(obj[n]) for n in names)
        except KeyError as e:
            raise DefinitionError(f"definition lacks field {e.args[0]!r}") from None

    return identity


def _binding(obj: dict[str, Any]) -> tuple[str, ...]:
    base = _fields("vhost", "source", "destination_type", "destination", "routing_key")(obj)
    return (*base, _args_digest(obj.get("arguments")))


# kind (as in RabbitMQ's definitions file) -> the fields that identify one object of it
IDENTITY: dict[str, Callable[[dict[str, Any]], tuple[str, ...]]] = {
    "users": _fields("name"),
    "vhosts": _fields("name"),
    "permissions": _fields("user", "vhost"),
    "topic_permissions": _fields("user", "vhost", "exchange"),
    "parameters": _fields("vhost", "component", "name"),
    "global_parameters": _fields("name"),
    "policies": _fields("vhost", "name"),
    "operator_policies": _fields("vhost", "name"),
    "exchanges": _fields("vhost", "name"),
    "queues": _fields("vhost", "name"),
    "bindings": _binding,
}


def identity(kind: str, obj: dict[str, Any]) -> tuple[str, ...]:
    if kind not in IDENTITY:
        raise DefinitionError(f"unknown definition kind {kind!r}")
    return IDENTITY[kind](obj)


@dataclass(frozen=True, slots=True)
class DefinitionChange:
    """One object put or deleted; on delete ``obj`` is the object as it was."""

    kind: str
    op: str  # "put" | "delete"
    obj: dict[str, Any]
    revision: int


@dataclass(frozen=True, slots=True)
class DefinitionsReset:
    """History was compacted past the watcher: here is the whole set again; replace yours."""

    definitions: dict[str, list[dict[str, Any]]]
    revision: int


class ClusterDefinitions:
    """Put, delete, load and watch the definitions of one cluster."""

    def __init__(self, etcd: Etcd, cluster: str) -> None:
        self.etcd = etcd
        self.cluster = cluster
        self.prefix = keys.definitions_prefix(cluster)

    def key(self, kind: str, obj: dict[str, Any]) -> str:
        parts = "/".join(keys.part(p) for p in identity(kind, obj))
        return f"{self.prefix}{kind}/{parts}"

    def _kind_of(self, key: str) -> str:
        return key[len(self.prefix):].split("/", 1)[0]

    async def _write(self, op: Any, fenced_by: Leadership | None) -> int:
        if fenced_by is None:
            res = await self.etcd.txn([], [op])
        else:
            res = await self.etcd.txn([fence(self.cluster, fenced_by)], [op])
            if not res.succeeded:
                raise Fenced(f"node {fenced_by.node} is no longer leader: definition not written")
        return res.revision

    async def put(self, kind: str, obj: dict[str, Any], *, fenced_by: Leadership | None = None) -> int:
        """Create or replace one object; returns the revision of the change."""
        value = json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()
        return await self._write(op_put(self.key(kind, obj), value), fenced_by)

    async def delete(self, kind: str, obj: dict[str, Any], *, fenced_by: Leadership | None = None) -> int:
        """Delete one object (only its identifying fields are needed)."""
        return await self._write(op_delete(self.key(kind, obj)), fenced_by)

    def keyed(self, document: dict[str, Any]) -> dict[str, bytes]:
        """A definitions document (as a definitions file holds it) as etcd keys and values."""
        out: dict[str, bytes] = {}
        for kind in IDENTITY:
            for obj in document.get(kind) or ():
                out[self.key(kind, obj)] = json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()
        return out

    async def replace(
        self, document: dict[str, Any], known: dict[str, bytes], *, fenced_by: Leadership | None = None
    ) -> dict[str, bytes]:
        """Make etcd hold ``document``, given that it holds ``known`` (what the last call
        returned, or what ``load`` read): only changed keys are written, in fenced
        transactions of at most ``TXN_OPS`` operations. Returns what etcd now holds."""
        wanted = self.keyed(document)
        ops = [op_put(k, v) for k, v in wanted.items() if known.get(k) != v]
        ops += [op_delete(k) for k in known if k not in wanted]
        for i in range(0, len(ops), TXN_OPS):
            chunk = ops[i : i + TXN_OPS]
            if fenced_by is None:
                await self.etcd.txn([], chunk)
                continue
            res = await self.etcd.txn([fence(self.cluster, fenced_by)], chunk)
            if not res.succeeded:
                raise Fenced(f"node {fenced_by.node} is no longer leader: definitions not written")
        return wanted

    async def load(self) -> tuple[dict[str, list[dict[str, Any]]], int]:
        """Every object, grouped by kind as in a definitions file, and the revision read at."""
        found, revision = await self.etcd.get_prefix(self.prefix)
        out: dict[str, list[dict[str, Any]]] = {kind: [] for kind in IDENTITY}
        for kv in found:
            out.setdefault(self._kind_of(kv.key), []).append(json.loads(kv.value))
        return out, revision

    async def watch(self, start_revision: int) -> AsyncIterator[DefinitionChange | DefinitionsReset]:
        """Every change from ``start_revision`` on; a DefinitionsReset if history was compacted."""
        revision = start_revision
        while True:
            try:
                async for ev in self.etcd.watch_prefix(self.prefix, revision, prev_kv=True):
                    revision = ev.revision + 1
                    kind = self._kind_of(ev.kv.key)
                    if ev.kind == "put":
                        yield DefinitionChange(kind, "put", json.loads(ev.kv.value), ev.revision)
                    elif ev.prev is not None:
                        yield DefinitionChange(kind, "delete", json.loads(ev.prev.value),
                                               ev.revision)
                return
            except WatchCompacted:
                snapshot, at = await self.load()
                revision = at + 1
                yield DefinitionsReset(snapshot, at)
