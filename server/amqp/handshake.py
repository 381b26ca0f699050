"""The AMQP connection handshake: protocol header, start/start-ok (authentication),
tune/tune-ok, open (vhost and permissions), and update-secret.

Functions of the connection, called from ``Connection`` while it is not yet open
(and for update-secret after): none of them is on a per-message path.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from warren.protocol import commands as C
from warren.protocol.constants import ACCESS_REFUSED, FRAME_MIN_SIZE, NOT_ALLOWED, PROTOCOL_HEADER
from warren.protocol.methods import method_frame
from warren.server.amqp.tls import cert_login
from warren.server.core.addresses import loopback_refused
from warren.server.core.errlog import clip
from warren.server.core.errors import ConnectionError_
from warren.server.core.forwarded import ForwardedError, starts_line, take_line
from warren.server.model.auth import check_password, parse_amqplain, parse_plain
from warren.server.model.limits import check_connection

if TYPE_CHECKING:
    from warren.server.amqp.connection import Connection

log = logging.getLogger("warren.connection")

#: connection states: the handshake's steps, then running and closing
S_HEADER, S_START_OK, S_TUNE_OK, S_OPEN, S_OPENED, S_CLOSING, S_CLOSED = range(7)


SERVER_CAPABILITIES = {
    "publisher_confirms": True,
    "exchange_exchange_bindings": True,
    "basic.nack": True,
    "consumer_cancel_notify": True,
    "connection.blocked": True,
    "consumer_priorities": True,
    "authentication_failure_close": True,
    "per_consumer_qos": True,
    "direct_reply_to": True,
}

#: AMQP 0-9's header, which RabbitMQ (and so warren) serves as 0-9-1
_AMQP_0_9_HEADER = b"AMQP\x01\x01\x00\x09"


class Handshake:
    """The connection handshake (protocol header, start-ok and login, tune-ok, open, update-secret): methods of :class:`Connection`, kept here."""

    #: a TLS client a follower forwarded: the address its line named (amqp/tls_listener.py)
    forwarded_peer: tuple[str, int] | None = None

    def _forwarded_before_tls(self: Connection) -> None:
        # the line came ahead of TLS, so there is none to take from the AMQP bytes
        assert self.forwarded_peer is not None
        self._forwarded_from(self.forwarded_peer)

    def _forwarded_from(self: Connection, peer: tuple[str, int]) -> None:
        """The client a follower's line named: the peer, and the name says which follower."""
        via = self.name.split(" ")[0]
        self.forwarded = True  # one line per connection: a second would be the client's
        self.peer = peer
        self.name = f"{peer[0]}:{peer[1]} -> {self.name.split(' -> ')[-1]} via {via}"

    def _header_received(self: Connection, data: bytes) -> bytes:
        """The protocol header (possibly split over reads): answer with Connection.Start;
        returns what followed the header."""
        buf = self._hdr + data
        secret = self.broker.forward_secret
        if secret is not None and not self.forwarded and starts_line(buf):
            # a cluster follower forwarding a client: who the client really is comes first
            try:
                taken = take_line(secret, buf)
            except ForwardedError as exc:
                log.warning("bad forwarding line conn=%s: %s", self.name, exc)
                self._abort()
                return b""
            if taken is None:
                self._hdr = buf
                return b""
            peer, buf = taken
            self._forwarded_from(peer)
            self._hdr = b""
            if not buf:
                return b""
        if len(buf) < 8:
            if PROTOCOL_HEADER.startswith(buf) or _AMQP_0_9_HEADER.startswith(buf):
                self._hdr = buf
                return b""
        if buf[:8] != PROTOCOL_HEADER and buf[:8] != _AMQP_0_9_HEADER:
            log.info("bad protocol header conn=%s got=%r", self.name, bytes(buf[:8]))
            self.transport.write(PROTOCOL_HEADER)
            self._abort()
            return b""
        self._hdr = b""
        self.state = S_START_OK
        self._send_now(
            method_frame(
                0,
                C.Connection.Start(
                    version_major=0,
                    version_minor=9,
                    server_properties={
                        "product": "warren",
                        "version": "0.1.0",
                        "platform": "Python",
                        "copyright": "warren authors",
                        "information": "https://github.com/warren-broker",
                        "cluster_name": self.broker.cluster_name,
                        "capabilities": SERVER_CAPABILITIES,
                    },
                    mechanisms="PLAIN AMQPLAIN EXTERNAL" if self.peer_cert else "PLAIN AMQPLAIN",
                    locales="en_US",
                ),
            )
        )
        return buf[8:]


    def _start_ok(self: Connection, m: C.Connection.StartOk) -> None:
        self.client_properties = dict(m.client_properties or {})
        caps = self.client_properties.get("capabilities") or {}
        self.capabilities = dict(caps) if isinstance(caps, dict) else {}
        mech = m.mechanism
        try:
            raw = m.response.encode("latin-1") if isinstance(m.response, str) else bytes(m.response)
            if mech == "PLAIN":
                username, password = parse_plain(raw)
            elif mech == "AMQPLAIN":
                username, password = parse_amqplain(raw)
            elif mech == "EXTERNAL" and self.peer_cert:
                username, password = cert_login(self.peer_cert, self.config.tls_cert_login_from), None
            else:
                # RabbitMQ closes the socket without a Connection.Close before login
                log.warning("unknown authentication mechanism conn=%s mechanism=%r", self.name, mech)
                self._abort()
                return
        except (ValueError, UnicodeDecodeError):
            username, password = "", ""
        user = self.broker.users.get(username)
        # EXTERNAL: the verified certificate is the credential; the user must exist
        if user is None or (password is not None and not check_password(password, user.password_hash)):
            log.warning("authentication failed conn=%s user=%r mechanism=%s", self.name, clip(username), mech)
            self._refuse(
                f"Login was refused using authentication mechanism {mech}. For details see the broker logfile."
            )
            return
        if loopback_refused(username, self.peer[0], self.config.loopback_users):
            log.warning("user %r can only connect via localhost conn=%s", username, self.name)
            # RabbitMQ's text for a wrong password too: the refusal must not tell a remote
            # client that it guessed the password right
            self._refuse(
                f"Login was refused using authentication mechanism {mech}. For details see the broker logfile."
            )
            return
        self.user = user
        self.state = S_TUNE_OK
        self._send_now(
            method_frame(
                0,
                C.Connection.Tune(
                    channel_max=self.config.channel_max,
                    frame_max=self.config.frame_max,
                    heartbeat=self.config.heartbeat,
                ),
            )
        )


    def _update_secret(self: Connection, m: C.Connection.UpdateSecret) -> None:
        """connection.update-secret (OAuth 2 token refresh in clients). As RabbitMQ 3.10 with
        its internal user database: those credentials do not expire, so there is no backend
        state to refresh and nothing to re-check (RabbitMQ re-validates only with backends
        whose state can expire, e.g. OAuth 2); the connection keeps its user and rights.
        Clients' own test suites (amqplib, pika) rely on this with an arbitrary secret."""
        log.info(
            "secret updated conn=%s user=%s reason=%r", self.name, self.user.name, m.reason or ""
        )
        self._send_now(method_frame(0, C.Connection.UpdateSecretOk()))


    def _refuse(self: Connection, text: str) -> None:
        """A refused login, closed with 403 ACCESS_REFUSED."""
        # RabbitMQ names no method in a login refusal (class_id = method_id = 0)
        self.connection_error(ConnectionError_(ACCESS_REFUSED, text))


    def _tune_ok(self: Connection, m: C.Connection.TuneOk) -> None:
        cmax = self.config.channel_max
        self.channel_max = m.channel_max if 0 < m.channel_max <= cmax else cmax
        fmax = m.frame_max or self.config.frame_max
        if fmax < FRAME_MIN_SIZE or fmax > self.config.frame_max:
            # RabbitMQ closes the socket without a Connection.Close before connection.open
            log.warning("refused frame_max=%d conn=%s (allowed %d..%d)", fmax, self.name,
                        FRAME_MIN_SIZE, self.config.frame_max)
            self._abort()
            return
        self.frame_max = fmax
        self.max_body = fmax - 8
        self.reader.set_frame_max(fmax)
        self.heartbeat = m.heartbeat
        self.state = S_OPEN


    def _open_vhost(self: Connection, m: C.Connection.Open) -> None:
        vhost = self.broker.vhosts.get(m.virtual_host)
        if vhost is None:
            raise ConnectionError_(NOT_ALLOWED, f"vhost {m.virtual_host} not found", 10, 40)
        perm = self.user.permissions.get(m.virtual_host)
        if perm is None:
            raise ConnectionError_(
                NOT_ALLOWED, f"access to vhost '{m.virtual_host}' refused for user '{self.user.name}'", 10, 40
            )
        if vhost.limits or self.user.limits:
            check_connection(self.broker, vhost, self.user)
        self.vhost = vhost
        self.permission = perm
        # the user's live per-vhost table: topic permissions set later apply at once
        self.topic_perms = self.user.topic_permissions.setdefault(vhost.name, {})
        self.perm_all = perm.configure == perm.write == perm.read == ".*"
        self.state = S_OPENED
        if self._handshake_handle is not None:
            self._handshake_handle.cancel()
            self._handshake_handle = None
        self._send_now(method_frame(0, C.Connection.OpenOk()))
        if self.heartbeat:
            self._last_recv = self.loop.time()
            self._hb_handle = self.loop.call_later(self.heartbeat / 2, self._heartbeat_tick)
        log.info(
            "connection opened conn=%s user=%s vhost=%s client=%s",
            self.name,
            self.user.name,
            vhost.name,
            clip(str(self.client_properties.get("product", "?")), 100),
        )
        if self.broker.alarm_active:
            self.set_blocked(True, self.broker.alarm_reason)


