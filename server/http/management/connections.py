"""Connections, channels and consumers."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from warren.server.http.management import authz as A
from warren.server.http.management import views as V
from warren.server.http.management.common import (
    Ctx,
    _name,
    _owner,
    jresp,
    no_content,
    not_found,
)


def _conn(c: Ctx) -> Any:
    for conn in list(c.broker.connections):
        if conn.name == c.params["name"] and conn.vhost is not None and conn.user is not None:
            A.may_touch_owned(c.user, conn.user.name, c.request.method)
            return conn
    raise not_found()


async def _conns(c: Ctx, vhost: str | None = None) -> web.Response:
    objs = [conn for conn in list(c.broker.connections)
            if conn.vhost is not None and conn.user is not None and c.sees(conn.user.name)
            and (vhost is None or conn.vhost.name == vhost)]
    return await c.listing_async(objs, _name, lambda conn: V.connection_json(c.broker, c.api.rates, conn))


async def connections(c: Ctx) -> web.Response:
    return await _conns(c)


async def vhost_connections(c: Ctx) -> web.Response:
    return await _conns(c, c.vhost().name)


async def connection(c: Ctx) -> web.Response:
    return jresp(V.connection_json(c.broker, c.api.rates, _conn(c)))


async def connection_close(c: Ctx) -> web.Response:
    conn = _conn(c)
    reason = c.request.headers.get("X-Reason", "Closed via management plugin")
    conn.close_by_broker(320, reason)  # close_text adds the "CONNECTION_FORCED - " prefix
    return no_content()


async def connection_channels(c: Ctx) -> web.Response:
    conn = _conn(c)
    return c.listing([V.channel_json(c.broker, c.api.rates, ch) for ch in list(conn.channels.values()) if not ch.closing])


def _chans(c: Ctx, vhost: str | None = None) -> list[dict[str, Any]]:
    return [
        V.channel_json(c.broker, c.api.rates, ch)
        for ch in V.all_channels(c.broker)
        if c.sees(_owner(ch)) and (vhost is None or ch.vhost.name == vhost)
    ]


async def channels(c: Ctx) -> web.Response:
    return c.listing(_chans(c))


async def vhost_channels(c: Ctx) -> web.Response:
    return c.listing(_chans(c, c.vhost().name))


async def channel(c: Ctx) -> web.Response:
    for ch in V.all_channels(c.broker):
        if V.channel_name(ch) == c.params["name"]:
            A.may_touch_owned(c.user, _owner(ch), c.request.method)
            return jresp(V.channel_json(c.broker, c.api.rates, ch))
    raise not_found()


async def consumers(c: Ctx) -> web.Response:
    vhost = c.vhost().name if "vhost" in c.params else None
    out = []
    for ch in V.all_channels(c.broker):
        if not c.visible(ch.vhost.name) or (vhost is not None and ch.vhost.name != vhost):
            continue
        out.extend(V.consumer_json(cons) for cons in list(ch.consumers.values()))
    return c.listing(out)
