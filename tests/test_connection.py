"""The Connection state machine: handshake, sending rules, bye, fatal errors, chunking."""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tuichat.protocol.codec import Codec, InvalidMessage
from tuichat.protocol.connection import (
    DEFAULT_CLIENT_MAX_FRAME,
    DEFAULT_MAX_FRAME,
    Connection,
    Event,
    Role,
    State,
)
from tuichat.protocol.errors import ErrorCode, LocalProtocolError, ProtocolError
from tuichat.protocol.framing import encode_frame
from tuichat.protocol.messages import (
    CLIENT_MESSAGE_TYPES,
    PROTOCOL_VERSION,
    SERVER_MESSAGE_TYPES,
    Ack,
    Away,
    Bye,
    Challenge,
    Delete,
    Edit,
    Error,
    Hello,
    History,
    HistoryPage,
    Ignore,
    Ignored,
    IsTyping,
    Join,
    Joined,
    Left,
    ListRooms,
    MarkRead,
    Message,
    ModEntry,
    Moderate,
    Moderated,
    ModLog,
    ModLogPage,
    Notice,
    Part,
    Parted,
    Ping,
    Pong,
    Presence,
    Private,
    PrivateHistory,
    PrivateMessage,
    PrivatePage,
    React,
    ReadMarker,
    RoomDetails,
    RoomInfo,
    RoomList,
    RoomReset,
    RoomState,
    Search,
    SearchHit,
    SearchResults,
    Send,
    SetAway,
    SetPrivate,
    SetTopic,
    SignedOut,
    SignOut,
    Typing,
    Update,
    UserList,
    Welcome,
    Who,
)

FAST = settings(max_examples=200, deadline=None)

WELCOME = Welcome(
    version=PROTOCOL_VERSION, server="srv", name="ann", rooms=("lobby",), users=("ann", "bob")
)

# One instance of every message type, with a ref wherever the type has one.
EXAMPLES: dict[type[Any], Any] = {
    Hello: Hello(name="ann", client="test", ref=1),
    Send: Send(room="lobby", text="hi", ref=2),
    Private: Private(to="bob", text="psst", ref=3),
    Join: Join(room="dev", ref=4),
    Part: Part(room="dev", ref=5),
    ListRooms: ListRooms(ref=6),
    Who: Who(room="lobby", ref=7),
    Ping: Ping(data=42, ref=8),
    Pong: Pong(data=42, ref=9),
    Bye: Bye(reason="quit", message="later", ref=10),
    Welcome: WELCOME,
    Message: Message(room="lobby", seq=1, sender="bob", text="hello", ts=1000),
    Ack: Ack(room="lobby", seq=2, ts=1001, id="m1", ref=2),
    PrivateMessage: PrivateMessage(sender="bob", to="ann", text="psst", ts=1002),
    Joined: Joined(room="dev", name="bob", ts=1003),
    Presence: Presence(
        room="#dev", ts=1004, members=3, joined=("ana",), left=("bob",), reasons=("quit",)
    ),
    Left: Left(room="dev", name="bob", ts=1004),
    RoomState: RoomState(room="dev", users=("ann",), seq=3, ref=4),
    Parted: Parted(room="dev", ref=5),
    RoomList: RoomList(rooms=(RoomInfo("lobby", 2), RoomInfo("dev", 1)), ref=6),
    UserList: UserList(room="lobby", users=("ann", "bob"), ref=7),
    Notice: Notice(text="maintenance at noon"),
    Error: Error(code="no_such_user", message="no user 'carl'", ref=3),
    History: History(room="#dev", before=10, limit=5, ref=11),
    HistoryPage: HistoryPage(
        room="#dev", epoch=7, messages=(Message("#dev", 9, "bob", "old", 999),), ref=11
    ),
    RoomReset: RoomReset(room="#dev", epoch=8, seq=0),
    Challenge: Challenge(nonce="n" * 32, server_id="s" * 22),
    PrivateHistory: PrivateHistory(name="bob", before=9, limit=5, ref=12),
    PrivatePage: PrivatePage(
        name="bob", messages=(PrivateMessage("bob", "ann", "old", 998, pid=4),), ref=12
    ),
    MarkRead: MarkRead(room="#dev", seq=9, epoch=7, ref=13),
    ReadMarker: ReadMarker(room="@bob", seq=4, ref=13),
    SignOut: SignOut(ref=14),
    SignedOut: SignedOut(devices=2, ref=14),
    SetAway: SetAway(away=True, reason="lunch", ref=15),
    Away: Away(name="ann", away=True, reason="lunch", ref=15),
    Typing: Typing(room="#dev"),
    IsTyping: IsTyping(name="bob", room="#dev"),
    Moderate: Moderate(room="#dev", action="ban", name="eve", reason="spam", duration=60, ref=16),
    Moderated: Moderated(room="#dev", action="ban", name="eve", by="ali", until=9, ts=3, ref=16),
    SetTopic: SetTopic(room="#dev", topic="friday", ref=17),
    RoomDetails: RoomDetails(room="#dev", topic="friday", owner="ali", ops=("bob",), ref=17),
    SetPrivate: SetPrivate(room="#dev", private=True, ref=18),
    Ignore: Ignore(name="eve", ref=19),
    Ignored: Ignored(names=("eve",), ref=19),
    ModLog: ModLog(room="#dev", ref=20),
    ModLogPage: ModLogPage(entries=(ModEntry(1, 2, "#dev", "kick", "eve", "ali"),), ref=20),
    React: React(room="#dev", seq=9, text="👍", id="r1", ref=21),
    Edit: Edit(room="#dev", seq=9, text="fixed", id="e1", ref=22),
    Delete: Delete(room="#dev", seq=9, id="d1", ref=23),
    Update: Update(
        room="#dev", seq=10, sender="bob", ts=5, verb="react", target=9, text="👍", on=True
    ),
    Search: Search(words="release", room="#dev", ref=24),
    SearchResults: SearchResults(
        hits=(SearchHit("#dev", 9, "bob", "release day", 999),), next="x", ref=24
    ),
}

CLIENT_HANDSHAKE = (Hello, Ping, Pong, Bye)
SERVER_HANDSHAKE = (Challenge, Welcome, Error, Ping, Pong, Bye)
CLIENT_ONLY = [c for c in CLIENT_MESSAGE_TYPES if c not in SERVER_MESSAGE_TYPES]
SERVER_ONLY = [c for c in SERVER_MESSAGE_TYPES if c not in CLIENT_MESSAGE_TYPES]


def ids(value: Any) -> str:
    if isinstance(value, Role):
        return value.value
    return getattr(value, "TYPE", repr(value))


def frame(message: Any) -> bytes:
    return encode_frame(Codec.encode(message))


def raw_frame(value: Any) -> bytes:
    return encode_frame(msgpack.packb(value))


def greeted_server() -> Connection:
    """A server that has received a hello but not yet sent welcome."""
    server = Connection(Role.SERVER)
    assert server.receive_data(frame(Hello(name="ann"))) == [Hello(name="ann")]
    return server


def open_server() -> Connection:
    server = greeted_server()
    server.send(WELCOME)
    return server


def open_client() -> Connection:
    client = Connection(Role.CLIENT)
    client.send(Hello(name="ann"))
    assert client.receive_data(frame(WELCOME)) == [WELCOME]
    return client


def test_examples_cover_every_message_type() -> None:
    assert set(EXAMPLES) == set(CLIENT_MESSAGE_TYPES) | set(SERVER_MESSAGE_TYPES)


@pytest.mark.parametrize("role", list(Role), ids=ids)
def test_new_connection_is_in_handshake(role: Role) -> None:
    conn = Connection(role)
    assert conn.state is State.HANDSHAKE
    assert not conn.they_closed
    assert not conn.we_closed


# --- exact bytes ------------------------------------------------------------------------

PING_FRAME = bytes.fromhex(
    "00000011"  # length 17
    "82"  # map of 2
    "a4 74797065"  # "type"
    "a4 70696e67"  # "ping"
    "a4 64617461"  # "data"
    "00"  # 0
)


@pytest.mark.parametrize("role", list(Role), ids=ids)
def test_sending_a_ping_produces_the_exact_frame(role: Role) -> None:
    assert Connection(role).send(Ping()) == PING_FRAME


def test_sending_a_hello_produces_the_exact_frame() -> None:
    expected = bytes.fromhex(
        "0000002d"  # length 45
        "85"  # map of 5
        "a4 74797065 a5 68656c6c6f"  # "type": "hello"
        "a4 6e616d65 a3 616e6e"  # "name": "ann"
        "a7 76657273696f6e 02"  # "version": 2
        "a6 636c69656e74 a0"  # "client": ""
        "a3 726566 cd 0100"  # "ref": 256
    )
    assert Connection(Role.CLIENT).send(Hello(name="ann", ref=256)) == expected


@pytest.mark.parametrize("role", list(Role), ids=ids)
def test_receiving_the_exact_bytes_of_a_minimal_ping(role: Role) -> None:
    minimal = bytes.fromhex("0000000b 81 a4 74797065 a4 70696e67")  # {"type": "ping"}
    assert Connection(role).receive_data(minimal) == [Ping(data=0, ref=None)]


def test_server_decodes_the_hello_frame_worked_example_of_protocol_md() -> None:
    example = bytes.fromhex(
        "00000023 84a474797065a568656c6c6fa46e616d65a3616c69a776657273696f6e02a372656601"
    )
    assert Connection(Role.SERVER).receive_data(example) == [Hello(name="ali", version=2, ref=1)]


def test_server_encodes_the_pong_worked_example_of_protocol_md_exactly() -> None:
    example = bytes.fromhex("00000016 83 a474797065 a4706f6e67 a464617461 2a a3726566 07")
    assert Connection(Role.SERVER).send(Pong(data=42, ref=7)) == example
    assert Connection(Role.CLIENT).receive_data(example) == [Pong(data=42, ref=7)]


def test_timestamps_go_on_the_wire_as_uint64() -> None:
    wire = open_server().send(Joined(room="#lobby", name="ali", ts=1795335602765))
    assert bytes.fromhex("a2 7473 cf 000001a20257424d") in wire


# --- server handshake -------------------------------------------------------------------


@pytest.mark.parametrize("cls", [c for c in CLIENT_MESSAGE_TYPES if c not in CLIENT_HANDSHAKE])
def test_server_answers_chat_messages_before_hello_with_hello_required(cls: type[Any]) -> None:
    server = Connection(Role.SERVER)
    message = EXAMPLES[cls]
    [event] = server.receive_data(frame(message))
    assert isinstance(event, InvalidMessage)
    assert event.code is ErrorCode.HELLO_REQUIRED
    assert event.ref == message.ref
    assert server.state is State.HANDSHAKE
    assert server.receive_data(frame(Hello(name="ann"))) == [Hello(name="ann")]


@pytest.mark.parametrize("cls", CLIENT_HANDSHAKE, ids=ids)
def test_server_accepts_hello_ping_pong_and_bye_before_hello(cls: type[Any]) -> None:
    server = Connection(Role.SERVER)
    assert server.receive_data(frame(EXAMPLES[cls])) == [EXAMPLES[cls]]


def test_server_validates_fields_before_checking_the_handshake() -> None:
    [event] = Connection(Role.SERVER).receive_data(raw_frame({"type": "join", "ref": 3}))
    assert isinstance(event, InvalidMessage)
    assert (event.code, event.ref) == (ErrorCode.BAD_MESSAGE, 3)


def test_server_may_answer_a_ping_before_the_handshake() -> None:
    server = Connection(Role.SERVER)
    server.receive_data(frame(Ping(data=1)))
    assert server.send(Pong(data=1)) == frame(Pong(data=1))
    assert server.state is State.HANDSHAKE


@pytest.mark.parametrize("version", [0, PROTOCOL_VERSION + 1, -1, 2**64 - 1], ids=repr)
def test_server_refuses_hello_with_another_version_fatally(version: int) -> None:
    server = Connection(Role.SERVER)
    with pytest.raises(ProtocolError) as info:
        server.receive_data(frame(Hello(name="ann", version=version)))
    assert info.value.code is ErrorCode.UNSUPPORTED_VERSION
    assert server.state is State.CLOSED


def test_server_stays_in_handshake_until_it_sends_welcome() -> None:
    server = greeted_server()
    assert server.state is State.HANDSHAKE
    server.send(WELCOME)
    assert server.state is State.OPEN


def test_second_hello_after_welcome_is_already_welcomed_keeping_the_ref() -> None:
    server = open_server()
    [event] = server.receive_data(frame(Hello(name="ann", ref=77)))
    assert isinstance(event, InvalidMessage)
    assert (event.code, event.ref) == (ErrorCode.ALREADY_WELCOMED, 77)
    assert server.state is State.OPEN


def test_hello_with_another_version_after_welcome_is_only_already_welcomed() -> None:
    server = open_server()
    [event] = server.receive_data(frame(Hello(name="ann", version=99)))
    assert isinstance(event, InvalidMessage)
    assert event.code is ErrorCode.ALREADY_WELCOMED
    assert server.state is State.OPEN


@pytest.mark.parametrize("cls", [c for c in CLIENT_MESSAGE_TYPES if c is not Hello], ids=ids)
def test_open_server_accepts_every_client_message(cls: type[Any]) -> None:
    server = open_server()
    assert server.receive_data(frame(EXAMPLES[cls])) == [EXAMPLES[cls]]


@pytest.mark.parametrize("cls", SERVER_ONLY, ids=ids)
def test_server_treats_server_only_types_as_unknown(cls: type[Any]) -> None:
    [event] = open_server().receive_data(frame(EXAMPLES[cls]))
    assert isinstance(event, InvalidMessage)
    assert event.code is ErrorCode.UNKNOWN_TYPE


def test_invalid_message_leaves_the_connection_usable() -> None:
    server = open_server()
    data = raw_frame({"type": "send", "room": 1, "text": "x", "ref": 5}) + frame(Ping())
    [invalid, ping] = server.receive_data(data)
    assert isinstance(invalid, InvalidMessage)
    assert (invalid.code, invalid.ref) == (ErrorCode.BAD_MESSAGE, 5)
    assert ping == Ping()
    assert server.state is State.OPEN


# --- client handshake -------------------------------------------------------------------


@pytest.mark.parametrize("cls", SERVER_HANDSHAKE, ids=ids)
def test_client_accepts_challenge_welcome_error_ping_pong_and_bye_before_welcome(
    cls: type[Any],
) -> None:
    client = Connection(Role.CLIENT)
    assert client.receive_data(frame(EXAMPLES[cls])) == [EXAMPLES[cls]]
    assert client.state is (State.OPEN if cls is Welcome else State.HANDSHAKE)


@pytest.mark.parametrize("cls", [c for c in SERVER_MESSAGE_TYPES if c not in SERVER_HANDSHAKE])
def test_client_receiving_a_chat_message_before_welcome_is_a_protocol_error(
    cls: type[Any],
) -> None:
    client = Connection(Role.CLIENT)
    with pytest.raises(ProtocolError):
        client.receive_data(frame(EXAMPLES[cls]))
    assert client.state is State.CLOSED


def test_client_is_open_after_welcome() -> None:
    assert open_client().state is State.OPEN


def test_second_welcome_is_a_protocol_error() -> None:
    client = open_client()
    with pytest.raises(ProtocolError):
        client.receive_data(frame(WELCOME))
    assert client.state is State.CLOSED


def test_a_second_challenge_is_a_protocol_error() -> None:
    client = Connection(Role.CLIENT)
    client.receive_data(frame(EXAMPLES[Challenge]))
    with pytest.raises(ProtocolError, match="second 'challenge'"):
        client.receive_data(frame(EXAMPLES[Challenge]))
    assert client.state is State.CLOSED


def test_a_challenge_after_welcome_is_a_protocol_error() -> None:
    client = open_client()
    with pytest.raises(ProtocolError, match="'challenge' after 'welcome'"):
        client.receive_data(frame(EXAMPLES[Challenge]))


@pytest.mark.parametrize(
    "cls", [c for c in SERVER_MESSAGE_TYPES if c not in (Welcome, Challenge)], ids=ids
)
def test_open_client_accepts_every_server_message(cls: type[Any]) -> None:
    client = open_client()
    assert client.receive_data(frame(EXAMPLES[cls])) == [EXAMPLES[cls]]


@pytest.mark.parametrize("cls", CLIENT_ONLY, ids=ids)
def test_client_treats_client_only_types_as_unknown(cls: type[Any]) -> None:
    [event] = open_client().receive_data(frame(EXAMPLES[cls]))
    assert isinstance(event, InvalidMessage)
    assert event.code is ErrorCode.UNKNOWN_TYPE


# --- what each side may send ---------------------------------------------------------------


@pytest.mark.parametrize("opened", [False, True], ids=["handshake", "open"])
@pytest.mark.parametrize("cls", SERVER_ONLY, ids=ids)
def test_client_cannot_send_server_messages(cls: type[Any], opened: bool) -> None:
    client = open_client() if opened else Connection(Role.CLIENT)
    with pytest.raises(LocalProtocolError):
        client.send(EXAMPLES[cls])


@pytest.mark.parametrize("opened", [False, True], ids=["handshake", "open"])
@pytest.mark.parametrize("cls", CLIENT_ONLY, ids=ids)
def test_server_cannot_send_client_messages(cls: type[Any], opened: bool) -> None:
    server = open_server() if opened else Connection(Role.SERVER)
    with pytest.raises(LocalProtocolError):
        server.send(EXAMPLES[cls])


@pytest.mark.parametrize("cls", [c for c in CLIENT_MESSAGE_TYPES if c not in CLIENT_HANDSHAKE])
def test_client_cannot_send_chat_messages_before_welcome(cls: type[Any]) -> None:
    client = Connection(Role.CLIENT)
    with pytest.raises(LocalProtocolError):
        client.send(EXAMPLES[cls])
    assert client.state is State.HANDSHAKE


@pytest.mark.parametrize("cls", [c for c in SERVER_MESSAGE_TYPES if c not in SERVER_HANDSHAKE])
def test_server_cannot_send_chat_messages_before_welcome(cls: type[Any]) -> None:
    server = greeted_server()
    with pytest.raises(LocalProtocolError):
        server.send(EXAMPLES[cls])
    assert server.state is State.HANDSHAKE


@pytest.mark.parametrize("cls", CLIENT_HANDSHAKE, ids=ids)
def test_client_may_send_hello_ping_pong_and_bye_before_welcome(cls: type[Any]) -> None:
    assert Connection(Role.CLIENT).send(EXAMPLES[cls]) == frame(EXAMPLES[cls])


def test_client_cannot_send_hello_after_welcome() -> None:
    with pytest.raises(LocalProtocolError):
        open_client().send(Hello(name="ann"))


def test_server_cannot_send_a_second_welcome() -> None:
    server = open_server()
    with pytest.raises(LocalProtocolError):
        server.send(WELCOME)
    assert server.state is State.OPEN


@pytest.mark.parametrize("cls", [Bye, Ping, Pong], ids=ids)
@pytest.mark.parametrize("make", [open_client, open_server], ids=["client", "server"])
def test_nothing_may_be_sent_after_sending_bye(make: Any, cls: type[Any]) -> None:
    conn = make()
    conn.send(Bye())
    assert conn.we_closed
    with pytest.raises(LocalProtocolError):
        conn.send(EXAMPLES[cls])


# --- bye and end of stream ---------------------------------------------------------------


@pytest.mark.parametrize("make", [open_client, open_server], ids=["client", "server"])
def test_received_bye_is_an_event_and_marks_the_peer_closed(make: Any) -> None:
    conn = make()
    assert conn.receive_data(frame(Bye(reason="shutdown"))) == [Bye(reason="shutdown")]
    assert conn.they_closed
    assert conn.receive_data(b"") == []


@pytest.mark.parametrize(
    "after",
    [frame(Ping()), b"\x00", b"\x00\x00\x00\x05ab"],
    ids=["whole-frame", "one-byte", "partial-frame"],
)
@pytest.mark.parametrize("same_chunk", [False, True], ids=["next-chunk", "same-chunk"])
@pytest.mark.parametrize("make", [open_client, open_server], ids=["client", "server"])
def test_data_after_a_received_bye_is_a_protocol_error(
    make: Any, same_chunk: bool, after: bytes
) -> None:
    conn = make()
    with pytest.raises(ProtocolError) as info:
        if same_chunk:
            conn.receive_data(frame(Bye()) + after)
        else:
            assert conn.receive_data(frame(Bye())) == [Bye()]
            conn.receive_data(after)
    assert info.value.code is ErrorCode.BAD_FRAME
    assert conn.state is State.CLOSED


def test_state_is_closed_once_both_sides_said_bye() -> None:
    link = Link()
    link.client_sends(Hello(name="ann"))
    link.server_sends(WELCOME)
    link.client_sends(Bye(ref=1))
    link.server_sends(Bye(message="goodbye", ref=1))
    assert link.client.we_closed and link.client.they_closed
    assert link.server.we_closed and link.server.they_closed
    assert link.client.state is State.CLOSED
    assert link.server.state is State.CLOSED


@pytest.mark.parametrize("make", [open_client, open_server], ids=["client", "server"])
def test_end_of_stream_closes_and_refuses_further_data(make: Any) -> None:
    conn = make()
    conn.receive_eof()
    assert conn.state is State.CLOSED
    assert conn.they_closed
    assert conn.receive_data(b"") == []
    with pytest.raises(ProtocolError) as info:
        conn.receive_data(frame(Ping()))
    assert info.value.code is ErrorCode.BAD_FRAME


# --- fatal errors -------------------------------------------------------------------------

# (name, connection factory, data that breaks it, expected code)
FATAL = [
    ("oversized-frame", lambda: Connection(Role.SERVER), (DEFAULT_MAX_FRAME + 1).to_bytes(4, "big"),
     ErrorCode.FRAME_TOO_LARGE),
    ("oversized-frame-to-client", lambda: Connection(Role.CLIENT),
     (DEFAULT_CLIENT_MAX_FRAME + 1).to_bytes(4, "big"), ErrorCode.FRAME_TOO_LARGE),
    ("empty-frame", open_server, b"\x00\x00\x00\x00", ErrorCode.BAD_FRAME),
    ("not-msgpack", open_server, encode_frame(b"\xc1"), ErrorCode.BAD_FRAME),
    ("trailing-bytes-in-frame", open_client, encode_frame(Codec.encode(Ping()) + b"\x00"),
     ErrorCode.BAD_FRAME),
    ("unsupported-version", lambda: Connection(Role.SERVER), frame(Hello(name="a", version=1)),
     ErrorCode.UNSUPPORTED_VERSION),
    ("message-before-welcome", lambda: Connection(Role.CLIENT), frame(EXAMPLES[Message]),
     None),
    ("second-welcome", open_client, frame(WELCOME), None),
]  # fmt: skip


@pytest.mark.parametrize(("make", "data", "code"), [pytest.param(*f[1:4], id=f[0]) for f in FATAL])
def test_protocol_error_closes_the_connection(
    make: Any, data: bytes, code: ErrorCode | None
) -> None:
    conn = make()
    with pytest.raises(ProtocolError) as info:
        conn.receive_data(data)
    if code is not None:
        assert info.value.code is code
    assert conn.state is State.CLOSED


@pytest.mark.parametrize(
    ("make", "data"),
    [pytest.param(*f[1:3], id=f[0]) for f in FATAL],
)
def test_connection_refuses_more_data_after_a_protocol_error(make: Any, data: bytes) -> None:
    conn = make()
    with pytest.raises(ProtocolError):
        conn.receive_data(data)
    with pytest.raises(ProtocolError):
        conn.receive_data(frame(Ping()))
    assert conn.state is State.CLOSED


def test_oversized_frame_is_refused_from_its_header_alone() -> None:
    server = Connection(Role.SERVER)
    header = (DEFAULT_MAX_FRAME + 1).to_bytes(4, "big")
    assert server.receive_data(header[:3]) == []
    with pytest.raises(ProtocolError) as info:
        server.receive_data(header[3:])
    assert info.value.code is ErrorCode.FRAME_TOO_LARGE


def test_frame_of_exactly_max_frame_is_accepted() -> None:
    server = Connection(Role.SERVER, max_frame=64)
    body = msgpack.packb({"type": "ping", "pad": "x" * 47})
    assert len(body) == 64
    assert server.receive_data(encode_frame(body)) == [Ping()]


# --- arbitrary bytes ------------------------------------------------------------------------


def check_events(role: Role, events: list[Event]) -> None:
    accepted = CLIENT_MESSAGE_TYPES if role is Role.SERVER else SERVER_MESSAGE_TYPES
    assert isinstance(events, list)
    for event in events:
        assert isinstance(event, InvalidMessage) or type(event) in accepted


@FAST
@given(data=st.binary(max_size=300))
def test_arbitrary_bytes_to_a_server_yield_events_or_protocol_error(data: bytes) -> None:
    server = Connection(Role.SERVER)
    try:
        events = server.receive_data(data)
    except ProtocolError:
        assert server.state is State.CLOSED
    else:
        check_events(Role.SERVER, events)


chunks_of_frames_and_noise = st.lists(
    st.binary(max_size=30)
    | st.binary(min_size=1, max_size=60).map(encode_frame)
    | st.sampled_from([frame(m) for m in EXAMPLES.values()]),
    max_size=12,
)


@pytest.mark.parametrize("role", list(Role), ids=ids)
@FAST
@given(chunks=chunks_of_frames_and_noise)
def test_arbitrary_chunks_yield_events_or_protocol_error_only(
    role: Role, chunks: list[bytes]
) -> None:
    conn = Connection(role, max_frame=1024)
    for chunk in chunks:
        try:
            events = conn.receive_data(chunk)
        except ProtocolError:
            assert conn.state is State.CLOSED
            return
        check_events(role, events)


# --- chunking -----------------------------------------------------------------------------


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(max(c, 0), len(data)) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in pairwise(points)]


def receive_chunks(conn: Connection, chunks: list[bytes]) -> list[Event]:
    events: list[Event] = []
    for chunk in chunks:
        events += conn.receive_data(chunk)
    return events


client_stream = st.lists(
    st.sampled_from([EXAMPLES[c] for c in CLIENT_MESSAGE_TYPES if c is not Bye])
    | st.builds(Send, room=st.text(max_size=20), text=st.text(max_size=200), ref=st.integers(0, 99))
    | st.binary(min_size=1, max_size=40).map(lambda b: {"type": "send", "text": b})
    | st.just({"type": "nonsense"}),
    min_size=1,
    max_size=10,
)
server_stream = st.lists(
    st.sampled_from(
        [EXAMPLES[c] for c in SERVER_MESSAGE_TYPES if c not in (Bye, Welcome, Challenge)]
    )
    | st.builds(Message, room=st.just("lobby"), seq=st.integers(0, 2**40),
                sender=st.text(max_size=10), text=st.text(max_size=200), ts=st.integers(0, 2**41))
    | st.just({"type": "message", "room": "lobby"}),
    min_size=1,
    max_size=10,
)  # fmt: skip


def encode_stream(items: list[Any], *, bye: bool) -> bytes:
    data = b"".join(raw_frame(i) if isinstance(i, dict) else frame(i) for i in items)
    return data + (frame(Bye()) if bye else b"")


@FAST
@given(items=client_stream, bye=st.booleans(), cuts=st.lists(st.integers(0, 2000), max_size=15))
def test_any_chunking_gives_a_server_the_same_events(
    items: list[Any], bye: bool, cuts: list[int]
) -> None:
    stream = frame(Hello(name="ann")) + encode_stream(items, bye=bye)
    whole = Connection(Role.SERVER).receive_data(stream)
    assert receive_chunks(Connection(Role.SERVER), split(stream, cuts)) == whole
    assert whole[0] == Hello(name="ann")
    assert len(whole) == len(items) + 1 + bye


@FAST
@given(items=server_stream, bye=st.booleans(), cuts=st.lists(st.integers(0, 2000), max_size=15))
def test_any_chunking_gives_a_client_the_same_events(
    items: list[Any], bye: bool, cuts: list[int]
) -> None:
    stream = frame(WELCOME) + encode_stream(items, bye=bye)
    whole_conn = Connection(Role.CLIENT)
    whole = whole_conn.receive_data(stream)
    chunked_conn = Connection(Role.CLIENT)
    assert receive_chunks(chunked_conn, split(stream, cuts)) == whole
    assert len(whole) == len(items) + 1 + bye
    assert (chunked_conn.state, chunked_conn.they_closed) == (whole_conn.state, bye)


@pytest.mark.parametrize("role", list(Role), ids=ids)
@settings(max_examples=50, deadline=None)
@given(data=st.data())
def test_one_byte_at_a_time_gives_the_same_events(role: Role, data: st.DataObject) -> None:
    if role is Role.SERVER:
        stream = frame(Hello(name="ann")) + encode_stream(data.draw(client_stream), bye=True)
    else:
        stream = frame(WELCOME) + encode_stream(data.draw(server_stream), bye=True)
    whole = Connection(role).receive_data(stream)
    conn = Connection(role)
    assert receive_chunks(conn, [stream[i : i + 1] for i in range(len(stream))]) == whole
    assert conn.they_closed


# --- a whole session over an in-memory link ------------------------------------------------


class Link:
    """A client and a server connection joined back to back, without sockets."""

    def __init__(self) -> None:
        self.client = Connection(Role.CLIENT)
        self.server = Connection(Role.SERVER)

    def client_sends(self, *messages: Any) -> list[Event]:
        """Send from the client; return what the server receives."""
        return self.server.receive_data(b"".join(self.client.send(m) for m in messages))

    def server_sends(self, *messages: Any) -> list[Event]:
        """Send from the server; return what the client receives."""
        return self.client.receive_data(b"".join(self.server.send(m) for m in messages))


def test_a_whole_session_between_a_client_and_a_server() -> None:
    link = Link()

    hello = Hello(name="ann", client="test", ref=1)
    assert link.client_sends(hello) == [hello]
    welcome = Welcome(
        version=PROTOCOL_VERSION,
        server="srv",
        name="ann",
        rooms=("lobby",),
        users=("ann",),
        motd="hi",
        limits={"max_text": 2000},
        ref=1,
    )
    assert link.server_sends(welcome) == [welcome]
    assert link.client.state is link.server.state is State.OPEN

    send = Send(room="lobby", text="hello all", id="m1", ref=2)
    assert link.client_sends(send) == [send]
    ack = Ack(room="lobby", seq=1, ts=1_700_000_000_000, id="m1", ref=2)
    message = Message(room="lobby", seq=1, sender="ann", text="hello all", ts=1_700_000_000_000)
    assert link.server_sends(ack, message) == [ack, message]

    assert link.client_sends(Ping(data=5, ref=3)) == [Ping(data=5, ref=3)]
    assert link.server_sends(Pong(data=5, ref=3)) == [Pong(data=5, ref=3)]

    assert link.client_sends(ListRooms(ref=4)) == [ListRooms(ref=4)]
    rooms = RoomList(rooms=(RoomInfo("lobby", 1),), ref=4)
    assert link.server_sends(rooms) == [rooms]

    bye = Bye(reason="quit", ref=5)
    assert link.client_sends(bye) == [bye]
    assert link.client.we_closed and link.server.they_closed
    farewell = Bye(reason="quit", message="goodbye", ref=5)
    assert link.server_sends(farewell) == [farewell]
    assert link.server.we_closed and link.client.they_closed

    with pytest.raises(LocalProtocolError):
        link.client.send(Ping())
    with pytest.raises(LocalProtocolError):
        link.server.send(Ping())
    with pytest.raises(ProtocolError):
        link.client.receive_data(frame(Ping()))


def test_server_errors_reach_the_client_during_the_handshake() -> None:
    link = Link()
    link.client_sends(Hello(name="b@d", ref=1))
    error = Error(code="invalid_name", message="bad name", ref=1)
    assert link.server_sends(error) == [error]
    assert link.client.state is State.HANDSHAKE
    hello = Hello(name="bad", ref=2)
    assert link.client_sends(hello) == [hello]
