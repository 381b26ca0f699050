"""``LogStore.push_many`` against ``push``: the same positions, file bytes, counts and
records after a restart, across segment boundaries, with and without the tail cache."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from logstore_helpers import drain_nums, open_store, rec, segment_files


def _records(n: int, seed: int) -> list:
    rnd = random.Random(seed)
    return [rec(i, persistent=rnd.random() < 0.8, pad=rnd.randrange(0, 300)) for i in range(n)]


def _files(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(d.iterdir()) if p.is_file()}


@pytest.mark.parametrize("options", [
    {"segment_size": 4096, "cache_records": 0},
    {"segment_size": 4096, "cache_records": 16},
    {},  # the defaults: one segment, the whole tail cached
])
def test_push_many_is_push_in_a_loop(tmp_path: Path, options: dict) -> None:
    records = _records(600, 7)
    one, many = open_store(tmp_path / "one", **options), open_store(tmp_path / "many", **options)
    by_one = [one.push(r) for r in records]
    by_many: list[int] = []
    for k in range(0, len(records), 37):  # uneven batches, across segment boundaries
        got = many.push_many(records[k:k + 37])
        assert got == by_one[k:k + 37]
        by_many += got
    assert by_many == by_one
    assert (len(many), many.ready_bytes) == (len(one), one.ready_bytes)
    # read back through the cache or the files, then acked alike
    for _ in range(250):
        a, b = one.shift(), many.shift()
        assert a == b
        one.ack(a[0])
        many.ack(b[0])
    one.close()
    many.close()
    assert _files(tmp_path / "one") == _files(tmp_path / "many")
    if options:
        assert len(segment_files(tmp_path / "many")) > 3
    again = open_store(tmp_path / "many", **options)
    # the first 250 were acked; of the rest, the persistent ones came back
    assert drain_nums(again) == [i for i in range(250, len(records)) if records[i].persistent]
    again.close()


def test_a_failing_record_leaves_the_pushed_ones_counted(tmp_path: Path) -> None:
    s = open_store(tmp_path, segment_size=4096, cache_records=0)
    records = _records(50, 3)
    records[30] = object()  # the codec fails on it
    out: list[int] = []
    with pytest.raises(AttributeError):
        s.push_many(records, out)
    assert len(out) == 30 and len(s) == 30
    assert [s.shift()[0] for _ in range(30)] == out and s.shift() is None
    s.close()
