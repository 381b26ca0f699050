"""warren.protocol.methods encodes every method as pamqp does, minus pamqp's validation,
with RabbitMQ's bytes for reserved fields (issue 8, items 1 and 10)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pamqp import commands as C
from pamqp import frame as pframe
from warren.protocol import commands
from warren.protocol.methods import encode_method, method_frame
from warren.protocol.reader import decode_method

from tests.protocol._strategies import build, shortstrs, tables, u16, u32

#: random values per pamqp type name (pamqp packs longlong signed)
_VALUES = {
    "bit": st.booleans(),
    "octet": st.integers(0, 255),
    "short": u16,
    "long": u32,
    "longlong": st.integers(-(2**63), 2**63 - 1),
    "shortstr": shortstrs,
    "longstr": st.text(max_size=300),
    "table": tables,
}
_RESERVED = {C.Channel.OpenOk: "channel_id", C.Connection.OpenOk: "known_hosts"}
_CLASSES = sorted(C.INDEX_MAPPING.values(), key=lambda c: c.index)


@st.composite
def any_method(draw):
    cls = draw(st.sampled_from(_CLASSES))
    kw = {n: draw(_VALUES[cls.amqp_type(n)]) for n in cls.__slots__}
    if cls in _RESERVED:
        kw[_RESERVED[cls]] = "0" if cls is C.Channel.OpenOk else ""  # what pamqp accepts
    return build(cls, **kw)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(any_method(), st.integers(0, 65535))
def test_same_bytes_as_pamqp_for_every_method(m, channel):
    got = method_frame(channel, m)
    want = pframe.marshal(m, channel)
    if m.index == C.Channel.OpenOk.index:  # pamqp's "0" vs RabbitMQ's empty long string
        assert got == b"\x01" + channel.to_bytes(2, "big") + b"\x00\x00\x00\x08\x00\x14\x00\x0b\x00\x00\x00\x00\xce"
        return
    assert got == want


def test_channel_open_ok_is_rabbitmqs():
    # captured from RabbitMQ 3.10.8: Channel.OpenOk carries an empty long string
    assert method_frame(1, C.Channel.OpenOk()).hex() == "010001000000080014000b00000000ce"
    assert method_frame(0, C.Connection.OpenOk()).hex() == "01000000000005000a002900ce"


def test_names_outside_pamqps_regex_build_and_encode():
    """warren.protocol.commands builds what pamqp's constructors refuse (names RabbitMQ accepts)."""
    for name in ("jobs!", "café", "a|b", "x" * 255, "ключ", "😀"):
        m = commands.Queue.DeclareOk(queue=name, message_count=0, consumer_count=0)
        raw = encode_method(m)
        assert raw[4] == len(name.encode()) and raw[5 : 5 + raw[4]] == name.encode()
        r = commands.Basic.Return(reply_code=312, reply_text="NO_ROUTE", exchange=name, routing_key=name)
        assert name.encode() in encode_method(r)


def test_decoded_methods_are_the_brokers_classes():
    """The reader decodes into warren.protocol.commands classes, so the broker's isinstance and
    dispatch-by-type checks see one set of classes."""
    frame = pframe.marshal(C.Queue.Declare(queue="q"), 1)
    m = decode_method(frame[7:-1])
    assert type(m) is commands.Queue.Declare and isinstance(m, C.Queue.Declare)
    assert commands.INDEX_MAPPING[C.Basic.Publish.index] is commands.Basic.Publish
    assert commands.Basic.Properties is C.Basic.Properties
