"""The one place message stores are made: pick the kind from where and how records live.

Every user of a message store (queues, the delayed exchange) calls
:func:`open_store`, so the choice of store kind, lane layout and directory
naming lives here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from warren.storage.base import MessageStore
from warren.storage.lanes import LanedStore
from warren.storage.log import LogStore, open_laned_log_store
from warren.storage.log.laned import lane_directory
from warren.storage.memory import MemoryStore
from warren.storage.spill import SpillStore


def open_store(
    directory: str | Path | None,
    *,
    durable: bool,
    lanes: int = 1,
    spill: bool = False,
    encode: Callable[[Any], bytes] | None = None,
    decode: Callable[[bytes], Any] | None = None,
    decode_requeued: Callable[[bytes], Any] | None = None,
    **log_options: Any,
) -> MessageStore:
    """Open (recovering what is on disk, if durable) a store of ``lanes`` priority lanes.

    * ``directory`` None: records live in RAM only (:class:`MemoryStore`).
    * ``durable``: a :class:`LogStore` in ``directory``; records marked
      persistent survive restarts.
    * not ``durable`` with ``spill``: RAM first, spilling to a non-durable log
      under ``directory/lane-NNN`` when the backlog grows (:class:`SpillStore`).
    * not ``durable`` without ``spill``: a non-durable :class:`LogStore` (a
      previous run's records are discarded on opening).

    More than one lane makes a :class:`LanedStore` (highest lane first).
    ``encode``/``decode`` are needed for every kind but RAM-only;
    ``log_options`` (``cache_records``, ``cache_bytes``, ``segment_size``,
    ``executor`` ...) go to each :class:`LogStore`.
    """
    if not 1 <= lanes <= 256:
        raise ValueError("1..256 lanes")
    if directory is None:
        if durable:
            raise ValueError("a durable store needs a directory")
        if lanes == 1:
            return MemoryStore()
        return LanedStore([MemoryStore() for _ in range(lanes)])
    if encode is None or decode is None:
        raise ValueError("a store on disk needs encode and decode")
    directory = Path(directory)
    if durable:
        if spill:
            raise ValueError("a durable store is on disk already: it does not spill")
        if lanes == 1:
            return LogStore(
                directory, encode, decode, decode_requeued=decode_requeued, **log_options
            )
        return open_laned_log_store(
            directory, lanes, encode, decode, decode_requeued=decode_requeued, **log_options
        )

    def log_at(path: Path) -> LogStore:
        return LogStore(
            path, encode, decode, durable=False, decode_requeued=decode_requeued, **log_options
        )

    if spill:

        def spilling(lane: int) -> SpillStore:
            return SpillStore(lambda: log_at(lane_directory(directory, lane)))

        if lanes == 1:
            return spilling(0)
        return LanedStore([spilling(i) for i in range(lanes)])
    if lanes == 1:
        return log_at(directory)
    return open_laned_log_store(
        directory,
        lanes,
        encode,
        decode,
        durable=False,
        decode_requeued=decode_requeued,
        **log_options,
    )
