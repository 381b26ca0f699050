"""Health checks and the aliveness test."""

from __future__ import annotations

from aiohttp import web
from warren.server.http.management import views as V
from warren.server.http.management.common import (
    Ctx,
    bad_request,
    jresp,
)


async def health_ok(c: Ctx) -> web.Response:
    return jresp({"status": "ok"})


async def health_alarms(c: Ctx) -> web.Response:
    if c.broker.alarm_active:
        return jresp({"status": "failed", "reason": f"resource alarm(s) in effect: {c.broker.alarm_reason}",
                      "alarms": [{"node": V.node_name(c.broker), "resource": r} for r in sorted(c.broker.alarms)]},
                     503)
    return jresp({"status": "ok"})


async def health_port(c: Ctx) -> web.Response:
    try:
        port = int(c.params["port"])
    except ValueError:
        raise bad_request("port must be an integer") from None
    cfg = c.broker.config
    ports = {c.broker.port, cfg.management_port, cfg.prometheus_port}
    if port in ports:
        return jresp({"status": "ok", "port": port})
    return jresp({"status": "failed", "reason": f"No active listener on port {port}", "missing": port,
                  "ports": sorted(p for p in ports if p)}, 503)


async def aliveness(c: Ctx) -> web.Response:
    c.vhost()
    return jresp({"status": "ok"})
