"""Broker-wide message counters sampled every few seconds for the last minutes.

RabbitMQ's management API answers ``GET /api/overview?msg_rates_age=600&msg_rates_incr=5``
(and ``lengths_age``/``lengths_incr``) with ``samples`` lists in each ``*_details``
object: ``[{"sample": value, "timestamp": ms}, ...]``, newest first. The dashboard
reads them to draw the last minutes at once instead of starting empty.

:class:`History` samples on the broker's loop from the management app's start to
its cleanup. One sample costs what one ``GET /api/overview`` costs (a pass over
queues and channels), once per ``interval``; nothing is added to the message path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from warren.server.http.management.views import node_message_stats
from warren.server.http.metrics import global_counts

if TYPE_CHECKING:
    from warren.server.node.broker import Broker

log = logging.getLogger("warren.management")

#: overview message_stats keys sampled, and queue_totals keys
RATE_KEYS = ("publish", "deliver_get", "ack", "confirm", "redeliver")
LENGTH_KEYS = ("messages", "messages_ready", "messages_unacknowledged")


def counters(broker: Broker) -> dict[str, int]:
    """The values sampled: the same sums ``GET /api/overview`` reports."""
    g = global_counts(broker)
    stats = node_message_stats(g["channel"], g["queue"])
    out = {k: stats[k] for k in RATE_KEYS}
    out["messages"] = g["ready"] + g["unacked"]
    out["messages_ready"] = g["ready"]
    out["messages_unacknowledged"] = g["unacked"]
    return out


class History:
    """A ring of ``(timestamp ms, counters)`` samples covering ``keep`` seconds."""

    def __init__(self, broker: Broker, interval: float = 5.0, keep: float = 600.0) -> None:
        self.broker = broker
        self.interval = interval
        self.ring: deque[tuple[int, dict[str, int]]] = deque(maxlen=int(keep / interval) + 1)
        self._task: asyncio.Task | None = None

    def sample(self) -> None:
        self.ring.append((int(time.time() * 1000), counters(self.broker)))

    async def _run(self) -> None:
        while True:
            try:
                self.sample()
            except Exception:  # a failed sample must not end the history
                log.exception("sampling message rates failed")
            await asyncio.sleep(self.interval)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def samples(self, key: str, age: float, incr: float) -> list[dict[str, int]]:
        """RabbitMQ's ``samples`` list for ``key``: the last ``age`` s, one per ``incr`` s, newest first."""
        if not self.ring:
            return []
        newest = self.ring[-1][0]
        since = newest - int(age * 1000)
        step = max(1, round(incr / self.interval))
        picked = [s for s in self.ring if s[0] >= since][::-1][::step]
        return [{"sample": c[key], "timestamp": ts} for ts, c in picked]


def add_samples(out: dict[str, Any], history: History, query: Any) -> None:
    """Put ``samples`` into an overview answer as RabbitMQ does when asked by the query."""
    for age_key, incr_key, section, keys in (
        ("msg_rates_age", "msg_rates_incr", "message_stats", RATE_KEYS),
        ("lengths_age", "lengths_incr", "queue_totals", LENGTH_KEYS),
    ):
        if age_key not in query:
            continue
        try:
            age = float(query[age_key])
            incr = float(query.get(incr_key, history.interval))
        except ValueError:
            raise ValueError(f"{age_key} and {incr_key} must be numbers") from None
        if age <= 0 or incr <= 0:
            raise ValueError(f"{age_key} and {incr_key} must be positive")
        stats = out.setdefault(section, {})
        for k in keys:
            d = stats.setdefault(k + "_details", {"rate": 0.0})
            d["samples"] = history.samples(k, age, incr)
