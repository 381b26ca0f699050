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
