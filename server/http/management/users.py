"""Users, permissions, topic permissions and user limits."""

from __future__ import annotations

from aiohttp import web
from warren.server.http.management import validate
from warren.server.http.management import views as V
from warren.server.http.management.common import (
    Ctx,
    _limit_value,
    _perms,
    _user,
    _vhost_and_user,
    bad_request,
    jresp,
    no_content,
    not_found,
)
from warren.server.model.auth import Permission, TopicPermission, User, hash_password
from warren.server.model.limits import USER_LIMITS


async def users(c: Ctx) -> web.Response:
    c.admin()
    return c.listing([V.user_json(u) for u in c.broker.users.values()])


async def user(c: Ctx) -> web.Response:
    c.admin()
    return jresp(V.user_json(_user(c)))


async def user_put(c: Ctx) -> web.Response:
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
        existing = c.broker.users.get(name)
        if existing is None:
            raise bad_request("password or password_hash is required")
        ph = existing.password_hash
    u = c.broker.users.get(name)
    if u is None:
        c.broker.users[name] = User(name, ph, list(tags), {})
        c.broker.definitions_changed(True)
        return no_content(201)
    u.password_hash = ph
    u.tags = list(tags)
    c.broker.definitions_changed(True)
    return no_content()


async def user_delete(c: Ctx) -> web.Response:
    c.admin()
    name = c.params["user"]
    if c.broker.users.pop(name, None) is None:
        raise not_found()
    for conn in list(c.broker.connections):
        if conn.user is not None and conn.user.name == name:
            conn.close_by_broker(320, f"user '{name}' is deleted")
    c.broker.definitions_changed(True)
    return no_content()


async def user_permissions(c: Ctx) -> web.Response:
    c.admin()
    u = _user(c)
    return c.listing([p for p in _perms(c) if p["user"] == u.name])


async def permissions(c: Ctx) -> web.Response:
    c.admin()
    return c.listing(_perms(c))


async def permission(c: Ctx) -> web.Response:
    c.admin()
    for p in _perms(c):
        if p["user"] == c.params["user"] and p["vhost"] == c.params["vhost"]:
            return jresp(p)
    raise not_found()


async def permission_put(c: Ctx) -> web.Response:
    c.admin()
    vh, u = _vhost_and_user(c)
    body = await c.body()
    for k in ("configure", "write", "read"):
        if k not in body:
            raise bad_request(f"[{{key_missing,{k}}}]")
    existed = vh.name in u.permissions
    u.permissions[vh.name] = Permission(*validate.permission(body))
    c.broker.definitions_changed(True)
    return no_content(204 if existed else 201)


async def permission_delete(c: Ctx) -> web.Response:
    c.admin()
    u = _user(c)
    if u.permissions.pop(c.params["vhost"], None) is None:
        raise not_found()
    c.broker.definitions_changed(True)
    return no_content()


async def topic_permissions(c: Ctx) -> web.Response:
    out = []
    for u in ([_user(c)] if "user" in c.params else list(c.broker.users.values())):
        for vh, table in u.topic_permissions.items():
            if "vhost" in c.params and vh != c.params["vhost"]:
                continue
            for ex, tp in table.items():
                out.append(tp.as_json(u.name, vh, ex))
    if "user" in c.params and not out:
        raise not_found()
    return jresp(out)


async def topic_permission_put(c: Ctx) -> web.Response:
    c.admin()
    vh, u = _vhost_and_user(c)
    body = await c.body()
    for k in ("exchange", "write", "read"):
        if k not in body:
            raise bad_request(f"[{{key_missing,{k}}}]")
    exchange, write, read = validate.topic_permission(body)
    table = u.topic_permissions.setdefault(vh.name, {})
    existed = exchange in table
    table[exchange] = TopicPermission(write, read)
    c.broker.definitions_changed(True)
    return no_content(204 if existed else 201)


async def topic_permission_delete(c: Ctx) -> web.Response:
    c.admin()
    u = _user(c)
    table = u.topic_permissions.get(c.params["vhost"])
    if not table:
        raise not_found()
    if "exchange" in c.params:
        if table.pop(c.params["exchange"], None) is None:
            raise not_found()
    else:
        table.clear()  # cleared, not dropped: open connections hold this table
    c.broker.definitions_changed(True)
    return no_content()


async def user_limits(c: Ctx) -> web.Response:
    users = [_user(c)] if "user" in c.params else list(c.broker.users.values())
    return jresp([{"user": u.name, "value": dict(u.limits)} for u in users if u.limits])


async def user_limit_put(c: Ctx) -> web.Response:
    c.admin()
    user = _user(c)
    user.limits[c.params["limit"]] = await _limit_value(c, USER_LIMITS)
    c.broker.definitions_changed(True)
    return no_content()


async def user_limit_delete(c: Ctx) -> web.Response:
    c.admin()
    _user(c).limits.pop(c.params["limit"], None)
    c.broker.definitions_changed(True)
    return no_content()
