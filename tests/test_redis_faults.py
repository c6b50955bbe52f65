"""Redis faults that must not pass in silence: lost data, racing registrations, refused writes,
servers that disagree on settings. Each on one Redis and on a Redis Cluster."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
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
from tuichat.protocol import Error, Message, RoomReset, Send, Welcome
from tuichat.server import ChatServer
from tuichat.server.broker import BrokerRefused

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


@contextlib.asynccontextmanager
async def out_of_memory(redis: RedisStore) -> AsyncIterator[None]:
    """Every node refuses writes (maxmemory 1 byte, no eviction) until the block ends."""
    if isinstance(redis, RedisCluster):
        nodes = [Redis(host="127.0.0.1", port=port) for port in redis.ports]
    else:
        nodes = [Redis.from_url(redis.url)]
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
