"""The management HTTP API (RabbitMQ-compatible paths, JSON, status codes) and the
Prometheus app.

Every ``/api/...`` request goes through one aiohttp handler that splits the raw
path into percent-decoded segments (so ``%2F`` is the vhost ``/``), matches a
route table, checks HTTP basic auth against the broker's users (tags
``administrator``, ``monitoring``, ``policymaker`` or ``management`` may log in)
and applies the route's authorization rule from :mod:`.authz` before the handler.
List endpoints accept RabbitMQ's ``columns``, ``name``/``use_regex``, ``sort``,
``sort_reverse`` and ``page``/``page_size`` query parameters.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from aiohttp import web
from pamqp import commands as C
from warren.protocol.hotpath import shortstr
from warren.protocol.methods import encode_header
from warren.protocol.properties import scan
from warren.server.core.errlog import clip, describe
from warren.server.core.errors import ChannelError
from warren.server.http.management import authz as A
from warren.server.http.management import delayed as D
from warren.server.http.management import listing as L
from warren.server.http.management import session, validate
from warren.server.http.management import views as V
from warren.server.http.management.history import History, add_samples
from warren.server.http.management.paging import CHEAP
from warren.server.http.management.session import COOKIE, SessionError, Sessions
from warren.server.model.auth import (
    Permission,
    TopicPermission,
    User,
    check_password,
    hash_password,
)
from warren.server.model.definitions import _jsonable, export_definitions, import_definitions
from warren.server.model.exchanges import DelayedExchange
from warren.server.model.limits import USER_LIMITS, VHOST_LIMITS
from warren.server.model.limits import validate as validate_limit
from warren.server.model.message import Message
from warren.server.model.policies import Policy
from warren.server.model.publish import MANAGEMENT
from warren.server.model.queue_args import check_new_queue

if TYPE_CHECKING:
    from warren.server.model.vhost import VHost
    from warren.server.node.broker import Broker

log = logging.getLogger("warren.management")

STATIC = Path(__file__).resolve().parents[2] / "static"
JSON_CT = "application/json"
#: seconds to receive a request body once its headers arrived
BODY_TIMEOUT = 30.0

Handler = Callable[["Ctx"], Awaitable[web.StreamResponse]]


class HTTPError(Exception):
    def __init__(self, status: int, error: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.error = error
        self.reason = reason


def not_found() -> HTTPError:
    return HTTPError(404, "Object Not Found", "Not Found")


def bad_request(reason: str) -> HTTPError:
    return HTTPError(400, "bad_request", reason)


def jresp(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=json.dumps(data, default=_default).encode(), status=status, content_type=JSON_CT
    )


def _default(v: Any) -> Any:
    j = _jsonable(v)
    if j is v:
        return str(v)
    return j


def no_content(status: int = 204, location: str | None = None) -> web.Response:
    r = web.Response(status=status)
    if location:
        r.headers["Location"] = location
    return r


class Ctx:
    """One API request: the broker, the decoded path parameters and the user."""

    def __init__(self, api: Api, request: web.Request, params: dict[str, str], user: User) -> None:
        self.api = api
        self.broker = api.broker
        self.request = request
        self.params = params
        self.user = user

    def vhost(self, name: str | None = None) -> VHost:
        """The path's vhost (access was checked by the route's rule), 404 if there is none."""
        vh = self.broker.vhosts.get(name if name is not None else self.params["vhost"])
        if vh is None:
            raise not_found()
        return vh

    def visible(self, vhost: str) -> bool:
        """Objects of ``vhost`` appear in this user's listings."""
        return A.login_vhost(self.user, vhost)

    def sees(self, owner: str | None) -> bool:
        """A connection/channel of ``owner`` appears in this user's listings."""
        return A.sees_owned(self.user, owner)

    def admin(self) -> None:
        if not A.is_admin(self.user):
            raise HTTPError(401, "not_authorised", A.NOT_ADMIN)

    async def body(self) -> dict[str, Any]:
        try:
            # a body trickled in slowly must not hold the connection (and its descriptor) forever
            async with asyncio.timeout(BODY_TIMEOUT):
                raw = await self.request.read()
        except TimeoutError:
            raise HTTPError(408, "timeout", "request body not received in time") from None
        if not raw:
            return {}
        return _json_object(raw)

    def listing(self, items: list[dict[str, Any]]) -> web.Response:
        return jresp(shape_list(items, self.request.query))

    async def listing_async(self, objs: list[Any], name_of: Callable[[Any], str],
                            to_json: Callable[[Any], dict[str, Any]],
                            cheap: Mapping[str, Callable[[Any], Any]] | None = None) -> web.Response:
        """A listing of many objects: filtered and paged before JSON, built in chunks (see .listing)."""
        try:
            body = await L.render(objs, name_of, to_json, self.request.query, _default, cheap)
        except L.ListingError as exc:
            raise bad_request(str(exc)) from None
        return web.Response(body=body, content_type=JSON_CT)


def shape_list(items: list[dict[str, Any]], query: Any) -> Any:
    """Apply RabbitMQ's list query parameters (name filter, sort, columns, pagination)."""
    every = len(items)
    try:  # the same query rules as the chunked listings (.listing)
        keep = L.name_filter(query)
        paged = L.page_params(query)
    except L.ListingError as exc:
        raise bad_request(str(exc)) from None
    if keep is not None:
        items = [i for i in items if keep(str(i.get("name", "")))]
    sort = query.get("sort")
    if sort:
        items = sorted(items, key=L.sort_key(sort))
        if query.get("sort_reverse") in ("true", "1"):
            items.reverse()
    cols = query.get("columns")
    if cols:
        items = L.select_columns(items, cols)
    if paged:
        p, size = paged
        total = len(items)
        start = (p - 1) * size
        chunk = items[start : start + size]
        return {
            "filtered_count": total,
            "item_count": len(chunk),
            "items": chunk,
            "page": p,
            "page_count": max(1, (total + size - 1) // size),
            "page_size": size,
            "total_count": every,
        }
    return items


def _bool(v: Any, default: bool = False) -> bool:
    if v is None:
        return default
    if isinstance(v, str):
        return v.lower() in ("true", "1", "yes")
    return bool(v)


class Api:
    """Route table and handlers of the management API."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.rates = V.Rates()
        self.sessions = Sessions()
        self.history = History(broker)
        self.routes: list[tuple[str, list[str], Handler, A.Rule]] = []
        r = self.add
        r("GET", "overview", self.overview)
        r("GET", "whoami", self.whoami)
        r("GET", "nodes", self.nodes)
        r("GET", "extensions", self.extensions)
        r("GET", "cluster-name", self.cluster_name)
        r("GET", "connections", self.connections)
        r("GET", "connections/{name}", self.connection)
        r("DELETE", "connections/{name}", self.connection_close)
        r("GET", "connections/{name}/channels", self.connection_channels)
        r("GET", "vhosts/{vhost}/connections", self.vhost_connections)
        r("GET", "channels", self.channels)
        r("GET", "vhosts/{vhost}/channels", self.vhost_channels)
        r("GET", "channels/{name}", self.channel)
        r("GET", "consumers", self.consumers)
        r("GET", "consumers/{vhost}", self.consumers)
        r("GET", "exchanges", self.exchanges)
        r("GET", "exchanges/{vhost}", self.exchanges)
        r("GET", "exchanges/{vhost}/{name}", self.exchange)
        r("PUT", "exchanges/{vhost}/{name}", self.exchange_put)
        r("DELETE", "exchanges/{vhost}/{name}", self.exchange_delete)
        r("GET", "exchanges/{vhost}/{name}/bindings/source", self.exchange_bindings_source)
        r("GET", "exchanges/{vhost}/{name}/bindings/destination", self.exchange_bindings_destination)
        r("POST", "exchanges/{vhost}/{name}/publish", self.publish)
        r("GET", "queues", self.queues)
        r("GET", "queues/{vhost}", self.queues)
        r("GET", "queues/{vhost}/{name}", self.queue)
        r("PUT", "queues/{vhost}/{name}", self.queue_put)
        r("DELETE", "queues/{vhost}/{name}", self.queue_delete)
        r("DELETE", "queues/{vhost}/{name}/contents", self.queue_purge)
        r("GET", "queues/{vhost}/{name}/bindings", self.queue_bindings)
        r("POST", "queues/{vhost}/{name}/get", self.queue_get)
        r("GET", "bindings", self.bindings)
        r("GET", "bindings/{vhost}", self.bindings)
        r("GET", "bindings/{vhost}/e/{source}/{dtype}/{dest}", self.binding_list)
        r("POST", "bindings/{vhost}/e/{source}/{dtype}/{dest}", self.binding_create)
        r("GET", "bindings/{vhost}/e/{source}/{dtype}/{dest}/{props}", self.binding_get)
        r("DELETE", "bindings/{vhost}/e/{source}/{dtype}/{dest}/{props}", self.binding_delete)
        r("GET", "vhosts", self.vhosts)
        r("GET", "vhosts/{vhost}", self.vhost)
        r("PUT", "vhosts/{vhost}", self.vhost_put)
        r("DELETE", "vhosts/{vhost}", self.vhost_delete)
        r("GET", "vhosts/{vhost}/permissions", self.vhost_permissions)
        r("GET", "users", self.users)
        r("GET", "users/{user}", self.user)
        r("PUT", "users/{user}", self.user_put)
        r("DELETE", "users/{user}", self.user_delete)
        r("GET", "users/{user}/permissions", self.user_permissions)
        r("GET", "permissions", self.permissions)
        r("GET", "permissions/{vhost}/{user}", self.permission)
        r("PUT", "permissions/{vhost}/{user}", self.permission_put)
        r("DELETE", "permissions/{vhost}/{user}", self.permission_delete)
        r("GET", "policies", self.policies)
        r("GET", "policies/{vhost}", self.policies)
        r("GET", "policies/{vhost}/{name}", self.policy)
        r("PUT", "policies/{vhost}/{name}", self.policy_put)
        r("DELETE", "policies/{vhost}/{name}", self.policy_delete)
        r("GET", "topic-permissions", self.topic_permissions)
        r("GET", "topic-permissions/{vhost}/{user}", self.topic_permissions)
        r("PUT", "topic-permissions/{vhost}/{user}", self.topic_permission_put)
        r("DELETE", "topic-permissions/{vhost}/{user}", self.topic_permission_delete)
        r("DELETE", "topic-permissions/{vhost}/{user}/{exchange}", self.topic_permission_delete)
        r("GET", "vhost-limits", self.vhost_limits)
        r("GET", "vhost-limits/{vhost}", self.vhost_limits)
        r("PUT", "vhost-limits/{vhost}/{limit}", self.vhost_limit_put)
        r("DELETE", "vhost-limits/{vhost}/{limit}", self.vhost_limit_delete)
        r("GET", "user-limits", self.user_limits)
        r("GET", "user-limits/{user}", self.user_limits)
        r("PUT", "user-limits/{user}/{limit}", self.user_limit_put)
        r("DELETE", "user-limits/{user}/{limit}", self.user_limit_delete)
        r("GET", "definitions", self.definitions)
        r("POST", "definitions", self.definitions_import)
        r("GET", "definitions/{vhost}", self.definitions)
        r("POST", "definitions/{vhost}", self.definitions_import)
        r("GET", "aliveness-test/{vhost}", self.aliveness)
        r("GET", "healthchecks/node", self.health_ok)
        r("GET", "healthchecks/node/{node}", self.health_ok)
        r("GET", "health/checks/alarms", self.health_alarms)
        r("GET", "health/checks/local-alarms", self.health_alarms)
        r("GET", "health/checks/virtual-hosts", self.health_ok)
        r("GET", "health/checks/node-is-quorum-critical", self.health_ok)
        r("GET", "health/checks/node-is-mirror-sync-critical", self.health_ok)
        r("GET", "health/checks/port-listener/{port}", self.health_port)
        r("GET", "health/checks/protocol-listener/{proto}", self.health_ok)
        r("GET", "health/checks/certificate-expiration/{within}/{unit}", self.health_ok)
        r("GET", "trace/{message_id}", self.trace)
        r("GET", "delayed", self.delayed)
        r("GET", "delayed/{vhost}", self.delayed)
        r("GET", "exchanges/{vhost}/{name}/delayed", self.delayed_pending)
        r("GET", "tracing/{vhost}", self.tracing_get)
        r("PUT", "tracing/{vhost}", self.tracing_put)

    def add(self, method: str, pattern: str, handler: Handler) -> None:
        # a route without a rule is administrator-only (fail closed); a test checks every route has one
        self.routes.append((method, pattern.split("/"), handler, A.RULES.get((method, pattern), A.ADMIN)))

    def match(self, method: str, segs: list[str]) -> tuple[Handler, dict[str, str], A.Rule] | None:
        path_found = False
        for m, pat, h, rule in self.routes:
            if len(pat) != len(segs):
                continue
            params: dict[str, str] = {}
            for p, s in zip(pat, segs, strict=True):
                if p.startswith("{"):
                    params[p[1:-1]] = s
                elif p != s:
                    break
            else:
                path_found = True
                if m == method or (method == "HEAD" and m == "GET"):
                    return h, params, rule
        if path_found:
            raise HTTPError(405, "Method Not Allowed", "Method Not Allowed")
        return None

    # -- entry point ------------------------------------------------------------
    async def handle(self, request: web.Request) -> web.StreamResponse:
        try:
            raw = request.raw_path.split("?", 1)[0]
            tail = raw[len("/api/"):] if raw.startswith("/api/") else ""
            segs = [unquote(s) for s in tail.rstrip("/").split("/")] if tail else [""]
            user = self.authenticate(request)
            found = self.match(request.method, segs)
            if found is None:
                raise not_found()
            handler, params, rule = found
            A.authorize(rule, user, params, self.broker)
            return await handler(Ctx(self, request, params, user))
        except (HTTPError, A.Denied) as exc:
            r = jresp({"error": exc.error, "reason": exc.reason}, exc.status)
            if exc.status == 401 and exc.error == "not_authorized" and not request.headers.get("X-Warren-UI"):
                # as RabbitMQ, only a failed login asks for credentials; the dashboard shows its own form
                r.headers["WWW-Authenticate"] = 'Basic realm="RabbitMQ Management"'
            return r
        except ChannelError as exc:
            return jresp({"error": "bad_request", "reason": exc.text}, 400)
        except validate.Invalid as exc:
            return jresp({"error": "bad_request", "reason": exc.reason}, 400)
        except web.HTTPException:
            raise
        except Exception as exc:  # noqa: BLE001 - a bug reached by a request: one log line, a 500
            log.error("management request failed method=%s path=%s: %s", request.method, clip(request.path), describe(exc))
            return jresp({"error": "internal_server_error", "reason": type(exc).__name__}, 500)

    def authenticate(self, request: web.Request) -> User:
        """The request's user: HTTP basic auth, else the dashboard's session cookie."""
        h = request.headers.get("Authorization", "")
        if not h and COOKIE in request.cookies:
            return self.session_user(request)
        if not h.lower().startswith("basic "):
            raise HTTPError(401, "not_authorized", "Login failed")
        try:
            name, _, password = base64.b64decode(h[6:].strip()).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise HTTPError(401, "not_authorized", "Login failed") from None
        err = self.check_login(name, password)
        if err is not None:
            # RabbitMQ spells the two differently
            raise HTTPError(401, "not_authorized" if err == "Login failed" else "not_authorised", err)
        return self.broker.users[name]

    def check_login(self, name: str, password: str) -> str | None:
        """None if ``name``/``password`` may use the management API, else the reason why not."""
        user = self.broker.users.get(name)
        if user is None or not check_password(password, user.password_hash):
            return "Login failed"
        if not A.is_management(user):
            return "Not management user"
        return None

    def session_user(self, request: web.Request) -> User:
        """The user of the request's session cookie, looked up now (tags and deletion apply at once)."""
        try:
            name = self.sessions.user_of(request)
        except SessionError as exc:
            raise HTTPError(401, "not_authorized", str(exc)) from None
        user = self.broker.users.get(name)
        if user is None or not A.is_management(user):
            raise HTTPError(401, "not_authorized", "Login failed")
        return user

    # -- overview ------------------------------------------------------------------
    async def overview(self, c: Ctx) -> web.Response:
        data = V.overview_json(self.broker, self.rates)
        try:
            add_samples(data, self.history, c.request.query)
        except ValueError as exc:
            raise bad_request(str(exc)) from None
        if not A.is_monitor(c.user):
            self._restrict_overview(c, data)
        return jresp(data)

    def _restrict_overview(self, c: Ctx, data: dict[str, Any]) -> None:
        """As RabbitMQ for users without the monitoring tag: no node, listeners or contexts, and
        totals only over the vhosts they may use and the connections they own."""
        for k in ("node", "listeners", "contexts"):
            data.pop(k, None)
        vhosts = [vh for vh in self.broker.vhosts.values() if c.visible(vh.name)]
        conns = [conn for conn in list(self.broker.connections)
                 if conn.vhost is not None and conn.user is not None and c.sees(conn.user.name)]
        data["object_totals"] = {
            "channels": sum(len(conn.channels) for conn in conns),
            "connections": len(conns),
            "exchanges": sum(len(vh.exchanges) for vh in vhosts),
            "queues": sum(len(vh.queues) for vh in vhosts),
        }
        qt: dict[str, Any] = {}
        if vhosts:
            ready = sum(len(q.store) for vh in vhosts for q in vh.queues.values())
            unacked = sum(q.unacked for vh in vhosts for q in vh.queues.values())
            for k, v in (("messages", ready + unacked), ("messages_ready", ready), ("messages_unacknowledged", unacked)):
                qt[k] = v
                qt[f"{k}_details"] = {"rate": 0.0}
        data["queue_totals"] = qt
        # warren keeps message rates per node, not per vhost: not shown to users who may not see the node
        data["message_stats"] = {}

    async def whoami(self, c: Ctx) -> web.Response:
        return jresp({"name": c.user.name, "tags": list(c.user.tags)})

    async def cluster_name(self, c: Ctx) -> web.Response:
        return jresp({"name": self.broker.cluster_name})

    async def extensions(self, c: Ctx) -> web.Response:
        return jresp([])

    async def nodes(self, c: Ctx) -> web.Response:
        from warren.server.http.metrics import process_stats

        p = process_stats()
        return jresp([{
            "name": V.node_name(self.broker), "type": "disc", "running": True,
            "mem_used": p["resident_memory_bytes"], "fd_used": p["open_fds"], "fd_total": p["max_fds"],
            "sockets_used": len(self.broker.connections), "disk_free": getattr(self.broker, "disk_free", -1),
            "mem_alarm": "memory" in self.broker.alarms, "disk_free_alarm": "disk" in self.broker.alarms,
            "mem_limit": self.broker.memory.limit, "disk_free_limit": self.broker.config.disk_free_limit,
        }])

    # -- connections / channels / consumers -------------------------------------
    def _conn(self, c: Ctx) -> Any:
        for conn in list(self.broker.connections):
            if conn.name == c.params["name"] and conn.vhost is not None and conn.user is not None:
                A.may_touch_owned(c.user, conn.user.name, c.request.method)
                return conn
        raise not_found()

    async def _conns(self, c: Ctx, vhost: str | None = None) -> web.Response:
        objs = [conn for conn in list(self.broker.connections)
                if conn.vhost is not None and conn.user is not None and c.sees(conn.user.name)
                and (vhost is None or conn.vhost.name == vhost)]
        return await c.listing_async(objs, _name, lambda conn: V.connection_json(self.broker, self.rates, conn))

    async def connections(self, c: Ctx) -> web.Response:
        return await self._conns(c)

    async def vhost_connections(self, c: Ctx) -> web.Response:
        return await self._conns(c, c.vhost().name)

    async def connection(self, c: Ctx) -> web.Response:
        return jresp(V.connection_json(self.broker, self.rates, self._conn(c)))

    async def connection_close(self, c: Ctx) -> web.Response:
        conn = self._conn(c)
        reason = c.request.headers.get("X-Reason", "Closed via management plugin")
        conn.close_by_broker(320, reason)  # close_text adds the "CONNECTION_FORCED - " prefix
        return no_content()

    async def connection_channels(self, c: Ctx) -> web.Response:
        conn = self._conn(c)
        return c.listing([V.channel_json(self.broker, self.rates, ch) for ch in list(conn.channels.values()) if not ch.closing])

    def _chans(self, c: Ctx, vhost: str | None = None) -> list[dict[str, Any]]:
        return [
            V.channel_json(self.broker, self.rates, ch)
            for ch in V.all_channels(self.broker)
            if c.sees(_owner(ch)) and (vhost is None or ch.vhost.name == vhost)
        ]

    async def channels(self, c: Ctx) -> web.Response:
        return c.listing(self._chans(c))

    async def vhost_channels(self, c: Ctx) -> web.Response:
        return c.listing(self._chans(c, c.vhost().name))

    async def channel(self, c: Ctx) -> web.Response:
        for ch in V.all_channels(self.broker):
            if V.channel_name(ch) == c.params["name"]:
                A.may_touch_owned(c.user, _owner(ch), c.request.method)
                return jresp(V.channel_json(self.broker, self.rates, ch))
        raise not_found()

    async def consumers(self, c: Ctx) -> web.Response:
        vhost = c.vhost().name if "vhost" in c.params else None
        out = []
        for ch in V.all_channels(self.broker):
            if not c.visible(ch.vhost.name) or (vhost is not None and ch.vhost.name != vhost):
                continue
            out.extend(V.consumer_json(cons) for cons in list(ch.consumers.values()))
        return c.listing(out)

    # -- exchanges ---------------------------------------------------------------------
    def _vhosts(self, c: Ctx) -> list[VHost]:
        if "vhost" in c.params:
            return [c.vhost()]
        return [vh for vh in self.broker.vhosts.values() if c.visible(vh.name)]

    def _missing_vhost(self, c: Ctx) -> bool:
        """RabbitMQ's binding listings answer [] (not 404) for a vhost or exchange that does not exist."""
        return c.params["vhost"] not in self.broker.vhosts

    async def exchanges(self, c: Ctx) -> web.Response:
        objs = [ex for vh in self._vhosts(c) for ex in list(vh.exchanges.values())]
        return await c.listing_async(objs, _name, lambda ex: V.exchange_json(self.rates, ex))

    def _exchange(self, c: Ctx) -> Any:
        vh = c.vhost()
        name = c.params["name"]
        if name == "amq.default":
            name = ""
        ex = vh.exchanges.get(name)
        if ex is None:
            raise not_found()
        return vh, ex

    async def exchange(self, c: Ctx) -> web.Response:
        _, ex = self._exchange(c)
        out = V.exchange_json(self.rates, ex)
        out["incoming"] = []
        out["outgoing"] = []
        return jresp(out)

    async def exchange_put(self, c: Ctx) -> web.Response:
        vh = c.vhost()
        name = c.params["name"]
        body = await c.body()
        etype = body.get("type")
        if not etype:
            raise bad_request("[{key_missing,type}]")
        if not name or name.startswith("amq."):
            raise HTTPError(403, "access_refused", f"exchange name '{name}' contains reserved prefix 'amq.*'")
        validate.name_length("exchange", name)
        durable = _bool(body.get("durable"), True)
        auto_delete = _bool(body.get("auto_delete"))
        internal = _bool(body.get("internal"))
        args = dict(validate.arguments(body.get("arguments")))
        ex = vh.exchanges.get(name)
        if ex is not None:
            if ex.describe_type() != etype or ex.durable != durable or ex.auto_delete != auto_delete or ex.internal != internal:
                raise bad_request(
                    f"inequivalent arg for exchange '{name}' in vhost '{vh.name}': received different settings"
                )
            return no_content()
        cls = self.broker.exchange_type(etype)
        if cls is None:
            raise bad_request(f"invalid exchange type '{etype}'")
        ex = cls(vh, name, durable, auto_delete, internal, args)
        vh.add_exchange(ex)
        self.broker.definitions_changed(durable)
        return no_content(201)

    async def exchange_delete(self, c: Ctx) -> web.Response:
        vh, ex = self._exchange(c)
        if not ex.name or ex.name.startswith("amq."):
            raise HTTPError(403, "access_refused", "operation not permitted on the default exchange")
        if _bool(c.request.query.get("if-unused")) and ex.bindings:
            raise bad_request(f"exchange '{ex.name}' in vhost '{vh.name}' in use")
        vh.delete_exchange(ex)
        return no_content()

    async def exchange_bindings_source(self, c: Ctx) -> web.Response:
        if self._missing_vhost(c):
            return c.listing([])
        vh, ex = self._exchange(c)
        if not ex.name:  # the default exchange's implicit binding to every queue
            return await c.listing_async(list(vh.queues.values()), lambda _q: "",
                                         lambda q: V.binding_json(vh, "", q, q.name, {}))
        return await c.listing_async(list(ex.bindings.values()), lambda _b: "",
                                     lambda b: V.binding_json(vh, ex.name, b.destination, b.routing_key, b.arguments))

    async def exchange_bindings_destination(self, c: Ctx) -> web.Response:
        if self._missing_vhost(c):
            return c.listing([])
        vh, ex = self._exchange(c)
        return c.listing(_bindings_to(vh, ex))

    async def publish(self, c: Ctx) -> web.Response:
        vh, ex = self._exchange(c)
        body = await c.body()
        for k in ("routing_key", "payload", "payload_encoding", "properties"):
            if k not in body:
                raise bad_request(f"[{{key_missing,{k}}}]")
        enc = body.get("payload_encoding")
        payload = body["payload"]
        if not isinstance(payload, str):
            raise bad_request("payload_not_string")  # RabbitMQ's reason
        if enc == "base64":
            try:
                data = base64.b64decode(payload)
            except (binascii.Error, ValueError):
                raise bad_request("not_base64") from None
        elif enc == "string":
            data = str(payload).encode()
        else:
            raise bad_request(f"invalid payload_encoding {enc!r}")
        rk = str(body["routing_key"])
        validate.name_length("routing_key", rk)
        try:
            header = encode_header(len(data), _properties(validate.properties(body.get("properties"))))
        except (TypeError, ValueError, OverflowError, OSError) as exc:  # values AMQP cannot carry
            raise bad_request(f"invalid properties: {exc}") from None
        msg = Message(ex.name, rk, shortstr(ex.name) + shortstr(rk), header, data, scan(header))
        res = vh.publish(ex, rk, msg, None, MANAGEMENT)
        # RabbitMQ answers routed=false when a queue refused it (reject-publish) or nothing matched
        return jresp({"routed": res.routed})

    # -- queues ------------------------------------------------------------------------
    async def queues(self, c: Ctx) -> web.Response:
        objs = [q for vh in self._vhosts(c) for q in list(vh.queues.values())]
        return await c.listing_async(objs, _name, lambda q: V.queue_json(self.broker, self.rates, q), CHEAP)

    def _queue(self, c: Ctx) -> Any:
        vh = c.vhost()
        q = vh.queues.get(c.params["name"])
        if q is None:
            raise not_found()
        return vh, q

    async def queue(self, c: Ctx) -> web.Response:
        _, q = self._queue(c)
        return jresp(V.queue_json(self.broker, self.rates, q, detail=True))

    async def queue_put(self, c: Ctx) -> web.Response:
        vh = c.vhost()
        name = c.params["name"]
        body = await c.body()
        validate.name_length("queue", name)
        durable = _bool(body.get("durable"), True)
        auto_delete = _bool(body.get("auto_delete"))
        args = dict(validate.arguments(body.get("arguments")))
        if name.startswith("amq."):
            raise HTTPError(403, "access_refused", f"queue name '{name}' contains reserved prefix 'amq.*'")
        q = vh.queues.get(name)
        if q is not None:
            if q.durable != durable or q.auto_delete != auto_delete or q.arguments != args:
                raise bad_request(f"inequivalent arg for queue '{name}' in vhost '{vh.name}': received different settings")
            return no_content()
        check_new_queue(vh, name, args, durable, False, auto_delete)
        self.broker.create_queue(vh, name, durable, None, auto_delete, args)
        return no_content(201)

    async def queue_delete(self, c: Ctx) -> web.Response:
        vh, q = self._queue(c)
        qs = c.request.query
        if _bool(qs.get("if-unused")) and q.consumers:
            raise bad_request(f"queue '{q.name}' in vhost '{vh.name}' in use")
        if _bool(qs.get("if-empty")) and len(q.store):
            raise bad_request(f"queue '{q.name}' in vhost '{vh.name}' not empty")
        if q.exclusive_owner is not None and q in q.exclusive_owner.exclusive_queues:
            q.exclusive_owner.exclusive_queues.remove(q)
        vh.delete_queue(q)
        return no_content()

    async def queue_purge(self, c: Ctx) -> web.Response:
        _, q = self._queue(c)
        q.purge()
        return no_content()

    async def queue_bindings(self, c: Ctx) -> web.Response:
        if self._missing_vhost(c):
            return c.listing([])
        vh, q = self._queue(c)
        return c.listing([V.binding_json(vh, "", q, q.name, {}), *_bindings_to(vh, q)])

    async def queue_get(self, c: Ctx) -> web.Response:
        vh, q = self._queue(c)
        body = await c.body()
        try:
            count = int(body.get("count", 1))
        except (TypeError, ValueError):
            raise bad_request("count must be an integer") from None
        ackmode = body.get("ackmode") or ("ack_requeue_true" if _bool(body.get("requeue"), True) else "ack_requeue_false")
        if ackmode not in ("ack_requeue_true", "ack_requeue_false", "reject_requeue_true", "reject_requeue_false"):
            raise bad_request(f"invalid ackmode {ackmode!r}")
        encoding = body.get("encoding", "auto")
        truncate = body.get("truncate")
        taken = []
        for _ in range(max(0, count)):
            item = q.get()
            if item is None:
                break
            taken.append(item)
        out = []
        for i, (_pos, msg) in enumerate(taken):
            data = msg.body
            if truncate is not None:
                try:
                    data = data[: int(truncate)]
                except (TypeError, ValueError):
                    pass
            if encoding == "base64":
                payload, penc = base64.b64encode(data).decode(), "base64"
            else:
                try:
                    payload, penc = data.decode("utf-8"), "string"
                except UnicodeDecodeError:
                    payload, penc = base64.b64encode(data).decode(), "base64"
            out.append({
                "payload_bytes": msg.size,
                "redelivered": msg.redelivered,
                "exchange": msg.exchange,
                "routing_key": msg.routing_key,
                "message_count": len(q.store) + (len(taken) - i - 1),
                "properties": _jsonable(props_json(msg)),
                "payload": payload,
                "payload_encoding": penc,
            })
        requeue = ackmode.endswith("requeue_true")
        tracer = vh.trace
        if tracer:
            what = "requeued" if requeue else ("acked" if ackmode.startswith("ack") else "rejected")
            for _pos, msg in taken:
                tracer.record(vh, msg, "redelivered" if msg.redelivered else "delivered", queue=q.name,
                              method="management get", connection="management API")
            for _pos, msg in taken:
                tracer.record(vh, msg, what, queue=q.name, connection="management API")
        for pos, msg in reversed(taken):
            if requeue:
                q.requeue(pos, msg)
            elif ackmode.startswith("ack"):
                q.ack(pos)
            else:
                q.discard(pos, msg, "rejected")
        if not requeue:
            q.schedule_dispatch()
        return jresp(out)

    # -- bindings ------------------------------------------------------------------------
    async def bindings(self, c: Ctx) -> web.Response:
        refs: list[tuple[Any, ...]] = []
        for vh in self._vhosts(c):
            refs += [(vh, "", q, q.name, {}) for q in list(vh.queues.values())]
            refs += [(vh, ex.name, b.destination, b.routing_key, b.arguments)
                     for ex in list(vh.exchanges.values()) if ex.name for b in list(ex.bindings.values())]
        return await c.listing_async(refs, lambda _r: "", lambda r: V.binding_json(*r))

    def _binding_ends(self, c: Ctx) -> Any:
        vh = c.vhost()
        src = vh.exchanges.get(c.params["source"])
        dtype = c.params["dtype"]
        if dtype == "q":
            dest: Any = vh.queues.get(c.params["dest"])
        elif dtype == "e":
            dest = vh.exchanges.get(c.params["dest"])
        else:
            raise not_found()
        if src is None or dest is None:
            raise not_found()
        return vh, src, dest

    async def binding_list(self, c: Ctx) -> web.Response:
        vh = self.broker.vhosts.get(c.params["vhost"])
        if vh is None or c.params["source"] not in vh.exchanges:
            return c.listing([])
        vh, src, dest = self._binding_ends(c)
        return c.listing([
            V.binding_json(vh, src.name, b.destination, b.routing_key, b.arguments)
            for b in src.bindings.values() if b.destination is dest
        ])

    async def binding_create(self, c: Ctx) -> web.Response:
        vh, src, dest = self._binding_ends(c)
        if not src.name:
            raise HTTPError(403, "access_refused", "operation not permitted on the default exchange")
        body = await c.body()
        rk = str(body.get("routing_key", ""))
        validate.name_length("routing_key", rk)
        args = dict(validate.arguments(body.get("arguments")))
        src.bind(dest, rk, args)
        self.broker.definitions_changed(src.durable and dest.durable)
        pk = V.properties_key(rk, args)
        return no_content(201, location=f"{c.params['dest']}/{pk}")

    def _find_binding(self, c: Ctx) -> Any:
        vh, src, dest = self._binding_ends(c)
        for b in src.bindings.values():
            if b.destination is dest and V.properties_key(b.routing_key, b.arguments) == c.params["props"]:
                return vh, src, b
        raise not_found()

    async def binding_get(self, c: Ctx) -> web.Response:
        vh, src, b = self._find_binding(c)
        return jresp(V.binding_json(vh, src.name, b.destination, b.routing_key, b.arguments))

    async def binding_delete(self, c: Ctx) -> web.Response:
        vh, src, b = self._find_binding(c)
        src.unbind(b.destination, b.routing_key, b.arguments)
        vh._maybe_auto_delete_exchange(src)
        self.broker.definitions_changed(src.durable)
        return no_content()

    # -- vhosts, users, permissions ------------------------------------------------------
    async def vhosts(self, c: Ctx) -> web.Response:
        return c.listing([V.vhost_json(self.broker, self.rates, vh) for vh in list(self.broker.vhosts.values())
                          if A.visible_vhost(c.user, vh.name)])

    async def vhost(self, c: Ctx) -> web.Response:
        return jresp(V.vhost_json(self.broker, self.rates, c.vhost()))

    async def vhost_put(self, c: Ctx) -> web.Response:
        c.admin()
        name = c.params["vhost"]
        body = await c.body()
        existed = name in self.broker.vhosts
        vh = self.broker.add_vhost(name)
        if not existed:
            # as RabbitMQ (maybe_grant_full_permissions): the creator may use the vhost it created
            c.user.permissions.setdefault(name, Permission(".*", ".*", ".*"))
            self.broker.definitions_changed(True)
        tags = validate.tags(body.get("tags", []))
        if isinstance(tags, str):
            tags = [t for t in tags.split(",") if t]
        if "description" in body or "tags" in body:
            vh.metadata = {"description": str(body.get("description", "")), "tags": list(tags)}  # type: ignore[attr-defined]
        if "tracing" in body:
            self.broker.tracer.set(name, firehose=_bool(body["tracing"]))
        return no_content(204 if existed else 201)

    async def vhost_delete(self, c: Ctx) -> web.Response:
        c.admin()
        if not self.broker.delete_vhost(c.params["vhost"]):
            raise not_found()
        return no_content()

    async def vhost_permissions(self, c: Ctx) -> web.Response:
        vh = c.vhost()
        return c.listing([p for p in self._perms() if p["vhost"] == vh.name])

    async def users(self, c: Ctx) -> web.Response:
        c.admin()
        return c.listing([V.user_json(u) for u in self.broker.users.values()])

    def _user(self, c: Ctx) -> User:
        u = self.broker.users.get(c.params["user"])
        if u is None:
            raise not_found()
        return u

    def _vhost_and_user(self, c: Ctx) -> tuple[VHost, User]:
        vh = self.broker.vhosts.get(c.params["vhost"])
        u = self.broker.users.get(c.params["user"])
        if vh is None or u is None:
            raise bad_request("vhost_or_user_not_found")
        return vh, u

    async def user(self, c: Ctx) -> web.Response:
        c.admin()
        return jresp(V.user_json(self._user(c)))

    async def user_put(self, c: Ctx) -> web.Response:
        c.admin()
        name = c.params["user"]
        body = await c.body()
        tags = validate.tags(body.get("tags", []))
        if isinstance(tags, str):
            tags = [t for t in tags.split(",") if t]
        if "password" in body:
            ph = hash_password(str(body["password"]))
        elif "password_hash" in body:
            ph = str(body["password_hash"])
        else:
            existing = self.broker.users.get(name)
            if existing is None:
                raise bad_request("password or password_hash is required")
            ph = existing.password_hash
        u = self.broker.users.get(name)
        if u is None:
            self.broker.users[name] = User(name, ph, list(tags), {})
            self.broker.definitions_changed(True)
            return no_content(201)
        u.password_hash = ph
        u.tags = list(tags)
        self.broker.definitions_changed(True)
        return no_content()

    async def user_delete(self, c: Ctx) -> web.Response:
        c.admin()
        name = c.params["user"]
        if self.broker.users.pop(name, None) is None:
            raise not_found()
        for conn in list(self.broker.connections):
            if conn.user is not None and conn.user.name == name:
                conn.close_by_broker(320, f"user '{name}' is deleted")
        self.broker.definitions_changed(True)
        return no_content()

    def _perms(self) -> list[dict[str, Any]]:
        return [
            {"user": u.name, "vhost": vh, "configure": p.configure, "write": p.write, "read": p.read}
            for u in self.broker.users.values()
            for vh, p in u.permissions.items()
        ]

    async def user_permissions(self, c: Ctx) -> web.Response:
        c.admin()
        u = self._user(c)
        return c.listing([p for p in self._perms() if p["user"] == u.name])

    async def permissions(self, c: Ctx) -> web.Response:
        c.admin()
        return c.listing(self._perms())

    async def permission(self, c: Ctx) -> web.Response:
        c.admin()
        for p in self._perms():
            if p["user"] == c.params["user"] and p["vhost"] == c.params["vhost"]:
                return jresp(p)
        raise not_found()

    async def permission_put(self, c: Ctx) -> web.Response:
        c.admin()
        vh, u = self._vhost_and_user(c)
        body = await c.body()
        for k in ("configure", "write", "read"):
            if k not in body:
                raise bad_request(f"[{{key_missing,{k}}}]")
        existed = vh.name in u.permissions
        u.permissions[vh.name] = Permission(*validate.permission(body))
        self.broker.definitions_changed(True)
        return no_content(204 if existed else 201)

    async def permission_delete(self, c: Ctx) -> web.Response:
        c.admin()
        u = self._user(c)
        if u.permissions.pop(c.params["vhost"], None) is None:
            raise not_found()
        self.broker.definitions_changed(True)
        return no_content()

    # -- topic permissions -------------------------------------------------------------------
    async def topic_permissions(self, c: Ctx) -> web.Response:
        out = []
        for u in ([self._user(c)] if "user" in c.params else list(self.broker.users.values())):
            for vh, table in u.topic_permissions.items():
                if "vhost" in c.params and vh != c.params["vhost"]:
                    continue
                for ex, tp in table.items():
                    out.append(tp.as_json(u.name, vh, ex))
        if "user" in c.params and not out:
            raise not_found()
        return jresp(out)

    async def topic_permission_put(self, c: Ctx) -> web.Response:
        c.admin()
        vh, u = self._vhost_and_user(c)
        body = await c.body()
        for k in ("exchange", "write", "read"):
            if k not in body:
                raise bad_request(f"[{{key_missing,{k}}}]")
        exchange, write, read = validate.topic_permission(body)
        table = u.topic_permissions.setdefault(vh.name, {})
        existed = exchange in table
        table[exchange] = TopicPermission(write, read)
        self.broker.definitions_changed(True)
        return no_content(204 if existed else 201)

    async def topic_permission_delete(self, c: Ctx) -> web.Response:
        c.admin()
        u = self._user(c)
        table = u.topic_permissions.get(c.params["vhost"])
        if not table:
            raise not_found()
        if "exchange" in c.params:
            if table.pop(c.params["exchange"], None) is None:
                raise not_found()
        else:
            table.clear()  # cleared, not dropped: open connections hold this table
        self.broker.definitions_changed(True)
        return no_content()

    # -- policies --------------------------------------------------------------------------
    async def policies(self, c: Ctx) -> web.Response:
        return c.listing([p.as_json() for vh in self._vhosts(c) for p in vh.policies.values()])

    async def policy(self, c: Ctx) -> web.Response:
        vh = c.vhost()
        p = vh.policies.get(c.params["name"])
        if p is None:
            raise not_found()
        return jresp(p.as_json())

    async def policy_put(self, c: Ctx) -> web.Response:
        vh = c.vhost()
        body = await c.body()
        validate.policy(body)
        existed = c.params["name"] in vh.policies
        p = Policy(vh.name, c.params["name"], str(body["pattern"]), dict(body["definition"] or {}),
                   int(body.get("priority", 0)), str(body.get("apply-to", "all")))
        self.broker.set_policy(p)
        return no_content(204 if existed else 201)

    async def policy_delete(self, c: Ctx) -> web.Response:
        vh = c.vhost()
        if not self.broker.delete_policy(vh.name, c.params["name"]):
            raise not_found()
        return no_content()

    # -- limits ------------------------------------------------------------------------------
    async def vhost_limits(self, c: Ctx) -> web.Response:
        vhosts = [c.vhost()] if "vhost" in c.params else [
            vh for vh in self.broker.vhosts.values() if A.visible_vhost(c.user, vh.name)]
        return jresp([{"vhost": vh.name, "value": dict(vh.limits)} for vh in vhosts if vh.limits])

    async def _limit_value(self, c: Ctx, known: tuple[str, ...]) -> int:
        body = await c.body()
        if "value" not in body:
            raise bad_request("[{key_missing,value}]")
        reason = validate_limit(c.params["limit"], body["value"], known)
        if reason is not None:
            raise bad_request(reason)
        return int(body["value"])

    async def vhost_limit_put(self, c: Ctx) -> web.Response:
        c.admin()
        vh = c.vhost()
        vh.limits[c.params["limit"]] = await self._limit_value(c, VHOST_LIMITS)
        self.broker.definitions_changed(True)
        return no_content()

    async def vhost_limit_delete(self, c: Ctx) -> web.Response:
        c.admin()
        vh = c.vhost()
        vh.limits.pop(c.params["limit"], None)
        self.broker.definitions_changed(True)
        return no_content()

    async def user_limits(self, c: Ctx) -> web.Response:
        users = [self._user(c)] if "user" in c.params else list(self.broker.users.values())
        return jresp([{"user": u.name, "value": dict(u.limits)} for u in users if u.limits])

    async def user_limit_put(self, c: Ctx) -> web.Response:
        c.admin()
        user = self._user(c)
        user.limits[c.params["limit"]] = await self._limit_value(c, USER_LIMITS)
        self.broker.definitions_changed(True)
        return no_content()

    async def user_limit_delete(self, c: Ctx) -> web.Response:
        c.admin()
        self._user(c).limits.pop(c.params["limit"], None)
        self.broker.definitions_changed(True)
        return no_content()

    # -- definitions -------------------------------------------------------------------------
    async def definitions(self, c: Ctx) -> web.Response:
        c.admin()
        data = export_definitions(self.broker, durable_only=True)
        if "vhost" in c.params:
            if c.params["vhost"] not in self.broker.vhosts:
                raise bad_request("vhost_not_found")
            vh = c.params["vhost"]
            data = {
                "rabbit_version": data["rabbit_version"],
                "rabbitmq_version": data["rabbitmq_version"],
                "product_name": data["product_name"],
                "product_version": data["product_version"],
                **{k: [dict((kk, vv) for kk, vv in i.items() if kk != "vhost") for i in data[k] if i.get("vhost") == vh]
                   for k in ("policies", "queues", "exchanges", "bindings")},
                "parameters": [],
            }
        r = jresp(data)
        if _bool(c.request.query.get("download")) or c.request.query.get("download"):
            r.headers["Content-Disposition"] = f'attachment; filename="{c.request.query.get("download")}"'
        return r

    async def definitions_import(self, c: Ctx) -> web.Response:
        c.admin()
        body = await self._definitions_body(c)
        if "file" in body and isinstance(body["file"], str):
            body = _json_object(body["file"])
        validate.definitions(body)
        if "vhost" in c.params:
            vh = c.vhost().name
            for k in ("policies", "queues", "exchanges", "bindings"):
                for i in body.get(k, []):
                    i["vhost"] = vh
            body = {k: body.get(k, []) for k in ("policies", "queues", "exchanges", "bindings")}
        try:
            import_definitions(self.broker, body)
        except (KeyError, TypeError, ValueError) as exc:
            raise bad_request(f"invalid definitions: {exc}") from None
        self.broker.definitions_changed(True)
        return no_content()

    async def _definitions_body(self, c: Ctx) -> dict[str, Any]:
        """RabbitMQ takes definitions as application/json or as a multipart/form-data
        upload (its web UI), and answers 415 to anything else: a plain HTML form
        (text/plain, urlencoded) must not be able to post them from another site."""
        ctype = c.request.content_type
        if ctype == JSON_CT:
            return await c.body()
        if ctype == "multipart/form-data":
            form = await c.request.post()
            f = form.get("file")
            raw = f.file.read() if hasattr(f, "file") else f
            if not isinstance(raw, (str, bytes)):
                raise bad_request("[{key_missing,file}]")
            return _json_object(raw)
        raise web.HTTPUnsupportedMediaType(body=b"")  # RabbitMQ: 415, empty body

    # -- health ---------------------------------------------------------------------------------
    async def health_ok(self, c: Ctx) -> web.Response:
        return jresp({"status": "ok"})

    async def health_alarms(self, c: Ctx) -> web.Response:
        if self.broker.alarm_active:
            return jresp({"status": "failed", "reason": f"resource alarm(s) in effect: {self.broker.alarm_reason}",
                          "alarms": [{"node": V.node_name(self.broker), "resource": r} for r in sorted(self.broker.alarms)]},
                         503)
        return jresp({"status": "ok"})

    async def health_port(self, c: Ctx) -> web.Response:
        try:
            port = int(c.params["port"])
        except ValueError:
            raise bad_request("port must be an integer") from None
        cfg = self.broker.config
        ports = {self.broker.port, cfg.management_port, cfg.prometheus_port}
        if port in ports:
            return jresp({"status": "ok", "port": port})
        return jresp({"status": "failed", "reason": f"No active listener on port {port}", "missing": port,
                      "ports": sorted(p for p in ports if p)}, 503)

    async def aliveness(self, c: Ctx) -> web.Response:
        c.vhost()
        return jresp({"status": "ok"})

    # -- tracing -----------------------------------------------------------------------------------
    async def trace(self, c: Ctx) -> web.Response:
        vhost = c.request.query.get("vhost")
        events = [e for e in self.broker.tracer.events(c.params["message_id"], vhost) if c.visible(e["vhost"])]
        return jresp({"message_id": c.params["message_id"], "events": events})

    # -- delayed messages --------------------------------------------------------------------------
    async def delayed(self, c: Ctx) -> web.Response:
        return c.listing([D.summary(ex) for ex in D.delayed_exchanges(self._vhosts(c))])

    async def delayed_pending(self, c: Ctx) -> web.Response:
        _, ex = self._exchange(c)
        if not isinstance(ex, DelayedExchange):
            raise bad_request(f"exchange '{ex.name}' is not an x-delayed-message exchange")
        try:
            limit = int(c.request.query.get("limit", "100"))
        except ValueError:
            raise bad_request("limit must be an integer") from None
        return jresp(D.pending(ex, limit))

    async def tracing_get(self, c: Ctx) -> web.Response:
        vh = c.vhost()
        return jresp({"vhost": vh.name, **self.broker.tracer.status(vh.name)})

    async def tracing_put(self, c: Ctx) -> web.Response:
        c.admin()
        vh = c.vhost()
        body = await c.body()
        st = self.broker.tracer.set(
            vh.name,
            firehose=_bool(body["firehose"]) if "firehose" in body else None,
            journey=_bool(body["journey"]) if "journey" in body else None,
        )
        return jresp({"vhost": vh.name, **st})


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


def _json_object(raw: str | bytes) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise bad_request(f"invalid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise bad_request("JSON object expected")
    validate.check_depth(data)
    return data


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


def _bindings_to(vh: VHost, dest: Any) -> list[dict[str, Any]]:
    """Explicit bindings whose destination is ``dest`` (JSON built for those only, not the whole vhost's)."""
    return [V.binding_json(vh, ex.name, b.destination, b.routing_key, b.arguments)
            for ex in list(vh.exchanges.values()) if ex.name
            for b in list(ex.bindings.values()) if b.destination is dest]


def _name(obj: Any) -> str:
    return str(obj.name)


def _owner(ch: Any) -> str | None:
    """The user a channel belongs to (its connection's)."""
    user = ch.conn.user
    return user.name if user is not None else None


# ----------------------------------------------------------------------------- apps
async def _index(request: web.Request) -> web.StreamResponse:
    r = web.FileResponse(STATIC / "index.html")
    # the dashboard loads nothing from elsewhere and is never framed (clickjacking)
    r.headers["Content-Security-Policy"] = (
        "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'"
    )
    r.headers["X-Frame-Options"] = "DENY"
    return r


def make_management_app(broker: Broker) -> web.Application:
    api = Api(broker)
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app["api"] = api
    app.router.add_route("*", "/api/{tail:.*}", api.handle)
    app.router.add_route("*", "/api", api.handle)
    session.install(app, api)

    async def start_history(app: web.Application) -> None:
        api.history.start()

    async def stop_history(app: web.Application) -> None:
        await api.history.stop()

    app.on_startup.append(start_history)
    app.on_cleanup.append(stop_history)
    if STATIC.is_dir():
        app.router.add_get("/", _index)
        app.router.add_static("/static/", STATIC, show_index=False)
    return app


def make_prometheus_app(broker: Broker) -> web.Application:
    """``/metrics`` and ``/metrics/per-object`` (see .scrape: incremental, shared, cached, optional basic auth)."""
    from prometheus_client import CONTENT_TYPE_LATEST
    from warren.server.http.management.scrape import Scraper, credentials_ok

    cfg = broker.config
    scrapers = {False: Scraper(broker, False, 0.0), True: Scraper(broker, True, cfg.prometheus_per_object_interval)}

    def handler(per_object: bool) -> Handler:
        async def scrape(request: web.Request) -> web.Response:
            if cfg.prometheus_user and not credentials_ok(
                    request.headers.get("Authorization", ""), cfg.prometheus_user, cfg.prometheus_pass):
                return web.Response(status=401, text="401 Unauthorized\n",
                                    headers={"WWW-Authenticate": 'Basic realm="warren prometheus"'})
            body = await scrapers[per_object].body()
            return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
        return scrape  # type: ignore[return-value]

    app = web.Application()
    app.router.add_get("/metrics", handler(False))
    app.router.add_get("/metrics/per-object", handler(True))
    return app
