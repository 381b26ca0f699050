"""Prometheus scrapes that do not stall the broker.

Rendering ``/metrics/per-object`` walks every queue, channel, connection and
exchange; with 10k queues that is seconds of CPU. Three things keep the event
loop responsive:

* the text is rendered one metric family at a time, with a yield to the loop
  between families (:func:`render_incremental`);
* concurrent scrapers of the same endpoint share one render in progress;
* a rendered per-object exposition is reused for ``prometheus_per_object_interval``
  seconds (RabbitMQ refreshes per-object values every collection interval, 5 s,
  too), so N scrapers cost one render per interval.

Optional HTTP basic auth: when ``prometheus_user`` is set, both endpoints need
that user name and ``prometheus_pass``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import copy
import hmac
import time
from typing import TYPE_CHECKING, Any

from prometheus_client import generate_latest
from prometheus_client.registry import Collector

from ..metrics import WarrenCollector

if TYPE_CHECKING:
    from prometheus_client.core import Metric

    from ..broker import Broker


class _One(Collector):
    """A registry stand-in holding one metric family, for ``generate_latest``."""

    def __init__(self, family: Metric) -> None:
        self.family = family

    def collect(self) -> Any:
        yield self.family


#: samples formatted between two yields to the event loop
CHUNK = 500


async def render_incremental(broker: Broker, per_object: bool) -> bytes:
    """The exposition text of one scrape, yielding to the event loop between metric families
    and every :data:`CHUNK` samples of a large one."""
    parts: list[bytes] = []
    for family in WarrenCollector(broker, per_object).collect():
        samples = family.samples
        if len(samples) <= CHUNK:
            parts.append(generate_latest(_One(family)))
        else:
            for start in range(0, len(samples), CHUNK):
                part = copy.copy(family)
                part.samples = samples[start : start + CHUNK]
                text = generate_latest(_One(part))
                if start:  # HELP and TYPE once per family
                    text = b"\n".join(line for line in text.split(b"\n") if not line.startswith(b"# ")) or b""
                parts.append(text)
                await asyncio.sleep(0)
        await asyncio.sleep(0)
    return b"".join(parts)


class Scraper:
    """Renders one endpoint's text; shares a render in progress and caches it for ``ttl`` seconds."""

    def __init__(self, broker: Broker, per_object: bool, ttl: float) -> None:
        self.broker = broker
        self.per_object = per_object
        self.ttl = ttl
        self._body: bytes | None = None
        self._at = 0.0
        self._pending: asyncio.Future[bytes] | None = None

    async def body(self) -> bytes:
        if self._body is not None and time.monotonic() - self._at < self.ttl:
            return self._body
        if self._pending is None:
            self._pending = asyncio.ensure_future(self._render())
        # shield: a scraper that goes away must not cancel the render others wait for
        return await asyncio.shield(self._pending)

    async def _render(self) -> bytes:
        try:
            body = await render_incremental(self.broker, self.per_object)
            self._body, self._at = body, time.monotonic()
            return body
        finally:
            self._pending = None


def credentials_ok(header: str, user: str, password: str) -> bool:
    """Basic auth ``header`` carries exactly ``user``/``password`` (compared in constant time)."""
    if not header.lower().startswith("basic "):
        return False
    try:
        name, _, pw = base64.b64decode(header[6:].strip()).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return False
    return hmac.compare_digest(name.encode(), user.encode()) & hmac.compare_digest(pw.encode(), password.encode())
