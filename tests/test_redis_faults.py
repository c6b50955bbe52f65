"""Redis faults that must not pass in silence: lost data, racing registrations, refused writes,
servers that disagree on settings, a server cut off while a name is registered. Each on one
Redis and on a Redis Cluster."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import hashlib
import logging
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from tests.helpers import TIMEOUT, expect, until
from tests.raw import open_raw
from tests.redis_cluster import RedisCluster
from tests.redis_kinds import ConnectTo, RedisStore, redis_client, redis_config
from tuichat.chat.names import name_keys
from tuichat.client import ChatClient, RequestFailed, SigningKey
from tuichat.protocol import Error, Hello, Message, RoomReset, Send, Welcome
from tuichat.server import ChatServer, ServerConfig
from tuichat.server.broker import BrokerRefused
from tuichat.server.broker.redis import keys, peers
from tuichat.server.broker.redis.peers import RedisPeers

KEY_A = SigningKey.generate()
KEY_B = SigningKey.generate()


class Heard(logging.Handler):
    """Sets `event` once the servers have logged `times` lines containing `text`."""

    def __init__(self, text: str, times: int = 1) -> None:
        super().__init__()
        self.text = text
        self.times = times
        self.event = asyncio.Event()
        logging.getLogger("tuichat.server").addHandler(self)

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage():
            self.times -= 1
            if self.times <= 0:
                self.event.set()
                logging.getLogger("tuichat.server").removeHandler(self)


@pytest.fixture
async def ali_and_bob(
    servers: tuple[ChatServer, ChatServer],
) -> AsyncIterator[tuple[ChatClient, ChatClient]]:
    """ali on the first server, bob on the second."""
    ali = await ChatClient.connect("ali", *servers[0].address)
    bob = await ChatClient.connect("bob", *servers[1].address)
    yield ali, bob
    await ali.abort()
    await bob.abort()


async def lose_everything(redis: RedisStore) -> None:
    client = await redis_client(redis)
    await client.flushall()
    await client.aclose()


async def test_redis_losing_its_data_resets_rooms_and_every_send_after_is_answered(
    redis: RedisStore, ali_and_bob: tuple[ChatClient, ChatClient]
) -> None:
    ali, bob = ali_and_bob
    told = Heard("Redis lost its data")
    for number in range(5):
        await ali.send("#lobby", f"before {number}")
    await expect(bob, Message, text="before 4")
    old_epoch = bob.positions["#lobby"].epoch
    await lose_everything(redis)
    # both servers notice within a few seconds (without anyone sending) and say so
    for member in (ali, bob):
        reset = await expect(member, RoomReset, timeout=TIMEOUT, room="#lobby")
        assert reset.epoch != old_epoch and reset.seq == 0
    # every send after it is acknowledged, numbered anew, and reaches the other server
    for number in range(5):
        ack = await asyncio.wait_for(ali.send("#lobby", f"after {number}"), TIMEOUT)
        assert ack.seq == number + 1
    for number in range(5):
        message = await expect(bob, Message, text=f"after {number}")
        assert message.seq == number + 1
    page = await bob.history("#lobby")
    assert page.epoch == reset.epoch and [m.text for m in page.messages] == [
        f"after {number}" for number in range(5)
    ]
    await asyncio.wait_for(told.event.wait(), TIMEOUT)  # and the operator reads what happened


async def test_after_redis_lost_its_data_everyone_is_still_online_everywhere(
    redis: RedisStore, servers: tuple[ChatServer, ChatServer], connect_to: ConnectTo
) -> None:
    a, b = servers
    ali, bob = await connect_to("ali", a), await connect_to("bob", b)
    await until(ali.who, ("ali", "bob"))
    told = Heard("Redis lost its data", times=2)  # each server notices, and writes back
    await lose_everything(redis)
    await asyncio.wait_for(told.event.wait(), TIMEOUT)
    for client in (ali, bob):
        await until(client.who, ("ali", "bob"))
    carol = await connect_to("carol", b)  # and the news flows again
    await until(ali.who, ("ali", "bob", "carol"))
    await carol.send("#lobby", "still here")
    await expect(ali, Message, text="still here")


async def test_a_send_racing_the_loss_gets_an_answer(
    redis: RedisStore, ali_and_bob: tuple[ChatClient, ChatClient]
) -> None:
    """A send right after the loss, before any check noticed it, is still answered and heard."""
    ali, bob = ali_and_bob
    await ali.send("#lobby", "before")
    await expect(bob, Message, text="before")
    await lose_everything(redis)
    ack = await asyncio.wait_for(ali.send("#lobby", "right after"), TIMEOUT)
    assert ack.seq == 1
    await expect(bob, RoomReset, room="#lobby")
    assert (await expect(bob, Message, text="right after")).seq == 1


async def test_a_name_registered_on_two_servers_at_once_has_one_owner(
    servers: tuple[ChatServer, ChatServer],
) -> None:
    a, b = servers
    for attempt in range(5):  # the race, several times: one key wins, on both servers
        name = f"nima{attempt}"
        first = await open_raw(*a.address)
        second = await open_raw(*b.address)
        first.send(dataclasses.replace(await first.signed_hello(name, KEY_A), ref=1))
        second.send(dataclasses.replace(await second.signed_hello(name, KEY_B), ref=1))
        answers = [await first.reply(1), await second.reply(1)]
        welcomed = [isinstance(answer, Welcome) for answer in answers]
        assert welcomed.count(True) <= 1, answers
        refused = [answer for answer in answers if isinstance(answer, Error)]
        assert {error.code for error in refused} <= {"name_registered", "name_taken"}
        for raw in (first, second):
            raw.writer.close()
        winner_key = KEY_A if welcomed[0] else KEY_B if welcomed[1] else None
        loser_key = KEY_B if winner_key == KEY_A else KEY_A
        if winner_key is None:  # both lost the online race to each other: nobody registered
            continue
        for server in (a, b):  # the loser's key is refused everywhere, once the winner is gone
            async with asyncio.timeout(TIMEOUT):
                while True:
                    probe = await open_raw(*server.address)
                    probe.send(await probe.signed_hello(name, loser_key, ref=2))
                    answer = await probe.reply(2)
                    probe.writer.close()
                    assert not isinstance(answer, Welcome), f"{name} taken by the other key"
                    assert isinstance(answer, Error)
                    if answer.code == "name_registered":
                        break
                    await asyncio.sleep(0.02)  # still online on the other server: ask again


def each_node(redis: RedisStore) -> list[Redis]:
    """A client of the test's own for every node (ACLs and settings are per node)."""
    if isinstance(redis, RedisCluster):
        return [Redis(host="127.0.0.1", port=port) for port in redis.ports]
    return [Redis.from_url(redis.url)]


@contextlib.asynccontextmanager
async def out_of_memory(redis: RedisStore) -> AsyncIterator[None]:
    """Every node refuses writes (maxmemory 1 byte, no eviction) until the block ends."""
    nodes = each_node(redis)
    try:
        for node in nodes:
            await node.config_set("maxmemory-policy", "noeviction")
            await node.config_set("maxmemory", "1")
        yield
    finally:
        for node in nodes:
            await node.config_set("maxmemory", "0")
            await node.aclose()


async def test_a_registration_redis_refused_is_not_taken_as_done(
    redis: RedisStore, servers: tuple[ChatServer, ChatServer]
) -> None:
    a, b = servers
    async with out_of_memory(redis):
        raw = await open_raw(*a.address)
        raw.send(await raw.signed_hello("sara", KEY_A, ref=1))
        answer = await raw.reply(1, timeout=TIMEOUT)
        assert isinstance(answer, Error) and answer.code == "unavailable", answer
        raw.writer.close()
    # nothing was registered: another key may have the name now, on either server
    sara = await ChatClient.connect("sara", *b.address, key=KEY_B)
    await sara.abort()
    raw = await open_raw(*a.address)
    raw.send(await raw.signed_hello("sara", KEY_A, ref=1))
    refused = await raw.reply(1, timeout=TIMEOUT)
    assert isinstance(refused, Error) and refused.code == "name_registered"
    raw.writer.close()


async def test_servers_that_disagree_on_the_history_kept_refuse_to_start(
    redis: RedisStore,
) -> None:
    first = ChatServer(redis_config(redis, "a", redis_history=1000))
    await first.start()
    try:
        second = ChatServer(redis_config(redis, "b", redis_history=50))
        with pytest.raises(BrokerRefused, match="--redis-history 1000"):
            await second.start()
        await second.broker.stop()
    finally:
        await first.stop()


async def test_a_send_that_redis_refuses_gets_a_clear_error(
    redis: RedisStore,
    servers: tuple[ChatServer, ChatServer],
    ali_and_bob: tuple[ChatClient, ChatClient],
) -> None:
    ali, _ = ali_and_bob
    async with out_of_memory(redis):
        raw = await open_raw(*servers[0].address)
        await raw.hello("omid")
        raw.send(Send(room="#lobby", text="no room for me", id="x1", ref=5))
        error = await raw.reply(5, timeout=TIMEOUT)
        assert isinstance(error, Error) and error.code == "unavailable"
        raw.writer.close()
        with pytest.raises(RequestFailed):
            await asyncio.wait_for(ali.send("#lobby", "nor me"), TIMEOUT)
    assert (await ali.send("#lobby", "room again")).seq == 1  # and all is well after


async def test_a_version_1_registration_in_redis_moves_to_its_owners_key_on_every_server(
    redis: RedisStore,
) -> None:
    secret = "a-version-1-secret-" + "s" * 24
    client = await redis_client(redis)
    hashed = hashlib.sha256(secret.encode()).hexdigest()  # version 1 stored the bare hash
    await client.hset("tuichat:{g}:identities", mapping=dict.fromkeys(name_keys("sara"), hashed))
    await client.aclose()
    a, b = ChatServer(redis_config(redis, "a")), ChatServer(redis_config(redis, "b"))
    for server in (a, b):
        await server.start()
    try:
        assert a.server_id == b.server_id  # one chat, one identity to sign for
        key = SigningKey.generate()
        with pytest.raises(RequestFailed) as refused:
            await ChatClient.connect("sara", *b.address, key=key)
        assert refused.value.code == "key_upgrade_required"
        sara = await ChatClient.connect("sara", *a.address, key=key, legacy_key=secret)
        await sara.close()

        async def with_the_secret_alone() -> str:  # b hears of the move a moment later
            try:
                await ChatClient.connect(
                    "sara", *b.address, key=SigningKey.generate(), legacy_key=secret
                )
            except RequestFailed as exc:
                return exc.code
            return "welcomed"

        await until(with_the_secret_alone, "name_registered")
        await (await ChatClient.connect("sara", *b.address, key=key)).close()
    finally:
        for server in (a, b):
            await server.stop()


async def answer_to(server: ChatServer, name: str, key: SigningKey | None = None) -> str:
    """What `server` answers a hello for `name` (unsigned without `key`): "welcomed" or a code."""
    raw = await open_raw(*server.address)
    try:
        if key is None:
            raw.send(Hello(name=name, ref=1))
        else:
            raw.send(await raw.signed_hello(name, key, ref=1))
        answer = await raw.reply(1, timeout=TIMEOUT)
    finally:
        raw.writer.close()
    if isinstance(answer, Welcome):
        return "welcomed"
    assert isinstance(answer, Error), answer
    return answer.code


def asked_often(redis: RedisStore, name: str, user: str = "") -> ServerConfig:
    """A test server's settings on `redis` (signing in as the ACL user `user`, if given), for a
    test that connects as often as it asks."""
    config = redis_config(redis, name, connection_burst=1_000_000)
    return dataclasses.replace(config, redis_url=signing_in_as(redis, user)) if user else config


def signing_in_as(redis: RedisStore, user: str) -> str:
    """`redis.url` for a client that signs in as the ACL user `user` (its password: `user`)."""
    scheme, rest = redis.url.split("://", 1)
    return f"{scheme}://{user}:{user}@{rest}"


@contextlib.asynccontextmanager
async def cut_off(redis: RedisStore, user: str) -> AsyncIterator[None]:
    """Every connection the ACL user `user` has is killed, and none is let in again, until the
    block ends (the server signed in as `user` is cut off from Redis: subscriptions too)."""
    nodes = each_node(redis)
    try:
        for node in nodes:
            await node.execute_command("ACL", "SETUSER", user, "off")
            await node.execute_command("CLIENT", "KILL", "USER", user)
        yield
    finally:
        for node in nodes:
            await node.execute_command("ACL", "SETUSER", user, "on")
            await node.aclose()


async def test_a_name_registered_while_a_server_was_cut_off_is_refused_there_once_it_is_back(
    redis: RedisStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cut-off server missed the registration's notice: it reads the registrations again
    when it subscribes again (or, where redis-py made the subscription again by itself, at its
    next full read: here every refresh), and refuses the name to anyone without its key."""
    monkeypatch.setattr(peers, "RELOAD_EVERY", 1)
    for node in each_node(redis):
        await node.execute_command("ACL", "SETUSER", "a", "on", ">a", "~*", "&*", "+@all")
        await node.aclose()
    a = ChatServer(asked_often(redis, "a", user="a"))
    b = ChatServer(asked_often(redis, "b"))
    for server in (a, b):
        await server.start()
    try:
        assert await answer_to(a, "warm") == "welcomed"  # a is in the chat, unregistered names pass
        assert isinstance(b.peers, RedisPeers)
        async with cut_off(redis, "a"):
            sara = await ChatClient.connect("sara", *b.address, key=KEY_B)  # registered on b
            await sara.close()
            await b.peers.link.drain()  # its notice is out, while a hears nothing
        await until(lambda: answer_to(a, "sara"), "name_registered")
        assert await answer_to(a, "Sara", KEY_A) == "name_registered"  # a look-alike, another key
        assert await answer_to(a, "sara", KEY_B) == "welcomed"  # and its owner is welcome
    finally:
        for server in (a, b):
            await server.stop()


async def test_a_registration_whose_notice_was_lost_is_enforced_after_the_next_full_read(
    redis: RedisStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A subscription that redis-py makes again by itself tells nobody; the full reads every
    few refreshes (here every one) bring the registrations its notices had."""
    monkeypatch.setattr(peers, "RELOAD_EVERY", 1)
    pair = ChatServer(asked_often(redis, "a")), ChatServer(asked_often(redis, "b"))
    for server in pair:
        await server.start()
    try:
        client = await redis_client(redis)  # as another server would, its notice lost
        owner = "ed25519:" + KEY_B.public
        await client.hset(keys.IDENTITIES, mapping=dict.fromkeys(name_keys("tara"), owner))
        await client.aclose()
        for server in pair:
            await until(functools.partial(answer_to, server, "tara"), "name_registered")
            assert await answer_to(server, "tara", KEY_B) == "welcomed"
    finally:
        for server in pair:
            await server.stop()


RESTORE_KEEPING = """
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3], ARGV[2], ARGV[3])
redis.call('HDEL', KEYS[1], ARGV[4], ARGV[5])
redis.call('DEL', KEYS[2])
"""
"""Move a name to a key and drop another name, as Redis loses its marker (all at once)."""


async def test_a_restore_writes_back_only_the_registrations_redis_has_not_got(
    redis: RedisStore,
) -> None:
    """A server writing back after a data loss must not put its older owner of a name over the
    one Redis has now (another server wrote it back, or moved it to a key, already)."""
    client = await redis_client(redis)
    secret = "a-version-1-secret-" + "s" * 24
    hashed = hashlib.sha256(secret.encode()).hexdigest()
    legacy = dict.fromkeys([*name_keys("sara"), *name_keys("nima")], hashed)
    await client.hset(keys.IDENTITIES, mapping=legacy)  # both names registered by version 1
    a = ChatServer(redis_config(redis, "a"))
    await a.start()
    try:
        told = Heard("Redis lost its data")
        moved = "ed25519:" + KEY_B.public
        await client.eval(
            RESTORE_KEEPING, 2, keys.IDENTITIES, keys.GENERATION,
            *name_keys("sara"), moved, *name_keys("nima"),
        )  # fmt: skip
        await asyncio.wait_for(told.event.wait(), TIMEOUT)

        async def nima() -> list[bytes | None]:
            return [await client.hget(keys.IDENTITIES, key) for key in name_keys("nima")]

        await until(nima, [b"sha256:" + hashed.encode()] * 2)  # what Redis lost is written back
        stored = [await client.hget(keys.IDENTITIES, key) for key in name_keys("sara")]
        assert stored == [moved.encode()] * 2  # in the same write: what Redis has is kept
    finally:
        await a.stop()
        await client.aclose()
