"""A follower's map from the leader's record positions to its own, for the live records.

A dict cost ~138 bytes a record (two int objects and a hash slot): 1.4 GB of follower
RAM for 10 million queued messages that cost the leader nothing per record. Appends
come in the leader's position order (a store's positions only grow; a resync sends them
in order too), so the map is two parallel ``array('Q')`` in that order, 16 bytes a
record, looked up by bisection. An acked record's local position becomes 0 (no record
lives at offset 0 of a segment); the dead entries are cut off the front as a queue is
consumed in order, or squeezed out when they are half of the map.

Consumers mostly ack in delivery order, so lookups try the entry after the last one
found before bisecting: an ack costs about what a dict lookup does.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator

#: squeeze the dead entries out once they are this many and half of the map
_COMPACT_MIN = 4096


class PositionMap:
    """Leader position -> local position of each live record (module docstring)."""

    __slots__ = ("_origin", "_local", "_dead", "_hint", "_front")

    def __init__(self) -> None:
        self._origin = array("Q")
        self._local = array("Q")
        #: entries whose local position is 0 (acked)
        self._dead = 0
        #: where the next lookup looks first
        self._hint = 0
        #: every entry before this index is dead
        self._front = 0

    def __len__(self) -> int:
        return len(self._origin) - self._dead

    def _find(self, origin: int) -> int:
        """The index of ``origin``'s entry (live or dead), or -1."""
        keys = self._origin
        i = self._hint
        if i < len(keys) and keys[i] == origin:
            self._hint = i + 1
            return i
        i = bisect_left(keys, origin)
        if i < len(keys) and keys[i] == origin:
            self._hint = i + 1
            return i
        return -1

    def __contains__(self, origin: int) -> bool:
        i = self._find(origin)
        return i >= 0 and self._local[i] != 0

    def get(self, origin: int) -> int | None:
        i = self._find(origin)
        if i < 0 or not self._local[i]:
            return None
        return self._local[i]

    def newer(self, origin: int) -> bool:
        """``origin`` is past every position the map has held (an append not seen yet)."""
        keys = self._origin
        return not keys or origin > keys[-1]

    def add(self, origin: int, local: int) -> None:
        """Map ``origin`` to ``local`` (a known origin gets the new local position)."""
        if not local:
            raise ValueError("local position 0 is not a record")
        keys = self._origin
        if not keys or origin > keys[-1]:
            keys.append(origin)
            self._local.append(local)
            return
        i = bisect_left(keys, origin)
        if i < len(keys) and keys[i] == origin:
            if not self._local[i]:
                self._dead -= 1
            self._local[i] = local
        else:
            keys.insert(i, origin)  # out of order: not seen from a leader, but kept right
            self._local.insert(i, local)
            if self._hint > i:
                self._hint += 1
        self._front = min(self._front, i)

    def add_many(self, origins: list[int], locals_: list[int], ordered: bool = False) -> None:
        """``add`` each pair; one extend when they come after everything held, in order
        (``ordered``: the caller checked that they ascend)."""
        keys = self._origin
        if origins and len(origins) == len(locals_) and (not keys or origins[0] > keys[-1]) and (
            ordered or all(a < b for a, b in zip(origins, origins[1:], strict=False))
        ) and all(locals_):
            keys.extend(origins)
            self._local.extend(locals_)
            return
        for origin, local in zip(origins, locals_, strict=True):
            self.add(origin, local)

    def pop(self, origin: int, default: int | None = None) -> int | None:
        """Remove ``origin``'s entry and return its local position (``default`` if none)."""
        i = self._find(origin)
        if i < 0:
            return default
        local = self._local[i]
        if not local:
            return default
        self._local[i] = 0
        self._dead += 1
        self._trim()
        return local

    def pop_many(self, origins: Iterable[int]) -> list[int]:
        """``pop`` each origin (those not held are skipped); their local positions in order."""
        keys, vals = self._origin, self._local
        n = len(keys)
        i = self._hint
        out: list[int] = []
        dead = 0
        for origin in origins:
            if i >= n or keys[i] != origin:
                i = bisect_left(keys, origin)
                if i >= n or keys[i] != origin:
                    continue
            local = vals[i]
            if local:
                out.append(local)
                vals[i] = 0
                dead += 1
            i += 1
        self._hint = i
        if dead:
            self._dead += dead
            self._trim()
        return out

    def pop_upto(self, upto: int, keep: set[int]) -> list[int]:
        """Remove every entry with an origin up to ``upto`` but those in ``keep``; return
        their local positions in order."""
        keys, vals = self._origin, self._local
        out: list[int] = []
        for i in range(bisect_right(keys, upto)):
            local = vals[i]
            if local and keys[i] not in keep:
                out.append(local)
                vals[i] = 0
                self._dead += 1
        self._trim()
        return out

    def items(self) -> Iterator[tuple[int, int]]:
        """The live (origin, local) pairs in origin order."""
        return ((o, v) for o, v in zip(self._origin, self._local, strict=True) if v)

    def __iter__(self) -> Iterator[int]:
        return (o for o, _ in self.items())

    def update(self, pairs: Iterable[tuple[int, int]]) -> None:
        for origin, local in pairs:
            self.add(origin, local)

    def _trim(self) -> None:
        """Cut the dead front (in-order consumption) or squeeze out the dead (half)."""
        dead = self._dead
        if not dead:
            return
        vals = self._local
        n = len(vals)
        front = self._front
        while front < n and not vals[front]:
            front += 1
        self._front = front
        if front and (front == n or front >= max(_COMPACT_MIN, n // 8)):
            # amortised: at most 1/8 of the map moves per front entry cut
            del self._origin[:front]
            del vals[:front]
            self._dead -= front
            self._hint = max(0, self._hint - front)
            self._front = 0
            return
        if dead >= _COMPACT_MIN and dead * 2 >= n:
            keep = [i for i in range(n) if vals[i]]
            self._origin = array("Q", [self._origin[i] for i in keep])
            self._local = array("Q", [vals[i] for i in keep])
            self._dead = 0
            self._hint = 0
            self._front = 0
