"""Authorization of the management API, as RabbitMQ 3.10's management plugin does it.

One declarative :class:`Rule` per route (:data:`RULES`, keyed by method and path
pattern). A rule has two parts, checked in order by :func:`authorize`:

* ``access``: which users reach the endpoint at all (rabbit_mgmt_util's
  ``is_authorized*`` family). Users without any of the management tags never
  get past login ("Not management user").

  ``any``            any management user
  ``monitor``        monitoring or administrator ("Not monitor user")
  ``admin``          administrator ("Not administrator user")
  ``vhost``          administrator, or a user with permissions on the path's vhost;
                     a vhost that does not exist passes (the handler answers 404)
  ``vhost_visible``  as ``vhost``, monitoring users see every vhost
  ``policies``       policymaker or administrator, and ``vhost``
                     ("User not authorised to access object")
  ``owner``          connection/channel: GET by a monitoring user or the owner,
                     DELETE by an administrator or the owner (checked by the
                     handler, which knows the object)

* ``perms``: what RabbitMQ does over its internal AMQP connection for
  operations that touch messages or topology (declare, delete, purge, get,
  publish, bind): the user must have permissions on the vhost (even an
  administrator) and the configure/write/read pattern must allow the object.

Listings are filtered by :func:`login_vhost` (queues, exchanges, bindings,
policies, consumers: vhosts the user has permissions on, all for an
administrator), :func:`visible_vhost` (vhosts, vhost limits: also all for
monitoring users) and :func:`sees_owned` (connections, channels: monitoring
users see all, others only their own).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from warren.server.model.auth import User
    from warren.server.node.broker import Broker

#: paths of the management listener served without the API handler: the dashboard's files and its
#: login/logout (/session, which checks credentials itself)
PUBLIC_PATHS = frozenset({"/", "/static", "/session"})

MGMT_TAGS = frozenset({"administrator", "monitoring", "policymaker", "management"})

NOT_ADMIN = "Not administrator user"
NOT_MONITOR = "Not monitor user"
NOT_VHOST = "User not authorised to access virtual host"
NOT_OBJECT = "User not authorised to access object"
REFUSED = "Access refused."


class Denied(Exception):
    """The request is not allowed: ``status`` with RabbitMQ's error and reason."""

    def __init__(self, status: int, error: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.error = error
        self.reason = reason


def _unauthorised(reason: str) -> Denied:
    return Denied(401, "not_authorised", reason)


@dataclass(frozen=True)
class Perm:
    """One object permission: ``kind`` (configure/write/read) on the resource named by path parameter ``param``
    (or the literal ``name``)."""

    kind: str
    param: str | None = None
    name: str | None = None


@dataclass(frozen=True)
class Rule:
    access: str
    perms: tuple[Perm, ...] = ()
    #: a missing vhost answers 401 "Access refused." instead of falling through to the handler's 404
    missing_vhost_refused: bool = False
    #: status, error and reason (formatted with kind/name/vhost/user) when a perm is refused
    refused: tuple[int, str, str] = (401, "not_authorised", REFUSED)


ANY = Rule("any")
MONITOR = Rule("monitor")
ADMIN = Rule("admin")
VHOST = Rule("vhost")
VISIBLE = Rule("vhost_visible")
POLICIES = Rule("policies")
OWNER = Rule("owner")


def _vh(*perms: Perm, **kw: object) -> Rule:
    return Rule("vhost", perms, **kw)  # type: ignore[arg-type]


_GET_REFUSED = (401, "not_authorised", "ACCESS_REFUSED - access to queue '{name}' in vhost '{vhost}' refused for user '{user}'")
_PUBLISH_REFUSED = (400, "bad_request",
                    "403 ACCESS_REFUSED - access to exchange '{name}' in vhost '{vhost}' refused for user '{user}'")
_BIND = (Perm("write", "dest"), Perm("read", "source"))

#: (method, path pattern) -> rule; every route of :class:`~server.management.api.Api` has one
RULES: dict[tuple[str, str], Rule] = {
    ("GET", "overview"): ANY,
    ("GET", "whoami"): ANY,
    ("GET", "nodes"): MONITOR,
    ("GET", "nodes/{name}"): MONITOR,
    ("GET", "extensions"): ANY,
    ("GET", "cluster-name"): ANY,
    # warren's own: members, leader and lag are node-level facts, as /api/nodes is
    ("GET", "cluster"): MONITOR,
    ("DELETE", "cluster/nodes/{name}"): ADMIN,
    ("GET", "connections"): ANY,
    ("GET", "connections/{name}"): OWNER,
    ("DELETE", "connections/{name}"): OWNER,
    ("GET", "connections/{name}/channels"): OWNER,
    ("GET", "vhosts/{vhost}/connections"): VHOST,
    ("GET", "channels"): ANY,
    ("GET", "vhosts/{vhost}/channels"): VHOST,
    ("GET", "channels/{name}"): OWNER,
    ("GET", "consumers"): ANY,
    ("GET", "consumers/{vhost}"): ANY,
    ("GET", "exchanges"): ANY,
    ("GET", "exchanges/{vhost}"): VHOST,
    ("GET", "exchanges/{vhost}/{name}"): VHOST,
    ("PUT", "exchanges/{vhost}/{name}"): _vh(Perm("configure", "name")),
    ("DELETE", "exchanges/{vhost}/{name}"): _vh(Perm("configure", "name")),
    ("GET", "exchanges/{vhost}/{name}/bindings/source"): VHOST,
    ("GET", "exchanges/{vhost}/{name}/bindings/destination"): VHOST,
    ("POST", "exchanges/{vhost}/{name}/publish"): _vh(Perm("write", "name"), missing_vhost_refused=True,
                                                       refused=_PUBLISH_REFUSED),
    ("GET", "queues"): ANY,
    ("GET", "queues/{vhost}"): VHOST,
    ("GET", "queues/{vhost}/{name}"): VHOST,
    ("PUT", "queues/{vhost}/{name}"): _vh(Perm("configure", "name")),
    ("DELETE", "queues/{vhost}/{name}"): _vh(Perm("configure", "name")),
    ("DELETE", "queues/{vhost}/{name}/contents"): _vh(Perm("read", "name")),
    ("GET", "queues/{vhost}/{name}/bindings"): VHOST,
    ("POST", "queues/{vhost}/{name}/get"): _vh(Perm("read", "name"), missing_vhost_refused=True, refused=_GET_REFUSED),
    ("GET", "bindings"): ANY,
    ("GET", "bindings/{vhost}"): VHOST,
    ("GET", "bindings/{vhost}/e/{source}/{dtype}/{dest}"): VHOST,
    ("POST", "bindings/{vhost}/e/{source}/{dtype}/{dest}"): _vh(*_BIND),
    ("GET", "bindings/{vhost}/e/{source}/{dtype}/{dest}/{props}"): VHOST,
    ("DELETE", "bindings/{vhost}/e/{source}/{dtype}/{dest}/{props}"): _vh(*_BIND),
    ("GET", "vhosts"): ANY,
    ("GET", "vhosts/{vhost}"): ADMIN,
    ("PUT", "vhosts/{vhost}"): ADMIN,
    ("DELETE", "vhosts/{vhost}"): ADMIN,
    ("GET", "vhosts/{vhost}/permissions"): ADMIN,
    ("GET", "users"): ADMIN,
    ("GET", "users/{user}"): ADMIN,
    ("PUT", "users/{user}"): ADMIN,
    ("DELETE", "users/{user}"): ADMIN,
    ("GET", "users/{user}/permissions"): ADMIN,
    ("GET", "permissions"): ADMIN,
    ("GET", "permissions/{vhost}/{user}"): ADMIN,
    ("PUT", "permissions/{vhost}/{user}"): ADMIN,
    ("DELETE", "permissions/{vhost}/{user}"): ADMIN,
    ("GET", "policies"): ANY,
    ("GET", "policies/{vhost}"): VHOST,
    ("GET", "policies/{vhost}/{name}"): POLICIES,
    ("PUT", "policies/{vhost}/{name}"): POLICIES,
    ("DELETE", "policies/{vhost}/{name}"): POLICIES,
    ("GET", "topic-permissions"): ADMIN,
    ("GET", "topic-permissions/{vhost}/{user}"): ADMIN,
    ("PUT", "topic-permissions/{vhost}/{user}"): ADMIN,
    ("DELETE", "topic-permissions/{vhost}/{user}"): ADMIN,
    ("DELETE", "topic-permissions/{vhost}/{user}/{exchange}"): ADMIN,
    ("GET", "vhost-limits"): ANY,
    ("GET", "vhost-limits/{vhost}"): VISIBLE,
    ("PUT", "vhost-limits/{vhost}/{limit}"): ADMIN,
    ("DELETE", "vhost-limits/{vhost}/{limit}"): ADMIN,
    # RabbitMQ 3.10 lists every user's limits to any management user
    ("GET", "user-limits"): ANY,
    ("GET", "user-limits/{user}"): ANY,
    ("PUT", "user-limits/{user}/{limit}"): ADMIN,
    ("DELETE", "user-limits/{user}/{limit}"): ADMIN,
    ("GET", "definitions"): ADMIN,
    ("POST", "definitions"): ADMIN,
    ("GET", "definitions/{vhost}"): ADMIN,
    ("POST", "definitions/{vhost}"): ADMIN,
    # declares, publishes to and reads queue aliveness-test over AMQP
    ("GET", "aliveness-test/{vhost}"): _vh(Perm("configure", name="aliveness-test"),
                                            Perm("write", name="amq.default"),
                                            Perm("read", name="aliveness-test"), refused=_GET_REFUSED),
    ("GET", "healthchecks/node"): ANY,
    ("GET", "healthchecks/node/{node}"): ANY,
    ("GET", "health/checks/alarms"): ANY,
    ("GET", "health/checks/local-alarms"): ANY,
    ("GET", "health/checks/virtual-hosts"): ANY,
    ("GET", "health/checks/node-is-quorum-critical"): ANY,
    ("GET", "health/checks/node-is-mirror-sync-critical"): ANY,
    ("GET", "health/checks/port-listener/{port}"): ANY,
    ("GET", "health/checks/protocol-listener/{proto}"): ANY,
    ("GET", "health/checks/certificate-expiration/{within}/{unit}"): ANY,
    # warren's x-delayed-message views: listings like exchanges; held messages need read on the exchange
    ("GET", "delayed"): ANY,
    ("GET", "delayed/{vhost}"): VHOST,
    ("GET", "exchanges/{vhost}/{name}/delayed"): _vh(Perm("read", "name")),
    # warren's message journeys and tracing switches (RabbitMQ's rabbitmq_tracing API is admin-only)
    ("GET", "trace/{message_id}"): ANY,
    ("GET", "tracing/{vhost}"): ADMIN,
    ("PUT", "tracing/{vhost}"): ADMIN,
}


def is_admin(user: User) -> bool:
    return "administrator" in user.tags


def is_monitor(user: User) -> bool:
    return "monitoring" in user.tags or "administrator" in user.tags


def is_policymaker(user: User) -> bool:
    return "policymaker" in user.tags or "administrator" in user.tags


def is_management(user: User) -> bool:
    return not MGMT_TAGS.isdisjoint(user.tags)


def login_vhost(user: User, vhost: str) -> bool:
    """Objects of ``vhost`` appear in the user's listings (rabbit_mgmt_util:filter_vhost)."""
    return is_admin(user) or vhost in user.permissions


def visible_vhost(user: User, vhost: str) -> bool:
    """``vhost`` itself appears in the user's listings (list_visible_vhosts)."""
    return is_monitor(user) or vhost in user.permissions


def sees_owned(user: User, owner: str | None) -> bool:
    """A connection or channel of ``owner`` appears to ``user`` (filter_conn_ch_list)."""
    return is_monitor(user) or owner == user.name


def may_touch_owned(user: User, owner: str | None, method: str) -> None:
    """is_authorized_user: GET by a monitor or the owner, DELETE by an administrator or the owner."""
    allowed = is_admin(user) if method == "DELETE" else is_monitor(user)
    if not allowed and owner != user.name:
        raise _unauthorised(NOT_OBJECT)


def _vhost_ok(user: User, broker: Broker, vhost: str | None, monitor_sees_all: bool) -> bool:
    if is_admin(user) or vhost is None or vhost not in broker.vhosts:
        return True
    return (monitor_sees_all and is_monitor(user)) or vhost in user.permissions


def authorize(rule: Rule, user: User, params: dict[str, str], broker: Broker) -> None:
    """Raise :class:`Denied` unless ``user`` may make this request (see the module docstring)."""
    access = rule.access
    vhost = params.get("vhost")
    if access == "admin":
        if not is_admin(user):
            raise _unauthorised(NOT_ADMIN)
    elif access == "monitor":
        if not is_monitor(user):
            raise _unauthorised(NOT_MONITOR)
    elif access in ("vhost", "vhost_visible"):
        if not _vhost_ok(user, broker, vhost, access == "vhost_visible"):
            raise _unauthorised(NOT_VHOST)
    elif access == "policies":
        if not is_policymaker(user) or not _vhost_ok(user, broker, vhost, False):
            raise _unauthorised(NOT_OBJECT)
    elif access not in ("any", "owner"):  # pragma: no cover - a typo in RULES
        raise AssertionError(f"unknown access rule {access!r}")
    if not rule.perms or vhost is None:
        return
    if vhost not in broker.vhosts:
        if rule.missing_vhost_refused:
            raise _unauthorised(REFUSED)
        return  # the handler answers 404
    perm = user.permissions.get(vhost)
    if perm is None:
        raise _unauthorised(REFUSED)
    for p in rule.perms:
        name = p.name if p.name is not None else params.get(p.param or "", "")
        if p.param in ("name", "source") and name == "":
            name = "amq.default"
        check = {"configure": perm.can_configure, "write": perm.can_write, "read": perm.can_read}[p.kind]
        if not check(name):
            status, error, reason = rule.refused
            raise Denied(status, error, reason.format(name=name, vhost=vhost, user=user.name))
