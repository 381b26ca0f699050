"""Regular expressions from clients and operators, matched in bounded time, so a pattern
such as ``(a+)+$`` cannot freeze the event loop.

* :func:`compile_safe` compiles with RE2 (linear-time matching), refusing what RE2
  cannot do (the management API's ``use_regex`` filters).
* :func:`compile_user` is for policy and permission patterns, which RabbitMQ matches
  with PCRE and whose documented idioms need lookahead (``^(?!amq\\.).*``), which RE2
  lacks. Python's backtracking ``re`` is used only where its cost is provably small:
  at most ``MAX_FALLBACK_LEN`` characters, no nested quantifiers (a variable repeat
  may only repeat one character, a character class or ``.``) and few variable
  repeats, so a search over a 255-character name (every AMQP name and routing key
  is a short string) takes at most n^2 steps (0.2 ms) with one repeat, n^3 (5 ms)
  with two. Patterns with at most one repeat use ``re`` (0.2 us a search, where RE2
  through its Python binding takes 6 us: a write permission is checked on every
  publish); others use RE2 (linear) when RE2 can match them, else ``re`` when they
  have at most ``MAX_FALLBACK_REPEATS`` repeats; the rest are refused, with the
  reason, when they are set.
"""

from __future__ import annotations

import functools
import re
import re._constants as _c
import re._parser as _p
from typing import Any, Protocol

import re2

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # a bad pattern is the client's mistake: reported to it, not logged by RE2
_OPTIONS.max_mem = 8 << 20  # bounds the automaton a huge pattern can build

#: the longest pattern matched by the backtracking fallback
MAX_FALLBACK_LEN = 256
#: the most variable repeats (*, +, ?, {m,n}) a fallback pattern may hold
MAX_FALLBACK_REPEATS = 2

_REPEATS = (_c.MAX_REPEAT, _c.MIN_REPEAT, _c.POSSESSIVE_REPEAT)
#: what a variable repeat may repeat in the fallback: exactly one character
_ATOMS = (_c.LITERAL, _c.NOT_LITERAL, _c.ANY, _c.IN)


class RegexError(ValueError):
    """The pattern is not a valid (RE2) regular expression, or is refused as unsafe."""


class Matcher(Protocol):
    """What policy and permission checks use of a compiled pattern."""

    def search(self, subject: str) -> Any: ...


def compile_safe(pattern: str) -> re2._Regexp:
    """Compile ``pattern`` for ``search``/``match`` in time linear in the subject."""
    try:
        return re2.compile(pattern, options=_OPTIONS)
    except re2.error as exc:
        msg = exc.args[0] if exc.args else exc
        raise RegexError(msg.decode(errors="replace") if isinstance(msg, bytes) else str(msg)) from None


def _items(op: Any, av: Any) -> list:
    """The sub-patterns directly inside one parsed node."""
    if op in _REPEATS:
        return [av[2]]
    if op is _c.SUBPATTERN:
        return [av[3]]
    if op in (_c.ASSERT, _c.ASSERT_NOT):
        return [av[1]]
    if op is _c.BRANCH:
        return list(av[1])
    if op is _c.ATOMIC_GROUP:
        return [av]
    if op is _c.GROUPREF_EXISTS:
        return [p for p in av[1:] if p is not None]
    return []


def _single_char(sub: Any) -> bool:
    """``sub`` matches exactly one character (possibly inside plain groups)."""
    while len(sub) == 1 and sub[0][0] is _c.SUBPATTERN:
        sub = sub[0][1][3]
    return len(sub) == 1 and sub[0][0] in _ATOMS


def _has_repeat(sub: Any) -> bool:
    for op, av in sub:
        if op in _REPEATS and av[0] != av[1]:
            return True
        if any(_has_repeat(s) for s in _items(op, av)):
            return True
    return False


def backtracking_risk(pattern: str, max_repeats: int = MAX_FALLBACK_REPEATS) -> str | None:
    """Why the backtracking matcher could take long on ``pattern``; None if it cannot."""
    if len(pattern) > MAX_FALLBACK_LEN:
        return f"pattern longer than {MAX_FALLBACK_LEN} characters that RE2 cannot match"
    try:
        tree = _p.parse(pattern)
    except (re.error, RecursionError, OverflowError, ValueError) as exc:
        return str(exc)
    repeats = 0
    stack = [tree]
    while stack:
        for op, av in stack.pop():
            if op in _REPEATS:
                variable = av[0] != av[1]
                if variable:
                    repeats += 1
                    if not _single_char(av[2]):
                        return "nested quantifier (a repeated group) in a pattern RE2 cannot match"
                elif _has_repeat(av[2]):
                    return "nested quantifier (a repeated group) in a pattern RE2 cannot match"
            stack.extend(_items(op, av))
    if repeats > max_repeats:
        return f"more than {max_repeats} variable repeats in a pattern RE2 cannot match"
    return None


@functools.lru_cache(maxsize=4096)
def compile_user(pattern: str) -> Matcher:
    """A policy or permission pattern ready to ``search``: ``re`` when its backtracking
    is small, else RE2, else ``re`` when its backtracking is bounded (see the module
    docstring). Raises :class:`RegexError` (with the reason) for an invalid or
    refused pattern."""
    try:
        rx = re.compile(pattern)
    except (re.error, RecursionError, OverflowError, ValueError) as exc:
        raise RegexError(str(exc)) from None
    if backtracking_risk(pattern, max_repeats=1) is None:
        return rx
    try:
        return compile_safe(pattern)
    except RegexError:
        pass  # lookaround, backreference, or a syntax only PCRE/re has
    reason = backtracking_risk(pattern)
    if reason is not None:
        raise RegexError(reason)
    return rx
