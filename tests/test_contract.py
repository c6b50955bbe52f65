"""The contract every deployment keeps (memory, SQLite, Redis, Redis Cluster), as users notice it.

Each test runs on every kind of `deployment` and, where it makes sense, sends through one server
and watches through the other. A single-server kind is a cluster of one: "the other server" is
the same one. Effects that cross servers arrive a moment later, so tests wait for them (`until`,
or a later message as a barrier), never for a stretch of time.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar, cast

import pytest

from tests.deployments import Deployment, deployment_fixture
from tests.helpers import TIMEOUT, collect, events_until, expect, until
from tests.raw import Raw
from tuichat.client import ChatClient, ClientEvent, Disconnected, SigningKey
from tuichat.protocol import (
    Ack,
    AnyMessage,
    Bye,
    Error,
    Event,
    Hello,
    History,
    HistoryPage,
    Join,
    Joined,
    Left,
    ListRooms,
    Message,
    Position,
    Private,
    PrivateMessage,
    RoomInfo,
    RoomList,
    RoomReset,
    RoomState,
    Send,
    UserList,
    Welcome,
    Who,
)

__all__ = ["deployment_fixture"]  # the `deployment` fixture, for pytest to find

T = TypeVar("T")
REFS = itertools.count(1)
"""Request refs, unique in the whole run."""


# --- talking to a raw connection --------------------------------------------


async def ask(raw: Raw, message: AnyMessage) -> Event:
    """Send `message` with a fresh ref; return the frame that answers it."""
    ref = next(REFS)
    raw.send(dataclasses.replace(cast(Any, message), ref=ref))
    return await raw.reply(ref, TIMEOUT)


async def ask_for(raw: Raw, message: AnyMessage, kind: type[T]) -> T:
    """Like `ask`, and the answer must be a `kind`."""
    answer = await ask(raw, message)
    assert isinstance(answer, kind), f"wanted {kind.__name__}, got {answer}"
    return answer


async def answers(raw: Raw, *refs: int) -> list[Event]:
    """The answers to the requests `refs` (in that order, whatever order they came in)."""
    found: dict[int, Event] = {}
    try:
        async with asyncio.timeout(TIMEOUT):
            while len(found) < len(refs):
                event = await raw.next(TIMEOUT)
                assert event is not None, f"closed with only {found} answered"
                ref = getattr(event, "ref", None)
                if ref in refs:
                    found[ref] = event
    except TimeoutError:
        raise AssertionError(f"no answer after {TIMEOUT} s; answered: {found}") from None
    return [found[ref] for ref in refs]


async def frames_until(raw: Raw, done: Callable[[list[Event]], bool]) -> list[Event]:
    """Every frame the server sends `raw` until `done(frames so far)`."""
    frames: list[Event] = []
    try:
        async with asyncio.timeout(TIMEOUT):
            while not done(frames):
                event = await raw.next(TIMEOUT)
                assert event is not None, f"the server closed the connection after {frames}"
                frames.append(event)
    except TimeoutError:
        raise AssertionError(f"still waiting after {TIMEOUT} s, with {frames}") from None
    return frames


async def events_while(client: ChatClient, done: Callable[[list[ClientEvent]], bool]) -> list[Any]:
    """Every event of `client` until `done(events so far)`."""
    events: list[ClientEvent] = []
    try:
        async with asyncio.timeout(TIMEOUT):
            while not done(events):
                event = await client.next_event()
                assert not isinstance(event, Disconnected), f"disconnected after {events}"
                events.append(event)
    except TimeoutError:
        raise AssertionError(f"still waiting after {TIMEOUT} s, with {events}") from None
    return events


def is_message(text: str) -> Callable[[object], bool]:
    return lambda event: isinstance(event, Message) and event.text == text


def is_private(text: str) -> Callable[[object], bool]:
    return lambda event: isinstance(event, PrivateMessage) and event.text == text


def is_left(name: str) -> Callable[[object], bool]:
    return lambda event: isinstance(event, Left) and event.name == name


def messages_in(events: list[Any], room: str) -> list[Message]:
    return [e for e in events if isinstance(e, Message) and e.room == room]


def seen(events: list[Any], wanted: Callable[[object], bool]) -> bool:
    return any(wanted(event) for event in events)


async def who(raw: Raw, room: str = "") -> tuple[str, ...]:
    return (await ask_for(raw, Who(room=room), UserList)).users


def page_content(page: HistoryPage) -> HistoryPage:
    """A page without the ref of the request that fetched it."""
    return dataclasses.replace(page, ref=None)


def private_copy(message: PrivateMessage) -> tuple[object, ...]:
    """What must be the same in every copy of one private message."""
    return (message.sender, message.to, message.text, message.ts, message.action, message.pid)


def presence_of(name: str, room: str, events: list[Any]) -> list[tuple[str, str]]:
    """The `joined` and `left` (with reason) of `name` in `room`, in order."""
    return [
        ("joined", "") if isinstance(e, Joined) else ("left", e.reason)
        for e in events
        if isinstance(e, Joined | Left) and (e.name, e.room) == (name, room)
    ]


# --- 1. numbering -----------------------------------------------------------


async def test_room_messages_are_numbered_one_by_one_alike_for_members_on_both_servers(
    deployment: Deployment,
) -> None:
    ali = await deployment.connect("ali", on=0)
    bob = await deployment.connect("bob", on=1)
    carol = await deployment.connect("carol", on=0)
    dave = await deployment.raw(on=1)  # raw: nothing drops a duplicate on the way
    await dave.hello("dave")
    states = [await member.join("#Dev") for member in (ali, bob, carol)]
    states.append(await ask_for(dave, Join(room="#dev"), RoomState))
    assert [(s.room, s.seq) for s in states] == [("#dev", 0)] * 4
    assert len({s.epoch for s in states}) == 1  # one room, one epoch, on every server
    talk = [(ali, "one"), (bob, "two"), (bob, "three"), (carol, "four"), (ali, "five")]
    acks = [await sender.send("#dev", text) for sender, text in talk]
    assert [(a.room, a.seq) for a in acks] == [("#dev", seq) for seq in range(1, 6)]
    wanted = [
        ("#dev", ack.seq, sender.name, text, ack.ts)
        for (sender, text), ack in zip(talk, acks, strict=True)
    ]
    for member in (ali, bob, carol):
        messages = await collect(member, Message, len(talk))
        assert [(m.room, m.seq, m.sender, m.text, m.ts) for m in messages] == wanted
    assert (await bob.send("#lobby", "the lobby is numbered on its own")).seq == 1
    frames = await frames_until(
        dave,
        lambda fs: (
            seen(fs, is_message("five"))
            and seen(fs, is_message("the lobby is numbered on its own"))
        ),
    )
    assert [(m.room, m.seq, m.sender, m.text, m.ts) for m in messages_in(frames, "#dev")] == wanted
    assert [m.seq for m in messages_in(frames, "#lobby")] == [1]


async def test_concurrent_senders_on_both_servers_give_every_member_one_gapless_order(
    deployment: Deployment,
) -> None:
    ali = await deployment.connect("ali", on=0)
    bob = await deployment.connect("bob", on=1)
    watchers = [await deployment.raw(on=0), await deployment.raw(on=1)]  # see every frame
    for n, watcher in enumerate(watchers):
        await watcher.hello(f"watcher{n}")
    each = 50

    async def burst(client: ChatClient) -> list[Ack]:
        sends = (client.send("#lobby", f"{client.name} {i}") for i in range(each))
        return list(await asyncio.gather(*sends))

    acks = dict(zip(("ali", "bob"), await asyncio.gather(burst(ali), burst(bob)), strict=True))
    orders = []
    for sender in (ali, bob):
        messages = await collect(sender, Message, 2 * each)
        orders.append([(m.seq, m.sender, m.text, m.ts) for m in messages])
    for watcher in watchers:
        frames = await frames_until(watcher, lambda fs: len(messages_in(fs, "#lobby")) == 2 * each)
        orders.append([(m.seq, m.sender, m.text, m.ts) for m in messages_in(frames, "#lobby")])
    assert [seq for seq, _, _, _ in orders[0]] == list(range(1, 2 * each + 1))
    assert all(order == orders[0] for order in orders)  # the same order for everyone
    texts = sorted(text for _, _, text, _ in orders[0])
    assert texts == sorted(f"{name} {i}" for name in acks for i in range(each))  # each once
    by_seq = {seq: (sender, text, ts) for seq, sender, text, ts in orders[0]}
    for name, mine in acks.items():  # each ack names its own message; a sender's order is kept
        assert [by_seq[a.seq] for a in mine] == [
            (name, f"{name} {i}", a.ts) for i, a in enumerate(mine)
        ]
        assert [a.seq for a in mine] == sorted(a.seq for a in mine)


# --- 2. retries of room messages --------------------------------------------


async def test_a_retried_send_is_stored_once_whichever_server_takes_it(
    deployment: Deployment,
) -> None:
    bob = await deployment.raw(on=1)  # raw: nothing drops a duplicate on the way
    await bob.hello("bob")
    ali = await deployment.raw(on=0)
    await ali.hello("ali")
    first_ref, retry_ref = next(REFS), next(REFS)
    ali.send(  # the retry comes (most likely) while the first is still being stored
        Send(room="#lobby", text="once", id="m-1", ref=first_ref),
        Send(room="#lobby", text="a retry's text is ignored", id="m-1", ref=retry_ref),
    )
    first, retry = await answers(ali, first_ref, retry_ref)
    assert isinstance(first, Ack) and isinstance(retry, Ack)
    assert (first.room, first.seq, first.id) == ("#lobby", 1, "m-1")
    assert (retry.room, retry.seq, retry.ts, retry.id) == ("#lobby", 1, first.ts, "m-1")
    stored = await ask_for(ali, Send(room="#lobby", text="once?", id="m-1"), Ack)
    assert (stored.seq, stored.ts) == (1, first.ts)  # and once it is stored
    ali.writer.close()  # the ack was lost, say: ali comes back through the other server
    frames = await frames_until(bob, lambda fs: seen(fs, is_left("ali")))
    again = await deployment.raw(on=1)
    await again.hello("ali")
    moved = await ask_for(again, Send(room="#lobby", text="once!", id="m-1", action=True), Ack)
    assert (moved.room, moved.seq, moved.ts, moved.id) == ("#lobby", 1, first.ts, "m-1")
    later = await ask_for(again, Send(room="#lobby", text="next", id="m-2"), Ack)
    assert later.seq == 2  # the retries used up no number
    frames += await frames_until(bob, lambda fs: seen(fs, is_message("next")))
    messages = [(m.seq, m.sender, m.text, m.ts, m.action) for m in messages_in(frames, "#lobby")]
    assert messages == [(1, "ali", "once", first.ts, False), (2, "ali", "next", later.ts, False)]
    page = await ask_for(bob, History(room="#lobby"), HistoryPage)
    assert [(m.seq, m.text) for m in page.messages] == [(1, "once"), (2, "next")]


# --- 3. retries of private messages -----------------------------------------


async def test_a_retried_private_message_reaches_its_target_exactly_once(
    deployment: Deployment,
) -> None:
    bob = await deployment.raw(on=1)  # raw: nothing drops a duplicate on the way
    await bob.hello("bob")
    ali = await deployment.raw(on=0)
    welcome = await ali.hello("ali")
    await until(partial(who, ali), ("ali", "bob"))
    first_ref, retry_ref = next(REFS), next(REFS)
    ali.send(  # the retry comes while the first is still being stored
        Private(to="bob", text="psst", id="p-1", ref=first_ref),
        Private(to="bob", text="a retry's text is ignored", id="p-1", ref=retry_ref),
    )
    first, retry = await answers(ali, first_ref, retry_ref)
    assert isinstance(first, PrivateMessage) and isinstance(retry, PrivateMessage)
    original = ("ali", "bob", "psst", first.ts, False, welcome.private_seq + 1)
    assert private_copy(first) == original and first.id == "p-1"
    assert private_copy(retry) == original and retry.id == "p-1"  # an echo for each attempt
    stored = await ask_for(ali, Private(to="bob", text="psst?", id="p-1"), PrivateMessage)
    assert private_copy(stored) == original and stored.id == "p-1"  # and once it is stored
    ali.writer.close()  # the echo was lost, say: ali comes back through the other server
    frames = await frames_until(bob, lambda fs: seen(fs, is_left("ali")))
    again = await deployment.raw(on=1)
    await again.hello("ali")
    retried = Private(to="bob", text="psst!", action=True, id="p-1")
    moved = await ask_for(again, retried, PrivateMessage)
    assert private_copy(moved) == original and moved.id == "p-1"
    marker = await ask_for(again, Private(to="bob", text="marker", id="p-2"), PrivateMessage)
    assert marker.pid == first.pid + 1  # the retries used up no number
    frames += await frames_until(bob, lambda fs: seen(fs, is_private("marker")))
    received = [(f, f.id, f.ref) for f in frames if isinstance(f, PrivateMessage)]
    assert [(private_copy(f), i, r) for f, i, r in received] == [
        (original, "", None),
        (private_copy(marker), "", None),
    ]  # the target got the first attempt only


async def test_a_private_retry_is_answered_even_after_its_target_has_gone(
    deployment: Deployment,
) -> None:
    bob = await deployment.connect("bob", on=1)
    ali = await deployment.raw(on=0)
    await ali.hello("ali")
    await until(partial(who, ali), ("ali", "bob"))
    first = await ask_for(ali, Private(to="bob", text="bye, bob", id="p-1"), PrivateMessage)
    await expect(bob, PrivateMessage, text="bye, bob")
    await bob.close()
    await until(partial(who, ali), ("ali",))
    retry = await ask_for(ali, Private(to="bob", text="bye?", id="p-1"), PrivateMessage)
    assert private_copy(retry) == private_copy(first) and retry.id == "p-1"
    ali.writer.close()
    async with asyncio.timeout(TIMEOUT):  # the other server hears of the logout a moment later
        while True:
            again = await deployment.raw(on=1)
            again.send(Hello(name="ali", ref=0))
            answer = await again.reply(0)
            if isinstance(answer, Welcome):
                break
            assert isinstance(answer, Error) and answer.code == "name_taken", answer
            again.writer.close()
            await asyncio.sleep(0.01)
    moved = await ask_for(again, Private(to="bob", text="bye!", id="p-1"), PrivateMessage)
    assert private_copy(moved) == private_copy(first) and moved.id == "p-1"
    refused = await ask_for(again, Private(to="bob", text="a new one", id="p-2"), Error)
    assert (refused.code, refused.fatal) == ("no_such_user", False)


# --- 4. history pages -------------------------------------------------------


async def walk_back(client: ChatClient, room: str, limit: int) -> list[HistoryPage]:
    """The pages from the newest back to the first (at most 10 pages)."""
    pages = [await client.history(room, limit=limit)]
    while not pages[-1].complete and pages[-1].messages and len(pages) < 10:
        pages.append(await client.history(room, before=pages[-1].messages[0].seq, limit=limit))
    return [page_content(page) for page in pages]


async def test_history_pages_walk_back_to_the_first_message_alike_through_both_servers(
    deployment: Deployment,
) -> None:
    ali = await deployment.connect("ali", on=0)
    epoch = (await ali.join("#dev")).epoch
    acks = [await ali.send("#dev", f"m{seq}") for seq in range(1, 31)]
    pages = await walk_back(ali, "#dev", 10)
    assert [[m.seq for m in page.messages] for page in pages] == [
        list(range(21, 31)),
        list(range(11, 21)),
        list(range(1, 11)),
    ]
    assert [page.complete for page in pages] == [False, False, True]  # true only at the start
    assert {(page.room, page.epoch) for page in pages} == {("#dev", epoch)}
    for page in pages:
        for m in page.messages:
            assert (m.room, m.sender, m.text, m.ts, m.action) == (
                "#dev", "ali", f"m{m.seq}", acks[m.seq - 1].ts, False,
            )  # fmt: skip
    bob = await deployment.connect("bob", on=1)  # not a member: anyone may read a room

    async def newest() -> HistoryPage:
        return page_content(await bob.history("#DEV", limit=10))

    await until(newest, pages[0])  # the other server may be a moment behind
    assert await walk_back(bob, "#dev", 10) == pages
    above = await bob.history("#dev", before=1000, limit=10)  # lowered to the newest
    assert page_content(above) == pages[0]
    short = await bob.history("#dev", before=6, limit=10)
    assert ([m.seq for m in short.messages], short.complete) == ([1, 2, 3, 4, 5], True)
    empty = await bob.history("#dev", before=1, limit=10)
    assert (empty.messages, empty.complete, empty.epoch) == ((), True, epoch)
    await ali.part("#dev")  # nobody is in it now: only its history is
    for before in (2**63, 2**64 - 1):  # beyond any store's integers: still lowered
        await until(lambda: room_is_empty(bob, "#dev"), True)
        huge = await bob.history("#dev", before=before, limit=10)
        assert page_content(huge) == pages[0]


async def room_is_empty(client: ChatClient, room: str) -> bool:
    return not await client.who(room)


# --- 5. resume and replay ---------------------------------------------------


async def test_a_dropped_client_resumes_through_the_other_server_with_exactly_what_it_missed(
    deployment: Deployment,
) -> None:
    ali = await deployment.connect("ali", on=0)
    bob = await deployment.connect("bob", on=0)
    await ali.join("#dev")
    await bob.join("#dev")
    await ali.send("#dev", "before")
    await expect(bob, Message, text="before")
    assert bob.welcome is not None
    positions = tuple(bob.positions.values())  # #lobby at 0, #dev at 1
    token, private_after = bob.welcome.token, bob.welcome.private_seq
    await bob.abort()
    lefts = await collect(ali, Left, 2)  # one per room (rooms are not ordered among themselves)
    assert sorted((e.room, e.name, e.reason) for e in lefts) == [
        ("#dev", "bob", "disconnect"),
        ("#lobby", "bob", "disconnect"),
    ]
    missed = [await ali.send("#dev", f"missed {i}") for i in range(3)]
    missed.append(await ali.send("#lobby", "missed in the lobby"))
    back = await deployment.raw(on=1)
    hello = Hello(name="bob", positions=positions, token=token, private_after=private_after)
    welcome = await ask_for(back, hello, Welcome)
    assert welcome.rooms == ("#lobby", "#dev")
    live = [await ali.send("#dev", "live"), await ali.send("#lobby", "live in the lobby")]
    wanted = missed + live
    frames = await frames_until(
        back, lambda fs: len([f for f in fs if isinstance(f, Message)]) >= len(wanted)
    )
    assert not [f for f in frames if isinstance(f, RoomReset)]
    got = sorted((m.room, m.seq, m.text, m.ts) for m in frames if isinstance(m, Message))
    assert got == sorted(
        (a.room, a.seq, text, a.ts)
        for a, text in zip(
            wanted,
            [
                "missed 0",
                "missed 1",
                "missed 2",
                "missed in the lobby",
                "live",
                "live in the lobby",
            ],
            strict=True,
        )
    )
    for room in ("#lobby", "#dev"):  # in order in each room, and nothing more
        seqs = [m.seq for m in frames if isinstance(m, Message) and m.room == room]
        assert seqs == sorted(seqs)
    await ali.send("#lobby", "barrier")
    after = await frames_until(back, lambda fs: seen(fs, is_message("barrier")))
    assert [m.text for m in after if isinstance(m, Message)] == ["barrier"]


async def test_positions_the_room_never_had_get_room_reset_and_live_messages_follow(
    deployment: Deployment,
) -> None:
    ali = await deployment.connect("ali", on=0)
    carol = await deployment.connect("carol", on=1)
    for room in ("#dev", "#ops"):
        await ali.join(room)
        await carol.join(room)
    await ali.send("#dev", "dev 1")
    await ali.send("#dev", "dev 2")
    await ali.send("#ops", "ops 1")
    await collect(carol, Message, 3)  # the other server has them
    dev, ops = ali.positions["#dev"], ali.positions["#ops"]
    back = await deployment.raw(on=1)
    stale = (
        Position("#dev", dev.epoch + 1, 1),  # another history
        Position("#ops", ops.epoch, 5),  # beyond the room's last message
    )
    welcome = await ask_for(back, Hello(name="bob", positions=stale), Welcome)
    assert welcome.rooms == ("#lobby", "#dev", "#ops")
    frames = await frames_until(
        back, lambda fs: len([f for f in fs if isinstance(f, RoomReset)]) == 2
    )
    resets = {f.room: (f.epoch, f.seq) for f in frames if isinstance(f, RoomReset)}
    assert resets == {"#dev": (dev.epoch, 2), "#ops": (ops.epoch, 1)}
    await ali.send("#dev", "dev 3")
    await ali.send("#ops", "ops 2")
    frames += await frames_until(
        back, lambda fs: seen(fs, is_message("dev 3")) and seen(fs, is_message("ops 2"))
    )
    messages = sorted((m.room, m.seq, m.text) for m in frames if isinstance(m, Message))
    assert messages == [("#dev", 3, "dev 3"), ("#ops", 2, "ops 2")]  # live, from seq + 1


# --- 6. presence ------------------------------------------------------------


async def test_logins_joins_parts_and_quits_are_seen_by_members_on_both_servers(
    deployment: Deployment,
) -> None:
    ali = await deployment.connect("ali", on=0)
    bob = await deployment.connect("bob", on=1)
    await expect(ali, Joined, room="#lobby", name="bob")  # a login on the other server
    await expect(bob, Joined, room="#lobby", name="bob")
    await bob.join("#dev")
    await until(partial(ali.who, "#dev"), ("bob",))
    assert (await ali.join("#dev")).users == ("ali", "bob")
    await expect(bob, Joined, room="#dev", name="ali")
    carol = await deployment.connect("carol", on=0)
    await until(partial(carol.who, "#dev"), ("ali", "bob"))
    assert (await carol.join("#dev")).users == ("ali", "bob", "carol")
    await expect(bob, Joined, room="#dev", name="carol")
    await bob.part("#dev")
    for member in (ali, carol, bob):  # the leaver hears it too
        assert (await expect(member, Left, room="#dev", name="bob")).reason == "part"
    await carol.close()
    lefts = await collect(ali, Left, 2)  # one per room (rooms are not ordered among themselves)
    assert sorted((e.room, e.name, e.reason) for e in lefts) == [
        ("#dev", "carol", "quit"),
        ("#lobby", "carol", "quit"),
    ]
    left = await expect(bob, Left, name="carol")  # bob is no longer in #dev: the lobby only
    assert (left.room, left.reason) == ("#lobby", "quit")
    await ali.abort()
    assert (await expect(bob, Left, name="ali")).reason == "disconnect"
    dave = await deployment.connect("dave", on=0)
    for client in (bob, dave):
        await until(client.who, ("bob", "dave"))
    tail = await events_while(bob, lambda es: seen(es, lambda e: isinstance(e, Joined)))
    assert presence_of("dave", "#lobby", tail) == [("joined", "")]
    assert not [e for e in tail if isinstance(e, Left)]  # nobody left twice


async def test_who_and_list_rooms_answer_the_same_on_both_servers(deployment: Deployment) -> None:
    ali = await deployment.connect("ali", on=0)
    bob = await deployment.connect("Bob", on=1)
    carol = await deployment.connect("carol", on=1)
    await ali.join("#dev")
    await ali.join("#ops")
    await bob.join("#DEV")
    await ali.send("#ops", "a note for later")

    async def view(client: ChatClient) -> object:
        return (
            await client.list_rooms(),
            await client.who(),
            await client.who("#dev"),
            await client.who("#ops"),
        )

    for client in (ali, bob, carol):
        await until(
            partial(view, client),
            (
                (RoomInfo("#dev", 2), RoomInfo("#lobby", 3), RoomInfo("#ops", 1)),
                ("ali", "Bob", "carol"),  # sorted case-insensitively
                ("ali", "Bob"),
                ("ali",),
            ),
        )
    await ali.part("#ops")
    for client in (ali, bob, carol):
        await until(
            partial(view, client),
            (
                (RoomInfo("#dev", 2), RoomInfo("#lobby", 3)),  # #ops keeps its history only
                ("ali", "Bob", "carol"),
                ("ali", "Bob"),
                (),
            ),
        )


async def test_list_rooms_comes_in_pages_that_cover_every_room_once(
    deployment: Deployment,
) -> None:
    ali = await deployment.connect("ali", on=0)
    bob = await deployment.connect("bob", on=1)
    mine = [f"#a{n}" for n in range(5)]
    theirs = [f"#b{n}" for n in range(4)]
    for room in mine:
        await ali.join(room)
    for room in [*theirs, "#a0"]:
        await bob.join(room)
    everything = tuple(
        [RoomInfo("#a0", 2)]
        + [RoomInfo(room, 1) for room in [*mine[1:], *theirs]]
        + [RoomInfo("#lobby", 2)]
    )
    for client in (ali, bob):
        await until(client.list_rooms, everything)
    raw = await deployment.raw(on=1)
    await raw.hello("pager")
    pages: list[RoomList] = []
    after = ""
    while not pages or pages[-1].more:
        pages.append(await ask_for(raw, ListRooms(after=after, limit=4), RoomList))
        after = pages[-1].rooms[-1].room
    assert [len(page.rooms) for page in pages] == [4, 4, 2]
    assert tuple(info.room for page in pages for info in page.rooms) == tuple(
        info.room for info in everything
    )
    last = await ask_for(raw, ListRooms(after="#lobby"), RoomList)
    assert (last.rooms, last.more) == ((), False)


# --- 7. ownership of names --------------------------------------------------


async def test_a_registered_name_needs_its_key_on_both_servers_and_the_key_opens_another_session(
    deployment: Deployment,
) -> None:
    key, wrong = SigningKey.generate(), SigningKey.generate()
    ali = await deployment.connect("ali", on=0, key=key)
    watcher = await deployment.connect("watcher", on=1)
    await until(watcher.who, ("ali", "watcher"))
    thief = await deployment.raw(on=1)

    async def refusal() -> str:  # the other server hears of the registration a moment later
        return (await ask_for(thief, Hello(name="ali"), Error)).code

    await until(refusal, "name_registered")
    for on in (0, 1):
        other = await deployment.raw(on)
        for hello in (
            Hello(name="ali"),
            await other.signed_hello("ali", wrong),
            await other.signed_hello("ALI", wrong),
            Hello(name="\u0430li"),  # a Cyrillic a
        ):
            refused = await ask_for(other, hello, Error)
            assert (refused.code, refused.fatal) == ("name_registered", False), hello
    seen_elsewhere = await (await deployment.raw(on=0)).signed_hello("ali", key)
    replayed = await ask_for(thief, seen_elsewhere, Error)  # signed for another connection
    assert (replayed.code, replayed.fatal) == ("bad_signature", False)
    owner = await deployment.raw(on=1)
    welcome = await ask_for(owner, await owner.signed_hello("ali", key), Welcome)  # ali online
    assert (welcome.name, welcome.devices) == ("ali", 2)
    owner.send(Send(room="#lobby", text="same ali, other device", ref=next(REFS)))
    events = await events_while(watcher, lambda es: seen(es, is_message("same ali, other device")))
    assert ("left", "disconnect") not in presence_of("ali", "#lobby", events)  # ali never left
    await expect(ali, Message, text="same ali, other device")  # the first one is still there
    assert ali.connected
    check = await deployment.connect("check", on=0)
    for client in (check, watcher):  # online once, everywhere
        await until(client.who, ("ali", "check", "watcher"))


async def taken_over(old: ChatClient, new: Raw, watcher: ChatClient, text: str) -> None:
    """`old` was told it was replaced (and does not reconnect); `watcher` sees ali leave, come
    back and say `text`."""
    events = await events_until(old, Disconnected)
    said = [e for e in events if isinstance(e, Bye | Error)]
    assert [(e.reason, e.TYPE) for e in said if isinstance(e, Bye)] == [("replaced", "bye")]
    assert len(said) == 1 and "another connection" in events[-1].reason
    new.send(Send(room="#lobby", text=text, ref=next(REFS)))
    events = await events_while(
        watcher,
        lambda es: (
            seen(es, is_message(text))
            and ("left", "disconnect") in presence_of("ali", "#lobby", es)
        ),
    )
    assert presence_of("ali", "#lobby", events)[-2:] == [("left", "disconnect"), ("joined", "")]


async def test_a_name_online_on_one_server_is_taken_on_the_other(deployment: Deployment) -> None:
    ali = await deployment.connect("ali", on=0)
    watcher = await deployment.connect("watcher", on=1)
    await until(watcher.who, ("ali", "watcher"))
    thief = await deployment.raw(on=1)
    for hello in (
        Hello(name="ali"),
        Hello(name="ALI"),
        Hello(name="\u0430li"),
        await thief.signed_hello("ali", SigningKey.generate()),  # a key registers nothing here
        Hello(name="ali", token="not-the-token-of-ali"),
    ):
        refused = await ask_for(thief, hello, Error)
        assert (refused.code, refused.fatal) == ("name_taken", False), hello
    await ali.send("#lobby", "still me")
    assert (await expect(watcher, Message, text="still me")).sender == "ali"
    await ali.close()
    await until(watcher.who, ("watcher",))
    welcome = await ask_for(thief, Hello(name="ali"), Welcome)  # free, and not registered
    assert welcome.name == "ali"


async def test_a_resume_token_takes_over_the_session_from_the_other_server(
    deployment: Deployment,
) -> None:
    ali = await deployment.connect("ali", on=0)
    watcher = await deployment.connect("watcher", on=1)
    await until(watcher.who, ("ali", "watcher"))
    assert ali.welcome is not None
    token = ali.welcome.token
    back = await deployment.raw(on=1)
    wrong = await ask_for(back, Hello(name="ali", token=token + "x"), Error)
    assert wrong.code == "name_taken"
    answers_to_token: list[Event] = []

    async def take_over() -> str:  # the other server hears of the token a moment later
        answers_to_token.append(await ask(back, Hello(name="ali", token=token)))
        return type(answers_to_token[-1]).__name__

    await until(take_over, "Welcome")
    welcome = answers_to_token[-1]
    assert isinstance(welcome, Welcome)
    assert welcome.name == "ali" and welcome.token not in ("", token)
    assert {type(a) for a in answers_to_token[:-1]} <= {Error}  # name_taken until then
    await taken_over(ali, back, watcher, "back, on the other server")
    stale = await deployment.raw(on=1)
    used = await ask_for(stale, Hello(name="ali", token=token), Error)  # each welcome renews it
    assert used.code == "name_taken"
    home = await deployment.raw(on=0)

    async def take_back() -> str:  # the first server hears of the new token a moment later
        answer = await ask(home, Hello(name="ali", token=welcome.token))
        return type(answer).__name__

    await until(take_back, "Welcome")


# --- 8. durability ----------------------------------------------------------


async def test_history_names_tokens_and_numbering_survive_a_restart(
    deployment: Deployment,
) -> None:
    if not deployment.durable:
        pytest.skip(f"{deployment.kind}: nothing is kept across a restart")
    key = SigningKey.generate()
    ali = await deployment.connect("ali", on=0, key=key)
    bob = await deployment.connect("bob", on=1)
    await ali.join("#dev")
    lobby = [await ali.send("#lobby", f"lobby {i}", id=f"lobby-{i}") for i in range(3)]
    await ali.send("#dev", "dev 1")
    await until(ali.who, ("ali", "bob"))
    echo = await ali.private("bob", "psst")
    await expect(bob, PrivateMessage, text="psst")
    pages = {room: page_content(await ali.history(room)) for room in ("#lobby", "#dev")}
    assert [len(page.messages) for page in pages.values()] == [3, 1]
    assert ali.welcome is not None
    token = ali.welcome.token
    await deployment.restart()

    reader = await deployment.connect("reader", on=1)
    for room, page in pages.items():
        assert page_content(await reader.history(room)) == page  # same messages, same epoch
    assert (await reader.send("#lobby", "after the restart")).seq == 4
    state = await reader.join("#dev")
    assert (state.seq, state.epoch) == (1, pages["#dev"].epoch)
    assert (await reader.send("#dev", "dev 2")).seq == 2
    thief = await deployment.raw(on=0)
    refused = await ask_for(thief, Hello(name="ali"), Error)
    assert refused.code == "name_registered"
    back = await deployment.raw(on=1)
    hello = await back.signed_hello("ali", key, token=token, private_after=echo.pid - 1)
    welcome = await ask_for(back, hello, Welcome)
    assert welcome.private_seq == echo.pid
    frames = await frames_until(back, lambda fs: seen(fs, is_private("psst")))  # the token held
    replayed = next(f for f in frames if isinstance(f, PrivateMessage))
    assert (private_copy(replayed), replayed.id, replayed.ref) == (private_copy(echo), "", None)
    retry = await ask_for(back, Send(room="#lobby", text="lobby 0", id="lobby-0"), Ack)
    assert (retry.seq, retry.ts) == (1, lobby[0].ts)  # the retry window was kept
    after = await reader.private("ali", "welcome back")
    assert after.pid == echo.pid + 1


async def test_a_restart_without_storage_starts_every_room_afresh(deployment: Deployment) -> None:
    if deployment.durable:
        pytest.skip(f"{deployment.kind} keeps its history across a restart")
    ali = await deployment.connect("ali", on=0)
    await ali.send("#lobby", "soon forgotten")
    epoch = ali.positions["#lobby"].epoch
    await deployment.restart()
    bob = await deployment.connect("bob", on=1)
    page = await bob.history("#lobby")
    assert (page.messages, page.complete) == ((), True)
    assert page.epoch != epoch  # a client can tell that the history is another one
    assert (await bob.send("#lobby", "first again")).seq == 1


async def test_a_shutdown_stores_and_acknowledges_every_message_it_has_read(
    deployment: Deployment,
) -> None:
    """PROTOCOL.md §4: a server that is stopping finishes storing what it accepted."""
    if not deployment.durable:
        pytest.skip(f"{deployment.kind}: nothing is kept across a restart")
    sender = await deployment.raw(on=0)
    await sender.hello("ali")
    sender.send(*(Send(room="#lobby", text=f"m{i}", id=f"m{i}", ref=i) for i in range(300)))
    await until(partial(who, sender), ("ali",))  # a reply after the 300: all of them were read
    await deployment.restart()
    acks = {f.ref for f in await sender.rest(timeout=TIMEOUT) if isinstance(f, Ack)}
    assert acks == set(range(300))  # each acknowledged before the goodbye
    reader = await deployment.connect("reader", on=1)
    page = await reader.history("#lobby", limit=500)
    assert [m.text for m in page.messages] == [f"m{i}" for i in range(300)]


async def test_a_join_survives_another_join_of_the_same_room_that_gives_up(
    deployment: Deployment,
) -> None:
    """Two sessions join a room at once; one leaves before the join is done: the other stays
    a member who hears the room."""
    watcher = await deployment.connect("watcher", on=1)
    await watcher.join("#x")
    ann, bob = await deployment.raw(on=0), await deployment.raw(on=0)
    await ann.hello("ann")
    await bob.hello("bob")
    ann.send(Join(room="#x", ref=1))
    bob.send(Join(room="#x", ref=1))
    ann.writer.close()
    state = await bob.reply(1)
    assert isinstance(state, RoomState) and state.epoch == watcher.positions["#x"].epoch
    await watcher.send("#x", "can you hear me")
    heard = await frames_until(bob, lambda fs: seen(fs, is_message("can you hear me")))
    assert [f.seq for f in heard if isinstance(f, Message)] == [1]
