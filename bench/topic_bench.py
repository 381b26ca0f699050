"""Topic exchange micro-benchmark: ``TopicExchange.match`` in-process, no broker.

Scenarios (each a best-of-5 mean per call, µs):

* ``hit``      the same routing key again and again (served from the per-key cache);
* ``miss``     distinct keys every call (cache cleared each time): the trie walk itself,
               over a realistic binding set (exact keys, ``*`` and ``#`` patterns);
* ``attack``   ``#.#.#.#.#.z``-style bindings and a 100-word key, cache cleared each call.

Usage: ``python -m warren.bench.topic_bench [--bindings 1000] [--attack-hashes 5]``
"""

from __future__ import annotations

import argparse
import random
import time

from warren.server.model.exchanges.topic import TopicExchange


def _bindings(n: int, rng: random.Random) -> list[str]:
    words = ["stock", "usd", "eur", "nyse", "nasdaq", "quote", "trade", "a", "b", "c"]
    out = []
    for i in range(n):
        kind = i % 4
        base = [rng.choice(words) for _ in range(3)]
        if kind == 0:
            out.append(".".join(base))
        elif kind == 1:
            base[rng.randrange(3)] = "*"
            out.append(".".join(base))
        elif kind == 2:
            out.append(".".join(base[:2]) + ".#")
        else:
            out.append("#." + base[2])
    return out


def _per_call(fn, calls: int) -> float:
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        for i in range(calls):
            fn(i)
        best = min(best, (time.perf_counter() - t0) / calls)
    return best * 1e6


def run(n_bindings: int, hashes: int) -> dict[str, float]:
    rng = random.Random(7)
    ex = TopicExchange(None, "bench")
    for i, rk in enumerate(_bindings(n_bindings, rng)):
        ex.bind(f"q{i}", rk, None)
    keys = [f"stock.{rng.choice(['usd', 'eur'])}.{rng.choice(['nyse', 'a', 'quote'])}.{i}" for i in range(2000)]
    keys3 = [".".join(k.split(".")[:3]) for k in keys]

    def hit(i: int) -> None:
        ex.match("stock.usd.nyse", None)

    def miss(i: int) -> None:
        ex._cache.clear()
        ex.match(keys3[i % len(keys3)], None)

    attack_ex = TopicExchange(None, "attack")
    for h in range(1, hashes + 1):
        attack_ex.bind(f"a{h}", ".".join(["#"] * h) + ".z", None)
    long_key = ".".join(["w"] * 100)

    def attack(i: int) -> None:
        attack_ex._cache.clear()
        attack_ex.match(long_key, None)

    return {
        "hit_us": _per_call(hit, 20000),
        "miss_us": _per_call(miss, 2000),
        "attack_us": _per_call(attack, 5) if hashes <= 3 else _per_call(attack, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bindings", type=int, default=1000)
    ap.add_argument("--attack-hashes", type=int, default=5)
    a = ap.parse_args()
    for k, v in run(a.bindings, a.attack_hashes).items():
        print(f"{k:10s} {v:12.2f}")


if __name__ == "__main__":
    main()
