"""One-line descriptions of unexpected exceptions, for logs that a client can trigger.

A full traceback of a RecursionError is thousands of lines; a client able to
reach a broker bug repeatedly could flood the log with them. The innermost few
frames name the bug as well, on one line.
"""

from __future__ import annotations

import logging
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


class OneLineErrors(logging.Filter):
    """Turns a record's traceback into one line (for aiohttp's "Error handling request",
    logged at ERROR with a traceback for every HTTP request it cannot parse: a client's
    mistake, so INFO and one line; other exceptions keep their level)."""

    def filter(self, record: logging.LogRecord) -> bool:
        info = record.exc_info
        if info and info[1] is not None:
            exc = info[1]
            record.msg = f"{clip(record.getMessage())}: {describe(exc, frames=1)}"
            record.args = ()
            record.exc_info = None
            record.exc_text = None
            if _is_bad_http(exc):
                record.levelno, record.levelname = logging.INFO, "INFO"
        return True


def _is_bad_http(exc: BaseException) -> bool:
    try:
        from aiohttp.http_exceptions import HttpProcessingError
    except ImportError:  # pragma: no cover - aiohttp is a dependency
        return False
    return isinstance(exc, HttpProcessingError)
