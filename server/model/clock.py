"""The clock and scheduler the model runs on.

In the broker it is the event loop itself; in-process model tests pass a fake
one they advance by hand (``tests/model``), so TTLs, expiry and dispatch run
deterministically, without sleeping.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol


class Handle(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    """The part of ``asyncio.AbstractEventLoop`` the model uses."""

    def time(self) -> float: ...

    def call_soon(self, callback: Callable[..., Any], *args: Any) -> Handle: ...

    def call_at(self, when: float, callback: Callable[..., Any], *args: Any) -> Handle: ...

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> Handle: ...
