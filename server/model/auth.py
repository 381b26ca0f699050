"""Users, password hashes (RabbitMQ's salted SHA-256 format) and permissions."""

from __future__ import annotations

import base64
import hashlib
import os
import re
from dataclasses import dataclass, field

from warren.protocol.table import decode_table
from warren.server.core.safe_regex import Matcher, RegexError, compile_user


def hash_password(password: str, salt: bytes | None = None) -> str:
    """rabbit_password_hashing_sha256: base64(salt(4) + sha256(salt + password))."""
    salt = os.urandom(4) if salt is None else salt
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


def check_password(password: str, password_hash: str) -> bool:
    try:
        raw = base64.b64decode(password_hash)
    except ValueError:
        return False
    salt = raw[:4]
    return hash_password(password, salt) == password_hash


def _compiled(pattern: str) -> Matcher | None:
    """A permission pattern, compiled once (bounded matching time, server/safe_regex.py);
    None (nothing allowed) if it is invalid or refused (the API refuses such patterns,
    but a hand-edited definitions file may hold one)."""
    try:
        return compile_user(pattern)
    except RegexError:
        return None


@dataclass
class Permission:
    """configure/write/read regular expressions for one user on one vhost."""

    configure: str = ".*"
    write: str = ".*"
    read: str = ".*"

    def _ok(self, pattern: str, name: str) -> bool:
        # As RabbitMQ (re:run): the pattern is searched in the name, not anchored, so
        # "^sec-a" allows "sec-abc"; the empty pattern stands for "^$"
        if pattern == ".*":
            return True
        rx = _compiled(pattern or "^$")
        return rx is not None and rx.search(name) is not None

    def can_configure(self, name: str) -> bool:
        return self._ok(self.configure, name)

    def can_write(self, name: str) -> bool:
        return self._ok(self.write, name)

    def can_read(self, name: str) -> bool:
        return self._ok(self.read, name)


@dataclass
class User:
    name: str
    password_hash: str
    tags: list[str] = field(default_factory=list)
    permissions: dict[str, Permission] = field(default_factory=dict)
    #: user limits: max-connections, max-channels (server/limits.py)
    limits: dict[str, int] = field(default_factory=dict)
    #: topic permissions: vhost -> exchange -> TopicPermission
    topic_permissions: dict[str, dict[str, TopicPermission]] = field(default_factory=dict)


@dataclass
class TopicPermission:
    """write/read regular expressions on routing keys for one topic exchange.

    As RabbitMQ: checked on publish (write) and on binding to the exchange
    (read), searched (not anchored) in the routing key, with ``{username}`` and
    ``{vhost}`` expanded first.
    """

    write: str = ".*"
    read: str = ".*"

    def as_json(self, user: str, vhost: str, exchange: str) -> dict[str, str]:
        """As RabbitMQ's definitions and HTTP API list it."""
        return {"user": user, "vhost": vhost, "exchange": exchange, "write": self.write, "read": self.read}

    def allows(self, kind: str, routing_key: str, username: str, vhost: str) -> bool:
        pattern = self.write if kind == "write" else self.read
        if pattern == ".*":
            return True
        pattern = pattern.replace("{username}", re.escape(username)).replace("{vhost}", re.escape(vhost))
        rx = _compiled(pattern)
        return rx is not None and rx.search(routing_key) is not None


def parse_plain(response: bytes) -> tuple[str, str]:
    """PLAIN: authzid NUL authcid NUL password."""
    parts = response.split(b"\x00")
    if len(parts) != 3:
        raise ValueError("malformed PLAIN response")
    return parts[1].decode(), parts[2].decode()


def parse_amqplain(response: bytes) -> tuple[str, str]:
    """AMQPLAIN: a field table without its length prefix, with LOGIN and PASSWORD."""
    try:
        table, _ = decode_table(len(response).to_bytes(4, "big") + response)  # linear, depth-bounded
    except Exception as exc:  # noqa: BLE001 - any failure on client bytes is a bad response
        raise ValueError(f"malformed AMQPLAIN response: {type(exc).__name__}") from None
    login = table.get("LOGIN")
    password = table.get("PASSWORD")
    if isinstance(login, bytes):
        login = login.decode()
    if isinstance(password, bytes):
        password = password.decode()
    if not isinstance(login, str) or not isinstance(password, str):
        raise ValueError("malformed AMQPLAIN response")
    return login, password
