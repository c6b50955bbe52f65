"""The codec: messages to msgpack bodies and back, validation, and hostile bodies.

Strategies for messages are built from the dataclasses' type hints, so a new
message type (or a new field type) is covered automatically or fails loudly.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import types
import typing
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tuichat.protocol import messages
from tuichat.protocol.codec import Codec, InvalidMessage, to_wire
from tuichat.protocol.connection import Connection, Role, State
from tuichat.protocol.errors import ErrorCode, ProtocolError
from tuichat.protocol.framing import encode_frame
from tuichat.protocol.messages import (
    CLIENT_MESSAGE_TYPES,
    PROTOCOL_VERSION,
    SERVER_MESSAGE_TYPES,
    Away,
    Challenge,
    Hello,
    IsTyping,
    Message,
    ModEntry,
    Ping,
    Position,
    PrivateMessage,
    Quote,
    Reaction,
    RoomInfo,
    RoomList,
    SearchHit,
    Send,
    SetAway,
    Typing,
    Welcome,
)

PER_TYPE = settings(max_examples=40, deadline=None)  # x each (role, type) pair
ALL_AT_ONCE = settings(max_examples=50, deadline=None)  # (each type has its own test too)
FUZZ = settings(max_examples=120, deadline=None)

INT_MIN = -(2**63)  # msgpack int64
UINT_MAX = 2**64 - 1  # msgpack uint64

ALL_TYPES: tuple[type[Any], ...] = tuple(dict.fromkeys(CLIENT_MESSAGE_TYPES + SERVER_MESSAGE_TYPES))
# (receiving role, message type): every type in every direction it can travel.
DIRECTED = [(Role.SERVER, cls) for cls in CLIENT_MESSAGE_TYPES] + [
    (Role.CLIENT, cls) for cls in SERVER_MESSAGE_TYPES
]

WELCOME = Welcome(version=PROTOCOL_VERSION, server="srv", name="ann", rooms=("lobby",), users=())


# --- strategies from type hints ------------------------------------------------------


def strategy_for(hint: Any) -> st.SearchStrategy[Any]:
    """A strategy for values of one field type; fails for a type it does not know."""
    if hint is str:
        return st.text()
    if hint is bool:
        return st.booleans()
    if hint is int:
        return st.integers(INT_MIN, UINT_MAX)
    if dataclasses.is_dataclass(hint):  # a map nested in a message (RoomInfo, Position, ...)
        fields = {name: strategy_for(h) for name, h in field_hints(hint).items()}
        return st.builds(hint, **fields)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union) and type(None) in args:
        (inner,) = [a for a in args if a is not type(None)]
        return st.none() | strategy_for(inner)
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return st.lists(strategy_for(args[0]), max_size=5).map(tuple)
    if origin is dict and len(args) == 2:
        return st.dictionaries(strategy_for(args[0]), strategy_for(args[1]), max_size=5)
    raise NotImplementedError(f"no strategy for field type {hint!r}; add one to strategy_for")


def field_hints(cls: type[Any]) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def message_strategy(cls: type[Any], **overrides: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Instances of `cls` with every field (defaulted ones too) drawn from its type."""
    fields = {name: strategy_for(hint) for name, hint in field_hints(cls).items()}
    return st.builds(cls, **(fields | overrides))


@functools.cache
def cached_message_strategy(cls: type[Any]) -> st.SearchStrategy[Any]:
    return message_strategy(cls)


@functools.cache
def strategy_for_direction(role: Role, cls: type[Any]) -> st.SearchStrategy[Any]:
    # A server refuses (fatally) any hello with another version, so the
    # Connection round trip uses the one it speaks; the codec round trip below
    # covers every version.
    if cls is Hello:
        return message_strategy(cls, version=st.just(PROTOCOL_VERSION))
    return message_strategy(cls)


# --- connections ready to send or receive a given message type ----------------------


def frame_of(message: Any) -> bytes:
    return encode_frame(Codec.encode(message))


def server(*, opened: bool) -> Connection:
    conn = Connection(Role.SERVER)
    if opened:
        conn.receive_data(frame_of(Hello(name="ann")))
        conn.send(WELCOME)
    return conn


def client(*, opened: bool) -> Connection:
    conn = Connection(Role.CLIENT)
    if opened:
        conn.send(Hello(name="ann"))
        conn.receive_data(frame_of(WELCOME))
    return conn


def sender_and_receiver(receiving: Role, cls: type[Any]) -> tuple[Connection, Connection]:
    """A pair in the state where `cls` may be sent by one and received by the other."""
    if receiving is Role.SERVER:
        handshake = cls is Hello  # a second hello would be refused
        return client(opened=not handshake), server(opened=not handshake)
    handshake = cls in (Welcome, Challenge)  # either after welcome would be fatal
    return server(opened=not handshake), client(opened=not handshake)


def ids(value: Any) -> str:
    if isinstance(value, Role):
        return f"to-{value.value}"
    return getattr(value, "TYPE", str(value))


# --- coverage of the message types ---------------------------------------------------


def test_every_message_class_is_registered_for_a_direction() -> None:
    defined = {
        obj
        for _, obj in inspect.getmembers(messages, inspect.isclass)
        if dataclasses.is_dataclass(obj) and hasattr(obj, "TYPE")
    }
    assert defined == set(ALL_TYPES)


@pytest.mark.parametrize("direction", [CLIENT_MESSAGE_TYPES, SERVER_MESSAGE_TYPES])
def test_type_names_are_unique_per_direction(direction: tuple[type[Any], ...]) -> None:
    names = [cls.TYPE for cls in direction]
    assert len(names) == len(set(names))


def test_every_field_of_every_message_type_has_a_strategy() -> None:
    for cls in ALL_TYPES:
        for name, hint in field_hints(cls).items():
            assert strategy_for(hint) is not None, (cls, name)


@ALL_AT_ONCE
@given(data=st.data())
def test_an_instance_of_every_message_type_round_trips_through_the_codec(
    data: st.DataObject,
) -> None:
    codec = Codec(ALL_TYPES, max_frame=16 * 1024 * 1024)
    for cls in ALL_TYPES:
        message = data.draw(cached_message_strategy(cls), label=cls.TYPE)
        assert codec.decode(Codec.encode(message)) == message


# --- round trip through the connections ----------------------------------------------


@pytest.mark.parametrize(("receiving", "cls"), DIRECTED, ids=ids)
@PER_TYPE
@given(data=st.data())
def test_message_round_trips_from_the_sending_to_the_receiving_connection(
    receiving: Role, cls: type[Any], data: st.DataObject
) -> None:
    message = data.draw(strategy_for_direction(receiving, cls))
    sender, receiver = sender_and_receiver(receiving, cls)
    wire = sender.send(message)
    assert wire == encode_frame(Codec.encode(message))
    assert receiver.receive_data(wire) == [message]


# --- what goes on the wire ------------------------------------------------------------


def test_ping_encodes_to_exact_msgpack_bytes() -> None:
    assert Codec.encode(Ping()) == b"\x82\xa4type\xa4ping\xa4data\x00"


def test_fields_that_are_none_are_left_out_of_the_wire_map() -> None:
    assert to_wire(Hello(name="ann")) == {
        "type": "hello",
        "name": "ann",
        "version": 2,
        "client": "",
    }
    assert "limits" not in to_wire(WELCOME)
    assert "ref" not in to_wire(WELCOME)


def test_room_infos_go_on_the_wire_as_maps() -> None:
    wire = to_wire(RoomList(rooms=(RoomInfo("lobby", 3), RoomInfo("dev", 1)), ref=4))
    assert wire == {
        "type": "room_list",
        "rooms": [{"room": "lobby", "members": 3}, {"room": "dev", "members": 1}],
        "more": False,
        "ref": 4,
    }


# --- validation --------------------------------------------------------------------------

CODEC = Codec(ALL_TYPES, max_frame=64 * 1024)

SAMPLE_VALUES: dict[Any, Any] = {
    str: "x",
    int: 7,
    bool: True,
    int | None: 7,
    tuple[str, ...]: ("a", "b"),
    tuple[RoomInfo, ...]: (RoomInfo("lobby", 2),),
    tuple[Position, ...]: (Position("#lobby", 5, 9),),
    tuple[Position, ...] | None: (Position("#lobby", 5, 9),),
    str | None: "token",
    tuple[Message, ...]: (Message("#lobby", 1, "ann", "hi", 1000),),
    tuple[PrivateMessage, ...]: (PrivateMessage("ann", "bob", "hi", 1000, pid=3),),
    dict[str, int] | None: {"max_text": 10},
    tuple[ModEntry, ...]: (ModEntry(3, 1000, "#dev", "kick", "eve", "ali", "spam"),),
    tuple[SearchHit, ...]: (SearchHit("#dev", 3, "ann", "release", 1000),),
    Quote | None: Quote("ann", "the original"),
    tuple[Reaction, ...] | None: (Reaction("👍", 2, ("ann", "bob")),),
    bool | None: True,
}

# Values of the wrong type for each field type (as they would arrive in msgpack).
WRONG_VALUES: dict[Any, tuple[Any, ...]] = {
    str: (1, b"x", None, True, 1.5, ["x"], {"x": "y"}),
    int: ("7", 7.0, True, False, None, b"\x07", [7]),
    bool: (1, 0, "true", None, 1.0),
    int | None: ("7", 7.0, True, b"\x07", [7]),
    tuple[str, ...]: ("ab", [1], ["a", None], {"a": "b"}, None),
    tuple[RoomInfo, ...]: (
        [{"room": "a"}],
        [{"members": 1}],
        [{"room": 1, "members": 1}],
        [{"room": "a", "members": True}],
        ["lobby"],
        [["lobby", 1]],
        {"room": "a", "members": 1},
        None,
    ),
    tuple[ModEntry, ...]: (
        [{"id": 1, "ts": 1, "room": "#a", "action": "kick", "name": "e"}],
        [{"id": "1", "ts": 1, "room": "#a", "action": "kick", "name": "e", "by": "a"}],
        ["kick"],
        None,
    ),
    tuple[Position, ...]: (
        [{"room": "a", "epoch": 1}],
        [{"room": "a", "epoch": "1", "seq": 2}],
        ["#lobby"],
        {"room": "a", "epoch": 1, "seq": 2},
        None,
    ),
    tuple[Position, ...] | None: (
        [{"room": "a", "epoch": 1}],
        ["#lobby"],
        {"room": "a", "epoch": 1, "seq": 2},
    ),
    str | None: (1, b"x", True, ["x"]),
    tuple[Message, ...]: (
        [{"room": "a", "seq": 1, "sender": "b", "text": "c"}],
        [{"room": "a", "seq": 1, "sender": "b", "text": 3, "ts": 1}],
        ["hi"],
        None,
    ),
    tuple[PrivateMessage, ...]: (
        [{"sender": "a", "to": "b", "text": "c"}],
        [{"sender": "a", "to": "b", "text": 3, "ts": 1}],
        [{"sender": "a", "to": "b", "text": "c", "ts": 1, "pid": "2"}],
        ["hi"],
        None,
    ),
    dict[str, int] | None: ([], ["a", 1], {"a": "b"}, {"a": True}, {b"a": 1}, "x"),
    tuple[SearchHit, ...]: (
        [{"room": "#a", "seq": 1, "sender": "b", "text": "c"}],
        [{"room": "#a", "seq": "1", "sender": "b", "text": "c", "ts": 1}],
        ["hit"],
        None,
    ),
    Quote | None: ({"sender": "a"}, {"sender": "a", "text": 1}, "quote", ["a", "b"]),
    tuple[Reaction, ...] | None: (
        [{"text": "x"}],
        [{"text": "x", "count": "2"}],
        [{"text": "x", "count": 1, "names": "ann"}],
        ["x"],
        {"text": "x", "count": 1},
    ),
    bool | None: (1, 0, "true", 1.0),
}


def sample_wire(cls: type[Any]) -> dict[str, Any]:
    """A valid wire map for `cls` with every field present and ref 7."""
    values = {name: SAMPLE_VALUES[hint] for name, hint in field_hints(cls).items()}
    wire = to_wire(cls(**values))
    wire["ref"] = 7
    return wire


FIELDS = [(cls, name) for cls in ALL_TYPES for name in field_hints(cls)]
REQUIRED = [
    (cls, f.name)
    for cls in ALL_TYPES
    for f in dataclasses.fields(cls)
    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
]


def decode(value: Any) -> Any:
    return CODEC.decode(msgpack.packb(value))


def test_every_field_type_has_sample_and_wrong_values() -> None:
    hints = {hint for cls in ALL_TYPES for hint in field_hints(cls).values()}
    assert hints <= SAMPLE_VALUES.keys()
    assert hints <= WRONG_VALUES.keys()


@pytest.mark.parametrize("cls", ALL_TYPES, ids=ids)
def test_a_complete_valid_map_decodes_to_the_message(cls: type[Any]) -> None:
    wire = sample_wire(cls)
    message = decode(wire)
    assert type(message) is cls
    assert to_wire(message) | {"ref": 7} == wire


@pytest.mark.parametrize(
    ("cls", "field"), FIELDS, ids=lambda v: ids(v) if isinstance(v, type) else v
)
def test_wrong_field_type_is_bad_message_keeping_an_int_ref(cls: type[Any], field: str) -> None:
    expected_ref = None if field == "ref" else 7
    for wrong in WRONG_VALUES[field_hints(cls)[field]]:
        result = decode(sample_wire(cls) | {field: wrong})
        assert isinstance(result, InvalidMessage), wrong
        assert result.code is ErrorCode.BAD_MESSAGE
        assert result.ref == expected_ref
        assert field in result.detail


@pytest.mark.parametrize(
    ("cls", "field"), REQUIRED, ids=lambda v: ids(v) if isinstance(v, type) else v
)
def test_missing_required_field_is_bad_message(cls: type[Any], field: str) -> None:
    wire = sample_wire(cls)
    del wire[field]
    result = decode(wire)
    assert result == InvalidMessage(ErrorCode.BAD_MESSAGE, result.detail, ref=7)
    assert field in result.detail


@pytest.mark.parametrize("cls", ALL_TYPES, ids=ids)
def test_fields_with_defaults_may_be_left_out(cls: type[Any]) -> None:
    required = {name for c, name in REQUIRED if c is cls}
    wire = {k: v for k, v in sample_wire(cls).items() if k in required or k == "type"}
    message = decode(wire)
    assert type(message) is cls
    for f in dataclasses.fields(cls):
        if f.name not in required:
            assert getattr(message, f.name) == f.default


def test_unknown_fields_are_ignored() -> None:
    assert decode({"type": "ping", "data": 3, "future": [1, 2]}) == Ping(data=3)


def test_unknown_type_is_unknown_type_keeping_the_ref() -> None:
    result = decode({"type": "teleport", "ref": 12})
    assert isinstance(result, InvalidMessage)
    assert (result.code, result.ref) == (ErrorCode.UNKNOWN_TYPE, 12)
    assert "teleport" in result.detail


def test_codec_only_knows_the_types_it_accepts() -> None:
    server_codec = Codec(CLIENT_MESSAGE_TYPES, max_frame=1024)
    result = server_codec.decode(Codec.encode(WELCOME))
    assert isinstance(result, InvalidMessage)
    assert result.code is ErrorCode.UNKNOWN_TYPE


@pytest.mark.parametrize(
    "value",
    [{}, {"ref": 3}, {"type": 1, "ref": 3}, {"type": None, "ref": 3}, {"type": b"ping", "ref": 3}],
    ids=["empty", "no-type", "int-type", "nil-type", "bin-type"],
)
def test_missing_or_non_string_type_is_bad_message(value: dict[str, Any]) -> None:
    result = decode(value)
    assert isinstance(result, InvalidMessage)
    assert result.code is ErrorCode.BAD_MESSAGE
    assert result.ref == value.get("ref")


@pytest.mark.parametrize(
    "value", [1, -1, "ping", b"ping", None, True, 1.5, [], ["type", "ping"]], ids=repr
)
def test_top_level_value_that_is_not_a_map_is_bad_message(value: Any) -> None:
    result = decode(value)
    assert isinstance(result, InvalidMessage)
    assert result.code is ErrorCode.BAD_MESSAGE
    assert result.ref is None


def test_bool_is_not_accepted_for_an_int_field() -> None:
    result = decode({"type": "ping", "data": True, "ref": 5})
    assert isinstance(result, InvalidMessage)
    assert (result.code, result.ref) == (ErrorCode.BAD_MESSAGE, 5)


def test_int_is_not_accepted_for_a_bool_field() -> None:
    result = decode({"type": "send", "room": "r", "text": "t", "action": 1, "ref": 5})
    assert isinstance(result, InvalidMessage)
    assert (result.code, result.ref) == (ErrorCode.BAD_MESSAGE, 5)


@pytest.mark.parametrize("ref", [True, "5", 5.0, None, [5]], ids=repr)
def test_a_ref_that_is_not_an_int_is_not_echoed(ref: Any) -> None:
    result = decode({"type": "teleport", "ref": ref})
    assert isinstance(result, InvalidMessage)
    assert result.ref is None


def test_int_limits_are_msgpack_int64_and_uint64() -> None:
    assert decode({"type": "ping", "data": UINT_MAX}) == Ping(data=UINT_MAX)
    assert decode({"type": "ping", "data": INT_MIN}) == Ping(data=INT_MIN)


# --- bodies that are not (acceptable) msgpack --------------------------------------------


def outcome(conn: Connection, data: bytes) -> list[Any] | ProtocolError:
    """What `receive_data` did: its events, or the ProtocolError it raised.

    Any other exception propagates and fails the test.
    """
    try:
        return conn.receive_data(data)
    except ProtocolError as exc:
        return exc


def assert_bad_frame(conn: Connection, body: bytes) -> None:
    result = outcome(conn, encode_frame(body))
    assert isinstance(result, ProtocolError), result
    assert result.code is ErrorCode.BAD_FRAME


def assert_refused(conn: Connection, body: bytes) -> None:
    """Refused either fatally (bad_frame) or as a bad message; nothing else."""
    result = outcome(conn, encode_frame(body))
    if isinstance(result, ProtocolError):
        assert result.code is ErrorCode.BAD_FRAME
    else:
        assert len(result) == 1
        assert isinstance(result[0], InvalidMessage)
        assert result[0].code is ErrorCode.BAD_MESSAGE


ROLES = pytest.mark.parametrize("role", [Role.SERVER, Role.CLIENT], ids=ids)

PING = Codec.encode(Ping())
NOT_MSGPACK = {
    "reserved-byte-c1": b"\xc1",
    "truncated-map": PING[:-1],
    "map-missing-value": b"\x81\xa4type",
    "two-values": PING + b"\xc0",
    "truncated-str": b"\xa5abc",
    "truncated-float": b"\xcb\x00\x00",
    "huge-array32": b"\xdd\xff\xff\xff\xff",
    "huge-map32": b"\xdf\xff\xff\xff\xff",
    "huge-str32": b"\xdb\xff\xff\xff\xff",
    "huge-bin32": b"\xc6\xff\xff\xff\xff",
    "huge-ext32": b"\xc9\xff\xff\xff\xff\x01",
    "array16-longer-than-frame": b"\xdc\xff\xff\xc0",
    "map16-longer-than-frame": b"\xde\xff\xff\xa1a\xc0",
    "str16-longer-than-frame": b"\xda\xff\xffabc",
    "huge-array-as-field": b"\x82\xa4type\xa4ping\xa4data\xdd\xff\xff\xff\xff",
    "huge-str-as-key": b"\x81\xdb\x7f\xff\xff\xff",
    "many-nested-huge-arrays": b"\xdc\xff\xff" * 500,
}

# Valid msgpack that PROTOCOL.md (section 3, rules 5, 6 and 9) declares fatal.
FORBIDDEN_MSGPACK = {
    "fixext1": b"\xd4\x01\x00",
    "ext8-empty": b"\xc7\x00\x05",
    "ext-as-field": b"\x82\xa4type\xa4ping\xa4data\xd4\x01\x00",
    "ext-in-unknown-field": b"\x82\xa4type\xa4ping\xa1x\x91\xd4\x01\x00",
    "timestamp32": msgpack.packb(msgpack.Timestamp(1, 0)),
    "timestamp64": msgpack.packb(msgpack.Timestamp(1, 5)),
    "timestamp96": msgpack.packb(msgpack.Timestamp(-1, 0)),
    "timestamp-as-field": msgpack.packb({"type": "ping", "data": msgpack.Timestamp(1, 0)}),
    "invalid-utf8-str": b"\xa2\xff\xfe",
    "invalid-utf8-type": b"\x81\xa4type\xa2\xff\xfe",
    "invalid-utf8-key": b"\x81\xa2\xc3\x28\x01",
    "invalid-utf8-in-unknown-field": b"\x82\xa4type\xa4ping\xa1x\xa1\x80",
    "surrogate-in-str": b"\x81\xa4type\xa3\xed\xa0\x80",
    "int-key": msgpack.packb({"type": "ping", 1: 2}),
    "nil-key": msgpack.packb({None: 1}),
    "bool-key": msgpack.packb({True: 1}),
    "float-key": msgpack.packb({1.5: 1}),
    "array-key": b"\x81\x91\x01\x01",
    "map-key": b"\x81\x81\xa1a\x01\x01",
    "int-key-in-limits": msgpack.packb({"type": "welcome", "limits": {1: 2}}),
    "int-key-in-unknown-field": msgpack.packb({"type": "ping", "x": [{"a": {3: 4}}]}),
}


@ROLES
@pytest.mark.parametrize("body", FORBIDDEN_MSGPACK.values(), ids=FORBIDDEN_MSGPACK.keys())
def test_ext_invalid_utf8_and_non_string_keys_are_bad_frame(role: Role, body: bytes) -> None:
    conn = Connection(role)
    assert_bad_frame(conn, body)
    assert conn.state is State.CLOSED


def test_a_bin_key_is_tolerated_but_never_matches_a_field() -> None:
    assert decode({"type": "ping", b"data": 5, "ref": 1}) == Ping(ref=1)
    result = decode({b"type": "ping", "ref": 1})
    assert isinstance(result, InvalidMessage)
    assert (result.code, result.ref) == (ErrorCode.BAD_MESSAGE, 1)


def test_nil_ref_and_nil_limits_mean_absent() -> None:
    assert decode({"type": "ping", "ref": None}) == Ping()
    wire = to_wire(WELCOME) | {"limits": None, "ref": None}
    assert decode(wire) == WELCOME


def test_room_info_maps_may_carry_unknown_keys() -> None:
    wire = {"type": "room_list", "rooms": [{"room": "#a", "members": 1, "topic": "x"}]}
    assert decode(wire) == RoomList(rooms=(RoomInfo("#a", 1),))


@pytest.mark.parametrize("cls", ALL_TYPES, ids=ids)
def test_every_field_that_is_not_none_is_sent(cls: type[Any]) -> None:
    values = {name: SAMPLE_VALUES[hint] for name, hint in field_hints(cls).items()}
    assert set(to_wire(cls(**values))) == {"type", *values}


def test_codec_bounds_announced_lengths_by_max_frame() -> None:
    codec = Codec(ALL_TYPES, max_frame=16)
    assert codec.decode(msgpack.packb({"type": "ping", "x": "a" * 8})) == Ping()
    with pytest.raises(ProtocolError) as info:
        codec.decode(msgpack.packb({"type": "ping", "x": "a" * 17}))
    assert info.value.code is ErrorCode.BAD_FRAME


@pytest.mark.parametrize(
    "prefix", [b"\x91", b"\x81\xa1k", b"\xdc\x00\x01"], ids=["fixarray", "fixmap", "array16"]
)
@pytest.mark.parametrize("depth", [1_000, 100_000])
def test_deeply_nested_values_are_bad_frame_or_bad_message(prefix: bytes, depth: int) -> None:
    conn = Connection(Role.SERVER, max_frame=1 << 20)
    assert_refused(conn, prefix * depth + b"\xc0")


def test_deep_nesting_inside_a_field_is_refused() -> None:
    conn = Connection(Role.SERVER, max_frame=1 << 20)
    body = b"\x82\xa4type\xa4ping\xa4data" + b"\x91" * 100_000 + b"\x01"
    assert_refused(conn, body)


# --- fuzzing with valid msgpack ---------------------------------------------------------

msgpack_leaves = (
    st.none()
    | st.booleans()
    | st.integers(INT_MIN, UINT_MAX)
    | st.floats()
    | st.text(max_size=20)
    | st.binary(max_size=20)
)
msgpack_values = st.recursive(
    msgpack_leaves,
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(st.text(max_size=10) | msgpack_leaves, children, max_size=5)
    ),
    max_leaves=20,
)
string_keyed_values = st.recursive(
    msgpack_leaves,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=10,
)


def as_msgpack(value: Any) -> Any:
    """Nested dataclasses are not msgpack: put them on the wire the way to_wire does."""
    if isinstance(value, tuple) and value and dataclasses.is_dataclass(value[0]):
        return [dataclasses.asdict(r) for r in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return value


@st.composite
def message_like_maps(draw: st.DrawFn, accepts: tuple[type[Any], ...]) -> dict[Any, Any]:
    """Maps shaped like a message: mostly a type the receiver accepts, fields mostly right."""
    cls = draw(st.sampled_from(accepts) | st.sampled_from(ALL_TYPES))
    wire: dict[Any, Any] = {"type": cls.TYPE}
    for name, hint in field_hints(cls).items():
        how = draw(st.sampled_from(["typed"] * 6 + ["omitted", "wrong", "anything"]))
        if how == "typed":
            wire[name] = as_msgpack(draw(strategy_for(hint)))
        elif how == "wrong":
            wire[name] = draw(st.sampled_from(WRONG_VALUES[hint]))
        elif how == "anything":
            wire[name] = draw(string_keyed_values)
    extra = draw(st.dictionaries(st.text(max_size=8), string_keyed_values, max_size=2))
    if draw(st.integers(0, 19)) == 0:
        wire["type"] = draw(msgpack_leaves)
    return extra | wire


def conforms(value: Any, hint: Any) -> bool:
    """Whether a decoded value has exactly the declared type (no bool for int etc.)."""
    if hint in (str, int, bool):
        return type(value) is hint
    if dataclasses.is_dataclass(hint):
        return type(value) is hint and all(
            conforms(getattr(value, name), h) for name, h in field_hints(hint).items()
        )
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        return any(value is None if a is type(None) else conforms(value, a) for a in args)
    if origin is tuple:
        return type(value) is tuple and all(conforms(v, args[0]) for v in value)
    if origin is dict:
        return type(value) is dict and all(
            conforms(k, args[0]) and conforms(v, args[1]) for k, v in value.items()
        )
    raise NotImplementedError(hint)


def assert_events_are_valid(conn: Connection, events: list[Any]) -> None:
    accepted = CLIENT_MESSAGE_TYPES if conn.role is Role.SERVER else SERVER_MESSAGE_TYPES
    for event in events:
        if isinstance(event, InvalidMessage):
            assert isinstance(event.code, ErrorCode)
            assert event.ref is None or type(event.ref) is int
            continue
        assert type(event) in accepted
        for name, hint in field_hints(type(event)).items():
            assert conforms(getattr(event, name), hint), (name, event)


@ROLES
@FUZZ
@given(value=msgpack_values)
def test_any_msgpack_value_in_a_frame_yields_events_or_protocol_error(
    role: Role, value: Any
) -> None:
    conn = server(opened=True) if role is Role.SERVER else client(opened=True)
    result = outcome(conn, encode_frame(msgpack.packb(value)))
    if isinstance(result, ProtocolError):
        assert result.code is ErrorCode.BAD_FRAME
    else:
        assert_events_are_valid(conn, result)


MAPS_FOR = {
    Role.SERVER: message_like_maps(CLIENT_MESSAGE_TYPES),
    Role.CLIENT: message_like_maps(SERVER_MESSAGE_TYPES),
}


@ROLES
@FUZZ
@given(data=st.data())
def test_message_like_maps_decode_to_well_typed_messages_or_invalid_message(
    role: Role, data: st.DataObject
) -> None:
    value = data.draw(MAPS_FOR[role])
    if role is Role.SERVER:
        conn = server(opened=value["type"] != "hello")
    else:
        conn = client(opened=value["type"] not in ("welcome", "challenge"))
    events = outcome(conn, encode_frame(msgpack.packb(value)))
    if isinstance(events, ProtocolError):
        # The one fatal case: a well-formed hello with a version the server lacks.
        assert events.code is ErrorCode.UNSUPPORTED_VERSION
        assert value["type"] == "hello"
        assert value.get("version") != PROTOCOL_VERSION
        return
    assert len(events) == 1
    assert_events_are_valid(conn, events)
    if not isinstance(events[0], InvalidMessage):
        assert CODEC.decode(Codec.encode(events[0])) == events[0]


@FUZZ
@given(body=st.binary(min_size=1, max_size=200))
def test_arbitrary_body_in_a_frame_yields_events_or_bad_frame(body: bytes) -> None:
    conn = server(opened=True)
    result = outcome(conn, encode_frame(body))
    if isinstance(result, ProtocolError):
        assert result.code is ErrorCode.BAD_FRAME
    else:
        assert_events_are_valid(conn, result)


def test_send_with_every_field_decodes_to_an_equal_send() -> None:
    message = Send(room="lobby", text="héllo ✓", action=True, id="m1", ref=UINT_MAX)
    assert CODEC.decode(Codec.encode(message)) == message


# --- away and typing ---------------------------------------------------------------------


def test_away_and_typing_frames_go_on_the_wire_as_documented() -> None:
    assert to_wire(SetAway()) == {"type": "set_away", "away": True, "reason": ""}
    assert to_wire(SetAway(away=False, ref=3)) == {
        "type": "set_away",
        "away": False,
        "reason": "",
        "ref": 3,
    }
    assert to_wire(Typing(room="@bob")) == {"type": "typing", "room": "@bob"}
    assert to_wire(Away(name="ali", away=True, reason="lunch")) == {
        "type": "away",
        "name": "ali",
        "away": True,
        "reason": "lunch",
    }
    assert to_wire(IsTyping(name="ali", room="#dev")) == {
        "type": "is_typing",
        "name": "ali",
        "room": "#dev",
    }
    wire = to_wire(dataclasses.replace(WELCOME, away=("bob",), away_reasons=("out",)))
    assert (wire["away"], wire["away_reasons"]) == (("bob",), ("out",))
    assert CODEC.decode(msgpack.packb({"type": "set_away"})) == SetAway(away=True, reason="")


def test_lists_from_a_server_before_away_decode_with_nobody_away() -> None:
    for value in (
        {"type": "welcome", "version": 2, "server": "s", "name": "ann", "rooms": [], "users": []},
        {"type": "room_state", "room": "#dev", "users": ["ann"]},
        {"type": "user_list", "room": "", "users": ["ann"]},
    ):
        message = decode(value)
        assert (message.away, message.away_reasons) == ((), ())


@dataclasses.dataclass(frozen=True, slots=True)
class WelcomeBeforeAway:
    """`welcome` as a client written before away and typing knows it."""

    TYPE: typing.ClassVar[str] = "welcome"
    version: int
    server: str
    name: str
    rooms: tuple[str, ...]
    users: tuple[str, ...]


def test_a_client_from_before_away_and_typing_reads_past_them() -> None:
    older = [cls for cls in SERVER_MESSAGE_TYPES if cls not in (Away, IsTyping, Welcome)]
    codec = Codec([*older, WelcomeBeforeAway], max_frame=64 * 1024)
    welcome = dataclasses.replace(WELCOME, away=("bob",), away_reasons=("out",))
    assert codec.decode(Codec.encode(welcome)) == WelcomeBeforeAway(
        version=PROTOCOL_VERSION, server="srv", name="ann", rooms=("lobby",), users=()
    )  # the new fields are unknown keys, ignored
    for frame in (Away(name="bob", away=True), IsTyping(name="bob", room="#dev")):
        refused = codec.decode(Codec.encode(frame))  # an unknown type: not fatal, ignored
        assert isinstance(refused, InvalidMessage) and refused.code is ErrorCode.UNKNOWN_TYPE
