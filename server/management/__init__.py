"""Management HTTP API (RabbitMQ-compatible), dashboard, and the Prometheus listener.

Both listeners are aiohttp servers on the broker's own event loop, started by
``Broker.start`` (:func:`start_http`) and stopped by ``Broker.stop``
(:func:`stop_http`). A port of 0 in the configuration disables a listener.
A listener that cannot bind is logged and skipped: the AMQP listener keeps
running.
"""

from __future__ import annotations

import logging
import socket
from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from ..broker import Broker

log = logging.getLogger("warren.management")


async def _serve(app: web.Application, host: str, port: int, what: str) -> web.AppRunner | None:
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host or None, port, reuse_address=True, backlog=128)
    try:
        await site.start()
    except OSError as exc:
        log.error("cannot listen %s host=%s port=%d error=%s", what, host, port, exc)
        await runner.cleanup()
        return None
    log.info("listening %s=%s:%d", what, host or "*", port)
    return runner


async def start_http(broker: Broker) -> list[web.AppRunner]:
    """Start the management and Prometheus listeners configured for ``broker``."""
    from .api import make_management_app, make_prometheus_app

    cfg = broker.config
    broker.node_name = f"warren@{socket.gethostname().split('.')[0]}"  # type: ignore[attr-defined]
    broker.tracer.node = broker.node_name  # type: ignore[attr-defined]
    host = cfg.management_host or cfg.host
    runners: list[web.AppRunner] = []
    if cfg.management_port:
        r = await _serve(make_management_app(broker), host, cfg.management_port, "http")
        if r is not None:
            runners.append(r)
    if cfg.prometheus_port:
        r = await _serve(make_prometheus_app(broker), host, cfg.prometheus_port, "http/prometheus")
        if r is not None:
            runners.append(r)
    return runners


async def stop_http(runners: list[web.AppRunner]) -> None:
    for r in runners:
        try:
            await r.cleanup()
        except Exception:  # pragma: no cover - shutting down anyway
            log.exception("stopping http listener failed")
