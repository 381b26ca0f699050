"""Node-wide accumulators: counts of objects that are gone (so totals never go
backwards when a queue or channel closes), churn, and the fsync / confirm
latency histograms."""

from __future__ import annotations

from bisect import bisect_left
from typing import Any

from warren.server.model.counters import CHANNEL, CONNECTION, QUEUE

#: seconds; fsync and confirm latency buckets
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class LatencyHistogram:
    """A histogram kept as plain ints; ``observe`` is a bisect and two additions."""

    __slots__ = ("bounds", "counts", "sum", "count")

    def __init__(self, bounds: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0
        self.count = 0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(self.bounds, seconds)] += 1
        self.sum += seconds
        self.count += 1

    def buckets(self) -> list[tuple[str, int]]:
        out: list[tuple[str, int]] = []
        acc = 0
        for b, c in zip(self.bounds, self.counts, strict=False):
            acc += c
            out.append((repr(b), acc))
        out.append(("+Inf", acc + self.counts[-1]))
        return out


class Totals:
    """Broker-level accumulators for objects that are gone, plus churn counts.

    ``queue``, ``channel`` and ``connection`` hold the sums of the counters
    :mod:`~warren.server.model.counters` declares as folding."""

    def __init__(self) -> None:
        self.queue = QUEUE.sums()
        self.channel = CHANNEL.sums()
        self.connection = CONNECTION.sums()
        self.connections_closed = 0
        self.channels_closed = 0
        self.queues_created = 0
        self.queues_deleted = 0
        self.fsync = LatencyHistogram()
        self.confirm = LatencyHistogram()

    def queue_gone(self, q: Any) -> None:
        QUEUE.add(self.queue, q)
        self.queues_deleted += 1

    def channel_gone(self, ch: Any) -> None:
        CHANNEL.add(self.channel, ch)
        self.channels_closed += 1

    def connection_gone(self, conn: Any) -> None:
        CONNECTION.add(self.connection, conn)
        if conn.vhost is not None:  # counted only once the AMQP handshake completed, as RabbitMQ
            self.connections_closed += 1


class ConnectionSet(set):
    """``Broker.connections``: a set that folds a closed connection's byte counts into Totals."""

    def __init__(self, totals: Totals) -> None:
        super().__init__()
        self.totals = totals

    def add(self, conn: Any) -> None:
        super().add(conn)

    def discard(self, conn: Any) -> None:
        if conn in self:
            super().discard(conn)
            self.totals.connection_gone(conn)

    def remove(self, conn: Any) -> None:
        if conn not in self:
            raise KeyError(conn)
        self.discard(conn)


