"""The four AMQP exchange types by name (what an x-delayed-message exchange may route as)."""

from warren.server.model.exchanges.base import Exchange
from warren.server.model.exchanges.direct import DirectExchange
from warren.server.model.exchanges.fanout import FanoutExchange
from warren.server.model.exchanges.headers import HeadersExchange
from warren.server.model.exchanges.topic import TopicExchange

BASIC_TYPES: dict[str, type[Exchange]] = {
    "direct": DirectExchange,
    "fanout": FanoutExchange,
    "topic": TopicExchange,
    "headers": HeadersExchange,
}
