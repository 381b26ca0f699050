"""x-delayed-message: due-time order, durability across restart and kill -9, mandatory, x-delay negation,
exchange deletion; and the random-access read of the log store the exchange keeps its messages in."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aio_pika
import pytest
from warren.storage.log.store import LogStore

pytestmark = pytest.mark.timeout(30)

PERSISTENT = aio_pika.DeliveryMode.PERSISTENT
TRANSIENT = aio_pika.DeliveryMode.NOT_PERSISTENT


async def _declare(ch, name: str = "dx", durable: bool = True, queue: str = "dq", key: str = "k"):
    ex = await ch.declare_exchange(name, "x-delayed-message", durable=durable,
                                   arguments={"x-delayed-type": "direct"})
    q = await ch.declare_queue(queue, durable=durable)
    await q.bind(ex, key)
    return ex, q


class _Inbox:
    """Consume a queue into an asyncio.Queue; ``next()`` waits (bounded) for the next message."""

    def __init__(self) -> None:
        self.q: asyncio.Queue = asyncio.Queue()

    async def start(self, queue) -> _Inbox:
        await queue.consume(self._on, no_ack=True)
        return self

    async def _on(self, m) -> None:
        await self.q.put((time.monotonic(), m))

    async def next(self, timeout: float = 8.0):
        return await asyncio.wait_for(self.q.get(), timeout)


def _msg(body: bytes, delay: int | None, mode=PERSISTENT, **headers) -> aio_pika.Message:
    if delay is not None:
        headers["x-delay"] = delay
    return aio_pika.Message(body, headers=headers, delivery_mode=mode)


async def test_fires_in_due_time_order_with_x_delay_negated(broker):
    async with await aio_pika.connect(broker.url) as conn:
        ch = await conn.channel(publisher_confirms=True)
        ex, q = await _declare(ch)
        inbox = await _Inbox().start(q)
        t0 = time.monotonic()
        for body, delay in ((b"c", 600), (b"a", 200), (b"d", 800), (b"b", 400), (b"a2", 200)):
            await ex.publish(_msg(body, delay), routing_key="k")
        got = []
        for _ in range(5):
            at, m = await inbox.next()
            got.append((m.body, m.headers["x-delay"], at - t0))
    assert [b for b, _, _ in got] == [b"a", b"a2", b"b", b"c", b"d"]
    assert [d for _, d, _ in got] == [-200, -200, -400, -600, -800]
    for _, d, elapsed in got:
        assert elapsed >= -d / 1000 - 0.005  # never early


async def test_persistent_survive_restart_transient_do_not(broker):
    async with await aio_pika.connect(broker.url) as conn:
        ch = await conn.channel(publisher_confirms=True)
        ex, _q = await _declare(ch)
        t0 = time.monotonic()
        await ex.publish(_msg(b"transient", 1000, TRANSIENT), routing_key="k")
        await ex.publish(_msg(b"persistent-1", 1500), routing_key="k")
        await ex.publish(_msg(b"persistent-2", 1800), routing_key="k")
    broker.restart()
    async with await aio_pika.connect(broker.url) as conn:
        ch = await conn.channel()
        q = await ch.declare_queue("dq", durable=True, passive=True)
        inbox = await _Inbox().start(q)
        at1, m1 = await inbox.next()
        at2, m2 = await inbox.next()
        assert (m1.body, m2.body) == (b"persistent-1", b"persistent-2")
        assert at1 - t0 >= 1.5 - 0.005 and at2 - t0 >= 1.8 - 0.005
        assert m1.headers["x-delay"] == -1500
        # the transient one was due before both: had it survived it would have come first
        assert inbox.q.empty()


async def test_kill9_after_confirm_loses_no_delayed_message(broker):
    n = 200
    async with await aio_pika.connect(broker.url) as conn:
        ch = await conn.channel(publisher_confirms=True)
        ex, _q = await _declare(ch)
        # each publish is awaited: confirmed, so fsynced
        due = []
        for i in range(n):
            delay = 1500 + (i * 7919) % 1000
            due.append(time.monotonic() + delay / 1000)
            await ex.publish(_msg(str(i).encode(), delay), routing_key="k")
    broker.kill()
    broker.start()
    async with await aio_pika.connect(broker.url) as conn:
        ch = await conn.channel()
        q = await ch.declare_queue("dq", durable=True, passive=True)
        inbox = await _Inbox().start(q)
        got = [await inbox.next() for _ in range(n)]
    bodies = [int(m.body) for _, m in got]
    assert sorted(bodies) == list(range(n))
    for at, m in got:
        assert at >= due[int(m.body)] - 0.005  # not before it was due
        assert m.headers["x-delay"] == -(1500 + (int(m.body) * 7919) % 1000)


async def test_overdue_messages_fire_at_once_after_restart(broker):
    async with await aio_pika.connect(broker.url) as conn:
        ch = await conn.channel(publisher_confirms=True)
        ex, _q = await _declare(ch)
        await ex.publish(_msg(b"late-2", 1800), routing_key="k")
        await ex.publish(_msg(b"late-1", 1500), routing_key="k")
        t0 = time.monotonic()  # before the broker takes the publish: its delay runs from later
        await ex.publish(_msg(b"future", 7000), routing_key="k")
    broker.stop()
    # the broker is down while the first two fall due (the delay under test)
    await asyncio.sleep(max(0.0, t0 + 2.0 - time.monotonic()))
    broker.start()
    started = time.monotonic()
    async with await aio_pika.connect(broker.url) as conn:
        ch = await conn.channel()
        q = await ch.declare_queue("dq", durable=True, passive=True)
        inbox = await _Inbox().start(q)
        at1, m1 = await inbox.next()
        at2, m2 = await inbox.next()
        assert (m1.body, m2.body) == (b"late-1", b"late-2")
        # at once: sooner than their own delays (1.5 s, 1.8 s) counted again from the restart
        assert at2 - started < 1.5
        at3, m3 = await inbox.next()
        assert m3.body == b"future" and at3 - t0 >= 7.0 - 0.005


async def test_cc_and_bcc_keys_survive_restart(broker):
    async with await aio_pika.connect(broker.url) as conn:
        ch = await conn.channel(publisher_confirms=True)
        ex, _q = await _declare(ch)
        for name in ("cc-q", "bcc-q"):
            extra = await ch.declare_queue(name, durable=True)
            await extra.bind(ex, name)
        await ex.publish(_msg(b"copies", 800, CC=["cc-q"], BCC=["bcc-q"]), routing_key="k")
    broker.restart()
    async with await aio_pika.connect(broker.url) as conn:
        ch = await conn.channel()
        for name in ("dq", "cc-q", "bcc-q"):
            q = await ch.declare_queue(name, durable=True, passive=True)
            inbox = await _Inbox().start(q)
            _at, m = await inbox.next()
            assert m.body == b"copies"
            assert "BCC" not in m.headers and m.headers["x-delay"] == -800


async def test_mandatory_checked_at_publish_time(broker):
    async with await aio_pika.connect(broker.url) as conn:
        ch = await conn.channel()
        ex, q = await _declare(ch)
        returned: asyncio.Queue = asyncio.Queue()
        ch.return_callbacks.add(lambda _c, m: returned.put_nowait(m))
        inbox = await _Inbox().start(q)
        # no binding for "later" now: returned at once, never fires
        await ex.publish(_msg(b"nobody", 300), routing_key="later", mandatory=True)
        m = await asyncio.wait_for(returned.get(), 5)
        assert m.body == b"nobody"
        # routable now: not returned, held; it fires against the bindings present when due
        await ex.publish(_msg(b"bound", 300), routing_key="k", mandatory=True)
        # not mandatory, no binding yet: a binding made before it is due still gets it
        await ex.publish(_msg(b"bound-later", 400), routing_key="later", mandatory=False)
        await q.bind(ex, "later")
        _at, m1 = await inbox.next()
        _at, m2 = await inbox.next()
        assert (m1.body, m2.body) == (b"bound", b"bound-later")
        assert returned.empty()
        assert inbox.q.empty()


async def test_deleting_the_exchange_drops_its_pending_messages(broker):
    async with await aio_pika.connect(broker.url) as conn:
        ch = await conn.channel(publisher_confirms=True)
        ex, _q = await _declare(ch)
        await ex.publish(_msg(b"dropped", 300), routing_key="k")
        delayed_dir = Path(broker.data_dir) / "delayed"
        assert len(list(delayed_dir.iterdir())) == 1
        await ex.delete()
        assert not delayed_dir.exists() or not list(delayed_dir.iterdir())
        ex, q = await _declare(ch)
        inbox = await _Inbox().start(q)
        await ex.publish(_msg(b"sentinel", 600), routing_key="k")
        _at, m = await inbox.next()
        # the dropped one was due first: had it survived it would have come first
        assert m.body == b"sentinel"
        assert inbox.q.empty()
    broker.restart()
    async with await aio_pika.connect(broker.url) as conn:
        ch = await conn.channel()
        q = await ch.declare_queue("dq", durable=True, passive=True)
        assert q.declaration_result.message_count == 0


async def test_transient_exchange_keeps_nothing_across_restart(broker):
    async with await aio_pika.connect(broker.url) as conn:
        ch = await conn.channel(publisher_confirms=True)
        ex, _q = await _declare(ch, "tx", durable=False, queue="tq")
        await ex.publish(_msg(b"gone", 5000), routing_key="k")
        # held under transient/ (written there once its buffer is flushed), never under delayed/
        assert not (Path(broker.data_dir) / "delayed").exists()
    broker.restart()
    assert not list((Path(broker.data_dir) / "transient").glob("delayed-*"))
    assert not (Path(broker.data_dir) / "delayed").exists() or not list((Path(broker.data_dir) / "delayed").iterdir())


# -- LogStore.read: random access by position --------------------------------------------------
class _Rec:
    __slots__ = ("data", "size", "persistent")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.size = len(data)
        self.persistent = True


def _open(path: Path, **kw) -> LogStore:
    return LogStore(path, lambda r: r.data, lambda b: _Rec(bytes(b)), segment_size=4096, **kw)


def test_logstore_read_by_position(tmp_path):
    store = _open(tmp_path / "s", cache_records=4)
    recs = [bytes([i % 251]) * (50 + i) for i in range(200)]
    positions = [store.push(_Rec(r)) for r in recs]
    # cache (last 4), write buffer, sealed segments (pread), in any order
    for i in (199, 196, 195, 150, 0, 73, 120, 1):
        assert store.read(positions[i]).data == recs[i]
    for i in range(0, 200, 2):
        store.ack(positions[i])
    for i in range(1, 200, 2):
        assert store.read(positions[i]).data == recs[i]
    store.close()
    # after a restart: the same positions name the same records
    store = _open(tmp_path / "s", cache_records=4)
    live = []
    while (item := store.shift()) is not None:
        live.append(item[0])
    assert live == positions[1::2]
    for i in (199, 1, 101):
        assert store.read(positions[i]).data == recs[i]
    with pytest.raises(KeyError):
        store.read((999 << 32) | 8)
    store.delete()
