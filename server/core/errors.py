"""Constructors for the errors the broker raises, with RabbitMQ's texts."""

from __future__ import annotations

from warren.protocol.constants import (
    ACCESS_REFUSED,
    NOT_FOUND,
    PRECONDITION_FAILED,
    REPLY_NAMES,
    RESOURCE_LOCKED,
)
from warren.protocol.errors import AMQPError


def close_text(exc: AMQPError) -> str:
    """The reply text of a Channel.Close / Connection.Close, as RabbitMQ limits it to a
    shortstr: over 255 bytes it is cut to its first 252 bytes plus "..." (bytes, not
    characters: a non-ASCII text cut at 255 characters does not fit a shortstr)."""
    text = f"{REPLY_NAMES.get(exc.code, 'ERROR')} - {exc.text}"
    raw = text.encode()
    if len(raw) <= 255:
        return text
    return raw[:252].decode("utf-8", "ignore") + "..."


class ChannelError(AMQPError):
    """Closes only the channel it happened on."""


class ConnectionError_(AMQPError):
    """Closes the whole connection."""


def fmt_bool(v: object) -> str:
    return "true" if v else "false"


def not_found_queue(name: str, vhost: str) -> ChannelError:
    return ChannelError(NOT_FOUND, f"no queue '{name}' in vhost '{vhost}'")


def not_found_exchange(name: str, vhost: str) -> ChannelError:
    return ChannelError(NOT_FOUND, f"no exchange '{name}' in vhost '{vhost}'")


def resource_locked(name: str, vhost: str) -> ChannelError:
    return ChannelError(
        RESOURCE_LOCKED,
        f"cannot obtain exclusive access to locked queue '{name}' in vhost '{vhost}'. "
        "It could be originally declared on another connection or the exclusive "
        "property value does not match that of the original declaration.",
    )


def inequivalent(arg: str, kind: str, name: str, vhost: str, received: str, current: str) -> ChannelError:
    return ChannelError(
        PRECONDITION_FAILED,
        f"inequivalent arg '{arg}' for {kind} '{name}' in vhost '{vhost}': "
        f"received {received} but current is {current}",
    )


def access_refused(text: str) -> ChannelError:
    return ChannelError(ACCESS_REFUSED, text)


def precondition(text: str) -> ChannelError:
    return ChannelError(PRECONDITION_FAILED, text)
