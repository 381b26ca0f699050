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
import hmac
import time
from typing import TYPE_CHECKING, Any

from prometheus_client import generate_latest
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString
from warren.server.http.metrics import (
    CHANNEL_METRICS,
    CONNECTION_METRICS,
    EXCHANGE_METRICS,
    QUEUE_KEYED,
    QUEUE_METRICS,
    WarrenCollector,
    channel_label,
    channels_of,
    conn_label,
)
from warren.server.model.exchanges import DelayedExchange

if TYPE_CHECKING:
    from prometheus_client.core import Metric
    from warren.server.node.broker import Broker


class _One(Collector):
    """A registry stand-in holding one metric family, for ``generate_latest``."""

    def __init__(self, family: Metric) -> None:
        self.family = family

    def collect(self) -> Any:
        yield self.family


#: samples formatted between two yields to the event loop
CHUNK = 500


def _esc(v: str) -> str:
    return v.replace("\\", r"\\").replace("\n", r"\n").replace('"', r'\"')


def _header(out: list[str], name: str, kind: str, doc: str) -> None:
    doc = doc.replace("\\", r"\\").replace("\n", r"\n")
    out.append(f"# HELP {name} {doc}\n# TYPE {name} {'counter' if kind == 'c' else 'gauge'}\n")


async def _families(out: list[str], spec: list[tuple[str, str, str, Any]], objs: list[tuple[str, Any]]) -> None:
    """Samples of each family of ``spec`` for ``objs`` (pre-rendered label set, object)."""
    for name, kind, doc, fn in spec:
        _header(out, name, kind, doc)
        for i, (labels, obj) in enumerate(objs):
            if i and i % CHUNK == 0:
                await asyncio.sleep(0)
            out.append(f"{name}{labels} {floatToGoString(fn(obj))}\n")
        await asyncio.sleep(0)


async def per_object_text(broker: Broker, out: list[str]) -> None:
    """The per-object families as exposition text, written straight to strings.

    Same names, labels and values as :meth:`WarrenCollector.per_object_families`, without a
    prometheus_client sample object per value: with 10k queues those are 300k short-lived
    containers, and the garbage collector's full passes they trigger stall the loop for
    hundreds of milliseconds."""
    queues = [(vh.name, q) for vh in list(broker.vhosts.values()) for q in list(vh.queues.values())]
    qlabels = [(f'{{queue="{_esc(q.name)}",vhost="{_esc(vhn)}"}}', q) for vhn, q in queues]
    await _families(out, QUEUE_METRICS, qlabels)
    for f in QUEUE_KEYED:
        _header(out, f.name, "c", f.help)
        key = f.keyed_by
        for vhn, q in queues:
            for k, n in sorted(f.value(q).items()):
                # labels sorted by name, as prometheus_client writes them
                pairs = sorted((("queue", q.name), (key, k), ("vhost", vhn)))
                labels = ",".join(f'{ln}="{_esc(v)}"' for ln, v in pairs)
                out.append(f"{f.name}{{{labels}}} {floatToGoString(n)}\n")
    await asyncio.sleep(0)
    _header(out, "warren_queue_lane_messages_ready", "g", "Ready messages per priority lane")
    for vhn, q in queues:
        if q.laned:
            for i, d in enumerate(q.store.lane_depths()):
                out.append(f'warren_queue_lane_messages_ready{{lane="{i}",queue="{_esc(q.name)}",vhost="{_esc(vhn)}"}} '
                           f"{floatToGoString(d)}\n")
    await asyncio.sleep(0)
    chans = [(f'{{channel="{channel_label(c)}"}}', c) for c in channels_of(broker)]
    await _families(out, CHANNEL_METRICS, chans)
    _header(out, "rabbitmq_channels", "g", "Channels currently open")
    out.append(f"rabbitmq_channels {floatToGoString(len(chans))}\n")
    conns = [(f'{{channel="{conn_label(c)}"}}', c) for c in list(broker.connections)]
    await _families(out, CONNECTION_METRICS, conns)
    _header(out, "rabbitmq_connections", "g", "Connections currently open")
    out.append(f"rabbitmq_connections {floatToGoString(len(conns))}\n")
    exs = [(f'{{exchange="{_esc(ex.name)}",vhost="{_esc(vh.name)}"}}', ex)
           for vh in list(broker.vhosts.values()) for ex in list(vh.exchanges.values())]
    await _families(out, EXCHANGE_METRICS, exs)
    _header(out, "warren_delayed_messages_pending", "g", "Messages held by an x-delayed-message exchange")
    for labels, ex in exs:
        if isinstance(ex, DelayedExchange):
            out.append(f"warren_delayed_messages_pending{labels} {floatToGoString(ex.pending_count)}\n")


async def render_incremental(broker: Broker, per_object: bool) -> bytes:
    """The exposition text of one scrape, yielding to the event loop while it is built."""
    collector = WarrenCollector(broker, per_object)
    parts: list[bytes] = []
    for family in collector.head():
        parts.append(generate_latest(_One(family)))
        await asyncio.sleep(0)
    if per_object:
        out: list[str] = []
        await per_object_text(broker, out)
        parts.append("".join(out).encode())
    for family in collector.tail():
        parts.append(generate_latest(_One(family)))
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
