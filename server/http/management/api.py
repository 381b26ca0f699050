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

import base64
import binascii
import logging
from typing import TYPE_CHECKING
from urllib.parse import unquote

from aiohttp import web
from warren.server.core.addresses import loopback_refused
from warren.server.core.errlog import clip, describe
from warren.server.core.errors import ChannelError
from warren.server.http.management import authz as A
from warren.server.http.management import (
    bindings,
    connections,
    definitions,
    exchanges,
    health,
    overview,
    queues,
    session,
    tracing,
    users,
    validate,
    vhosts,
)
from warren.server.http.management import views as V
from warren.server.http.management.common import STATIC, Ctx, Handler, HTTPError, jresp, not_found
from warren.server.http.management.history import History
from warren.server.http.management.session import COOKIE, SessionError, Sessions
from warren.server.model.auth import User, check_password

if TYPE_CHECKING:
    from warren.server.node.broker import Broker

log = logging.getLogger("warren.management")


class Api:
    """Route table, authentication and dispatch of the management API; the handlers
    live in one module per resource (overview, connections, exchanges, queues,
    bindings, vhosts, users, definitions, health, tracing)."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.rates = V.Rates()
        self.sessions = Sessions()
        self.history = History(broker)
        self.routes: list[tuple[str, list[str], Handler, A.Rule]] = []
        r = self.add
        r("GET", "overview", overview.overview)
        r("GET", "whoami", overview.whoami)
        r("GET", "nodes", overview.nodes)
        r("GET", "nodes/{name}", overview.node)
        r("GET", "extensions", overview.extensions)
        r("GET", "cluster-name", overview.cluster_name)
        r("GET", "cluster", overview.cluster_status)
        r("DELETE", "cluster/nodes/{name}", overview.forget_node)
        r("GET", "connections", connections.connections)
        r("GET", "connections/{name}", connections.connection)
        r("DELETE", "connections/{name}", connections.connection_close)
        r("GET", "connections/{name}/channels", connections.connection_channels)
        r("GET", "vhosts/{vhost}/connections", connections.vhost_connections)
        r("GET", "channels", connections.channels)
        r("GET", "vhosts/{vhost}/channels", connections.vhost_channels)
        r("GET", "channels/{name}", connections.channel)
        r("GET", "consumers", connections.consumers)
        r("GET", "consumers/{vhost}", connections.consumers)
        r("GET", "exchanges", exchanges.exchanges)
        r("GET", "exchanges/{vhost}", exchanges.exchanges)
        r("GET", "exchanges/{vhost}/{name}", exchanges.exchange)
        r("PUT", "exchanges/{vhost}/{name}", exchanges.exchange_put)
        r("DELETE", "exchanges/{vhost}/{name}", exchanges.exchange_delete)
        r("GET", "exchanges/{vhost}/{name}/bindings/source", exchanges.exchange_bindings_source)
        r("GET", "exchanges/{vhost}/{name}/bindings/destination", exchanges.exchange_bindings_destination)
        r("POST", "exchanges/{vhost}/{name}/publish", exchanges.publish)
        r("GET", "queues", queues.queues)
        r("GET", "queues/{vhost}", queues.queues)
        r("GET", "queues/{vhost}/{name}", queues.queue)
        r("PUT", "queues/{vhost}/{name}", queues.queue_put)
        r("DELETE", "queues/{vhost}/{name}", queues.queue_delete)
        r("DELETE", "queues/{vhost}/{name}/contents", queues.queue_purge)
        r("GET", "queues/{vhost}/{name}/bindings", queues.queue_bindings)
        r("POST", "queues/{vhost}/{name}/get", queues.queue_get)
        r("GET", "bindings", bindings.bindings)
        r("GET", "bindings/{vhost}", bindings.bindings)
        r("GET", "bindings/{vhost}/e/{source}/{dtype}/{dest}", bindings.binding_list)
        r("POST", "bindings/{vhost}/e/{source}/{dtype}/{dest}", bindings.binding_create)
        r("GET", "bindings/{vhost}/e/{source}/{dtype}/{dest}/{props}", bindings.binding_get)
        r("DELETE", "bindings/{vhost}/e/{source}/{dtype}/{dest}/{props}", bindings.binding_delete)
        r("GET", "vhosts", vhosts.vhosts)
        r("GET", "vhosts/{vhost}", vhosts.vhost)
        r("PUT", "vhosts/{vhost}", vhosts.vhost_put)
        r("DELETE", "vhosts/{vhost}", vhosts.vhost_delete)
        r("GET", "vhosts/{vhost}/permissions", vhosts.vhost_permissions)
        r("GET", "users", users.users)
        r("GET", "users/{user}", users.user)
        r("PUT", "users/{user}", users.user_put)
        r("DELETE", "users/{user}", users.user_delete)
        r("GET", "users/{user}/permissions", users.user_permissions)
        r("GET", "permissions", users.permissions)
        r("GET", "permissions/{vhost}/{user}", users.permission)
        r("PUT", "permissions/{vhost}/{user}", users.permission_put)
        r("DELETE", "permissions/{vhost}/{user}", users.permission_delete)
        r("GET", "policies", vhosts.policies)
        r("GET", "policies/{vhost}", vhosts.policies)
        r("GET", "policies/{vhost}/{name}", vhosts.policy)
        r("PUT", "policies/{vhost}/{name}", vhosts.policy_put)
        r("DELETE", "policies/{vhost}/{name}", vhosts.policy_delete)
        r("GET", "topic-permissions", users.topic_permissions)
        r("GET", "topic-permissions/{vhost}/{user}", users.topic_permissions)
        r("PUT", "topic-permissions/{vhost}/{user}", users.topic_permission_put)
        r("DELETE", "topic-permissions/{vhost}/{user}", users.topic_permission_delete)
        r("DELETE", "topic-permissions/{vhost}/{user}/{exchange}", users.topic_permission_delete)
        r("GET", "vhost-limits", vhosts.vhost_limits)
        r("GET", "vhost-limits/{vhost}", vhosts.vhost_limits)
        r("PUT", "vhost-limits/{vhost}/{limit}", vhosts.vhost_limit_put)
        r("DELETE", "vhost-limits/{vhost}/{limit}", vhosts.vhost_limit_delete)
        r("GET", "user-limits", users.user_limits)
        r("GET", "user-limits/{user}", users.user_limits)
        r("PUT", "user-limits/{user}/{limit}", users.user_limit_put)
        r("DELETE", "user-limits/{user}/{limit}", users.user_limit_delete)
        r("GET", "definitions", definitions.definitions)
        r("POST", "definitions", definitions.definitions_import)
        r("GET", "definitions/{vhost}", definitions.definitions)
        r("POST", "definitions/{vhost}", definitions.definitions_import)
        r("GET", "aliveness-test/{vhost}", health.aliveness)
        r("GET", "healthchecks/node", health.health_ok)
        r("GET", "healthchecks/node/{node}", health.health_ok)
        r("GET", "health/checks/alarms", health.health_alarms)
        r("GET", "health/checks/local-alarms", health.health_alarms)
        r("GET", "health/checks/virtual-hosts", health.health_ok)
        r("GET", "health/checks/node-is-quorum-critical", health.health_ok)
        r("GET", "health/checks/node-is-mirror-sync-critical", health.health_ok)
        r("GET", "health/checks/port-listener/{port}", health.health_port)
        r("GET", "health/checks/protocol-listener/{proto}", health.health_ok)
        r("GET", "health/checks/certificate-expiration/{within}/{unit}", health.health_ok)
        r("GET", "trace/{message_id}", tracing.trace)
        r("GET", "delayed", exchanges.delayed)
        r("GET", "delayed/{vhost}", exchanges.delayed)
        r("GET", "exchanges/{vhost}/{name}/delayed", exchanges.delayed_pending)
        r("GET", "tracing/{vhost}", tracing.tracing_get)
        r("PUT", "tracing/{vhost}", tracing.tracing_put)

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
            persistence = self.broker.persistence
            before = persistence.changes
            response = await handler(Ctx(self, request, params, user))
            if persistence.mirror is not None and persistence.changes != before:
                # a cluster's definitions: answer once the change is saved (etcd too),
                # as the AMQP replies do (amqp/replies.py)
                if not await persistence.saved():
                    raise HTTPError(500, "internal_server_error", "the definitions could not be saved")
            return response
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
        err = self.check_login(name, password, request.remote)
        if err is not None:
            log.warning("management login refused user=%s peer=%s reason=%s", clip(name), request.remote, err)
            # RabbitMQ spells the two differently
            raise HTTPError(401, "not_authorized" if err == "Login failed" else "not_authorised", err)
        return self.broker.users[name]

    def check_login(self, name: str, password: str, peer: str | None) -> str | None:
        """None if ``name``/``password`` may use the management API from ``peer`` (the
        client's IP), else the reason why not (RabbitMQ's texts, in its order)."""
        user = self.broker.users.get(name)
        if user is None or not check_password(password, user.password_hash):
            return "Login failed"
        if loopback_refused(name, peer, self.broker.config.loopback_users):
            return "User can only log in via localhost"
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
        if loopback_refused(name, request.remote, self.broker.config.loopback_users):
            raise HTTPError(401, "not_authorised", "User can only log in via localhost")
        return user

    # -- overview ------------------------------------------------------------------


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
