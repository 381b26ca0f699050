"""Validation of management API input, with RabbitMQ 3.10's 400 answers.

Everything a request sets is checked here, before anything changes, so that a
bad value gets a 400 with a reason instead of a 500 (or, worse, an accepted
value that raises later: a permission regex ``(`` used to be stored and then
fail every check that used it). Texts are RabbitMQ's where it gives one; where
RabbitMQ answers 500 (a crash) or accepts what AMQP cannot carry (names and
routing keys over 255 bytes) warren answers 400 in the same style.
"""

from __future__ import annotations

import html
import re
from typing import Any

from warren.server.core.safe_regex import RegexError, compile_user
from warren.server.model.policies import EXCHANGE_KEYS, QUEUE_KEYS


class Invalid(Exception):
    """A 400 answer: ``reason`` is the JSON value of the body's "reason"."""

    def __init__(self, reason: Any) -> None:
        super().__init__(str(reason))
        self.reason = reason


#: nesting accepted in a JSON request body (definitions are 4 levels deep; the
#: code that walks arguments and headers later is recursive)
MAX_JSON_DEPTH = 64
#: AMQP short strings: names and routing keys must fit
SHORTSTR_MAX = 255

APPLY_TO = ("all", "queues", "exchanges", "classic_queues", "quorum_queues", "streams")


def erl(v: Any) -> str:
    """A JSON value as RabbitMQ prints the Erlang term it decodes to (``~p``)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "null"
    if isinstance(v, str):
        return '<<"' + v.replace("\\", "\\\\").replace('"', '\\"') + '">>'
    if isinstance(v, list):
        return "[" + ",".join(erl(i) for i in v) + "]"
    if isinstance(v, dict):
        return "[" + ",".join("{" + erl(k) + "," + erl(i) + "}" for k, i in v.items()) + "]"
    return str(v)


def check_depth(value: Any, limit: int = MAX_JSON_DEPTH) -> None:
    """Refuse JSON nested deeper than ``limit`` (checked without recursion)."""
    stack = [(value, 1)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, dict):
            items = v.values()
        elif isinstance(v, list):
            items = v
        else:
            continue
        if d > limit:
            raise Invalid(f"JSON nested more than {limit} levels deep")
        stack.extend((i, d + 1) for i in items)


def regex_error(pattern: str) -> re.error | None:
    """Why ``pattern`` is not a valid regular expression (re's message and position, as
    RabbitMQ reports PCRE's); None if it is."""
    try:
        re.compile(pattern)
    except re.error as exc:
        return exc
    except (RecursionError, OverflowError, ValueError) as exc:  # pathological patterns
        return re.error(str(exc))
    return None


def refuse_unbounded(what: str, pattern: str) -> None:
    """A valid pattern whose matching time is not bounded (server/safe_regex.py) is
    refused with the reason (RabbitMQ, matching with PCRE, would take it and risk
    freezing; there is no RabbitMQ text to copy)."""
    try:
        compile_user(pattern)
    except RegexError as exc:
        raise Invalid(f"{what} pattern {pattern!r} refused: {exc}; RE2 syntax (no lookaround) or a simpler pattern is matched in bounded time") from None


def _codes(s: str) -> list[int]:
    return [ord(c) for c in s]


def permission(body: dict[str, Any]) -> tuple[str, str, str]:
    """configure/write/read of PUT /api/permissions (and definitions): strings, valid regexes.
    RabbitMQ: ["invalid_regexp", <pattern as a char list>, [<message as a char list>, <position>]]."""
    out = []
    for k in ("configure", "write", "read"):
        v = body.get(k)
        if not isinstance(v, str):
            raise Invalid(f"{k} should be a string, actually was {html.escape(erl(v), quote=False)}")
        exc = regex_error(v)
        if exc is not None:
            raise Invalid(["invalid_regexp", _codes(v), [_codes(exc.msg), exc.pos or 0]])
        refuse_unbounded(k, v)
        out.append(v)
    return out[0], out[1], out[2]


def topic_permission(body: dict[str, Any]) -> tuple[str, str, str]:
    """exchange/write/read of PUT /api/topic-permissions. RabbitMQ: ["invalid_regexp", <pattern>, ...]."""
    ex = body.get("exchange")
    if not isinstance(ex, str):
        raise Invalid(f"exchange should be a string, actually was {html.escape(erl(ex), quote=False)}")
    name_length("exchange", ex)
    out = []
    for k in ("write", "read"):
        v = body.get(k)
        if not isinstance(v, str):
            raise Invalid(f"{k} should be a string, actually was {html.escape(erl(v), quote=False)}")
        exc = regex_error(v)
        if exc is not None:
            raise Invalid(["invalid_regexp", v, [_codes(exc.msg), exc.pos or 0]])
        refuse_unbounded(k, v)
        out.append(v)
    return ex, out[0], out[1]


def _nonneg(v: Any, low: int = 0) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= low


#: RabbitMQ's rabbit_policies checks: key -> (valid?, "~p is not a valid ..." text)
_VALUE_CHECKS: dict[str, tuple[Any, str]] = {
    "alternate-exchange": (lambda v: isinstance(v, str), "alternate exchange name"),
    "dead-letter-exchange": (lambda v: isinstance(v, str), "dead letter exchange name"),
    "dead-letter-routing-key": (lambda v: isinstance(v, str), "dead letter routing key"),
    "message-ttl": (_nonneg, "message TTL"),
    "expires": (lambda v: _nonneg(v, 1), "queue expiry"),
    "max-length": (_nonneg, "maximum length"),
    "max-length-bytes": (_nonneg, "maximum length in bytes"),
    "overflow": (lambda v: v in ("drop-head", "reject-publish", "reject-publish-dlx"), "overflow value"),
    "delivery-limit": (_nonneg, "delivery limit"),
    "consumer-timeout": (_nonneg, "consumer timeout"),
    "single-active-consumer": (lambda v: isinstance(v, bool), "single active consumer flag"),
}


def _policy_errors(body: dict[str, Any], key_missing: bool) -> list[str]:
    errors: list[str] = []
    definition = body.get("definition")
    if "definition" not in body and key_missing:
        raise Invalid("[{key_missing,definition}]")
    if not isinstance(definition, dict):
        shown = "undefined" if "definition" not in body else erl(definition)
        errors.append(f"parse error while reading policy definition: {shown}. Validator: policy_validator.")
    elif not definition:
        errors.append("no policy provided")
    else:
        unknown = {k: v for k, v in definition.items() if k not in QUEUE_KEYS and k not in EXCHANGE_KEYS}
        if unknown:
            errors.append(f"{erl(unknown)} are not recognised policy settings")
        for k, v in definition.items():
            check = _VALUE_CHECKS.get(k)
            if check is not None and not check[0](v):
                errors.append(f"{erl(v)} is not a valid {check[1]}")
    pattern = body.get("pattern")
    if not isinstance(pattern, str):
        errors.append(f"pattern should be a binary but was {'undefined' if 'pattern' not in body else erl(pattern)}")
    else:
        exc = regex_error(pattern)
        if exc is not None:
            errors.append(f'pattern should be regular expression but is invalid: {{"{exc.msg}",{exc.pos or 0}}}')
        else:
            try:
                refuse_unbounded("policy", pattern)
            except Invalid as refused:
                errors.append(str(refused))
    if "priority" in body:
        prio = body["priority"]
        if isinstance(prio, bool) or not isinstance(prio, (int, float)):
            errors.append(f"priority should be a number, actually was {erl(prio)}")
    apply_to = body.get("apply-to", "all")
    if apply_to not in APPLY_TO:
        shown = apply_to if isinstance(apply_to, str) else erl(apply_to)
        errors.append(f"apply-to '{shown}' unrecognised; should be 'queues', 'exchanges' or 'all'")
    return errors


def _validation_failed(errors: list[str], suffix: str = "") -> Invalid:
    # RabbitMQ escapes its reason for HTML ("<<" becomes "&lt;&lt;")
    return Invalid(html.escape("Validation failed\n\n" + "".join(e + "\n" for e in errors) + suffix, quote=False))


def policy(body: dict[str, Any]) -> None:
    """PUT /api/policies/{vhost}/{name}: RabbitMQ's "Validation failed" texts."""
    for k in ("pattern", "definition"):
        if k not in body:
            raise Invalid(f"[{{key_missing,{k}}}]")
    errors = _policy_errors(body, True)
    if errors:
        raise _validation_failed(errors)


def name_length(kind: str, name: str) -> None:
    """Names (and routing keys) are AMQP short strings: at most 255 bytes (RabbitMQ's text)."""
    n = len(name.encode("utf-8", "surrogatepass"))
    if n > SHORTSTR_MAX:
        raise Invalid(f"{kind} should be less than 255 bytes, actually was {n}\n")


def arguments(v: Any) -> dict[str, Any]:
    """An ``arguments`` member: an object (or absent/null)."""
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise Invalid(f"arguments should be an object, actually was {html.escape(erl(v), quote=False)}")
    return v


def properties(v: Any) -> dict[str, Any]:
    """The ``properties`` of a publish: an object whose short strings fit and whose headers are an object."""
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise Invalid(f"properties should be an object, actually was {html.escape(erl(v), quote=False)}")
    for k, i in v.items():
        if k == "headers":
            arguments(i)
        elif k in ("delivery_mode", "priority", "timestamp"):
            if isinstance(i, bool) or not isinstance(i, int):
                raise Invalid(["not_int", k])
            if k != "timestamp" and not 0 <= i <= 255:
                raise Invalid(f"{k} should be between 0 and 255, actually was {i}")
        elif isinstance(i, str):
            name_length(k, i)
        if k == "expiration":  # as Basic.Publish's check (amqp.publishing.check_expiration)
            if not isinstance(i, str) or not i.isdigit():
                raise Invalid(f"406 PRECONDITION_FAILED - invalid expiration '{i}': no_integer")
    return v


def tags(v: Any) -> str | list[str]:
    """User and vhost tags: a comma-separated string or a list of strings."""
    if isinstance(v, str) or isinstance(v, list) and all(isinstance(t, str) for t in v):
        return v
    raise Invalid(f"tags should be a string or a list of strings, actually was {html.escape(erl(v), quote=False)}")


_SECTIONS = ("users", "vhosts", "permissions", "topic_permissions", "parameters", "global_parameters",
             "policies", "queues", "exchanges", "bindings")


def definitions(data: dict[str, Any]) -> None:
    """A definitions document, checked whole before anything is imported."""
    for section in _SECTIONS:
        items = data.get(section, [])
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise Invalid(f"{section} should be a list of objects, actually was {html.escape(erl(items), quote=False)}")
    for section, fields in (("users", ("name",)), ("vhosts", ("name",)), ("permissions", ("user", "vhost")),
                            ("topic_permissions", ("user", "vhost", "exchange")), ("policies", ("vhost", "name")),
                            ("queues", ("name",)), ("exchanges", ("name",)), ("bindings", ("source", "destination"))):
        for item in data.get(section, []):
            for f in fields:
                v = item.get(f)
                if not isinstance(v, str):
                    raise Invalid(f"{section}: {f} should be a string, actually was {html.escape(erl(v), quote=False)}")
            for f in ("vhost", "routing_key", "destination_type", "type", "password_hash"):
                if f in item and not isinstance(item[f], str):
                    raise Invalid(f"{section}: {f} should be a string, actually was "
                                  f"{html.escape(erl(item[f]), quote=False)}")
            if "arguments" in item:
                arguments(item["arguments"])
    for u in data.get("users", []):
        if "tags" not in u:
            raise Invalid("tags_not_present")
        tags = u["tags"]
        if not isinstance(tags, (str, list)) or isinstance(tags, list) and not all(isinstance(t, str) for t in tags):
            raise Invalid(f"invalid tags {html.escape(erl(tags), quote=False)}")
    for q in data.get("queues", []):
        name_length("queue", q["name"])
    for e in data.get("exchanges", []):
        name_length("exchange", e["name"])
    for b in data.get("bindings", []):
        name_length("routing_key", b.get("routing_key", ""))
    for p in data.get("permissions", []):
        permission({k: p.get(k, ".*") for k in ("configure", "write", "read")})
    for tp in data.get("topic_permissions", []):
        topic_permission({"exchange": tp["exchange"], "write": tp.get("write", ".*"), "read": tp.get("read", ".*")})
    for p in data.get("policies", []):
        errors = _policy_errors(p, False)
        if errors:
            raise _validation_failed(errors, f" ({p['vhost']}/{p['name']})")
