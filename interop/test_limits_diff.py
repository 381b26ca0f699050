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
    out: dict[str, Any] = {}
    set_limit("vhost", "/", "max-connections", 2)
    conns = [pika.BlockingConnection(pika.URLParameters(url)) for _ in range(2)]
    out["vhost_connections"] = _refused(url)
    set_limit("vhost", "/", "max-connections", -1)
    for c in conns:
        c.close()

    set_limit("vhost", "/", "max-queues", 1)
    conn = pika.BlockingConnection(pika.URLParameters(url))
    ch = conn.channel()
    ch.queue_declare(f"{p}.q1")
    ch.queue_declare(f"{p}.q1")
    try:
        ch.queue_declare(f"{p}.q2")
        out["vhost_queues"] = "declared"
    except pika.exceptions.ChannelClosedByBroker as exc:
        out["vhost_queues"] = [exc.reply_code, exc.reply_text.replace(p, "P")]
    set_limit("vhost", "/", "max-queues", -1)
    ch = conn.channel()
    ch.queue_delete(f"{p}.q1")
    conn.close()

    set_limit("user", "guest", "max-connections", 2)
    conns = [pika.BlockingConnection(pika.URLParameters(url)) for _ in range(2)]
    out["user_connections"] = _refused(url)
    set_limit("user", "guest", "max-connections", -1)
    set_limit("user", "guest", "max-channels", 3)
    conns[0].channel()
    conns[0].channel()
    conns[1].channel()
    try:
        conns[1].channel()
        out["user_channels"] = "opened"
    except pika.exceptions.ConnectionClosedByBroker as exc:
        out["user_channels"] = [exc.reply_code, exc.reply_text]
    out["other_connection_open"] = conns[0].is_open
    set_limit("user", "guest", "max-channels", -1)
    for c in conns:
        if c.is_open:
            c.close()
    return out


def _warren_limit(mgmt_port: int) -> Callable[[str, str, str, int], None]:
    auth = "Basic " + base64.b64encode(b"guest:guest").decode()

    def set_limit(kind: str, owner: str, name: str, value: int) -> None:
        owner_q = urllib.request.quote(owner, safe="")
        req = urllib.request.Request(
            f"http://127.0.0.1:{mgmt_port}/api/{kind}-limits/{owner_q}/{name}",
            data=json.dumps({"value": value}).encode(),
            method="PUT",
            headers={"Authorization": auth, "Content-Type": "application/json"},
        )
        urllib.request.urlopen(req, timeout=10).read()

    return set_limit


def _rabbit_limit(node: Any) -> Callable[[str, str, str, int], None]:
    def set_limit(kind: str, owner: str, name: str, value: int) -> None:
        if kind == "vhost":
            node.ctl("set_vhost_limits", "-p", owner, json.dumps({name: value}))
        else:
            node.ctl("set_user_limits", owner, json.dumps({name: value}))

    return set_limit


def test_limits_differential(warren, rabbitmq_node, prefix):
    from tests.brokerproc import wait_port

    wait_port(warren.mgmt_port)
    ours = run_limits(warren.url, prefix, _warren_limit(warren.mgmt_port))
    try:
        theirs = run_limits(rabbitmq_node.url, prefix, _rabbit_limit(rabbitmq_node))
    finally:
        rabbitmq_node.ctl("clear_vhost_limits", "-p", "/")
        rabbitmq_node.ctl("clear_user_limits", "guest", "all")
    assert ours == theirs
    assert ours["user_channels"][0] == 530 and ours["other_connection_open"] is True
