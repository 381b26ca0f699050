"""Helpers shared by the interop scenarios: normalising observations, bounded waits."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

REPLY_TO = "amq.rabbitmq.reply-to"

_GEN = re.compile(r"amq\.gen-[A-Za-z0-9_\-]+")
_REPLY = re.compile(r"amq\.rabbitmq\.reply-to\.[A-Za-z0-9_\-.=+/]+")
_CTAG = re.compile(r"amq\.ctag-[A-Za-z0-9_\-]+")


def normalize(obj: Any, prefix: str) -> Any:
    """Replace what legitimately differs between two brokers or two runs.

    The test's unique prefix becomes ``<p>``; server-generated queue names,
    consumer tags and direct reply-to addresses become fixed placeholders.
    Tuples become lists (JSON round trips do the same).
    """
    if isinstance(obj, bytes):
        obj = obj.decode("utf-8", "replace")
    if isinstance(obj, str):
        s = obj.replace(prefix, "<p>")
        s = _REPLY.sub("amq.rabbitmq.reply-to.<token>", s)
        s = _GEN.sub("amq.gen-<id>", s)
        return _CTAG.sub("amq.ctag-<id>", s)
    if isinstance(obj, dict):
        return {normalize(k, prefix): normalize(v, prefix) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [normalize(v, prefix) for v in obj]
    return obj


def wait_until(cond: Callable[[], Any], timeout: float = 10.0, step: Callable[[], None] | None = None,
               what: str = "condition") -> Any:
    """Poll ``cond`` (calling ``step`` between polls, e.g. to pump a client's I/O)."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        if step is not None:
            step()
        else:
            time.sleep(0.01)


def diff(a: Any, b: Any, path: str = "") -> list[str]:
    """Human-readable differences between two normalised observations."""
    out: list[str] = []
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b), key=str):
            if k not in a:
                out.append(f"{path}/{k}: missing in first, second={b[k]!r}")
            elif k not in b:
                out.append(f"{path}/{k}: first={a[k]!r}, missing in second")
            else:
                out.extend(diff(a[k], b[k], f"{path}/{k}"))
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            out.extend(diff(x, y, f"{path}[{i}]"))
    elif a != b:
        out.append(f"{path}: {a!r} != {b!r}")
    return out


def assert_same(warren_obs: Any, rabbit_obs: Any) -> None:
    d = diff(warren_obs, rabbit_obs)
    assert not d, "warren vs RabbitMQ:\n" + "\n".join(d)
