"""Rooms people own, and moderation, as users notice it, on every kind of deployment.

Part of the contract suite (tests/test_contract.py): each test runs on memory, SQLite, Redis and
the Redis Cluster, acting through one server and watching through the other (a single-server
kind is a cluster of one: the other server is the same one).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from tests.deployments import Deployment, deployment_fixture
from tests.helpers import TIMEOUT, expect, until
from tuichat.chat.rules import BAN, Rule, Sanction
from tuichat.client import ChatClient, ClientEvent, RequestFailed, SigningKey
from tuichat.protocol import (
    Bye,
    Error,
    Hello,
    History,
    HistoryPage,
    Ignored,
    Join,
    Left,
    MarkRead,
    Message,
    Moderated,
    Parted,
    Position,
    PrivateMessage,
    RoomDetails,
    Welcome,
    Who,
)
from tuichat.server import ChatServer
from tuichat.server.admins import Admins

__all__ = ["deployment_fixture"]


async def keyed(deployment: Deployment, name: str, on: int = 0, **kwargs: Any) -> ChatClient:
    """A client whose name is registered to a key of its own."""
    return await deployment.connect(name, on=on, key=SigningKey.generate(), **kwargs)


async def refused(request: Any, code: str) -> str:
    """Await a request that must be refused with `code`; return the server's sentence."""
    with pytest.raises(RequestFailed) as caught:
        await request
    assert caught.value.code == code, caught.value
    return str(caught.value)


def make_admins(deployment: Deployment, *entries: str) -> None:
    """Make `entries` the admins of every server of the deployment."""
    for server in deployment.servers:
        server.admins = Admins(entries)


def _rules_of(server: ChatServer) -> list[Rule]:
    """The rules a server holds now, as the store would hand them back."""
    held = server.rules.rooms
    return [
        Rule(room, "owner", "", {"key": rules.owner_key, "name": rules.owner})
        for room, rules in held.items()
        if rules.owner_key
    ]


async def until_event(
    client: ChatClient, wanted: Callable[[ClientEvent], bool]
) -> list[ClientEvent]:
    """The events of `client` up to and including the first one `wanted`."""
    seen: list[ClientEvent] = []
    async with asyncio.timeout(TIMEOUT):
        while not seen or not wanted(seen[-1]):
            seen.append(await client.next_event())
    return seen


# --- owners, ops, topics ----------------------------------------------------


async def test_the_maker_of_a_room_owns_it_and_sets_its_topic_for_everyone(
    deployment: Deployment,
) -> None:
    ali = await keyed(deployment, "ali", on=0)
    bob = await keyed(deployment, "bob", on=1)
    state = await ali.join("#dev")
    assert state.owner == "ali"
    await bob.join("#dev")
    await refused(bob.set_topic("#dev", "mine now"), "not_op")
    details = await ali.set_topic("#dev", "release on friday\nno newlines")
    assert (details.topic, details.topic_by) == ("release on friday no newlines", "ali")
    heard = await expect(bob, RoomDetails, room="#dev", change="topic")
    assert (heard.topic, heard.by, heard.owner) == (details.topic, "ali", "ali")
    carol = await deployment.connect("carol", on=1)
    joined = await carol.join("#dev")
    assert (joined.topic, joined.topic_by, joined.owner) == (details.topic, "ali", "ali")
    await refused(carol.set_topic("#dev", "x" * 600), "not_op")  # the role is checked first
    await refused(ali.set_topic("#dev", "x" * 600), "text_too_long")


async def test_a_topic_and_an_owner_outlive_a_restart(deployment: Deployment) -> None:
    if not deployment.durable:
        pytest.skip(f"{deployment.kind}: nothing is kept across a restart")
    key = SigningKey.generate()
    ali = await deployment.connect("ali", key=key)
    await ali.join("#dev")
    await ali.set_topic("#dev", "kept")
    await ali.close()
    await deployment.restart()
    back = await deployment.connect("ali", on=1, key=key)
    state = await back.join("#dev")
    assert (state.topic, state.owner) == ("kept", "ali")
    await back.set_topic("#dev", "still mine")  # the owner is known after the restart


async def test_a_name_without_a_key_makes_rooms_nobody_owns(deployment: Deployment) -> None:
    guest = await deployment.connect("guest")
    state = await guest.join("#open")
    assert state.owner == ""
    await refused(guest.set_topic("#open", "hi"), "not_op")


async def test_ops_are_made_by_the_owner_and_can_moderate_but_not_the_owner(
    deployment: Deployment,
) -> None:
    ali = await keyed(deployment, "ali", on=0)
    bob = await keyed(deployment, "bob", on=1)
    guest = await deployment.connect("guest", on=1)
    await ali.join("#dev")
    for client in (bob, guest):
        await client.join("#dev")
    await refused(ali.moderate("#dev", "op", "guest"), "not_registered")
    await refused(bob.moderate("#dev", "op", "bob"), "not_op")
    made = await ali.moderate("#dev", "op", "bob")
    assert (made.action, made.name, made.by) == ("op", "bob", "ali")
    seen = await expect(guest, RoomDetails, room="#dev", change="ops")
    assert seen.ops == ("bob",)
    await expect(guest, Moderated, action="op", name="bob", by="ali")
    await refused(bob.moderate("#dev", "kick", "ali"), "cannot_moderate")
    await refused(bob.moderate("#dev", "op", "guest"), "not_op")  # only the owner makes ops
    await bob.set_topic("#dev", "set by an op")
    await ali.moderate("#dev", "deop", "bob")
    await expect(guest, RoomDetails, room="#dev", ops=())
    await refused(bob.set_topic("#dev", "no longer"), "not_op")
    await refused(ali.moderate("#dev", "kick", "ali"), "cannot_moderate")
    await ali.moderate("#dev", "op", "bob")
    await ali.moderate("#dev", "mute", "bob", "a break")
    await refused(bob.moderate("#dev", "unmute", "bob"), "cannot_moderate")  # not one's own
    await ali.moderate("#dev", "ban", "bob")
    await expect(guest, RoomDetails, room="#dev", ops=(), change="ops")  # a ban ends ops
    await refused(bob.set_topic("#dev", "from outside"), "not_op")


# --- kick, ban, mute --------------------------------------------------------


async def test_a_kicked_user_is_told_who_did_it_and_may_come_back(deployment: Deployment) -> None:
    ali = await keyed(deployment, "ali", on=0)
    eve = await deployment.connect("eve", on=1)
    watcher = await deployment.connect("watcher", on=0)
    await ali.join("#dev")
    for client in (eve, watcher):
        await client.join("#dev")
    await refused(eve.moderate("#dev", "kick", "watcher"), "not_op")
    await refused(ali.moderate("#dev", "kick", "nobody"), "no_such_user")
    await until(lambda: ali.who("#dev"), ("ali", "eve", "watcher"))  # (known on both servers)
    reply = await ali.moderate("#dev", "kick", "eve", "spam")
    assert (reply.room, reply.action, reply.name, reply.reason) == ("#dev", "kick", "eve", "spam")
    events = await until_event(eve, lambda e: isinstance(e, Parted) and e.room == "#dev")
    told = next(e for e in events if isinstance(e, Moderated))
    assert (told.action, told.name, told.by, told.reason) == ("kick", "eve", "ali", "spam")
    await expect(watcher, Moderated, action="kick", name="eve", by="ali")
    await expect(watcher, Left, room="#dev", name="eve", reason="kick")
    await refused(eve.send("#dev", "still here?"), "not_in_room")
    await eve.join("#dev")  # a kick is not a ban


async def test_a_ban_holds_on_every_server_at_once_until_undone(deployment: Deployment) -> None:
    ali = await keyed(deployment, "ali", on=0)
    key = SigningKey.generate()
    eve = await deployment.connect("eve", on=1, key=key)
    watcher = await deployment.connect("watcher", on=1)
    epoch = (await ali.join("#dev")).epoch
    for client in (eve, watcher):
        await client.join("#dev")
    reply = await ali.moderate("#dev", "ban", "eve", "trolling", duration=3600)
    assert reply.until - reply.ts == 3_600_000
    await expect(eve, Moderated, action="ban", by="ali", reason="trolling")
    await expect(eve, Parted, room="#dev")
    await expect(watcher, Left, room="#dev", name="eve", reason="ban")
    sentence = await refused(eve.join("#dev"), "banned")
    assert "ali" in sentence and "trolling" in sentence and "hour" in sentence
    other = await deployment.connect("eve2", on=0, key=key)  # the same key, another name
    await refused(other.join("#dev"), "banned")
    await eve.close()
    await other.close()
    raw = await deployment.raw(on=1)  # resuming where eve was: not put back
    hello = await raw.signed_hello("eve", key, positions=(Position("#dev", epoch, 0),), ref=5)
    raw.send(hello)
    welcome = await raw.reply(5, TIMEOUT)
    assert isinstance(welcome, Welcome) and welcome.rooms == ("#lobby",)
    raw.writer.close()
    back = await deployment.connect("eve", on=0, key=key)
    await refused(back.join("#dev"), "banned")
    other = await deployment.connect("eve2", on=0, key=key)
    await refused(ali.moderate("#dev", "unban", "watcher"), "no_such_user")
    await ali.moderate("#dev", "unban", "eve")
    await back.join("#dev")
    await other.join("#dev")  # one unban lifts what the key was banned by


async def test_a_muted_user_reads_but_cannot_post(deployment: Deployment) -> None:
    ali = await keyed(deployment, "ali", on=0)
    eve = await deployment.connect("eve", on=1)
    await ali.join("#dev")
    await eve.join("#dev")
    await ali.moderate("#dev", "mute", "eve", "calm down")
    await expect(eve, Moderated, action="mute", name="eve", by="ali")
    sentence = await refused(eve.send("#dev", "hey"), "muted")
    assert "calm down" in sentence
    await ali.send("#dev", "you can read this")
    await expect(eve, Message, text="you can read this")
    await eve.send("#lobby", "the mute is for #dev only")
    await ali.moderate("#dev", "unmute", "eve")
    await expect(eve, Moderated, action="unmute")
    assert (await eve.send("#dev", "thanks")).seq > 0


# --- private rooms and invitations -----------------------------------------


async def test_a_private_room_is_for_its_members_only(deployment: Deployment) -> None:
    ali = await keyed(deployment, "ali", on=0)
    bob = await keyed(deployment, "bob", on=1)
    await ali.join("#secret")
    await bob.join("#secret")
    await ali.send("#secret", "the plan")
    await until(lambda: ali.who("#secret"), ("ali", "bob"))  # (bob is on the other server)
    details = await ali.set_private("#secret", True)
    assert details.private
    await expect(bob, RoomDetails, room="#secret", private=True, change="private")
    outsider = await deployment.connect("outsider", on=1)
    await refused(outsider.join("#secret"), "private_room")
    await refused(outsider.history("#secret"), "private_room")
    await refused(outsider.who("#secret"), "private_room")
    assert "#secret" not in {room.room for room in await outsider.list_rooms()}
    assert "#secret" in {room.room for room in await bob.list_rooms()}
    page = await bob.history("#secret")
    assert [m.text for m in page.messages] == ["the plan"]
    await bob.part("#secret")
    await bob.join("#secret")  # a member when it closed: invited


async def test_a_private_room_cannot_be_read_through_a_guessed_resume_position(
    deployment: Deployment,
) -> None:
    ali = await keyed(deployment, "ali", on=0)
    witness = await keyed(deployment, "witness", on=1)
    await ali.join("#secret")
    await witness.join("#secret")
    sent = await ali.send("#secret", "hidden")
    await ali.set_private("#secret", True)
    await expect(witness, RoomDetails, private=True)  # (the other server has it)
    state = await ali.join("#other")  # any epoch will do: the room is refused first
    raw = await deployment.raw(on=1)
    guess = Position("#secret", state.epoch, 0)
    raw.send(Hello(name="snoop", positions=(guess,), ref=1))
    welcome = await raw.reply(1, TIMEOUT)
    assert isinstance(welcome, Welcome)
    assert "#secret" not in welcome.rooms
    raw.send(History(room="#secret", ref=2))
    answer = await raw.reply(2, TIMEOUT)
    assert isinstance(answer, Error) and answer.code == "private_room"
    raw.send(Who(room="#secret", ref=3))
    answer = await raw.reply(3, TIMEOUT)
    assert isinstance(answer, Error) and answer.code == "private_room"
    raw.send(Join(room="#SECRET", ref=4))  # a look-alike of its name is the same room
    answer = await raw.reply(4, TIMEOUT)
    assert isinstance(answer, Error) and answer.code == "private_room"
    assert sent.seq == 1


async def test_an_invitation_reaches_a_registered_name_that_is_offline(
    deployment: Deployment,
) -> None:
    ali = await keyed(deployment, "ali", on=0)
    await ali.join("#club")
    await ali.set_private("#club", True)
    await refused(ali.moderate("#club", "invite", "stranger"), "not_registered")
    key = SigningKey.generate()
    dana = await deployment.connect("dana", on=0, key=key)  # registered (where ali is)
    await dana.close()
    await ali.moderate("#club", "invite", "dana")
    back = await deployment.connect("dana", on=0, key=key)
    state = await back.join("#club")
    assert state.private and "dana" in state.users
    await ali.moderate("#club", "uninvite", "dana")
    await expect(back, Moderated, action="uninvite", by="ali")
    await expect(back, Parted, room="#club")  # no longer a member: out at once
    await refused(back.join("#club"), "private_room")
    await refused(back.history("#club"), "private_room")


async def test_an_invited_user_online_elsewhere_hears_of_it(deployment: Deployment) -> None:
    ali = await keyed(deployment, "ali", on=0)
    dana = await keyed(deployment, "dana", on=1)
    await ali.join("#club")
    await ali.set_private("#club", True)
    await ali.moderate("#club", "invite", "dana")
    invited = await expect(dana, Moderated, action="invite")
    assert (invited.room, invited.name, invited.by) == ("#club", "dana", "ali")
    await dana.join("#club")


# --- ignoring someone ---------------------------------------------------------


async def test_private_messages_from_someone_ignored_never_arrive(deployment: Deployment) -> None:
    key = SigningKey.generate()
    ali = await deployment.connect("ali", on=0, key=key)
    eve = await keyed(deployment, "eve", on=1)
    assert await ali.ignore("eve") == ("eve",)
    second = await deployment.connect("ali", on=1, key=key)  # another device has the list
    assert second.ignored == ("eve",)
    echo = await eve.private("ali", "you will not see this")
    assert echo.pid > 0  # eve is answered as always
    mine = await eve.private_history("ali")
    assert [m.text for m in mine.messages] == ["you will not see this"]
    await eve.private("ali", "nor this")
    friend = await deployment.connect("friend", on=1)
    await friend.private("ali", "but this")
    for device in (ali, second):
        got = await expect(device, PrivateMessage)
        assert got.text == "but this"
    theirs = await ali.private_history("eve")
    assert theirs.messages == ()
    third = await deployment.connect("ali", on=0, key=key)  # a fresh device: nothing unread
    got = await expect(third, PrivateMessage)
    assert got.text == "but this"
    await ali.ignore("eve", False)
    await expect(second, Ignored, names=())
    await eve.private("ali", "heard again")
    await expect(ali, PrivateMessage, text="heard again")


async def test_ignoring_oneself_is_refused(deployment: Deployment) -> None:
    ali = await keyed(deployment, "ali")
    await refused(ali.ignore("ali"), "cannot_moderate")


# --- admins -------------------------------------------------------------------


async def test_an_admin_acts_in_every_room_and_bans_from_the_whole_server(
    deployment: Deployment,
) -> None:
    root_key = SigningKey.generate()
    make_admins(deployment, "root")
    root = await deployment.connect("root", on=0, key=root_key)
    assert root.welcome is not None and root.welcome.admin
    ali = await keyed(deployment, "ali", on=1)
    await ali.join("#ali-owns")
    await root.join("#ali-owns")
    await root.set_topic("#ali-owns", "an admin may")
    await refused(ali.moderate("#ali-owns", "kick", "root"), "cannot_moderate")
    eve_key = SigningKey.generate()
    eve = await deployment.connect("eve", on=1, key=eve_key)
    await until(root.who, ("ali", "eve", "root"))  # (her name is known on both servers)
    eve_too = await deployment.connect("eve", on=0, key=eve_key)
    await refused(ali.moderate("#lobby", "ban", "eve"), "not_admin")
    reply = await root.moderate("#lobby", "ban", "eve", "spam everywhere")
    assert reply.room == ""
    for device in (eve, eve_too):
        bye = await expect(device, Bye)
        assert bye.reason == "banned" and "root" in bye.message and "spam" in bye.message
    raw = await deployment.raw(on=1)
    raw.send(await raw.signed_hello("eve", eve_key, ref=7))
    answer = await raw.reply(7, TIMEOUT)
    assert isinstance(answer, Error) and answer.code == "banned"
    await root.moderate("#lobby", "unban", "eve")
    await expect(ali, Moderated, action="unban", name="eve")  # (ali's server has it)
    await until(root.who, ("ali", "root"))  # (both servers know her sessions are gone)
    back = await deployment.connect("eve", on=1, key=eve_key)
    assert back.welcome is not None


async def test_an_admin_bans_an_address_prefix(deployment: Deployment) -> None:
    make_admins(deployment, "root")
    root = await deployment.connect("root", on=0, key=SigningKey.generate())
    guest = await deployment.connect("guest", on=1)
    await root.moderate("#lobby", "ban", "127.0.0.0/8", "from this machine")
    bye = await expect(guest, Bye)
    assert bye.reason == "banned"
    with pytest.raises(RequestFailed) as caught:
        await ChatClient.connect("another", *deployment.servers[1].address)
    assert caught.value.code == "banned"
    assert root.connected  # admins are never banned
    await root.moderate("#lobby", "unban", "127.0.0.0/8")
    again = await deployment.connect("another", on=0)  # (the admin's server: at once)
    assert again.welcome is not None


async def test_an_admin_disconnects_someone_who_may_come_back(deployment: Deployment) -> None:
    make_admins(deployment, "root")
    root = await deployment.connect("root", on=0, key=SigningKey.generate())
    eve = await deployment.connect("eve", on=1)
    await until(root.who, ("eve", "root"))  # (the other server knows she is online)
    await root.moderate("#lobby", "kick", "eve", "cool off")
    bye = await expect(eve, Bye)
    assert bye.reason == "kicked" and "cool off" in bye.message
    back = await deployment.connect("eve", on=1)
    assert back.welcome is not None


# --- the moderation log, and limits -------------------------------------------


async def test_the_moderation_log_says_who_did_what_when(deployment: Deployment) -> None:
    make_admins(deployment, "root")
    root = await deployment.connect("root", on=1, key=SigningKey.generate())
    ali = await keyed(deployment, "ali", on=0)
    eve = await deployment.connect("eve", on=1)
    await ali.join("#dev")
    await eve.join("#dev")
    await ali.moderate("#dev", "mute", "eve", "shouting", duration=60)
    await ali.set_topic("#dev", "quiet please")
    await ali.join("#other")
    await refused(ali.mod_log(""), "not_op")
    await refused(eve.mod_log("#dev"), "not_op")
    page = await ali.mod_log("#dev")
    assert [(e.action, e.name, e.by) for e in page.entries] == [
        ("topic", "", "ali"),
        ("mute", "eve", "ali"),
        ("create", "ali", "ali"),
    ]
    mute = page.entries[1]
    assert (mute.reason, mute.until - mute.ts) == ("shouting", 60_000)
    everything = await root.mod_log(limit=2)
    assert [e.action for e in everything.entries] == ["create", "topic"] and everything.more
    older = await root.mod_log(before=everything.entries[-1].id)
    assert [e.action for e in older.entries] == ["mute", "create"] and not older.more


# --- what a sanction follows ------------------------------------------------------


async def test_a_sanction_follows_the_key_whatever_name_or_spelling_it_signs_in_with(
    deployment: Deployment,
) -> None:
    ali = await keyed(deployment, "ali", on=0)
    key = SigningKey.generate()
    alice = await deployment.connect("alice", on=1, key=key)
    second = await deployment.connect("alice2", on=1, key=key)  # another name of the key
    await ali.join("#dev")
    for client in (alice, second):
        await client.join("#dev")
    await until(lambda: ali.who("#dev"), ("ali", "alice", "alice2"))
    await ali.moderate("#dev", "ban", "alice", "spam")
    for client in (alice, second):  # both names are out at once
        await expect(client, Parted, room="#dev")
    await alice.close()
    await until(ali.who, ("ali", "alice2"))
    look_alike = await deployment.connect("aIice", on=0, key=key)  # (a capital i for the l)
    await refused(look_alike.join("#dev"), "banned")
    await ali.join("#quiet")
    await look_alike.join("#quiet")
    await ali.moderate("#quiet", "mute", "alice")
    await refused(look_alike.send("#quiet", "me neither?"), "muted")


async def test_ignoring_follows_the_key_and_needs_a_registered_name(
    deployment: Deployment,
) -> None:
    ali_key = SigningKey.generate()
    ali = await deployment.connect("ali", on=0, key=ali_key)
    guest = await deployment.connect("guest", on=1)
    await until(guest.who, ("ali", "guest"))  # (the other server knows her, and her name's key)
    ali_there = await deployment.connect("ali", on=1, key=ali_key)
    await refused(guest.ignore("ali"), "not_registered")
    key = SigningKey.generate()
    eve = await deployment.connect("eve", on=1, key=key)
    await until(ali.who, ("ali", "eve", "guest"))  # (her name and key are known everywhere)
    await ali.ignore("eve")
    await expect(ali_there, Ignored, names=("eve",))  # (the other server has it)
    other_name = await deployment.connect("eve2", on=1, key=key)
    await other_name.private("ali", "from another name")
    await eve.private("ali", "from the first")
    friend = await deployment.connect("friend", on=1)
    await friend.private("ali", "barrier")
    got = await expect(ali, PrivateMessage)
    assert got.text == "barrier"


async def test_a_private_room_refuses_read_markers_and_opens_again(deployment: Deployment) -> None:
    ali = await keyed(deployment, "ali", on=0)
    witness = await keyed(deployment, "witness", on=1)
    await ali.join("#secret")
    await witness.join("#secret")
    await ali.send("#secret", "one")
    await ali.set_private("#secret", True)
    await expect(witness, RoomDetails, private=True)
    raw = await deployment.raw(on=1)
    await raw.hello("snoop")
    raw.send(MarkRead(room="#secret", seq=1, ref=9))
    answer = await raw.reply(9, TIMEOUT)
    assert isinstance(answer, Error) and answer.code == "private_room"
    opened = await ali.set_private("#secret", False)
    assert not opened.private and opened.change == "private" and opened.by == "ali"
    await expect(witness, RoomDetails, private=False)
    raw.send(History(room="#secret", ref=10))
    page = await raw.reply(10, TIMEOUT)
    assert isinstance(page, HistoryPage) and [m.text for m in page.messages] == ["one"]


async def test_rules_read_again_are_held_to_at_once(deployment: Deployment) -> None:
    """After a server may have missed steps (its link to the store was lost), it reads every
    rule again and takes out whoever they now keep out."""
    ali = await keyed(deployment, "ali", on=0)
    eve = await deployment.connect("eve", on=0)
    await ali.join("#dev")
    await eve.join("#dev")
    server = deployment.servers[0]
    missed = Rule("#dev", BAN, "eve", Sanction("eve", by="ali", reason="missed").value())
    server.on_rules([*_rules_of(server), missed])
    await expect(eve, Parted, room="#dev")
    await refused(eve.join("#dev"), "banned")
