"""Shared helpers for the storage tests: a tiny record type, its codec, an fsync-counting executor."""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import os
import threading
from pathlib import Path
from typing import Any

from warren.storage.log import LogStore


@dataclasses.dataclass
class Rec:
    """A record as the store sees it: ``size``, ``persistent`` and some bytes."""

    size: int
    persistent: bool
    payload: bytes


def enc(r: Rec) -> bytes:
    return b"\x01" + r.payload if r.persistent else b"\x00" + r.payload


def dec(b: bytes) -> Rec:
    return Rec(len(b) - 1, b[0] == 1, bytes(b[1:]))


def rec(i: int, persistent: bool = True, pad: int = 0) -> Rec:
    """Record number ``i``: recognisable payload, size = payload length."""
    payload = b"%08d" % i + b"." * pad
    return Rec(len(payload), persistent, payload)


def num(r: Rec) -> int:
    """The ``i`` that ``rec(i)`` was made from."""
    return int(r.payload[:8])


def open_store(path: Path, **kw: Any) -> LogStore:
    return LogStore(path, enc, dec, **kw)


def drain_nums(store: Any) -> list[int]:
    return [num(r) for _p, r in store.drain()]


class Results(list):
    """A sync callback that records each ``ok`` and can be awaited until it has ``n``."""

    def __init__(self) -> None:
        super().__init__()
        self._want: list[tuple[int, asyncio.Future]] = []

    def __call__(self, ok: bool) -> None:
        self.append(ok)
        for n, fut in self._want:
            if len(self) >= n and not fut.done():
                fut.set_result(None)

    async def until(self, n: int) -> list[bool]:
        if len(self) < n:
            fut = asyncio.get_running_loop().create_future()
            self._want.append((n, fut))
            await asyncio.wait_for(fut, 20)
        return list(self)


class CountingExecutor(concurrent.futures.Executor):
    """Runs submitted fsync jobs on a real thread; counts them; can hold them back.

    ``gate`` (a threading.Event) must be set for a job to proceed, so a test
    can keep an fsync "in flight" for as long as it likes without sleeping.
    """

    def __init__(self) -> None:
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
        self.submitted = 0
        self.gate = threading.Event()
        self.gate.set()
        self._want: list[tuple[int, asyncio.Future]] = []

    async def until_submitted(self, n: int) -> None:
        """Wait until ``n`` jobs were submitted (stores submit from the loop thread)."""
        if self.submitted < n:
            fut = asyncio.get_running_loop().create_future()
            self._want.append((n, fut))
            await asyncio.wait_for(fut, 20)

    def submit(self, fn, /, *args, **kwargs):  # type: ignore[override]
        self.submitted += 1
        for n, fut in self._want:
            if self.submitted >= n and not fut.done():
                fut.set_result(None)

        def run() -> Any:
            if not self.gate.wait(30):
                raise TimeoutError("gate never opened")
            return fn(*args, **kwargs)

        return self._pool.submit(run)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self.gate.set()
        self._pool.shutdown(wait=wait, cancel_futures=cancel_futures)


def segment_files(path: Path) -> list[Path]:
    return sorted(path.glob("seg-*.wlog"))


def rss_bytes() -> int:
    """Current resident set size of this process."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
