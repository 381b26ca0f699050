"""Connection-level behaviour: authentication, vhosts, tuning, heartbeats, handshake timeout,
server properties. What aio-pika/aiormq cannot choose (AMQPLAIN, TuneOk values, going silent)
goes through the raw pamqp client in ``_raw.py``."""

import asyncio
import time

import aio_pika
import aiormq
import pytest
from pamqp import commands as C
from pamqp.heartbeat import Heartbeat

from tests.broker._raw import PROTOCOL_HEADER, RawConn

LOGIN_REFUSED = (
    "ACCESS_REFUSED - Login was refused using authentication mechanism {}. "
    "For details see the broker logfile."
)


# ---------------------------------------------------------------- authentication
async def test_plain_auth_ok_with_aio_pika(broker):
    conn = await aio_pika.connect(broker.url)
    async with conn:
        ch = await conn.channel()
        q = await ch.declare_queue("", exclusive=True)
        assert q.name.startswith("amq.gen-")


@pytest.mark.parametrize("mechanism", ["PLAIN", "AMQPLAIN"])
async def test_auth_ok_raw(broker, mechanism):
    raw = await RawConn.connect(broker.port)
    try:
        f = await raw.handshake(mechanism=mechanism)
        assert isinstance(f, C.Connection.OpenOk)
        assert "PLAIN" in raw.start.mechanisms.split()
        assert "AMQPLAIN" in raw.start.mechanisms.split()
        raw.send(C.Channel.Open(), 1)
        await raw.expect(C.Channel.OpenOk)
        raw.send(C.Connection.Close(reply_code=200, reply_text="bye", class_id=0, method_id=0))
        await raw.expect(C.Connection.CloseOk)
    finally:
        raw.close()


@pytest.mark.parametrize("mechanism", ["PLAIN", "AMQPLAIN"])
@pytest.mark.parametrize("user,password", [("guest", "wrong"), ("nobody", "guest")])
async def test_auth_refused_raw(broker, mechanism, user, password):
    raw = await RawConn.connect(broker.port)
    try:
        f = await raw.handshake(mechanism=mechanism, user=user, password=password)
        assert isinstance(f, C.Connection.Close), f
        assert f.reply_code == 403
        assert f.reply_text == LOGIN_REFUSED.format(mechanism)
        # the broker then drops the connection
        await raw.wait_eof(5)
    finally:
        raw.close()


async def test_auth_refused_aio_pika(broker):
    url = f"amqp://guest:wrong@127.0.0.1:{broker.port}/"
    with pytest.raises(aiormq.exceptions.ProbableAuthenticationError) as ei:
        await aio_pika.connect(url)
    assert ei.value.args[0] == LOGIN_REFUSED.format("PLAIN")


async def test_unknown_mechanism_refused(broker):
    """RabbitMQ closes (silently, after a delay); warren may answer 403 first. Never a Tune."""
    raw = await RawConn.connect(broker.port)
    try:
        raw.send_raw(PROTOCOL_HEADER)
        await raw.expect(C.Connection.Start)
        raw.send(
            C.Connection.StartOk(
                client_properties={"capabilities": {"authentication_failure_close": True}},
                mechanism="CRAM-MD5",
                response="x",
                locale="en_US",
            )
        )
        frames = await raw.wait_eof(6)
        assert not any(isinstance(f, C.Connection.Tune) for f in frames)
        for f in frames:
            if isinstance(f, C.Connection.Close):
                assert f.reply_code == 403
    finally:
        raw.close()


# ---------------------------------------------------------------- vhosts
async def test_unknown_vhost_530_raw(broker):
    raw = await RawConn.connect(broker.port)
    try:
        f = await raw.handshake(vhost="nope")
        assert isinstance(f, C.Connection.Close), f
        assert f.reply_code == 530
        assert f.reply_text == "NOT_ALLOWED - vhost nope not found"
        assert (f.class_id, f.method_id) == (10, 40)
        raw.send(C.Connection.CloseOk())
        await raw.wait_eof(5)
    finally:
        raw.close()


async def test_unknown_vhost_aio_pika(broker):
    with pytest.raises(aiormq.exceptions.AMQPError):
        await aio_pika.connect(f"amqp://guest:guest@127.0.0.1:{broker.port}/nope")
    # the broker is fine afterwards
    conn = await aio_pika.connect(broker.url)
    await conn.close()


# ---------------------------------------------------------------- tuning
async def test_tune_values_offered(broker):
    raw = await RawConn.connect(broker.port)
    try:
        await raw.handshake()
        assert raw.tune.channel_max == 2047
        assert raw.tune.frame_max == 131072
        assert raw.tune.heartbeat == 60
    finally:
        raw.close()


async def test_heartbeat_negotiation_aio_pika(broker):
    conn = await aio_pika.connect(broker.url + "?heartbeat=5")
    async with conn:
        tune = conn.transport.connection.connection_tune
        assert tune.heartbeat == 5
        ch = await conn.channel()
        await ch.declare_queue("", exclusive=True)


async def test_heartbeats_sent_and_connection_kept_alive(broker):
    """heartbeat=1 negotiated: the broker sends heartbeats and a client that sends them too
    stays connected past the two-interval timeout."""
    raw = await RawConn.connect(broker.port)
    try:
        f = await raw.handshake(heartbeat=1)
        assert isinstance(f, C.Connection.OpenOk)
        t0 = time.monotonic()
        beats = 0
        while time.monotonic() - t0 < 3.0:
            _, f = await raw.recv(timeout=2.0, heartbeats=True)
            if isinstance(f, Heartbeat):
                beats += 1
                raw.send(Heartbeat())
        assert beats >= 2
        raw.send(C.Channel.Open(), 1)
        await raw.expect(C.Channel.OpenOk)
    finally:
        raw.close()


async def test_heartbeat_gap_at_most_half_an_interval(broker):
    """heartbeat=1: whatever the broker last sent (Connection.OpenOk, a reply at any phase
    of its heartbeat timer, a heartbeat), the next frame follows within half an interval
    (plus scheduling slack): a client whose read timeout is the heartbeat
    (@cloudamqp/amqp-client) is never starved. Measured over 3 s; the client talks for
    the first 1.5 s (replies at many timer phases), then stays idle."""
    raw = await RawConn.connect(broker.port)
    try:
        f = await raw.handshake(heartbeat=1)
        assert isinstance(f, C.Connection.OpenOk)
        last = t0 = time.monotonic()
        raw.send(C.Channel.Open(), 1)
        gaps: list[float] = []
        next_request = t0
        while time.monotonic() - t0 < 3.0:
            now = time.monotonic()
            if now - t0 < 1.5 and now >= next_request:
                raw.send(C.Basic.Qos(prefetch_count=1), 1)  # the broker answers Qos-Ok
                next_request = now + 0.23
            _, f = await raw.recv(timeout=1.5, heartbeats=True)
            now = time.monotonic()
            gaps.append(now - last)
            last = now
            if isinstance(f, Heartbeat):
                raw.send(Heartbeat())
        assert max(gaps) <= 0.75, [round(g, 3) for g in gaps]
    finally:
        raw.close()


async def test_silent_peer_dropped_after_two_missed_heartbeats(broker):
    raw = await RawConn.connect(broker.port)
    try:
        f = await raw.handshake(heartbeat=1)
        assert isinstance(f, C.Connection.OpenOk)
        t0 = time.monotonic()
        frames = await raw.wait_eof(timeout=6.0)  # TimeoutError here = never dropped
        elapsed = time.monotonic() - t0
        assert 1.0 <= elapsed <= 4.0, elapsed
        assert any(isinstance(f, Heartbeat) for f in frames)
    finally:
        raw.close()


async def test_handshake_timeout_silent_socket(broker_factory):
    b = broker_factory("--handshake-timeout", "1")
    raw = await RawConn.connect(b.port)
    try:
        t0 = time.monotonic()
        frames = await raw.wait_eof(timeout=5.0)
        assert frames == []
        assert time.monotonic() - t0 <= 3.0
    finally:
        raw.close()


async def test_handshake_timeout_after_start(broker_factory):
    b = broker_factory("--handshake-timeout", "1")
    raw = await RawConn.connect(b.port)
    try:
        raw.send_raw(PROTOCOL_HEADER)
        await raw.expect(C.Connection.Start)
        t0 = time.monotonic()
        await raw.wait_eof(timeout=5.0)
        assert time.monotonic() - t0 <= 3.0
        # a full handshake within the limit still works
        conn = await aio_pika.connect(b.url)
        await conn.close()
    finally:
        raw.close()


async def test_bad_protocol_header(broker):
    """An unsupported protocol header is answered with the supported one, then closed."""
    raw = await RawConn.connect(broker.port)
    try:
        raw.send_raw(b"AMQP\x00\x00\x08\x00")
        data = await asyncio.wait_for(raw.r.readexactly(8), 5)
        assert data == PROTOCOL_HEADER
        try:
            rest = await asyncio.wait_for(raw.r.read(100), 5)
        except ConnectionResetError:
            rest = b""
        assert rest == b""
    finally:
        raw.close()


async def test_channel_max_negotiated(broker):
    """As RabbitMQ: channel_max bounds the number of open channels (not the channel number)."""
    raw = await RawConn.connect(broker.port)
    try:
        f = await raw.handshake(channel_max=3)
        assert isinstance(f, C.Connection.OpenOk)
        for n in (1, 2, 10):
            raw.send(C.Channel.Open(), n)
            ch, f = await raw.recv()
            assert isinstance(f, C.Channel.OpenOk) and ch == n
        # closing one frees a slot
        raw.send(C.Channel.Close(reply_code=200, reply_text="", class_id=0, method_id=0), 10)
        await raw.expect(C.Channel.CloseOk)
        raw.send(C.Channel.Open(), 3)
        await raw.expect(C.Channel.OpenOk)
        raw.send(C.Channel.Open(), 4)
        ch, f = await raw.recv()
        assert isinstance(f, C.Connection.Close), f
        assert ch == 0
        assert f.reply_code == 530
        assert f.reply_text == (
            "NOT_ALLOWED - number of channels opened (3) has reached the negotiated channel_max (3)"
        )
        raw.send(C.Connection.CloseOk())
        await raw.wait_eof(5)
    finally:
        raw.close()


async def test_aio_pika_uses_negotiated_channel_max(broker):
    conn = await aio_pika.connect(broker.url)
    async with conn:
        assert conn.transport.connection.connection_tune.channel_max == 2047
        chans = [await conn.channel() for _ in range(5)]
        assert len({c.number for c in chans}) == 5


@pytest.mark.parametrize("frame_max", [1024, 10**7])
async def test_frame_max_out_of_range_refused(broker, frame_max):
    """RabbitMQ drops the connection (silently, after a delay); warren answers 530 first.
    Either way the connection never opens."""
    raw = await RawConn.connect(broker.port)
    try:
        try:
            f = await raw.handshake(frame_max=frame_max)
        except EOFError:
            return
        assert isinstance(f, C.Connection.Close), f
        assert f.reply_code == 530
        assert f"frame_max={frame_max}" in f.reply_text
        await raw.wait_eof(6)
    finally:
        raw.close()


# ---------------------------------------------------------------- server properties
async def test_server_properties_and_capabilities(broker):
    conn = await aio_pika.connect(broker.url)
    async with conn:
        props = conn.transport.connection.server_properties
        assert props["product"]
        caps = props["capabilities"]
        for cap in (
            "publisher_confirms",
            "exchange_exchange_bindings",
            "basic.nack",
            "consumer_cancel_notify",
            "connection.blocked",
            "authentication_failure_close",
            "per_consumer_qos",
            "direct_reply_to",
            "consumer_priorities",
        ):
            assert caps.get(cap) is True, cap


async def test_connection_close_handshake(broker):
    raw = await RawConn.connect(broker.port)
    try:
        await raw.handshake()
        raw.send(C.Connection.Close(reply_code=200, reply_text="Goodbye", class_id=0, method_id=0))
        await raw.expect(C.Connection.CloseOk)
    finally:
        raw.close()


async def test_many_connections_independent(broker):
    conns = await asyncio.gather(*(aio_pika.connect(broker.url) for _ in range(5)))
    try:
        chans = [await c.channel() for c in conns]
        qs = [await ch.declare_queue("", exclusive=True) for ch in chans]
        assert len({q.name for q in qs}) == 5
    finally:
        for c in conns:
            await c.close()
