"""Policies: named, pattern-matched argument sets applied to queues and exchanges (as RabbitMQ's)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from warren.server.core.errors import precondition
from warren.server.core.safe_regex import Matcher, RegexError, compile_user

#: policy keys that apply to queues, and the queue argument each stands for
QUEUE_KEYS = {
    "message-ttl": "x-message-ttl",
    "expires": "x-expires",
    "max-length": "x-max-length",
    "max-length-bytes": "x-max-length-bytes",
    "overflow": "x-overflow",
    "dead-letter-exchange": "x-dead-letter-exchange",
    "dead-letter-routing-key": "x-dead-letter-routing-key",
    "delivery-limit": "x-delivery-limit",
    "consumer-timeout": "x-consumer-timeout",
    "single-active-consumer": "x-single-active-consumer",
}
EXCHANGE_KEYS = {"alternate-exchange": "alternate-exchange"}
#: numeric limits where the stricter (smaller) of argument and policy wins
MIN_WINS = {"x-message-ttl", "x-expires", "x-max-length", "x-max-length-bytes", "x-delivery-limit"}


@dataclass
class Policy:
    """One policy of a vhost."""

    vhost: str
    name: str
    pattern: str
    definition: dict[str, Any]
    priority: int = 0
    apply_to: str = "all"
    _re: Matcher = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.apply_to not in ("all", "queues", "exchanges", "classic_queues", "quorum_queues", "streams"):
            raise precondition(f"apply-to '{self.apply_to}' is not one of all, queues, exchanges")
        try:
            self._re = compile_user(self.pattern)
        except RegexError as exc:
            raise precondition(f"invalid policy pattern '{self.pattern}': {exc}") from None
        unknown = [k for k in self.definition if k not in QUEUE_KEYS and k not in EXCHANGE_KEYS]
        if unknown:
            raise precondition(f"unrecognised policy keys: {', '.join(sorted(unknown))}")

    def matches(self, kind: str, name: str, queue_type: str = "classic") -> bool:
        if self.apply_to in ("queues", "classic_queues", "quorum_queues", "streams") and kind != "queue":
            return False
        if self.apply_to in ("classic_queues", "quorum_queues", "streams") and self.apply_to != f"{queue_type}_queues":
            return False
        if self.apply_to == "exchanges" and kind != "exchange":
            return False
        return self._re.search(name) is not None

    def as_json(self) -> dict[str, Any]:
        return {
            "vhost": self.vhost,
            "name": self.name,
            "pattern": self.pattern,
            "apply-to": self.apply_to,
            "definition": self.definition,
            "priority": self.priority,
        }


def pick_policy(
    policies: dict[str, Policy], kind: str, name: str, queue_type: str = "classic"
) -> Policy | None:
    """The matching policy with the highest priority (RabbitMQ applies one policy)."""
    best: Policy | None = None
    for p in policies.values():
        if p.matches(kind, name, queue_type) and (best is None or p.priority > best.priority):
            best = p
    return best


def effective_arguments(arguments: dict[str, Any], policy: Policy | None, kind: str) -> dict[str, Any]:
    """Arguments merged with a policy's definition, with RabbitMQ's precedence."""
    if policy is None:
        return arguments
    keys = QUEUE_KEYS if kind == "queue" else EXCHANGE_KEYS
    out = dict(arguments)
    for k, v in policy.definition.items():
        arg = keys.get(k)
        if arg is None:
            continue
        if arg not in out:
            out[arg] = v
        elif arg in MIN_WINS and isinstance(v, int) and isinstance(out[arg], int):
            out[arg] = min(out[arg], v)
    return out
