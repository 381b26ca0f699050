"""Exchange types by name."""

from .base import Binding, Exchange
from .direct import DirectExchange
from .fanout import FanoutExchange
from .headers import HeadersExchange
from .topic import TopicExchange

EXCHANGE_TYPES: dict[str, type[Exchange]] = {
    "direct": DirectExchange,
    "fanout": FanoutExchange,
    "topic": TopicExchange,
    "headers": HeadersExchange,
}

from .delayed import DelayedExchange  # noqa: E402  (needs EXCHANGE_TYPES)

EXCHANGE_TYPES[DelayedExchange.type_name] = DelayedExchange

__all__ = [
    "Binding",
    "Exchange",
    "DirectExchange",
    "FanoutExchange",
    "TopicExchange",
    "HeadersExchange",
    "DelayedExchange",
    "EXCHANGE_TYPES",
]
