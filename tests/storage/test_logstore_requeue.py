"""Requeue of records that are still what was pushed (``unchanged=True``): the store
keeps no copy in RAM and reads them back, through ``decode_requeued``, when they are
shifted again; order, counts and bytes are as for a requeue that keeps the record."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from logstore_helpers import Rec, dec, enc, num, rec
from warren.storage.lanes import LanedStore
from warren.storage.log import LogStore
from warren.storage.spill import SpillStore

SMALL = {"segment_size": 4096, "cache_records": 4, "cache_bytes": 64}


def _dec_requeued(b: bytes) -> Rec:
    r = dec(b)
    return dataclasses.replace(r, payload=r.payload + b"+requeued")


def test_unchanged_requeue_drops_the_record_and_reads_it_back(tmp_path: Path) -> None:
    s = LogStore(tmp_path, enc, dec, decode_requeued=_dec_requeued, **SMALL)
    for i in range(100):
        s.push(rec(i, pad=20))
    ready_bytes = s.ready_bytes
    taken = [s.shift() for _ in range(30)]
    for pos, r in reversed(taken):
        s.requeue(pos, r, unchanged=True)
    # nothing of the records is held: only a marker per position
    assert not any(isinstance(v, Rec) for v in s._requeued.values())
    assert len(s) == 100 and s.ready_bytes == ready_bytes
    peeked = s.peek()
    assert num(peeked[1]) == 0 and peeked[1].payload.endswith(b"+requeued")
    got = [s.shift() for _ in range(100)]
    assert [num(r) for _p, r in got] == list(range(100))
    assert all(r.payload.endswith(b"+requeued") for _p, r in got[:30])
    assert not any(r.payload.endswith(b"+requeued") for _p, r in got[30:])
    assert s.ready_bytes == 0 and len(s) == 0
    s.close()


def test_changed_requeue_keeps_the_record(tmp_path: Path) -> None:
    s = LogStore(tmp_path, enc, dec, decode_requeued=_dec_requeued, **SMALL)
    for i in range(10):
        s.push(rec(i))
    pos, r = s.shift()
    changed = dataclasses.replace(r, payload=r.payload + b"!")
    s.requeue(pos, changed, unchanged=False)
    assert s.shift() == (pos, changed)
    s.close()


def test_spill_and_laned_stores_pass_it_on(tmp_path: Path) -> None:
    logs: list[LogStore] = []

    def make_log(i: int = 0) -> LogStore:
        lg = LogStore(tmp_path / f"lane{i}-{len(logs)}", enc, dec, decode_requeued=_dec_requeued, durable=False, **SMALL)
        logs.append(lg)
        return lg

    spill = SpillStore(make_log, max_records=5)
    laned = LanedStore([spill])
    for i in range(20):
        laned.push_lane(0, rec(i))
    taken = [laned.shift() for _ in range(20)]
    for pos, r in taken:
        laned.requeue(pos, r, True)
    got = [laned.shift() for _ in range(20)]
    assert [num(r) for _p, r in got] == list(range(20))
    # the first five lived in RAM (kept as they were); the rest came back from the log
    assert [r.payload.endswith(b"+requeued") for _p, r in got] == [False] * 5 + [True] * 15
    spill.close()
