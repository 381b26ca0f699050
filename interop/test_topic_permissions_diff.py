"""Topic permissions, differential: the same publishes and bindings against warren
(permissions set through its management API) and RabbitMQ 3.10 (``rabbitmqctl
set_topic_permissions``), on a vhost and user made for the test; the outcomes
(ok, or the channel error's code and text) must be the same."""

from __future__ import annotations

import urllib.request
from typing import Any

import aiormq

from interop.test_limits_diff import _url, _warren_put

# exchange -> (write, read)
PERMS = {
    "t.anchored": (r"^a\.", r"^r\."),
    "t.search": ("ok", "ok"),  # not anchored: searched in the routing key
    "t.user": (r"^{username}\.", r"^{vhost}\."),
}


async def run_topic(url: str, p: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    conn = await aiormq.connect(url)
    try:
        ch = await conn.channel()
        for ex in (*PERMS, "t.free"):
            await ch.exchange_declare(ex, exchange_type="topic")
        await ch.exchange_declare("d.direct", exchange_type="direct")
        q = (await ch.queue_declare("", exclusive=True)).queue
        cases = [
            ("publish", "t.anchored", "a.ok"),
            ("publish", "t.anchored", "b.no"),
            ("publish", "t.search", "x.ok.y"),
            ("publish", "t.search", "x.no"),
            ("publish", "t.user", f"{p}.mine"),
            ("publish", "t.user", "other.mine"),
            ("publish", "t.free", "anything"),
            ("publish", "d.direct", "b.no"),
            ("bind", "t.anchored", "r.ok"),
            ("bind", "t.anchored", "x.no"),
            ("unbind", "t.anchored", "x.no"),
            ("bind", "t.user", f"{p}.mine"),
            ("bind", "t.user", "else.mine"),
            ("bind", "t.free", "x.no"),
        ]
        for what, ex, key in cases:
            ch = await conn.channel(publisher_confirms=True)
            try:
                if what == "publish":
                    await ch.basic_publish(b"x", exchange=ex, routing_key=key)
                elif what == "bind":
                    await ch.queue_bind(q, ex, routing_key=key)
                else:
                    await ch.queue_unbind(q, ex, routing_key=key)
                res: Any = "ok"
            except aiormq.exceptions.AMQPChannelError as exc:
                res = exc.args[0].replace(p, "P")
            except aiormq.exceptions.DeliveryError as exc:
                res = f"delivery error {exc}"
            out[f"{what} {ex} {key.replace(p, 'P')}"] = res
    finally:
        await conn.close()
    return out


async def test_topic_permissions_differential(warren, rabbitmq_node, prefix):
    from tests.brokerproc import wait_port

    wait_port(warren.mgmt_port)
    m = warren.mgmt_port
    vq = urllib.request.quote(prefix, safe="")
    _warren_put(m, f"vhosts/{vq}", {})
    _warren_put(m, f"users/{prefix}", {"password": "secret", "tags": ""})
    _warren_put(m, f"permissions/{vq}/{prefix}", {"configure": ".*", "write": ".*", "read": ".*"})
    for ex, (w, r) in PERMS.items():
        _warren_put(m, f"topic-permissions/{vq}/{prefix}", {"exchange": ex, "write": w, "read": r})
    ours = await run_topic(_url(warren.port, prefix), prefix)

    node = rabbitmq_node
    node.ctl("add_vhost", prefix)
    node.ctl("add_user", prefix, "secret")
    try:
        node.ctl("set_permissions", "-p", prefix, prefix, ".*", ".*", ".*")
        for ex, (w, r) in PERMS.items():
            node.ctl("set_topic_permissions", "-p", prefix, prefix, ex, w, r)
        theirs = await run_topic(_url(node.port, prefix), prefix)
    finally:
        node.ctl("delete_user", prefix)
        node.ctl("delete_vhost", prefix)
    assert ours == theirs
    assert ours["publish t.anchored b.no"].startswith("ACCESS_REFUSED - access to topic 'b.no'")
