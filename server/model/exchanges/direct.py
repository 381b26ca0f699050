"""Direct exchange: exact routing-key match, one dict lookup."""

from __future__ import annotations

from typing import Any

from warren.server.model.exchanges.base import Binding, Exchange


class DirectExchange(Exchange):
    """Routes to destinations bound with exactly the message's routing key."""

    type_name = "direct"

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self._routes: dict[str, list[Any]] = {}

    def index_add(self, b: Binding) -> None:
        dests = self._routes.setdefault(b.routing_key, [])
        if b.destination not in dests:
            dests.append(b.destination)

    def index_remove(self, b: Binding) -> None:
        still = any(
            o.destination is b.destination and o.routing_key == b.routing_key
            for o in self.bindings.values()
        )
        if still:
            return
        dests = self._routes.get(b.routing_key)
        if dests is not None:
            dests.remove(b.destination)
            if not dests:
                del self._routes[b.routing_key]

    def match(self, routing_key: str, message: Any) -> Any:
        return self._routes.get(routing_key, ())
