"""Priority lanes backed by log stores: one :class:`LogStore` per lane directory."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable
from pathlib import Path
from typing import Any

from warren.storage.lanes import LanedStore
from warren.storage.log.store import LogStore


class LanedLogStore(LanedStore):
    """A :class:`LanedStore` whose lanes are :class:`LogStore`\\ s in ``lane-NNN`` subdirectories.

    Positions carry the lane in their low byte (see :class:`LanedStore`), so
    ``is_recovered`` asks the lane the position belongs to.
    """

    __slots__ = ("directory",)

    def __init__(self, directory: Path, lanes: list[LogStore]) -> None:
        super().__init__(lanes)
        self.directory = directory

    @property
    def last_error(self) -> BaseException | None:
        """The most recent write or fsync error of any lane."""
        for lane in self.lanes:
            if lane.last_error is not None:
                return lane.last_error
        return None

    def delete(self) -> None:
        super().delete()
        try:
            self.directory.rmdir()
        except OSError:
            pass  # not empty: something else lives there


def lane_directory(directory: str | Path, lane: int) -> Path:
    """Where lane ``lane`` of a laned store in ``directory`` keeps its segments."""
    return Path(directory) / f"lane-{lane:03d}"


def open_laned_log_store(
    directory: str | Path,
    lanes: int,
    encode: Callable[[Any], bytes],
    decode: Callable[[bytes], Any],
    *,
    segment_size: int | None = None,
    executor: concurrent.futures.Executor | None = None,
    **kwargs: Any,
) -> LanedLogStore:
    """Open (recovering if present) a store of ``lanes`` priority lanes under ``directory``.

    Extra keyword arguments go to each :class:`LogStore`.
    """
    if not 1 <= lanes <= 256:
        raise ValueError("1..256 lanes")
    directory = Path(directory)
    stores = [
        LogStore(
            lane_directory(directory, i),
            encode,
            decode,
            segment_size=segment_size,
            executor=executor,
            **kwargs,
        )
        for i in range(lanes)
    ]
    return LanedLogStore(directory, stores)
