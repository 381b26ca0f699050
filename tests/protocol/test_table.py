"""warren.protocol.table: the type-preserving field-table codec, checked against pamqp.

- decode(encode(x)) == x, wire types included;
- encode(decode(raw)) == raw byte for byte, for tables pamqp encodes and for
  tables this encoder makes from random typed values;
- decoded values equal pamqp.decode.field_table's on the same bytes;
- replace_headers / set_property change one property and leave every other
  property as pamqp decodes it (and restoring gives back the original bytes).
"""

from __future__ import annotations

import datetime
import decimal
import math
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pamqp import commands as C
from pamqp import decode as pdecode
from pamqp import encode as pencode
from pamqp import header as pheader
from warren.protocol import properties as scanprops
from warren.protocol import table as T
from warren.protocol.fieldtypes import _INT_RANGES

from tests.protocol._strategies import properties as props_strategy
from tests.protocol._strategies import tables as pamqp_tables

SETTINGS = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# ----------------------------------------------------------------------------- helpers


def sig(v):
    """A comparable description of a value including its wire type (NaN-safe)."""
    t = T.amqp_type(v)
    if isinstance(v, dict):
        return ("F", [(k, sig(x)) for k, x in v.items()])
    if isinstance(v, list | tuple):
        return ("A", [sig(x) for x in v])
    if isinstance(v, float):
        return (t, "nan" if math.isnan(v) else v)
    if isinstance(v, decimal.Decimal):
        return (t, v.as_tuple())
    if isinstance(v, bytes | bytearray):
        return (t, bytes(v))
    if isinstance(v, datetime.datetime):
        return (t, v, getattr(v, "raw", None))
    return (t, v)


def same_as_pamqp(mine, theirs) -> bool:
    """Equal values of compatible Python types (ours may be typed subclasses)."""
    if isinstance(theirs, dict):
        return (
            isinstance(mine, dict)
            and list(mine) == list(theirs)
            and all(same_as_pamqp(mine[k], theirs[k]) for k in theirs)
        )
    if isinstance(theirs, list):
        return (
            isinstance(mine, list)
            and len(mine) == len(theirs)
            and all(same_as_pamqp(a, b) for a, b in zip(mine, theirs, strict=True))
        )
    if isinstance(theirs, float) and math.isnan(theirs):
        return isinstance(mine, float) and math.isnan(mine)
    return isinstance(mine, type(theirs)) and mine == theirs


def content_header(props: C.Basic.Properties, size: int = 3) -> bytes:
    return pheader.ContentHeader(0, size, props).marshal()


def pamqp_props(payload: bytes) -> dict:
    ch = pheader.ContentHeader()
    ch.unmarshal(payload)
    p = ch.properties
    return {k: getattr(p, k) for k in p.__slots__}


# ----------------------------------------------------------------------------- strategies

utf8_keys = st.text(max_size=12).filter(lambda k: len(k.encode()) <= 255)
any_keys = st.one_of(utf8_keys, st.binary(max_size=12).map(lambda b: b.decode("utf-8", "surrogateescape")))


def _ints(letter: str):
    lo, hi = _INT_RANGES[letter]
    return st.integers(lo, hi).map(lambda v: T.typed(v, letter))


def _non_utf8(b: bytes) -> bool:
    try:
        b.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def scalars(*, pamqp_safe: bool = False):
    """Typed scalars of every RabbitMQ field type. ``pamqp_safe``: only values pamqp
    can decode (timestamps it can turn into a datetime)."""
    ts_max = 253402300799999 if pamqp_safe else 2**64 - 1
    return st.one_of(
        st.none(),
        st.booleans(),
        *(_ints(t) for t in "bBsuIil"),
        st.integers(-(2**63), 2**63 - 1),  # plain ints: default 'I' or 'l'
        st.floats(width=32).map(T.float32),
        st.floats(),
        st.builds(
            lambda m, s: decimal.Decimal(m).scaleb(-s), st.integers(-(2**31), 2**31 - 1), st.integers(0, 12)
        ),
        st.text(max_size=30),
        st.binary(min_size=1, max_size=20).filter(_non_utf8).map(T.longstr),
        st.binary(max_size=20).map(bytearray),
        st.integers(0, ts_max).map(T.timestamp),
    )


def typed_tables(*, keys=any_keys, pamqp_safe: bool = False):
    leaves = scalars(pamqp_safe=pamqp_safe)
    return st.recursive(
        st.dictionaries(keys, leaves, max_size=6),
        lambda inner: st.dictionaries(
            keys, st.one_of(leaves, inner, st.lists(st.one_of(leaves, inner), max_size=4)), max_size=5
        ),
        max_leaves=20,
    )


# ----------------------------------------------------------------------------- unit cases


def test_rabbitmq_type_letters():
    assert T.encode_value(T.byte(-1)) == b"b\xff"
    assert T.encode_value(T.octet(255)) == b"B\xff"
    assert T.encode_value(T.short(-2)) == b"s\xff\xfe"
    assert T.encode_value(T.ushort(65535)) == b"u\xff\xff"
    assert T.encode_value(T.signed_int(-1)) == b"I\xff\xff\xff\xff"
    assert T.encode_value(T.unsigned_int(2**32 - 1)) == b"i\xff\xff\xff\xff"
    assert T.encode_value(T.long(1)) == b"l" + struct.pack(">q", 1)
    assert T.encode_value(T.float32(1.5)) == b"f" + struct.pack(">f", 1.5)
    assert T.encode_value(1.5) == b"d" + struct.pack(">d", 1.5)
    assert T.encode_value(decimal.Decimal("1.25")) == b"D\x02\x00\x00\x00\x7d"
    assert T.encode_value("é") == b"S\x00\x00\x00\x02" + "é".encode()
    assert T.encode_value(b"\x00") == b"x\x00\x00\x00\x01\x00"
    assert T.encode_value(True) == b"t\x01"
    assert T.encode_value(None) == b"V"
    assert T.encode_value([1]) == b"A\x00\x00\x00\x05I\x00\x00\x00\x01"
    assert T.encode_value({}) == b"F\x00\x00\x00\x00"
    epoch = datetime.datetime(1970, 1, 1, 0, 0, 7, tzinfo=datetime.UTC)
    assert T.encode_value(epoch) == b"T" + struct.pack(">Q", 7)
    assert T.encode_value(epoch.replace(tzinfo=None)) == b"T" + struct.pack(">Q", 7)


def test_defaults_match_pika():
    assert T.amqp_type(1) == "I"
    assert T.amqp_type(2**31 - 1) == "I"
    assert T.amqp_type(2**31) == "l"
    assert T.amqp_type(-(2**31) - 1) == "l"
    assert T.amqp_type(True) == "t"
    assert T.amqp_type(0.5) == "d"
    assert T.amqp_type("s") == "S"
    assert T.amqp_type(b"s") == "x"
    assert T.amqp_type(bytearray(b"s")) == "x"
    assert T.amqp_type([]) == "A"
    assert T.amqp_type({}) == "F"
    assert T.amqp_type(None) == "V"
    assert T.amqp_type(decimal.Decimal(1)) == "D"
    assert T.amqp_type(datetime.datetime.now(datetime.UTC)) == "T"


def test_types_survive_decode_and_arithmetic_is_plain():
    raw = T.encode_table({"count": T.long(1), "small": T.byte(3), "n": 5})
    d, end = T.decode_table(raw)
    assert end == len(raw)
    assert d == {"count": 1, "small": 3, "n": 5}
    assert (T.amqp_type(d["count"]), T.amqp_type(d["small"]), T.amqp_type(d["n"])) == ("l", "b", "I")
    assert type(d["count"] + 1) is int
    assert T.encode_table(d) == raw


def test_pamqp_smallest_int_is_kept():
    raw = pencode.field_table({"a": 1, "b": 300, "c": 40000, "d": 2**31, "e": -(2**40)})
    d, _ = T.decode_table(raw)
    assert [T.amqp_type(v) for v in d.values()] == ["b", "s", "u", "i", "l"]
    assert T.encode_table(d) == raw


def test_ranges_are_checked():
    with pytest.raises(ValueError):
        T.byte(128)
    with pytest.raises(ValueError):
        T.unsigned_int(-1)
    with pytest.raises(ValueError):
        T.encode_value(2**63)
    with pytest.raises(ValueError):
        T.float32(1e300)
    with pytest.raises(TypeError):
        T.encode_value(object())
    with pytest.raises(ValueError):
        T.encode_table({"k" * 256: 1})


@pytest.mark.parametrize(
    "raw",
    [
        b"\x00\x00\x00",
        b"\x00\x00\x00\x05\x01aI\x00",  # value truncated inside the table
        b"\x00\x00\x00\x03\x01aZ",  # unknown type
        b"\x00\x00\x00\x09\x01aS\x00\x00\x00\x09",  # longstr longer than the table
        b"\x00\x00\x00\x02\x05a",  # key longer than the table
    ],
)
def test_malformed_raises_value_error(raw):
    with pytest.raises(ValueError):
        T.decode_table(raw)


def test_negative_decimal_packs_like_pamqp():
    v = decimal.Decimal("-1.25")
    assert T.encode_value(v) == b"D" + pencode.decimal(v)


def test_millisecond_and_huge_timestamps_keep_raw_value():
    for raw in (2**32, 1_700_000_000_123, 2**64 - 1):
        enc = b"\x00\x00\x00\x0b\x01tT" + struct.pack(">Q", raw)
        d, _ = T.decode_table(enc)
        assert T.amqp_type(d["t"]) == "T"
        assert T.encode_table(d) == enc


def test_continuation_flag_words_are_kept():
    # flags: headers + continuation bit; one extra flag word (0); then headers
    hdr = struct.pack(">HHQH", 60, 0, 5, 0x2001) + b"\x00\x00" + T.encode_table({"a": 1})
    out = T.replace_headers(hdr, {"b": T.long(2)})
    assert out[:16] == hdr[:16]
    assert T.get_headers(out) == {"b": 2}
    assert T.replace_headers(out, {"a": 1}) == hdr


def test_headers_none_removes_and_empty_keeps_flag():
    p = C.Basic.Properties(headers={"BCC": ["x"]}, reply_to="r", priority=3)
    raw = content_header(p)
    gone = T.replace_headers(raw, None)
    assert not scanprops.scan(gone).flags & scanprops.F_HEADERS
    empty = T.replace_headers(raw, {})
    assert scanprops.scan(empty).flags & scanprops.F_HEADERS
    assert T.get_headers(empty) == {}
    assert pamqp_props(gone)["reply_to"] == "r"
    assert pamqp_props(empty)["priority"] == 3


# ----------------------------------------------------------------------------- properties (hypothesis)


@SETTINGS
@given(typed_tables())
def test_decode_encode_round_trip_keeps_types(table):
    raw = T.encode_table(table)
    decoded, end = T.decode_table(raw)
    assert end == len(raw)
    assert sig(decoded) == sig(table)
    assert T.encode_table(decoded) == raw


@SETTINGS
@given(pamqp_tables)
def test_pamqp_tables_round_trip_byte_for_byte(table):
    raw = pencode.field_table(table)
    decoded, end = T.decode_table(raw)
    assert end == len(raw)
    assert T.encode_table(decoded) == raw
    _n, expected = pdecode.field_table(raw)
    assert same_as_pamqp(decoded, expected)


@SETTINGS
@given(typed_tables(keys=utf8_keys, pamqp_safe=True))
def test_values_match_pamqp_decode(table):
    raw = T.encode_table(table)
    _n, expected = pdecode.field_table(raw)
    decoded, _ = T.decode_table(raw)
    assert same_as_pamqp(decoded, expected)


@SETTINGS
@given(st.lists(scalars(), max_size=6))
def test_arrays_round_trip(items):
    raw = T.encode_array(items)
    decoded, end = T.decode_array(raw)
    assert end == len(raw)
    assert sig(decoded) == sig(items)
    assert T.encode_array(decoded) == raw


@SETTINGS
@given(st.binary(max_size=80))
def test_random_bytes_raise_only_value_error(data):
    try:
        T.decode_table(b"\x00\x00\x00" + bytes([len(data) & 0xFF]) + data)
    except ValueError:
        pass


@SETTINGS
@given(props_strategy(), st.one_of(st.none(), typed_tables(keys=utf8_keys, pamqp_safe=True)))
def test_replace_headers_leaves_other_properties(props, headers):
    raw = content_header(props, size=12345)
    before = pamqp_props(raw)
    out = T.replace_headers(raw, headers)
    assert out[:12] == raw[:12]  # class, weight, body size
    after = pamqp_props(out)
    if headers is None:
        assert after["headers"] is None
    else:
        assert sig(T.get_headers(out)) == sig(headers)
        assert same_as_pamqp(T.get_headers(out), after["headers"] or {})
    before.pop("headers")
    after.pop("headers")
    assert after == before
    # the scan the broker does on every message agrees with the new header
    s0, s1 = scanprops.scan(raw), scanprops.scan(out)
    for name in ("delivery_mode", "priority", "expiration", "reply_to", "user_id", "message_id"):
        assert getattr(s1, name) == getattr(s0, name)
    # putting the original table back gives the original bytes
    original = T.get_property(raw, "headers")
    assert T.replace_headers(out, original) == raw


@SETTINGS
@given(
    props_strategy(),
    st.sampled_from(["reply_to", "expiration", "message_id", "content_type", "app_id"]),
    st.one_of(st.none(), st.text(max_size=30)),
)
def test_set_property_changes_one_property(props, name, value):
    raw = content_header(props)
    before = pamqp_props(raw)
    out = T.set_property(raw, name, value)
    after = pamqp_props(out)
    attr = name
    assert after[attr] == value
    assert T.get_property(out, name) == value
    before.pop(attr)
    after.pop(attr)
    assert after == before
    assert T.set_property(out, name, T.get_property(raw, name)) == raw


@SETTINGS
@given(props_strategy())
def test_decode_properties_matches_pamqp(props):
    raw = content_header(props)
    mine = T.decode_properties(raw)
    # pamqp shows an absent cluster_id as ''
    theirs = {k: v for k, v in pamqp_props(raw).items() if v is not None and (k, v) != ("cluster_id", "")}
    assert set(mine) == set(theirs) | ({"headers"} if "headers" in mine else set())
    for k, v in theirs.items():
        if k == "headers":
            assert same_as_pamqp(mine[k], v)
        elif k == "timestamp":
            assert mine[k].replace(tzinfo=None) == v.replace(tzinfo=None)
        else:
            assert mine[k] == v, k
