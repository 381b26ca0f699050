"""Priority lanes: one message store per lane, strict highest-lane-first dequeue."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class LanedStore:
    """Wraps ``n`` stores; lane ``n-1`` is served first, FIFO within a lane.

    Positions are made unique across lanes by tagging the lane in the low byte:
    ``pos = lane_pos << 8 | lane``, so ``ack``/``requeue`` find their lane.
    """

    __slots__ = ("lanes", "_nonempty_hint")

    def __init__(self, lanes: list[Any]) -> None:
        if not 1 <= len(lanes) <= 256:
            raise ValueError("1..256 lanes")
        self.lanes = lanes

    def push_lane(self, lane: int, record: Any) -> int:
        return (self.lanes[lane].push(record) << 8) | lane

    def push(self, record: Any) -> int:
        return self.push_lane(0, record)

    def shift(self) -> tuple[int, Any] | None:
        for lane in range(len(self.lanes) - 1, -1, -1):
            item = self.lanes[lane].shift()
            if item is not None:
                return (item[0] << 8) | lane, item[1]
        return None

    def peek(self) -> tuple[int, Any] | None:
        for lane in range(len(self.lanes) - 1, -1, -1):
            item = self.lanes[lane].peek()
            if item is not None:
                return (item[0] << 8) | lane, item[1]
        return None

    def requeue(self, position: int, record: Any) -> None:
        self.lanes[position & 0xFF].requeue(position >> 8, record)

    def ack(self, position: int) -> None:
        self.lanes[position & 0xFF].ack(position >> 8)

    def purge(self) -> int:
        return sum(lane.purge() for lane in self.lanes)

    def drain(self) -> list[tuple[int, Any]]:
        out: list[tuple[int, Any]] = []
        for lane in range(len(self.lanes) - 1, -1, -1):
            out.extend(((p << 8) | lane, r) for p, r in self.lanes[lane].drain())
        return out

    def lane_depths(self) -> list[int]:
        return [len(lane) for lane in self.lanes]

    def __len__(self) -> int:
        return sum(len(lane) for lane in self.lanes)

    def __bool__(self) -> bool:
        return any(self.lanes)

    @property
    def ready_bytes(self) -> int:
        return sum(lane.ready_bytes for lane in self.lanes)

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
