"""``x-delayed-message`` exchange, compatible with RabbitMQ's delayed-message plugin.

Bindings and matching are those of the ``x-delayed-type`` exchange type. A
message with a positive integer ``x-delay`` header (ms) is held and routed
when due; on delivery its ``x-delay`` header is negated, as the plugin does.
Unlike the plugin, ``mandatory`` is checked at publish time against the
bindings present then. Pending messages are ordered by a due-time index
(sortedcontainers); one timer, armed for the earliest, drives routing.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable
from typing import Any

from sortedcontainers import SortedList

from protocol.constants import PRECONDITION_FAILED

from ..errors import ChannelError
from .base import Binding, Exchange

log = logging.getLogger("warren.delayed")


def delay_of(headers: dict) -> int:
    """The message's x-delay in ms (0 for none, not an integer, or not positive)."""
    d = headers.get("x-delay")
    if isinstance(d, bool) or not isinstance(d, (int, float)):
        return 0
    return int(d) if d > 0 else 0


class DelayedExchange(Exchange):
    """Holds messages until their x-delay passes, then routes them as ``x-delayed-type``."""

    type_name = "x-delayed-message"

    def __init__(self, vhost: Any, name: str, durable: bool = False, auto_delete: bool = False,
                 internal: bool = False, arguments: dict | None = None) -> None:
        super().__init__(vhost, name, durable, auto_delete, internal, arguments)
        from . import EXCHANGE_TYPES

        dtype = self.arguments.get("x-delayed-type")
        if isinstance(dtype, bytes):
            dtype = dtype.decode()
        inner_cls = EXCHANGE_TYPES.get(dtype) if isinstance(dtype, str) else None
        if inner_cls is None or dtype == self.type_name:
            raise ChannelError(
                PRECONDITION_FAILED, "Invalid argument, 'x-delayed-type' must be an existing exchange type"
            )
        self.inner: Exchange = inner_cls(vhost, name, durable, auto_delete, internal, {})
        self._due: SortedList = SortedList()
        self._pending: dict[int, tuple] = {}
        self._seq = itertools.count()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._loop = asyncio.get_event_loop()
        #: called with (exchange, routing_key, message, extra_keys) when a message is due
        self.on_due: Callable[[DelayedExchange, str, Any, list[str] | None], None] | None = None
        self.fired = 0

    def _index_add(self, b: Binding) -> None:
        self.inner.bindings[b.key] = b
        self.inner._index_add(b)

    def _index_remove(self, b: Binding) -> None:
        self.inner.bindings.pop(b.key, None)
        self.inner._index_remove(b)

    def validate_binding(self, binding: Binding) -> None:
        self.inner.validate_binding(binding)

    def match(self, routing_key: str, message: Any) -> Any:
        return self.inner.match(routing_key, message)

    # -- delaying -------------------------------------------------------------
    @property
    def pending_count(self) -> int:
        return len(self._pending)

    def hold(self, delay_ms: int, routing_key: str, msg: Any, extra: list[str] | None) -> None:
        due = self._loop.time() + delay_ms / 1000.0
        seq = next(self._seq)
        self._pending[seq] = (routing_key, msg, extra)
        self._due.add((due, seq))
        if self._timer is None or due < self._timer_at:
            self._arm(due)

    def _arm(self, at: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = at
        self._timer = self._loop.call_at(at, self._fire)

    def _fire(self) -> None:
        self._timer = None
        now = self._loop.time()
        due = self._due
        n = 0
        while due and due[0][0] <= now and n < 5000:
            _, seq = due.pop(0)
            routing_key, msg, extra = self._pending.pop(seq)
            n += 1
            self.fired += 1
            if self.on_due is not None:
                try:
                    self.on_due(self, routing_key, msg, extra)
                except Exception:  # a bad message must not stop the timer
                    log.exception("routing a delayed message failed exchange=%s", self.name)
        if due:
            self._arm(due[0][0] if n < 5000 else now)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._due.clear()
        self._pending.clear()
