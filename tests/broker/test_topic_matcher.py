"""The topic exchange's matcher against a reference: RabbitMQ's topic semantics
translated to a regular expression (``*`` one word, ``#`` zero or more words,
words split on ``.``, empty words allowed, the empty key has no words).

In-process on purpose: this checks the trie automaton on thousands of random
binding sets and keys, which a client over TCP could not do in bounded time;
tests/broker/test_exchanges.py covers topic routing end to end.
"""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st
from warren.server.model.exchanges.topic import TopicExchange


def _words(key: str) -> list[str]:
    return key.split(".") if key else []


def reference(pattern: str, key: str) -> bool:
    """Each word becomes "." + word, so no words, one empty word and two empty words
    stay distinct; "*" is one such unit, "#" any number of them."""
    rx = []
    for w in _words(pattern):
        if w == "*":
            rx.append(r"\.[^.]*")
        elif w == "#":
            rx.append(r"(?:\.[^.]*)*")
        else:
            rx.append(re.escape("." + w))
    subject = "".join("." + w for w in _words(key))
    return re.fullmatch("".join(rx), subject) is not None


pattern_word = st.sampled_from(["a", "b", "", "*", "#", "ab"])
key_word = st.sampled_from(["a", "b", "", "ab", "*", "#"])
patterns = st.lists(pattern_word, max_size=7).map(".".join)
keys = st.lists(key_word, max_size=9).map(".".join)


@settings(max_examples=3000, deadline=None)
@given(st.lists(patterns, min_size=1, max_size=6), keys)
def test_matches_reference(pats, key):
    ex = TopicExchange(None, "t")
    for i, p in enumerate(pats):
        ex.bind(i, p, None)
    want = {i for i, p in enumerate(pats) if reference(p, key)}
    assert set(ex.match(key, None)) == want


@settings(max_examples=1000, deadline=None)
@given(st.lists(patterns, min_size=2, max_size=6), st.data(), keys)
def test_matches_reference_after_unbind(pats, data, key):
    """Unbinding prunes the trie (and the "*"/"#" shortcuts) without losing other bindings."""
    ex = TopicExchange(None, "t")
    for i, p in enumerate(pats):
        ex.bind(i, p, None)
    ex.match(key, None)  # fill the cache: unbind must clear it
    gone = data.draw(st.sets(st.integers(0, len(pats) - 1)))
    for i in gone:
        ex.unbind(i, pats[i], None)
    want = {i for i, p in enumerate(pats) if i not in gone and reference(p, key)}
    assert set(ex.match(key, None)) == want


def test_many_hashes_long_key_is_fast():
    """The attack of issue 12: ``#.#.#.#.#.z`` (and more) against a 120-word key took
    ~18 s per publish (x25 per extra "#") with backtracking, so this ran into the test
    timeout; the automaton does it in microseconds (no clock check here: the resilience
    test measures what clients see)."""
    ex = TopicExchange(None, "t")
    for n in range(1, 13):
        ex.bind(n, ".".join(["#"] * n) + ".z", None)
    key = ".".join(["w"] * 120)
    assert ex.match(key, None) == []
    assert sorted(ex.match(key + ".z", None)) == list(range(1, 13))
