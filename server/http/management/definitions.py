"""Definitions export and import."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from warren.server.http.management import validate
from warren.server.http.management.common import (
    JSON_CT,
    Ctx,
    _bool,
    _json_object,
    bad_request,
    jresp,
    no_content,
)
from warren.server.model.definitions import export_definitions, import_definitions


async def definitions(c: Ctx) -> web.Response:
    c.admin()
    data = export_definitions(c.broker, durable_only=True)
    if "vhost" in c.params:
        if c.params["vhost"] not in c.broker.vhosts:
            raise bad_request("vhost_not_found")
        vh = c.params["vhost"]
        data = {
            "rabbit_version": data["rabbit_version"],
            "rabbitmq_version": data["rabbitmq_version"],
            "product_name": data["product_name"],
            "product_version": data["product_version"],
            **{k: [dict((kk, vv) for kk, vv in i.items() if kk != "vhost") for i in data[k] if i.get("vhost") == vh]
               for k in ("policies", "queues", "exchanges", "bindings")},
            "parameters": [],
        }
    r = jresp(data)
    if _bool(c.request.query.get("download")) or c.request.query.get("download"):
        r.headers["Content-Disposition"] = f'attachment; filename="{c.request.query.get("download")}"'
    return r


async def definitions_import(c: Ctx) -> web.Response:
    c.admin()
    body = await _definitions_body(c)
    if "file" in body and isinstance(body["file"], str):
        body = _json_object(body["file"])
    validate.definitions(body)
    if "vhost" in c.params:
        vh = c.vhost().name
        for k in ("policies", "queues", "exchanges", "bindings"):
            for i in body.get(k, []):
                i["vhost"] = vh
        body = {k: body.get(k, []) for k in ("policies", "queues", "exchanges", "bindings")}
    try:
        import_definitions(c.broker, body)
    except (KeyError, TypeError, ValueError) as exc:
        raise bad_request(f"invalid definitions: {exc}") from None
    c.broker.definitions_changed(True)
    return no_content()


async def _definitions_body(c: Ctx) -> dict[str, Any]:
    """RabbitMQ takes definitions as application/json or as a multipart/form-data
    upload (its web UI), and answers 415 to anything else: a plain HTML form
    (text/plain, urlencoded) must not be able to post them from another site."""
    ctype = c.request.content_type
    if ctype == JSON_CT:
        return await c.body()
    if ctype == "multipart/form-data":
        form = await c.request.post()
        f = form.get("file")
        raw = f.file.read() if hasattr(f, "file") else f
        if not isinstance(raw, (str, bytes)):
            raise bad_request("[{key_missing,file}]")
        return _json_object(raw)
    raise web.HTTPUnsupportedMediaType(body=b"")  # RabbitMQ: 415, empty body
