"""Protocol-level errors: a reply code and RabbitMQ's text."""

from __future__ import annotations

from warren.protocol.constants import REPLY_NAMES


class AMQPError(Exception):
    """An error the peer must be told about with a reply code.

    ``text`` is the detail; ``reply_text`` prefixes it with the code's name as
    RabbitMQ does ("NOT_FOUND - no queue 'q' in vhost '/'").
    """

    def __init__(self, code: int, text: str, class_id: int = 0, method_id: int = 0) -> None:
        super().__init__(code, text)
        self.code = code
        self.text = text
        self.class_id = class_id
        self.method_id = method_id

    @property
    def reply_text(self) -> str:
        return f"{REPLY_NAMES.get(self.code, 'ERROR')} - {self.text}"[:255]


class FrameError(AMQPError):
    """Malformed framing: always a connection error."""
