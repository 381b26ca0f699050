"""Topology commands: declare, bind, unbind, delete and purge exchanges and queues.

One implementation, called by the AMQP channel (``exchange.*``/``queue.*``
methods) and by the management API, so that both run the same code and the
same checks, in RabbitMQ's order and with its texts. Each command takes the
vhost, an :class:`Actor` (whose permissions to check, which session owns
exclusive queues) and the method's fields; it raises the model's AMQP errors
(:mod:`warren.server.core.errors`) and returns what the ``*-ok`` reply needs.
Protocol framing (nowait, the reply itself, the channel's "last declared
queue") stays with the caller.
"""

from __future__ import annotations

import os
from base64 import urlsafe_b64encode
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from warren.protocol.constants import COMMAND_INVALID
from warren.protocol.table import amqp_type, type_name
from warren.server.core.errors import (
    ConnectionError_,
    access_refused,
    fmt_bool,
    inequivalent,
    not_found_exchange,
    not_found_queue,
    precondition,
    resource_locked,
)
from warren.server.model.exchanges.topic import TopicExchange
from warren.server.model.queue_args import check_new_queue, queue_type

if TYPE_CHECKING:
    from warren.server.model.auth import Permission, TopicPermission
    from warren.server.model.delivery import Session
    from warren.server.model.exchanges import Exchange
    from warren.server.model.queue import Queue
    from warren.server.model.vhost import VHost

#: queue arguments RabbitMQ compares on redeclare
EQUIV_QUEUE_ARGS = (
    "x-expires",
    "x-message-ttl",
    "x-dead-letter-exchange",
    "x-dead-letter-routing-key",
    "x-max-length",
    "x-max-length-bytes",
    "x-max-priority",
    "x-overflow",
    "x-queue-mode",
    "x-queue-type",
    "x-single-active-consumer",
    "x-delivery-limit",
)

DEFAULT_EXCHANGE_REFUSED = "operation not permitted on the default exchange"


class Actor:
    """Who runs a command: the user's permissions to check (``permission`` None: no
    configure/write/read checks; ``topic_perms`` None: no topic checks) and the
    session that owns the exclusive queues it declares (None: it owns none, as the
    management API, which RabbitMQ runs on an internal connection of its own).
    """

    __slots__ = ("user", "permission", "topic_perms", "session")

    def __init__(
        self,
        user: str = "",
        permission: Permission | None = None,
        topic_perms: Mapping[str, TopicPermission] | None = None,
        session: Session | None = None,
    ) -> None:
        self.user = user
        self.permission = permission
        self.topic_perms = topic_perms
        self.session = session

    def check(self, kind: str, name: str, what: str, vhost: str) -> None:
        """``kind`` (configure/write/read) on ``what`` (exchange/queue) ``name``, as RabbitMQ."""
        perm = self.permission
        if perm is not None:
            check_permission(perm, self.user, kind, name, what, vhost)

    def check_topic(self, kind: str, ex: Exchange, routing_key: str, vhost: str) -> None:
        """Topic permissions (RabbitMQ's topic authorisation) of a topic exchange, if any."""
        if self.topic_perms and type(ex) is TopicExchange:
            check_topic(self.topic_perms, self.user, kind, ex.name, routing_key, vhost)

    def owns(self, q: Queue) -> bool:
        """May this actor use ``q`` (not an exclusive queue of another session)?"""
        owner = q.exclusive_owner
        return owner is None or owner is self.session


#: no permission checks and no session (in-process callers: model tests, tools)
UNCHECKED = Actor()


def check_permission(perm: Permission, user: str, kind: str, name: str, what: str, vhost: str) -> None:
    if not name and what == "exchange":
        name = "amq.default"  # as RabbitMQ names it in permission checks
    if not getattr(perm, f"can_{kind}")(name):
        raise access_refused(f"access to {what} '{name}' in vhost '{vhost}' refused for user '{user}'")


def check_topic(
    topic_perms: Mapping[str, TopicPermission], user: str, kind: str, exchange: str, routing_key: str, vhost: str
) -> None:
    perm = topic_perms.get(exchange)
    if perm is not None and not perm.allows(kind, routing_key, user, vhost):
        raise access_refused(
            f"access to topic '{routing_key}' in exchange '{exchange}' in vhost '{vhost}' refused for user '{user}'"
        )


def gen_name(prefix: str = "amq.gen-") -> str:
    return prefix + urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")


def _classic(queue_type_arg: Any) -> bool:
    # no x-queue-type and x-queue-type "classic" are the same thing on redeclare
    return queue_type_arg is None or queue_type_arg in ("classic", b"classic")


def fmt_arg(v: Any) -> str:
    if v is None:
        return "none"
    if isinstance(v, bool):
        return f"'{fmt_bool(v)}'"
    if isinstance(v, bytes) and amqp_type(v) == "S":
        v = v.decode(errors="replace")
    # the reader keeps the wire type of argument values (protocol.table), so this names
    # the type the client sent, as RabbitMQ does
    kind = type_name(v)
    return f"the value '{v}' of type '{kind}'"


def fmt_arg_pair(received: Any, current: Any) -> tuple[str, str]:
    """RabbitMQ names the value's type only when the other side is missing."""
    if received is None or current is None:
        return fmt_arg(received), fmt_arg(current)

    def plain(v: Any) -> str:
        if isinstance(v, bool):
            return f"'{fmt_bool(v)}'"
        return f"'{v.decode() if isinstance(v, bytes) else v}'"

    return plain(received), plain(current)


# -- exchanges ------------------------------------------------------------------------
def exchange_declare(
    vhost: VHost,
    actor: Actor,
    name: str,
    type_: str,
    durable: bool = True,
    auto_delete: bool = False,
    internal: bool = False,
    arguments: Mapping[str, Any] | None = None,
    passive: bool = False,
) -> tuple[Exchange, bool]:
    """exchange.declare: the exchange and whether it was created now."""
    ex = vhost.exchanges.get(name)
    if passive:
        if name == "":
            raise access_refused(DEFAULT_EXCHANGE_REFUSED)
        if ex is None:
            raise not_found_exchange(name, vhost.name)
        return ex, False
    # as RabbitMQ: type first, then the default exchange; the amq.* prefix is
    # refused only when creating (an equivalent redeclare of amq.direct is fine)
    cls = vhost.broker.exchange_type(type_)
    if cls is None:
        raise ConnectionError_(COMMAND_INVALID, f"unknown exchange type '{type_}'", 40, 10)
    if name == "":
        raise access_refused(DEFAULT_EXCHANGE_REFUSED)
    actor.check("configure", name, "exchange", vhost.name)
    args = dict(arguments or {})
    if ex is not None:
        if ex.describe_type() != type_:
            raise inequivalent("type", "exchange", name, vhost.name, f"'{type_}'", f"'{ex.describe_type()}'")
        for arg, got, cur in (
            ("durable", durable, ex.durable),
            ("auto_delete", auto_delete, ex.auto_delete),
            ("internal", internal, ex.internal),
        ):
            if bool(got) != bool(cur):
                raise inequivalent(arg, "exchange", name, vhost.name, f"'{fmt_bool(got)}'", f"'{fmt_bool(cur)}'")
        for key in ("alternate-exchange",):
            if args.get(key) != ex.arguments.get(key):
                raise inequivalent(key, "exchange", name, vhost.name, *fmt_arg_pair(args.get(key), ex.arguments.get(key)))
        return ex, False
    if name.startswith("amq."):
        raise access_refused(f"exchange name '{name}' contains reserved prefix 'amq.*'")
    ex = cls(vhost, name, bool(durable), bool(auto_delete), bool(internal), args)
    vhost.add_exchange(ex)
    vhost.broker.definitions_changed(ex.durable)
    return ex, True


def exchange_delete(vhost: VHost, actor: Actor, name: str, if_unused: bool = False) -> bool:
    """exchange.delete: whether there was one (a missing exchange is no error in AMQP)."""
    if name == "":
        raise access_refused(DEFAULT_EXCHANGE_REFUSED)
    if name.startswith("amq."):
        raise access_refused(f"deletion of system exchange '{name}' in vhost '{vhost.name}' not allowed")
    actor.check("configure", name, "exchange", vhost.name)  # before existence, as RabbitMQ
    ex = vhost.exchanges.get(name)
    if ex is None:
        return False
    if if_unused and ex.bindings:
        raise precondition(f"exchange '{name}' in vhost '{vhost.name}' in use")
    vhost.delete_exchange(ex)
    return True


def exchange_bind(
    vhost: VHost,
    actor: Actor,
    destination: str,
    source: str,
    routing_key: str,
    arguments: Mapping[str, Any] | None = None,
    unbind: bool = False,
) -> bool:
    """exchange.bind/unbind: whether a binding was added or removed."""
    # RabbitMQ's order: permissions, the default exchange, then existence (source first)
    actor.check("write", destination, "exchange", vhost.name)
    if destination == "" or source == "":
        raise access_refused(DEFAULT_EXCHANGE_REFUSED)
    actor.check("read", source, "exchange", vhost.name)
    dest = vhost.exchanges.get(destination)
    src = vhost.exchanges.get(source)
    if src is not None:
        actor.check_topic("read", src, routing_key, vhost.name)
    if dest is None or src is None:
        if unbind:
            return False  # as RabbitMQ 3.10 (and queue.unbind): unbinding a missing exchange is a no-op
        raise not_found_exchange(source if src is None else destination, vhost.name)
    return _bind(vhost, src, dest, routing_key, arguments, unbind)


def _bind(vhost: VHost, src: Exchange, dest: Any, routing_key: str, arguments: Mapping[str, Any] | None,
          unbind: bool) -> bool:
    durable = src.durable and dest.durable
    if unbind:
        if src.unbind(dest, routing_key, arguments or {}) is None:
            return False
        vhost.maybe_auto_delete_exchange(src)
    else:
        src.bind(dest, routing_key, dict(arguments or {}))
    vhost.broker.definitions_changed(durable)
    return True


# -- queues ---------------------------------------------------------------------------
def lookup_queue(vhost: VHost, actor: Actor, name: str) -> Queue:
    """An existing queue this actor may use (404, then 405 for another session's exclusive queue)."""
    q = vhost.queues.get(name)
    if q is None:
        raise not_found_queue(name, vhost.name)
    if not actor.owns(q):
        raise resource_locked(name, vhost.name)
    return q


def queue_declare(
    vhost: VHost,
    actor: Actor,
    name: str,
    durable: bool = False,
    exclusive: bool = False,
    auto_delete: bool = False,
    arguments: Mapping[str, Any] | None = None,
    passive: bool = False,
) -> tuple[Queue, bool]:
    """queue.declare: the queue and whether it was created now (``name`` "" names it
    ``amq.gen-...``; the channel resolves its "last declared queue" before)."""
    if passive:
        if name == "":
            # RabbitMQ: no "last declared queue" shortcut for a passive declare
            raise not_found_queue(name, vhost.name)
        return lookup_queue(vhost, actor, name), False
    args = dict(arguments or {})
    if name == "":
        if queue_type(args) == "quorum":
            raise precondition("Cannot declare a server-named queue for type rabbit_quorum_queue")
        name = gen_name()
    elif name.startswith("amq."):
        raise access_refused(f"queue name '{name}' contains reserved prefix 'amq.*'")
    q = vhost.queues.get(name)
    if q is not None:
        if (q.exclusive_owner is not None and q.exclusive_owner is not actor.session) or bool(exclusive) != q.exclusive:
            raise resource_locked(name, vhost.name)
        actor.check("configure", name, "queue", vhost.name)
        for arg, got, cur in (("durable", durable, q.durable), ("auto_delete", auto_delete, q.auto_delete)):
            if bool(got) != bool(cur):
                raise inequivalent(arg, "queue", name, vhost.name, f"'{fmt_bool(got)}'", f"'{fmt_bool(cur)}'")
        for key in EQUIV_QUEUE_ARGS:
            a, b = args.get(key), q.arguments.get(key)
            if a != b and not (key == "x-queue-type" and _classic(a) and _classic(b)):
                raise inequivalent(key, "queue", name, vhost.name, *fmt_arg_pair(a, b))
        return q, False
    actor.check("configure", name, "queue", vhost.name)
    owner = actor.session if exclusive else None
    if exclusive and owner is None:
        raise ValueError("an exclusive queue needs the actor's session")  # a caller's bug, not a client's
    check_new_queue(vhost, name, args, bool(durable), bool(exclusive), bool(auto_delete))
    q = vhost.broker.create_queue(vhost, name, bool(durable), owner, bool(auto_delete), args)
    if owner is not None:
        owner.exclusive_queues.append(q)
    return q, True


def queue_bind(
    vhost: VHost,
    actor: Actor,
    queue: str,
    exchange: str,
    routing_key: str,
    arguments: Mapping[str, Any] | None = None,
    unbind: bool = False,
) -> bool:
    """queue.bind/unbind (``queue`` already resolved): whether a binding was added or removed."""
    # RabbitMQ's order: permissions, the default exchange, then existence (the exchange
    # first); unbinding what is missing is a no-op
    actor.check("write", queue, "queue", vhost.name)
    if exchange == "":
        raise access_refused(DEFAULT_EXCHANGE_REFUSED)
    actor.check("read", exchange, "exchange", vhost.name)
    ex = vhost.exchanges.get(exchange)
    if ex is not None:
        actor.check_topic("read", ex, routing_key, vhost.name)
    q = vhost.queues.get(queue)
    if ex is None or q is None:
        if unbind:
            return False
        if ex is None:
            raise not_found_exchange(exchange, vhost.name)
        raise not_found_queue(queue, vhost.name)
    if not actor.owns(q):
        raise resource_locked(queue, vhost.name)
    return _bind(vhost, ex, q, routing_key, arguments, unbind)


def queue_purge(vhost: VHost, actor: Actor, name: str) -> int:
    """queue.purge: the number of messages purged."""
    actor.check("read", name, "queue", vhost.name)  # before existence, as RabbitMQ
    return lookup_queue(vhost, actor, name).purge()


def queue_delete(
    vhost: VHost,
    actor: Actor,
    name: str,
    if_unused: bool = False,
    if_empty: bool = False,
    before: Callable[[int], None] | None = None,
) -> int | None:
    """queue.delete: the message count it had, None if there was no such queue.

    ``before(count)`` runs once the checks passed and before the deletion (the
    channel sends delete-ok there: before the basic.cancel its consumers get, as
    RabbitMQ orders them).
    """
    actor.check("configure", name, "queue", vhost.name)  # before existence, as RabbitMQ
    q = vhost.queues.get(name)
    if q is None:
        return None
    if not actor.owns(q):
        raise resource_locked(q.name, vhost.name)
    if if_unused and q.consumers:
        raise precondition(f"queue '{q.name}' in vhost '{vhost.name}' in use")
    if if_empty and len(q.store):
        raise precondition(f"queue '{q.name}' in vhost '{vhost.name}' not empty")
    count = len(q.store)
    if before is not None:
        before(count)
    owner = q.exclusive_owner
    vhost.delete_queue(q)
    if owner is not None and q in owner.exclusive_queues:
        owner.exclusive_queues.remove(q)
    return count
