"""Randomised operations, restarts included, checked against a tiny model.

The model needs no cursor: requeued records always sit below every record not
yet shifted, so the next record is simply the lowest ready position. A restart
turns every persistent, unacked record (ready or not) ready again and drops the
rest.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from logstore_helpers import Rec, open_store, rec

READY, UNACKED = "ready", "unacked"


@pytest.mark.parametrize("seed", range(12))
def test_random_operations_with_restarts(tmp_path: Path, seed: int) -> None:
    rnd = random.Random(seed)
    opts = {
        "segment_size": rnd.choice([256, 1024, 8192]),
        "cache_records": rnd.choice([0, 3, 50]),
        "cache_bytes": rnd.choice([100, 1 << 20]),
    }
    s = open_store(tmp_path, **opts)
    model: dict[int, tuple[Rec, str]] = {}
    recovered: set[int] = set()
    i = 0

    def ready() -> list[int]:
        return sorted(p for p, (_r, st) in model.items() if st == READY)

    for _step in range(1500):
        op = rnd.random()
        if op < 0.40:
            r = rec(i, persistent=rnd.random() < 0.75, pad=rnd.choice([0, 5, 50, 700]))
            i += 1
            p = s.push(r)
            assert p not in model and all(p > q for q in model)
            model[p] = (r, READY)
        elif op < 0.70:
            item = s.shift()
            want = ready()
            if not want:
                assert item is None
            else:
                assert item is not None and item[0] == want[0]
                assert item[1] == model[want[0]][0]
                assert s.is_recovered(item[0]) == (item[0] in recovered)
                model[item[0]] = (item[1], UNACKED)
        elif op < 0.80:
            unacked = [p for p, (_r, st) in model.items() if st == UNACKED]
            if unacked:
                p = rnd.choice(unacked)
                s.requeue(p, model[p][0])
                model[p] = (model[p][0], READY)
        elif op < 0.95:
            unacked = [p for p, (_r, st) in model.items() if st == UNACKED]
            if unacked:
                p = rnd.choice(unacked)
                s.ack(p)
                del model[p]
        elif op < 0.97:
            n = len(ready())
            assert s.purge() == n
            for p in ready():
                del model[p]
        else:
            s.close()
            s = open_store(tmp_path, **opts)
            model = {p: (r, READY) for p, (r, _st) in model.items() if r.persistent}
            recovered = set(model)
            assert s.recovered_position_limit == max(model, default=0)
        want = ready()
        assert len(s) == len(want)
        assert s.ready_bytes == sum(model[p][0].size for p in want)
        peeked = s.peek()
        assert (peeked[0] if peeked else None) == (want[0] if want else None)
    # finally: everything acked leaves nothing on disk
    while (item := s.shift()) is not None:
        s.ack(item[0])
    for p, (_r, st) in model.items():
        if st == UNACKED:
            s.ack(p)
    s.close()
    assert list(tmp_path.iterdir()) == []
