"""Bad bytes on the wire: every broken stream gets RabbitMQ's Connection.Close (or,
before the handshake, RabbitMQ's protocol-header answer), the socket is closed, and
the broker keeps serving its other connections (DESIGN.md, principle 6).

Reply codes and texts were checked against RabbitMQ 3.10 with the same raw-socket
helper; where warren differs on purpose the case says so.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass

import aio_pika
import pytest
from pamqp import body as pbody
from pamqp import commands as C
from pamqp import frame as pframe
from pamqp import header as pheader
from pamqp import heartbeat as pheartbeat
from pamqp.exceptions import UnmarshalingException

AMQP_091 = b"AMQP\x00\x00\x09\x01"
TIMEOUT = 5.0


class Raw:
    """A blocking AMQP 0-9-1 client over a raw socket, framing done by pamqp."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        self.buf = b""
        self.frame_max = 0

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_frame(self, value, channel: int = 0) -> None:
        self.send(pframe.marshal(value, channel))

    def send_raw_frame(self, ftype: int, channel: int, payload: bytes, end: bytes = b"\xce") -> None:
        self.send(struct.pack(">BHI", ftype, channel, len(payload)) + payload + end)

    def recv_some(self) -> bytes:
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("connection closed by the broker")
        return data

    def read_frame(self) -> tuple[int, object]:
        while True:
            if self.buf.startswith(b"AMQP") and len(self.buf) >= 8:
                value, self.buf = self.buf[:8], self.buf[8:]
                return 0, value
            try:
                n, ch, value = pframe.unmarshal(self.buf)
            except UnmarshalingException:
                self.buf += self.recv_some()
                continue
            self.buf = self.buf[n:]
            return ch, value

    def read_method(self) -> tuple[int, object]:
        while True:
            ch, value = self.read_frame()
            if not isinstance(value, pheartbeat.Heartbeat):
                return ch, value

    def expect(self, cls: type, channel: int | None = None):
        ch, value = self.read_method()
        assert isinstance(value, cls), value
        if channel is not None:
            assert ch == channel
        return value

    def handshake(self) -> Raw:
        self.send(AMQP_091)
        self.expect(C.Connection.Start, 0)
        self.send_frame(
            C.Connection.StartOk(
                client_properties={"product": "warren-bad-input-test"},
                mechanism="PLAIN",
                response="\0guest\0guest",
                locale="en_US",
            )
        )
        tune = self.expect(C.Connection.Tune, 0)
        self.frame_max = tune.frame_max
        self.send_frame(C.Connection.TuneOk(channel_max=tune.channel_max, frame_max=tune.frame_max, heartbeat=0))
        self.send_frame(C.Connection.Open(virtual_host="/"))
        self.expect(C.Connection.OpenOk, 0)
        return self

    def open_channel(self, channel: int = 1) -> None:
        self.send_frame(C.Channel.Open(), channel)
        self.expect(C.Channel.OpenOk, channel)

    def wait_closed(self) -> bool:
        """True once the broker closed the socket (EOF or reset) within TIMEOUT."""
        try:
            while True:
                if not self.sock.recv(65536):
                    return True
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False

    def close(self) -> None:
        self.sock.close()


# ---------------------------------------------------------------------------------- cases


def publish(r: Raw, channel: int = 1, body_size: int = 3, rk: str = "nowhere") -> None:
    r.send_frame(C.Basic.Publish(exchange="", routing_key=rk), channel)
    r.send_frame(pheader.ContentHeader(0, body_size, C.Basic.Properties()), channel)


def oversized_frame(r: Raw) -> None:
    r.open_channel()
    # RabbitMQ refuses payloads larger than frame_max (it tolerates frame_max - 8 .. frame_max)
    r.send(struct.pack(">BHI", 3, 1, r.frame_max + 1))


def oversized_method(r: Raw) -> None:
    r.open_channel()
    payload = pframe.marshal(C.Queue.Declare(queue="q", arguments={"x": "y" * r.frame_max}), 1)[7:-1]
    r.send_raw_frame(1, 1, payload)


def missing_frame_end(r: Raw) -> None:
    r.send(pframe.marshal(C.Channel.Open(), 1)[:-1] + b"\x00")


def unknown_method(r: Raw) -> None:
    r.open_channel()
    r.send_raw_frame(1, 1, struct.pack(">HH", 60, 999))


def unknown_class(r: Raw) -> None:
    r.open_channel()
    r.send_raw_frame(1, 1, struct.pack(">HH", 77, 1))


def unknown_frame_type(r: Raw) -> None:
    r.send_raw_frame(5, 0, b"")


def body_longer_than_declared(r: Raw) -> None:
    r.open_channel()
    publish(r, body_size=3)
    r.send_frame(pbody.ContentBody(b"ab"), 1)
    r.send_frame(pbody.ContentBody(b"cd"), 1)


def method_on_unopened_channel(r: Raw) -> None:
    r.send_frame(C.Queue.Declare(queue="q"), 3)


def publish_on_unopened_channel(r: Raw) -> None:
    publish(r, channel=3)
    r.send_frame(pbody.ContentBody(b"abc"), 3)


def ack_on_unopened_channel(r: Raw) -> None:
    r.send_frame(C.Basic.Ack(delivery_tag=1), 3)


def body_on_unopened_channel(r: Raw) -> None:
    r.send_frame(pbody.ContentBody(b"x"), 3)


def header_without_publish(r: Raw) -> None:
    r.open_channel()
    r.send_frame(pheader.ContentHeader(0, 3, C.Basic.Properties()), 1)


def body_without_publish(r: Raw) -> None:
    r.open_channel()
    r.send_frame(pbody.ContentBody(b"abc"), 1)


def connection_open_again(r: Raw) -> None:
    r.send_frame(C.Connection.Open(virtual_host="/"))


def channel_method_on_channel_zero(r: Raw) -> None:
    r.send_frame(C.Queue.Declare(queue="q"), 0)


def basic_ack_on_channel_zero(r: Raw) -> None:
    r.send_frame(C.Basic.Ack(delivery_tag=1), 0)


def header_on_channel_zero(r: Raw) -> None:
    r.send_frame(pheader.ContentHeader(0, 1, C.Basic.Properties()), 0)


def channel_open_twice(r: Raw) -> None:
    r.open_channel()
    r.send_frame(C.Channel.Open(), 1)


def ack_instead_of_header(r: Raw) -> None:
    r.open_channel()
    r.send_frame(C.Basic.Publish(exchange="", routing_key="nowhere"), 1)
    r.send_frame(C.Basic.Ack(delivery_tag=1), 1)


def ack_in_the_middle_of_content(r: Raw) -> None:
    r.open_channel()
    publish(r, body_size=3)
    r.send_frame(pbody.ContentBody(b"a"), 1)
    r.send_frame(C.Basic.Ack(delivery_tag=1), 1)


def method_instead_of_body(r: Raw) -> None:
    r.open_channel()
    publish(r, body_size=3)
    r.send_frame(C.Queue.Declare(queue="q"), 1)


def publish_instead_of_header(r: Raw) -> None:
    r.open_channel()
    r.send_frame(C.Basic.Publish(exchange="", routing_key="nowhere"), 1)
    r.send_frame(C.Basic.Publish(exchange="", routing_key="nowhere"), 1)


def header_of_wrong_class(r: Raw) -> None:
    r.open_channel()
    r.send_frame(C.Basic.Publish(exchange="", routing_key="nowhere"), 1)
    r.send_raw_frame(2, 1, struct.pack(">HHQH", 50, 0, 3, 0))


def heartbeat_on_channel(r: Raw) -> None:
    r.open_channel()
    r.send(b"\x08\x00\x01\x00\x00\x00\x00\xce")


def heartbeat_with_payload(r: Raw) -> None:
    r.send_raw_frame(8, 0, b"ab")


def _truncated(method, channel_open: bool = True, cut: int = 3) -> Callable[[Raw], None]:
    def case(r: Raw) -> None:
        if channel_open:
            r.open_channel()
        payload = pframe.marshal(method, 1)[7:-1]
        r.send_raw_frame(1, 1, payload[:-cut])

    return case


def method_shorter_than_its_id(r: Raw) -> None:
    r.open_channel()
    r.send_raw_frame(1, 1, b"\x00\x3c")


def ack_with_trailing_bytes(r: Raw) -> None:
    r.open_channel()
    r.send_raw_frame(1, 1, struct.pack(">HHQBB", 60, 80, 1, 0, 0))


def publish_with_trailing_bytes(r: Raw) -> None:
    r.open_channel()
    r.send_raw_frame(1, 1, pframe.marshal(C.Basic.Publish(exchange="", routing_key="x"), 1)[7:-1] + b"zz")


def malformed_utf8_shortstr(r: Raw) -> None:
    r.open_channel()
    r.send_raw_frame(1, 1, struct.pack(">HHH", 50, 10, 0) + b"\x02\xff\xfe" + b"\x00" + b"\x00\x00\x00\x00")


def content_header_too_short(r: Raw) -> None:
    r.open_channel()
    r.send_frame(C.Basic.Publish(exchange="", routing_key="nowhere"), 1)
    r.send_raw_frame(2, 1, struct.pack(">HHQ", 60, 0, 3))


def truncated_properties_to_a_queue(r: Raw) -> None:
    r.open_channel()
    r.send_frame(C.Queue.Declare(queue="", exclusive=True), 1)
    q = r.expect(C.Queue.DeclareOk, 1).queue
    r.send_frame(C.Basic.Publish(exchange="", routing_key=q), 1)
    # flags say headers + delivery-mode + priority; the table claims 256 bytes
    r.send_raw_frame(2, 1, struct.pack(">HHQH", 60, 0, 1, 0x3800) + b"\x00\x00\x01\x00")
    r.send_frame(pbody.ContentBody(b"a"), 1)


@dataclass
class Case:
    fn: Callable[[Raw], None]
    code: int
    text: str  # prefix of the reply text
    ids: tuple[int, int] | None = None  # class_id, method_id when they matter
    note: str = ""


# code/text prefixes: RabbitMQ 3.10 answers, unless a note says otherwise
CASES: dict[str, Case] = {
    "frame-larger-than-frame-max": Case(oversized_frame, 501, "FRAME_ERROR - "),
    "method-larger-than-frame-max": Case(oversized_method, 501, "FRAME_ERROR - "),
    "missing-frame-end": Case(missing_frame_end, 501, "FRAME_ERROR - "),
    "unknown-frame-type": Case(unknown_frame_type, 501, "FRAME_ERROR - "),
    # RabbitMQ 3.10 crashes the connection process (TCP close, no Close) on unknown ids
    "unknown-method": Case(unknown_method, 540, "NOT_IMPLEMENTED - ", (60, 999), "rabbit: no Close"),
    "unknown-class": Case(unknown_class, 501, "FRAME_ERROR - ", (77, 1), "rabbit: no Close"),
    # RabbitMQ never completes the message and waits forever; warren refuses at once
    "body-longer-than-declared": Case(body_longer_than_declared, 501, "FRAME_ERROR - ", None, "rabbit: hangs"),
    "method-on-unopened-channel": Case(
        method_on_unopened_channel, 504, "CHANNEL_ERROR - expected 'channel.open'", (50, 10)
    ),
    "publish-on-unopened-channel": Case(
        publish_on_unopened_channel, 504, "CHANNEL_ERROR - expected 'channel.open'", (60, 40)
    ),
    "ack-on-unopened-channel": Case(
        ack_on_unopened_channel, 504, "CHANNEL_ERROR - expected 'channel.open'", (60, 80)
    ),
    "body-on-unopened-channel": Case(
        body_on_unopened_channel, 505, "UNEXPECTED_FRAME - expected method frame, got non method frame instead"
    ),
    "header-without-publish": Case(
        header_without_publish, 505, "UNEXPECTED_FRAME - expected method frame, got non method frame instead"
    ),
    "body-without-publish": Case(
        body_without_publish, 505, "UNEXPECTED_FRAME - expected method frame, got non method frame instead"
    ),
    "connection-open-again": Case(
        connection_open_again, 504, "CHANNEL_ERROR - unexpected method in connection state running", (10, 40)
    ),
    "queue-declare-on-channel-zero": Case(
        channel_method_on_channel_zero,
        504,
        "CHANNEL_ERROR - unexpected method in connection state running",
        (50, 10),
    ),
    "basic-ack-on-channel-zero": Case(
        basic_ack_on_channel_zero, 504, "CHANNEL_ERROR - unexpected method in connection state running", (60, 80)
    ),
    "header-on-channel-zero": Case(header_on_channel_zero, 505, "UNEXPECTED_FRAME - "),
    "channel-open-twice": Case(channel_open_twice, 504, "CHANNEL_ERROR - second 'channel.open' seen", (20, 10)),
    "ack-instead-of-content-header": Case(
        ack_instead_of_header,
        505,
        "UNEXPECTED_FRAME - expected content header for class 60, got non content header frame instead",
        (60, 40),
    ),
    "publish-instead-of-content-header": Case(
        publish_instead_of_header,
        505,
        "UNEXPECTED_FRAME - expected content header for class 60, got non content header frame instead",
        (60, 40),
    ),
    "ack-in-the-middle-of-content": Case(
        ack_in_the_middle_of_content,
        505,
        "UNEXPECTED_FRAME - expected content body, got non content body frame instead",
        (60, 40),
    ),
    "method-instead-of-body": Case(
        method_instead_of_body,
        505,
        "UNEXPECTED_FRAME - expected content body, got non content body frame instead",
        (60, 40),
    ),
    "content-header-of-class-50": Case(
        header_of_wrong_class,
        505,
        "UNEXPECTED_FRAME - expected content header for class 60, got one for class 50 instead",
    ),
    # the spec says 501 here; RabbitMQ answers 505
    "heartbeat-on-channel-1": Case(heartbeat_on_channel, 505, "UNEXPECTED_FRAME - "),
    "heartbeat-with-payload": Case(heartbeat_with_payload, 501, "FRAME_ERROR - "),
    # truncated or over-long method payloads: RabbitMQ 501 "cannot decode <<...>>" + the method's ids
    "truncated-publish": Case(
        _truncated(C.Basic.Publish(exchange="ex", routing_key="key")), 501, "FRAME_ERROR - cannot decode", (60, 40)
    ),
    "truncated-ack": Case(
        _truncated(C.Basic.Ack(delivery_tag=7), cut=1), 501, "FRAME_ERROR - cannot decode", (60, 80)
    ),
    "truncated-nack": Case(
        _truncated(C.Basic.Nack(delivery_tag=7), cut=5), 501, "FRAME_ERROR - cannot decode", (60, 120)
    ),
    "truncated-reject": Case(
        _truncated(C.Basic.Reject(delivery_tag=7), cut=1), 501, "FRAME_ERROR - cannot decode", (60, 90)
    ),
    "truncated-queue-declare": Case(
        _truncated(C.Queue.Declare(queue="abc"), cut=5), 501, "FRAME_ERROR - cannot decode", (50, 10)
    ),
    "truncated-queue-declare-arguments": Case(
        _truncated(C.Queue.Declare(queue="abc", arguments={"x-max-length": 5}), cut=4),
        501,
        "FRAME_ERROR - cannot decode",
        (50, 10),
    ),
    "method-shorter-than-its-id": Case(method_shorter_than_its_id, 501, "FRAME_ERROR - "),
    "ack-with-trailing-bytes": Case(ack_with_trailing_bytes, 501, "FRAME_ERROR - cannot decode", (60, 80)),
    "publish-with-trailing-bytes": Case(
        publish_with_trailing_bytes, 501, "FRAME_ERROR - cannot decode", (60, 40)
    ),
    "malformed-utf8-shortstr": Case(malformed_utf8_shortstr, 501, "FRAME_ERROR - Malformed UTF-8 in shortstr"),
    # RabbitMQ waits for more header bytes / decodes properties lazily; warren refuses at once
    "content-header-too-short": Case(content_header_too_short, 501, "FRAME_ERROR - ", None, "rabbit: hangs"),
    "truncated-properties": Case(
        truncated_properties_to_a_queue, 502, "SYNTAX_ERROR - ", (60, 40), "rabbit: closes at delivery"
    ),
}


def run_case(port: int, case: Case):
    r = Raw(port)
    try:
        r.handshake()
        case.fn(r)
        ch, close = r.read_method()
        closed_before_close_ok = None
        if isinstance(close, C.Connection.Close):
            r.send_frame(C.Connection.CloseOk())
            closed_before_close_ok = r.wait_closed()
        return ch, close, closed_before_close_ok
    finally:
        r.close()


async def roundtrip(conn: aio_pika.abc.AbstractConnection, tag: str) -> None:
    """Publish + consume on a connection that was opened before the bad one."""
    ch = await conn.channel(publisher_confirms=True)
    q = await ch.declare_queue("", exclusive=True)
    await ch.default_exchange.publish(aio_pika.Message(body=tag.encode()), routing_key=q.name)
    async with q.iterator() as it:
        async for m in it:
            async with m.process():
                assert m.body == tag.encode()
            break
    await ch.close()


@pytest.mark.parametrize("name", list(CASES))
async def test_bad_frames_close_connection(broker, name):
    case = CASES[name]
    good = await aio_pika.connect(broker.url, timeout=TIMEOUT)
    try:
        await roundtrip(good, "before")
        ch, close, closed = await asyncio.wait_for(asyncio.to_thread(run_case, broker.port, case), 30)
        assert ch == 0
        assert isinstance(close, C.Connection.Close), close
        assert close.reply_code == case.code, close.reply_text
        assert close.reply_text.startswith(case.text), close.reply_text
        if case.ids is not None:
            assert (close.class_id, close.method_id) == case.ids
        assert closed, "socket still open after Connection.CloseOk"
        await roundtrip(good, "after")
    finally:
        await good.close()
    assert broker.proc.poll() is None
    assert "Traceback" not in broker.log_text()


def test_close_timeout_without_close_ok(broker):
    """A client that never answers the broker's Connection.Close is dropped anyway."""
    r = Raw(broker.port)
    try:
        r.handshake()
        heartbeat_on_channel(r)
        assert isinstance(r.expect(C.Connection.Close, 0), C.Connection.Close)
        r.sock.settimeout(15)
        assert r.wait_closed()
    finally:
        r.close()


def test_frames_after_error_are_ignored(broker):
    """After a Connection.Close the broker discards everything but Close/CloseOk."""
    r = Raw(broker.port)
    try:
        r.handshake()
        missing_frame_end(r)
        close = r.expect(C.Connection.Close, 0)
        assert close.reply_code == 501
        r.send(b"garbage that is not a frame at all" * 10)
        r.send_frame(C.Connection.CloseOk())
        assert r.wait_closed()
    finally:
        r.close()


# ------------------------------------------------------------------------ protocol header


@pytest.mark.parametrize(
    "header",
    [
        pytest.param(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", id="http"),
        pytest.param(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", id="tls-client-hello"),
        pytest.param(b"AMQP\x01\x01\x00\x0a", id="amqp-0-10"),
        pytest.param(b"AMQP\x00\x00\x00\x0a", id="amqp-0-10-new"),
        pytest.param(b"AMQP\x00\x01\x00\x00", id="amqp-1-0"),
        pytest.param(b"AMQP\x03\x01\x00\x00", id="amqp-1-0-sasl"),
        pytest.param(b"AMQP\x00\x00\x09\x02", id="amqp-0-9-2"),
        pytest.param(b"AMQP\x00\x00\x08\x00", id="bad-version"),
        pytest.param(b"\x00" * 8, id="zeros"),
        pytest.param(AMQP_091[:4] + b"\x00\x00\x09", id="short-then-wrong") ,
    ],
)
async def test_wrong_protocol_header(broker, header):
    good = await aio_pika.connect(broker.url, timeout=TIMEOUT)
    try:

        def bad() -> tuple[bytes, bool]:
            r = Raw(broker.port)
            try:
                data = header if len(header) >= 8 else header + b"\x07"
                r.send(data)
                got = b""
                while len(got) < 8:
                    got += r.recv_some()
                return got, r.wait_closed()
            finally:
                r.close()

        got, closed = await asyncio.wait_for(asyncio.to_thread(bad), 30)
        assert got == AMQP_091  # RabbitMQ answers the header it speaks, then closes
        assert closed
        await roundtrip(good, "after")
    finally:
        await good.close()
    assert broker.proc.poll() is None


def test_amqp_0_9_header_is_served_as_0_9_1(broker):
    """RabbitMQ treats AMQP 0-9's header (1,1,0,9) as 0-9-1; so does warren."""
    r = Raw(broker.port)
    try:
        r.send(b"AMQP\x01\x01\x00\x09")
        start = r.expect(C.Connection.Start, 0)
        assert (start.version_major, start.version_minor) == (0, 9)
    finally:
        r.close()


def test_header_split_byte_by_byte(broker):
    r = Raw(broker.port)
    try:
        for b in AMQP_091:
            r.send(bytes((b,)))
        r.expect(C.Connection.Start, 0)
    finally:
        r.close()


def test_incomplete_header_hits_handshake_timeout(broker_factory):
    b = broker_factory("--handshake-timeout", "1")
    r = Raw(b.port)
    try:
        r.send(b"AMQ")
        assert r.wait_closed()  # RabbitMQ: closed silently after its handshake timeout
    finally:
        r.close()
