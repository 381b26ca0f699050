"""Raw-socket AMQP sessions recording every frame a broker sends, byte for byte.

The wire sweep (interop/test_wire_sweep.py) runs the same case against warren and
RabbitMQ through :class:`Session` and compares the recorded transcripts. A case is a
function of one Session: it sends frames (``send``), waits for a synchronous answer
(``call``), reads asynchronous frames (``read``) and checks that nothing more came
(``sync``). Every frame received is appended to ``transcript`` as raw bytes.
"""

from __future__ import annotations

import re
import socket
import struct
import time
from typing import Any

import pamqp.frame
from pamqp import commands as C
from pamqp import encode
from pamqp.body import ContentBody
from pamqp.header import ContentHeader
from pamqp.heartbeat import Heartbeat

PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"
#: methods a broker sends on its own (not as the answer to a synchronous method)
ASYNC = (C.Basic.Deliver, C.Basic.Return, C.Basic.Ack, C.Basic.Nack, C.Basic.Cancel,
         C.Connection.Blocked, C.Connection.Unblocked)
_CONTENT = (ContentHeader, ContentBody)

# server-generated names (22 base64url characters after the prefix on both brokers):
# same-length placeholders keep the frames' length fields valid
_GENERATED = re.compile(rb"(amq\.gen-|amq\.ctag-)[A-Za-z0-9_\-]{22}")
# direct reply-to tokens differ in length between the brokers: such a frame is compared decoded
_REPLY_TO = re.compile(rb"amq\.rabbitmq\.reply-to\.[A-Za-z0-9_\-.=+/]+")
_REPLY_TO_STR = re.compile(r"amq\.rabbitmq\.reply-to\.[A-Za-z0-9_\-.=+/]+")


def normalise(raw: bytes) -> bytes:
    raw = _GENERATED.sub(lambda m: m.group(1) + b"*" * 22, raw)
    if _REPLY_TO.search(raw):
        return ("<decoded> " + _REPLY_TO_STR.sub("amq.rabbitmq.reply-to.<token>", describe(raw))).encode()
    return raw


def decode(raw: bytes) -> tuple[int, Any]:
    """(channel, pamqp frame) of one raw frame."""
    _n, ch, f = pamqp.frame.unmarshal(raw)
    return ch, f


def describe(raw: bytes) -> str:
    """One readable line for a raw frame (or a marker such as ``<eof>``)."""
    if raw.startswith(b"<"):
        return raw.decode()
    if raw.startswith(b"AMQP"):
        return f"protocol header {raw!r}"
    try:
        ch, f = decode(raw)
    except Exception as exc:  # noqa: BLE001 - show what could not be parsed
        return f"undecodable {raw.hex()} ({exc})"
    if isinstance(f, ContentBody):
        return f"ch{ch} body {f.value!r}"
    if isinstance(f, ContentHeader):
        props = {k: v for k, v in dict(f.properties).items() if v is not None}
        return f"ch{ch} header size={f.body_size} {props}"
    if isinstance(f, Heartbeat):
        return f"ch{ch} heartbeat"
    return f"ch{ch} {f.name}{dict(f)}"


def method(ch: int, m: Any) -> bytes:
    return pamqp.frame.marshal(m, ch)


def content(ch: int, body: bytes, props: dict | None = None, class_id: int = 60,
            frame_max: int = 131072) -> bytes:
    header = pamqp.frame.marshal(ContentHeader(0, len(body), C.Basic.Properties(**(props or {}))), ch)
    if class_id != 60:
        header = header[:7] + struct.pack(">H", class_id) + header[9:]
    out = [header]
    step = frame_max - 8
    for i in range(0, len(body), step):
        out.append(pamqp.frame.marshal(ContentBody(body[i:i + step]), ch))
    return b"".join(out)


def publish(ch: int, exchange: str, routing_key: str, body: bytes = b"x", props: dict | None = None,
            mandatory: bool = False, immediate: bool = False) -> bytes:
    return method(ch, C.Basic.Publish(exchange=exchange, routing_key=routing_key, mandatory=mandatory,
                                      immediate=immediate)) + content(ch, body, props)


def shortstr(s: str | bytes) -> bytes:
    b = s.encode() if isinstance(s, str) else s
    return bytes([len(b)]) + b


def raw_method(ch: int, class_id: int, method_id: int, args: bytes) -> bytes:
    """A method frame built by hand (names pamqp would refuse, unknown methods)."""
    payload = struct.pack(">HH", class_id, method_id) + args
    return struct.pack(">BHI", 1, ch, len(payload)) + payload + b"\xce"


class Closed(Exception):
    """The broker closed the TCP connection."""


class Session:
    """One raw AMQP connection; everything received is kept in ``transcript``."""

    timeout = 3.0

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=self.timeout)
        self.buf = b""
        self.transcript: list[bytes] = []
        self.closed_by_server = False
        self.eof = False
        self.channel_closed: set[int] = set()
        #: channels in confirm mode (see test_wire_sweep.pub)
        self.confirming: set[int] = set()

    # -------------------------------------------------------------- io
    def send(self, *frames: bytes) -> None:
        for f in frames:
            if f[:1] in b"\x01\x02\x03" and f[:1] and int.from_bytes(f[1:3], "big") in self.channel_closed:
                continue  # the broker closed that channel: a client sends nothing more on it
            self.sock.sendall(f)

    def _frame(self, timeout: float) -> bytes:
        deadline = time.monotonic() + timeout
        while True:
            if len(self.buf) >= 7:
                if self.buf[:4] == b"AMQP":  # protocol header sent back
                    raw, self.buf = self.buf[:8], self.buf[8:]
                    return raw
                size = struct.unpack_from(">I", self.buf, 3)[0]
                if len(self.buf) >= size + 8:
                    raw, self.buf = self.buf[:size + 8], self.buf[size + 8:]
                    return raw
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                raise
            except ConnectionResetError:
                data = b""
            if not data:
                raise Closed
            self.buf += data

    def frame(self, timeout: float | None = None, record: bool = True) -> bytes:
        """The next frame (heartbeats skipped); ``<timeout>``/``<eof>`` markers otherwise."""
        while True:
            try:
                raw = self._frame(self.timeout if timeout is None else timeout)
            except TimeoutError:
                raw = b"<timeout>"
            except Closed:
                self.eof = True
                raw = b"<eof>"
            if raw[:1] == b"\x08":
                continue
            if record:
                self.transcript.append(normalise(raw))
            if not raw.startswith(b"<") and raw[:4] != b"AMQP":
                ch, f = decode(raw)
                if isinstance(f, C.Connection.Close):
                    self.closed_by_server = True
                    self.send(method(0, C.Connection.CloseOk()))
                elif isinstance(f, C.Channel.Close):
                    self.channel_closed.add(ch)
                    self.send(method(ch, C.Channel.CloseOk()))
            return raw

    def read(self, n: int = 1) -> list[Any]:
        """Read n frames (of any kind); returns them decoded (None for markers)."""
        out = []
        for _ in range(n):
            raw = self.frame()
            out.append(None if raw.startswith(b"<") else decode(raw)[1])
            if raw.startswith(b"<"):
                break
        return out

    def call(self, ch: int, *frames: bytes) -> Any:
        """Send frames, then read until a non-asynchronous method arrives (the answer,
        or a Channel/Connection.Close); returns it decoded (None on timeout/eof, or if
        the broker had closed the channel: nothing is sent then)."""
        if ch in self.channel_closed or self.closed_by_server:
            return None
        self.send(*frames)
        return self.wait_answer()

    def wait_answer(self) -> Any:
        while True:
            raw = self.frame()
            if raw.startswith(b"<"):
                return None
            _ch, f = decode(raw)
            if isinstance(f, ASYNC) or isinstance(f, _CONTENT):
                continue
            return f

    def sync(self, ch: int) -> Any:
        """Prove the broker has handled everything sent on channel ch: a harmless
        synchronous method whose answer must come next (unless the channel was closed)."""
        if ch in self.channel_closed or self.closed_by_server:
            return None
        return self.call(ch, method(ch, C.Exchange.Declare(exchange="amq.direct", exchange_type="direct",
                                                             passive=True)))

    # -------------------------------------------------------------- handshake
    def handshake(self, user: str = "guest", password: str = "guest", vhost: str = "/",
                  heartbeat: int = 0, capabilities: dict | None = None) -> Any:
        """Protocol header to Connection.OpenOk; Start/Tune/OpenOk are recorded."""
        self.send(PROTOCOL_HEADER)
        self.frame()
        caps = capabilities if capabilities is not None else {
            "authentication_failure_close": True, "consumer_cancel_notify": True,
            "connection.blocked": True, "publisher_confirms": True, "basic.nack": True,
            "exchange_exchange_bindings": True, "per_consumer_qos": True}
        self.send(method(0, C.Connection.StartOk(
            client_properties={"product": "wire-sweep", "capabilities": caps},
            mechanism="PLAIN", response=f"\x00{user}\x00{password}", locale="en_US")))
        raw = self.frame()
        if raw.startswith(b"<"):
            return None
        _ch, tune = decode(raw)
        if not isinstance(tune, C.Connection.Tune):
            return tune
        self.send(method(0, C.Connection.TuneOk(channel_max=tune.channel_max, frame_max=tune.frame_max,
                                                heartbeat=heartbeat)))
        return self.call(0, method(0, C.Connection.Open(virtual_host=vhost)))

    def open_channel(self, ch: int) -> Any:
        """Channel.Open; its OpenOk is not recorded (channel_open_ok_bytes compares it)."""
        self.channel_closed.discard(ch)
        self.send(method(ch, C.Channel.Open()))
        raw = self.frame(record=False)
        return None if raw.startswith(b"<") else decode(raw)[1]

    def close_channel(self, ch: int) -> None:
        """End a case's channel: closed by us unless the broker already closed it."""
        if self.closed_by_server or self.eof or ch in self.channel_closed:
            return
        self.call(ch, method(ch, C.Channel.Close(reply_code=200, reply_text="bye", class_id=0, method_id=0)))

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def table(d: dict) -> bytes:
    return encode.field_table(d)
