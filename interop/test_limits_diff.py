"""Vhost and user limits, differential: the same clients hit the same limits on warren
(set through its management API) and RabbitMQ 3.10 (set with rabbitmqctl), and see
the same refusals: codes, texts, and which connection or channel is closed."""

from __future__ import annotations

import base64
import json
import urllib.request
from collections.abc import Callable
from typing import Any

import pika


def _refused(url: str) -> str:
    try:
        pika.BlockingConnection(pika.URLParameters(url)).close()
    except pika.exceptions.AMQPConnectionError as exc:
        text = str(exc)
        return text[text.index("(530)") :]
    return "connected"


def run_limits(url: str, p: str, set_limit: Callable[[str, str, str, int], None]) -> dict[str, Any]:
    """``url`` logs in as user ``p`` on vhost ``p`` (both made for this test, so that
    what other tests left on a shared node does not count against the limits)."""
    out: dict[str, Any] = {}
    vh, user = p, p
    set_limit("vhost", vh, "max-connections", 2)
    conns = [pika.BlockingConnection(pika.URLParameters(url)) for _ in range(2)]
    out["vhost_connections"] = _refused(url).replace(p, "P")
    set_limit("vhost", vh, "max-connections", -1)
    for c in conns:
        c.close()

    set_limit("vhost", vh, "max-queues", 1)
    conn = pika.BlockingConnection(pika.URLParameters(url))
    ch = conn.channel()
    ch.queue_declare(f"{p}.q1")
    ch.queue_declare(f"{p}.q1")
    try:
        ch.queue_declare(f"{p}.q2")
        out["vhost_queues"] = "declared"
    except pika.exceptions.ChannelClosedByBroker as exc:
        out["vhost_queues"] = [exc.reply_code, exc.reply_text.replace(p, "P")]
    set_limit("vhost", vh, "max-queues", -1)
    ch = conn.channel()
    ch.queue_delete(f"{p}.q1")
    conn.close()

    set_limit("user", user, "max-connections", 2)
    conns = [pika.BlockingConnection(pika.URLParameters(url)) for _ in range(2)]
    out["user_connections"] = _refused(url).replace(p, "P")
    set_limit("user", user, "max-connections", -1)
    set_limit("user", user, "max-channels", 3)
    conns[0].channel()
    conns[0].channel()
    conns[1].channel()
    try:
        conns[1].channel()
        out["user_channels"] = "opened"
    except pika.exceptions.ConnectionClosedByBroker as exc:
        out["user_channels"] = [exc.reply_code, exc.reply_text.replace(p, "P")]
    out["other_connection_open"] = conns[0].is_open
    set_limit("user", user, "max-channels", -1)
    for c in conns:
        if c.is_open:
            c.close()
    return out


def _warren_put(mgmt_port: int, path: str, body: dict[str, Any]) -> None:
    req = urllib.request.Request(
        f"http://127.0.0.1:{mgmt_port}/api/{path}",
        data=json.dumps(body).encode(),
        method="PUT",
        headers={
            "Authorization": "Basic " + base64.b64encode(b"guest:guest").decode(),
            "Content-Type": "application/json",
        },
    )
    urllib.request.urlopen(req, timeout=10).read()


def _warren_limit(mgmt_port: int) -> Callable[[str, str, str, int], None]:
    def set_limit(kind: str, owner: str, name: str, value: int) -> None:
        owner_q = urllib.request.quote(owner, safe="")
        _warren_put(mgmt_port, f"{kind}-limits/{owner_q}/{name}", {"value": value})

    return set_limit


def _rabbit_limit(node: Any) -> Callable[[str, str, str, int], None]:
    def set_limit(kind: str, owner: str, name: str, value: int) -> None:
        if kind == "vhost":
            node.ctl("set_vhost_limits", "-p", owner, json.dumps({name: value}))
        else:
            node.ctl("set_user_limits", owner, json.dumps({name: value}))

    return set_limit


def _url(port: int, p: str) -> str:
    return f"amqp://{p}:secret@127.0.0.1:{port}/{urllib.request.quote(p, safe='')}"


def test_limits_differential(warren, rabbitmq_node, prefix):
    from tests.brokerproc import wait_port

    wait_port(warren.mgmt_port)
    _warren_put(warren.mgmt_port, f"vhosts/{prefix}", {})
    _warren_put(warren.mgmt_port, f"users/{prefix}", {"password": "secret", "tags": ""})
    _warren_put(
        warren.mgmt_port,
        f"permissions/{prefix}/{prefix}",
        {"configure": ".*", "write": ".*", "read": ".*"},
    )
    ours = run_limits(_url(warren.port, prefix), prefix, _warren_limit(warren.mgmt_port))
    node = rabbitmq_node
    node.ctl("add_vhost", prefix)
    node.ctl("add_user", prefix, "secret")
    try:
        node.ctl("set_permissions", "-p", prefix, prefix, ".*", ".*", ".*")
        theirs = run_limits(_url(node.port, prefix), prefix, _rabbit_limit(node))
    finally:
        node.ctl("delete_user", prefix)
        node.ctl("delete_vhost", prefix)
    assert ours == theirs
    assert ours["user_channels"][0] == 530 and ours["other_connection_open"] is True
