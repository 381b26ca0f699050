"""Exchange types by name."""

from warren.server.model.exchanges.base import Binding, Exchange
from warren.server.model.exchanges.basic import BASIC_TYPES
from warren.server.model.exchanges.delayed import DelayedExchange
from warren.server.model.exchanges.direct import DirectExchange
from warren.server.model.exchanges.fanout import FanoutExchange
from warren.server.model.exchanges.headers import HeadersExchange
from warren.server.model.exchanges.topic import TopicExchange

EXCHANGE_TYPES: dict[str, type[Exchange]] = {**BASIC_TYPES, DelayedExchange.type_name: DelayedExchange}

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
