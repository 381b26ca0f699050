"""Raw-socket scenarios recording the exact bytes a broker sends.

Each scenario returns ``[(label, frame bytes as hex), ...]``. tests/broker/test_wire.py
checks warren against the bytes RabbitMQ 3.10.8 sent for the same scenario (recorded in
that file); interop/test_wire_diff.py runs each scenario against warren and a live
RabbitMQ and compares.
"""

from __future__ import annotations

import struct
from collections.abc import Awaitable, Callable

from pamqp import commands as C
from pamqp.header import ContentHeader

from tests.broker._raw import RawConn, recv_frame_bytes
from tests.protocol._strategies import build

Obs = list[tuple[str, str]]


def header_frame(channel: int, size: int, props: bytes = b"\x00\x00", class_id: int = 60) -> bytes:
    payload = struct.pack(">HHQ", class_id, 0, size) + props
    return struct.pack(">BHI", 2, channel, len(payload)) + payload + b"\xce"


def body_frame(channel: int, data: bytes) -> bytes:
    return struct.pack(">BHI", 3, channel, len(data)) + data + b"\xce"


def props(**kw) -> bytes:
    """Encoded Basic.Properties (flags + values) for a content header."""
    return ContentHeader(0, 0, C.Basic.Properties(**kw)).marshal()[12:]


def publish(c: RawConn, exchange: str, body: bytes = b"hi", channel: int = 1, p: bytes = b"\x00\x00",
            **kw) -> None:
    c.send(build(C.Basic.Publish, exchange=exchange, routing_key=kw.pop("routing_key", "k"), **kw), channel)
    c.send_raw(header_frame(channel, len(body), p) + (body_frame(channel, body) if body else b""))


async def _open(port: int, channel: int | None = 1) -> RawConn:
    c = await RawConn.connect(port)
    await c.handshake()
    if channel is not None:
        c.send(C.Channel.Open(), channel)
        await c.recv()
    return c


# ------------------------------------------------------------------ every server-sent method
async def server_methods(port: int, p: str) -> Obs:
    """One of every reply a broker sends on a plain session (Connection.Start aside: the
    server properties differ by design)."""
    obs: Obs = []
    c = await RawConn.connect(port)

    async def rec(label: str, n: int = 1) -> None:
        for _ in range(n):
            obs.append((label, (await recv_frame_bytes(c)).hex()))

    try:
        c.send_raw(b"AMQP\x00\x00\x09\x01")
        await recv_frame_bytes(c)  # Connection.Start
        c.send(
            C.Connection.StartOk(
                client_properties={"capabilities": {"basic.nack": True, "consumer_cancel_notify": True}},
                mechanism="PLAIN",
                response="\0guest\0guest",
                locale="en_US",
            )
        )
        await rec("connection.tune")
        c.send(C.Connection.TuneOk(channel_max=2047, frame_max=131072, heartbeat=0))
        c.send(C.Connection.Open(virtual_host="/"))
        await rec("connection.open-ok")
        c.send(C.Channel.Open(), 1)
        await rec("channel.open-ok")
        c.send(C.Channel.Flow(active=True), 1)
        await rec("channel.flow-ok")
        c.send(C.Basic.Qos(prefetch_count=10), 1)
        await rec("basic.qos-ok")
        x, x2, q = f"{p}.x", f"{p}.x2", f"{p}.q"
        c.send(C.Exchange.Declare(exchange=x, exchange_type="direct"), 1)
        await rec("exchange.declare-ok")
        c.send(C.Exchange.Declare(exchange=x2, exchange_type="fanout"), 1)
        await rec("exchange.declare-ok")
        c.send(C.Exchange.Bind(destination=x2, source=x, routing_key="r"), 1)
        await rec("exchange.bind-ok")
        c.send(C.Exchange.Unbind(destination=x2, source=x, routing_key="r"), 1)
        await rec("exchange.unbind-ok")
        c.send(C.Exchange.Delete(exchange=x2), 1)
        await rec("exchange.delete-ok")
        c.send(C.Queue.Declare(queue=q), 1)
        await rec("queue.declare-ok")
        c.send(C.Queue.Bind(queue=q, exchange=x, routing_key="k"), 1)
        await rec("queue.bind-ok")
        c.send(C.Queue.Unbind(queue=q, exchange=x, routing_key="k"), 1)
        await rec("queue.unbind-ok")
        c.send(C.Queue.Bind(queue=q, exchange=x, routing_key="k"), 1)
        await rec("queue.bind-ok")
        c.send(C.Confirm.Select(), 1)
        await rec("confirm.select-ok")
        publish(c, x)
        await rec("basic.ack (confirm)")
        publish(c, x, routing_key="nothing", mandatory=True)
        await rec("basic.return + content", 3)
        await rec("basic.ack (confirm)")
        c.send(C.Basic.Get(queue=q), 1)
        await rec("basic.get-ok + content", 3)
        c.send(C.Basic.Get(queue=q), 1)
        await rec("basic.get-empty")
        c.send(C.Basic.Recover(requeue=True), 1)
        await rec("basic.recover-ok")
        c.send(C.Basic.Consume(queue=q, consumer_tag="ctag"), 1)
        await rec("basic.consume-ok")
        await rec("basic.deliver + content", 3)
        c.send(C.Basic.Ack(delivery_tag=2), 1)
        c.send(C.Basic.Cancel(consumer_tag="ctag"), 1)
        await rec("basic.cancel-ok")
        c.send(C.Queue.Purge(queue=q), 1)
        await rec("queue.purge-ok")
        c.send(C.Basic.Consume(queue=q, consumer_tag="gone"), 1)
        await rec("basic.consume-ok")
        c.send(C.Channel.Open(), 2)
        await rec("channel.open-ok")
        c.send(C.Queue.Delete(queue=q), 2)
        # two channels: RabbitMQ's order of these two varies from run to run
        pair = sorted([(await recv_frame_bytes(c)).hex(), (await recv_frame_bytes(c)).hex()])
        obs += [("queue.delete-ok / basic.cancel (server) on another channel", h) for h in pair]
        c.send(C.Channel.Close(reply_code=200, reply_text="bye", class_id=0, method_id=0), 1)
        await rec("channel.close-ok")
        c.send(C.Tx.Select(), 2)
        await rec("tx.select-ok")
        c.send(C.Tx.Commit(), 2)
        await rec("tx.commit-ok")
        c.send(C.Tx.Rollback(), 2)
        await rec("tx.rollback-ok")
        c.send(C.Exchange.Delete(exchange=x), 2)
        await rec("exchange.delete-ok")
        c.send(C.Connection.Close(reply_code=200, reply_text="bye", class_id=0, method_id=0))
        await rec("connection.close-ok")
    finally:
        c.close()
    return obs


# ------------------------------------------------------------------ errors from the hot path
async def _channel_setup(c: RawConn, p: str) -> None:
    c.send(C.Exchange.Declare(exchange=f"{p}.int", exchange_type="direct", internal=True), 1)
    await c.recv()


Action = Callable[[RawConn, str], Awaitable[None] | None]

HOT_PATH_ERRORS: dict[str, Action] = {
    # a whole publish in one read (the reader's fused fast path)
    "publish missing exchange": lambda c, p: publish(c, f"{p}.none"),
    # publish completed by a later body frame / by an empty-body header
    "publish missing exchange, split body": lambda c, p: (
        c.send(C.Basic.Publish(exchange=f"{p}.none", routing_key="k"), 1),
        c.send_raw(header_frame(1, 4) + body_frame(1, b"hi")),
        c.send_raw(body_frame(1, b"ho")),
    ),
    "publish missing exchange, empty body": lambda c, p: publish(c, f"{p}.none", b""),
    "publish internal exchange": lambda c, p: publish(c, f"{p}.int"),
    "publish user_id mismatch": lambda c, p: publish(c, "amq.direct", p=props(user_id="bob")),
    "publish bad expiration": lambda c, p: publish(c, "amq.direct", p=props(expiration="abc")),
    "publish CC not an array": lambda c, p: publish(c, "amq.direct", p=props(headers={"CC": "x"})),
    "publish BCC a table": lambda c, p: publish(c, "amq.direct", p=props(headers={"BCC": {"a": 1}})),
    "publish reply-to without consumer": lambda c, p: publish(
        c, "", p=props(reply_to="amq.rabbitmq.reply-to")
    ),
    "publish immediate": lambda c, p: publish(c, "amq.direct", immediate=True),
    "content header of class 50": lambda c, p: (
        c.send(C.Basic.Publish(exchange="amq.direct", routing_key="k"), 1),
        c.send_raw(header_frame(1, 2, class_id=50)),
    ),
    "publish then publish": lambda c, p: (
        c.send(C.Basic.Publish(exchange="amq.direct", routing_key="k"), 1),
        c.send(C.Basic.Publish(exchange="amq.direct", routing_key="k"), 1),
    ),
    "method inside content": lambda c, p: (
        c.send(C.Basic.Publish(exchange="amq.direct", routing_key="k"), 1),
        c.send_raw(header_frame(1, 2)),
        c.send(C.Basic.Qos(prefetch_count=1), 1),
    ),
    "content header without publish": lambda c, p: c.send_raw(header_frame(1, 2)),
    "content body without publish": lambda c, p: c.send_raw(body_frame(1, b"hi")),
    "publish on an unopened channel": lambda c, p: publish(c, "amq.direct", channel=5),
    "publish on channel 0": lambda c, p: publish(c, "amq.direct", channel=0),
    "ack unknown tag": lambda c, p: c.send(C.Basic.Ack(delivery_tag=5), 1),
    "ack multiple unknown tag": lambda c, p: c.send(C.Basic.Ack(delivery_tag=5, multiple=True), 1),
    "ack tag 0": lambda c, p: c.send(C.Basic.Ack(delivery_tag=0), 1),
    "nack unknown tag": lambda c, p: c.send(C.Basic.Nack(delivery_tag=5), 1),
    "reject unknown tag": lambda c, p: c.send(C.Basic.Reject(delivery_tag=5), 1),
    "ack on an unopened channel": lambda c, p: c.send(C.Basic.Ack(delivery_tag=1), 5),
}


async def hot_path_error(port: int, p: str, name: str) -> str:
    """The Channel.Close / Connection.Close the broker answers ``name`` with, as hex."""
    c = await _open(port)
    try:
        await _channel_setup(c, p)
        r = HOT_PATH_ERRORS[name](c, p)
        if r is not None and hasattr(r, "__await__"):
            await r
        return (await recv_frame_bytes(c)).hex()
    finally:
        c.close()


# ------------------------------------------------------------------ connection.update-secret
async def update_secret(port: int, p: str) -> Obs:
    obs: Obs = []
    for mech, secret in (("PLAIN", "guest"), ("PLAIN", "not the password"), ("AMQPLAIN", "x" * 70000)):
        c = await RawConn.connect(port)
        try:
            await c.handshake(mechanism=mech)
            c.send(C.Connection.UpdateSecret(new_secret=secret, reason="token refresh"))
            obs.append((f"{mech} update-secret", (await recv_frame_bytes(c)).hex()))
            c.send(C.Channel.Open(), 1)  # the connection still serves
            obs.append(("then channel.open-ok", (await recv_frame_bytes(c)).hex()))
        finally:
            c.close()
    c = await RawConn.connect(port)
    try:
        await c.handshake(open_=False)
        c.send(C.Connection.UpdateSecret(new_secret="guest", reason=""))
        obs.append(("update-secret before connection.open", (await recv_frame_bytes(c)).hex()))
    finally:
        c.close()
    c = await _open(port)
    try:
        c.send(C.Connection.UpdateSecret(new_secret="guest", reason=""), 1)
        obs.append(("update-secret on channel 1", (await recv_frame_bytes(c)).hex()))
    finally:
        c.close()
    return obs


# ------------------------------------------------------------------ names outside pamqp's regex
NAMES = ("jobs!", "café", "a|b", "ключ 🙂", "x" * 200 + "é!")


async def odd_names(port: int, p: str) -> Obs:
    """Declare/bind/publish/consume/get/return/cancel with names pamqp would refuse to
    encode; each reply's bytes."""
    obs: Obs = []
    c = await _open(port)

    async def rec(label: str, n: int = 1) -> None:
        for _ in range(n):
            obs.append((label, (await recv_frame_bytes(c)).hex()))

    try:
        for i, name in enumerate(NAMES):
            q, x = p + name, p + name + ".x"
            c.send(build(C.Queue.Declare, queue=q), 1)
            await rec(f"{i} queue.declare-ok")
            c.send(build(C.Exchange.Declare, exchange=x, exchange_type="direct"), 1)
            await rec(f"{i} exchange.declare-ok")
            c.send(build(C.Queue.Bind, queue=q, exchange=x, routing_key=name), 1)
            await rec(f"{i} queue.bind-ok")
            publish(c, x, routing_key=name, body=b"m")
            publish(c, x, routing_key="unrouted " + name[:200], mandatory=True, body=b"r")
            await rec(f"{i} basic.return + content", 3)
            c.send(build(C.Basic.Get, queue=q, no_ack=True), 1)
            await rec(f"{i} basic.get-ok + content", 3)
            publish(c, x, routing_key=name, body=b"n")
            c.send(build(C.Basic.Consume, queue=q, consumer_tag=name, no_ack=True), 1)
            await rec(f"{i} basic.consume-ok")
            await rec(f"{i} basic.deliver + content", 3)
            c.send(build(C.Queue.Delete, queue=q), 1)
            await rec(f"{i} queue.delete-ok, then basic.cancel (server)", 2)
            c.send(build(C.Exchange.Delete, exchange=x), 1)
            await rec(f"{i} exchange.delete-ok")
        c.send(C.Basic.Qos(prefetch_count=1), 1)  # the connection still serves
        await rec("basic.qos-ok")
    finally:
        c.close()
    return obs
