"""``warren`` command: run the broker."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from warren.server.core.config import Config, ConfigError
from warren.server.core.errlog import OneLineErrors
from warren.server.http.management import start_http, stop_http
from warren.server.node.broker import Broker


def apply_storage_settings(config: Config) -> None:
    """Settings of the message stores, process-wide, before any store is opened."""
    from warren.storage.log import set_default_segment_size

    if not 65536 <= config.segment_size <= 1 << 30:
        logging.getLogger("warren.broker").error(
            "cannot start: segment_size must be between 65536 and 1073741824 bytes, not %d",
            config.segment_size)
        raise SystemExit(2)
    set_default_segment_size(config.segment_size)


async def serve(config: Config) -> None:
    apply_storage_settings(config)
    if config.cluster:
        await serve_cluster(config)
        return
    broker = Broker(config, services=[(start_http, stop_http)])
    try:
        await broker.start()
    except ConfigError as exc:
        logging.getLogger("warren.broker").error("cannot start: %s", exc)
        await broker.stop()
        raise SystemExit(2) from None
    await _until_signalled()
    await broker.stop()


async def serve_cluster(config: Config) -> None:
    from warren.server.node.cluster_node import ClusterNode

    try:
        node = ClusterNode(config, services=[(start_http, stop_http)])
    except ConfigError as exc:
        logging.getLogger("warren.cluster").error("cannot start: %s", exc)
        raise SystemExit(2) from None
    await node.start()
    await _until_signalled()
    await node.stop()


async def _until_signalled() -> None:
    """Return at SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def main(argv: list[str] | None = None) -> None:
    config = Config.load(argv)
    logging.basicConfig(
        level=getattr(logging, config.log_level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # a malformed HTTP request is the client's mistake: one line, not a traceback
    logging.getLogger("aiohttp.server").addFilter(OneLineErrors())
    try:
        import uvloop

        uvloop.run(serve(config))
    except ImportError:  # pragma: no cover - uvloop is a dependency
        asyncio.run(serve(config))


if __name__ == "__main__":
    main()
