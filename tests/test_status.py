"""Away and typing, as users notice them on every deployment, and the client's bookkeeping of them.

Each contract test runs on every kind of `deployment`: a user on one server and a watcher on
the other (the same server twice for a single-server kind). Effects that cross servers arrive a
moment later: tests wait for them, never for time.
"""

from __future__ import annotations

import asyncio
import dataclasses
import socket
from collections.abc import Callable
from functools import partial
from typing import Any

import pytest

from tests.deployments import SHARED, Deployment, deployment_fixture
from tests.helpers import expect, until
from tests.raw import Raw, open_raw
from tests.test_contract import (
    REFS,
    ask,
    ask_for,
    events_while,
    frames_until,
    is_left,
    is_message,
    seen,
)
from tests.test_devices import raw_barrier, two_devices
from tuichat.client import (
    TYPING_RENEW,
    TYPING_SHOWN_FOR,
    ChatClient,
    Reconnected,
    Reconnecting,
    RequestFailed,
    Status,
    TypingThrottle,
    away_pairs,
)
from tuichat.client.status import MAX_REASON, MAX_TYPING, MAX_TYPING_CONVERSATIONS
from tuichat.protocol import (
    Ack,
    Away,
    Error,
    Hello,
    History,
    HistoryPage,
    IsTyping,
    Join,
    Message,
    Ping,
    Pong,
    PrivateMessage,
    RoomState,
    Send,
    SetAway,
    Typing,
    UserList,
    Welcome,
    Who,
)
from tuichat.server import ChatServer, ServerConfig
from tuichat.server import server as server_module
from tuichat.server.ownership import token_hash
from tuichat.server.session import TYPING_BACKLOG, TYPING_BURST

__all__ = ["deployment_fixture"]


class Clock:
    """A clock the test moves by hand (seconds)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def typing_frames(events: list[Any]) -> list[tuple[str, str]]:
    """The (name, room) of every `is_typing` among `events`."""
    return [(e.name, e.room) for e in events if isinstance(e, IsTyping)]


def away_news(events: list[Any], name: str) -> list[tuple[bool, str]]:
    """The (away, reason) of every `away` about `name` among `events`."""
    return [(e.away, e.reason) for e in events if isinstance(e, Away) and e.name == name]


async def lobby_barrier(client: ChatClient) -> list[Any]:
    """Every event of `client` up to its own message to the lobby, sent now: all the server
    had for it before (what waits in the lobby is written ahead of a message)."""
    text = f"barrier {next(REFS)}"
    await client.send("#lobby", text)
    return await events_while(client, lambda es: seen(es, is_message(text)))


async def current(get: Callable[[], object]) -> object:
    """What `get()` says now (for `until`: state the client keeps as frames arrive)."""
    return get()


async def listed_away(raw: Raw, room: str = "") -> list[tuple[str, str]] | str:
    """Who `who` says is away (in `room`, or on the whole chat), with their reasons (or the
    error code: the room may not be known there yet)."""
    listed = await ask(raw, Who(room=room))
    if not isinstance(listed, UserList):
        return getattr(listed, "code", "?")
    return away_pairs(listed.away, listed.away_reasons)


async def away_seen_by_newcomer(deployment: Deployment, on: int) -> list[tuple[str, str]]:
    """Who a user who signs in on server `on` now is told is away."""
    newcomer = await deployment.raw(on)
    welcome = await newcomer.hello(f"newcomer{next(REFS)}")
    newcomer.writer.close()
    return away_pairs(welcome.away, welcome.away_reasons)


# --- away --------------------------------------------------------------------------------


async def test_away_set_on_one_server_is_seen_on_the_other_and_by_every_newcomer(
    deployment: Deployment,
) -> None:
    watcher = await deployment.connect("watcher", on=1)
    ali = await deployment.connect("ali", on=0)
    await until(watcher.who, ("ali", "watcher"))
    assert await ali.set_away("  at lunch\n") == "at lunch"  # kept as one clean line
    news = await expect(watcher, Away, name="ali")
    assert (news.away, news.reason, news.ref) == (True, "at lunch", None)
    assert watcher.status.away == {"ali": "at lunch"}
    assert ali.status.away_reason("ali") == "at lunch"  # its own reply says so
    for on in (0, 1):
        assert await away_seen_by_newcomer(deployment, on) == [("ali", "at lunch")]
    await ali.join("#dev")
    for on in (0, 1):
        asker = await deployment.raw(on)
        await asker.hello(f"asker{on}")
        assert await listed_away(asker) == [("ali", "at lunch")]
        await until(partial(listed_away, asker, "#dev"), [("ali", "at lunch")])
        state = await ask_for(asker, Join(room="#dev"), RoomState)
        assert away_pairs(state.away, state.away_reasons) == [("ali", "at lunch")]

    assert await ali.set_away(None) is None  # back
    back = await expect(watcher, Away, name="ali")
    assert (back.away, back.reason) == (False, "")
    assert watcher.status.away == {}
    assert await away_seen_by_newcomer(deployment, 1) == []

    await ali.set_away("")  # away, no reason given
    assert (await expect(watcher, Away, name="ali")).away
    assert watcher.status.away == {"ali": ""}
    await ali.close()  # offline: away ends with it
    events = await events_while(watcher, lambda es: seen(es, is_left("ali")))
    assert away_news(events, "ali") == []  # no word of it: leaving says it all
    assert watcher.status.away == {}
    for on in (0, 1):
        assert await away_seen_by_newcomer(deployment, on) == []
    again = await deployment.connect("ali", on=1)
    assert again.status.away == {} and again.welcome is not None and again.welcome.away == ()


async def test_away_is_the_persons_on_every_device_while_any_is_online(
    deployment: Deployment,
) -> None:
    watcher = await deployment.connect("watcher", on=0)
    key, phone, laptop = await two_devices(deployment)  # the phone on one server, the laptop on
    await until(watcher.who, ("bob", "watcher"))  # the other
    await phone.set_away("in a meeting")
    mirrored = await expect(laptop, Away, name="bob")  # the other device of the same person
    assert (mirrored.away, mirrored.reason, mirrored.ref) == (True, "in a meeting", None)
    assert laptop.status.away_reason("bob") == "in a meeting"
    await laptop.join("#later")  # (behind what the laptop's server said of the away, if any)
    await expect(phone, RoomState, room="#later")
    events = await lobby_barrier(watcher)
    assert away_news(events, "bob") == [(True, "in a meeting")]  # once, for the person
    assert away_news(await lobby_barrier(phone), "bob") == []  # the asker had its reply only

    await phone.close()  # a device goes; the person stays, away
    await until(partial(away_seen_by_newcomer, deployment, 0), [("bob", "in a meeting")])
    await laptop.set_away("gone fishing")
    await expect(watcher, Away, name="bob", reason="gone fishing")
    tablet = await deployment.connect("bob", on=0, key=key)  # a device comes: the person is away
    assert tablet.welcome is not None and ("bob", "gone fishing") in away_pairs(
        tablet.welcome.away, tablet.welcome.away_reasons
    )
    assert tablet.status.away_reason("bob") == "gone fishing"
    await tablet.set_away(None)  # back, from any device
    assert not (await expect(laptop, Away, name="bob")).away
    assert not (await expect(watcher, Away, name="bob")).away
    await tablet.set_away("later")
    await expect(laptop, Away, name="bob", reason="later")
    await laptop.close()
    await tablet.close()  # the last device goes: the person is offline, and not away
    await until(partial(away_seen_by_newcomer, deployment, 1), [])
    fresh = await deployment.connect("bob", on=1, key=key)
    assert fresh.status.away == {}


async def test_a_server_that_starts_later_knows_who_is_away(deployment: Deployment) -> None:
    if deployment.kind not in SHARED:
        pytest.skip("a single server has no other to start later")
    ali = await deployment.connect("ali", on=0)
    watcher = await deployment.connect("watcher", on=1)
    await ali.set_away("on a train")
    await expect(watcher, Away, name="ali")
    config = dataclasses.replace(deployment.servers[1].config, server_name="c")
    late = ChatServer(config)
    await late.start()
    try:
        newcomer = await ChatClient.connect("newcomer", *late.address)
        try:
            assert newcomer.welcome is not None
            assert away_pairs(newcomer.welcome.away, newcomer.welcome.away_reasons) == [
                ("ali", "on a train")
            ]
            assert newcomer.status.away == {"ali": "on a train"}
            await ali.set_away(None)
            assert not (await expect(newcomer, Away, name="ali")).away
            assert newcomer.status.away == {}
        finally:
            await newcomer.abort()
    finally:
        await late.stop()


async def test_an_away_reason_too_long_is_refused_clearly_and_the_session_goes_on(
    deployment: Deployment,
) -> None:
    watcher = await deployment.connect("watcher", on=1)
    ali = await deployment.raw(on=0)
    await ali.hello("ali")
    await until(watcher.who, ("ali", "watcher"))
    for reason in ("x" * 201, "é" * 101):  # 201 and 202 bytes of UTF-8
        refused = await ask_for(ali, SetAway(reason=reason), Error)
        assert (refused.code, refused.fatal) == ("text_too_long", False)
        assert "200 bytes" in refused.message
    kept = await ask_for(ali, SetAway(reason="é" * 100), Away)  # 200 bytes: allowed
    assert (kept.name, kept.away, kept.reason) == ("ali", True, "é" * 100)
    dirty = "  out\x1b[31m\r\nback\tat 3 \x00 "  # controls go, breaks become spaces, trimmed
    cleaned = await ask_for(ali, SetAway(reason=dirty), Away)
    assert cleaned.reason == "out[31m back at 3"
    same = await ask_for(ali, SetAway(reason="out[31m back at 3"), Away)  # no change: the reply
    assert same.reason == cleaned.reason  # only, nobody else hears of it
    assert isinstance(await ask(ali, Ping(data=1)), Pong)  # the session goes on
    await until(partial(current, partial(watcher.status.away_reason, "ali")), cleaned.reason)
    events = await lobby_barrier(watcher)
    assert away_news(events, "ali") == [(True, "é" * 100), (True, "out[31m back at 3")]
    with pytest.raises(RequestFailed) as failed:  # the client library says so too
        await watcher.set_away("y" * 300)
    assert failed.value.code == "text_too_long"
    assert watcher.status.away_reason("watcher") is None


async def test_a_client_that_reconnects_alone_is_away_again_as_it_said(
    deployment: Deployment,
) -> None:
    watcher = await deployment.connect("watcher", on=1)
    ali = await deployment.connect("ali", on=0, reconnect=True)
    await until(watcher.who, ("ali", "watcher"))
    await ali.set_away("brb")
    await expect(watcher, Away, name="ali", reason="brb")
    assert ali.welcome is not None
    mine = token_hash(ali.welcome.token)
    session = next(s for s in deployment.servers[0].sessions if s.token_hash == mine)
    session.abort("disconnect")  # the connection drops: ali is offline for a moment
    await expect(ali, Reconnecting)
    await expect(ali, Reconnected)
    again = await expect(watcher, Away, name="ali")  # after its leave and its return
    assert (again.away, again.reason) == (True, "brb")
    await until(partial(current, partial(ali.status.away_reason, "ali")), "brb")

    assert ali.welcome is not None
    mine = token_hash(ali.welcome.token)
    session = next(s for s in deployment.servers[0].sessions if s.token_hash == mine)
    session.abort("disconnect")
    await expect(ali, Reconnecting)
    await ali.set_away("changed my mind")  # while away from the server: sent once back
    await expect(watcher, Away, name="ali", reason="changed my mind")
    await until(partial(current, partial(ali.status.away_reason, "ali")), "changed my mind")


# --- typing ------------------------------------------------------------------------------


async def test_typing_in_a_room_reaches_the_other_members_but_not_the_typist(
    deployment: Deployment,
) -> None:
    _, phone, laptop = await two_devices(deployment, "ali")  # the typist has two devices
    bob = await deployment.connect("bob", on=1)
    carol = await deployment.connect("carol", on=0)
    dave = await deployment.connect("dave", on=1)  # not in the room
    for member in (phone, bob, carol):
        await member.join("#dev")
    await expect(laptop, RoomState, room="#dev")
    for member in (bob, carol):
        await until(partial(member.who, "#dev"), ("ali", "bob", "carol"))
    assert phone.typing("#Dev")  # any spelling of the room
    for member in (bob, carol):
        shown = await expect(member, IsTyping)
        assert (shown.name, shown.room) == ("ali", "#dev")
        assert member.status.typing_in("#dev") == ("ali",)
    await phone.send("#dev", "here it is")
    for member in (bob, carol):
        await expect(member, Message, text="here it is")
        assert member.status.typing_in("#dev") == ()  # the message ends it
    for device in (phone, laptop):  # what the room had for them came before the message
        mine = await events_while(device, lambda es: seen(es, is_message("here it is")))
        assert typing_frames(mine) == []
    assert typing_frames(await lobby_barrier(dave)) == []
    assert laptop.status.typing_everywhere() == {} and dave.status.typing_everywhere() == {}


async def test_a_crowded_room_relays_no_typing(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(server_module, "TYPING_MAX_MEMBERS", 3)  # (rather than 101 people)
    ali = await deployment.connect("ali", on=0)
    bob = await deployment.connect("bob", on=1)
    for member in (ali, bob):
        await member.join("#small")
    await until(partial(bob.who, "#small"), ("ali", "bob"))
    assert ali.typing("#small")
    await expect(bob, IsTyping, room="#small")  # two: told
    crowd = [await deployment.connect(f"c{i}", on=i % 2) for i in range(2)]
    for member in crowd:
        await member.join("#small")
    await until(partial(ali.who, "#small"), ("ali", "bob", "c0", "c1"))
    await ali.send("#small", "now we are four")  # (the next typing would go at once)
    assert ali.typing("#small")
    await ali.send("#small", "after the typing")
    shown = await events_while(bob, lambda es: seen(es, is_message("after the typing")))
    assert typing_frames(shown) == []  # four: nobody is told


async def test_typing_to_someone_reaches_every_device_of_theirs_and_no_one_else(
    deployment: Deployment,
) -> None:
    _, phone, laptop = await two_devices(deployment, "bob")
    ali = await deployment.connect("ali", on=1)
    carol = await deployment.connect("carol", on=0)
    await until(ali.who, ("ali", "bob", "carol"))
    assert ali.typing("@BOB")  # any spelling of the name
    for device in (phone, laptop):
        shown = await expect(device, IsTyping)
        assert (shown.name, shown.room) == ("ali", "@ali")  # the conversation, as bob names it
        assert device.status.typing_in("@Ali") == ("ali",)
    await ali.private("bob", "hi")
    for device in (phone, laptop):
        await expect(device, PrivateMessage, text="hi")
        assert device.status.typing_in("@ali") == ()  # the message ends it
    for other in (ali, carol):
        assert typing_frames(await lobby_barrier(other)) == []
    assert not ali.typing("@ali")  # to ourselves: nobody to tell


async def test_typing_shows_for_a_while_and_after_a_message_the_next_comes_at_once(
    deployment: Deployment,
) -> None:
    clock = Clock()  # the clients' own: how long a notice shows, how often one is sent
    watcher = await deployment.connect("watcher", on=0, clock=clock)
    ali = await deployment.connect("ali", on=1, clock=clock)
    await until(watcher.who, ("ali", "watcher"))
    assert ali.typing("#lobby")
    await expect(watcher, IsTyping, name="ali")
    assert not ali.typing("#lobby")  # paced: not again so soon
    clock.now += TYPING_SHOWN_FOR - 0.5
    assert watcher.status.typing_in("#lobby") == ("ali",)
    assert watcher.status.next_change() == clock.now + 0.5
    clock.now += 0.5
    assert watcher.status.typing_in("#lobby") == ()  # not renewed: it ran out
    await ali.send("#lobby", "one")
    assert ali.typing("#lobby")  # after our own message: at once, and relayed at once too
    await expect(watcher, IsTyping, name="ali")  # (well within the server's 3 s of the first)
    assert watcher.status.typing_in("#lobby") == ("ali",)
    await ali.send("#lobby", "two")
    await expect(watcher, Message, text="two")
    assert watcher.status.typing_in("#lobby") == ()  # the message ends it
    ali.send_typing = False  # the user's setting: nothing is sent
    assert not ali.typing("@watcher")


async def test_typing_is_never_stored_nor_replayed(deployment: Deployment) -> None:
    watcher = await deployment.raw(on=0)
    welcome = await watcher.hello("watcher")
    ali = await deployment.connect("ali", on=1)
    await until(ali.who, ("ali", "watcher"))
    assert ali.typing("#lobby")
    await ali.send("#lobby", "typed")
    live = await frames_until(watcher, lambda fs: seen(fs, is_message("typed")))
    assert typing_frames(live) == [("ali", "#lobby")]  # it was shown live
    watcher.writer.close()
    await until(ali.who, ("ali",))
    back = await deployment.raw(on=0)  # resuming from before both
    hello = Hello(name="watcher", positions=welcome.positions, token=welcome.token)
    assert isinstance(await ask(back, hello), Welcome)
    replayed = await frames_until(back, lambda fs: seen(fs, is_message("typed")))
    replayed += await raw_barrier(back)
    assert typing_frames(replayed) == []
    page = await ask_for(back, History(room="#lobby"), HistoryPage)
    assert [m.text for m in page.messages] == ["typed"]


async def test_a_burst_of_typing_is_relayed_once_and_answered_never(
    deployment: Deployment,
) -> None:
    watcher = await deployment.raw(on=0)
    await watcher.hello("watcher")
    ali = await deployment.raw(on=1)
    await ali.hello("ali")
    await until(partial(listed_users, ali), ("ali", "watcher"))
    # (within the connection's own typing bucket, TYPING_BURST: past it they are dropped too)
    ali.send(*[Typing(room="#lobby", ref=i) for i in range(10)])  # (a ref changes nothing)
    ali.send(*[Typing(room="@watcher") for _ in range(TYPING_BURST - 10)])
    await ask_for(ali, Send(room="#lobby", text="after the burst"), Ack)
    frames = await frames_until(watcher, lambda fs: seen(fs, is_message("after the burst")))
    frames += await raw_barrier(watcher)
    assert sorted(typing_frames(frames)) == [("ali", "#lobby"), ("ali", "@ali")]
    answers = await raw_barrier(ali)
    assert [f for f in answers if isinstance(f, Error | IsTyping)] == []


async def test_typing_where_one_cannot_type_is_dropped_without_a_word(
    deployment: Deployment,
) -> None:
    ali = await deployment.connect("ali", on=1)
    await ali.join("#dev")
    eve = await deployment.raw(on=0)
    await eve.hello("eve")
    await until(partial(listed_users, eve, "#dev"), ("ali",))
    nowhere = ("#dev", "@nobody", "@eve", "@", "#", "lobby", "#no room", "@" + "x" * 200)
    eve.send(*[Typing(room=room) for room in nowhere])
    await ask_for(eve, Send(room="#lobby", text="marker"), Ack)  # (eve's typing is handled)
    await ali.send("#dev", "in the room")  # what #dev had for ali comes before it
    events = await events_while(
        ali, lambda es: seen(es, is_message("marker")) and seen(es, is_message("in the room"))
    )
    assert typing_frames(events) == []
    assert [f for f in await raw_barrier(eve) if isinstance(f, Error | IsTyping)] == []


async def test_typing_past_its_limit_is_dropped_and_costs_nobody_anything() -> None:
    server = ChatServer(ServerConfig(host="127.0.0.1", port=0, db=None))  # the default limits
    await server.start()
    bob = await ChatClient.connect("bob", *server.address)
    carol = await ChatClient.connect("carol", *server.address)  # the same address as ali's
    ali = await open_raw(*server.address)
    try:
        await ali.hello("ali")
        for _ in range(3):  # 900 typing notices: many times every limit there is
            ali.send(*[Typing(room="#lobby") for _ in range(300)])
            for n in range(8):  # meanwhile the address's other user sends as usual
                await carol.send("#lobby", f"still here {n}")  # (a refusal would raise)
        pong = await ask(ali, Ping(data=7))
        assert isinstance(pong, Pong)  # answered, not refused: typing has its own bucket
        shown = await expect(bob, IsTyping)
        assert (shown.name, shown.room) == ("ali", "#lobby")
        frames = await lobby_barrier(bob)
        assert typing_frames(frames) == []  # one relayed, the rest dropped
    finally:
        ali.writer.close()
        await bob.abort()
        await carol.abort()
        await server.stop()


async def test_a_slow_reader_gets_no_typing_while_much_waits_for_it(
    deployment: Deployment,
) -> None:
    slow = await slow_raw(*deployment.servers[0].address)
    try:
        await slow.hello("slow")
        watcher = await deployment.connect("watcher", on=0)
        filler = await deployment.connect("filler", on=0)
        ali = await deployment.connect("ali", on=1)
        await until(ali.who, ("ali", "filler", "slow", "watcher"))
        server = deployment.servers[0]
        (session,) = [s for s in server.sessions if s.user and s.user.name == "slow"]
        sent = 0
        while session.queued <= TYPING_BACKLOG:  # it reads nothing: what is sent to it waits
            await filler.send("#lobby", "x" * 3000)
            sent += 1
            assert sent < 5000, "the slow reader's queue does not grow"
        assert ali.typing("@slow")
        assert ali.typing("@watcher")  # (behind the one to the slow reader, the same way)
        assert ali.typing("#lobby")
        shown = await events_while(watcher, lambda es: len(typing_frames(es)) == 2)
        assert sorted(typing_frames(shown)) == [("ali", "#lobby"), ("ali", "@ali")]
        assert session.queued > TYPING_BACKLOG  # ... while the slow reader was still behind
        frames = await raw_barrier(slow)  # it reads again: all but the typing, and it is on
        assert typing_frames(frames) == []
        assert len([f for f in frames if isinstance(f, Message)]) == sent
    finally:
        slow.writer.close()


# --- the client's bookkeeping, without a server -------------------------------------------


def test_a_typing_notice_runs_out_unless_renewed_and_ends_with_the_message() -> None:
    clock = Clock()
    status = Status(clock)
    status.typing("ali", "#Dev")
    assert status.typing_in("#dev") == ("ali",)
    assert status.next_change() == clock.now + TYPING_SHOWN_FOR
    clock.now += TYPING_SHOWN_FOR - 1
    status.typing("bob", "#dev")
    status.typing("Ali", "#dev")  # renewed (any spelling): shown for longer, now last
    assert status.typing_in("#dev") == ("bob", "Ali")
    clock.now += 2
    assert status.typing_in("#dev") == ("bob", "Ali")
    clock.now += TYPING_SHOWN_FOR
    assert status.typing_in("#dev") == () and status.next_change() is None
    status.typing("ali", "#dev")
    status.typing("ali", "@ali")
    status.stopped("ALI", "#DEV")  # their message came
    assert status.typing_in("#dev") == () and status.typing_everywhere() == {"@ali": ("ali",)}


def test_going_offline_ends_both_away_and_typing_and_lists_are_snapshots() -> None:
    status = Status(Clock())
    status.reset([("ali", "lunch"), ("bob", "")])
    assert status.away == {"ali": "lunch", "bob": ""}
    assert status.away_changed("carol", True, "out")
    assert not status.away_changed("carol", True, "out")  # no news
    assert status.away_changed("Carol", False)
    status.typing("ali", "#dev")
    status.typing("ali", "@ali")
    status.offline("ALI")
    assert status.away_reason("ali") is None and status.typing_everywhere() == {}
    status.listed(["bob", "dave"], [("dave", "zzz")])  # bob is back, dave away
    assert status.away == {"dave": "zzz"}
    status.reset([])  # a new welcome: what it says, and nobody typing
    assert status.away == {}
    assert away_pairs(("a", "b"), ("why",)) == [("a", "why"), ("b", "")]
    assert away_pairs(("a",), ("why", "extra")) == [("a", "why")]


def test_what_a_status_keeps_is_bounded_whatever_a_server_sends() -> None:
    status = Status(Clock())
    for i in range(MAX_TYPING_CONVERSATIONS + 10):
        status.typing("ali", f"#room{i}")
    for i in range(MAX_TYPING + 10):
        status.typing(f"user{i}", "#busy")
    assert len(status.typing_everywhere()) == MAX_TYPING_CONVERSATIONS
    assert len(status.typing_in("#busy")) == MAX_TYPING
    assert status.typing_in("#busy")[-1] == f"user{MAX_TYPING + 9}"  # the most recent kept
    status.away_changed("ali", True, "x" * 100_000)
    assert len(status.away_reason("ali") or "") == MAX_REASON


def test_the_library_says_it_is_typing_at_most_every_few_seconds_per_conversation() -> None:
    clock = Clock()
    throttle = TypingThrottle(clock)
    assert throttle.allow("#dev") and not throttle.allow("#Dev")
    assert throttle.allow("@bob")  # another conversation
    clock.now += TYPING_RENEW - 0.1
    assert not throttle.allow("#dev")
    clock.now += 0.1
    assert throttle.allow("#dev")
    throttle.message_sent("#DEV")  # our message ended it for the others: at once again
    assert throttle.allow("#dev")


# --- helpers -------------------------------------------------------------------------------


async def listed_users(raw: Raw, room: str = "") -> tuple[str, ...] | str:
    """Who `who` says is in `room`, or the error code (the room may not be known there yet)."""
    answer = await ask(raw, Who(room=room))
    return answer.users if isinstance(answer, UserList) else getattr(answer, "code", "?")


async def slow_raw(host: str, port: int) -> Raw:
    """A raw connection with tiny buffers: what it does not read waits in the server."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: no autotuning
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (host, port))
    reader, writer = await asyncio.open_connection(sock=sock, limit=4096)
    return Raw(reader, writer)
