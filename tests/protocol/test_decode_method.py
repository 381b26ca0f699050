"""decode_method reads method fields itself (warren.protocol.table for tables): the same
values as pamqp, typed table values, bounded nesting, strict truncation checks."""

from __future__ import annotations

import struct

import pytest
from pamqp import commands as C
from warren.protocol.errors import FrameError
from warren.protocol.reader import decode_method
from warren.protocol.table import MAX_DEPTH, amqp_type

METHODS = [
    C.Connection.StartOk(
        client_properties={"product": "p", "capabilities": {"publisher_confirms": True}, "n": [1, "x", None]},
        mechanism="AMQPLAIN",
        response="\x05LOGINS\x00\x00\x00\x05guest",
        locale="en_US",
    ),
    C.Connection.TuneOk(channel_max=2047, frame_max=131072, heartbeat=60),
    C.Connection.Open(virtual_host="/v"),
    C.Connection.Close(reply_code=200, reply_text="bye", class_id=0, method_id=0),
    C.Channel.Flow(active=False),
    C.Exchange.Declare(exchange="e", exchange_type="topic", durable=True, internal=True, arguments={"alternate-exchange": "ae"}),
    C.Exchange.Bind(destination="d", source="s", routing_key="k", nowait=True, arguments={"a": 1}),
    C.Queue.Declare(queue="q", durable=True, exclusive=True, auto_delete=True, nowait=False, arguments={"x-max-length": 10}),
    C.Queue.Bind(queue="q", exchange="e", routing_key="r", arguments={"x-match": "all"}),
    C.Queue.Unbind(queue="q", exchange="e", routing_key="r", arguments={}),
    C.Queue.Purge(queue="q", nowait=True),
    C.Queue.Delete(queue="q", if_unused=True, if_empty=False, nowait=True),
    C.Basic.Qos(prefetch_size=0, prefetch_count=100, global_=True),
    C.Basic.Consume(queue="q", consumer_tag="t", no_local=True, no_ack=True, exclusive=False, nowait=True, arguments={"x-priority": 5}),
    C.Basic.Cancel(consumer_tag="t", nowait=True),
    C.Basic.Get(queue="q", no_ack=True),
    C.Basic.Recover(requeue=True),
    C.Confirm.Select(nowait=True),
]


def _payload(m) -> bytes:
    return struct.pack(">I", m.index) + m.marshal()


@pytest.mark.parametrize("method", METHODS, ids=lambda m: m.name)
def test_same_fields_as_pamqp(method):
    decoded = decode_method(_payload(method))
    assert decoded.index == method.index and decoded.name == method.name
    reference = type(method)()
    reference.unmarshal(method.marshal())
    for name in method.__slots__:
        assert getattr(decoded, name) == getattr(reference, name), name


def test_table_values_keep_their_wire_type():
    m = C.Queue.Declare(queue="q")
    raw = bytearray(_payload(m))
    # replace the empty arguments table by one holding a short ('s') 5
    table = b"\x0cx-max-length" + b"s" + struct.pack(">h", 5)
    raw[-4:] = struct.pack(">I", len(table)) + table
    decoded = decode_method(bytes(raw))
    assert decoded.arguments == {"x-max-length": 5}
    assert amqp_type(decoded.arguments["x-max-length"]) == "s"


def _nested(depth: int) -> bytes:
    value = b"V"
    for _ in range(depth):
        value = b"A" + struct.pack(">I", len(value)) + value
    return value


def _declare_with(table_body: bytes) -> bytes:
    return struct.pack(">IH", 0x0032000A, 0) + b"\x01q" + b"\x00" + struct.pack(">I", len(table_body)) + table_body


def test_nesting_up_to_the_limit_decodes():
    decoded = decode_method(_declare_with(b"\x01a" + _nested(MAX_DEPTH)))
    depth, v = 0, decoded.arguments["a"]
    while isinstance(v, list):
        depth, v = depth + 1, v[0]
    assert depth == MAX_DEPTH


def test_nesting_beyond_the_limit_is_a_frame_error():
    with pytest.raises(FrameError) as e:
        decode_method(_declare_with(b"\x01a" + _nested(5000)))  # pamqp: RecursionError
    assert e.value.code == 501
    assert (e.value.class_id, e.value.method_id) == (50, 10)
    assert "nested deeper" in e.value.text


@pytest.mark.parametrize(
    "payload",
    [
        struct.pack(">IH", 0x0032000A, 0) + b"\x09q",  # shortstr claims 9 bytes, has 1
        struct.pack(">I", 0x000A001F) + b"\x07\xff",  # Tune-Ok cut in its first field
        struct.pack(">IH", 0x0032000A, 0) + b"\x01q\x00" + b"\x00\x00\x00\x09",  # table claims 9 bytes
        struct.pack(">I", 0x000A000B) + b"\x00\x00\x00\x00" + b"\x05PLAIN" + b"\x00\x00\x00\x20abc",  # longstr
    ],
)
def test_truncated_fields_are_frame_errors(payload):
    with pytest.raises(FrameError) as e:
        decode_method(payload)
    assert e.value.code == 501
    assert e.value.text.startswith("cannot decode")
