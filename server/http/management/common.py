"""What every management handler uses: the request context, errors, JSON replies and lookups."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from aiohttp import web
from warren.protocol.constants import ACCESS_REFUSED, NOT_FOUND
from warren.protocol.errors import AMQPError
from warren.protocol.table import long
from warren.server.http.management import authz as A
from warren.server.http.management import listing as L
from warren.server.http.management import validate
from warren.server.http.management import views as V
from warren.server.model import commands as cmd
from warren.server.model.auth import (
    User,
)
from warren.server.model.definitions import _jsonable
from warren.server.model.limits import validate as validate_limit

if TYPE_CHECKING:
    from warren.server.http.management.api import Api
    from warren.server.model.vhost import VHost

STATIC = Path(__file__).resolve().parents[2] / "static"
JSON_CT = "application/json"
#: seconds to receive a request body once its headers arrived
BODY_TIMEOUT = 30.0

Handler = Callable[["Ctx"], Awaitable[web.StreamResponse]]
T = TypeVar("T")


class HTTPError(Exception):
    def __init__(self, status: int, error: str, reason: str | list[Any]) -> None:
        super().__init__(reason)
        self.status = status
        self.error = error
        self.reason = reason


def not_found() -> HTTPError:
    return HTTPError(404, "Object Not Found", "Not Found")


def bad_request(reason: str) -> HTTPError:
    return HTTPError(400, "bad_request", reason)


def jresp(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=L.dumps(data, _default).encode(), status=status, content_type=JSON_CT)


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


def command(fn: Callable[..., T], *args: Any) -> T:
    """Run a topology command of :mod:`warren.server.model.commands` and answer its AMQP
    error as RabbitMQ's management plugin does (it runs the method on an internal
    channel): access refused -> 401 "Access refused.", not found -> 404 with the AMQP
    text, anything else (precondition, unknown exchange type...) -> 400 with the text."""
    try:
        return fn(*args)
    except AMQPError as exc:
        if exc.code == ACCESS_REFUSED:
            raise HTTPError(401, "not_authorised", A.REFUSED) from None
        if exc.code == NOT_FOUND:
            raise HTTPError(404, "not_found", exc.text) from None
        raise bad_request(exc.text) from None


def flag(body: dict[str, Any], key: str) -> bool:
    """A declare's boolean field as RabbitMQ's management plugin reads it (parse_bool):
    JSON true/false or the strings "true"/"false"; absent is false (the AMQP method's
    default, so a queue or exchange PUT without ``durable`` is transient, as in RabbitMQ)."""
    v = body.get(key)
    if v is None or v is False or v == "false":
        return False
    if v is True or v == "true":
        return True
    raise HTTPError(400, "bad_request", ["not_boolean", v])  # RabbitMQ's reason is a list


def actor(c: Ctx, vh: VHost) -> cmd.Actor:
    """The request's user running a topology command: its configure/write/read
    permissions were checked by the route's rule (.authz, with the API's own answers);
    its topic permissions apply to binds, as RabbitMQ's internal channel applies them.
    No session: another connection's exclusive queue is locked to the API, as in RabbitMQ."""
    return cmd.Actor(c.user.name, None, c.user.topic_permissions.get(vh.name))


def amqp_arguments(args: dict[str, Any]) -> dict[str, Any]:
    """``arguments`` of a JSON body as the AMQP table RabbitMQ makes of them: a JSON
    integer is a ``long`` (so an inequivalent-argument error names that type)."""
    out: dict[str, Any] = {}
    for k, v in args.items():
        if isinstance(v, int) and not isinstance(v, bool) and -(2**63) <= v < 2**63:
            v = long(v)
        out[k] = v
    return out


def _vhosts(c: Ctx) -> list[VHost]:
    if "vhost" in c.params:
        return [c.vhost()]
    return [vh for vh in c.broker.vhosts.values() if c.visible(vh.name)]


def _missing_vhost(c: Ctx) -> bool:
    """RabbitMQ's binding listings answer [] (not 404) for a vhost or exchange that does not exist."""
    return c.params["vhost"] not in c.broker.vhosts


def _exchange(c: Ctx) -> Any:
    vh = c.vhost()
    name = c.params["name"]
    if name == "amq.default":
        name = ""
    ex = vh.exchanges.get(name)
    if ex is None:
        raise not_found()
    return vh, ex


def _user(c: Ctx) -> User:
    u = c.broker.users.get(c.params["user"])
    if u is None:
        raise not_found()
    return u


def _vhost_and_user(c: Ctx) -> tuple[VHost, User]:
    vh = c.broker.vhosts.get(c.params["vhost"])
    u = c.broker.users.get(c.params["user"])
    if vh is None or u is None:
        raise bad_request("vhost_or_user_not_found")
    return vh, u


def _perms(c: Ctx) -> list[dict[str, Any]]:
    return [
        {"user": u.name, "vhost": vh, "configure": p.configure, "write": p.write, "read": p.read}
        for u in c.broker.users.values()
        for vh, p in u.permissions.items()
    ]


async def _limit_value(c: Ctx, known: tuple[str, ...]) -> int:
    body = await c.body()
    if "value" not in body:
        raise bad_request("[{key_missing,value}]")
    reason = validate_limit(c.params["limit"], body["value"], known)
    if reason is not None:
        raise bad_request(reason)
    return int(body["value"])


def _json_object(raw: str | bytes) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise bad_request(f"invalid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise bad_request("JSON object expected")
    validate.check_depth(data)
    return data


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
