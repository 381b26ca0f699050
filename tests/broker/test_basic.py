"""basic.*, confirm.* and tx.*: publish/return, consume/cancel, get, ack/nack/reject, recover,
qos, publisher confirms, transactions, ordering and redelivery, consumer priorities,
direct reply-to, CC/BCC, user_id validation, max message size."""

import asyncio

import aio_pika
import aiormq
import pamqp.frame
import pytest
from pamqp import commands as C
from pamqp.body import ContentBody
from pamqp.commands import Basic
from pamqp.header import ContentHeader

from tests.broker._raw import RawConn

E = aiormq.exceptions
REPLY_TO = "amq.rabbitmq.reply-to"


class Inbox:
    """Deliveries to an aiormq consumer, awaitable by count."""

    def __init__(self) -> None:
        self.items: list = []
        self._cond = asyncio.Condition()

    async def __call__(self, msg) -> None:
        async with self._cond:
            self.items.append(msg)
            self._cond.notify_all()

    async def wait_for(self, n: int, timeout: float = 5.0) -> list:
        async def _wait():
            async with self._cond:
                await self._cond.wait_for(lambda: len(self.items) >= n)

        await asyncio.wait_for(_wait(), timeout)
        return self.items[:n]

    @property
    def bodies(self) -> list[bytes]:
        return [m.body for m in self.items]


async def connect(broker) -> aiormq.Connection:
    return await aiormq.connect(broker.url)


async def roundtrip(ch) -> None:
    """A synchronous method on ``ch``: everything the broker sent before has arrived."""
    await ch.exchange_declare("amq.direct", passive=True)


async def publish_n(ch, queue: str, n: int, prefix: str = "m") -> None:
    for i in range(n):
        await ch.basic_publish(f"{prefix}{i}".encode(), routing_key=queue)


# ---------------------------------------------------------------- publish / return
async def test_mandatory_unroutable_returned_312(broker):
    conn = await aio_pika.connect(broker.url)
    async with conn:
        # (aiormq hands Basic.Return to callbacks only in confirm mode)
        ch = await conn.channel(publisher_confirms=True, on_return_raises=False)
        returned = asyncio.get_running_loop().create_future()
        ch.return_callbacks.add(lambda _c, m: returned.done() or returned.set_result(m))
        await ch.default_exchange.publish(
            aio_pika.Message(b"lost", headers={"h": "v"}), routing_key="nowhere", mandatory=True
        )
        m = await asyncio.wait_for(returned, 5)
        assert m.body == b"lost"
        assert m.headers == {"h": "v"}
        assert m.routing_key == "nowhere"
        assert m.exchange == ""


async def test_mandatory_return_frame_fields(broker):
    conn = await connect(broker)
    try:
        ch = await conn.channel(publisher_confirms=True, on_return_raises=False)
        got = asyncio.get_running_loop().create_future()
        ch.on_return_callbacks.add(lambda m: got.done() or got.set_result(m))
        await ch.basic_publish(b"x", exchange="amq.direct", routing_key="nokey", mandatory=True)
        m = await asyncio.wait_for(got, 5)
        assert isinstance(m.delivery, Basic.Return)
        assert m.delivery.reply_code == 312
        assert m.delivery.reply_text == "NO_ROUTE"
        assert (m.delivery.exchange, m.delivery.routing_key) == ("amq.direct", "nokey")
    finally:
        await conn.close()


async def test_mandatory_with_confirms_returns_then_acks(broker):
    conn = await connect(broker)
    try:
        ch = await conn.channel(publisher_confirms=True, on_return_raises=True)
        with pytest.raises(E.PublishError) as ei:
            await ch.basic_publish(b"x", routing_key="nowhere", mandatory=True)
        assert ei.value.message.delivery.reply_code == 312
        # non-mandatory unroutable is simply confirmed
        ok = await ch.basic_publish(b"y", routing_key="nowhere")
        assert isinstance(ok, Basic.Ack)
    finally:
        await conn.close()


async def test_immediate_is_connection_error_540(broker):
    conn = await connect(broker)
    ch = await conn.channel(publisher_confirms=False)
    await ch.queue_declare("iq", exclusive=True)
    await ch.basic_publish(b"x", routing_key="iq", immediate=True)
    with pytest.raises(E.ConnectionNotImplemented) as ei:
        await asyncio.wait_for(conn.closing, 5)
    assert ei.value.args[0] == "NOT_IMPLEMENTED - immediate=true"


# ---------------------------------------------------------------- consume / cancel
async def test_consume_no_ack_server_tag_and_cancel(broker):
    conn = await connect(broker)
    try:
        ch = await conn.channel()
        await ch.queue_declare("cq", exclusive=True)
        inbox = Inbox()
        ok = await ch.basic_consume("cq", inbox, no_ack=True)
        await publish_n(ch, "cq", 3)
        msgs = await inbox.wait_for(3)
        assert [m.body for m in msgs] == [b"m0", b"m1", b"m2"]
        assert all(m.consumer_tag == ok.consumer_tag for m in msgs)
        assert [m.delivery_tag for m in msgs] == [1, 2, 3]
        cancel_ok = await ch.basic_cancel(ok.consumer_tag)
        assert cancel_ok.consumer_tag == ok.consumer_tag
        await publish_n(ch, "cq", 1, "after")
        d = await ch.queue_declare("cq", passive=True)
        assert (d.message_count, d.consumer_count) == (1, 0)
        assert len(inbox.items) == 3
        # no_ack deliveries need no ack: nothing is left unacked
        got = await ch.basic_get("cq", no_ack=True)
        assert got.body == b"after0"
    finally:
        await conn.close()


async def test_server_generated_consumer_tag(broker):
    raw = await RawConn.connect(broker.port)
    try:
        await raw.handshake()
        raw.send(C.Channel.Open(), 1)
        await raw.expect(C.Channel.OpenOk)
        raw.send(C.Queue.Declare(queue="", exclusive=True), 1)
        q = (await raw.expect(C.Queue.DeclareOk)).queue
        tags = set()
        for _ in range(2):
            raw.send(Basic.Consume(queue=q, consumer_tag=""), 1)
            ok = await raw.expect(Basic.ConsumeOk)
            assert ok.consumer_tag.startswith("amq.ctag-")
            tags.add(ok.consumer_tag)
        assert len(tags) == 2
    finally:
        raw.close()


async def test_cancel_unknown_tag_is_ok(broker):
    conn = await connect(broker)
    try:
        ch = await conn.channel()
        ok = await ch.basic_cancel("never-existed")
        assert isinstance(ok, Basic.CancelOk)
    finally:
        await conn.close()


async def test_duplicate_consumer_tag_530(broker):
    conn = await connect(broker)
    try:
        ch = await conn.channel()
        await ch.queue_declare("dup", exclusive=True)
        await ch.basic_consume("dup", Inbox(), consumer_tag="tag1")
        ch.consumers.pop("tag1", None)  # get past aiormq's own duplicate check
        with pytest.raises(E.ConnectionNotAllowed) as ei:
            await ch.basic_consume("dup", Inbox(), consumer_tag="tag1")
            await asyncio.wait_for(conn.closing, 5)
        assert ei.value.args[0] == "NOT_ALLOWED - attempt to reuse consumer tag 'tag1'"
    finally:
        await conn.close()


async def test_exclusive_consumer(broker):
    conn = await connect(broker)
    try:
        ch = await conn.channel()
        await ch.queue_declare("xc")
        await ch.basic_consume("xc", Inbox(), exclusive=True)
        ch2 = await conn.channel()
        with pytest.raises(E.ChannelAccessRefused) as ei:
            await ch2.basic_consume("xc", Inbox())
        assert ei.value.args[0] == "ACCESS_REFUSED - queue 'xc' in vhost '/' in exclusive use"
        ch3 = await conn.channel()
        await ch3.queue_declare("xc2")
        await ch3.basic_consume("xc2", Inbox())
        ch4 = await conn.channel()
        with pytest.raises(E.ChannelAccessRefused) as ei:
            await ch4.basic_consume("xc2", Inbox(), exclusive=True)
        assert ei.value.args[0] == "ACCESS_REFUSED - queue 'xc2' in vhost '/' in exclusive use"
    finally:
        await conn.close()


async def test_consume_missing_queue_404(broker):
    conn = await connect(broker)
    try:
        ch = await conn.channel()
        with pytest.raises(E.ChannelNotFoundEntity) as ei:
            await ch.basic_consume("nx", Inbox())
        assert ei.value.args[0] == "NOT_FOUND - no queue 'nx' in vhost '/'"
    finally:
        await conn.close()


async def test_server_cancel_when_queue_deleted(broker):
    conn = await connect(broker)
    try:
        ch = await conn.channel()
        await ch.queue_declare("delme")
        cancelled = asyncio.get_running_loop().create_future()
        ch.on_consumer_cancel_callbacks.add(lambda f: cancelled.done() or cancelled.set_result(f))
        ok = await ch.basic_consume("delme", Inbox(), consumer_tag="watcher")
        other = await conn.channel()
        await other.queue_delete("delme")
        frame = await asyncio.wait_for(cancelled, 5)
        assert isinstance(frame, Basic.Cancel)
        assert frame.consumer_tag == ok.consumer_tag == "watcher"
        # the channel stays open
        await ch.queue_declare("", exclusive=True)
    finally:
        await conn.close()


# ---------------------------------------------------------------- get
async def test_get_and_get_empty(broker):
    conn = await connect(broker)
    try:
        ch = await conn.channel()
        await ch.queue_declare("gq", exclusive=True)
        empty = await ch.basic_get("gq")
        assert isinstance(empty.delivery, Basic.GetEmpty)
        await publish_n(ch, "gq", 2)
        m = await ch.basic_get("gq")
        assert isinstance(m.delivery, Basic.GetOk)
        assert m.body == b"m0"
        assert m.delivery.message_count == 1
        assert m.delivery.redelivered is False
        assert m.delivery.routing_key == "gq"
        await ch.basic_ack(m.delivery.delivery_tag)
        m = await ch.basic_get("gq", no_ack=True)
        assert m.body == b"m1" and m.delivery.message_count == 0
        with pytest.raises(E.ChannelNotFoundEntity):
            await ch.basic_get("nx")
    finally:
        await conn.close()


# ---------------------------------------------------------------- ack / nack / reject
async def _get_n(ch, queue: str, n: int) -> list:
    out = []
    for _ in range(n):
        m = await ch.basic_get(queue)
        assert isinstance(m.delivery, Basic.GetOk)
        out.append(m)
    return out


async def _ready(ch, queue: str) -> int:
    return (await ch.queue_declare(queue, passive=True)).message_count


async def test_ack_single_and_multiple(broker):
    conn = await connect(broker)
    try:
        ch = await conn.channel()
        await ch.queue_declare("aq")
        await publish_n(ch, "aq", 5)
        ms = await _get_n(ch, "aq", 5)
        await ch.basic_ack(ms[0].delivery.delivery_tag)
        await ch.basic_ack(ms[3].delivery.delivery_tag, multiple=True)  # acks 2, 3, 4
        await ch.basic_reject(ms[4].delivery.delivery_tag, requeue=True)
        m = await ch.basic_get("aq", no_ack=True)
        assert m.body == b"m4" and m.delivery.redelivered is True
        assert isinstance((await ch.basic_get("aq")).delivery, Basic.GetEmpty)
    finally:
        await conn.close()


async def test_ack_multiple_zero_acks_everything(broker):
    conn = await connect(broker)
    try:
        ch = await conn.channel()
        await ch.queue_declare("a0")
        await publish_n(ch, "a0", 3)
        await _get_n(ch, "a0", 3)
        await ch.basic_ack(0, multiple=True)
        await ch.basic_recover(requeue=True)
        assert await _ready(ch, "a0") == 0
    finally:
        await conn.close()


async def test_nack_multiple_requeue_and_discard(broker):
    conn = await connect(broker)
    try:
        ch = await conn.channel()
        await ch.queue_declare("nq")
        await publish_n(ch, "nq", 4)
        ms = await _get_n(ch, "nq", 4)
        await ch.basic_nack(ms[1].delivery.delivery_tag, multiple=True, requeue=True)  # m0, m1 back
        await ch.basic_nack(
            ms[2].delivery.delivery_tag, multiple=False, requeue=False
        )  # m2 dropped
        await ch.basic_reject(ms[3].delivery.delivery_tag, requeue=False)  # m3 dropped
        got = [await ch.basic_get("nq", no_ack=True) for _ in range(2)]
        assert [(m.body, m.delivery.redelivered) for m in got] == [(b"m0", True), (b"m1", True)]
        assert await _ready(ch, "nq") == 0
    finally:
        await conn.close()


@pytest.mark.parametrize("how", ["ack", "nack", "reject"])
async def test_unknown_delivery_tag_406(broker, how):
    conn = await connect(broker)
    try:
        ch = await conn.channel()
        closed = asyncio.get_running_loop().create_future()
        ch.closing.add_done_callback(lambda f: closed.set_result(f.exception()))
        if how == "ack":
            await ch.basic_ack(99)
        elif how == "nack":
            await ch.basic_nack(99)
        else:
            await ch.basic_reject(99)
        exc = await asyncio.wait_for(closed, 5)
        assert isinstance(exc, E.ChannelPreconditionFailed)
        assert exc.args[0] == "PRECONDITION_FAILED - unknown delivery tag 99"
        assert not conn.is_closed
    finally:
        await conn.close()


async def test_double_ack_406(broker):
    conn = await connect(broker)
    try:
        ch = await conn.channel()
        await ch.queue_declare("dbl")
        await publish_n(ch, "dbl", 1)
        m = (await _get_n(ch, "dbl", 1))[0]
        closed = asyncio.get_running_loop().create_future()
        ch.closing.add_done_callback(lambda f: closed.set_result(f.exception()))
        await ch.basic_ack(m.delivery.delivery_tag)
        await ch.basic_ack(m.delivery.delivery_tag)
        exc = await asyncio.wait_for(closed, 5)
        assert isinstance(exc, E.ChannelPreconditionFailed)
        assert (
            exc.args[0] == f"PRECONDITION_FAILED - unknown delivery tag {m.delivery.delivery_tag}"
        )
        ch2 = await conn.channel()
        assert await _ready(ch2, "dbl") == 0
    finally:
        await conn.close()


async def test_ack_tags_are_per_channel(broker):
    conn = await connect(broker)
    try:
        ch1 = await conn.channel()
        ch2 = await conn.channel()
        await ch1.queue_declare("pc")
        await publish_n(ch1, "pc", 1)
        m = (await _get_n(ch1, "pc", 1))[0]
        closed = asyncio.get_running_loop().create_future()
        ch2.closing.add_done_callback(lambda f: closed.set_result(f.exception()))
        await ch2.basic_ack(m.delivery.delivery_tag)
        exc = await asyncio.wait_for(closed, 5)
        assert isinstance(exc, E.ChannelPreconditionFailed)
        await ch1.basic_ack(m.delivery.delivery_tag)
        await roundtrip(ch1)
    finally:
        await conn.close()


# ---------------------------------------------------------------- recover
async def test_recover_requeues_with_redelivered(broker):
    conn = await connect(broker)
    try:
        ch = await conn.channel()
        await ch.queue_declare("rq")
        await publish_n(ch, "rq", 3)
        ms = await _get_n(ch, "rq", 3)
        await ch.basic_ack(ms[1].delivery.delivery_tag)
        ok = await ch.basic_recover(requeue=True)
        assert isinstance(ok, Basic.RecoverOk)
        got = [await ch.basic_get("rq", no_ack=True) for _ in range(2)]
        assert [(m.body, m.delivery.redelivered) for m in got] == [(b"m0", True), (b"m2", True)]
        # the old tags are gone
        closed = asyncio.get_running_loop().create_future()
        ch.closing.add_done_callback(lambda f: closed.set_result(f.exception()))
        await ch.basic_ack(ms[0].delivery.delivery_tag)
        assert isinstance(await asyncio.wait_for(closed, 5), E.ChannelPreconditionFailed)
    finally:
        await conn.close()


async def test_recover_requeue_false_540(broker):
    conn = await connect(broker)
    ch = await conn.channel()
    with pytest.raises(E.ConnectionNotImplemented) as ei:
        await ch.basic_recover(requeue=False)
        await asyncio.wait_for(conn.closing, 5)
    assert ei.value.args[0] == "NOT_IMPLEMENTED - requeue=false"


async def test_recover_to_consumer(broker):
    conn = await connect(broker)
    try:
        ch = await conn.channel()
        await ch.queue_declare("rc", exclusive=True)
        inbox = Inbox()
        await ch.basic_consume("rc", inbox)
        await publish_n(ch, "rc", 2)
        await inbox.wait_for(2)
        await ch.basic_recover(requeue=True)
        msgs = await inbox.wait_for(4)
        assert [(m.body, m.redelivered) for m in msgs[2:]] == [(b"m0", True), (b"m1", True)]
    finally:
        await conn.close()


# ---------------------------------------------------------------- qos
async def test_qos_per_consumer_prefetch(broker):
    conn = await connect(broker)
    try:
        ch = await conn.channel()
        await ch.queue_declare("qos1")
        await ch.basic_qos(prefetch_count=3)
        await publish_n(ch, "qos1", 10)
        inbox = Inbox()
        await ch.basic_consume("qos1", inbox)
        await inbox.wait_for(3)
        await roundtrip(ch)
        assert len(inbox.items) == 3
        assert await _ready(ch, "qos1") == 7
        acked = 0
        max_outstanding = 3
        while acked < 10:
            m = inbox.items[acked]
            await ch.basic_ack(m.delivery_tag)
            acked += 1
            await roundtrip(ch)
            max_outstanding = max(max_outstanding, len(inbox.items) - acked)
            if acked < 10:
                await inbox.wait_for(min(10, acked + 3))
                max_outstanding = max(max_outstanding, len(inbox.items) - acked)
        assert max_outstanding == 3
        assert inbox.bodies == [f"m{i}".encode() for i in range(10)]
    finally:
        await conn.close()


async def test_qos_applies_to_consumers_started_after_it(broker):
    conn = await connect(broker)
    try:
        ch = await conn.channel()
        await ch.queue_declare("qa")
        await ch.queue_declare("qb")
        await ch.basic_qos(prefetch_count=2)  # per consumer
        await publish_n(ch, "qa", 5)
        await publish_n(ch, "qb", 5)
        a, b = Inbox(), Inbox()
        await ch.basic_consume("qa", a)
        await ch.basic_consume("qb", b)
        await a.wait_for(2)
        await b.wait_for(2)
        await roundtrip(ch)
        assert (len(a.items), len(b.items)) == (2, 2)
    finally:
        await conn.close()


async def test_qos_global_per_channel(broker):
    conn = await connect(broker)
    try:
        ch = await conn.channel()
        await ch.queue_declare("ga")
        await ch.queue_declare("gb")
        await ch.basic_qos(prefetch_count=3, global_=True)
        await publish_n(ch, "ga", 5, "a")
        await publish_n(ch, "gb", 5, "b")
        a, b = Inbox(), Inbox()
        await ch.basic_consume("ga", a)
        await ch.basic_consume("gb", b)
        await asyncio.wait_for(_until(lambda: len(a.items) + len(b.items) >= 3), 5)
        await roundtrip(ch)
        assert len(a.items) + len(b.items) == 3
        # ack everything seen so far: three more, never more than 3 outstanding
        first = a.items + b.items
        await ch.basic_ack(max(m.delivery_tag for m in first), multiple=True)
        await asyncio.wait_for(_until(lambda: len(a.items) + len(b.items) >= 6), 5)
        await roundtrip(ch)
        assert len(a.items) + len(b.items) == 6
    finally:
        await conn.close()


async def test_qos_global_and_per_consumer_together(broker):
    conn = await connect(broker)
    try:
        ch = await conn.channel()
        await ch.queue_declare("gc")
        await ch.basic_qos(prefetch_count=2, global_=False)
        await ch.basic_qos(prefetch_count=3, global_=True)
        await publish_n(ch, "gc", 10)
        c1, c2 = Inbox(), Inbox()
        await ch.basic_consume("gc", c1)
        await ch.basic_consume("gc", c2)
        await asyncio.wait_for(_until(lambda: len(c1.items) + len(c2.items) >= 3), 5)
        await roundtrip(ch)
        assert len(c1.items) + len(c2.items) == 3
        assert max(len(c1.items), len(c2.items)) == 2
    finally:
        await conn.close()


async def test_qos_prefetch_size_540(broker):
    conn = await connect(broker)
    ch = await conn.channel()
    with pytest.raises(E.ConnectionNotImplemented) as ei:
        await ch.basic_qos(prefetch_size=10)
        await asyncio.wait_for(conn.closing, 5)
    assert ei.value.args[0] == "NOT_IMPLEMENTED - prefetch_size!=0 (10)"


async def test_qos_with_aio_pika_iterator(broker):
    conn = await aio_pika.connect(broker.url)
    async with conn:
        ch = await conn.channel()
        await ch.set_qos(prefetch_count=2)
        q = await ch.declare_queue("qi", exclusive=True)
        for i in range(6):
            await ch.default_exchange.publish(aio_pika.Message(str(i).encode()), "qi")
        got = []
        async with q.iterator() as it:
            async for m in it:
                async with m.process():
                    got.append(m.body)
                if len(got) == 6:
                    break
        assert got == [str(i).encode() for i in range(6)]


async def _until(pred) -> None:
    while not pred():
        await asyncio.sleep(0.01)


# ---------------------------------------------------------------- publisher confirms
async def test_confirms_ack_in_order(broker):
    conn = await connect(broker)
    try:
        ch = await conn.channel(publisher_confirms=True)
        await ch.queue_declare("pcq", exclusive=True)
        results = await asyncio.gather(
            *(ch.basic_publish(f"{i}".encode(), routing_key="pcq") for i in range(50))
        )
        assert all(isinstance(r, Basic.Ack) for r in results)
        assert (await ch.queue_declare("pcq", passive=True)).message_count == 50
    finally:
        await conn.close()


async def test_confirms_multiple_raw(broker):
    """A burst written at once: acks cover tags 1..n in order, possibly with multiple=true."""
    raw = await RawConn.connect(broker.port)
    try:
        await raw.handshake()
        raw.send(C.Channel.Open(), 1)
        await raw.expect(C.Channel.OpenOk)
        raw.send(C.Confirm.Select(), 1)
        await raw.expect(C.Confirm.SelectOk)
        raw.send(C.Queue.Declare(queue="", exclusive=True), 1)
        q = (await raw.expect(C.Queue.DeclareOk)).queue
        n = 50
        one = b"".join(
            pamqp.frame.marshal(f, 1)
            for f in (
                Basic.Publish(exchange="", routing_key=q),
                ContentHeader(body_size=1),
                ContentBody(b"x"),
            )
        )
        # One write; how the kernel splits it into reads is not ours to decide, so
        # the test accepts any mix of single and multiple acks but checks coverage.
        raw.send_raw(one * n)
        confirmed = 0
        while confirmed < n:
            f = await raw.expect(Basic.Ack)
            assert f.delivery_tag > confirmed
            if not f.multiple:
                assert f.delivery_tag == confirmed + 1
            confirmed = f.delivery_tag
        assert confirmed == n
    finally:
        raw.close()


async def test_confirm_select_then_tx_406_and_back(broker):
    conn = await connect(broker)
    try:
        ch = await conn.channel(publisher_confirms=True)
        with pytest.raises(E.ChannelPreconditionFailed) as ei:
            await ch.tx_select()
        assert ei.value.args[0] == "PRECONDITION_FAILED - cannot switch from confirm to tx mode"
        ch = await conn.channel(publisher_confirms=False)
        await ch.tx_select()
        with pytest.raises(E.ChannelPreconditionFailed) as ei:
            await ch.confirm_delivery()
        assert ei.value.args[0] == "PRECONDITION_FAILED - cannot switch from tx to confirm mode"
    finally:
        await conn.close()


# ---------------------------------------------------------------- transactions
async def test_tx_commit_makes_publishes_visible(broker):
    conn = await connect(broker)
    try:
        ch = await conn.channel(publisher_confirms=False)
        await ch.queue_declare("txq")
        await ch.tx_select()
        await publish_n(ch, "txq", 3)
        other = await conn.channel()
        assert await _ready(other, "txq") == 0
        await ch.tx_commit()
        assert await _ready(other, "txq") == 3
        # still transactional after commit
        await publish_n(ch, "txq", 1, "late")
        assert await _ready(other, "txq") == 3
        await ch.tx_rollback()
        assert await _ready(other, "txq") == 3
    finally:
        await conn.close()


async def test_tx_rollback_discards_publishes_and_acks(broker):
    conn = await connect(broker)
    try:
        setup = await conn.channel()
        await setup.queue_declare("txa")
        await publish_n(setup, "txa", 2)
        ch = await conn.channel(publisher_confirms=False)
        await ch.tx_select()
        ms = await _get_n(ch, "txa", 2)
        await ch.basic_ack(ms[0].delivery.delivery_tag)
        await publish_n(ch, "txa", 1, "tx")
        await ch.tx_rollback()
        # rollback: the publish is gone and the ack was not applied
        await ch.basic_recover(requeue=True)
        assert await _ready(setup, "txa") == 2
        # acks in a committed transaction take effect at commit
        ms = await _get_n(ch, "txa", 2)
        await ch.basic_ack(ms[1].delivery.delivery_tag, multiple=True)
        await ch.tx_commit()
        await ch.basic_recover(requeue=True)
        assert await _ready(setup, "txa") == 0
    finally:
        await conn.close()


@pytest.mark.parametrize("method", ["commit", "rollback"])
async def test_tx_without_select_406(broker, method):
    conn = await connect(broker)
    try:
        ch = await conn.channel(publisher_confirms=False)
        with pytest.raises(E.ChannelPreconditionFailed) as ei:
            await (ch.tx_commit() if method == "commit" else ch.tx_rollback())
        assert ei.value.args[0] == "PRECONDITION_FAILED - channel is not transactional"
    finally:
        await conn.close()


async def test_tx_unknown_tag_ack_406(broker):
    conn = await connect(broker)
    try:
        ch = await conn.channel(publisher_confirms=False)
        await ch.tx_select()
        closed = asyncio.get_running_loop().create_future()
        ch.closing.add_done_callback(lambda f: closed.set_result(f.exception()))
        await ch.basic_ack(7)
        exc = await asyncio.wait_for(closed, 5)
        assert isinstance(exc, E.ChannelPreconditionFailed)
        assert exc.args[0] == "PRECONDITION_FAILED - unknown delivery tag 7"
    finally:
        await conn.close()


# ---------------------------------------------------------------- ordering / redelivery
async def test_fifo_per_queue(broker):
    conn = await aio_pika.connect(broker.url)
    async with conn:
        ch = await conn.channel(publisher_confirms=True)
        q = await ch.declare_queue("fifo", exclusive=True)
        for i in range(200):
            await ch.default_exchange.publish(aio_pika.Message(str(i).encode()), "fifo")
        got = []
        async with q.iterator(no_ack=True) as it:
            async for m in it:
                got.append(int(m.body))
                if len(got) == 200:
                    break
        assert got == list(range(200))


async def test_round_robin_across_consumers(broker):
    conn = await connect(broker)
    try:
        ch = await conn.channel()
        await ch.queue_declare("rr", exclusive=True)
        a, b = Inbox(), Inbox()
        await ch.basic_consume("rr", a, no_ack=True)
        await ch.basic_consume("rr", b, no_ack=True)
        await publish_n(ch, "rr", 6)
        await asyncio.wait_for(_until(lambda: len(a.items) + len(b.items) == 6), 5)
        assert sorted([a.bodies, b.bodies]) == sorted(
            [[b"m0", b"m2", b"m4"], [b"m1", b"m3", b"m5"]]
        )
    finally:
        await conn.close()


async def test_consumer_priorities(broker):
    conn = await connect(broker)
    try:
        setup = await conn.channel()
        await setup.queue_declare("cp", exclusive=True)
        hi_ch = await conn.channel()
        await hi_ch.basic_qos(prefetch_count=2)
        lo_ch = await conn.channel()
        hi, lo = Inbox(), Inbox()
        await lo_ch.basic_consume("cp", lo, arguments={"x-priority": 0})
        await hi_ch.basic_consume("cp", hi, arguments={"x-priority": 10})
        await publish_n(setup, "cp", 6)
        await asyncio.wait_for(_until(lambda: len(hi.items) + len(lo.items) == 6), 5)
        # the high-priority consumer takes all it has credit for, the rest spill over
        assert hi.bodies == [b"m0", b"m1"]
        assert lo.bodies == [b"m2", b"m3", b"m4", b"m5"]
        # once it acks, it is preferred again
        await hi_ch.basic_ack(hi.items[1].delivery_tag, multiple=True)
        await publish_n(setup, "cp", 2, "n")
        await hi.wait_for(4)
        assert hi.bodies[2:] == [b"n0", b"n1"]
        assert len(lo.items) == 4
    finally:
        await conn.close()


async def test_consumer_priority_invalid_406(broker):
    conn = await connect(broker)
    try:
        ch = await conn.channel()
        await ch.queue_declare("cpi", exclusive=True)
        with pytest.raises(E.ChannelPreconditionFailed):
            await ch.basic_consume("cpi", Inbox(), arguments={"x-priority": "high"})
    finally:
        await conn.close()


async def test_closed_channel_requeues_unacked_in_order(broker):
    conn = await connect(broker)
    try:
        setup = await conn.channel()
        await setup.queue_declare("cr")
        await publish_n(setup, "cr", 5)
        ch = await conn.channel()
        inbox = Inbox()
        await ch.basic_consume("cr", inbox)
        await inbox.wait_for(5)
        await ch.basic_ack(inbox.items[2].delivery_tag)  # m2 done
        await ch.close()
        got = []
        while True:
            m = await setup.basic_get("cr", no_ack=True)
            if isinstance(m.delivery, Basic.GetEmpty):
                break
            got.append((m.body, m.delivery.redelivered))
        assert got == [(b"m0", True), (b"m1", True), (b"m3", True), (b"m4", True)]
    finally:
        await conn.close()


async def test_closed_connection_requeues_unacked(broker):
    c1 = await connect(broker)
    ch = await c1.channel()
    await ch.queue_declare("ccr")
    await publish_n(ch, "ccr", 3)
    await _get_n(ch, "ccr", 2)
    await c1.close()
    c2 = await connect(broker)
    try:
        ch = await c2.channel()
        got = [await ch.basic_get("ccr", no_ack=True) for _ in range(3)]
        assert [(m.body, m.delivery.redelivered) for m in got] == [
            (b"m0", True),
            (b"m1", True),
            (b"m2", False),
        ]
    finally:
        await c2.close()


async def test_requeued_goes_back_to_its_place(broker):
    conn = await connect(broker)
    try:
        ch = await conn.channel()
        await ch.queue_declare("rq2")
        await publish_n(ch, "rq2", 4)
        ms = await _get_n(ch, "rq2", 2)
        await ch.basic_reject(ms[1].delivery.delivery_tag, requeue=True)
        await ch.basic_reject(ms[0].delivery.delivery_tag, requeue=True)
        got = [(await ch.basic_get("rq2", no_ack=True)) for _ in range(4)]
        assert [m.body for m in got] == [b"m0", b"m1", b"m2", b"m3"]
        assert [m.delivery.redelivered for m in got] == [True, True, False, False]
    finally:
        await conn.close()


# ---------------------------------------------------------------- direct reply-to
async def test_direct_reply_to_rpc(broker):
    conn = await connect(broker)
    try:
        server_ch = await conn.channel()
        await server_ch.queue_declare("rpc", exclusive=True)

        async def serve(msg):
            await server_ch.basic_publish(
                b"re:" + msg.body,
                routing_key=msg.header.properties.reply_to,
                properties=Basic.Properties(correlation_id=msg.header.properties.correlation_id),
            )

        await server_ch.basic_consume("rpc", serve, no_ack=True)
        client = await conn.channel()
        replies = Inbox()
        ok = await client.basic_consume(REPLY_TO, replies, no_ack=True)
        assert ok.consumer_tag
        for i in range(3):
            await client.basic_publish(
                f"q{i}".encode(),
                routing_key="rpc",
                properties=Basic.Properties(reply_to=REPLY_TO, correlation_id=str(i)),
            )
        msgs = await replies.wait_for(3)
        assert [m.body for m in msgs] == [b"re:q0", b"re:q1", b"re:q2"]
        assert [m.header.properties.correlation_id for m in msgs] == ["0", "1", "2"]
        # passive declare of the pseudo-queue works
        d = await client.queue_declare(REPLY_TO, passive=True)
        assert d.queue == REPLY_TO
    finally:
        await conn.close()


async def test_direct_reply_to_rewrites_reply_to(broker):
    conn = await connect(broker)
    try:
        ch = await conn.channel()
        await ch.queue_declare("rpc2", exclusive=True)
        await ch.basic_consume(REPLY_TO, Inbox(), no_ack=True)
        await ch.basic_publish(
            b"x", routing_key="rpc2", properties=Basic.Properties(reply_to=REPLY_TO)
        )
        m = await ch.basic_get("rpc2", no_ack=True)
        rt = m.header.properties.reply_to
        assert rt.startswith(REPLY_TO + ".") and len(rt) > len(REPLY_TO) + 1
    finally:
        await conn.close()


async def test_direct_reply_to_with_ack_mode_406(broker):
    conn = await connect(broker)
    try:
        ch = await conn.channel()
        with pytest.raises(E.ChannelPreconditionFailed) as ei:
            await ch.basic_consume(REPLY_TO, Inbox(), no_ack=False)
        assert ei.value.args[0] == "PRECONDITION_FAILED - reply consumer cannot acknowledge"
    finally:
        await conn.close()


async def test_direct_reply_to_without_consumer_406(broker):
    conn = await connect(broker)
    try:
        ch = await conn.channel(publisher_confirms=True)
        await ch.queue_declare("rpc3", exclusive=True)
        with pytest.raises(E.ChannelPreconditionFailed) as ei:
            await ch.basic_publish(
                b"x", routing_key="rpc3", properties=Basic.Properties(reply_to=REPLY_TO)
            )
        assert ei.value.args[0] == "PRECONDITION_FAILED - fast reply consumer does not exist"
    finally:
        await conn.close()


# ---------------------------------------------------------------- CC / BCC
async def test_cc_bcc_routing_and_bcc_stripped(broker):
    conn = await aio_pika.connect(broker.url)
    async with conn:
        ch = await conn.channel(publisher_confirms=True)
        ex = await ch.declare_exchange("ccx", "direct")
        qs = {}
        for k in ("main", "cc1", "cc2", "bcc1"):
            qs[k] = await ch.declare_queue("", exclusive=True)
            await qs[k].bind(ex, k)
        await ex.publish(
            aio_pika.Message(
                b"hello", headers={"CC": ["cc1", "cc2"], "BCC": ["bcc1", "main"], "x": 1}
            ),
            routing_key="main",
        )
        for k, q in qs.items():
            m = await q.get(no_ack=True, timeout=5)
            assert m.body == b"hello", k
            assert "BCC" not in m.headers, k
            assert m.headers["CC"] == ["cc1", "cc2"], k
            assert m.headers["x"] == 1
            # routing key seen by the consumer is the publish's
            assert m.routing_key == "main"
            assert await q.get(no_ack=True, fail=False) is None, k  # one copy per queue


async def test_cc_with_default_exchange(broker):
    conn = await aio_pika.connect(broker.url)
    async with conn:
        ch = await conn.channel(publisher_confirms=True)
        q1 = await ch.declare_queue("cc-a", exclusive=True)
        q2 = await ch.declare_queue("cc-b", exclusive=True)
        await ch.default_exchange.publish(aio_pika.Message(b"x", headers={"CC": ["cc-b"]}), "cc-a")
        assert (await q1.get(no_ack=True, timeout=5)).body == b"x"
        assert (await q2.get(no_ack=True, timeout=5)).body == b"x"


# ---------------------------------------------------------------- user_id
async def test_user_id_matching_is_accepted(broker):
    conn = await connect(broker)
    try:
        ch = await conn.channel(publisher_confirms=True)
        await ch.queue_declare("uid", exclusive=True)
        await ch.basic_publish(
            b"x", routing_key="uid", properties=Basic.Properties(user_id="guest")
        )
        m = await ch.basic_get("uid", no_ack=True)
        assert m.header.properties.user_id == "guest"
    finally:
        await conn.close()


async def test_user_id_mismatch_406(broker):
    conn = await connect(broker)
    try:
        ch = await conn.channel(publisher_confirms=True)
        await ch.queue_declare("uid2")
        with pytest.raises(E.ChannelPreconditionFailed) as ei:
            await ch.basic_publish(
                b"x", routing_key="uid2", properties=Basic.Properties(user_id="x")
            )
        assert ei.value.args[0] == (
            "PRECONDITION_FAILED - user_id property set to 'x' but authenticated user was 'guest'"
        )
        ch = await conn.channel()
        assert await _ready(ch, "uid2") == 0
    finally:
        await conn.close()


# ---------------------------------------------------------------- max message size
async def test_max_message_size(broker_factory):
    b = broker_factory("--max-message-size", "1000")
    conn = await aiormq.connect(b.url)
    try:
        ch = await conn.channel(publisher_confirms=True)
        await ch.queue_declare("big")
        ok = await ch.basic_publish(b"x" * 1000, routing_key="big")
        assert isinstance(ok, Basic.Ack)
        with pytest.raises(E.ChannelPreconditionFailed) as ei:
            await ch.basic_publish(b"x" * 2000, routing_key="big")
        assert ei.value.args[0] == (
            "PRECONDITION_FAILED - message size 2000 is larger than configured max size 1000"
        )
        assert not conn.is_closed
        ch = await conn.channel()
        assert await _ready(ch, "big") == 1
    finally:
        await conn.close()
