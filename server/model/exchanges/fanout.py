"""Fanout exchange: every bound destination, routing key ignored."""

from __future__ import annotations

from typing import Any

from warren.server.model.exchanges.base import Binding, Exchange


class FanoutExchange(Exchange):
    """Routes every message to every destination once."""

    type_name = "fanout"

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self._dests: list[Any] = []
        self._counts: dict[int, int] = {}

    def index_add(self, b: Binding) -> None:
        k = id(b.destination)
        n = self._counts.get(k, 0)
        if n == 0:
            self._dests.append(b.destination)
        self._counts[k] = n + 1

    def index_remove(self, b: Binding) -> None:
        k = id(b.destination)
        n = self._counts[k] - 1
        if n == 0:
            del self._counts[k]
            self._dests.remove(b.destination)
        else:
            self._counts[k] = n

    def match(self, routing_key: str, message: Any) -> Any:
        return self._dests
