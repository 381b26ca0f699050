"""Channels: open/close/flow, and channel errors that close only the channel."""

import asyncio

import aio_pika
import aiormq
import pytest
from pamqp import body as B
from pamqp import commands as C
from pamqp import header as H

from tests.broker._raw import RawConn


async def _raw_open(broker, channel: int = 1) -> RawConn:
    raw = await RawConn.connect(broker.port)
    f = await raw.handshake()
    assert isinstance(f, C.Connection.OpenOk)
    raw.send(C.Channel.Open(), channel)
    await raw.expect(C.Channel.OpenOk)
    return raw


def _close(code: int = 200) -> C.Channel.Close:
    return C.Channel.Close(reply_code=code, reply_text="", class_id=0, method_id=0)


async def test_open_and_close_many_channels(broker):
    conn = await aio_pika.connect(broker.url)
    async with conn:
        chans = [await conn.channel() for _ in range(20)]
        assert len({c.number for c in chans}) == 20
        for c in chans[::2]:
            await c.close()
            assert c.is_closed
        for c in chans[1::2]:
            q = await c.declare_queue("", exclusive=True)
            assert q.name.startswith("amq.gen-")


async def test_channel_close_handshake_raw(broker):
    raw = await _raw_open(broker)
    try:
        raw.send(_close(), 1)
        await raw.expect(C.Channel.CloseOk)
        # the number can be reused
        raw.send(C.Channel.Open(), 1)
        await raw.expect(C.Channel.OpenOk)
    finally:
        raw.close()


async def test_channel_error_closes_only_that_channel(broker):
    conn = await aio_pika.connect(broker.url)
    async with conn:
        ch1 = await conn.channel()
        ch2 = await conn.channel()
        q2 = await ch2.declare_queue("keep", auto_delete=False)
        with pytest.raises(aiormq.exceptions.ChannelNotFoundEntity) as ei:
            await ch1.declare_queue("missing", passive=True)
        assert ei.value.args[0] == "NOT_FOUND - no queue 'missing' in vhost '/'"
        assert ch1.is_closed
        assert not conn.is_closed
        assert not ch2.is_closed
        # the other channel keeps working
        await ch2.default_exchange.publish(aio_pika.Message(b"x"), routing_key="keep")
        m = await q2.get(timeout=5)
        await m.ack()
        assert m.body == b"x"
        # and new channels can be opened
        ch3 = await conn.channel()
        await ch3.declare_queue("keep", passive=True)


async def test_channel_error_then_channel_number_reused_raw(broker):
    """After Channel.Close from the broker, frames are discarded until Channel.CloseOk."""
    raw = await _raw_open(broker)
    try:
        raw.send(C.Queue.Declare(queue="nope", passive=True), 1)
        # frames sent before our CloseOk are ignored (no second error, no connection error)
        raw.send(C.Queue.Declare(queue="", exclusive=True), 1)
        raw.send(C.Basic.Publish(exchange="", routing_key="x"), 1)
        raw.send(H.ContentHeader(body_size=3), 1)
        raw.send(B.ContentBody(b"abc"), 1)
        f = await raw.expect(C.Channel.Close)
        assert f.reply_code == 404
        assert f.reply_text == "NOT_FOUND - no queue 'nope' in vhost '/'"
        assert (f.class_id, f.method_id) == (50, 10)
        raw.send(C.Channel.CloseOk(), 1)
        raw.send(C.Channel.Open(), 1)
        await raw.expect(C.Channel.OpenOk)
        raw.send(C.Queue.Declare(queue="", exclusive=True), 1)
        f = await raw.expect(C.Queue.DeclareOk)
        assert f.queue.startswith("amq.gen-")
    finally:
        raw.close()


async def test_second_channel_open_is_connection_error(broker):
    raw = await _raw_open(broker)
    try:
        raw.send(C.Channel.Open(), 1)
        ch, f = await raw.recv()
        assert ch == 0 and isinstance(f, C.Connection.Close)
        assert f.reply_code == 504
        assert f.reply_text == "CHANNEL_ERROR - second 'channel.open' seen"
        assert (f.class_id, f.method_id) == (20, 10)
    finally:
        raw.close()


async def test_method_on_unopened_channel(broker):
    raw = await _raw_open(broker)
    try:
        raw.send(C.Queue.Declare(queue="x"), 5)
        ch, f = await raw.recv()
        assert ch == 0 and isinstance(f, C.Connection.Close)
        assert f.reply_code == 504
        assert f.reply_text == "CHANNEL_ERROR - expected 'channel.open'"
        assert (f.class_id, f.method_id) == (50, 10)
    finally:
        raw.close()


async def test_connection_method_on_channel(broker):
    raw = await _raw_open(broker)
    try:
        raw.send(C.Connection.Open(), 1)
        f = await raw.expect(C.Connection.Close)
        assert f.reply_code == 503
        assert f.reply_text == "COMMAND_INVALID - unimplemented method"
        assert (f.class_id, f.method_id) == (10, 40)
    finally:
        raw.close()


async def test_channel_method_on_channel_zero(broker):
    raw = await _raw_open(broker)
    try:
        raw.send(C.Queue.Declare(queue="x"), 0)
        f = await raw.expect(C.Connection.Close)
        assert f.reply_code == 504
        assert f.reply_text == "CHANNEL_ERROR - unexpected method in connection state running"
        assert (f.class_id, f.method_id) == (50, 10)
    finally:
        raw.close()


async def test_method_instead_of_content_header(broker):
    raw = await _raw_open(broker)
    try:
        raw.send(C.Basic.Publish(exchange="", routing_key="x"), 1)
        raw.send(C.Queue.Declare(queue="", exclusive=True), 1)
        f = await raw.expect(C.Connection.Close)
        assert f.reply_code == 505
        assert f.reply_text == (
            "UNEXPECTED_FRAME - expected content header for class 60, "
            "got non content header frame instead"
        )
        assert (f.class_id, f.method_id) == (60, 40)
    finally:
        raw.close()


@pytest.mark.parametrize("frame", [B.ContentBody(b"abc"), H.ContentHeader(body_size=3)])
async def test_content_without_publish(broker, frame):
    raw = await _raw_open(broker)
    try:
        raw.send(frame, 1)
        f = await raw.expect(C.Connection.Close)
        assert f.reply_code == 505
        assert f.reply_text == "UNEXPECTED_FRAME - expected method frame, got non method frame instead"
    finally:
        raw.close()


async def test_connection_survives_many_channel_errors(broker):
    conn = await aio_pika.connect(broker.url)
    async with conn:
        for i in range(10):
            ch = await conn.channel()
            with pytest.raises(aiormq.exceptions.ChannelNotFoundEntity):
                await ch.declare_exchange(f"nx{i}", passive=True)
        ch = await conn.channel()
        await ch.declare_queue("", exclusive=True)
        assert not conn.is_closed


async def test_flow_active_true(broker):
    conn = await aiormq.connect(broker.url)
    try:
        ch = await conn.channel()
        ok = await ch.rpc(C.Channel.Flow(active=True))
        assert isinstance(ok, C.Channel.FlowOk) and ok.active is True
    finally:
        await conn.close()


async def test_flow_inactive_pauses_deliveries(broker):
    """warren's documented choice (README): active=false pauses deliveries to the channel
    until active=true (RabbitMQ answers 540 there)."""
    conn = await aiormq.connect(broker.url)
    try:
        ch = await conn.channel()
        await ch.queue_declare("fq")
        ok = await ch.rpc(C.Channel.Flow(active=False))
        assert isinstance(ok, C.Channel.FlowOk) and ok.active is False
        got: asyncio.Queue = asyncio.Queue()
        await ch.basic_consume("fq", got.put, no_ack=True)
        await ch.basic_publish(b"1", routing_key="fq")
        # a round trip on the same channel; the message must still be held back
        ok = await ch.queue_declare("fq", passive=True)
        assert got.empty()
        assert ok.message_count == 1
        ok = await ch.rpc(C.Channel.Flow(active=True))
        assert ok.active is True
        m = await asyncio.wait_for(got.get(), 5)
        assert m.body == b"1"
    finally:
        await conn.close()
