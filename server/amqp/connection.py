"""One client connection: handshake, heartbeats, frame dispatch, batched writes."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from warren.protocol import commands as C
from warren.protocol import hotpath
from warren.protocol.constants import (
    ACCESS_REFUSED,
    CHANNEL_ERROR,
    CONNECTION_FORCED,
    FRAME_MIN_SIZE,
    INTERNAL_ERROR,
    K_ACK,
    K_BODY,
    K_HEADER,
    K_HEARTBEAT,
    K_METHOD,
    K_NACK,
    K_PUBLISH,
    K_REJECT,
    NOT_ALLOWED,
    UNEXPECTED_FRAME,
)
from warren.protocol.errors import AMQPError
from warren.protocol.methods import method_frame
from warren.protocol.reader import K_ERROR, K_MESSAGE, FrameReader
from warren.server.amqp.channel import Channel
from warren.server.amqp.handshake import (
    S_CLOSED,
    S_CLOSING,
    S_HEADER,
    S_OPEN,
    S_OPENED,
    S_START_OK,
    S_TUNE_OK,
    Handshake,
)
from warren.server.core.errlog import clip, describe
from warren.server.core.errors import ChannelError, ConnectionError_, close_text
from warren.server.core.flow import OUT_HIGH, READ_BUDGET
from warren.server.model.limits import check_channel

if TYPE_CHECKING:
    from warren.server.amqp.confirms import ConfirmTracker
    from warren.server.model.message import Message
    from warren.server.model.node import Node
    from warren.server.model.queue import Queue

log = logging.getLogger("warren.connection")

_STATE_NAMES = {S_START_OK: "starting", S_TUNE_OK: "tuning", S_OPEN: "opening", S_OPENED: "running"}
#: class/method ids of the frames the reader's fast path yields (K_MESSAGE: a whole publish)
_FAST_IDS = {K_PUBLISH: (60, 40), K_MESSAGE: (60, 40), K_ACK: (60, 80), K_NACK: (60, 120), K_REJECT: (60, 90)}
#: ids for a channel error raised while handling a fast-path frame: a content frame
#: completing a publish fails that Basic.Publish (as RabbitMQ reports it)
_ERROR_IDS = {**_FAST_IDS, K_HEADER: (60, 40), K_BODY: (60, 40)}


class Connection(Handshake, asyncio.Protocol):
    """asyncio protocol for one AMQP connection."""

    def __init__(self, broker: Node) -> None:
        self.broker = broker
        self.config = broker.config
        self.loop = asyncio.get_event_loop()
        self.transport: asyncio.Transport | None = None
        self.state = S_HEADER
        self._hdr = b""
        #: a cluster follower forwarded this client and named its address (handshake.py)
        self.forwarded = False
        # before Tune-Ok, frames are limited to the protocol's minimum frame_max, as
        # RabbitMQ does: an unauthenticated client can make the broker buffer and decode
        # no more than 4 KB at a time
        self.reader = FrameReader(FRAME_MIN_SIZE)
        self.channels: dict[int, Channel] = {}
        self.channel_max = self.config.channel_max
        self.frame_max = self.config.frame_max
        self.max_body = self.frame_max - 8
        self.heartbeat = 0
        self.vhost: Any = None
        self.user: Any = None
        self.topic_perms: dict = {}
        self.permission: Any = None
        self.perm_all = False
        self.capabilities: dict[str, Any] = {}
        self.client_properties: dict[str, Any] = {}
        self.exclusive_queues: list[Queue] = []
        self.name = ""
        self.peer: tuple = ("", 0)
        self.connected_at = time.time()
        # output
        self._out: list[bytes] = []
        self.out_bytes = 0
        self._flush_pending = False
        self.write_paused = False
        self.dispatch_blocked = False
        # input flow control
        self._pause_reasons: set = set()
        self._throttled_by: set[Queue] = set()
        # heartbeats
        self._recv_activity = True
        #: loop time of the last write to the socket and of the tick that last saw input
        self._last_write = 0.0
        self._last_recv = 0.0
        self._hb_handle: asyncio.TimerHandle | None = None
        self._handshake_handle: asyncio.TimerHandle | None = None
        self._close_handle: asyncio.TimerHandle | None = None
        #: confirm trackers of the channels whose publishes in this read await confirms
        #: (added by Channel._route)
        self._batch: set[ConfirmTracker] = set()
        self.recv_bytes = 0
        self.sent_bytes = 0
        self.blocked = False
        self._told_blocked = False

    # ------------------------------------------------------------------ asyncio
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername") or ("?", 0)
        sock = transport.get_extra_info("sockname") or ("?", 0)
        self.peer = peer
        # a verified client certificate (TLS listener with verify_peer): allows EXTERNAL
        self.peer_cert = transport.get_extra_info("peercert") or None
        self.name = f"{peer[0]}:{peer[1]} -> {sock[0]}:{sock[1]}"
        if self.forwarded_peer is not None:
            self._forwarded_before_tls()
        transport.set_write_buffer_limits(high=4 * OUT_HIGH)  # type: ignore[attr-defined]
        self.broker.connections.add(self)
        self._handshake_handle = self.loop.call_later(
            self.config.handshake_timeout, self._handshake_timeout
        )
        log.debug("connection accepted conn=%s", self.name)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.state != S_CLOSED:
            if self.state == S_OPENED:
                log.info("connection closed abruptly conn=%s user=%s", self.name, getattr(self.user, "name", "-"))
            self._cleanup()

    def pause_writing(self) -> None:
        # the client is not reading what we send (returns, deliveries, confirms): stop
        # reading what it sends too, so that it cannot make us buffer without bound
        self.write_paused = True
        self._pause("output")

    def resume_writing(self) -> None:
        self.write_paused = False
        self._resume("output")
        self._wake_consumers()

    def data_received(self, data: bytes) -> None:
        self._recv_activity = True
        self.recv_bytes += len(data)
        mem = self.broker.memory
        mem.unsampled += len(data)
        if mem.unsampled >= mem.step:  # what was read may now be held: sample before it grows further
            mem.check()
        if self.state == S_HEADER:
            data = self._header_received(data)
            if not data:
                return
        if self.state >= S_CLOSING:
            if self.state == S_CLOSING:
                if self.reader.broken and _CLOSE_OK_FRAME in data:
                    # the reader gave up on this stream (framing error), but a client
                    # answering our Close with Close-Ok need not wait for close_timeout
                    data = _CLOSE_OK_FRAME
                    self.reader = FrameReader(self.frame_max)
                self._closing_frames(self.reader.feed(data))
            return
        frames = self.reader.feed(data)
        channels = self.channels
        for f in frames:
            kind = f[0]
            try:
                ch = channels.get(f[1])
                if ch is None or ch.closing:
                    self._frame_without_channel(f, ch)
                    if self.state >= S_CLOSING:
                        return
                    continue
                if kind == K_MESSAGE:
                    ch.on_message(f[2], f[3], f[4], f[5], f[6], f[7], f[8])
                    if self.blocked:
                        self._block_publisher()
                elif kind == K_BODY:
                    ch.content.on_body(f[2])
                    if self.blocked:  # as RabbitMQ, a content frame blocks (and tells) the publisher
                        self._block_publisher()
                elif kind == K_PUBLISH:
                    ch.content.on_publish(f[2], f[3], f[4], f[5], f[6])
                    if self.blocked:
                        self._block_publisher()
                elif kind == K_HEADER:
                    ch.content.on_header(f[2], f[3], f[4])
                    if self.blocked:
                        self._block_publisher()
                elif kind == K_ACK:
                    self._no_content(ch)
                    ch.on_ack(f[2], f[3])
                elif kind == K_METHOD:
                    self._no_content(ch)
                    ch.handle(f[2])
                elif kind == K_NACK:
                    self._no_content(ch)
                    ch.on_nack(f[2], f[3], f[4])
                elif kind == K_REJECT:
                    self._no_content(ch)
                    ch.on_nack(f[2], 0, f[3])
                elif kind == K_HEARTBEAT:
                    pass
                else:  # K_ERROR
                    raise f[2]
            except ChannelError as exc:
                if not exc.class_id and kind in _ERROR_IDS:  # e.g. unknown delivery tag on Basic.Ack
                    exc.class_id, exc.method_id = _ERROR_IDS[kind]
                self._channel_error(ch, exc)
            except AMQPError as exc:
                self.connection_error(exc)
                return
            except Exception as exc:  # a broker bug must not take the connection down silently
                # one line, not a traceback: a client able to trigger it could flood the log
                log.error("internal error conn=%s frame_kind=%s: %s", self.name, kind, describe(exc))
                self.connection_error(ConnectionError_(INTERNAL_ERROR, f"internal error: {type(exc).__name__}"))
                return
        if self._batch:
            for confirms in self._batch:
                confirms.end_batch()
            self._batch.clear()
        if len(data) >= READ_BUDGET and "budget" not in self._pause_reasons:
            self._pause("budget")
            self.loop.call_soon(self._resume, "budget")

    def eof_received(self) -> bool | None:
        return None

    # ------------------------------------------------------------------ frames outside open channels
    def _no_content(self, ch: Channel) -> None:
        content = ch.content
        if content.method is not None:
            if content.header is not None:
                raise ConnectionError_(
                    UNEXPECTED_FRAME, "expected content body, got non content body frame instead", 60, 40
                )
            raise ConnectionError_(
                UNEXPECTED_FRAME,
                "expected content header for class 60, got non content header frame instead",
                60,
                40,
            )

    def _frame_without_channel(self, f: tuple, ch: Channel | None) -> None:
        kind, num = f[0], f[1]
        if kind == K_ERROR:
            raise f[2]
        if kind == K_HEARTBEAT:
            return
        if num == 0:
            if kind == K_METHOD:
                self._connection_method(f[2])
                return
            if kind in _FAST_IDS:  # Basic.Publish/Ack/Nack/Reject on channel 0
                raise ConnectionError_(
                    CHANNEL_ERROR, f"unexpected method in connection state {self._state_name()}", *_FAST_IDS[kind]
                )
            raise ConnectionError_(UNEXPECTED_FRAME, f"expected method frame on channel 0, got frame type {kind}")
        if self.state != S_OPENED:  # RabbitMQ: 505 for any channel frame before connection.open
            raise ConnectionError_(UNEXPECTED_FRAME, f"frame on channel {num} before connection.open")
        m = f[2] if kind == K_METHOD else None
        if ch is not None:  # closing: discard all but close / close-ok
            if isinstance(m, C.Channel.CloseOk):
                del self.channels[num]
            elif isinstance(m, C.Channel.Close):
                self.send_method(num, C.Channel.CloseOk())
                del self.channels[num]
            return
        if isinstance(m, C.Channel.Open):
            # RabbitMQ limits the number of open channels, not the channel number
            if self.channel_max and len(self.channels) >= self.channel_max:
                raise ConnectionError_(
                    NOT_ALLOWED,
                    f"number of channels opened ({len(self.channels)}) has reached "
                    f"the negotiated channel_max ({self.channel_max})",
                )
            if self.user.limits:
                check_channel(self.broker, self.user)
            self.channels[num] = Channel(self, num)
            self.send_method(num, C.Channel.OpenOk())
            return
        if kind in (K_HEADER, K_BODY):  # as RabbitMQ: content with no method before it
            raise ConnectionError_(UNEXPECTED_FRAME, "expected method frame, got non method frame instead")
        ids = (m.index >> 16, m.index & 0xFFFF) if m is not None else _FAST_IDS.get(kind, (0, 0))
        raise ConnectionError_(CHANNEL_ERROR, "expected 'channel.open'", *ids)

    @property
    def opened(self) -> bool:
        """Past Connection.Open: counts toward connection limits until it is gone."""
        return self.vhost is not None

    def _state_name(self) -> str:
        return _STATE_NAMES.get(self.state, "closing")

    def channel_error_async(self, ch: Channel, exc: AMQPError) -> None:
        """A channel error raised outside frame processing (timers)."""
        if self.state == S_OPENED and not ch.closing:
            self._channel_error(ch, exc)

    def _channel_error(self, ch: Channel, exc: AMQPError) -> None:
        log.info(
            "channel error conn=%s channel=%d code=%d text=%r", self.name, ch.number, exc.code, clip(exc.text)
        )
        ch.close()
        self.send_method(
            ch.number,
            C.Channel.Close(reply_code=exc.code, reply_text=close_text(exc), class_id=exc.class_id, method_id=exc.method_id),
        )

    # ------------------------------------------------------------------ handshake
    def _handshake_timeout(self) -> None:
        if self.state < S_OPENED:
            log.info("handshake timeout conn=%s state=%d", self.name, self.state)
            self._abort()

    def _connection_method(self, m: Any) -> None:
        st = self.state
        if isinstance(m, C.Connection.Close):
            self._send_now(method_frame(0, C.Connection.CloseOk()))
            log.info("connection closed by client conn=%s user=%s", self.name, getattr(self.user, "name", "-"))
            self._cleanup()
            self.transport.close()
            return
        if st == S_START_OK and isinstance(m, C.Connection.StartOk):
            self._start_ok(m)
        elif st == S_TUNE_OK and isinstance(m, C.Connection.TuneOk):
            self._tune_ok(m)
        elif st == S_OPEN and isinstance(m, C.Connection.Open):
            self._open_vhost(m)
        elif st == S_OPENED and isinstance(m, C.Connection.CloseOk):
            self._cleanup()
            self.transport.close()
        elif st == S_OPENED and isinstance(m, C.Connection.UpdateSecret):
            self._update_secret(m)
        elif isinstance(m, (C.Connection.Blocked, C.Connection.Unblocked)):
            return
        else:
            # RabbitMQ: 504 CHANNEL_ERROR "unexpected method in connection state running"
            raise ConnectionError_(
                CHANNEL_ERROR,
                f"unexpected method in connection state {self._state_name()}",
                m.index >> 16,
                m.index & 0xFFFF,
            )

    # ------------------------------------------------------------------ heartbeats
    def _heartbeat_tick(self) -> None:
        """Send a heartbeat once nothing was written for half an interval, measured from
        the last write (a flag cleared each tick would let a write just after a tick
        stretch the gap to a whole interval); drop a peer silent for two intervals
        of reading (time its socket is not read does not count)."""
        if self.state >= S_CLOSING:
            return
        now = self.loop.time()
        half = self.heartbeat / 2
        if self._recv_activity or self._pause_reasons:
            # while warren itself does not read the socket (alarm, flow) the client's
            # heartbeats wait unread in it: as RabbitMQ pauses its receive monitor while
            # the reader is blocked, the silence counts only from when reading resumes
            self._recv_activity = False
            self._last_recv = now
        elif now - self._last_recv >= 2 * self.heartbeat:
            log.warning("missed heartbeats from client, timeout: %ds conn=%s", self.heartbeat, self.name)
            self._cleanup()
            self.transport.abort()
            return
        due = self._last_write + half
        if now >= due - 0.005:  # timers may fire a hair early
            self._send_now(hotpath.heartbeat_frame())
            due = now + half
        # next tick when the next heartbeat may be due (at most half an interval away)
        self._hb_handle = self.loop.call_at(max(due, now + 0.01), self._heartbeat_tick)

    # ------------------------------------------------------------------ output
    def _send_now(self, data: bytes) -> None:
        if self._out:
            self._out.append(data)
            self._flush()
        elif self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)
            self.sent_bytes += len(data)
            self._last_write = self.loop.time()

    def send_method(self, channel: int, method: Any) -> None:
        self.write(method_frame(channel, method))

    def send_return(self, channel: int, msg: Message, code: int, text: str) -> None:
        self.write(
            method_frame(
                channel,
                C.Basic.Return(reply_code=code, reply_text=text, exchange=msg.exchange, routing_key=msg.routing_key),
            )
        )
        self._out.extend(hotpath.content_frames(channel, msg.header, msg.body, self.max_body))

    def write(self, data: bytes) -> None:
        self._out.append(data)
        self._flush_at_end_of_turn()

    def write_many(self, parts: tuple | list, nbytes: int) -> None:
        """Queue pieces of output (joined with everything else at the end of the turn)."""
        self._out += parts
        self.out_bytes += nbytes
        if not self._flush_pending:  # inlined: runs for every delivery
            self._flush_pending = True
            self.loop.call_soon(self._flush)

    def flush_soon(self) -> None:
        if self._out:
            self._flush_at_end_of_turn()

    def _flush_at_end_of_turn(self) -> None:
        if not self._flush_pending:
            self._flush_pending = True
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_pending = False
        out = self._out
        if not out:
            return
        data = b"".join(out)
        out.clear()
        self.out_bytes = 0
        t = self.transport
        if t is None or t.is_closing():
            return
        t.write(data)
        self.sent_bytes += len(data)
        self._last_write = self.loop.time()
        if self.dispatch_blocked and not self.write_paused:
            self._wake_consumers()

    def can_write(self) -> bool:
        if self.write_paused or self.out_bytes >= OUT_HIGH:
            self.dispatch_blocked = True
            return False
        return True

    def _wake_consumers(self) -> None:
        self.dispatch_blocked = False
        for ch in self.channels.values():
            for c in ch.consumers.values():
                c.queue.schedule_dispatch()

    def probe(self) -> None:
        """A heartbeat frame: to a peer that is gone the write fails and the connection ends."""
        if self.state == S_OPENED:
            self._send_now(hotpath.heartbeat_frame())

    # ------------------------------------------------------------------ input flow control
    def _pause(self, reason: str) -> None:
        if not self._pause_reasons and self.transport is not None:
            self.transport.pause_reading()
        self._pause_reasons.add(reason)

    def _resume(self, reason: str) -> None:
        self._pause_reasons.discard(reason)
        if not self._pause_reasons and self.transport is not None and self.state < S_CLOSED:
            self.transport.resume_reading()

    def throttle(self, q: Queue) -> None:
        """Stop reading from this publisher until ``q`` drains (credit-flow analogue)."""
        if q in self._throttled_by:
            return
        for c in q.consumers:
            if c.channel.conn is self:
                return  # pausing would also stop this connection's acks: deadlock
        self._throttled_by.add(q)
        q.throttled.add(self)
        self._pause("flow")

    def unthrottle(self, q: Queue) -> None:
        self._throttled_by.discard(q)
        if not self._throttled_by:
            self._resume("flow")

    def set_blocked(self, blocked: bool, reason: str = "") -> None:
        """A resource alarm set or cleared. As RabbitMQ, a connection is blocked (and told
        so with connection.blocked) at its first publish during the alarm."""
        if blocked == self.blocked or self.state != S_OPENED:
            return
        self.blocked = blocked
        if not blocked:
            if self._told_blocked:
                self._told_blocked = False
                self.send_method(0, C.Connection.Unblocked())
            self._resume("alarm")

    def _block_publisher(self) -> None:
        """A publish during a resource alarm: stop reading this connection, tell the client."""
        if "alarm" in self._pause_reasons:
            return
        self._pause("alarm")
        if self.capabilities.get("connection.blocked") and not self._told_blocked:
            self._told_blocked = True
            self.send_method(0, C.Connection.Blocked(reason=self.broker.alarm_reason))

    # ------------------------------------------------------------------ closing
    def connection_error(self, exc: AMQPError) -> None:
        log.warning(
            "connection error conn=%s code=%d text=%r", self.name, exc.code, clip(exc.text)
        )
        if self.state in (S_HEADER,):
            self._abort()
            return
        if self.state in (S_START_OK, S_TUNE_OK) and exc.code not in (ACCESS_REFUSED, NOT_ALLOWED):
            self._silent_close()
            return
        self._send_now(
            method_frame(
                0,
                C.Connection.Close(
                    reply_code=exc.code, reply_text=close_text(exc), class_id=exc.class_id, method_id=exc.method_id
                ),
            )
        )
        self._cleanup(closing=True)
        self._close_handle = self.loop.call_later(self.config.close_timeout, self._abort)

    def _silent_close(self) -> None:
        """As RabbitMQ for a client that errs before tuning is done (a bad frame, an
        oversized one, an unexpected method): no answer; stop reading, and close the
        socket after SILENT_CLOSE_DELAY, so a misbehaving client cannot retry fast."""
        self._cleanup(closing=True)
        if self.transport is not None:
            self.transport.pause_reading()
        self._close_handle = self.loop.call_later(SILENT_CLOSE_DELAY, self._silent_abort)

    def _silent_abort(self) -> None:
        self.state = S_CLOSED
        if self.transport is not None:
            self.transport.abort()

    def close_by_broker(self, code: int = CONNECTION_FORCED, text: str = "broker forced connection closure with reason 'shutdown'") -> None:
        if self.state >= S_CLOSING:
            return
        if self.state != S_OPENED:
            self._abort()
            return
        self.connection_error(ConnectionError_(code, text))

    def _closing_frames(self, frames: list) -> None:
        for f in frames:
            if f[0] == K_METHOD and f[1] == 0 and isinstance(f[2], (C.Connection.CloseOk, C.Connection.Close)):
                if isinstance(f[2], C.Connection.Close):
                    self._send_now(method_frame(0, C.Connection.CloseOk()))
                self.state = S_CLOSED
                if self._close_handle is not None:
                    self._close_handle.cancel()
                self.transport.close()
                return

    def _abort(self) -> None:
        self._cleanup()
        if self.transport is not None:
            self.transport.close()

    def _cleanup(self, closing: bool = False) -> None:
        if self.state >= S_CLOSING:
            if not closing:
                self.state = S_CLOSED
            return
        self.state = S_CLOSING if closing else S_CLOSED
        for h in (self._hb_handle, self._handshake_handle):
            if h is not None:
                h.cancel()
        for ch in list(self.channels.values()):
            if not ch.closing:
                ch.close()
        self.channels.clear()
        for q in list(self.exclusive_queues):
            q.vhost.delete_queue(q, reason="exclusive owner closed")
        self.exclusive_queues.clear()
        for q in self._throttled_by:
            q.throttled.discard(self)
        self._throttled_by.clear()
        self.broker.connections.discard(self)
        if self.transport is not None and self._pause_reasons:
            self._pause_reasons.clear()


#: seconds RabbitMQ waits before closing a connection that failed before tuning
SILENT_CLOSE_DELAY = 3.0
#: Connection.Close-Ok on channel 0, recognised even after a framing error
_CLOSE_OK_FRAME = b"\x01\x00\x00\x00\x00\x00\x04\x00\x0a\x00\x33\xce"
