"""Queues: listing, declare/delete/purge (through model.commands), bindings, get."""

from __future__ import annotations

import base64
from typing import Any

from aiohttp import web
from warren.server.http.management import validate
from warren.server.http.management import views as V
from warren.server.http.management.common import (
    Ctx,
    _bindings_to,
    _bool,
    _missing_vhost,
    _name,
    _vhosts,
    actor,
    amqp_arguments,
    bad_request,
    command,
    flag,
    jresp,
    no_content,
    not_found,
)
from warren.server.http.management.paging import CHEAP
from warren.server.http.management.publishing import props_json
from warren.server.model import commands as cmd
from warren.server.model.definitions import _jsonable


async def queues(c: Ctx) -> web.Response:
    objs = [q for vh in _vhosts(c) for q in list(vh.queues.values())]
    return await c.listing_async(objs, _name, lambda q: V.queue_json(c.broker, c.api.rates, q), CHEAP)


def _queue(c: Ctx) -> Any:
    vh = c.vhost()
    q = vh.queues.get(c.params["name"])
    if q is None:
        raise not_found()
    return vh, q


async def queue(c: Ctx) -> web.Response:
    _, q = _queue(c)
    return jresp(V.queue_json(c.broker, c.api.rates, q, detail=True))


async def queue_put(c: Ctx) -> web.Response:
    """queue.declare through the model's command (see exchanges.exchange_put)."""
    vh = c.vhost()
    name = c.params["name"]
    body = await c.body()
    validate.name_length("queue", name)
    args = amqp_arguments(validate.arguments(body.get("arguments")))
    _, created = command(
        cmd.queue_declare, vh, actor(c, vh), name, flag(body, "durable"), False, flag(body, "auto_delete"), args,
    )
    return no_content(201 if created else 204)


async def queue_delete(c: Ctx) -> web.Response:
    vh, q = _queue(c)  # 404 first: an AMQP delete of a missing queue is no error, the API's is
    qs = c.request.query
    command(cmd.queue_delete, vh, actor(c, vh), q.name, _bool(qs.get("if-unused")), _bool(qs.get("if-empty")))
    return no_content()


async def queue_purge(c: Ctx) -> web.Response:
    vh, q = _queue(c)
    command(cmd.queue_purge, vh, actor(c, vh), q.name)
    return no_content()


async def queue_bindings(c: Ctx) -> web.Response:
    if _missing_vhost(c):
        return c.listing([])
    vh, q = _queue(c)
    return c.listing([V.binding_json(vh, "", q, q.name, {}), *_bindings_to(vh, q)])


async def queue_get(c: Ctx) -> web.Response:
    vh, q = _queue(c)
    body = await c.body()
    try:
        count = int(body.get("count", 1))
    except (TypeError, ValueError):
        raise bad_request("count must be an integer") from None
    ackmode = body.get("ackmode") or ("ack_requeue_true" if _bool(body.get("requeue"), True) else "ack_requeue_false")
    if ackmode not in ("ack_requeue_true", "ack_requeue_false", "reject_requeue_true", "reject_requeue_false"):
        raise bad_request(f"invalid ackmode {ackmode!r}")
    encoding = body.get("encoding", "auto")
    truncate = body.get("truncate")
    taken = []
    for _ in range(max(0, count)):
        item = q.get()
        if item is None:
            break
        taken.append(item)
    out = []
    for i, (_pos, msg) in enumerate(taken):
        data = msg.body
        if truncate is not None:
            try:
                data = data[: int(truncate)]
            except (TypeError, ValueError):
                pass
        if encoding == "base64":
            payload, penc = base64.b64encode(data).decode(), "base64"
        else:
            try:
                payload, penc = data.decode("utf-8"), "string"
            except UnicodeDecodeError:
                payload, penc = base64.b64encode(data).decode(), "base64"
        out.append({
            "payload_bytes": msg.size,
            "redelivered": msg.redelivered,
            "exchange": msg.exchange,
            "routing_key": msg.routing_key,
            "message_count": len(q.store) + (len(taken) - i - 1),
            "properties": _jsonable(props_json(msg)),
            "payload": payload,
            "payload_encoding": penc,
        })
    requeue = ackmode.endswith("requeue_true")
    tracer = vh.trace
    if tracer:
        what = "requeued" if requeue else ("acked" if ackmode.startswith("ack") else "rejected")
        for _pos, msg in taken:
            tracer.record(vh, msg, "redelivered" if msg.redelivered else "delivered", queue=q.name,
                          method="management get", connection="management API")
        for _pos, msg in taken:
            tracer.record(vh, msg, what, queue=q.name, connection="management API")
    for pos, msg in reversed(taken):
        if requeue:
            q.requeue(pos, msg)
        elif ackmode.startswith("ack"):
            q.ack(pos)
        else:
            q.discard(pos, msg, "rejected")
    if not requeue:
        q.schedule_dispatch()
    return jresp(out)
