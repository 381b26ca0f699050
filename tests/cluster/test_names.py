"""Record names across terms (DESIGN §10.8): a promoted follower's stores keep the names
their records came with, and what it pushes is named past them."""

from __future__ import annotations

from pathlib import Path

import pytest
from warren.server.cluster.replication.follower import (
    ReplicaRecord,
    decode_replica,
    encode_replica,
    store_directory,
)
from warren.server.cluster.replication.store import ReplicatedLogStore, ReplicatedSource, open_ahead
from warren.storage.log import LogStore

from tests.cluster.test_replication import Rec

pytestmark = pytest.mark.timeout(30)


class Link:
    """What the store hands the replication leader, recorded."""

    seq = 0

    def __init__(self) -> None:
        self.ops: list[tuple] = []

    def flush_soon(self) -> None:
        pass

    def append(self, store: str, name: int, data: bytes) -> None:
        self.ops.append(("append", name, bytes(data)))

    def ack(self, store: str, name: int) -> None:
        self.ops.append(("ack", name))

    def purge(self, store: str, keep: list[int], upto: int) -> None:
        self.ops.append(("purge", keep, upto))


def test_skip_positions_renumbers_the_empty_write_segment_for_good(tmp_path):
    store = LogStore(tmp_path / "s", lambda r: r.data, lambda b: Rec(bytes(b)))
    far = (7 << 32) | 5000
    store.skip_positions(far)
    first = store.push(Rec(b"a"))
    assert first > far
    store.close()
    store = LogStore(tmp_path / "s", lambda r: r.data, lambda b: Rec(bytes(b)))
    assert store.shift()[0] == first
    assert store.push(Rec(b"b")) > first
    with pytest.raises(RuntimeError):
        store.skip_positions(far << 1)
    store.close()


def _replica_store(data_dir: Path, sid: str, names: list[int]) -> None:
    """A follower's store holding records named ``names`` (as it writes them)."""
    store = LogStore(store_directory(data_dir, sid), encode_replica, decode_replica)
    store.push_many([ReplicaRecord(n, n.to_bytes(8, "little") + f"m{n}".encode()) for n in names])
    store.close()


def test_a_promoted_store_names_copied_records_as_they_came_and_new_ones_past_them(tmp_path):
    names = [(9 << 32) | 100, (9 << 32) | 200, (9 << 32) | 300]
    _replica_store(tmp_path, "q", names)
    link = Link()
    source = ReplicatedSource()
    store = ReplicatedLogStore(tmp_path, "q", link, source, lambda r: r.data, lambda b: Rec(bytes(b)))
    try:
        pos, rec = store.shift()
        assert rec.data == b"m" + str(names[0]).encode()
        store.ack(pos)
        assert link.ops[-1] == ("ack", names[0])
        new = store.push(Rec(b"new"))
        assert new > names[-1]
        assert link.ops[-1] == ("append", new, b"new")
        # a full resync sends every record by its name
        batches = source.snapshot()[0].batches()
        store.flush_acks()
        sent = [item for batch in batches for item in batch]
        assert [n for n, _ in sent][-3:] == [names[1], names[2], new]
        # a purge keeps the delivered ones by name and covers up to the last name
        held, _ = store.shift()
        store.purge()
        assert link.ops[-1] == ("purge", [names[1]], new)
        store.ack(held)
        assert link.ops[-1] == ("ack", names[1])
    finally:
        store.close()


def test_a_purge_before_any_push_covers_the_records_the_store_was_opened_with(tmp_path):
    names = [(3 << 32) | 64, (3 << 32) | 128]
    _replica_store(tmp_path, "q", names)
    link = Link()
    store = ReplicatedLogStore(tmp_path, "q", link, ReplicatedSource(), lambda r: r.data,
                               lambda b: Rec(bytes(b)))
    try:
        assert store.purge() == 2
        assert link.ops == [("purge", [], names[-1])]
    finally:
        store.close()


def test_stores_opened_ahead_take_their_codecs_when_claimed(tmp_path):
    """A promoted follower recovers its stores in a worker thread before the model
    declares them (``open_ahead``); a store is usable once bound, and those nobody
    claims are closed and no longer offered to a full resync."""
    _replica_store(tmp_path, "q", [(2 << 32) | 64])
    _replica_store(tmp_path, "gone", [(2 << 32) | 64])
    source = ReplicatedSource()
    ahead = open_ahead(tmp_path, Link(), source)
    assert set(ahead) == {"q", "gone"} == set(source.stores)
    store = ahead.pop("q")
    with pytest.raises(RuntimeError):
        store.shift()
    store.bind(lambda r: r.data, lambda b: Rec(bytes(b)), cache_records=0)
    try:
        assert store.shift()[1].data == b"m" + str((2 << 32) | 64).encode()
        store.push(Rec(b"x"))
        for leftover in ahead.values():
            leftover.close()
        assert set(source.stores) == {"q"}
    finally:
        store.close()
