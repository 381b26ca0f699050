"""The FakeClock itself: due order, cancellation, callbacks scheduled by callbacks."""

from __future__ import annotations

from tests.model.fakes import FakeClock


def test_advance_runs_callbacks_in_due_order_at_their_time():
    clock = FakeClock(start=0.0)
    seen: list[tuple[str, float]] = []

    def mark(name: str) -> None:
        seen.append((name, clock.time()))

    clock.call_later(2.0, mark, "b")
    clock.call_at(1.0, mark, "a")
    clock.call_soon(mark, "now")
    cancelled = clock.call_later(1.5, mark, "never")
    cancelled.cancel()
    assert seen == []  # nothing runs until the test says so
    clock.advance(1.0)
    assert seen == [("now", 0.0), ("a", 1.0)]
    clock.advance(5.0)
    assert seen[-1] == ("b", 2.0) and clock.time() == 6.0
    assert clock.pending() == []


def test_callbacks_scheduled_for_now_run_in_the_same_turn_in_fifo_order():
    clock = FakeClock()
    seen: list[int] = []

    def chain(n: int) -> None:
        seen.append(n)
        if n < 3:
            clock.call_soon(chain, n + 1)

    clock.call_soon(chain, 0)
    clock.call_soon(seen.append, 100)
    assert clock.run_ready() == 5
    assert seen == [0, 100, 1, 2, 3]
