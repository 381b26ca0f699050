"""PositionMap (a follower's leader -> local positions) against a dict, op by op."""

from __future__ import annotations

import random

import pytest
from warren.server.cluster.replication.positions import PositionMap


@pytest.mark.parametrize("seed", range(6))
def test_position_map_agrees_with_a_dict(seed):
    """Appends in order (batches), acks mostly in order with some out of order and some
    repeated, replays of known appends, purges keeping some: every answer as a dict's."""
    rnd = random.Random(seed)
    m, d = PositionMap(), {}
    origin, local = 1 << 40, 7 << 40
    for _ in range(3000):
        r = rnd.random()
        if r < 0.35:
            n = rnd.randrange(1, 60)
            origins, locals_ = [], []
            for _ in range(n):
                origin += rnd.randrange(16, 3000)
                local += rnd.randrange(16, 3000)
                origins.append(origin)
                locals_.append(local)
            fresh = [(o, v) for o, v in zip(origins, locals_, strict=True) if o not in d]
            assert [o for o in origins if o not in m] == [o for o, _ in fresh]
            m.add_many([o for o, _ in fresh], [v for _, v in fresh])
            d.update(fresh)
        elif r < 0.85 and d:
            keys = sorted(d)
            o = keys[0] if rnd.random() < 0.7 else rnd.choice(keys)
            if rnd.random() < 0.1:
                o += 1  # never appended
            if rnd.random() < 0.5:
                assert m.pop(o) == d.pop(o, None)
                assert m.pop(o) is None  # an ack repeated
            else:  # an ack op of several, some unknown or repeated
                group = sorted({o, *(rnd.choice(keys) for _ in range(rnd.randrange(0, 8)))})
                want = [d.pop(x) for x in group if x in d]
                assert m.pop_many(group + [group[0]]) == want
        elif r < 0.9 and d:
            # a replay of an append already held: known, not added twice
            o = rnd.choice(sorted(d))
            assert o in m and not m.newer(o)
        elif r < 0.93 and d:
            upto = rnd.choice(sorted(d))
            keep = {o for o in d if rnd.random() < 0.3}
            want = [d.pop(o) for o in sorted(d) if o <= upto and o not in keep]
            assert m.pop_upto(upto, keep) == want
        elif r < 0.95 and origin > (1 << 40) + 2:
            # an out-of-order add (not from a leader, but kept right)
            o = rnd.randrange(1 << 40, origin) | 1
            if o not in d:
                local += 32
                m.add(o, local)
                d[o] = local
        assert len(m) == len(d)
        if rnd.random() < 0.02:
            assert list(m.items()) == sorted(d.items())
    assert list(m.items()) == sorted(d.items())
    for o, v in d.items():
        assert m.get(o) == v


def test_in_order_acks_keep_the_map_small():
    """A queue consumed in order: the dead front is cut, the arrays stay near the live
    count instead of growing with everything ever appended."""
    m = PositionMap()
    nxt = 0
    for batch in range(2000):
        base = batch * 100
        m.add_many([base + i + 1 for i in range(100)], [base + i + 9 for i in range(100)])
        while len(m) > 5000:
            nxt += 1
            assert m.pop(nxt) == nxt + 8
    assert len(m) == 5000
    assert len(m._origin) < 5000 + 5000 // 4 + 4096 + 100
    with pytest.raises(ValueError):
        m.add(10**9, 0)
