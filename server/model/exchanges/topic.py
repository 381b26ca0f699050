"""Topic exchange: a trie over dot-separated words, ``*`` one word, ``#`` zero or more.

Matching runs the trie as an automaton over a set of active nodes, each kept
once: the cost is at most O(words x trie nodes), whatever the wildcards (no
backtracking, so ``#.#.#.#.#.z`` against a 100-word key costs microseconds, not
seconds), and usually a few dict lookups per word. Results are cached per
routing key until the bindings change.
"""

from __future__ import annotations

from typing import Any

from warren.server.model.exchanges.base import Binding, Exchange

_CACHE_MAX = 4096


class _Node:
    __slots__ = ("children", "dests", "star", "hash", "is_hash")

    def __init__(self, is_hash: bool = False) -> None:
        self.children: dict[str, _Node] = {}
        # destination -> number of bindings ending here that point at it
        self.dests: dict[Any, int] = {}
        # the "*" and "#" children, looked up on every step of a match
        self.star: _Node | None = None
        self.hash: _Node | None = None
        #: reached through a "#": stays active while it swallows words
        self.is_hash = is_hash

    def child(self, word: str) -> _Node:
        node = self.children.get(word)
        if node is None:
            node = self.children[word] = _Node(word == "#")
            if word == "*":
                self.star = node
            elif word == "#":
                self.hash = node
        return node

    def drop(self, word: str) -> None:
        del self.children[word]
        if word == "*":
            self.star = None
        elif word == "#":
            self.hash = None


class TopicExchange(Exchange):
    """AMQP topic matching as RabbitMQ does it."""

    type_name = "topic"

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self._root = _Node()
        self._cache: dict[str, list[Any]] = {}

    def index_add(self, b: Binding) -> None:
        node = self._root
        for word in _words(b.routing_key):
            node = node.child(word)
        node.dests[b.destination] = node.dests.get(b.destination, 0) + 1
        self._cache.clear()

    def index_remove(self, b: Binding) -> None:
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
            path[i - 1].drop(words[i - 1])
        self._cache.clear()

    def match(self, routing_key: str, message: Any) -> Any:
        hit = self._cache.get(routing_key)
        if hit is not None:
            return hit
        result = _match(self._root, _words(routing_key))
        if len(self._cache) >= _CACHE_MAX:
            self._cache.clear()
        self._cache[routing_key] = result
        return result


def _words(key: str) -> list[str]:
    """As RabbitMQ: the empty key has no words ("*" does not match it); "a." is ["a", ""]."""
    return key.split(".") if key else []


def _closure(nodes: list[_Node]) -> list[_Node]:
    """The nodes plus those reachable through "#" edges ("#" matching no word), each once."""
    out: dict[_Node, None] = {}
    for node in nodes:
        while node is not None and node not in out:
            out[node] = None
            node = node.hash
    return list(out)


def _match(root: _Node, words: list[str]) -> list[Any]:
    """Destinations of all bindings matching ``words``.

    Simulates the trie as an automaton with a set of active nodes (each kept once),
    so the cost is O(words x trie nodes) whatever the wildcards: no backtracking,
    and no blow-up with patterns like ``#.#.#.#.z`` against long keys.
    """
    active = [root] if root.hash is None else _closure([root])
    for word in words:
        step: list[_Node] = []
        # a node can be reached twice in one step only through a "#" edge or a
        # literal "*"/"#" word: only then do we need _closure's dedup
        expand = word == "*" or word == "#"
        for node in active:
            if node.is_hash:
                step.append(node)  # "#" swallows this word too
            c = node.children.get(word)
            if c is not None:
                step.append(c)
                if c.hash is not None:
                    expand = True
            c = node.star
            if c is not None:
                step.append(c)
                if c.hash is not None:
                    expand = True
        if not step:
            return []
        # active stays closed under "#" edges: a staying "#" node's own "#" child
        # was active too and stays as well; only newly entered nodes add theirs
        active = _closure(step) if expand else step
    found: dict[Any, None] = {}
    for node in active:
        for d in node.dests:
            found[d] = None
    return list(found)
