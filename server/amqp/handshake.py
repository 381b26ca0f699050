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
from warren.server.core.errlog import clip
from warren.server.core.errors import ConnectionError_
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


def header_received(conn: Connection, data: bytes) -> bytes:
    """The protocol header (possibly split over reads): answer with Connection.Start;
    returns what followed the header."""
    buf = conn._hdr + data
    if len(buf) < 8:
        if PROTOCOL_HEADER.startswith(buf) or _AMQP_0_9_HEADER.startswith(buf):
            conn._hdr = buf
            return b""
    if buf[:8] != PROTOCOL_HEADER and buf[:8] != _AMQP_0_9_HEADER:
        log.info("bad protocol header conn=%s got=%r", conn.name, bytes(buf[:8]))
        conn.transport.write(PROTOCOL_HEADER)
        conn._abort()
        return b""
    conn._hdr = b""
    conn.state = S_START_OK
    conn._send_now(
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
                    "cluster_name": conn.broker.cluster_name,
                    "capabilities": SERVER_CAPABILITIES,
                },
                mechanisms="PLAIN AMQPLAIN EXTERNAL" if conn.peer_cert else "PLAIN AMQPLAIN",
                locales="en_US",
            ),
        )
    )
    return buf[8:]


def start_ok(conn: Connection, m: C.Connection.StartOk) -> None:
    conn.client_properties = dict(m.client_properties or {})
    caps = conn.client_properties.get("capabilities") or {}
    conn.capabilities = dict(caps) if isinstance(caps, dict) else {}
    mech = m.mechanism
    try:
        raw = m.response.encode("latin-1") if isinstance(m.response, str) else bytes(m.response)
        if mech == "PLAIN":
            username, password = parse_plain(raw)
        elif mech == "AMQPLAIN":
            username, password = parse_amqplain(raw)
        elif mech == "EXTERNAL" and conn.peer_cert:
            username, password = cert_login(conn.peer_cert, conn.config.tls_cert_login_from), None
        else:
            # RabbitMQ closes the socket without a Connection.Close before login
            log.warning("unknown authentication mechanism conn=%s mechanism=%r", conn.name, mech)
            conn._abort()
            return
    except (ValueError, UnicodeDecodeError):
        username, password = "", ""
    user = conn.broker.users.get(username)
    # EXTERNAL: the verified certificate is the credential; the user must exist
    if user is None or (password is not None and not check_password(password, user.password_hash)):
        log.warning("authentication failed conn=%s user=%r mechanism=%s", conn.name, clip(username), mech)
        refuse(conn,
            f"Login was refused using authentication mechanism {mech}. For details see the broker logfile."
        )
        return
    if username in conn.config.loopback_users and not _is_loopback(conn.peer[0]):
        log.warning("user %r can only connect via localhost conn=%s", username, conn.name)
        # RabbitMQ's text for a wrong password too: the refusal must not tell a remote
        # client that it guessed the password right
        refuse(conn,
            f"Login was refused using authentication mechanism {mech}. For details see the broker logfile."
        )
        return
    conn.user = user
    conn.state = S_TUNE_OK
    conn._send_now(
        method_frame(
            0,
            C.Connection.Tune(
                channel_max=conn.config.channel_max,
                frame_max=conn.config.frame_max,
                heartbeat=conn.config.heartbeat,
            ),
        )
    )


def update_secret(conn: Connection, m: C.Connection.UpdateSecret) -> None:
    """connection.update-secret (OAuth 2 token refresh in clients). As RabbitMQ 3.10 with
    its internal user database: those credentials do not expire, so there is no backend
    state to refresh and nothing to re-check (RabbitMQ re-validates only with backends
    whose state can expire, e.g. OAuth 2); the connection keeps its user and rights.
    Clients' own test suites (amqplib, pika) rely on this with an arbitrary secret."""
    log.info(
        "secret updated conn=%s user=%s reason=%r", conn.name, conn.user.name, m.reason or ""
    )
    conn._send_now(method_frame(0, C.Connection.UpdateSecretOk()))


def refuse(conn: Connection, text: str) -> None:
    """A refused login, closed with 403 ACCESS_REFUSED."""
    # RabbitMQ names no method in a login refusal (class_id = method_id = 0)
    conn.connection_error(ConnectionError_(ACCESS_REFUSED, text))


def tune_ok(conn: Connection, m: C.Connection.TuneOk) -> None:
    cmax = conn.config.channel_max
    conn.channel_max = m.channel_max if 0 < m.channel_max <= cmax else cmax
    fmax = m.frame_max or conn.config.frame_max
    if fmax < FRAME_MIN_SIZE or fmax > conn.config.frame_max:
        # RabbitMQ closes the socket without a Connection.Close before connection.open
        log.warning("refused frame_max=%d conn=%s (allowed %d..%d)", fmax, conn.name,
                    FRAME_MIN_SIZE, conn.config.frame_max)
        conn._abort()
        return
    conn.frame_max = fmax
    conn.max_body = fmax - 8
    conn.reader.set_frame_max(fmax)
    conn.heartbeat = m.heartbeat
    conn.state = S_OPEN


def open_vhost(conn: Connection, m: C.Connection.Open) -> None:
    vhost = conn.broker.vhosts.get(m.virtual_host)
    if vhost is None:
        raise ConnectionError_(NOT_ALLOWED, f"vhost {m.virtual_host} not found", 10, 40)
    perm = conn.user.permissions.get(m.virtual_host)
    if perm is None:
        raise ConnectionError_(
            NOT_ALLOWED, f"access to vhost '{m.virtual_host}' refused for user '{conn.user.name}'", 10, 40
        )
    if vhost.limits or conn.user.limits:
        check_connection(conn.broker, vhost, conn.user)
    conn.vhost = vhost
    conn.permission = perm
    # the user's live per-vhost table: topic permissions set later apply at once
    conn.topic_perms = conn.user.topic_permissions.setdefault(vhost.name, {})
    conn.perm_all = perm.configure == perm.write == perm.read == ".*"
    conn.state = S_OPENED
    if conn._handshake_handle is not None:
        conn._handshake_handle.cancel()
        conn._handshake_handle = None
    conn._send_now(method_frame(0, C.Connection.OpenOk()))
    if conn.heartbeat:
        conn._last_recv = conn.loop.time()
        conn._hb_handle = conn.loop.call_later(conn.heartbeat / 2, conn._heartbeat_tick)
    log.info(
        "connection opened conn=%s user=%s vhost=%s client=%s",
        conn.name,
        conn.user.name,
        vhost.name,
        clip(str(conn.client_properties.get("product", "?")), 100),
    )
    if conn.broker.alarm_active:
        conn.set_blocked(True, conn.broker.alarm_reason)


def _is_loopback(host: str) -> bool:
    return host.startswith("127.") or host in ("::1", "localhost") or host.startswith("::ffff:127.")


