"""A real server and real clients over loopback TCP: what users of the chat would notice."""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import Connect
from tests.helpers import TIMEOUT, collect, events_until, expect
from tests.raw import open_raw
from tuichat.client import ChatClient, Disconnected, RequestFailed
from tuichat.protocol import (
    Bye,
    Challenge,
    Codec,
    Connection,
    Error,
    Hello,
    Join,
    Joined,
    Left,
    Message,
    PrivateMessage,
    Role,
    RoomState,
    Send,
    Welcome,
    encode_frame,
)
from tuichat.server import ChatServer


async def test_welcome_names_the_server_the_user_and_who_is_online(connect: Connect) -> None:
    await connect("ali")
    bob = await connect("bob")
    assert bob.welcome is not None
    assert bob.welcome.server == "testserver"
    assert bob.welcome.name == "bob"
    assert bob.welcome.rooms == ("#lobby",)
    assert bob.welcome.users == ("ali", "bob")
    assert "bob" in bob.welcome.motd


async def test_a_join_is_announced_to_everyone_in_the_room_the_newcomer_included(
    connect: Connect,
) -> None:
    ali = await connect("ali")
    bob = await connect("bob")
    await expect(ali, Joined, room="#lobby", name="bob")
    await expect(bob, Joined, room="#lobby", name="bob")


async def test_a_room_message_reaches_every_member_and_only_them(connect: Connect) -> None:
    ali, bob, carol = await connect("ali"), await connect("bob"), await connect("carol")
    await ali.join("#dev")
    await bob.join("#dev")
    ack = await ali.send("#dev", "deploy at noon")
    assert (ack.room, ack.seq) == ("#dev", 1)
    for member in (ali, bob):
        message = await expect(member, Message, room="#dev")
        assert (message.sender, message.text, message.seq) == ("ali", "deploy at noon", 1)
        assert message.ts == ack.ts
    # carol is not in #dev: everything she receives up to a later lobby message has no #dev line
    await bob.send("#lobby", "barrier")
    seen = await events_until(carol, Message, room="#lobby", text="barrier")
    assert not [e for e in seen if isinstance(e, Message) and e.room == "#dev"]


async def test_a_private_message_reaches_only_its_target_and_is_echoed_to_the_sender(
    connect: Connect,
) -> None:
    ali, bob, carol = await connect("ali"), await connect("bob"), await connect("carol")
    echo = await ali.private("bob", "psst")
    assert (echo.sender, echo.to, echo.text) == ("ali", "bob", "psst")
    received = await expect(bob, PrivateMessage)
    assert (received.sender, received.to, received.text) == ("ali", "bob", "psst")
    await expect(ali, PrivateMessage, text="psst")  # the sender's log gets its copy too
    await ali.send("#lobby", "barrier")
    seen = await events_until(carol, Message, text="barrier")
    assert not [e for e in seen if isinstance(e, PrivateMessage)]


async def test_a_private_message_to_an_unknown_or_offline_user_is_an_error(
    connect: Connect,
) -> None:
    ali = await connect("ali")
    bob = await connect("bob")
    with pytest.raises(RequestFailed) as refused:
        await ali.private("nobody", "hello?")
    assert refused.value.code == "no_such_user"
    await bob.close()
    await expect(ali, Left, name="bob")
    with pytest.raises(RequestFailed) as offline:
        await ali.private("bob", "still there?")
    assert offline.value.code == "no_such_user"


async def test_private_message_target_is_matched_case_insensitively(connect: Connect) -> None:
    ali = await connect("ali")
    bob = await connect("Bob")
    await ali.private("BOB", "hi")
    received = await expect(bob, PrivateMessage)
    assert received.to == "Bob"


@pytest.mark.parametrize("how, reason", [("close", "quit"), ("abort", "disconnect")])
async def test_a_leave_is_announced_for_a_clean_exit_and_a_dropped_connection(
    connect: Connect, how: str, reason: str
) -> None:
    ali = await connect("ali")
    bob = await connect("bob")
    await bob.join("#dev")
    await ali.join("#dev")
    await getattr(bob, how)()  # close(): bye then close; abort(): socket closed without bye
    left: dict[str, str] = {}  # (each room's in turn, the rooms in any order)
    while len(left) < 2:
        event = await expect(ali, Left, name="bob")
        left[event.room] = event.reason
    assert left == {"#lobby": reason, "#dev": reason}
    assert await ali.who("#lobby") == ("ali",)


async def test_presence_lists_follow_joins_and_leaves(connect: Connect) -> None:
    ali = await connect("ali")
    bob = await connect("bob")
    carol = await connect("carol")
    assert await ali.who() == ("ali", "bob", "carol")
    state = await bob.join("#dev")
    assert state.users == ("bob",)
    state = await carol.join("#DEV")  # room names are case-insensitive
    assert (state.room, state.users) == ("#dev", ("bob", "carol"))
    await expect(bob, Joined, room="#dev", name="carol")
    assert await ali.who("#dev") == ("bob", "carol")
    await carol.part("#dev")
    left = await expect(bob, Left, room="#dev", name="carol")
    assert left.reason == "part"
    await expect(carol, Left, room="#dev", name="carol")  # the leaver hears it too
    assert await ali.who("#dev") == ("bob",)


async def test_rooms_are_listed_with_member_counts_and_forgotten_when_empty(
    connect: Connect,
) -> None:
    ali = await connect("ali")
    bob = await connect("bob")
    await ali.join("#dev")
    await bob.join("#dev")
    await bob.join("#ops")
    rooms = {info.room: info.members for info in await ali.list_rooms()}
    assert rooms == {"#lobby": 2, "#dev": 2, "#ops": 1}
    await bob.part("#ops")
    rooms = {info.room: info.members for info in await ali.list_rooms()}
    assert rooms == {"#lobby": 2, "#dev": 2}


async def test_room_requests_that_make_no_sense_are_refused(connect: Connect) -> None:
    ali = await connect("ali")
    cases = [
        (ali.part("#lobby"), "cannot_leave_lobby"),
        (ali.part("#nowhere"), "not_in_room"),
        (ali.join("#lobby"), "already_in_room"),
        (ali.join("lobby"), "invalid_room"),
        (ali.join("#has space"), "invalid_room"),
        (ali.send("#nowhere", "hi"), "not_in_room"),
        (ali.send("#lobby", "   "), "empty_text"),
        (ali.send("#lobby", "x" * 4097), "text_too_long"),
        (ali.who("#nowhere"), "no_such_room"),
    ]
    for request, code in cases:
        with pytest.raises(RequestFailed) as refused:
            await request
        assert refused.value.code == code
    await ali.send("#lobby", "x" * 4096)  # the limit itself is allowed


@pytest.mark.parametrize(
    "name",
    ["", "a" * 25, "ali bob", "-ali", "ali\x00", "ali\u202e", "@ali", "#ali", "ali!"],
)
async def test_invalid_names_are_refused(server: ChatServer, name: str) -> None:
    host, port = server.address
    with pytest.raises(RequestFailed) as refused:
        await ChatClient.connect(name, host, port)
    assert refused.value.code == "invalid_name"
    assert server.chat.users == {}


@pytest.mark.parametrize("name", ["a", "a" * 24, "Zoë", "李雷", "ali_2", "a.b-c"])
async def test_valid_names_are_accepted(connect: Connect, name: str) -> None:
    client = await connect(name)
    assert client.name == name


@pytest.mark.parametrize("taken", ["ali", "ALI", "Ali"])
async def test_a_taken_name_is_refused_case_insensitively(
    server: ChatServer, connect: Connect, taken: str
) -> None:
    await connect("ali")
    host, port = server.address
    with pytest.raises(RequestFailed) as refused:
        await ChatClient.connect(taken, host, port)
    assert refused.value.code == "name_taken"


async def test_a_refused_connection_cannot_chat(server: ChatServer, connect: Connect) -> None:
    ali = await connect("ali")
    reader, writer = await asyncio.open_connection(*server.address)
    codec_out = Codec.encode
    receiver = Connection(Role.CLIENT)

    async def exchange(*messages: Hello | Send) -> list[object]:
        for message in messages:
            writer.write(encode_frame(codec_out(message)))
        replies: list[object] = []
        async with asyncio.timeout(5):
            while len(replies) < len(messages):
                data = await reader.read(65536)
                replies += [e for e in receiver.receive_data(data) if not isinstance(e, Challenge)]
        return replies

    refused, after = await exchange(
        Hello(name="ALI", ref=1), Send(room="#lobby", text="let me in", ref=2)
    )
    assert isinstance(refused, Error) and (refused.code, refused.ref) == ("name_taken", 1)
    assert isinstance(after, Error) and (after.code, after.ref) == ("hello_required", 2)
    # the same connection may try again with a free name
    welcome = (await exchange(Hello(name="ali2", ref=3)))[0]
    assert isinstance(welcome, Welcome) and welcome.name == "ali2"
    await ali.send("#lobby", "only ali")
    messages = await collect(ali, Message, 1)
    assert [m.text for m in messages] == ["only ali"]
    writer.close()


async def test_sequence_numbers_are_gapless_and_identical_for_every_member(
    connect: Connect,
) -> None:
    clients = [await connect(name) for name in ("ali", "bob", "carol", "dave")]
    per_sender = 50

    async def talk(client: ChatClient) -> None:
        for i in range(per_sender):
            await client.send("#lobby", f"{client.name} {i}")

    await asyncio.gather(*(talk(c) for c in clients[:3]))
    total = 3 * per_sender
    seen = [await collect(c, Message, total) for c in clients]
    for messages in seen:
        assert [m.seq for m in messages] == list(range(1, total + 1))
        assert [(m.seq, m.sender, m.text) for m in messages] == [
            (m.seq, m.sender, m.text) for m in seen[0]
        ]
    for client in clients[:3]:  # each sender's own messages keep their order
        mine = [m.text for m in seen[0] if m.sender == client.name]
        assert mine == [f"{client.name} {i}" for i in range(per_sender)]


async def test_sequence_numbers_are_per_room(connect: Connect) -> None:
    ali = await connect("ali")
    await ali.join("#dev")
    assert (await ali.send("#dev", "one")).seq == 1
    assert (await ali.send("#lobby", "one")).seq == 1
    assert (await ali.send("#dev", "two")).seq == 2
    assert (await ali.join("#ops")).seq == 0


async def test_ping_measures_a_round_trip(connect: Connect) -> None:
    ali = await connect("ali")
    rtt = await ali.ping()
    assert 0 < rtt < 5


async def test_action_messages_are_marked(connect: Connect) -> None:
    ali = await connect("ali")
    bob = await connect("bob")
    await ali.send("#lobby", "waves", action=True)
    message = await expect(bob, Message, sender="ali")
    assert message.action is True


async def test_server_shutdown_says_goodbye_to_every_client(
    connect: Connect, server: ChatServer
) -> None:
    ali = await connect("ali")
    bob = await connect("bob")
    await server.stop()
    for client in (ali, bob):
        bye = await expect(client, Bye)
        assert bye.reason == "shutdown"
        end = await expect(client, Disconnected)
        assert end.clean


async def test_a_malformed_frame_closes_only_that_connection(
    server: ChatServer, connect: Connect
) -> None:
    ali = await connect("ali")
    reader, writer = await asyncio.open_connection(*server.address)
    writer.write(b"\x00\x00\x00\x02\xc1\xc1")
    receiver = Connection(Role.CLIENT)
    events: list[object] = []
    async with asyncio.timeout(5):
        while data := await reader.read(65536):
            events += receiver.receive_data(data)
    assert len(events) == 2 and isinstance(events[0], Challenge) and isinstance(events[1], Error)
    assert (events[1].code, events[1].fatal) == ("bad_frame", True)
    writer.close()
    assert (await ali.send("#lobby", "still here")).seq == 1


async def test_two_hellos_in_one_packet_leave_no_ghost(
    server: ChatServer, connect: Connect
) -> None:
    watcher = await connect("watcher")
    reader, writer = await asyncio.open_connection(*server.address)
    hellos = [Hello(name="alice", ref=1), Hello(name="bob", ref=2)]
    writer.write(b"".join(encode_frame(Codec.encode(h)) for h in hellos))
    receiver = Connection(Role.CLIENT)
    events: list[object] = []
    async with asyncio.timeout(5):
        while not any(isinstance(e, Error) for e in events):
            data = await reader.read(65536)
            assert data, f"the server closed the connection after {events}"
            events += receiver.receive_data(data)
    refusal = next(e for e in events if isinstance(e, Error))
    assert (refusal.code, refusal.ref) == ("already_welcomed", 2)
    writer.close()
    await expect(watcher, Left, name="alice")
    assert await watcher.who() == ("watcher",)
    again = await connect("alice")  # the name is free again
    assert again.name == "alice"


async def test_rooms_that_were_only_joined_and_left_are_forgotten(
    server: ChatServer, connect: Connect
) -> None:
    ali = await connect("ali")
    for i in range(50):
        await ali.join(f"#tmp{i}")
        await ali.part(f"#tmp{i}")
    assert list(server.chat.rooms) == ["#lobby"]


async def test_members_who_join_mid_stream_get_exactly_the_messages_after_their_room_state(
    server: ChatServer, connect: Connect
) -> None:
    total = 600
    ali = await connect("ali")
    joiners = [await open_raw(*server.address) for _ in range(5)]  # raw: no client-side dedup
    for n, joiner in enumerate(joiners):
        await joiner.hello(f"joiner{n}")
    await ali.join("#dev")
    window = asyncio.Semaphore(20)  # a steady stream: deliveries in every pass of the loop

    async def send(i: int) -> None:
        async with window:
            await ali.send("#dev", f"message {i}")

    sends = [asyncio.create_task(send(i)) for i in range(total)]
    states = []
    for n, joiner in enumerate(joiners):
        await sends[100 * (n + 1)]
        for _ in range(n):  # each joiner meets the server's pipeline at a different step
            await asyncio.sleep(0)
        joiner.send(Join(room="#dev", ref=1))  # lands while messages are being fanned out
        states.append(await joiner.reply(1))
    await asyncio.gather(*sends)
    for joiner, state in zip(joiners, states, strict=True):
        assert isinstance(state, RoomState)
        received: list[int] = []
        while state.seq + len(received) < total:
            event = await joiner.next(TIMEOUT)
            if isinstance(event, Message) and event.room == "#dev":
                received.append(event.seq)
        assert received == list(range(state.seq + 1, total + 1))  # no gap, nothing from before
        joiner.writer.close()
