"""Headers exchange: match on message headers with x-match all/any/all-with-x/any-with-x."""

from __future__ import annotations

from typing import Any

from warren.protocol.constants import PRECONDITION_FAILED
from warren.server.core.errors import ChannelError
from warren.server.model.exchanges.base import Binding, Exchange

_MODES = ("all", "any", "all-with-x", "any-with-x")


def _mode(arguments: dict) -> str:
    m = arguments.get("x-match", "all")
    if isinstance(m, bytes):
        m = m.decode()
    return m


class HeadersExchange(Exchange):
    """Linear over bindings; each binding keeps its match mode and expected pairs."""

    type_name = "headers"

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self._rules: dict[tuple, tuple[Binding, bool, bool, list[tuple[str, Any]]]] = {}

    def validate_binding(self, b: Binding) -> None:
        m = _mode(b.arguments)
        if m not in _MODES:
            raise ChannelError(
                PRECONDITION_FAILED,
                f"Invalid x-match field value <<\"{m}\">>; expected all, any, all-with-x, or any-with-x",
            )

    def index_add(self, b: Binding) -> None:
        m = _mode(b.arguments)
        with_x = m.endswith("-with-x")
        pairs = [
            (k, v)
            for k, v in b.arguments.items()
            if k != "x-match" and (with_x or not k.startswith("x-"))
        ]
        self._rules[b.key] = (b, m.startswith("all"), with_x, pairs)

    def index_remove(self, b: Binding) -> None:
        self._rules.pop(b.key, None)

    def match(self, routing_key: str, message: Any) -> Any:
        headers = message.headers if message is not None else {}
        out: dict[Any, None] = {}
        for b, is_all, _with_x, pairs in self._rules.values():
            if _matches(headers, is_all, pairs):
                out[b.destination] = None
        return list(out)


def _matches(headers: dict, is_all: bool, pairs: list[tuple[str, Any]]) -> bool:
    if is_all:
        for k, v in pairs:
            if k not in headers:
                return False
            if v is not None and headers[k] != v:
                return False
        return True
    for k, v in pairs:
        if k in headers and (v is None or headers[k] == v):
            return True
    return False
