"""Priority lanes: one message store per lane, strict highest-lane-first dequeue."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class LanedStore:
    """Wraps ``n`` stores; lane ``n-1`` is served first, FIFO within a lane.

    Positions are made unique across lanes by tagging the lane in the low byte:
    ``pos = lane_pos << 8 | lane``, so ``ack``/``requeue`` find their lane.
    """

    # ``_top`` is an upper bound on the highest non-empty lane and ``_ready`` the
    # ready count, so a shift does not walk every lane and ``len``/``bool`` are O(1).
    __slots__ = ("lanes", "_top", "_ready")

    def __init__(self, lanes: list[Any]) -> None:
        if not 1 <= len(lanes) <= 256:
            raise ValueError("1..256 lanes")
        self.lanes = lanes
        self._ready = sum(len(lane) for lane in lanes)
        self._top = len(lanes) - 1

    def push_lane(self, lane: int, record: Any) -> int:
        self._ready += 1
        if lane > self._top:
            self._top = lane
        return (self.lanes[lane].push(record) << 8) | lane

    def push(self, record: Any) -> int:
        return self.push_lane(0, record)

    def shift(self) -> tuple[int, Any] | None:
        if not self._ready:
            return None
        lanes = self.lanes
        lane = self._top
        while lane >= 0:
            item = lanes[lane].shift()
            if item is not None:
                self._top = lane
                self._ready -= 1
                return (item[0] << 8) | lane, item[1]
            lane -= 1
        self._top = 0
        return None

    def peek(self) -> tuple[int, Any] | None:
        if not self._ready:
            return None
        for lane in range(self._top, -1, -1):
            item = self.lanes[lane].peek()
            if item is not None:
                return (item[0] << 8) | lane, item[1]
        return None

    def requeue(self, position: int, record: Any, unchanged: bool = False) -> None:
        lane = position & 0xFF
        self.lanes[lane].requeue(position >> 8, record, unchanged)
        self._ready += 1
        if lane > self._top:
            self._top = lane

    def ack(self, position: int) -> None:
        self.lanes[position & 0xFF].ack(position >> 8)

    def purge(self) -> int:
        self._ready = 0
        return sum(lane.purge() for lane in self.lanes)

    def drain(self) -> list[tuple[int, Any]]:
        self._ready = 0
        out: list[tuple[int, Any]] = []
        for lane in range(len(self.lanes) - 1, -1, -1):
            out.extend(((p << 8) | lane, r) for p, r in self.lanes[lane].drain())
        return out

    def lane_depths(self) -> list[int]:
        return [len(lane) for lane in self.lanes]

    def __len__(self) -> int:
        return self._ready

    def __bool__(self) -> bool:
        return self._ready > 0

    @property
    def ready_bytes(self) -> int:
        return sum(lane.ready_bytes for lane in self.lanes)

    def holds_recovered(self) -> bool:
        return any(lane.holds_recovered() for lane in self.lanes)

    def is_recovered(self, position: int) -> bool:
        return self.lanes[position & 0xFF].is_recovered(position >> 8)

    def flush_acks(self) -> None:
        for lane in self.lanes:
            lane.flush_acks()

    def sync(self, callback: Callable[[bool], None]) -> None:
        pending = [len(self.lanes)]
        all_ok = [True]

        def one(ok: bool) -> None:
            if not ok:
                all_ok[0] = False
            pending[0] -= 1
            if pending[0] == 0:
                callback(all_ok[0])

        for lane in self.lanes:
            lane.sync(one)

    def close(self) -> None:
        for lane in self.lanes:
            lane.close()

    def delete(self) -> None:
        for lane in self.lanes:
            lane.delete()
