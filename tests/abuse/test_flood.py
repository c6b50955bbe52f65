"""Flood limits that reconnecting does not reset: per address, per sender and target, per hour.

Each attack runs against a real server with its default limits, from one address
(127.0.0.1), opening a new connection (under a new name) whenever the old one
is refused, as an attacker would. What gets through must stay under what the
limits allow for the time the attack took, and a normal user's ping stays short.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator

import pytest

from tests.raw import Raw, open_raw
from tuichat.client import ChatClient, RequestFailed, SigningKey
from tuichat.protocol import (
    Error,
    Hello,
    Join,
    Part,
    Parted,
    Ping,
    Pong,
    Position,
    Private,
    PrivateMessage,
    RoomState,
    Welcome,
)
from tuichat.server import ChatServer, ServerConfig
from tuichat.server.config import RateLimits

LIMITS = RateLimits()
MAX_PING_S = 0.5
NAMES = (f"spammer{n}" for n in itertools.count())


@pytest.fixture
async def server() -> AsyncIterator[ChatServer]:
    srv = ChatServer(ServerConfig(host="127.0.0.1", port=0))  # the default limits
    await srv.start()
    yield srv
    await srv.stop()


async def ping_from_elsewhere(server: ChatServer) -> float:
    """A normal user's round trip, from another address (another network, too)."""
    raw = await open_raw(*server.address, source="127.1.0.1")
    await raw.hello(next(NAMES).replace("spammer", "normal"))
    start = now()
    raw.send(Ping(data=1, ref=1))
    assert isinstance(await raw.reply(1), Pong)
    raw.writer.close()
    return now() - start


async def newcomer(server: ChatServer) -> Raw:
    raw = await open_raw(*server.address)
    await raw.hello(next(NAMES))
    return raw


async def answers(raw: Raw, count: int) -> list[object]:
    """The answers to requests 1 to `count`, in whatever order they came."""
    found: dict[int, object] = {}
    async with asyncio.timeout(10):
        while len(found) < count:
            event = await raw.next()
            assert event is not None, f"closed after {len(found)} answers"
            ref = getattr(event, "ref", None)
            if ref is not None and 1 <= ref <= count:
                found[ref] = event
    return list(found.values())


def now() -> float:
    return asyncio.get_running_loop().time()


async def test_privates_to_one_user_stay_limited_across_reconnections(server: ChatServer) -> None:
    victim = await ChatClient.connect("victim", *server.address)
    accepted = 0
    start = now()
    for _ in range(6):  # before: each new connection (and name) brought a full bucket
        raw = await newcomer(server)
        raw.send(*(Private(to="victim", text="spam", ref=ref) for ref in range(1, 26)))
        replies = await answers(raw, 25)
        accepted += sum(isinstance(r, PrivateMessage) for r in replies)
        refused = [r for r in replies if isinstance(r, Error)]
        assert {r.code for r in refused} <= {"rate_limited"}
        raw.writer.close()
    allowed = LIMITS.private_pair_burst + LIMITS.private_pair_per_second * (now() - start)
    assert accepted <= allowed + 1, (accepted, allowed)
    assert await ping_from_elsewhere(server) < MAX_PING_S
    await victim.close()


async def test_requests_from_one_address_share_one_budget(server: ChatServer) -> None:
    watcher = await ChatClient.connect("watcher", *server.address)
    accepted = 0
    start = now()
    for _ in range(10):  # 10 connections of 30 requests: twice the burst of one address
        raw = await open_raw(*server.address)
        raw.send(Hello(name=next(NAMES), ref=31))  # a hello counts too
        if isinstance(await raw.reply(31), Welcome):
            raw.send(
                *(
                    Join(room="#spam", ref=ref) if ref % 2 else Part(room="#spam", ref=ref)
                    for ref in range(1, 31)
                )
            )
            replies = await answers(raw, 30)
            accepted += 1 + sum(isinstance(r, RoomState | Parted) for r in replies)
        raw.writer.close()
    share = LIMITS.address_share
    allowed = share * (LIMITS.message_burst + LIMITS.messages_per_second * (now() - start))
    assert accepted <= allowed, (accepted, allowed)
    assert await ping_from_elsewhere(server) < MAX_PING_S
    await watcher.close()


async def test_an_address_registers_a_few_names_an_hour(server: ChatServer) -> None:
    outcomes: list[str] = []
    for n in range(LIMITS.registrations_per_hour + 5):
        raw = await open_raw(*server.address)
        hello = await raw.signed_hello(f"owner{n}", SigningKey.generate(), ref=1)
        raw.send(hello)
        reply = await raw.reply(1)
        outcomes.append("welcome" if isinstance(reply, Welcome) else getattr(reply, "code", "?"))
        raw.writer.close()
    assert outcomes.count("welcome") == LIMITS.registrations_per_hour
    assert outcomes[-5:] == ["rate_limited"] * 5
    guest = await ChatClient.connect("guest", *server.address)  # names without keys still work
    await guest.close()


async def test_an_address_opens_a_few_new_rooms_an_hour(server: ChatServer) -> None:
    keeper = await ChatClient.connect("keeper", *server.address)
    await keeper.join("#busy")
    rooms = iter(f"#room{n}" for n in range(LIMITS.new_rooms_per_hour + 9))
    joined = refused = 0
    for _ in range(5):  # 5 connections, 14 rooms each (left when the connection closes)
        raw = await newcomer(server)
        batch = list(itertools.islice(rooms, 14))
        raw.send(*(Join(room=room, ref=i + 1) for i, room in enumerate(batch)))
        for reply in await answers(raw, len(batch)):
            joined += isinstance(reply, RoomState)
            if isinstance(reply, Error) and "too many rooms" in reply.message:
                refused += 1
        raw.writer.close()
    assert joined == LIMITS.new_rooms_per_hour - 1 and refused == 10  # #busy was the first
    ali = await ChatClient.connect("ali", *server.address)
    await ali.join("#busy")  # rooms that have people can still be joined
    await ali.close()
    await keeper.close()


async def test_resuming_rooms_nobody_is_in_counts_as_opening_them(server: ChatServer) -> None:
    opened = 0
    rooms = (f"#resumed{n}" for n in itertools.count())
    for _ in range(3):  # 3 hellos of 31 rooms each: more than an hour's new rooms
        raw = await open_raw(*server.address)
        positions = tuple(Position(next(rooms), 1, 0) for _ in range(31))
        raw.send(Hello(name=next(NAMES), positions=positions, ref=1))
        welcome = await raw.reply(1)
        assert isinstance(welcome, Welcome)
        opened += len(welcome.rooms) - 1  # the lobby is no new room
        raw.writer.close()
    assert opened == LIMITS.new_rooms_per_hour


async def test_moderation_requests_are_limited_per_user_on_all_devices(server: ChatServer) -> None:
    key = SigningKey.generate()
    ali = await ChatClient.connect("ali", *server.address, key=key)
    other_device = await ChatClient.connect("ali", *server.address, key=key)
    await ali.join("#dev")
    start = now()
    done = 0
    refused: list[str] = []
    for number in range(3 * LIMITS.moderation_burst):  # from both devices, in turn
        device = ali if number % 2 else other_device
        try:
            await device.set_topic("#dev", f"topic {number}")
            done += 1
        except RequestFailed as exc:
            refused.append(exc.code)
    allowed = LIMITS.moderation_burst + LIMITS.moderation_per_second * (now() - start)
    assert LIMITS.moderation_burst <= done <= allowed + 1, (done, allowed)
    assert set(refused) == {"rate_limited"}
    assert await ping_from_elsewhere(server) < MAX_PING_S
    await ali.close()
    await other_device.close()


async def test_searches_are_limited_per_user_on_all_devices(server: ChatServer) -> None:
    key = SigningKey.generate()
    ali = await ChatClient.connect("ali", *server.address, key=key)
    other_device = await ChatClient.connect("ali", *server.address, key=key)
    await ali.send("#lobby", "something to find")
    start = now()
    done = 0
    refused: list[str] = []
    for number in range(3 * LIMITS.search_burst):  # from both devices, in turn
        device = ali if number % 2 else other_device
        try:
            await device.search("something")
            done += 1
        except RequestFailed as exc:
            refused.append(exc.code)
    allowed = LIMITS.search_burst + LIMITS.searches_per_second * (now() - start)
    assert LIMITS.search_burst <= done <= allowed + 1, (done, allowed)
    assert set(refused) == {"rate_limited"}
    assert await ping_from_elsewhere(server) < MAX_PING_S
    await ali.close()
    await other_device.close()


async def test_reactions_on_one_message_are_bounded(server: ChatServer) -> None:
    ali = await ChatClient.connect("ali", *server.address, key=SigningKey.generate())
    sent = await ali.send("#lobby", "react to me")
    given, refused = 0, []
    for number in range(25):
        try:
            await ali.react("#lobby", sent.seq, f"r{number}")
            given += 1
        except RequestFailed as exc:
            refused.append(exc.code)
    assert (given, set(refused)) == (20, {"limit_reached"})
    await ali.react("#lobby", sent.seq, "r3")  # one given may still be taken back
    page = await ali.history("#lobby")
    (message,) = [m for m in page.messages if m.seq == sent.seq]
    assert message.reactions is not None and len(message.reactions) == 19
    await ali.close()
