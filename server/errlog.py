"""One-line descriptions of unexpected exceptions, for logs that a client can trigger.

A full traceback of a RecursionError is thousands of lines; a client able to
reach a broker bug repeatedly could flood the log with them. The innermost few
frames name the bug as well, on one line.
"""

from __future__ import annotations

import traceback

#: longest message text kept in a log line (client-supplied texts can be long)
MAX_TEXT = 300


def clip(text: str, limit: int = MAX_TEXT) -> str:
    """``text`` cut to ``limit`` characters (with a marker), for one bounded log line."""
    return text if len(text) <= limit else text[:limit] + "...(cut)"


def describe(exc: BaseException, frames: int = 3) -> str:
    """``Type: message [at file:line in func <- ...]`` with the innermost ``frames`` frames."""
    tb = traceback.extract_tb(exc.__traceback__)[-frames:]
    where = " <- ".join(f"{f.filename.rsplit('/', 2)[-1]}:{f.lineno} in {f.name}" for f in reversed(tb))
    msg = clip(str(exc).replace("\n", " "))
    return f"{type(exc).__name__}: {msg} [at {where}]" if where else f"{type(exc).__name__}: {msg}"
