"""Basic.Publish on a channel: content assembly across frames and the publish checks.

A publish whose frames the reader delivers whole (K_MESSAGE) skips the assembler:
``Channel.on_message`` goes straight to ``Channel.publish_message``. The checks here
run only for what needs them (properties present, CC/BCC headers, an expiration, a
direct reply-to), so a plain publish makes no extra call.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from warren.protocol.constants import FRAME_ERROR, SYNTAX_ERROR, UNEXPECTED_FRAME
from warren.protocol.table import type_name
from warren.server.core.errors import ConnectionError_, precondition

if TYPE_CHECKING:
    from warren.server.amqp.channel import Channel
    from warren.server.model.message import Message

REPLY_TO = "amq.rabbitmq.reply-to"
REPLY_TO_PREFIX = "amq.rabbitmq.reply-to."


def unexpected_content_header() -> ConnectionError_:
    return ConnectionError_(
        UNEXPECTED_FRAME, "expected content header for class 60, got non content header frame instead", 60, 40
    )


class Content:
    """Assembles a Basic.Publish sent as method, header and body frames."""

    __slots__ = ("ch", "method", "header", "size", "parts", "received")

    def __init__(self, ch: Channel) -> None:
        self.ch = ch
        #: the pending Basic.Publish: (exchange, routing_key, mandatory, immediate, exrk)
        self.method: tuple | None = None
        #: its content header's payload, once that arrived
        self.header: bytes | None = None
        self.size = 0
        self.parts: list[bytes] = []
        self.received = 0

    def reset(self) -> None:
        self.method = None
        self.header = None
        self.parts = []

    def on_publish(self, exchange: str, routing_key: str, mandatory: int, immediate: int, exrk: bytes) -> None:
        if self.method is not None:
            raise unexpected_content_header()
        self.method = (exchange, routing_key, mandatory, immediate, exrk)

    def on_header(self, class_id: int, body_size: int, payload: bytes) -> None:
        if self.method is None or self.header is not None:
            raise ConnectionError_(UNEXPECTED_FRAME, "expected method frame, got non method frame instead")
        if class_id != 60:
            raise ConnectionError_(
                UNEXPECTED_FRAME,
                f"expected content header for class 60, got one for class {class_id} instead",
                60,
                40,
            )
        limit = self.ch.max_message_size
        if body_size > limit:
            self.method = None
            raise precondition(f"message size {body_size} is larger than configured max size {limit}")
        if body_size == 0:
            self._complete(payload, b"")
            return
        self.header = payload
        self.size = body_size
        self.received = 0

    def on_body(self, payload: bytes) -> None:
        if self.header is None:
            raise ConnectionError_(UNEXPECTED_FRAME, "expected method frame, got non method frame instead")
        n = self.received + len(payload)
        if n >= self.size:
            if n > self.size:
                raise ConnectionError_(
                    FRAME_ERROR, f"content body is {n} bytes, more than the {self.size} declared"
                )
            if self.parts:
                self.parts.append(payload)
                body = b"".join(self.parts)
                self.parts = []
            else:
                body = payload
            header = self.header
            self.header = None
            self._complete(header, body)
        else:
            self.received = n
            self.parts.append(payload)

    def _complete(self, header: bytes, body: bytes) -> None:
        exchange, routing_key, mandatory, immediate, exrk = self.method
        self.method = None
        self.ch.publish_message(exchange, routing_key, mandatory, immediate, exrk, header, body)


def sender_selected(msg: Message) -> list[str] | None:
    """CC and BCC headers add routing keys; BCC is removed before delivery."""
    try:
        headers = msg.headers
    except ValueError as exc:  # the properties' lengths scanned fine, their contents do not decode
        raise ConnectionError_(SYNTAX_ERROR, f"malformed content header: {exc}", 60, 40) from None
    extra: list[str] = []
    for name in ("CC", "BCC"):
        v = headers.get(name)
        if v is None:
            continue
        if not isinstance(v, list):
            wire = msg.typed_headers()[name]  # RabbitMQ names the wire type
            raise precondition(f'invalid message: {{unacceptable_type_in_header,"{name}",{type_name(wire)}}}')
        for k in v:
            extra.append(k.decode(errors="replace") if isinstance(k, bytes) else str(k))
    if "BCC" in headers:
        typed = msg.typed_headers()  # the other headers keep their wire types
        typed.pop("BCC", None)
        msg.replace_headers(typed)
    return extra or None


def rewrite_reply_to(ch: Channel, msg: Message) -> None:
    """Direct reply-to: the reply address names the publishing channel's reply consumer."""
    if ch.reply_consumer is None:
        raise precondition("fast reply consumer does not exist")
    msg.set_property("reply_to", REPLY_TO_PREFIX + ch.reply_token)


#: RabbitMQ's largest per-message TTL (ms): ten years
MAX_EXPIRATION = 315_360_000_000
_EXPIRATION = re.compile(r"([+-]?[0-9]+)(.*)", re.S)


def check_expiration(exp: str) -> None:
    """As RabbitMQ (string:to_integer, then the range check), with its error texts."""
    m = _EXPIRATION.fullmatch(exp)
    if m is None:
        raise precondition(f"invalid expiration '{exp}': no_integer")
    n = int(m.group(1))
    if m.group(2):
        raise precondition(f"invalid expiration '{exp}': {{leftover_string,\"{m.group(2)}\"}}")
    if n < 0:
        raise precondition(f"invalid expiration '{exp}': {{value_negative,{n}}}")
    if n > MAX_EXPIRATION:
        prefix = f"invalid expiration '{exp}': "
        term = f"{{value_too_large,{n}}}"
        if len(prefix) + len(term) >= 78:  # Erlang's ~p breaks a term that runs past the line
            term = f"{{value_too_large,\n{' ' * (len(prefix) + 1)}{n}}}"
        raise precondition(prefix + term)
