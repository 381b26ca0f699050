"""Message journeys (trace) and the per-vhost tracing switches."""

from __future__ import annotations

from aiohttp import web
from warren.server.http.management.common import (
    Ctx,
    _bool,
    jresp,
)


async def trace(c: Ctx) -> web.Response:
    vhost = c.request.query.get("vhost")
    events = [e for e in c.broker.tracer.events(c.params["message_id"], vhost) if c.visible(e["vhost"])]
    return jresp({"message_id": c.params["message_id"], "events": events})


async def tracing_get(c: Ctx) -> web.Response:
    vh = c.vhost()
    return jresp({"vhost": vh.name, **c.broker.tracer.status(vh.name)})


async def tracing_put(c: Ctx) -> web.Response:
    c.admin()
    vh = c.vhost()
    body = await c.body()
    st = c.broker.tracer.set(
        vh.name,
        firehose=_bool(body["firehose"]) if "firehose" in body else None,
        journey=_bool(body["journey"]) if "journey" in body else None,
    )
    return jresp({"vhost": vh.name, **st})
