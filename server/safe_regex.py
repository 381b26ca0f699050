"""Regular expressions from clients compiled with RE2 (linear-time matching, no
catastrophic backtracking), so a pattern such as ``(a+)+$`` cannot freeze the event
loop. RE2 has no backreferences or lookaround; such patterns are rejected."""

from __future__ import annotations

import re2

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # a bad pattern is the client's mistake: reported to it, not logged by RE2
_OPTIONS.max_mem = 8 << 20  # bounds the automaton a huge pattern can build


class RegexError(ValueError):
    """The pattern is not a valid (RE2) regular expression."""


def compile_safe(pattern: str) -> re2._Regexp:
    """Compile ``pattern`` for ``search``/``match`` in time linear in the subject."""
    try:
        return re2.compile(pattern, options=_OPTIONS)
    except re2.error as exc:
        msg = exc.args[0] if exc.args else exc
        raise RegexError(msg.decode(errors="replace") if isinstance(msg, bytes) else str(msg)) from None
