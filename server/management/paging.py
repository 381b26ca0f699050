"""Fast paging of the queue list: filter, sort and cut a page before building JSON.

``GET /api/queues?page=N&page_size=M[&name=..][&use_regex=true][&sort=..]`` with
10,000 queues would otherwise build 10,000 full queue objects to return 100.
When the sort column is one read straight off the queue (``CHEAP``), the page
is chosen from the queue objects and only its queues are turned into JSON;
the answer is the same as :func:`shape_list` would give. Other sort columns
take the general path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..safe_regex import RegexError, compile_safe

if TYPE_CHECKING:
    from ..queue import Queue

CHEAP: dict[str, Callable[[Queue], Any]] = {
    "name": lambda q: q.name,
    "vhost": lambda q: q.vhost.name,
    "messages": lambda q: len(q.store) + q.unacked,
    "messages_ready": lambda q: len(q.store),
    "messages_unacknowledged": lambda q: q.unacked,
    "consumers": lambda q: len(q.consumers),
    "durable": lambda q: q.durable,
    "auto_delete": lambda q: q.auto_delete,
    "exclusive": lambda q: q.exclusive,
}


class PageError(ValueError):
    """A bad paging parameter (the API answers 400 with this text)."""


def queue_page(queues: list[Queue], query: Any, to_json: Callable[[Queue], dict[str, Any]],
               shape: Callable[[list[dict[str, Any]], Any], Any]) -> dict[str, Any] | None:
    """The paged answer for ``queues``, or None when the general path must answer."""
    page = query.get("page")
    sort = query.get("sort") or ""
    if not page or (sort and sort not in CHEAP):
        return None
    try:
        p = max(1, int(page))
        size = max(1, min(500, int(query.get("page_size", "100"))))
    except ValueError:
        raise PageError("page and page_size must be integers") from None
    every = len(queues)
    name = query.get("name")
    if name:
        if query.get("use_regex") in ("true", "1"):
            try:
                rx = compile_safe(name)
            except RegexError as exc:
                raise PageError(f"invalid regex: {exc}") from None
            queues = [q for q in queues if rx.search(q.name)]
        else:
            queues = [q for q in queues if name in q.name]
    if sort:
        key = CHEAP[sort]
        queues = sorted(queues, key=key)
        if query.get("sort_reverse") in ("true", "1"):
            queues.reverse()
    total = len(queues)
    start = (p - 1) * size
    chunk = [to_json(q) for q in queues[start : start + size]]
    cols = query.get("columns")
    if cols:
        chunk = shape(chunk, {"columns": cols})
    return {
        "filtered_count": total,
        "item_count": len(chunk),
        "items": chunk,
        "page": p,
        "page_count": max(1, (total + size - 1) // size),
        "page_size": size,
        "total_count": every,
    }
