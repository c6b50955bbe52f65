"""Several servers as one chat on a real Redis: rooms, presence, private messages, resume."""

from __future__ import annotations

import asyncio

import pytest

from tests.helpers import TIMEOUT, collect, expect, until
from tests.proxy import Proxy
from tests.raw import open_raw
from tests.redis_kinds import ConnectTo as Connect
from tests.redis_kinds import RedisStore, redis_config
from tuichat.client import Backoff, ChatClient, Disconnected, Reconnected, RequestFailed
from tuichat.protocol import Ack, Hello, Joined, Left, Message, PrivateMessage, Send
from tuichat.server import ChatServer

FAST = Backoff(first=0.05, cap=0.2)
"""Reconnect at once (the tests cut connections on purpose)."""


@pytest.fixture
def connect(connect_to: Connect) -> Connect:
    """Clients connect to the server each test names."""
    return connect_to


async def test_a_message_reaches_members_on_both_servers(
    servers: tuple[ChatServer, ChatServer], connect: Connect
) -> None:
    a, b = servers
    ali = await connect("ali", a)
    bob = await connect("bob", b)
    carol = await connect("carol", b)
    await ali.send("#lobby", "hello from a")
    for member in (ali, bob, carol):
        message = await expect(member, Message, text="hello from a")
        assert (message.sender, message.seq) == ("ali", 1)
    await bob.send("#lobby", "hello from b")
    for member in (ali, bob, carol):
        assert (await expect(member, Message, text="hello from b")).seq == 2


async def test_presence_spans_the_servers(
    servers: tuple[ChatServer, ChatServer], connect: Connect
) -> None:
    a, b = servers
    ali = await connect("ali", a)
    bob = await connect("bob", b)
    await expect(ali, Joined, room="#lobby", name="bob")
    assert await bob.who() == ("ali", "bob")  # bob's server knows ali from the other server
    assert await ali.who("#lobby") == ("ali", "bob")
    await bob.join("#dev")
    await until(lambda: ali.who("#dev"), ("bob",))  # b tells a at once; a hears it a moment later
    state = await ali.join("#dev")
    assert state.users == ("ali", "bob")
    await expect(bob, Joined, room="#dev", name="ali")
    await bob.close()
    lobby = await expect(ali, Left, room="#lobby", name="bob")
    assert lobby.reason == "quit"
    await expect(ali, Left, room="#dev", name="bob")
    assert await ali.who() == ("ali",)


async def test_a_name_in_use_on_one_server_is_taken_on_the_other(
    servers: tuple[ChatServer, ChatServer], connect: Connect
) -> None:
    a, b = servers
    ali = await connect("ali", a)
    bob = await connect("bob", b)
    await until(bob.who, ("ali", "bob"))  # b has heard of ali
    with pytest.raises(RequestFailed) as taken:
        await connect("ALI", b)
    assert taken.value.code == "name_taken"
    await ali.send("#lobby", "still here")
    await expect(bob, Message, text="still here")


async def test_a_private_message_reaches_its_target_on_the_other_server(
    servers: tuple[ChatServer, ChatServer], connect: Connect
) -> None:
    a, b = servers
    ali = await connect("ali", a)
    bob = await connect("bob", b)
    carol = await connect("carol", b)
    await expect(ali, Joined, name="carol")
    echo = await ali.private("bob", "psst")
    received = await expect(bob, PrivateMessage)
    assert (received.sender, received.to, received.text) == ("ali", "bob", "psst")
    assert received.pid == echo.pid
    await carol.send("#lobby", "barrier")
    events = []
    async with asyncio.timeout(TIMEOUT):
        while not (
            isinstance(event := await carol.next_event(), Message) and event.text == "barrier"
        ):
            events.append(event)
    assert not any(isinstance(e, PrivateMessage) for e in events)  # nobody else saw it


async def test_concurrent_senders_on_both_servers_get_one_gapless_order(
    servers: tuple[ChatServer, ChatServer], connect: Connect
) -> None:
    a, b = servers
    ali = await connect("ali", a)
    bob = await connect("bob", b)
    carol = await connect("carol", a)
    dave = await connect("dave", b)
    each = 150

    async def burst(client: ChatClient, name: str) -> None:
        await asyncio.gather(*(client.send("#lobby", f"{name} {i}") for i in range(each)))

    await asyncio.gather(burst(ali, "ali"), burst(bob, "bob"))
    seen = {}
    for member in (ali, bob, carol, dave):
        messages = await collect(member, Message, 2 * each)
        assert [m.seq for m in messages] == list(range(1, 2 * each + 1))
        assert sorted(m.text for m in messages) == sorted(
            f"{n} {i}" for n in ("ali", "bob") for i in range(each)
        )  # each stored once
        seen[member] = [(m.seq, m.text) for m in messages]
    assert len({tuple(order) for order in seen.values()}) == 1  # the same order everywhere


async def test_a_client_that_reconnects_to_the_other_server_gets_what_it_missed(
    servers: tuple[ChatServer, ChatServer], connect: Connect
) -> None:
    a, b = servers
    proxy = Proxy(a.address)
    host, port = await proxy.start()
    try:
        bob = await ChatClient.connect("bob", host, port, reconnect=True, backoff=FAST)
        ali = await connect("ali", a)
        await ali.send("#lobby", "before")
        await expect(bob, Message, text="before")
        proxy.target = b.address  # the load balancer sends bob's next connection to b
        proxy.cut()
        for i in range(20):
            await ali.send("#lobby", f"missed {i}")
        messages = await collect(bob, Message, 20)
        assert [m.text for m in messages] == [f"missed {i}" for i in range(20)]
        assert [m.seq for m in messages] == list(range(2, 22))
        await bob.send("#lobby", "back, on b")
        await expect(ali, Message, text="back, on b")
        await bob.abort()
    finally:
        await proxy.stop()


async def test_a_retried_send_is_stored_once_whichever_server_takes_it(
    servers: tuple[ChatServer, ChatServer], connect: Connect
) -> None:
    a, b = servers
    bob = await connect("bob", b)
    ali_on_a = await open_raw(*a.address)
    await ali_on_a.hello("ali")
    ali_on_a.send(Send(room="#lobby", text="once", id="m1", ref=1))
    first = await ali_on_a.reply(1)
    assert isinstance(first, Ack) and first.seq == 1
    await expect(bob, Message, text="once")
    ali_on_a.writer.close()  # the ack was lost on the way, say: ali retries, through b
    await expect(bob, Left, name="ali")
    ali_on_b = await open_raw(*b.address)
    await ali_on_b.hello("ali")
    ali_on_b.send(Send(room="#lobby", text="once", id="m1", ref=2))
    again = await ali_on_b.reply(2)
    assert isinstance(again, Ack) and (again.seq, again.ts) == (first.seq, first.ts)
    await bob.send("#lobby", "barrier")
    assert (await expect(bob, Message)).text == "barrier"  # "once" was not delivered again
    ali_on_b.writer.close()


async def test_history_pages_come_from_redis_on_any_server(
    servers: tuple[ChatServer, ChatServer], connect: Connect
) -> None:
    a, b = servers
    ali = await connect("ali", a)
    for i in range(30):
        await ali.send("#lobby", f"old {i}")
    bob = await connect("bob", b)

    async def newest_texts() -> list[str]:
        return [m.text for m in (await bob.history("#lobby", limit=10)).messages]

    await until(newest_texts, [f"old {i}" for i in range(20, 30)])  # b may still be catching up
    newest = await bob.history("#lobby", limit=10)
    assert not newest.complete
    older = await bob.history("#lobby", before=newest.messages[0].seq, limit=50)
    assert [m.seq for m in older.messages] == list(range(1, 21))
    assert older.complete


async def test_a_user_who_moves_to_the_other_server_stays_online_for_everyone(
    servers: tuple[ChatServer, ChatServer], connect: Connect
) -> None:
    a, b = servers
    proxy = Proxy(a.address)
    host, port = await proxy.start()
    try:
        ali = await ChatClient.connect(
            "ali", host, port, reconnect=True, backoff=FAST, heartbeat=0.2
        )
        carol = await connect("carol", a)
        dave = await connect("dave", b)
        await until(dave.who, ("ali", "carol", "dave"))
        proxy.target = b.address
        proxy.freeze()  # a still thinks ali is there; ali gives up on the silence and moves to b
        await expect(ali, Reconnected)
        await ali.send("#lobby", "on b now")
        await expect(carol, Message, text="on b now")
        for member in (carol, dave):
            await until(member.who, ("ali", "carol", "dave"))  # ali is online, once, everywhere
        await ali.abort()
    finally:
        await proxy.stop()


async def test_a_user_who_moves_stays_online_for_a_third_server(
    redis: RedisStore, servers: tuple[ChatServer, ChatServer], connect: Connect
) -> None:
    """The old server's late news of the user leaving must not take them offline elsewhere."""
    a, b = servers
    c = ChatServer(redis_config(redis, "c"))
    await c.start()
    try:
        ul = await connect("ul", a)
        watcher = await connect("watcher", c)
        await until(watcher.who, ("ul", "watcher"))
        assert ul.welcome is not None
        token = ul.welcome.token
        back = await open_raw(*b.address)

        async def move() -> str:  # b hears of the token a moment later
            back.send(Hello(name="ul", token=token, ref=1))
            return type(await back.reply(1)).__name__

        await until(move, "Welcome")
        await expect(ul, Disconnected)  # a has dropped its session (and said so to the others)
        marker = await connect("marker", a)  # news from a, after its news of ul leaving
        await until(watcher.who, ("marker", "ul", "watcher"))
        await marker.send("#lobby", "after the move")
        await expect(watcher, Message, text="after the move")
        assert await watcher.who() == ("marker", "ul", "watcher")
        back.writer.close()
    finally:
        await c.stop()
