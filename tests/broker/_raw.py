"""A minimal raw AMQP 0-9-1 client over asyncio streams, framed by pamqp.

For what aio-pika/aiormq cannot express: choosing the SASL mechanism (AMQPLAIN),
our own TuneOk values (channel_max, heartbeat), going silent, stopping mid-handshake.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pamqp.frame
from pamqp import commands as C
from pamqp import encode
from pamqp.exceptions import UnmarshalingException
from pamqp.heartbeat import Heartbeat

PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"


def plain_response(user: str, password: str) -> str:
    return f"\x00{user}\x00{password}"


def amqplain_response(user: str, password: str) -> str:
    # a field table without its 4-byte length prefix (ASCII only, so str round-trips)
    return encode.field_table({"LOGIN": user, "PASSWORD": password})[4:].decode("latin-1")


class RawConn:
    """One TCP connection speaking frames by hand."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.r = reader
        self.w = writer
        self.buf = b""
        self.start: C.Connection.Start | None = None
        self.tune: C.Connection.Tune | None = None

    @classmethod
    async def connect(cls, port: int) -> RawConn:
        r, w = await asyncio.open_connection("127.0.0.1", port)
        return cls(r, w)

    def send(self, frame: Any, channel: int = 0) -> None:
        self.w.write(pamqp.frame.marshal(frame, channel))

    def send_raw(self, data: bytes) -> None:
        self.w.write(data)

    def _parse(self) -> tuple[int, Any] | None:
        if len(self.buf) < 8:
            return None
        try:
            n, ch, f = pamqp.frame.unmarshal(self.buf)
        except UnmarshalingException:
            return None
        self.buf = self.buf[n:]
        return ch, f

    async def recv(self, timeout: float = 5.0, heartbeats: bool = False) -> tuple[int, Any]:
        """Next frame as (channel, frame); heartbeats are skipped unless asked for.
        Raises EOFError when the peer closes the socket."""
        deadline = time.monotonic() + timeout
        while True:
            got = self._parse()
            if got is not None:
                if isinstance(got[1], Heartbeat) and not heartbeats:
                    continue
                return got
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no frame")
            try:
                data = await asyncio.wait_for(self.r.read(65536), left)
            except ConnectionResetError:
                data = b""
            if not data:
                raise EOFError("peer closed the connection")
            self.buf += data

    async def expect(self, cls: type, timeout: float = 5.0) -> Any:
        ch, f = await self.recv(timeout)
        assert isinstance(f, cls), f"expected {cls.__name__}, got {f!r} on channel {ch}"
        return f

    async def wait_eof(self, timeout: float) -> list[Any]:
        """Read until the peer closes; return the frames seen meanwhile (heartbeats included)."""
        frames: list[Any] = []
        while True:
            try:
                _, f = await self.recv(timeout, heartbeats=True)
            except EOFError:
                return frames
            frames.append(f)

    async def handshake(
        self,
        mechanism: str = "PLAIN",
        user: str = "guest",
        password: str = "guest",
        vhost: str = "/",
        heartbeat: int = 0,
        channel_max: int | None = None,
        frame_max: int | None = None,
        capabilities: dict | None = None,
        open_: bool = True,
    ) -> Any:
        """Run the handshake; returns the frame answering StartOk (if it is not a Tune)
        or, with ``open_``, the frame answering Connection.Open."""
        self.send_raw(PROTOCOL_HEADER)
        self.start = await self.expect(C.Connection.Start)
        if mechanism == "AMQPLAIN":
            response = amqplain_response(user, password)
        else:
            response = plain_response(user, password)
        caps = {"authentication_failure_close": True, "consumer_cancel_notify": True}
        if capabilities is not None:
            caps = capabilities
        self.send(
            C.Connection.StartOk(
                client_properties={"product": "raw-test", "capabilities": caps},
                mechanism=mechanism,
                response=response,
                locale="en_US",
            )
        )
        _, f = await self.recv()
        if not isinstance(f, C.Connection.Tune):
            return f
        self.tune = f
        self.send(
            C.Connection.TuneOk(
                channel_max=f.channel_max if channel_max is None else channel_max,
                frame_max=f.frame_max if frame_max is None else frame_max,
                heartbeat=heartbeat,
            )
        )
        if not open_:
            return f
        self.send(C.Connection.Open(virtual_host=vhost))
        _, f = await self.recv()
        return f

    def close(self) -> None:
        self.w.close()


async def recv_frame_bytes(conn: RawConn, timeout: float = 5.0, heartbeats: bool = False) -> bytes:
    """The next whole frame as the bytes on the wire (heartbeats skipped unless asked for)."""
    deadline = time.monotonic() + timeout
    while True:
        buf = conn.buf
        if len(buf) >= 7:
            size = int.from_bytes(buf[3:7], "big")
            if len(buf) >= size + 8:
                conn.buf = buf[size + 8 :]
                if buf[0] == 8 and not heartbeats:
                    continue
                return buf[: size + 8]
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no frame")
        data = await asyncio.wait_for(conn.r.read(65536), left)
        if not data:
            raise EOFError("peer closed the connection")
        conn.buf += data
