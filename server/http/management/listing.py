"""Large management listings built without stalling the event loop.

``/api/queues`` with tens of thousands of queues used to build, filter, sort and
encode every queue's JSON in one go (seconds with the broker frozen). Here:

* the ``name`` filter (substring, or RE2 regex with ``use_regex``) runs on the
  object's name before any JSON is built;
* without ``sort``, with ``sort=name`` or another column read straight off the
  object (``cheap``, e.g. paging.CHEAP for queues) the page is cut before JSON
  is built, so ``page``/``page_size`` costs O(page) JSON;
* JSON is built and encoded in chunks of :data:`CHUNK` objects with a yield to
  the loop between chunks, so other clients are served meanwhile.

The query parameters and the paged reply are RabbitMQ's (``page``,
``page_size`` ≤ 500, ``name``, ``use_regex``, ``sort``, ``sort_reverse``,
``columns``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from typing import Any

from warren.server.core.safe_regex import RegexError, compile_safe

#: objects handled between two yields to the event loop
CHUNK = 50

#: RabbitMQ's management API answers compact JSON (no blank after ``,`` or ``:``)
COMPACT = (",", ":")


def dumps(data: Any, default: Any = None) -> str:
    """``data`` as JSON, laid out as RabbitMQ's management API lays it out."""
    return json.dumps(data, default=default, separators=COMPACT)


class ListingError(ValueError):
    """A query parameter the listing cannot use (answered 400)."""


def name_filter(query: Mapping[str, str]) -> Callable[[str], bool] | None:
    name = query.get("name")
    if not name:
        return None
    if query.get("use_regex") in ("true", "1"):
        try:
            rx = compile_safe(name)
        except RegexError as exc:
            raise ListingError(f"invalid regex: {exc}") from None
        return lambda n: rx.search(n) is not None
    return lambda n: name in n


def page_params(query: Mapping[str, str]) -> tuple[int, int] | None:
    page = query.get("page")
    if not page:
        return None
    try:
        return max(1, int(page)), max(1, min(500, int(query.get("page_size", "100"))))
    except ValueError:
        raise ListingError("page and page_size must be integers") from None


def _column(item: dict[str, Any], col: str) -> Any:
    cur: Any = item
    for part in col.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return cur


def sort_key(col: str) -> Callable[[dict[str, Any]], Any]:
    def key(i: dict[str, Any]) -> Any:
        v = _column(i, col)
        return (str(type(v)), v if v is not None else "")
    return key


def select_columns(items: list[dict[str, Any]], cols: str) -> list[dict[str, Any]]:
    wanted = [c for c in cols.split(",") if c]
    out = []
    for i in items:
        o: dict[str, Any] = {}
        for c in wanted:
            v = _column(i, c)
            if v is not None:
                cur = o
                parts = c.split(".")
                for p in parts[:-1]:
                    cur = cur.setdefault(p, {})
                cur[parts[-1]] = v
        out.append(o)
    return out


async def render(objs: list[Any], name_of: Callable[[Any], str], to_json: Callable[[Any], dict[str, Any]],
                 query: Mapping[str, str], default: Callable[[Any], Any],
                 cheap: Mapping[str, Callable[[Any], Any]] | None = None) -> bytes:
    """The JSON RabbitMQ would return for ``objs`` under ``query`` (a list, or a page object).

    Each object's JSON lives only while its chunk is encoded: a listing of 50k queues never
    holds 50k dicts at once (which would also make every garbage collection pass slow)."""
    total = len(objs)
    match = name_filter(query)
    if match is not None:
        objs = [o for o in objs if match(name_of(o))]
    sort = query.get("sort")
    reverse = query.get("sort_reverse") in ("true", "1")
    page = page_params(query)
    if sort == "name":
        objs = sorted(objs, key=name_of)
    elif sort and cheap and sort in cheap:  # a column read straight off the object: no JSON to sort
        objs = sorted(objs, key=cheap[sort])
    elif sort:
        key = sort_key(sort)
        keyed = []
        for i, o in enumerate(objs):
            if i and i % CHUNK == 0:
                await asyncio.sleep(0)
            keyed.append((key(to_json(o)), i))
        keyed.sort(key=lambda k: k[0])
        objs = [objs[i] for _k, i in keyed]
    if sort and reverse:
        objs.reverse()
    filtered = len(objs)
    if page is not None:
        start = (page[0] - 1) * page[1]
        objs = objs[start : start + page[1]]
    cols = query.get("columns")
    parts: list[str] = []
    for start in range(0, len(objs), CHUNK):
        if start:
            await asyncio.sleep(0)
        items = [to_json(o) for o in objs[start : start + CHUNK]]
        if cols:
            items = select_columns(items, cols)
        parts.append(dumps(items, default)[1:-1])
    body = "[" + ",".join(parts) + "]"
    if page is None:
        return body.encode()
    p, size = page
    head = {"filtered_count": filtered, "item_count": len(objs)}
    tail = {"page": p, "page_count": max(1, (filtered + size - 1) // size), "page_size": size, "total_count": total}
    return (dumps(head)[:-1] + ',"items":' + body + "," + dumps(tail)[1:]).encode()
