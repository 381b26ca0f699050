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

__all__ = [
    "Binding",
    "Exchange",
    "DirectExchange",
    "FanoutExchange",
    "TopicExchange",
    "HeadersExchange",
    "EXCHANGE_TYPES",
]
