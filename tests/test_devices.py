"""One person, several devices; private conversations; read markers (on every deployment).

Each test runs on every kind of `deployment`; the two devices of one identity sit on the two
servers (the same server twice for a single-server kind), so on Redis they are on different
servers. Effects that cross servers arrive a moment later: tests wait for them, never for time.
"""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Any

from tests.deployments import Deployment, deployment_fixture
from tests.helpers import TIMEOUT, expect, until
from tests.raw import Raw
from tests.test_contract import (
    REFS,
    ask,
    ask_for,
    events_while,
    frames_until,
    is_message,
    is_private,
    presence_of,
    seen,
    who,
)
from tuichat.chat.names import name_key
from tuichat.client import ChatClient, Disconnected, Reconnected, Reconnecting, SigningKey
from tuichat.protocol import (
    Ack,
    Bye,
    Error,
    Event,
    Hello,
    Joined,
    Left,
    MarkRead,
    Message,
    Parted,
    Ping,
    Pong,
    Private,
    PrivateHistory,
    PrivateMessage,
    PrivatePage,
    ReadMarker,
    RoomState,
    Send,
    Welcome,
)
from tuichat.server import ChatServer
from tuichat.server.ownership import token_hash

__all__ = ["deployment_fixture"]


async def two_devices(
    deployment: Deployment, name: str = "bob", **kwargs: Any
) -> tuple[SigningKey, ChatClient, ChatClient]:
    """A key and two welcomed devices of its name: one on each server."""
    key = SigningKey.generate()
    phone = await deployment.connect(name, on=0, key=key, **kwargs)
    await known_there(deployment, name)
    laptop = await deployment.connect(name, on=1, key=key, **kwargs)
    return key, phone, laptop


async def known_there(deployment: Deployment, name: str) -> None:
    """Until the other server has heard of `name`'s registration and of its sessions on the
    first (a moment after they happen, on the Redis kinds)."""
    other = deployment.servers[1]

    async def heard() -> bool:
        registered = name_key(name) in other.ownership.identities
        return registered and await devices_known(other, name) > 0

    await until(heard, True)


async def barrier(client: ChatClient) -> list[Any]:
    """Every event of `client` until the answer to a ping: what the server sent it before."""
    assert client.connected
    done = asyncio.ensure_future(client.ping())
    events: list[Any] = []
    async with asyncio.timeout(TIMEOUT):
        while not done.done():
            waiting = asyncio.ensure_future(client.next_event())
            await asyncio.wait({done, waiting}, return_when=asyncio.FIRST_COMPLETED)
            if waiting.done():
                events.append(waiting.result())
            else:
                waiting.cancel()
    return events


async def raw_barrier(raw: Raw) -> list[Event]:
    """Every frame the server sends `raw` until the answer to a ping."""
    ref = next(REFS)
    raw.send(Ping(data=ref, ref=ref))
    return await frames_until(raw, lambda fs: any(getattr(f, "ref", None) == ref for f in fs))


def about(name: str, events: list[Any]) -> list[Any]:
    """The `joined` and `left` announcements about `name`."""
    return [e for e in events if isinstance(e, Joined | Left) and e.name == name]


# --- several sessions of one identity ----------------------------------------


async def test_two_devices_get_everything_mirror_each_other_and_the_others_see_one_person(
    deployment: Deployment,
) -> None:
    watcher = await deployment.connect("watcher", on=0)
    alice = await deployment.connect("alice", on=1)
    await until(watcher.who, ("alice", "watcher"))
    _, phone, laptop = await two_devices(deployment)
    assert laptop.welcome is not None and laptop.welcome.devices == 2
    for client in (watcher, alice, phone, laptop):
        await until(client.who, ("alice", "bob", "watcher"))  # the person, once
    arrival = await events_while(watcher, lambda es: bool(about("bob", es)))
    assert presence_of("bob", "#lobby", arrival) == [("joined", "")]  # then no more: see below

    await phone.join("#dev")  # rooms are the person's: the laptop is in it at once
    state = await expect(laptop, RoomState, room="#dev")
    assert state.ref is None and "bob" in state.users
    await expect(laptop, Joined, room="#dev", name="bob")  # as the phone hears it
    await watcher.join("#dev")
    await expect(laptop, Joined, room="#dev", name="watcher")
    await laptop.send("#dev", "from the laptop")
    await phone.send("#lobby", "from the phone")
    for device, text in ((phone, "from the laptop"), (laptop, "from the phone")):
        assert (await expect(device, Message, text=text)).sender == "bob"  # own messages mirror

    sent = await alice.private("bob", "to both of you")
    for device in (phone, laptop):
        assert (await expect(device, PrivateMessage, text="to both of you")).pid == sent.pid
    mine = await phone.private("alice", "from my phone")
    copy = await expect(laptop, PrivateMessage, text="from my phone")  # the other device's copy
    assert (copy.sender, copy.to, copy.pid, copy.ref) == ("bob", "alice", mine.pid, None)
    await expect(alice, PrivateMessage, text="from my phone")
    copies = [e for e in await barrier(phone) if is_private("from my phone")(e)]
    assert [c.ref for c in copies if isinstance(c, PrivateMessage)] == [mine.ref]  # its reply only

    await laptop.close()  # one device goes: the person stays
    await phone.send("#lobby", "still here")
    events = await events_while(watcher, lambda es: seen(es, is_message("still here")))
    assert about("bob", events) == []
    assert await watcher.who() == ("alice", "bob", "watcher")
    await phone.close()  # the last one goes: the person leaves (each room's frames in turn)
    events = await events_while(watcher, lambda es: bool(presence_of("bob", "#lobby", es)))
    assert presence_of("bob", "#lobby", events) == [("left", "quit")]
    await until(watcher.who, ("alice", "watcher"))


async def test_a_part_on_one_device_leaves_the_room_on_every_device(
    deployment: Deployment,
) -> None:
    watcher = await deployment.connect("watcher", on=0)
    _, phone, laptop = await two_devices(deployment)
    await watcher.join("#dev")
    await laptop.join("#dev")
    await expect(phone, RoomState, room="#dev")
    await phone.part("#dev")
    parted = await expect(laptop, Parted, room="#dev")
    assert parted.ref is None and "#dev" not in laptop.positions
    await until(laptop.who, ("bob", "watcher"))
    await until(partial(watcher.who, "#dev"), ("watcher",))
    events = await barrier(watcher)
    assert [type(e).__name__ for e in about("bob", events)].count("Left") <= 1


async def test_past_the_device_limit_a_session_is_refused_clearly(deployment: Deployment) -> None:
    key = SigningKey.generate()
    devices = [await deployment.connect("bob", on=0, key=key) for _ in range(8)]  # the default
    await until(partial(devices_known, deployment.servers[1], "bob"), 8)
    for on in (0, 1):
        extra = await deployment.raw(on)
        refused = await ask_for(extra, await extra.signed_hello("bob", key), Error)
        assert (refused.code, refused.fatal) == ("too_many_devices", False)
        assert "8 devices" in refused.message
    await devices[0].close()
    await until(partial(devices_known, deployment.servers[1], "bob"), 7)
    again = await deployment.raw(on=1)
    welcome = await ask_for(again, await again.signed_hello("bob", key), Welcome)
    assert welcome.devices == 8


async def devices_known(server: ChatServer, name: str) -> int:
    """The sessions of `name` that `server` knows of, its own and the other servers'."""
    user_key = name_key(name)
    user = server.chat.users.get(user_key)
    return (len(user.sessions) if user is not None else 0) + server.peers.devices(user_key)


async def test_signing_out_the_other_devices_ends_them_and_they_do_not_come_back(
    deployment: Deployment,
) -> None:
    watcher = await deployment.connect("watcher", on=0)
    key, phone, laptop = await two_devices(deployment, reconnect=True)
    await until(partial(devices_known, deployment.servers[0], "bob"), 2)
    tablet = await deployment.connect("bob", on=0, key=key, reconnect=True)
    assert tablet.welcome is not None and tablet.welcome.devices == 3
    signed_out = await tablet.sign_out_others()
    assert signed_out == (2 if deployment.kind not in ("redis", "redis-cluster") else 1)
    for device in (phone, laptop):
        async with asyncio.timeout(TIMEOUT):
            while not isinstance(event := await device.next_event(), Bye):
                assert not isinstance(event, Disconnected), event
        assert event.reason == "signed_out"
        ended = await expect_end(device)
        assert "signed" in ended.reason
    await tablet.send("#lobby", "only me now")
    events = await events_while(watcher, lambda es: seen(es, is_message("only me now")))
    assert presence_of("bob", "#lobby", events) == [("joined", "")]  # and never left
    assert not phone.connected and not laptop.connected


async def expect_end(client: ChatClient) -> Disconnected:
    async with asyncio.timeout(TIMEOUT):
        while not isinstance(event := await client.next_event(), Disconnected):
            pass
    return event


async def test_a_keyless_name_keeps_one_session_and_its_token_takes_over_once(
    deployment: Deployment,
) -> None:
    watcher = await deployment.connect("watcher", on=0)
    ali = await deployment.connect("ali", on=0, reconnect=True)
    await until(watcher.who, ("ali", "watcher"))

    async def ali_known_there() -> bool:  # (else the key below registers the name there)
        return await devices_known(deployment.servers[1], "ali") > 0

    await until(ali_known_there, True)
    second = await deployment.raw(on=1)
    refused = await ask_for(second, await second.signed_hello("ali", SigningKey.generate()), Error)
    assert refused.code == "name_taken"  # a key that does not own the name is someone else
    assert ali.welcome is not None
    back = await deployment.raw(on=1)
    token = ali.welcome.token

    async def take_over() -> str:
        answer = await ask(back, Hello(name="ali", token=token))
        return type(answer).__name__

    await until(take_over, "Welcome")
    ended = await expect_end(ali)  # told it was replaced: it does not reconnect to take it back
    assert "another connection" in ended.reason
    back.send(Ping(data=1, ref=next(REFS)))
    await frames_until(back, lambda fs: any(isinstance(f, Pong) for f in fs))
    events = await barrier(watcher)
    assert len([e for e in about("ali", events) if isinstance(e, Left)]) <= 1


# --- private conversations -----------------------------------------------------


async def test_a_private_message_waits_for_a_registered_name_that_is_offline(
    deployment: Deployment,
) -> None:
    key = SigningKey.generate()
    bob = await deployment.connect("bob", on=0, key=key)
    await known_there(deployment, "bob")
    await bob.close()
    alice = await deployment.raw(on=1)
    await alice.hello("alice")
    private = Private(to="bob", text="while you were out", id="p-1")
    first = await ask_for(alice, private, PrivateMessage)
    retried = await ask_for(alice, private, PrivateMessage)  # a retry: the same message
    assert (first.to, retried.pid) == ("bob", first.pid)
    keyless = await ask_for(alice, Private(to="nobody", text="hello?", id="p-2"), Error)
    assert keyless.code == "no_such_user" and "registered" in keyless.message
    if deployment.durable:
        await deployment.restart()

    back = await deployment.connect("bob", on=1, key=key)  # a device signing in afresh
    got = await expect(back, PrivateMessage, text="while you were out")
    assert (got.sender, got.pid) == ("alice", first.pid)
    rest = await barrier(back)
    assert not seen(rest, is_private("while you were out"))  # exactly once
    page = await back.private_history("alice")
    assert [m.text for m in page.messages] == ["while you were out"] and page.complete

    reader = await deployment.raw(on=0)
    await ask_for(reader, await reader.signed_hello("bob", key), Welcome)
    stored = await ask_for(reader, MarkRead(room="@alice", seq=got.pid), ReadMarker)
    assert (stored.room, stored.seq) == ("@alice", got.pid)  # once stored, the reply
    await back.close()
    reader.writer.close()
    again = await deployment.connect("bob", on=0, key=key)
    assert again.welcome is not None
    assert ("@alice", got.pid) in [(m.room, m.seq) for m in again.welcome.read]
    rest = await barrier(again)
    assert not seen(rest, is_private("while you were out"))  # read: not sent again


async def test_a_private_conversation_has_its_own_history_in_pages(
    deployment: Deployment,
) -> None:
    key = SigningKey.generate()
    bob = await deployment.connect("bob", on=0, key=key)
    alice = await deployment.connect("alice", on=1, key=SigningKey.generate())
    carol = await deployment.connect("carol", on=1)
    await until(alice.who, ("alice", "bob", "carol"))
    for i in range(5):
        await alice.private("bob", f"a{i}")
        await bob.private("alice", f"b{i}")
    await carol.private("bob", "not part of it")
    page = await bob.private_history("alice", limit=4)
    assert [m.text for m in page.messages] == ["a3", "b3", "a4", "b4"] and not page.complete
    older = await bob.private_history("alice", before=page.messages[0].pid, limit=10)
    assert [m.text for m in older.messages] == ["a0", "b0", "a1", "b1", "a2", "b2"]
    assert older.complete
    first = await bob.private_history("alice", before=older.messages[1].pid, limit=1)
    assert [m.text for m in first.messages] == ["a0"] and first.complete  # nothing older
    theirs = await alice.private_history("bob")
    assert [m.text for m in theirs.messages] == [f"{w}{i}" for i in range(5) for w in "ab"]
    stranger = await deployment.raw(on=0)
    await stranger.hello("eve")
    empty = await ask_for(stranger, PrivateHistory(name="bob"), PrivatePage)
    assert empty.messages == () and empty.complete


# --- read markers ----------------------------------------------------------------


async def test_a_read_marker_moved_on_one_device_reaches_the_others_at_once(
    deployment: Deployment,
) -> None:
    key, phone, laptop = await two_devices(deployment)
    alice = await deployment.connect("alice", on=0)
    acks = [await alice.send("#lobby", f"m{i}") for i in range(3)]
    await expect(laptop, Message, text="m2")
    phone.mark_read("#lobby", acks[1].seq)
    marker = await expect(laptop, ReadMarker, room="#lobby")
    assert (marker.seq, marker.epoch) == (acks[1].seq, laptop.positions["#lobby"].epoch)
    assert laptop.read["#lobby"].seq == acks[1].seq
    phone.mark_read("#lobby", acks[0].seq)  # behind: nothing moves
    phone.mark_read("#lobby", acks[2].seq)
    assert (await expect(laptop, ReadMarker, room="#lobby")).seq == acks[2].seq
    tablet = await deployment.connect("bob", on=1, key=key)
    assert tablet.welcome is not None
    assert [(m.room, m.seq) for m in tablet.welcome.read] == [("#lobby", acks[2].seq)]
    await alice.join("#dev")
    dev = await alice.send("#dev", "in dev")
    await phone.join("#dev")
    await expect(laptop, RoomState, room="#dev")  # (on the other server, a moment later)
    phone.mark_read("#dev", dev.seq)
    await expect(tablet, ReadMarker, room="#dev")
    await phone.part("#dev")
    await expect(laptop, Parted, room="#dev")
    state = await laptop.join("#dev")  # the marker comes with the room
    assert state.read == dev.seq


async def test_a_read_marker_that_cannot_be_kept_is_refused_clearly(
    deployment: Deployment,
) -> None:
    raw: Raw = await deployment.raw(on=0)
    await ask_for(raw, await raw.signed_hello("bob", SigningKey.generate()), Welcome)
    for bad in (MarkRead(room="lobby", seq=1), MarkRead(room="@", seq=1)):
        refused = await ask_for(raw, bad, Error)
        assert refused.code in ("invalid_room", "invalid_name"), refused
    await ask_for(raw, Send(room="#lobby", text="one"), Ack)
    await frames_until(raw, lambda fs: seen(fs, is_message("one")))  # delivered: seq 1
    own = await ask_for(raw, MarkRead(room="#lobby", seq=5), ReadMarker)  # no epoch: the room's
    assert (own.seq, own.epoch) == (1, deployment.servers[0].chat.rooms["#lobby"].epoch)
    huge = await ask_for(raw, MarkRead(room="@alice", seq=2**63 - 1), ReadMarker)
    assert huge.seq == 2**53 - 1  # every store keeps it exactly
    raw.send(MarkRead(room="#lobby", seq=2**62, epoch=2**62))
    pong = await ask(raw, Ping(data=7))
    assert isinstance(pong, Pong)  # a huge seq is clamped, the connection goes on


async def test_a_marker_moved_while_reconnecting_is_sent_once_back(deployment: Deployment) -> None:
    _, phone, laptop = await two_devices(deployment, reconnect=True)
    alice = await deployment.connect("alice", on=0)
    ack = await alice.send("#lobby", "read me later")
    await expect(phone, Message, text="read me later")
    assert phone.welcome is not None
    mine = token_hash(phone.welcome.token)
    session = next(s for s in deployment.servers[0].sessions if s.token_hash == mine)
    session.abort("disconnect")  # the phone's connection drops
    await expect(phone, Reconnecting)
    assert not phone.connected
    phone.mark_read("#lobby", ack.seq)  # while away
    await expect(phone, Reconnected)
    marker = await expect(laptop, ReadMarker, room="#lobby")
    assert marker.seq == ack.seq


async def test_a_quick_part_and_join_on_one_device_settles_on_every_server(
    deployment: Deployment,
) -> None:
    """The servers copy what one device did for the devices they hold, and stop there: no
    copy is taken for news (two servers once parted and joined each other's copies for ever)."""
    watcher = await deployment.connect("watcher", on=1)
    await watcher.join("#dev")
    _, phone, laptop = await two_devices(deployment)
    await phone.join("#dev")
    await expect(laptop, RoomState, room="#dev")
    await phone.part("#dev")
    await phone.join("#dev")  # before the other server has followed the part
    await until(partial(watcher.who, "#dev"), ("bob", "watcher"))
    await expect(laptop, Parted, room="#dev")  # the laptop's server followed the part...
    there = deployment.servers[1]

    async def copied_back() -> bool:  # ...and then the join (the first round is sent after)
        user = there.chat.users.get(name_key("bob"))
        return user is not None and "#dev" in user.rooms

    await until(copied_back, True)
    for text in ("first round", "second round"):  # after the first, nothing moves any more
        await phone.send("#dev", text)
        settled = partial(lambda text, es: seen(es, is_message(text)), text)
        events = await events_while(laptop, settled)
        seen_by_watcher = await events_while(watcher, settled)
    churn = [e for e in events if isinstance(e, RoomState | Parted)] + about("bob", events)
    assert churn == [], churn
    assert about("bob", seen_by_watcher) == []
    assert "#dev" in laptop.positions and "#dev" in phone.positions


async def test_a_names_next_holder_sees_none_of_the_last_ones_messages_or_markers(
    deployment: Deployment,
) -> None:
    watcher = await deployment.connect("watcher", on=0)
    first = await deployment.raw(on=0)  # "bob" without a key, first holder
    await first.hello("bob")
    alice = await deployment.raw(on=1)
    await alice.hello("alice")
    await until(partial(who, alice), ("alice", "bob", "watcher"))  # (the other server knows bob)
    await ask_for(alice, Private(to="bob", text="for the first bob", id="x1"), PrivateMessage)
    await ask_for(first, MarkRead(room="@carol", seq=5, ref=1), ReadMarker)
    first.writer.close()
    await until(watcher.who, ("alice", "watcher"))
    await until(partial(who, alice), ("alice", "watcher"))  # (both servers know it is free)

    second = await deployment.raw(on=1)  # someone else takes the free name
    welcome = await second.hello("bob")
    assert welcome.read == ()
    probe = await ask_for(second, MarkRead(room="@carol", seq=0), ReadMarker)
    assert probe.seq == 0  # the first holder's marker is not this one's
    empty = await ask_for(second, PrivateHistory(name="alice"), PrivatePage)
    assert empty.messages == ()
    second.writer.close()
    await until(watcher.who, ("alice", "watcher"))
    back = await deployment.raw(on=0)  # ... and resumes with its own token
    resumed = await ask_for(back, Hello(name="bob", token=welcome.token, private_after=0), Welcome)
    assert [(m.room, m.seq) for m in resumed.read] == [("@carol", 0)]  # its own, and only that
    page = await ask_for(back, PrivateHistory(name="alice"), PrivatePage)
    assert page.messages == ()
    assert not seen(await raw_barrier(back), is_private("for the first bob"))  # no replay
    back.writer.close()
    await until(watcher.who, ("alice", "watcher"))
    await until(partial(who, alice), ("alice", "watcher"))

    key = SigningKey.generate()  # a key registers the free name: a new owner, from now on
    owner = await deployment.raw(on=1)
    registered = await ask_for(owner, await owner.signed_hello("bob", key), Welcome)
    assert registered.read == ()
    mine = await ask_for(owner, PrivateHistory(name="alice"), PrivatePage)
    assert mine.messages == ()
    owner.writer.close()
    await until(watcher.who, ("alice", "watcher"))
    again = await deployment.raw(on=0)
    with_token = await again.signed_hello("bob", key, token=registered.token, private_after=0)
    assert (await ask_for(again, with_token, Welcome)).read == ()
    assert (await ask_for(again, PrivateHistory(name="alice"), PrivatePage)).messages == ()


async def test_the_unread_sent_on_sign_in_never_repeats_one_that_came_live(
    deployment: Deployment,
) -> None:
    key = SigningKey.generate()
    bob = await deployment.connect("bob", on=0, key=key)
    await known_there(deployment, "bob")
    await bob.close()
    alice = await deployment.connect("alice", on=1)
    await alice.private("bob", "while away")
    back = await deployment.raw(on=0)
    welcome = await ask_for(back, await back.signed_hello("bob", key), Welcome)
    assert welcome.devices == 1
    await alice.private("bob", "live")  # after the welcome, maybe before the store was read
    frames = await frames_until(
        back, lambda fs: seen(fs, is_private("live")) and seen(fs, is_private("while away"))
    )
    rest = await raw_barrier(back)
    texts = [f.text for f in frames + rest if isinstance(f, PrivateMessage)]
    assert sorted(texts) == ["live", "while away"], texts
