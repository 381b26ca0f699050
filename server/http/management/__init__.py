"""Management HTTP API (RabbitMQ-compatible), dashboard, and the Prometheus listener.

Both listeners are aiohttp servers on the broker's own event loop, started by
``Broker.start`` (:func:`start_http`) and stopped by ``Broker.stop``
(:func:`stop_http`). A port of 0 in the configuration disables a listener.
A listener that cannot bind is logged and skipped: the AMQP listener keeps
running.

Both listeners protect the broker's file descriptors, as RabbitMQ's cowboy does:
a connection that has not sent complete request headers within
``http_idle_timeout`` seconds (after connecting or after its previous response)
is closed, and each listener holds at most ``http_max_connections`` connections
(never more than a quarter of the process's descriptor limit, so idle HTTP
clients cannot starve AMQP); connections over the limit are closed at once.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from warren.server.node.broker import Broker

log = logging.getLogger("warren.management")


def connection_limit(configured: int) -> int:
    """Per-listener HTTP connection limit: the setting, capped at a quarter of RLIMIT_NOFILE."""
    from warren.server.core.fdwatch import fd_limit

    return max(8, min(configured, fd_limit() // 4))


def _limit_connections(server: web.Server, limit: int, what: str) -> None:
    """Close connections beyond ``limit`` as soon as they are accepted (logged at most every 10 s)."""
    made = server.connection_made
    last = [0.0]

    def connection_made(handler: Any, transport: asyncio.Transport) -> None:
        made(handler, transport)
        if len(server.connections) > limit:
            # after aiohttp's request task has started (closing inside connection_made trips its asserts)
            asyncio.get_running_loop().call_soon(handler.force_close)
            now = time.monotonic()
            if now - last[0] >= 10.0:
                last[0] = now
                log.warning("%s connection limit reached limit=%d: closing new connections", what, limit)

    server.connection_made = connection_made  # type: ignore[method-assign]


async def _serve(app: web.Application, host: str, port: int, what: str, cfg: Any,
                 forward_secret: bytes | None = None) -> web.AppRunner | None:
    # keepalive_timeout also bounds the wait for a fresh connection's first request and for
    # headers sent slowly (aiohttp closes a connection still waiting for a complete request)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, keepalive_timeout=cfg.http_idle_timeout)
    await runner.setup()
    assert runner.server is not None
    _limit_connections(runner.server, connection_limit(cfg.http_max_connections), what)
    site: web.TCPSite
    if forward_secret:
        # a cluster leader: followers carry clients here behind a signed line naming them
        from warren.server.http.forwarded_site import ForwardedTCPSite

        site = ForwardedTCPSite(runner, host or None, port, reuse_address=True, backlog=128,
                                secret=forward_secret)
    else:
        site = web.TCPSite(runner, host or None, port, reuse_address=True, backlog=128)
    try:
        await site.start()
    except OSError as exc:
        log.error("cannot listen %s host=%s port=%d error=%s", what, host, port, exc)
        await runner.cleanup()
        return None
    log.info("listening %s=%s:%d", what, host or "*", port)
    return runner


def node_name_of(broker: Broker) -> str:
    """RabbitMQ's ``name@host`` form: ``warren@<host>``, and in a cluster ``warren@<node
    name>`` (the nodes of one machine must not share a name)."""
    cluster = getattr(broker, "cluster", None)
    if cluster is not None:
        from warren.server.http.management.views import cluster_node_name

        return cluster_node_name(cluster.name)
    return f"warren@{socket.gethostname().split('.')[0]}"


async def start_http(broker: Broker) -> list[Any]:
    """Start the management and Prometheus listeners configured for ``broker``."""
    from warren.server.core.fdwatch import FdWatch
    from warren.server.http.management.api import make_management_app, make_prometheus_app

    cfg = broker.config
    broker.node_name = node_name_of(broker)  # type: ignore[attr-defined]
    broker.tracer.node = broker.node_name  # type: ignore[attr-defined]
    host = cfg.management_host or cfg.host
    # the descriptor watcher lives with the listeners: stop_http stops it too
    runners: list[Any] = [FdWatch().start()]
    if cfg.management_port:
        r = await _serve(make_management_app(broker), host, cfg.management_port, "http", cfg,
                         broker.forward_secret)
        if r is not None:
            runners.append(r)
    if cfg.prometheus_port:
        r = await _serve(make_prometheus_app(broker), host, cfg.prometheus_port, "http/prometheus", cfg,
                         broker.forward_secret)
        if r is not None:
            runners.append(r)
    return runners


async def stop_http(runners: list[Any]) -> None:
    for r in runners:
        try:
            await r.cleanup()
        except Exception:  # pragma: no cover - shutting down anyway
            log.exception("stopping http listener failed")
