"""The wire sweep: every AMQP 0-9-1 method and RabbitMQ extension, its success answer
and its error answers, sent as raw frames to warren and to RabbitMQ 3.10; the frames
each broker sends back are compared byte for byte.

Normalised before comparing (they must differ): Connection.Start's server properties
other than ``capabilities`` (product, version, platform, cluster name ...), server-generated
queue names and consumer tags (same-length placeholders), direct reply-to tokens.

``DELIBERATE`` lists the cases where warren differs on purpose, with the reason and
both brokers' expected answers; every other difference fails. A case may carry
``xfail=reason`` while a known difference is being fixed elsewhere (strict: it must fail).

Skipped where RabbitMQ is not installed (failed if ``CI`` is set). One warren and one
RabbitMQ connection serve every case that leaves the connection open.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import pytest
from pamqp import commands as C

from interop._wire import (
    Session,
    content,
    decode,
    describe,
    method,
    publish,
    raw_method,
    shortstr,
    table,
)
from tests.brokerproc import BrokerProcess, wait_port


@dataclass
class Case:
    name: str
    fn: Callable[[Session, int, str], None]
    #: needs a connection of its own (connection errors, handshake variations)
    own_connection: bool = False
    #: the case does the handshake itself
    handshake: bool = True
    xfail: str | None = None


CASES: dict[str, Case] = {}


def case(name: str | None = None, *, own_connection: bool = False, handshake: bool = True,
         xfail: str | None = None) -> Callable:
    def deco(fn: Callable) -> Callable:
        n = name or fn.__name__
        assert n not in CASES, n
        CASES[n] = Case(n, fn, own_connection or not handshake, handshake, xfail)
        return fn
    return deco


@dataclass
class Deliberate:
    """A difference kept on purpose: both transcripts (described frames) are pinned."""
    reason: str
    warren: list[str]
    rabbitmq: list[str] = field(default_factory=list)


DELIBERATE: dict[str, Deliberate] = {}


# ============================================================================ runner
class Broker:
    """One broker's side of the sweep: a shared connection, reopened when a case ends it."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.shared: Session | None = None

    def run(self, c: Case, prefix: str, ch: int) -> list[bytes]:
        if c.own_connection:
            s = Session(self.port)
            try:
                if c.handshake:
                    s.handshake()
                    s.transcript.clear()
                    s.open_channel(1)
                    s.transcript.clear()
                c.fn(s, 1, prefix)
                if not s.eof and not s.closed_by_server and c.handshake:
                    s.close_channel(1)
                return list(s.transcript)
            finally:
                s.close()
        if self.shared is None or self.shared.eof or self.shared.closed_by_server:
            if self.shared is not None:
                self.shared.close()
            self.shared = Session(self.port)
            self.shared.handshake()
        s = self.shared
        s.open_channel(ch)
        s.transcript.clear()
        c.fn(s, ch, prefix)
        s.close_channel(ch)
        out = list(s.transcript)
        s.transcript.clear()
        return out

    def close(self) -> None:
        if self.shared is not None:
            self.shared.close()


def _start_key(raw: bytes) -> bytes:
    """Connection.Start without the server properties that must differ."""
    if raw.startswith(b"<") or raw[:1] != b"\x01":
        return raw
    ch, f = decode(raw)
    if not isinstance(f, C.Connection.Start):
        return raw
    caps = sorted((f.server_properties or {}).get("capabilities", {}).items())
    return (f"<Connection.Start {f.version_major}-{f.version_minor} capabilities={caps} "
            f"mechanisms={f.mechanisms!r} locales={f.locales!r}>").encode()


#: users the permission cases log in as (created on both brokers)
LIMITED = ("sweep-limited", "pw")  # may configure/write/read only names starting with "allowed."
NO_ACCESS = ("sweep-noaccess", "pw")  # no permissions on "/"


def _warren_users(w: BrokerProcess) -> None:
    wait_port(w.mgmt_port)
    def put(path: str, body: dict) -> None:
        req = urllib.request.Request(f"http://127.0.0.1:{w.mgmt_port}/api/{path}", method="PUT",
                                     data=json.dumps(body).encode(),
                                     headers={"content-type": "application/json",
                                              "authorization": "Basic " + base64.b64encode(b"guest:guest").decode()})
        urllib.request.urlopen(req, timeout=10).read()
    for user, pw in (LIMITED, NO_ACCESS):
        put(f"users/{user}", {"password": pw, "tags": ""})
    put(f"permissions/%2F/{LIMITED[0]}", {"configure": "^allowed\\.", "write": "^allowed\\.", "read": "^allowed\\."})


def _rabbit_users(node) -> None:
    for user, pw in (LIMITED, NO_ACCESS):
        try:
            node.ctl("delete_user", user)
        except RuntimeError:
            pass
        node.ctl("add_user", user, pw)
    node.ctl("set_permissions", "-p", "/", LIMITED[0], "^allowed\\.", "^allowed\\.", "^allowed\\.")


@pytest.fixture(scope="module")
def brokers(tmp_path_factory, _rabbit_node):
    w = BrokerProcess(tmp_path_factory.mktemp("sweep") / "data").start()
    _warren_users(w)
    _rabbit_users(_rabbit_node)
    pair = (Broker(w.port), Broker(_rabbit_node.port))
    try:
        yield pair
    finally:
        for b in pair:
            b.close()
        w.stop()


@pytest.fixture(scope="module")
def sweep_prefix() -> str:
    return f"sw{secrets.token_hex(3)}"


def pytest_generate_tests(metafunc):
    # the cases are registered below this function: parametrize once the module is loaded
    if "name" in metafunc.fixturenames:
        params = []
        for n, c in CASES.items():
            marks = [pytest.mark.xfail(reason=c.xfail, strict=True)] if c.xfail else []
            params.append(pytest.param(n, id=n, marks=marks))
        metafunc.parametrize("name", params)


def test_wire(name, brokers, sweep_prefix):
    c = CASES[name]
    p = f"{sweep_prefix}.{name}"
    warren, rabbit = brokers
    ch = list(CASES).index(name) % 900 + 1  # the same channel number on both brokers
    got_w = [_start_key(r) for r in warren.run(c, p, ch)]
    got_r = [_start_key(r) for r in rabbit.run(c, p, ch)]
    dw = [re.sub(r"^ch\d+ ", "", describe(r)) for r in got_w]
    dr = [re.sub(r"^ch\d+ ", "", describe(r)) for r in got_r]
    if name in DELIBERATE:
        d = DELIBERATE[name]
        dw = [x.replace(f"{p}.q", "<q>") for x in dw]
        dr = [x.replace(f"{p}.q", "<q>") for x in dr]
        assert dr == d.rabbitmq, f"RabbitMQ no longer answers as pinned:\n{dr}"
        assert dw == d.warren, f"warren no longer differs as pinned ({d.reason}):\n{dw}"
        return
    if got_w != got_r:
        lines = [f"{name}: warren vs RabbitMQ"]
        for i in range(max(len(got_w), len(got_r))):
            a = got_w[i] if i < len(got_w) else b"<nothing>"
            b = got_r[i] if i < len(got_r) else b"<nothing>"
            mark = "  " if a == b else "!="
            lines.append(f"{mark} warren:   {describe(a)}")
            if a != b:
                lines.append(f"   rabbitmq: {describe(b)}")
                lines.append(f"   bytes w: {a.hex()}\n   bytes r: {b.hex()}")
        pytest.fail("\n".join(lines), pytrace=False)


# ============================================================================ helpers
def declare_q(s: Session, ch: int, name: str, **kw) -> object:
    return s.call(ch, method(ch, C.Queue.Declare(queue=name, **kw)))


def declare_x(s: Session, ch: int, name: str, kind: str = "direct", **kw) -> object:
    return s.call(ch, method(ch, C.Exchange.Declare(exchange=name, exchange_type=kind, **kw)))


def bind(s: Session, ch: int, q: str, x: str, rk: str = "", **kw) -> object:
    return s.call(ch, method(ch, C.Queue.Bind(queue=q, exchange=x, routing_key=rk, **kw)))


def get(s: Session, ch: int, q: str, no_ack: bool = True) -> object:
    """Basic.Get; a GetOk's header and body are read too."""
    r = s.call(ch, method(ch, C.Basic.Get(queue=q, no_ack=no_ack)))
    if isinstance(r, C.Basic.GetOk):
        s.read(2)
    return r


def confirm_mode(s: Session, ch: int) -> None:
    """Publisher confirms on ch: pub() then waits for each confirm, so a later query sees
    the message enqueued (RabbitMQ routes publishes asynchronously to its queue processes)."""
    s.call(ch, method(ch, C.Confirm.Select()))
    s.confirming.add(ch)


def pub(s: Session, ch: int, *args, **kw) -> None:
    s.send(publish(ch, *args, **kw))
    if ch in s.confirming and ch not in s.channel_closed:
        while True:
            raw = s.frame()
            if raw.startswith(b"<") or isinstance(decode(raw)[1], C.Basic.Ack | C.Basic.Nack | C.Channel.Close):
                return


def cleanup_q(s: Session, ch: int, *names: str) -> None:
    for n in names:
        s.call(ch, method(ch, C.Queue.Delete(queue=n)))


# ============================================================================ connection.*
@case(handshake=False)
def connection_handshake(s, ch, p):
    s.handshake()
    s.call(0, method(0, C.Connection.Close(reply_code=200, reply_text="bye", class_id=0, method_id=0)))


@case(handshake=False)
def connection_bad_protocol_header(s, ch, p):
    s.send(b"AMQP\x00\x00\x0a\x00")
    s.frame()
    s.frame()


@case(handshake=False)
def connection_amqp_0_9_header(s, ch, p):
    # the AMQP 0-9 header ("AMQP" 1 1 0 9) is answered like 0-9-1's
    s.send(b"AMQP\x01\x01\x00\x09")
    s.frame()


@case(handshake=False)
def connection_http_request(s, ch, p):
    s.send(b"GET / HTTP/1.1\r\n\r\n")
    s.frame()
    s.frame()


@case(handshake=False)
def connection_wrong_password(s, ch, p):
    s.handshake(password="wrong")
    s.frame()


@case(handshake=False)
def connection_unknown_mechanism(s, ch, p):
    s.send(b"AMQP\x00\x00\x09\x01")
    s.frame()
    s.send(method(0, C.Connection.StartOk(client_properties={}, mechanism="CRAM-MD5",
                                          response="x", locale="en_US")))
    s.frame(timeout=6)  # RabbitMQ closes after 3 s


@case(handshake=False)
def connection_unknown_vhost(s, ch, p):
    s.handshake(vhost="no-such-vhost")
    s.frame()


@case(handshake=False)
def connection_frame_max_too_small(s, ch, p):
    s.send(b"AMQP\x00\x00\x09\x01")
    s.frame()
    s.send(method(0, C.Connection.StartOk(client_properties={}, mechanism="PLAIN",
                                          response="\x00guest\x00guest", locale="en_US")))
    s.frame()
    s.send(method(0, C.Connection.TuneOk(channel_max=0, frame_max=1024, heartbeat=0)))
    s.send(method(0, C.Connection.Open(virtual_host="/")))
    s.frame(timeout=6)  # RabbitMQ closes after 3 s


@case(handshake=False)
def connection_frame_max_too_large(s, ch, p):
    s.send(b"AMQP\x00\x00\x09\x01")
    s.frame()
    s.send(method(0, C.Connection.StartOk(client_properties={}, mechanism="PLAIN",
                                          response="\x00guest\x00guest", locale="en_US")))
    s.frame()
    s.send(method(0, C.Connection.TuneOk(channel_max=0, frame_max=131073, heartbeat=0)))
    s.send(method(0, C.Connection.Open(virtual_host="/")))
    s.frame(timeout=6)  # RabbitMQ closes after 3 s


@case(own_connection=True)
def connection_close_by_client(s, ch, p):
    s.call(0, method(0, C.Connection.Close(reply_code=200, reply_text="ok", class_id=0, method_id=0)))
    s.eof = True  # closed by us: nothing more to send


@case(own_connection=True)
def connection_update_secret(s, ch, p):
    s.call(0, method(0, C.Connection.UpdateSecret(new_secret="guest", reason="refresh")))


@case(own_connection=True)
def connection_channel_open_twice(s, ch, p):
    s.send(method(ch, C.Channel.Open()))
    s.frame()
    s.frame()


@case(own_connection=True)
def connection_method_on_closed_channel(s, ch, p):
    s.send(method(7, C.Basic.Qos(prefetch_count=1)))
    s.frame()
    s.frame()


@case(own_connection=True)
def connection_content_without_method(s, ch, p):
    s.send(content(ch, b"orphan"))
    s.frame()
    s.frame()


@case(own_connection=True)
def connection_method_instead_of_content(s, ch, p):
    s.send(method(ch, C.Basic.Publish(exchange="", routing_key="x")))
    s.send(method(ch, C.Basic.Qos(prefetch_count=1)))
    s.frame()
    s.frame()


@case(own_connection=True)
def connection_header_wrong_class(s, ch, p):
    s.send(method(ch, C.Basic.Publish(exchange="", routing_key="x")))
    s.send(content(ch, b"x", class_id=50))
    s.frame()
    s.frame()


@case(own_connection=True)
def connection_method_on_channel_zero(s, ch, p):
    s.send(method(0, C.Basic.Qos(prefetch_count=1)))
    s.frame()
    s.frame()


@case(own_connection=True)
def connection_frame_end_wrong(s, ch, p):
    f = method(ch, C.Basic.Qos(prefetch_count=1))
    s.send(f[:-1] + b"\x00")
    # only the Close: when RabbitMQ then drops the socket depends on its timers
    # (EOF or a 3 s read timeout on a loaded machine), not on the bytes
    s.frame()


# ============================================================================ channel.*
@case(own_connection=True, handshake=False)
def channel_open_ok_bytes(s, ch, p):
    s.handshake()
    s.transcript.clear()
    s.call(1, method(1, C.Channel.Open()))


@case()
def channel_close_ok(s, ch, p):
    s.call(ch, method(ch, C.Channel.Close(reply_code=200, reply_text="x", class_id=0, method_id=0)))
    s.channel_closed.add(ch)


@case()
def channel_flow_active(s, ch, p):
    s.call(ch, method(ch, C.Channel.Flow(active=True)))


@case()
def channel_flow_inactive(s, ch, p):
    s.call(ch, method(ch, C.Channel.Flow(active=False)))


DELIBERATE["channel_flow_inactive"] = Deliberate(
    "warren keeps the spec's behaviour: active=false pauses deliveries to the channel",
    warren=["Channel.FlowOk{'active': False}", "Channel.CloseOk{}"],
    rabbitmq=["Connection.Close{'reply_code': 540, 'reply_text': 'NOT_IMPLEMENTED - active=false', "
              "'class_id': 20, 'method_id': 20}"],
)


# ============================================================================ exchange.*
@case()
def exchange_declare_types(s, ch, p):
    for kind in ("direct", "fanout", "topic", "headers"):
        declare_x(s, ch, f"{p}.{kind}", kind, auto_delete=True)
        declare_x(s, ch, f"{p}.{kind}", kind, auto_delete=True)  # equivalent redeclare
        declare_x(s, ch, f"{p}.{kind}", kind, auto_delete=True, passive=True)
    for kind in ("direct", "fanout", "topic", "headers"):
        s.call(ch, method(ch, C.Exchange.Delete(exchange=f"{p}.{kind}")))


@case()
def exchange_declare_nowait(s, ch, p):
    s.send(method(ch, C.Exchange.Declare(exchange=f"{p}.x", exchange_type="fanout", nowait=True)))
    s.sync(ch)
    s.send(method(ch, C.Exchange.Delete(exchange=f"{p}.x", nowait=True)))
    s.sync(ch)


@case()
def exchange_declare_durable_and_args(s, ch, p):
    declare_x(s, ch, f"{p}.x", "direct", durable=True, arguments={"alternate-exchange": "ae"})
    declare_x(s, ch, f"{p}.x", "direct", durable=True, arguments={"alternate-exchange": "ae"})
    s.call(ch, method(ch, C.Exchange.Delete(exchange=f"{p}.x")))


@case()
def exchange_redeclare_other_type(s, ch, p):
    declare_x(s, ch, f"{p}.x", "direct", auto_delete=True)
    declare_x(s, ch, f"{p}.x", "fanout", auto_delete=True)


@case()
def exchange_redeclare_other_durable(s, ch, p):
    declare_x(s, ch, f"{p}.x", "direct", auto_delete=True)
    declare_x(s, ch, f"{p}.x", "direct", auto_delete=True, durable=True)


@case()
def exchange_redeclare_other_auto_delete(s, ch, p):
    declare_x(s, ch, f"{p}.x", "direct")
    declare_x(s, ch, f"{p}.x", "direct", auto_delete=True)


@case()
def exchange_redeclare_other_internal(s, ch, p):
    declare_x(s, ch, f"{p}.x", "direct", auto_delete=True)
    declare_x(s, ch, f"{p}.x", "direct", auto_delete=True, internal=True)


@case()
def exchange_redeclare_other_alternate(s, ch, p):
    declare_x(s, ch, f"{p}.x", "direct", auto_delete=True, arguments={"alternate-exchange": "a"})
    declare_x(s, ch, f"{p}.x", "direct", auto_delete=True, arguments={"alternate-exchange": "b"})


@case()
def exchange_redeclare_amq_direct(s, ch, p):
    declare_x(s, ch, "amq.direct", "direct", durable=True)


@case()
def exchange_declare_reserved_name(s, ch, p):
    declare_x(s, ch, f"amq.{p}", "direct")


@case()
def exchange_declare_default(s, ch, p):
    declare_x(s, ch, "", "direct")


@case()
def exchange_declare_default_passive(s, ch, p):
    declare_x(s, ch, "", "direct", passive=True)


@case()
def exchange_declare_passive_missing(s, ch, p):
    declare_x(s, ch, f"{p}.none", "direct", passive=True)


@case()
def exchange_declare_passive_other_type(s, ch, p):
    # passive ignores type and flags
    declare_x(s, ch, "amq.fanout", "topic", passive=True, auto_delete=True)


@case(own_connection=True)
def exchange_declare_unknown_type(s, ch, p):
    declare_x(s, ch, f"{p}.x", "no-such-type")
    s.frame()


@case()
def exchange_delete_missing(s, ch, p):
    s.call(ch, method(ch, C.Exchange.Delete(exchange=f"{p}.none")))


@case()
def exchange_delete_default(s, ch, p):
    s.call(ch, method(ch, C.Exchange.Delete(exchange="")))


@case()
def exchange_delete_amq(s, ch, p):
    s.call(ch, method(ch, C.Exchange.Delete(exchange="amq.topic")))


@case()
def exchange_delete_if_unused(s, ch, p):
    declare_x(s, ch, f"{p}.x", "fanout")
    declare_q(s, ch, f"{p}.q", auto_delete=True)
    bind(s, ch, f"{p}.q", f"{p}.x")
    s.call(ch, method(ch, C.Exchange.Delete(exchange=f"{p}.x", if_unused=True)))


@case()
def exchange_delete_if_unused_ok(s, ch, p):
    declare_x(s, ch, f"{p}.x", "fanout")
    s.call(ch, method(ch, C.Exchange.Delete(exchange=f"{p}.x", if_unused=True)))


@case()
def exchange_bind_unbind(s, ch, p):
    confirm_mode(s, ch)
    declare_x(s, ch, f"{p}.src", "topic")
    declare_x(s, ch, f"{p}.dst", "fanout", auto_delete=True)
    declare_q(s, ch, f"{p}.q", auto_delete=True)
    bind(s, ch, f"{p}.q", f"{p}.dst")
    s.call(ch, method(ch, C.Exchange.Bind(destination=f"{p}.dst", source=f"{p}.src", routing_key="a.#")))
    s.call(ch, method(ch, C.Exchange.Bind(destination=f"{p}.dst", source=f"{p}.src", routing_key="a.#")))
    pub(s, ch, f"{p}.src", "a.b", b"via e2e")
    get(s, ch, f"{p}.q")
    s.call(ch, method(ch, C.Exchange.Unbind(destination=f"{p}.dst", source=f"{p}.src", routing_key="a.#")))
    pub(s, ch, f"{p}.src", "a.b", b"not routed")
    get(s, ch, f"{p}.q")
    s.call(ch, method(ch, C.Exchange.Delete(exchange=f"{p}.src")))
    s.send(method(ch, C.Exchange.Bind(destination=f"{p}.dst", source=f"{p}.src", routing_key="n", nowait=True)))
    s.send(method(ch, C.Exchange.Unbind(destination=f"{p}.dst", source=f"{p}.src", routing_key="n", nowait=True)))
    s.sync(ch)


@case()
def exchange_bind_missing_source(s, ch, p):
    declare_x(s, ch, f"{p}.dst", "fanout", auto_delete=True)
    s.call(ch, method(ch, C.Exchange.Bind(destination=f"{p}.dst", source=f"{p}.none", routing_key="")))


@case()
def exchange_bind_missing_destination(s, ch, p):
    s.call(ch, method(ch, C.Exchange.Bind(destination=f"{p}.none", source="amq.direct", routing_key="")))


@case()
def exchange_bind_default(s, ch, p):
    s.call(ch, method(ch, C.Exchange.Bind(destination="amq.fanout", source="", routing_key="")))


@case()
def exchange_bind_to_default(s, ch, p):
    s.call(ch, method(ch, C.Exchange.Bind(destination="", source="amq.direct", routing_key="")))


@case()
def exchange_unbind_missing_source(s, ch, p):
    s.call(ch, method(ch, C.Exchange.Unbind(destination="amq.fanout", source=f"{p}.none", routing_key="")))


@case()
def exchange_unbind_missing_destination(s, ch, p):
    s.call(ch, method(ch, C.Exchange.Unbind(destination=f"{p}.none", source="amq.direct", routing_key="")))


@case()
def exchange_unbind_missing_binding(s, ch, p):
    s.call(ch, method(ch, C.Exchange.Unbind(destination="amq.fanout", source="amq.direct", routing_key="nope")))


@case()
def exchange_publish_internal(s, ch, p):
    declare_x(s, ch, f"{p}.x", "fanout", auto_delete=True, internal=True)
    pub(s, ch, f"{p}.x", "")
    s.sync(ch)


@case()
def exchange_alternate(s, ch, p):
    confirm_mode(s, ch)
    declare_x(s, ch, f"{p}.ae", "fanout", auto_delete=True)
    declare_q(s, ch, f"{p}.q", auto_delete=True)
    bind(s, ch, f"{p}.q", f"{p}.ae")
    declare_x(s, ch, f"{p}.x", "direct", auto_delete=True, arguments={"alternate-exchange": f"{p}.ae"})
    pub(s, ch, f"{p}.x", "nowhere", b"to ae", mandatory=True)
    get(s, ch, f"{p}.q")


# ============================================================================ queue.*
@case()
def queue_declare_named(s, ch, p):
    confirm_mode(s, ch)
    declare_q(s, ch, f"{p}.q", auto_delete=True)
    declare_q(s, ch, f"{p}.q", auto_delete=True)
    declare_q(s, ch, f"{p}.q", passive=True)
    pub(s, ch, "", f"{p}.q", b"one")
    declare_q(s, ch, f"{p}.q", passive=True)
    cleanup_q(s, ch, f"{p}.q")


@case()
def queue_declare_server_named(s, ch, p):
    declare_q(s, ch, "", exclusive=True)


@case()
def queue_declare_nowait(s, ch, p):
    s.send(method(ch, C.Queue.Declare(queue=f"{p}.q", auto_delete=True, nowait=True)))
    s.sync(ch)
    cleanup_q(s, ch, f"{p}.q")


@case()
def queue_declare_durable(s, ch, p):
    declare_q(s, ch, f"{p}.q", durable=True)
    cleanup_q(s, ch, f"{p}.q")


@case()
def queue_declare_passive_missing(s, ch, p):
    declare_q(s, ch, f"{p}.none", passive=True)


@case()
def queue_declare_reserved_name(s, ch, p):
    declare_q(s, ch, f"amq.{p}")


@case()
def queue_declare_reply_to_passive(s, ch, p):
    declare_q(s, ch, "amq.rabbitmq.reply-to", passive=True)


@case()
def queue_redeclare_other_durable(s, ch, p):
    declare_q(s, ch, f"{p}.q", auto_delete=True)
    declare_q(s, ch, f"{p}.q", auto_delete=True, durable=True)


@case()
def queue_redeclare_other_auto_delete(s, ch, p):
    declare_q(s, ch, f"{p}.q", exclusive=True)
    declare_q(s, ch, f"{p}.q", exclusive=True, auto_delete=True)


@case()
def queue_redeclare_other_args(s, ch, p):
    declare_q(s, ch, f"{p}.q", exclusive=True, arguments={"x-max-length": 5})
    declare_q(s, ch, f"{p}.q", exclusive=True, arguments={"x-max-length": 6})


@case()
def queue_redeclare_missing_arg(s, ch, p):
    declare_q(s, ch, f"{p}.q", exclusive=True, arguments={"x-message-ttl": 5000})
    declare_q(s, ch, f"{p}.q", exclusive=True)


@case(own_connection=True)
def queue_exclusive_other_connection(s, ch, p):
    other = Session(s.sock.getpeername()[1])
    try:
        other.handshake()
        other.open_channel(1)
        declare_q(other, 1, f"{p}.q", exclusive=True)
        declare_q(s, ch, f"{p}.q", passive=True)
        s.open_channel(2)
        declare_q(s, 2, f"{p}.q", exclusive=True)
        s.open_channel(3)
        s.call(3, method(3, C.Basic.Get(queue=f"{p}.q")))
        s.open_channel(4)
        s.call(4, method(4, C.Queue.Delete(queue=f"{p}.q")))
    finally:
        other.close()


_BAD_ARGS = {
    "ttl_string": {"x-message-ttl": "ten"},
    "ttl_negative": {"x-message-ttl": -1},
    "expires_zero": {"x-expires": 0},
    "max_length_negative": {"x-max-length": -1},
    "max_length_bytes_string": {"x-max-length-bytes": "x"},
    "overflow_bad": {"x-overflow": "nope"},
    "max_priority_big": {"x-max-priority": 256},
    "max_priority_negative": {"x-max-priority": -1},
    "dlx_int": {"x-dead-letter-exchange": 5},
    "dlrk_without_dlx": {"x-dead-letter-routing-key": "k"},
    "queue_mode_bad": {"x-queue-mode": "fast"},
    "queue_type_bad": {"x-queue-type": "nope"},
    "sac_string": {"x-single-active-consumer": "yes"},
    "delivery_limit": {"x-delivery-limit": 5},
}


def _bad_arg_case(args: dict) -> Callable:
    def run(s, ch, p):
        declare_q(s, ch, f"{p}.q", exclusive=True, arguments=args)
    return run


for _n, _a in _BAD_ARGS.items():
    case(f"queue_declare_arg_{_n}")(_bad_arg_case(_a))


@case()
def queue_bind_unbind(s, ch, p):
    confirm_mode(s, ch)
    declare_q(s, ch, f"{p}.q", auto_delete=True)
    bind(s, ch, f"{p}.q", "amq.direct", f"{p}.k")
    bind(s, ch, f"{p}.q", "amq.direct", f"{p}.k")
    pub(s, ch, "amq.direct", f"{p}.k", b"bound")
    get(s, ch, f"{p}.q")
    s.call(ch, method(ch, C.Queue.Unbind(queue=f"{p}.q", exchange="amq.direct", routing_key=f"{p}.k")))
    s.call(ch, method(ch, C.Queue.Unbind(queue=f"{p}.q", exchange="amq.direct", routing_key=f"{p}.k")))
    pub(s, ch, "amq.direct", f"{p}.k", b"unbound")
    get(s, ch, f"{p}.q")
    s.send(method(ch, C.Queue.Bind(queue=f"{p}.q", exchange="amq.direct", routing_key="n", nowait=True)))
    s.sync(ch)
    cleanup_q(s, ch, f"{p}.q")


@case()
def queue_bind_headers_args(s, ch, p):
    confirm_mode(s, ch)
    declare_q(s, ch, f"{p}.q", auto_delete=True)
    bind(s, ch, f"{p}.q", "amq.headers", "", arguments={"x-match": "any", "a": 1, "b": "two"})
    for h in ({"a": 1}, {"b": "two"}, {"a": 2}, {"c": 3}):
        pub(s, ch, "amq.headers", "", repr(h).encode(), {"headers": h})
    for _ in range(3):
        get(s, ch, f"{p}.q")
    cleanup_q(s, ch, f"{p}.q")


@case()
def queue_bind_missing_queue(s, ch, p):
    bind(s, ch, f"{p}.none", "amq.direct", "k")


@case()
def queue_bind_missing_exchange(s, ch, p):
    declare_q(s, ch, f"{p}.q", auto_delete=True)
    bind(s, ch, f"{p}.q", f"{p}.none", "k")


@case()
def queue_bind_default_exchange(s, ch, p):
    declare_q(s, ch, f"{p}.q", auto_delete=True)
    bind(s, ch, f"{p}.q", "", "k")


@case()
def queue_unbind_missing(s, ch, p):
    s.call(ch, method(ch, C.Queue.Unbind(queue=f"{p}.none", exchange="amq.direct", routing_key="k")))
    s.call(ch, method(ch, C.Queue.Unbind(queue=f"{p}.none", exchange=f"{p}.none", routing_key="k")))


@case()
def queue_unbind_default_exchange(s, ch, p):
    declare_q(s, ch, f"{p}.q", auto_delete=True)
    s.call(ch, method(ch, C.Queue.Unbind(queue=f"{p}.q", exchange="", routing_key="k")))


@case()
def queue_bind_last_declared(s, ch, p):
    confirm_mode(s, ch)
    declare_q(s, ch, f"{p}.q", auto_delete=True)
    bind(s, ch, "", "amq.direct", "")  # the last declared queue, its name as the key
    bind(s, ch, "", "amq.direct", "other")
    pub(s, ch, "amq.direct", f"{p}.q", b"by name")
    pub(s, ch, "amq.direct", "other", b"by other")
    get(s, ch, f"{p}.q")
    get(s, ch, f"{p}.q")
    s.call(ch, method(ch, C.Queue.Unbind(queue="", exchange="amq.direct", routing_key="other")))
    pub(s, ch, "amq.direct", "other", b"unbound")
    get(s, ch, f"{p}.q")
    cleanup_q(s, ch, f"{p}.q")


@case()
def queue_bind_no_last_declared(s, ch, p):
    bind(s, ch, "", "amq.direct", "k")


@case()
def queue_bind_no_last_declared_empty_key(s, ch, p):
    bind(s, ch, "", "amq.direct", "")


@case()
def queue_unbind_no_last_declared(s, ch, p):
    s.call(ch, method(ch, C.Queue.Unbind(queue="", exchange="amq.direct", routing_key="k")))


@case()
def queue_purge(s, ch, p):
    confirm_mode(s, ch)
    declare_q(s, ch, f"{p}.q", auto_delete=True)
    for i in range(3):
        pub(s, ch, "", f"{p}.q", b"%d" % i)
    s.call(ch, method(ch, C.Queue.Purge(queue=f"{p}.q")))
    s.call(ch, method(ch, C.Queue.Purge(queue="")))
    s.send(method(ch, C.Queue.Purge(queue=f"{p}.q", nowait=True)))
    s.sync(ch)
    cleanup_q(s, ch, f"{p}.q")


@case()
def queue_purge_missing(s, ch, p):
    s.call(ch, method(ch, C.Queue.Purge(queue=f"{p}.none")))


@case()
def queue_purge_no_last_declared(s, ch, p):
    s.call(ch, method(ch, C.Queue.Purge(queue="")))


@case()
def queue_delete(s, ch, p):
    confirm_mode(s, ch)
    declare_q(s, ch, f"{p}.q")
    pub(s, ch, "", f"{p}.q", b"1"), publish(ch, "", f"{p}.q", b"2")
    s.call(ch, method(ch, C.Queue.Delete(queue=f"{p}.q")))
    s.call(ch, method(ch, C.Queue.Delete(queue=f"{p}.q")))
    declare_q(s, ch, f"{p}.q2")
    s.call(ch, method(ch, C.Queue.Delete(queue="")))
    s.send(method(ch, C.Queue.Delete(queue=f"{p}.none", nowait=True)))
    s.sync(ch)


@case()
def queue_delete_no_last_declared(s, ch, p):
    s.call(ch, method(ch, C.Queue.Delete(queue="")))


@case()
def queue_delete_if_empty(s, ch, p):
    confirm_mode(s, ch)
    declare_q(s, ch, f"{p}.q", auto_delete=True)
    pub(s, ch, "", f"{p}.q", b"1")
    s.call(ch, method(ch, C.Queue.Delete(queue=f"{p}.q", if_empty=True)))


@case()
def queue_delete_if_unused(s, ch, p):
    declare_q(s, ch, f"{p}.q", exclusive=True)
    s.call(ch, method(ch, C.Basic.Consume(queue=f"{p}.q", consumer_tag="c1")))
    s.call(ch, method(ch, C.Queue.Delete(queue=f"{p}.q", if_unused=True)))


@case()
def queue_delete_with_consumer_cancel_notify(s, ch, p):
    declare_q(s, ch, f"{p}.q")
    s.call(ch, method(ch, C.Basic.Consume(queue=f"{p}.q", consumer_tag="c1")))
    other = ch + 1000
    s.open_channel(other)
    s.send(method(other, C.Queue.Delete(queue=f"{p}.q")))
    # Basic.Cancel on ch and DeleteOk on the other channel: their order is not fixed
    got = sorted(s.frame(record=False) for _ in range(2))
    s.transcript.extend(got)
    s.close_channel(other)


# ============================================================================ basic.*
@case()
def basic_qos(s, ch, p):
    s.call(ch, method(ch, C.Basic.Qos(prefetch_count=10)))
    s.call(ch, method(ch, C.Basic.Qos(prefetch_count=5, global_=True)))
    s.call(ch, method(ch, C.Basic.Qos(prefetch_count=0)))


@case(own_connection=True)
def basic_qos_prefetch_size(s, ch, p):
    s.call(ch, method(ch, C.Basic.Qos(prefetch_size=1)))
    s.frame()


@case()
def basic_consume_cancel(s, ch, p):
    declare_q(s, ch, f"{p}.q", exclusive=True)
    s.call(ch, method(ch, C.Basic.Consume(queue=f"{p}.q", consumer_tag="mine")))
    s.call(ch, method(ch, C.Basic.Consume(queue=f"{p}.q")))
    pub(s, ch, "", f"{p}.q", b"a", {"content_type": "text/plain", "headers": {"k": "v"}})
    s.read(3)
    s.call(ch, method(ch, C.Basic.Cancel(consumer_tag="mine")))
    s.call(ch, method(ch, C.Basic.Cancel(consumer_tag="unknown")))
    s.send(method(ch, C.Basic.Cancel(consumer_tag="unknown", nowait=True)))
    s.send(method(ch, C.Basic.Consume(queue=f"{p}.q", consumer_tag="nw", nowait=True)))
    s.sync(ch)


@case()
def basic_consume_missing_queue(s, ch, p):
    s.call(ch, method(ch, C.Basic.Consume(queue=f"{p}.none")))


@case()
def basic_consume_last_declared(s, ch, p):
    declare_q(s, ch, f"{p}.q", exclusive=True)
    s.call(ch, method(ch, C.Basic.Consume(queue="", consumer_tag="c")))


@case()
def basic_consume_no_last_declared(s, ch, p):
    s.call(ch, method(ch, C.Basic.Consume(queue="", consumer_tag="c")))


@case(own_connection=True)
def basic_consume_reuse_tag(s, ch, p):
    declare_q(s, ch, f"{p}.q", exclusive=True)
    s.call(ch, method(ch, C.Basic.Consume(queue=f"{p}.q", consumer_tag="same")))
    s.call(ch, method(ch, C.Basic.Consume(queue=f"{p}.q", consumer_tag="same")))
    s.frame()


@case()
def basic_consume_exclusive_conflict(s, ch, p):
    declare_q(s, ch, f"{p}.q", exclusive=True)
    s.call(ch, method(ch, C.Basic.Consume(queue=f"{p}.q", consumer_tag="a", exclusive=True)))
    s.call(ch, method(ch, C.Basic.Consume(queue=f"{p}.q", consumer_tag="b")))


@case()
def basic_consume_bad_priority(s, ch, p):
    declare_q(s, ch, f"{p}.q", exclusive=True)
    s.call(ch, method(ch, C.Basic.Consume(queue=f"{p}.q", arguments={"x-priority": "high"})))


@case()
def basic_publish_missing_exchange(s, ch, p):
    pub(s, ch, f"{p}.none", "k")
    s.sync(ch)


@case()
def basic_publish_mandatory_unroutable(s, ch, p):
    pub(s, ch, "amq.direct", f"{p}.nobody", b"returned", {"message_id": "m1"}, mandatory=True)
    s.read(3)
    pub(s, ch, "", f"{p}.nobody", b"returned too", mandatory=True)
    s.read(3)


@case(own_connection=True)
def basic_publish_immediate(s, ch, p):
    pub(s, ch, "", "x", immediate=True)
    s.frame()
    s.frame()


@case()
def basic_publish_user_id_mismatch(s, ch, p):
    pub(s, ch, "", "x", props={"user_id": "someone"})
    s.sync(ch)


@case()
def basic_publish_bad_expiration(s, ch, p):
    pub(s, ch, "", "x", props={"expiration": "soon"})
    s.sync(ch)


@case()
def basic_publish_negative_expiration(s, ch, p):
    pub(s, ch, "", "x", props={"expiration": "-5"})
    s.sync(ch)


@case()
def basic_publish_multi_frame_body(s, ch, p):
    confirm_mode(s, ch)
    declare_q(s, ch, f"{p}.q", exclusive=True)
    body = bytes(range(256)) * 1100  # 281,600 bytes: three body frames each way
    pub(s, ch, "", f"{p}.q", body, {"delivery_mode": 2, "priority": 3, "correlation_id": "c",
                                    "timestamp": datetime(2024, 1, 2, 3, 4, 5), "message_type": "t", "app_id": "a"})
    r = s.call(ch, method(ch, C.Basic.Get(queue=f"{p}.q", no_ack=True)))
    assert isinstance(r, C.Basic.GetOk), r
    s.read(4)


@case()
def basic_get(s, ch, p):
    confirm_mode(s, ch)
    declare_q(s, ch, f"{p}.q", exclusive=True)
    get(s, ch, f"{p}.q")
    pub(s, ch, "", f"{p}.q", b"a"), publish(ch, "", f"{p}.q", b"b")
    get(s, ch, f"{p}.q", no_ack=False)
    get(s, ch, "", no_ack=True)


@case()
def basic_get_missing_queue(s, ch, p):
    get(s, ch, f"{p}.none")


@case()
def basic_get_no_last_declared(s, ch, p):
    get(s, ch, "")


@case()
def basic_ack_reject_nack(s, ch, p):
    confirm_mode(s, ch)
    declare_q(s, ch, f"{p}.q", exclusive=True)
    for b in (b"1", b"2", b"3", b"4"):
        pub(s, ch, "", f"{p}.q", b)
    for _ in range(4):
        get(s, ch, f"{p}.q", no_ack=False)
    s.send(method(ch, C.Basic.Ack(delivery_tag=1)))
    s.send(method(ch, C.Basic.Reject(delivery_tag=2, requeue=True)))
    s.send(method(ch, C.Basic.Nack(delivery_tag=4, multiple=True, requeue=True)))
    s.sync(ch)
    for _ in range(3):
        get(s, ch, f"{p}.q", no_ack=False)  # requeued ones come back redelivered
    s.send(method(ch, C.Basic.Ack(delivery_tag=0, multiple=True)))
    s.sync(ch)


@case()
def basic_ack_unknown_tag(s, ch, p):
    s.send(method(ch, C.Basic.Ack(delivery_tag=99)))
    s.sync(ch)


@case()
def basic_ack_twice(s, ch, p):
    confirm_mode(s, ch)
    declare_q(s, ch, f"{p}.q", exclusive=True)
    pub(s, ch, "", f"{p}.q", b"1")
    get(s, ch, f"{p}.q", no_ack=False)
    s.send(method(ch, C.Basic.Ack(delivery_tag=1)), method(ch, C.Basic.Ack(delivery_tag=1)))
    s.sync(ch)


@case()
def basic_reject_unknown_tag(s, ch, p):
    s.send(method(ch, C.Basic.Reject(delivery_tag=7)))
    s.sync(ch)


@case()
def basic_nack_unknown_tag(s, ch, p):
    s.send(method(ch, C.Basic.Nack(delivery_tag=7, multiple=True)))
    s.sync(ch)


@case()
def basic_recover(s, ch, p):
    confirm_mode(s, ch)
    declare_q(s, ch, f"{p}.q", exclusive=True)
    pub(s, ch, "", f"{p}.q", b"1")
    get(s, ch, f"{p}.q", no_ack=False)
    s.call(ch, method(ch, C.Basic.Recover(requeue=True)))
    get(s, ch, f"{p}.q", no_ack=False)


@case(own_connection=True)
def basic_recover_no_requeue(s, ch, p):
    s.call(ch, method(ch, C.Basic.Recover(requeue=False)))
    s.frame()


@case()
def basic_recover_async(s, ch, p):
    s.send(method(ch, C.Basic.RecoverAsync(requeue=True)))
    s.sync(ch)


@case()
def basic_noack_consumer_ignores_prefetch(s, ch, p):
    declare_q(s, ch, f"{p}.q", exclusive=True)
    s.call(ch, method(ch, C.Basic.Qos(prefetch_count=1)))
    s.call(ch, method(ch, C.Basic.Consume(queue=f"{p}.q", consumer_tag="c", no_ack=True)))
    for b in (b"1", b"2", b"3"):
        pub(s, ch, "", f"{p}.q", b)
    s.read(9)


@case()
def basic_per_consumer_prefetch(s, ch, p):
    declare_q(s, ch, f"{p}.q", exclusive=True)
    s.call(ch, method(ch, C.Basic.Qos(prefetch_count=1)))
    s.call(ch, method(ch, C.Basic.Consume(queue=f"{p}.q", consumer_tag="c")))
    for b in (b"1", b"2"):
        pub(s, ch, "", f"{p}.q", b)
    s.read(3)
    s.sync(ch)  # the second message waits for an ack
    s.send(method(ch, C.Basic.Ack(delivery_tag=1)))
    s.read(3)


@case()
def basic_consumer_priority(s, ch, p):
    declare_q(s, ch, f"{p}.q", exclusive=True)
    s.call(ch, method(ch, C.Basic.Consume(queue=f"{p}.q", consumer_tag="low", no_ack=True)))
    s.call(ch, method(ch, C.Basic.Consume(queue=f"{p}.q", consumer_tag="high", no_ack=True,
                                          arguments={"x-priority": 5})))
    pub(s, ch, "", f"{p}.q", b"1")
    s.read(3)


# ============================================================================ confirm.*, tx.*
@case()
def confirm_select_acks(s, ch, p):
    s.call(ch, method(ch, C.Confirm.Select()))
    confirm_mode(s, ch)
    declare_q(s, ch, f"{p}.q", exclusive=True)
    pub(s, ch, "", f"{p}.q", b"1")
    pub(s, ch, "", f"{p}.nobody", b"unroutable")
    pub(s, ch, "", f"{p}.nobody", b"returned", mandatory=True)  # Return, header, body, then Ack


@case()
def confirm_select_nowait(s, ch, p):
    s.send(method(ch, C.Confirm.Select(nowait=True)))
    s.sync(ch)


@case()
def confirm_nack_reject_publish(s, ch, p):
    declare_q(s, ch, f"{p}.q", exclusive=True, arguments={"x-max-length": 1, "x-overflow": "reject-publish"})
    confirm_mode(s, ch)
    pub(s, ch, "", f"{p}.q", b"1")
    pub(s, ch, "", f"{p}.q", b"2")


@case()
def confirm_max_length_zero(s, ch, p):
    declare_q(s, ch, f"{p}.q", exclusive=True, arguments={"x-max-length": 0})
    confirm_mode(s, ch)
    pub(s, ch, "", f"{p}.q", b"1")
    declare_q(s, ch, f"{p}.q", passive=True)


@case()
def confirm_max_length_bytes_zero(s, ch, p):
    declare_q(s, ch, f"{p}.q", exclusive=True, arguments={"x-max-length-bytes": 0})
    confirm_mode(s, ch)
    pub(s, ch, "", f"{p}.q", b"1")
    declare_q(s, ch, f"{p}.q", passive=True)


@case()
def confirm_max_length_zero_reject_publish(s, ch, p):
    declare_q(s, ch, f"{p}.q", exclusive=True, arguments={"x-max-length": 0, "x-overflow": "reject-publish"})
    confirm_mode(s, ch)
    pub(s, ch, "", f"{p}.q", b"1")
    declare_q(s, ch, f"{p}.q", passive=True)


@case()
def confirm_max_length_bytes_zero_reject_publish(s, ch, p):
    declare_q(s, ch, f"{p}.q", exclusive=True,
              arguments={"x-max-length-bytes": 0, "x-overflow": "reject-publish"})
    confirm_mode(s, ch)
    pub(s, ch, "", f"{p}.q", b"1")
    pub(s, ch, "", f"{p}.q", b"")
    declare_q(s, ch, f"{p}.q", passive=True)


@case()
def confirm_after_tx(s, ch, p):
    s.call(ch, method(ch, C.Tx.Select()))
    confirm_mode(s, ch)


@case()
def tx_after_confirm(s, ch, p):
    confirm_mode(s, ch)
    s.call(ch, method(ch, C.Tx.Select()))


@case()
def tx_commit_rollback(s, ch, p):
    declare_q(s, ch, f"{p}.q", exclusive=True)
    s.call(ch, method(ch, C.Tx.Select()))
    s.call(ch, method(ch, C.Tx.Select()))
    pub(s, ch, "", f"{p}.q", b"rolled back")
    s.call(ch, method(ch, C.Tx.Rollback()))
    pub(s, ch, "", f"{p}.q", b"committed")
    s.call(ch, method(ch, C.Tx.Commit()))
    get(s, ch, f"{p}.q", no_ack=False)
    s.send(method(ch, C.Basic.Ack(delivery_tag=1)))
    s.call(ch, method(ch, C.Tx.Commit()))
    declare_q(s, ch, f"{p}.q", passive=True)


@case()
def tx_commit_without_select(s, ch, p):
    s.call(ch, method(ch, C.Tx.Commit()))


@case()
def tx_rollback_without_select(s, ch, p):
    s.call(ch, method(ch, C.Tx.Rollback()))


# ============================================================================ RabbitMQ extensions
@case()
def direct_reply_to(s, ch, p):
    s.call(ch, method(ch, C.Basic.Consume(queue="amq.rabbitmq.reply-to", consumer_tag="rt", no_ack=True)))
    declare_q(s, ch, f"{p}.q", exclusive=True)
    pub(s, ch, "", f"{p}.q", b"request", {"reply_to": "amq.rabbitmq.reply-to"})
    r = get(s, ch, f"{p}.q")
    assert isinstance(r, C.Basic.GetOk)


@case()
def direct_reply_to_with_acks(s, ch, p):
    s.call(ch, method(ch, C.Basic.Consume(queue="amq.rabbitmq.reply-to", no_ack=False)))


@case()
def direct_reply_to_without_consumer(s, ch, p):
    pub(s, ch, "", "x", b"request", {"reply_to": "amq.rabbitmq.reply-to"})
    s.sync(ch)


@case()
def dead_letter_on_reject(s, ch, p):
    confirm_mode(s, ch)
    declare_q(s, ch, f"{p}.dead", exclusive=True)
    declare_q(s, ch, f"{p}.q", exclusive=True, arguments={
        "x-dead-letter-exchange": "", "x-dead-letter-routing-key": f"{p}.dead"})
    pub(s, ch, "", f"{p}.q", b"x")
    get(s, ch, f"{p}.q", no_ack=False)
    s.send(method(ch, C.Basic.Reject(delivery_tag=1, requeue=False)))
    s.sync(ch)
    r = s.call(ch, method(ch, C.Basic.Get(queue=f"{p}.dead", no_ack=True)))
    if isinstance(r, C.Basic.GetOk):
        s.transcript.append(b"<dead letter header not compared: x-death carries a time>")
        s.frame(record=False)
        s.read(1)

@case()
def max_length_drop_head(s, ch, p):
    confirm_mode(s, ch)
    declare_q(s, ch, f"{p}.q", exclusive=True, arguments={"x-max-length": 2})
    for b in (b"1", b"2", b"3"):
        pub(s, ch, "", f"{p}.q", b)
    declare_q(s, ch, f"{p}.q", passive=True)
    get(s, ch, f"{p}.q")


@case()
def message_ttl_zero(s, ch, p):
    confirm_mode(s, ch)
    declare_q(s, ch, f"{p}.q", exclusive=True, arguments={"x-message-ttl": 0})
    pub(s, ch, "", f"{p}.q", b"gone")
    get(s, ch, f"{p}.q")


@case()
def priority_queue(s, ch, p):
    confirm_mode(s, ch)
    declare_q(s, ch, f"{p}.q", exclusive=True, arguments={"x-max-priority": 3})
    for b, pr in ((b"low", 1), (b"high", 3), (b"none", None)):
        pub(s, ch, "", f"{p}.q", b, {"priority": pr})
    for _ in range(3):
        get(s, ch, f"{p}.q")


DELIBERATE["queue_declare_arg_delivery_limit"] = Deliberate(
    "warren serves x-delivery-limit on classic queues too (RabbitMQ 3.10: quorum queues only)",
    warren=["Queue.DeclareOk{'queue': '<q>', 'message_count': 0, 'consumer_count': 0}", "Channel.CloseOk{}"],
    rabbitmq=["Channel.Close{'reply_code': 406, 'reply_text': \"PRECONDITION_FAILED - invalid arg "
              "'x-delivery-limit' for queue '<q>' in vhost '/' of queue type rabbit_classic_queue\", "
              "'class_id': 50, 'method_id': 10}"],
)


@case()
def queue_declare_passive_last_declared(s, ch, p):
    declare_q(s, ch, f"{p}.q", exclusive=True)
    declare_q(s, ch, "", passive=True)


@case()
def queue_declare_passive_no_last_declared(s, ch, p):
    declare_q(s, ch, "", passive=True)


@case()
def queue_declare_reply_to_token_passive(s, ch, p):
    declare_q(s, ch, "amq.rabbitmq.reply-to.nosuchtoken", passive=True)


@case()
def exchange_declare_delayed_type(s, ch, p):
    declare_x(s, ch, f"{p}.x", "x-delayed-message", auto_delete=True, arguments={"x-delayed-type": "direct"})


DELIBERATE["exchange_declare_delayed_type"] = Deliberate(
    "warren has the delayed-message exchange built in; RabbitMQ needs its plugin (not enabled here)",
    warren=["Exchange.DeclareOk{}", "Channel.CloseOk{}"],
    rabbitmq=["Connection.Close{'reply_code': 503, 'reply_text': \"COMMAND_INVALID - unknown exchange type "
              "'x-delayed-message'\", 'class_id': 40, 'method_id': 10}"],
)


@case()
def queue_declare_stream(s, ch, p):
    declare_q(s, ch, f"{p}.q", durable=True, arguments={"x-queue-type": "stream"})
    cleanup_q(s, ch, f"{p}.q")


DELIBERATE["queue_declare_stream"] = Deliberate(
    "streams are not implemented in warren: refused with RabbitMQ's text for an unsupported queue type",
    warren=["Channel.Close" + str({
        "reply_code": 406,
        "reply_text": "PRECONDITION_FAILED - invalid arg 'x-queue-type' for queue '<q>' in vhost '/': "
                      "\"unsupported queue type 'stream'\"",
        "class_id": 50, "method_id": 10})],
    rabbitmq=["Queue.DeclareOk{'queue': '<q>', 'message_count': 0, 'consumer_count': 0}",
              "Queue.DeleteOk{'message_count': 0}", "Channel.CloseOk{}"],
)


@case()
def queue_declare_quorum(s, ch, p):
    declare_q(s, ch, f"{p}.q", durable=True, arguments={"x-queue-type": "quorum"})
    declare_q(s, ch, f"{p}.q", durable=True)
    s.open_channel(ch + 1000)
    declare_q(s, ch + 1000, f"{p}.q", durable=True, arguments={"x-queue-type": "quorum"})
    cleanup_q(s, ch + 1000, f"{p}.q")
    s.close_channel(ch + 1000)


@case()
def queue_declare_quorum_exclusive(s, ch, p):
    declare_q(s, ch, f"{p}.q", durable=True, exclusive=True, arguments={"x-queue-type": "quorum"})


@case()
def queue_single_active_consumer(s, ch, p):
    declare_q(s, ch, f"{p}.q", exclusive=True, arguments={"x-single-active-consumer": True})
    s.call(ch, method(ch, C.Basic.Consume(queue=f"{p}.q", consumer_tag="first", no_ack=True)))
    s.call(ch, method(ch, C.Basic.Consume(queue=f"{p}.q", consumer_tag="second", no_ack=True)))
    for b in (b"1", b"2"):
        s.send(publish(ch, "", f"{p}.q", b))
    s.read(6)
    s.call(ch, method(ch, C.Basic.Cancel(consumer_tag="first")))
    s.send(publish(ch, "", f"{p}.q", b"3"))
    s.read(3)


@case()
def basic_ack_all_with_nothing_outstanding(s, ch, p):
    s.send(method(ch, C.Basic.Ack(delivery_tag=0, multiple=True)))
    s.sync(ch)


@case()
def basic_ack_tag_zero_single(s, ch, p):
    s.send(method(ch, C.Basic.Ack(delivery_tag=0, multiple=False)))
    s.sync(ch)


@case()
def basic_nack_multiple_to_dlx(s, ch, p):
    confirm_mode(s, ch)
    declare_q(s, ch, f"{p}.dead", exclusive=True)
    declare_q(s, ch, f"{p}.q", exclusive=True, arguments={
        "x-dead-letter-exchange": "", "x-dead-letter-routing-key": f"{p}.dead"})
    for b in (b"1", b"2", b"3"):
        pub(s, ch, "", f"{p}.q", b)
    for _ in range(3):
        get(s, ch, f"{p}.q", no_ack=False)
    s.send(method(ch, C.Basic.Nack(delivery_tag=2, multiple=True, requeue=False)))
    declare_q(s, ch, f"{p}.q", passive=True)


@case()
def basic_recover_with_consumer(s, ch, p):
    confirm_mode(s, ch)
    declare_q(s, ch, f"{p}.q", exclusive=True)
    pub(s, ch, "", f"{p}.q", b"1")
    s.call(ch, method(ch, C.Basic.Consume(queue=f"{p}.q", consumer_tag="c")))
    s.read(3)
    s.send(method(ch, C.Basic.Recover(requeue=True)))
    s.read(4)  # RecoverOk and the redelivery: RabbitMQ answers first


@case()
def basic_publish_cc_bcc(s, ch, p):
    confirm_mode(s, ch)
    for n in ("a", "b", "c"):
        declare_q(s, ch, f"{p}.{n}", exclusive=True)
    pub(s, ch, "", f"{p}.a", b"x", {"headers": {"CC": [f"{p}.b"], "BCC": [f"{p}.c"], "k": 1}})
    for n in ("a", "b", "c"):
        get(s, ch, f"{p}.{n}")


@case()
def basic_publish_cc_not_array(s, ch, p):
    s.send(publish(ch, "", "x", b"x", {"headers": {"CC": "not-a-list"}}))
    s.sync(ch)


@case(own_connection=True)
def frame_larger_than_frame_max(s, ch, p):
    s.send(method(ch, C.Basic.Publish(exchange="", routing_key="x")))
    big = b"x" * 140000
    s.send(content(ch, big, frame_max=200000))
    s.frame()


@case(own_connection=True)
def unknown_method_id(s, ch, p):
    s.send(raw_method(ch, 60, 99, b""))
    for _ in range(3):
        if s.eof:
            break
        s.frame()


@case(own_connection=True)
def unknown_class_id(s, ch, p):
    s.send(raw_method(ch, 99, 10, b""))
    for _ in range(3):
        if s.eof:
            break
        s.frame()


@case()
def queue_declare_unusual_name(s, ch, p):
    name = f"{p}.jobs!café|x"
    s.call(ch, raw_method(ch, 50, 10, b"\x00\x00" + shortstr(name) + b"\x00" + b"\x00\x00\x00\x00"))
    s.call(ch, method(ch, C.Queue.Delete(queue=f"{p}.jobs")))
    s.call(ch, raw_method(ch, 50, 40, b"\x00\x00" + shortstr(name) + b"\x00"))


@case(own_connection=True, handshake=False)
def channel_max_exceeded(s, ch, p):
    s.send(b"AMQP\x00\x00\x09\x01")
    s.frame()
    s.send(method(0, C.Connection.StartOk(client_properties={}, mechanism="PLAIN",
                                          response="\x00guest\x00guest", locale="en_US")))
    s.frame()
    s.send(method(0, C.Connection.TuneOk(channel_max=2, frame_max=131072, heartbeat=0)))
    s.call(0, method(0, C.Connection.Open(virtual_host="/")))
    for n in (1, 2, 3):
        s.send(method(n, C.Channel.Open()))
        s.frame(record=n == 3)
    s.frame()


_UNKNOWN_METHOD = ("RabbitMQ's reader fails on a method it does not know and drops the TCP connection; "
                   "warren says why in a Connection.Close")
DELIBERATE["unknown_method_id"] = Deliberate(
    _UNKNOWN_METHOD,
    warren=["Connection.Close{'reply_code': 540, 'reply_text': 'NOT_IMPLEMENTED - unknown method class 60 "
            "method 99', 'class_id': 60, 'method_id': 99}", "<eof>"],
    rabbitmq=["<eof>"],
)
DELIBERATE["unknown_class_id"] = Deliberate(
    _UNKNOWN_METHOD,
    warren=["Connection.Close{'reply_code': 501, 'reply_text': 'FRAME_ERROR - unknown method class 99 "
            "method 10', 'class_id': 99, 'method_id': 10}", "<eof>"],
    rabbitmq=["<eof>"],
)


# ============================================================================ connection.blocked
def _blocked_transcript(port: int) -> list[str]:
    s = Session(port)
    try:
        s.handshake()
        s.transcript.clear()
        s.open_channel(1)
        s.sync(1)  # does the broker say "blocked" before anything is published?
        s.send(publish(1, "", "nobody", b"x"))
        s.frame(timeout=10)
        return [describe(r) for r in s.transcript]
    finally:
        s.close()


def test_connection_blocked(tmp_path, rabbitmq_node):
    """A resource alarm (free disk below the limit): connection.blocked, byte for byte."""
    w = BrokerProcess(tmp_path / "data", extra_args=["--disk-free-limit", str(10**18)]).start()
    try:
        got_w = _blocked_transcript(w.port)
    finally:
        w.stop()
    rabbitmq_node.ctl("set_disk_free_limit", str(10**18))
    try:
        got_r = _blocked_transcript(rabbitmq_node.port)
    finally:
        rabbitmq_node.ctl("set_disk_free_limit", "50000000")
    assert got_w == got_r


# ============================================================================ permissions
@case(handshake=False)
def access_vhost_refused(s, ch, p):
    s.handshake(*NO_ACCESS)
    s.frame()


def _limited(s: Session) -> None:
    s.handshake(*LIMITED)
    s.transcript.clear()
    s.open_channel(1)


@case(handshake=False)
def access_queue_configure_refused(s, ch, p):
    _limited(s)
    declare_q(s, 1, f"{p}.q", exclusive=True)


@case(handshake=False)
def access_exchange_configure_refused(s, ch, p):
    _limited(s)
    declare_x(s, 1, f"{p}.x", "fanout", auto_delete=True)


@case(handshake=False)
def access_publish_refused(s, ch, p):
    _limited(s)
    s.send(publish(1, "amq.direct", "k"))
    s.sync(1)


@case(handshake=False)
def access_bind_refused(s, ch, p):
    _limited(s)
    declare_q(s, 1, f"allowed.{p}", exclusive=True)
    bind(s, 1, f"allowed.{p}", "amq.direct", "k")


@case(handshake=False)
def access_consume_refused(s, ch, p):
    _limited(s)
    s.call(1, method(1, C.Basic.Consume(queue=f"{p}.none")))


@case(handshake=False)
def access_get_refused(s, ch, p):
    _limited(s)
    get(s, 1, f"{p}.none")


@case(handshake=False)
def access_allowed_names(s, ch, p):
    _limited(s)
    confirm_mode(s, 1)
    declare_q(s, 1, f"allowed.{p}", exclusive=True)
    declare_x(s, 1, f"allowed.{p}", "fanout", auto_delete=True)
    bind(s, 1, f"allowed.{p}", f"allowed.{p}")
    pub(s, 1, f"allowed.{p}", "", b"ok")
    get(s, 1, f"allowed.{p}")


# ============================================================================ more extensions
@case()
def direct_reply_to_round_trip(s, ch, p):
    s.call(ch, method(ch, C.Basic.Consume(queue="amq.rabbitmq.reply-to", consumer_tag="rt", no_ack=True)))
    confirm_mode(s, ch)
    declare_q(s, ch, f"{p}.q", exclusive=True)
    pub(s, ch, "", f"{p}.q", b"request", {"reply_to": "amq.rabbitmq.reply-to", "correlation_id": "1"})
    r = s.call(ch, method(ch, C.Basic.Get(queue=f"{p}.q", no_ack=True)))
    assert isinstance(r, C.Basic.GetOk), r
    header, _body = s.read(2)
    token = header.properties.reply_to
    # the reply from a channel without confirms: the order of a confirm and the reply's
    # delivery on one channel is not something a client can rely on
    s.open_channel(ch + 1000)
    s.send(publish(ch + 1000, "", token, b"reply", {"correlation_id": "1"}))
    s.read(3)
    s.close_channel(ch + 1000)


@case()
def overflow_reject_publish_dlx(s, ch, p):
    confirm_mode(s, ch)
    declare_q(s, ch, f"{p}.dead", exclusive=True)
    declare_q(s, ch, f"{p}.q", exclusive=True, arguments={
        "x-max-length": 1, "x-overflow": "reject-publish-dlx",
        "x-dead-letter-exchange": "", "x-dead-letter-routing-key": f"{p}.dead"})
    pub(s, ch, "", f"{p}.q", b"1")
    pub(s, ch, "", f"{p}.q", b"2")
    declare_q(s, ch, f"{p}.q", passive=True)


@case()
def queue_declare_valid_args(s, ch, p):
    args = {"x-message-ttl": 60000, "x-expires": 600000, "x-max-length": 10, "x-max-length-bytes": 10000,
            "x-overflow": "drop-head", "x-dead-letter-exchange": "amq.fanout", "x-dead-letter-routing-key": "k",
            "x-max-priority": 5, "x-queue-mode": "lazy", "x-single-active-consumer": False}
    declare_q(s, ch, f"{p}.q", exclusive=True, arguments=args)
    declare_q(s, ch, f"{p}.q", exclusive=True, arguments=args)
    declare_q(s, ch, f"{p}.q", exclusive=True, arguments=dict(args, **{"x-max-priority": 6}))


@case()
def basic_publish_empty_body(s, ch, p):
    confirm_mode(s, ch)
    declare_q(s, ch, f"{p}.q", exclusive=True)
    pub(s, ch, "", f"{p}.q", b"")
    r = s.call(ch, method(ch, C.Basic.Get(queue=f"{p}.q", no_ack=True)))
    assert isinstance(r, C.Basic.GetOk), r
    s.read(1)  # the header: no body frame for an empty body
    s.sync(ch)


@case()
def basic_publish_typed_headers_bcc(s, ch, p):
    """BCC makes both brokers re-encode the headers table: every field type must survive."""
    confirm_mode(s, ch)
    declare_q(s, ch, f"{p}.a", exclusive=True)
    declare_q(s, ch, f"{p}.b", exclusive=True)
    headers = {"BCC": [f"{p}.b"], "s": "str", "i": 7, "neg": -5, "big": 2**40, "f": 1.5, "t": True,
               "ts": datetime(2024, 1, 2, 3, 4, 5), "none": None, "list": [1, "a", False],
               "table": {"x": 1, "y": "z"}}
    pub(s, ch, "", f"{p}.a", b"x", {"headers": headers, "content_type": "a/b"})
    get(s, ch, f"{p}.a")
    get(s, ch, f"{p}.b")


@case(own_connection=True)
def queue_exclusive_other_connection_consume_purge(s, ch, p):
    other = Session(s.sock.getpeername()[1])
    try:
        other.handshake()
        other.open_channel(1)
        declare_q(other, 1, f"{p}.q", exclusive=True)
        s.call(ch, method(ch, C.Basic.Consume(queue=f"{p}.q")))
        s.open_channel(2)
        s.call(2, method(2, C.Queue.Purge(queue=f"{p}.q")))
        s.open_channel(3)
        bind(s, 3, f"{p}.q", "amq.direct", "k")
    finally:
        other.close()


@case(handshake=False)
def access_unbind_refused(s, ch, p):
    _limited(s)
    s.call(1, method(1, C.Queue.Unbind(queue=f"{p}.none", exchange="amq.direct", routing_key="k")))


@case(handshake=False)
def access_exchange_bind_refused(s, ch, p):
    _limited(s)
    s.call(1, method(1, C.Exchange.Unbind(destination=f"allowed.{p}", source="amq.direct", routing_key="k")))


@case(handshake=False)
def access_delete_refused(s, ch, p):
    _limited(s)
    s.call(1, method(1, C.Queue.Delete(queue=f"{p}.none")))
    s.open_channel(2)
    s.call(2, method(2, C.Exchange.Delete(exchange=f"{p}.none")))
    s.open_channel(3)
    s.call(3, method(3, C.Queue.Purge(queue=f"{p}.none")))


@case()
def queue_bind_both_missing(s, ch, p):
    bind(s, ch, f"{p}.none", f"{p}.nox", "k")


@case()
def exchange_bind_both_missing(s, ch, p):
    s.call(ch, method(ch, C.Exchange.Bind(destination=f"{p}.d", source=f"{p}.s", routing_key="")))


@case(own_connection=True)
def queue_exclusive_other_connection_unbind(s, ch, p):
    other = Session(s.sock.getpeername()[1])
    try:
        other.handshake()
        other.open_channel(1)
        declare_q(other, 1, f"{p}.q", exclusive=True)
        bind(other, 1, f"{p}.q", "amq.direct", "k")
        s.call(ch, method(ch, C.Queue.Unbind(queue=f"{p}.q", exchange="amq.direct", routing_key="k")))
    finally:
        other.close()


@case(own_connection=True)
def connection_channel_open_on_zero(s, ch, p):
    s.send(method(0, C.Channel.Open()))
    s.frame()
    s.frame()


@case(own_connection=True)
def connection_start_ok_when_open(s, ch, p):
    s.send(method(0, C.Connection.StartOk(client_properties={}, mechanism="PLAIN",
                                          response="\x00guest\x00guest", locale="en_US")))
    s.frame()
    s.frame()


@case(handshake=False)
def connection_amqplain_login(s, ch, p):
    s.send(b"AMQP\x00\x00\x09\x01")
    s.frame()
    resp = table({"LOGIN": "guest", "PASSWORD": "guest"})[4:].decode("latin-1")
    s.send(method(0, C.Connection.StartOk(client_properties={}, mechanism="AMQPLAIN",
                                          response=resp, locale="en_US")))
    s.frame()


@case(handshake=False)
def connection_amqplain_wrong_password(s, ch, p):
    s.send(b"AMQP\x00\x00\x09\x01")
    s.frame()
    resp = table({"LOGIN": "guest", "PASSWORD": "nope"})[4:].decode("latin-1")
    s.send(method(0, C.Connection.StartOk(client_properties={"capabilities": {"authentication_failure_close": True}},
                                          mechanism="AMQPLAIN", response=resp, locale="en_US")))
    s.frame()


@case()
def queue_bind_headers_bad_x_match(s, ch, p):
    declare_q(s, ch, f"{p}.q", exclusive=True)
    bind(s, ch, f"{p}.q", "amq.headers", "", arguments={"x-match": "some"})


@case()
def basic_publish_to_unknown_reply_token(s, ch, p):
    s.send(publish(ch, "", "amq.rabbitmq.reply-to.bm9zdWNodG9rZW4", b"x", mandatory=True))
    s.sync(ch)


@case()
def channel_close_with_unacked(s, ch, p):
    confirm_mode(s, ch)
    declare_q(s, ch, f"{p}.q")
    pub(s, ch, "", f"{p}.q", b"1")
    get(s, ch, f"{p}.q", no_ack=False)
    s.call(ch, method(ch, C.Channel.Close(reply_code=200, reply_text="", class_id=0, method_id=0)))
    s.channel_closed.add(ch)
    s.open_channel(ch + 1000)
    get(s, ch + 1000, f"{p}.q")  # requeued: redelivered
    cleanup_q(s, ch + 1000, f"{p}.q")
    s.close_channel(ch + 1000)
