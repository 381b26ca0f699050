"""Topic exchange: a trie over dot-separated words, ``*`` one word, ``#`` zero or more.

Matching walks the trie (cost grows with the key's length and the wildcards on
the path, not with the number of bindings), and results are cached per routing
key until the bindings change.
"""

from __future__ import annotations

from typing import Any

from .base import Binding, Exchange

_CACHE_MAX = 4096


class _Node:
    __slots__ = ("children", "dests")

    def __init__(self) -> None:
        self.children: dict[str, _Node] = {}
        # destination -> number of bindings ending here that point at it
        self.dests: dict[Any, int] = {}


class TopicExchange(Exchange):
    """AMQP topic matching as RabbitMQ does it."""

    type_name = "topic"

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self._root = _Node()
        self._cache: dict[str, list[Any]] = {}

    def _index_add(self, b: Binding) -> None:
        node = self._root
        for word in _words(b.routing_key):
            node = node.children.setdefault(word, _Node())
        node.dests[b.destination] = node.dests.get(b.destination, 0) + 1
        self._cache.clear()

    def _index_remove(self, b: Binding) -> None:
        path = [self._root]
        words = _words(b.routing_key)
        for word in words:
            path.append(path[-1].children[word])
        leaf = path[-1]
        n = leaf.dests[b.destination] - 1
        if n:
            leaf.dests[b.destination] = n
        else:
            del leaf.dests[b.destination]
        # prune empty nodes bottom-up
        for i in range(len(words), 0, -1):
            node = path[i]
            if node.dests or node.children:
                break
            del path[i - 1].children[words[i - 1]]
        self._cache.clear()

    def match(self, routing_key: str, message: Any) -> Any:
        hit = self._cache.get(routing_key)
        if hit is not None:
            return hit
        found: dict[Any, None] = {}
        _walk(self._root, _words(routing_key), 0, found)
        result = list(found)
        if len(self._cache) >= _CACHE_MAX:
            self._cache.clear()
        self._cache[routing_key] = result
        return result


def _words(key: str) -> list[str]:
    """As RabbitMQ: the empty key has no words ("*" does not match it); "a." is ["a", ""]."""
    return key.split(".") if key else []


def _words(key: str) -> list[str]:
    """As RabbitMQ: the empty key has no words ("*" does not match it); "a." is ["a", ""]."""
    return key.split(".") if key else []


def _words(key: str) -> list[str]:
    """As RabbitMQ: the empty key has no words ("*" does not match it); "a." is ["a", ""]."""
    return key.split(".") if key else []


def _words(key: str) -> list[str]:
    """As RabbitMQ: the empty key has no words ("*" does not match it); "a." is ["a", ""]."""
    return key.split(".") if key else []


def _walk(node: _Node, words: list[str], i: int, found: dict[Any, None]) -> None:
    n = len(words)
    if i == n:
        for d in node.dests:
            found[d] = None
        h = node.children.get("#")
        if h is not None:
            _walk(h, words, i, found)
        return
    child = node.children.get(words[i])
    if child is not None:
        _walk(child, words, i + 1, found)
    star = node.children.get("*")
    if star is not None:
        _walk(star, words, i + 1, found)
    h = node.children.get("#")
    if h is not None:
        # '#' swallows zero or more words
        for j in range(i, n + 1):
            _walk(h, words, j, found)
