"""The counter declarations (server/model/counters.py) against what reads them.

In-process: every declared attribute exists on a fresh object; every counter
is read by a Prometheus family and a management statistic exactly when it
says so; Totals folds exactly the counters declared as folding, and those are
exactly the ones node-wide figures read. Over TCP: every declared family is in
the scrape with its HELP, every statistic in the management JSON.
"""

from __future__ import annotations

from operator import attrgetter
from types import SimpleNamespace
from typing import Any
from urllib.parse import quote

import aio_pika
import pytest
from prometheus_client.parser import text_string_to_metric_families
from warren.server.amqp.channel import Channel
from warren.server.amqp.connection import Connection
from warren.server.core.config import Config
from warren.server.http.management.views import node_message_stats
from warren.server.model.counters import (
    CHANNEL,
    CONNECTION,
    DEAD_LETTERED_GLOBAL,
    ENTITIES,
    EXCHANGE,
    GLOBAL_P,
    GLOBAL_PQ,
    NODE,
    OBJECT,
    QUEUE,
    Counter,
    Entity,
    Family,
)
from warren.server.model.exchanges import DelayedExchange
from warren.server.model.node import Node
from warren.server.model.totals import Totals

from .conftest import wait_for

NODE_WIDE = NODE | GLOBAL_P | GLOBAL_PQ


def _probe(entity: Entity, only: Counter | None, value: int = 7) -> SimpleNamespace:
    """An object with all of ``entity``'s counters at zero, except ``only``."""
    ns = SimpleNamespace(**{c.attr: {} if c.keyed else 0 for c in entity.counters})
    if only is not None:
        setattr(ns, only.attr, {"rejected": value} if only.keyed else value)
    return ns


def _sums_probe(entity: Entity, only: Counter) -> Any:
    s = entity.sums()
    entity.add(s, _probe(entity, only))
    return s


def _nonzero(v: Any) -> bool:
    return bool(v) if not isinstance(v, dict) else any(v.values())


def _families_reading(entity: Entity) -> list[tuple[Family, Entity]]:
    """Every family in any entity's declaration whose value reads ``entity``'s counters."""
    return [(f, e) for e in ENTITIES for f in e.families if (f.reads or e) is entity]


# ----------------------------------------------------------------------------- in-process
async def test_declared_counters_exist_on_fresh_objects(tmp_path):
    node = Node(Config(data_dir=str(tmp_path)))
    vh = node.vhosts["/"]
    q = node.create_queue(vh, "q", False, None, False, {})
    conn = Connection(node)
    ch = Channel(conn, 1)
    dx = DelayedExchange(vh, "dx", False, False, False, {"x-delayed-type": "direct"})
    for entity, objs in ((QUEUE, [q]), (CHANNEL, [ch]), (CONNECTION, [conn]), (EXCHANGE, [vh.exchanges["amq.direct"], dx])):
        for obj in objs:
            for c in entity.counters:
                v = attrgetter(c.attr)(obj)
                assert v == ({} if c.keyed else 0) and type(v) is (dict if c.keyed else int), (entity.name, c.attr, v)
    assert not isinstance(vh.exchanges["amq.direct"], DelayedExchange)


@pytest.mark.parametrize("entity", ENTITIES, ids=lambda e: e.name)
def test_every_counter_exported_and_shown_as_declared(entity):
    names = [c.attr for c in entity.counters]
    assert len(names) == len(set(names))
    readers = _families_reading(entity)
    for c in entity.counters:
        obj, sums = _probe(entity, c), _sums_probe(entity, c) if c.folds else None
        exported = any(
            _nonzero(f.value(obj)) if f.where & OBJECT else sums is not None and _nonzero(f.value(sums))
            for f, _ in readers
        )
        if entity is QUEUE and sums is not None:
            exported |= any(_nonzero(by_reason(sums)) for _, by_reason in DEAD_LETTERED_GLOBAL[2])
        assert exported == c.prometheus, (entity.name, c.attr)
        shown = any(_nonzero(v) for v in entity.stats_of(obj).values())
        if entity is QUEUE and sums is not None:  # a vhost's / the overview's redeliver
            shown |= _nonzero(node_message_stats(CHANNEL.sums(), sums)["redeliver"])
        assert shown == c.management, (entity.name, c.attr)


@pytest.mark.parametrize("entity", ENTITIES, ids=lambda e: e.name)
def test_node_wide_figures_read_exactly_the_folded_counters(entity):
    # a node-wide family reading a counter that does not fold would go backwards when objects go
    fresh = entity.sums()
    for f, _e in _families_reading(entity):
        if f.where & NODE_WIDE:
            f.value(fresh)  # AttributeError if it reads a counter that does not fold
        if f.where & OBJECT:
            assert f.reads is None
    for c in entity.folded:
        s = _sums_probe(entity, c)
        read = any(_nonzero(f.value(s)) for f, _ in _families_reading(entity) if f.where & NODE_WIDE)
        if entity is QUEUE:
            read |= any(_nonzero(by_reason(s)) for _, by_reason in DEAD_LETTERED_GLOBAL[2])
            read |= _nonzero(node_message_stats(CHANNEL.sums(), s)["redeliver"])
        if entity in (CHANNEL, CONNECTION):  # vhost and overview statistics are sums too
            read |= any(_nonzero(v) for v in entity.stats_of(s).values())
        assert read, (entity.name, c.attr, "folds but nothing node-wide reads it")


def test_totals_fold_exactly_the_declared_counters():
    t = Totals()
    gone = {QUEUE: t.queue_gone, CHANNEL: t.channel_gone, CONNECTION: t.connection_gone}
    sums = {QUEUE: t.queue, CHANNEL: t.channel, CONNECTION: t.connection}
    for entity, fold in gone.items():
        obj = _probe(entity, None)
        obj.vhost = None
        for i, c in enumerate(entity.counters, 1):
            setattr(obj, c.attr, {"maxlen": i} if c.keyed else i)
        fold(obj)
        fold(obj)
        for i, c in enumerate(entity.counters, 1):
            if c.folds:
                assert attrgetter(c.attr)(sums[entity]) == ({"maxlen": 2 * i} if c.keyed else 2 * i), (entity.name, c.attr)
            else:
                with pytest.raises(AttributeError):
                    attrgetter(c.attr)(sums[entity])
    assert not any(c.folds for c in EXCHANGE.counters)  # exchanges leave nothing in Totals
    assert (t.queues_deleted, t.channels_closed, t.connections_closed) == (2, 2, 0)


# ----------------------------------------------------------------------------- over TCP
async def test_every_family_in_the_scrape_and_every_stat_in_the_api(broker, http):
    conn = await aio_pika.connect(broker.url)
    ch = await conn.channel(publisher_confirms=True)
    await ch.declare_exchange("dx", type="x-delayed-message", arguments={"x-delayed-type": "direct"})
    await ch.declare_queue("dst")
    q = await ch.declare_queue("src", arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": "dst"})
    await ch.default_exchange.publish(aio_pika.Message(b"m"), "src")
    m = await q.get()
    await m.reject(requeue=False)  # a dead-lettered sample, labelled by reason

    async def scraped(per_object: bool) -> dict[str, tuple[str, set[frozenset]]]:
        url = http.prom + ("/metrics/per-object" if per_object else "/metrics")
        async with http.s.get(url) as r:
            text = await r.text()
        out = {}
        for fam in text_string_to_metric_families(text):
            name = fam.name + "_total" if fam.type == "counter" else fam.name
            out[name] = (fam.documentation, {frozenset(s.labels) for s in fam.samples})
        return out

    agg, per = await scraped(False), await scraped(True)
    for entity in ENTITIES:
        for f in entity.families:
            if f.where & OBJECT:
                assert per[f.name][0] == f.help, f.name
                assert per[f.name][1], f.name
                if f.keyed_by:
                    assert all(f.keyed_by in labels for labels in per[f.name][1])
            if f.where & NODE:
                assert agg[f.name] == (f.help, {frozenset()}), f.name
            if f.where & (GLOBAL_P | GLOBAL_PQ):
                labels = {"protocol"} | ({"queue_type"} if f.where & GLOBAL_PQ else set())
                assert agg[f.name] == (f.help, {frozenset(labels)}), f.name

    async def has_channel() -> bool:
        return bool(await http.get("/api/channels"))

    await wait_for(has_channel)
    keys = {
        QUEUE: (await http.get("/api/queues/%2F/src"))["message_stats"],
        CHANNEL: (await http.get("/api/channels"))[0]["message_stats"],
        EXCHANGE: (await http.get(f"/api/exchanges/%2F/{quote('amq.direct')}"))["message_stats"],
        CONNECTION: (await http.get("/api/connections"))[0],
    }
    for entity, shown in keys.items():
        for s in entity.stats:
            assert s.key in shown and s.key + "_details" in shown, (entity.name, s.key)
    for node_wide in ((await http.get("/api/overview"))["message_stats"], (await http.get("/api/vhosts/%2F"))["message_stats"]):
        for s in CHANNEL.stats:
            assert s.key in node_wide, s.key
    assert "delayed_pending" in await http.get("/api/exchanges/%2F/dx")
    assert "delayed_pending" not in await http.get("/api/exchanges/%2F/amq.direct")
    await conn.close()


async def test_collector_and_scrape_renderer_agree_per_object(tmp_path):
    """The two per-object renderers (prometheus_client's and the incremental text) read the same declarations."""
    from prometheus_client import generate_latest
    from warren.server.http.management.scrape import _One, per_object_text
    from warren.server.http.metrics import WarrenCollector

    node = Node(Config(data_dir=str(tmp_path)))
    vh = node.vhosts["/"]
    for i, name in enumerate(("a", 'q"\\x')):
        q = node.create_queue(vh, name, False, None, False, {})
        for n, c in enumerate(QUEUE.counters, i + 1):
            setattr(q, c.attr, {"rejected": n, "expired": 2 * n} if c.keyed else n)
    vh.add_exchange(DelayedExchange(vh, "dx", False, False, False, {"x-delayed-type": "direct"}))
    conn = Connection(node)
    node.connections.add(conn)
    ch = conn.channels[1] = Channel(conn, 1)
    # the confirm counts are read-only properties over the channel's confirm tracker
    tracker_fields = {"confirm_seq": "seq", "confirm_acked": "acked"}
    for n, c in enumerate(CHANNEL.counters, 1):
        if c.attr in tracker_fields:
            setattr(ch.confirms, tracker_fields[c.attr], 10 * n)
        else:
            setattr(ch, c.attr, 10 * n)
    ch.confirms.seq = ch.confirms.acked + 3
    expected = b"".join(generate_latest(_One(f)) for f in WarrenCollector(node, True).per_object_families())
    out: list[str] = []
    await per_object_text(node, out)
    assert "".join(out).encode() == expected
    n = 2 + [c.attr for c in QUEUE.counters].index("dead_lettered")  # the second queue's value
    assert f'warren_queue_messages_dead_lettered_total{{queue="q\\"\\\\x",reason="expired",vhost="/"}} {2.0 * n}'.encode() in expected
    assert b'warren_delayed_messages_pending{exchange="dx",vhost="/"} 0.0' in expected
    node.connections.discard(conn)
