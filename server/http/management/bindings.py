"""Bindings: listing, create/delete (through model.commands)."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from warren.server.http.management import validate
from warren.server.http.management import views as V
from warren.server.http.management.common import (
    Ctx,
    _vhosts,
    actor,
    amqp_arguments,
    command,
    jresp,
    no_content,
    not_found,
)
from warren.server.model import commands as cmd


async def bindings(c: Ctx) -> web.Response:
    refs: list[tuple[Any, ...]] = []
    for vh in _vhosts(c):
        refs += [(vh, "", q, q.name, {}) for q in list(vh.queues.values())]
        refs += [(vh, ex.name, b.destination, b.routing_key, b.arguments)
                 for ex in list(vh.exchanges.values()) if ex.name for b in list(ex.bindings.values())]
    return await c.listing_async(refs, lambda _r: "", lambda r: V.binding_json(*r))


def _binding_ends(c: Ctx) -> Any:
    vh = c.vhost()
    src = vh.exchanges.get(c.params["source"])
    dtype = c.params["dtype"]
    if dtype == "q":
        dest: Any = vh.queues.get(c.params["dest"])
    elif dtype == "e":
        dest = vh.exchanges.get(c.params["dest"])
    else:
        raise not_found()
    if src is None or dest is None:
        raise not_found()
    return vh, src, dest


async def binding_list(c: Ctx) -> web.Response:
    vh = c.broker.vhosts.get(c.params["vhost"])
    if vh is None or c.params["source"] not in vh.exchanges:
        return c.listing([])
    vh, src, dest = _binding_ends(c)
    return c.listing([
        V.binding_json(vh, src.name, b.destination, b.routing_key, b.arguments)
        for b in src.bindings.values() if b.destination is dest
    ])


async def binding_create(c: Ctx) -> web.Response:
    """queue.bind / exchange.bind through the model's commands: their checks and
    errors, in their order (the default exchange is refused before existence)."""
    vh = c.vhost()
    dtype = c.params["dtype"]
    if dtype not in ("q", "e"):
        raise not_found()
    body = await c.body()
    rk = str(body.get("routing_key", ""))
    validate.name_length("routing_key", rk)
    args = amqp_arguments(validate.arguments(body.get("arguments")))
    source = "" if c.params["source"] == "amq.default" else c.params["source"]
    dest = c.params["dest"]
    if dtype == "q":
        command(cmd.queue_bind, vh, actor(c, vh), dest, source, rk, args)
    else:
        command(cmd.exchange_bind, vh, actor(c, vh), "" if dest == "amq.default" else dest, source, rk, args)
    pk = V.properties_key(rk, args)
    return no_content(201, location=f"{c.params['dest']}/{pk}")


def _find_binding(c: Ctx) -> Any:
    vh, src, dest = _binding_ends(c)
    for b in src.bindings.values():
        if b.destination is dest and V.properties_key(b.routing_key, b.arguments) == c.params["props"]:
            return vh, src, b
    raise not_found()


async def binding_get(c: Ctx) -> web.Response:
    vh, src, b = _find_binding(c)
    return jresp(V.binding_json(vh, src.name, b.destination, b.routing_key, b.arguments))


async def binding_delete(c: Ctx) -> web.Response:
    vh, src, b = _find_binding(c)
    unbind = cmd.queue_bind if c.params["dtype"] == "q" else cmd.exchange_bind
    command(unbind, vh, actor(c, vh), b.destination.name, src.name, b.routing_key, b.arguments, True)
    return no_content()
