"""Validation of ``x-`` queue arguments, with RabbitMQ's error texts."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from warren.protocol.table import type_name
from warren.server.core.errors import precondition
from warren.server.model.limits import check_queue

if TYPE_CHECKING:
    from warren.server.model.vhost import VHost

#: x-queue-type values warren serves (streams are not implemented)
QUEUE_TYPES = ("classic", "quorum")

# arguments a quorum queue refuses (RabbitMQ 3.10: classic-only features)
_NOT_FOR_QUORUM = ("x-max-priority", "x-queue-mode", "x-queue-master-locator", "x-queue-version")


def _err(key: str, qname: str, vhost: str, detail: str) -> Exception:
    return precondition(f"invalid arg '{key}' for queue '{qname}' in vhost '{vhost}': {detail}")


def _int(key: str, v: Any, qname: str, vhost: str, minimum: int, maximum: int | None = None) -> None:
    if isinstance(v, bool) or not isinstance(v, int):
        raise _err(key, qname, vhost, f'"expected integer, got {type_name(v)}"')
    if v < minimum:
        raise _err(key, qname, vhost, f"{{value_negative,{v}}}" if minimum == 0 else f"{{value_zero,{v}}}")
    if maximum is not None and v > maximum:
        raise _err(key, qname, vhost, f"{{max_value_exceeded,{v}}}")


def _str(v: Any) -> str | None:
    if isinstance(v, bytes):  # a longstr that is not UTF-8: never a valid name or mode
        return v.decode(errors="replace")
    if isinstance(v, str):
        return v
    return None


def validate_queue_arguments(args: dict, qname: str = "", vhost: str = "/") -> None:
    """Raise a 406 ChannelError for a wrongly typed or valued ``x-`` argument."""
    dlx = args.get("x-dead-letter-exchange")
    if dlx is not None and _str(dlx) is None:
        # RabbitMQ's channel checks the DLX name's type before the other arguments
        raise precondition(
            f"invalid type '{type_name(dlx)}' for arg 'x-dead-letter-exchange' in queue '{qname}' in vhost '{vhost}'"
        )
    for key, v in args.items():
        if key == "x-max-priority":
            _int(key, v, qname, vhost, 0, 255)
        elif key in ("x-message-ttl", "x-max-length", "x-max-length-bytes", "x-delivery-limit"):
            _int(key, v, qname, vhost, 0)
        elif key == "x-expires":
            _int(key, v, qname, vhost, 1)
        elif key in ("x-dead-letter-exchange", "x-dead-letter-routing-key"):
            if _str(v) is None:
                raise _err(key, qname, vhost, f"{{unacceptable_type,{type_name(v)}}}")
        elif key == "x-overflow":
            s = _str(v)
            if s not in ("drop-head", "reject-publish", "reject-publish-dlx"):
                raise _err(key, qname, vhost, "invalid_overflow" if s else f"{{unacceptable_type,{type_name(v)}}}")
        elif key == "x-single-active-consumer":
            if not isinstance(v, bool):
                raise _err(key, qname, vhost, f"{{unacceptable_type,{type_name(v)}}}")
        elif key == "x-queue-mode":
            if _str(v) not in ("default", "lazy"):
                raise _err(key, qname, vhost, f"\"unsupported queue mode '{_str(v)}'\"" if _str(v) else f"{{unacceptable_type,{type_name(v)}}}")
        elif key == "x-queue-type":
            t = _str(v)
            if t is None:
                raise _err(key, qname, vhost, f"{{unacceptable_type,{type_name(v)}}}")
            if t not in QUEUE_TYPES:
                raise _err(key, qname, vhost, f"\"unsupported queue type '{t}'\"")
    if "x-dead-letter-routing-key" in args and "x-dead-letter-exchange" not in args:
        raise precondition(
            f"invalid arg 'x-dead-letter-routing-key' for queue '{qname}' in vhost '{vhost}': "
            "routing_key_but_no_dlx_defined"
        )


def queue_type(args: dict) -> str:
    """The queue's type from its arguments: ``classic`` unless x-queue-type says ``quorum``."""
    return "quorum" if _str(args.get("x-queue-type")) == "quorum" else "classic"


def validate_quorum_declare(
    args: dict, qname: str, vhost: str, durable: bool, exclusive: bool, auto_delete: bool
) -> None:
    """A new quorum queue's checks, in RabbitMQ's order (after the common argument checks)."""
    for key in args:
        if key in _NOT_FOR_QUORUM:
            raise precondition(
                f"invalid arg '{key}' for queue '{qname}' in vhost '{vhost}' of queue type rabbit_quorum_queue"
            )
    if "x-dead-letter-strategy" in args and _str(args["x-dead-letter-strategy"]) not in (
        "at-most-once",
        "at-least-once",
    ):
        raise _err("x-dead-letter-strategy", qname, vhost, "invalid_dlx_strategy")
    if "x-quorum-initial-group-size" in args:
        _int("x-quorum-initial-group-size", args["x-quorum-initial-group-size"], qname, vhost, 1)
    for bad, prop in ((auto_delete, "auto-delete"), (exclusive, "exclusive-owner"), (not durable, "non-durable")):
        if bad:
            raise precondition(f"invalid property '{prop}' for queue '{qname}' in vhost '{vhost}'")


def check_new_queue(
    vhost: VHost, name: str, args: dict, durable: bool, exclusive: bool, auto_delete: bool
) -> None:
    """Everything a queue about to be created must pass, in RabbitMQ's order."""
    if vhost.limits:
        check_queue(vhost, name)
    validate_queue_arguments(args, name, vhost.name)
    if queue_type(args) == "quorum":
        validate_quorum_declare(args, name, vhost.name, durable, exclusive, auto_delete)
