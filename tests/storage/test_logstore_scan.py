"""storage.log.scan.live_positions: what a replication resync sends (persistent, not acked)."""

from __future__ import annotations

from warren.storage.log import LogStore
from warren.storage.log.scan import live_positions

from tests.storage.logstore_helpers import dec, enc, rec


def test_live_positions_across_segments_acks_purge_and_restart(tmp_path):
    store = LogStore(tmp_path / "q", enc, dec, segment_size=256)
    pos = [store.push(rec(i, persistent=i % 5 != 0)) for i in range(40)]
    persistent = [p for i, p in enumerate(pos) if i % 5 != 0]
    assert live_positions(store) == persistent  # buffered, several segments

    taken = [store.shift()[0] for _ in range(6)]  # delivered, not acked: still live
    store.ack(taken[1])
    store.ack(taken[2])
    want = [p for p in persistent if p not in (taken[1], taken[2])]
    assert live_positions(store) == want

    store.close()
    again = LogStore(tmp_path / "q", enc, dec, segment_size=256)
    assert live_positions(again) == want  # recovered segments; transient ones gone
    extra = again.push(rec(99))
    assert live_positions(again) == [*want, extra]
    assert again.purge() == len(want) + 1
    assert live_positions(again) == []
    again.close()


def test_scan_records_matches_live_positions_and_read(tmp_path):
    """scan_records (a resync's bulk read) gives what live_positions + read(raw) give."""
    from warren.storage.log.scan import scan_records

    store = LogStore(tmp_path / "q", enc, dec, segment_size=512)
    for i in range(60):
        store.push(rec(i, persistent=i % 7 != 0, pad=i))
    taken = [store.shift()[0] for _ in range(5)]
    store.ack(taken[3])
    # read() serves records still in the tail cache as objects: encode those
    want = [(p, r if isinstance(r := store.read(p, bytes), bytes) else store.encode(r))
            for p in live_positions(store)]
    batches = list(scan_records(store.scan_plan(), batch_bytes=64))
    assert len(batches) > 1  # in batches of about 64 bytes
    assert [r for b in batches for r in b] == want
    skipped = [r for b in scan_records(store.scan_plan(), skip=2) for r in b]
    assert skipped == [(p, raw[2:]) for p, raw in want]
    store.close()
