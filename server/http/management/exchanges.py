"""Exchanges: listing, declare/delete (through model.commands), their bindings, publish, delayed messages."""

from __future__ import annotations

import base64
import binascii

from aiohttp import web
from warren.protocol.hotpath import shortstr
from warren.protocol.methods import encode_header
from warren.protocol.properties import scan
from warren.server.http.management import delayed as D
from warren.server.http.management import validate
from warren.server.http.management import views as V
from warren.server.http.management.common import (
    Ctx,
    _bindings_to,
    _bool,
    _exchange,
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
)
from warren.server.http.management.publishing import _properties
from warren.server.model import commands as cmd
from warren.server.model.exchanges import DelayedExchange
from warren.server.model.message import Message
from warren.server.model.publish import MANAGEMENT


async def exchanges(c: Ctx) -> web.Response:
    objs = [ex for vh in _vhosts(c) for ex in list(vh.exchanges.values())]
    return await c.listing_async(objs, _name, lambda ex: V.exchange_json(c.api.rates, ex))


async def exchange(c: Ctx) -> web.Response:
    _, ex = _exchange(c)
    out = V.exchange_json(c.api.rates, ex)
    out["incoming"] = []
    out["outgoing"] = []
    return jresp(out)


async def exchange_put(c: Ctx) -> web.Response:
    """exchange.declare through the model's command, as RabbitMQ's management plugin
    runs it on an internal channel (authz.py checked the user's permissions)."""
    vh = c.vhost()
    name = c.params["name"]
    body = await c.body()
    etype = body.get("type") or "direct"  # RabbitMQ's management plugin: direct when not given
    validate.name_length("exchange", name)
    args = amqp_arguments(validate.arguments(body.get("arguments")))
    _, created = command(
        cmd.exchange_declare, vh, actor(c, vh), "" if name == "amq.default" else name, str(etype),
        flag(body, "durable"), flag(body, "auto_delete"), flag(body, "internal"), args,
    )
    return no_content(201 if created else 204)


async def exchange_delete(c: Ctx) -> web.Response:
    vh, ex = _exchange(c)  # 404 first: an AMQP delete of a missing exchange is no error, the API's is
    command(cmd.exchange_delete, vh, actor(c, vh), ex.name, _bool(c.request.query.get("if-unused")))
    return no_content()


async def exchange_bindings_source(c: Ctx) -> web.Response:
    if _missing_vhost(c):
        return c.listing([])
    vh, ex = _exchange(c)
    if not ex.name:  # the default exchange's implicit binding to every queue
        return await c.listing_async(list(vh.queues.values()), lambda _q: "",
                                     lambda q: V.binding_json(vh, "", q, q.name, {}))
    return await c.listing_async(list(ex.bindings.values()), lambda _b: "",
                                 lambda b: V.binding_json(vh, ex.name, b.destination, b.routing_key, b.arguments))


async def exchange_bindings_destination(c: Ctx) -> web.Response:
    if _missing_vhost(c):
        return c.listing([])
    vh, ex = _exchange(c)
    return c.listing(_bindings_to(vh, ex))


async def publish(c: Ctx) -> web.Response:
    vh, ex = _exchange(c)
    body = await c.body()
    for k in ("routing_key", "payload", "payload_encoding", "properties"):
        if k not in body:
            raise bad_request(f"[{{key_missing,{k}}}]")
    enc = body.get("payload_encoding")
    payload = body["payload"]
    if not isinstance(payload, str):
        raise bad_request("payload_not_string")  # RabbitMQ's reason
    if enc == "base64":
        try:
            data = base64.b64decode(payload)
        except (binascii.Error, ValueError):
            raise bad_request("not_base64") from None
    elif enc == "string":
        data = str(payload).encode()
    else:
        raise bad_request(f"invalid payload_encoding {enc!r}")
    rk = str(body["routing_key"])
    validate.name_length("routing_key", rk)
    try:
        header = encode_header(len(data), _properties(validate.properties(body.get("properties"))))
    except (TypeError, ValueError, OverflowError, OSError) as exc:  # values AMQP cannot carry
        raise bad_request(f"invalid properties: {exc}") from None
    msg = Message(ex.name, rk, shortstr(ex.name) + shortstr(rk), header, data, scan(header))
    res = vh.publish(ex, rk, msg, None, MANAGEMENT)
    if res.refused:  # RabbitMQ publishes with confirms: a queue's reject-publish is a nack
        raise bad_request("rejected Unable to publish message. Check queue limits.")
    return jresp({"routed": res.routed})


async def delayed(c: Ctx) -> web.Response:
    return c.listing([D.summary(ex) for ex in D.delayed_exchanges(_vhosts(c))])


async def delayed_pending(c: Ctx) -> web.Response:
    _, ex = _exchange(c)
    if not isinstance(ex, DelayedExchange):
        raise bad_request(f"exchange '{ex.name}' is not an x-delayed-message exchange")
    try:
        limit = int(c.request.query.get("limit", "100"))
    except ValueError:
        raise bad_request("limit must be an integer") from None
    return jresp(D.pending(ex, limit))
