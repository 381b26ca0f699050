"""Virtual hosts, their policies and limits."""

from __future__ import annotations

from aiohttp import web
from warren.server.http.management import authz as A
from warren.server.http.management import validate
from warren.server.http.management import views as V
from warren.server.http.management.common import (
    Ctx,
    _bool,
    _limit_value,
    _perms,
    _vhosts,
    jresp,
    no_content,
    not_found,
)
from warren.server.model.auth import Permission
from warren.server.model.limits import VHOST_LIMITS
from warren.server.model.policies import Policy


async def vhosts(c: Ctx) -> web.Response:
    return c.listing([V.vhost_json(c.broker, c.api.rates, vh) for vh in list(c.broker.vhosts.values())
                      if A.visible_vhost(c.user, vh.name)])


async def vhost(c: Ctx) -> web.Response:
    return jresp(V.vhost_json(c.broker, c.api.rates, c.vhost()))


async def vhost_put(c: Ctx) -> web.Response:
    c.admin()
    name = c.params["vhost"]
    body = await c.body()
    existed = name in c.broker.vhosts
    vh = c.broker.add_vhost(name)
    if not existed:
        # as RabbitMQ (maybe_grant_full_permissions): the creator may use the vhost it created
        c.user.permissions.setdefault(name, Permission(".*", ".*", ".*"))
        c.broker.definitions_changed(True)
    tags = validate.tags(body.get("tags", []))
    if isinstance(tags, str):
        tags = [t for t in tags.split(",") if t]
    if "description" in body or "tags" in body:
        vh.metadata = {"description": str(body.get("description", "")), "tags": list(tags)}  # type: ignore[attr-defined]
    if "tracing" in body:
        c.broker.tracer.set(name, firehose=_bool(body["tracing"]))
    return no_content(204 if existed else 201)


async def vhost_delete(c: Ctx) -> web.Response:
    c.admin()
    if not c.broker.delete_vhost(c.params["vhost"]):
        raise not_found()
    return no_content()


async def vhost_permissions(c: Ctx) -> web.Response:
    vh = c.vhost()
    return c.listing([p for p in _perms(c) if p["vhost"] == vh.name])


async def policies(c: Ctx) -> web.Response:
    return c.listing([p.as_json() for vh in _vhosts(c) for p in vh.policies.values()])


async def policy(c: Ctx) -> web.Response:
    vh = c.vhost()
    p = vh.policies.get(c.params["name"])
    if p is None:
        raise not_found()
    return jresp(p.as_json())


async def policy_put(c: Ctx) -> web.Response:
    vh = c.vhost()
    body = await c.body()
    validate.policy(body)
    existed = c.params["name"] in vh.policies
    p = Policy(vh.name, c.params["name"], str(body["pattern"]), dict(body["definition"] or {}),
               int(body.get("priority", 0)), str(body.get("apply-to", "all")))
    c.broker.set_policy(p)
    return no_content(204 if existed else 201)


async def policy_delete(c: Ctx) -> web.Response:
    vh = c.vhost()
    if not c.broker.delete_policy(vh.name, c.params["name"]):
        raise not_found()
    return no_content()


async def vhost_limits(c: Ctx) -> web.Response:
    vhosts = [c.vhost()] if "vhost" in c.params else [
        vh for vh in c.broker.vhosts.values() if A.visible_vhost(c.user, vh.name)]
    return jresp([{"vhost": vh.name, "value": dict(vh.limits)} for vh in vhosts if vh.limits])


async def vhost_limit_put(c: Ctx) -> web.Response:
    c.admin()
    vh = c.vhost()
    vh.limits[c.params["limit"]] = await _limit_value(c, VHOST_LIMITS)
    c.broker.definitions_changed(True)
    return no_content()


async def vhost_limit_delete(c: Ctx) -> web.Response:
    c.admin()
    vh = c.vhost()
    vh.limits.pop(c.params["limit"], None)
    c.broker.definitions_changed(True)
    return no_content()
