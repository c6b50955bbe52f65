"""The local broker as a plain object: numbering, retries and stored positions, on memory; and
its peers, which confirm a registration only once the store has it."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
from collections.abc import Callable, Sequence

from tuichat.chat import ChatError
from tuichat.protocol import ErrorCode, Message, PrivateMessage
from tuichat.server.broker import (
    BrokerUnavailable,
    Post,
    PrivatePost,
    Published,
    PublishedPrivate,
    RoomPosition,
)
from tuichat.server.broker.local import LocalBroker, LocalPeers
from tuichat.server.history import HistoryFailing, LoadedState, MemoryHistory, StoredMessage

NOW = 1_700_000_000_000


class Handler:
    """Records what the broker hands back."""

    def __init__(self) -> None:
        self.messages: list[tuple[Message, int]] = []
        self.privates: list[tuple[PrivateMessage, str, str]] = []

    def on_message(self, message: Message, epoch: int) -> None:
        self.messages.append((message, epoch))

    def on_private(self, message: PrivateMessage, sender_key: str, target_key: str) -> None:
        self.privates.append((message, sender_key, target_key))

    def __getattr__(self, name: str) -> object:  # the rest of BrokerHandler: nothing to do
        return lambda *args: None


def post(room: str, text: str, client_id: str = "", sender: str = "ali") -> Post:
    return Post(room, sender, sender, text, False, client_id, NOW)


async def broker_with(stored: list[StoredMessage] | None = None) -> tuple[LocalBroker, Handler]:
    store = MemoryHistory()
    store.append(stored or [], lambda: None)
    loaded = LoadedState(last_private_id=0, tokens={}, identities={})
    broker = LocalBroker(store, loaded, 1024, new_epoch=lambda room: 5)
    handler = Handler()
    await broker.start(handler)  # type: ignore[arg-type]
    await follow(broker, "#dev", "#lobby")
    return broker, handler


async def follow(broker: LocalBroker, *rooms: str) -> None:
    ready: asyncio.Future[Exception | None] = asyncio.get_running_loop().create_future()
    broker.follow(rooms, ready.set_result)
    assert await ready is None


async def publish(broker: LocalBroker, p: Post) -> Published:
    done: asyncio.Future[Published] = asyncio.get_running_loop().create_future()
    broker.publish(p, lambda result: done.set_result(result))  # type: ignore[arg-type]
    return await done


async def test_messages_are_numbered_per_room_and_handed_back_in_order() -> None:
    broker, handler = await broker_with()
    first = await publish(broker, post("#dev", "one"))
    second = await publish(broker, post("#dev", "two"))
    lobby = await publish(broker, post("#lobby", "hi"))
    assert (first.message.seq, second.message.seq, lobby.message.seq) == (1, 2, 1)
    assert [(m.room, m.seq, m.text) for m, _ in handler.messages] == [
        ("#dev", 1, "one"), ("#dev", 2, "two"), ("#lobby", 1, "hi"),
    ]  # fmt: skip
    assert broker.position("#dev") == RoomPosition(5, 2)


async def test_a_retry_gets_the_original_position_and_is_not_handed_back_again() -> None:
    broker, handler = await broker_with()
    first = await publish(broker, post("#lobby", "hello", "id-1"))
    again = await publish(broker, post("#lobby", "hello", "id-1"))
    other = await publish(broker, post("#lobby", "hello", "id-1", sender="bob"))  # per sender
    assert first.new and not again.new and other.new
    assert (again.message.seq, again.message.ts) == (1, NOW) and other.message.seq == 2
    assert len(handler.messages) == 2


async def test_rooms_continue_from_their_stored_position() -> None:
    stored = [StoredMessage(Message("#dev", 41, "ali", "last", NOW, False), 77, "ali", "x")]
    broker, _ = await broker_with(stored)
    assert broker.position("#dev") == RoomPosition(77, 41)
    assert (await publish(broker, post("#dev", "next"))).message.seq == 42
    assert not (await publish(broker, post("#dev", "retry", "x"))).new


async def test_a_retried_private_message_is_stored_and_handed_back_once() -> None:
    broker, handler = await broker_with()
    results: list[PublishedPrivate] = []
    stored = asyncio.get_running_loop().create_future()

    def took(result: PublishedPrivate) -> None:
        results.append(result)
        if len(results) == 2 and not stored.done():
            stored.set_result(None)

    message = PrivatePost("ali", "ali", "Bob", "bob", "psst", False, "p1", NOW)
    broker.publish_private(message, took)  # type: ignore[arg-type]
    broker.publish_private(message, took)  # type: ignore[arg-type]  # while it is being stored
    assert results == []  # neither is answered before the original is stored
    await stored
    again = asyncio.get_running_loop().create_future()
    broker.publish_private(message, again.set_result)  # type: ignore[arg-type]
    results.append(await again)  # the original, read back from the store
    assert [(r.message.pid, r.new) for r in results] == [(1, True), (1, False), (1, False)]
    assert [(m.pid, m.to, s, t) for m, s, t in handler.privates] == [(1, "Bob", "ali", "bob")]
    assert broker.last_private_id() == 1


async def test_a_refused_private_message_is_refused_unless_it_is_a_retry() -> None:
    broker, handler = await broker_with()
    results: list[object] = []
    first = PrivatePost("ali", "ali", "Bob", "bob", "psst", False, "p1", NOW)
    done = asyncio.get_running_loop().create_future()
    broker.publish_private(first, done.set_result)  # type: ignore[arg-type]
    await done
    gone = ChatError(ErrorCode.NO_SUCH_USER, "'Bob' is not online")
    retry = dataclasses.replace(first, target_key="", refusal=gone)
    for client_id in ("p1", "p2"):
        answered = asyncio.get_running_loop().create_future()
        broker.publish_private(dataclasses.replace(retry, client_id=client_id), answered.set_result)  # type: ignore[arg-type]
        results.append(await answered)
    assert isinstance(results[0], PublishedPrivate) and results[0].message.pid == 1
    assert results[1] is gone and len(handler.privates) == 1


async def test_a_room_nobody_follows_is_forgotten_and_read_back_when_followed() -> None:
    broker, _ = await broker_with()
    await follow(broker, "#tmp")
    assert broker.position("#tmp") == RoomPosition(5, 0)
    broker.unfollow("#tmp")
    assert broker.position("#tmp") == RoomPosition(0, 0)
    await publish(broker, post("#dev", "kept", "id-1"))
    broker.unfollow("#dev")
    assert broker.position("#dev") == RoomPosition(0, 0)  # forgotten: the store has it
    assert await broker.stored_position("#dev") == RoomPosition(5, 1)
    await follow(broker, "#dev")
    assert broker.position("#dev") == RoomPosition(5, 1)
    assert not (await publish(broker, post("#dev", "kept", "id-1"))).new
    assert (await publish(broker, post("#dev", "next"))).message.seq == 2


class HeldIdentities(MemoryHistory):
    """A memory store whose registrations wait until the test says how their write went."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[tuple[list[str], Callable[[], None], Callable[[Exception], None]]] = []

    def save_identity(
        self,
        name_keys: Sequence[str],
        name: str,
        owner: str,
        now: int,
        durable: Callable[[], None],
        failed: Callable[[Exception], None],
    ) -> None:
        self.writes.append((list(name_keys), durable, failed))


async def test_a_registration_is_confirmed_once_it_is_stored_and_refused_if_it_cannot_be() -> None:
    store = HeldIdentities()
    peers = LocalPeers(store, store.load())
    answers: dict[str, bool | Exception] = {}
    for name in ("ali", "bob"):
        peers.claim(
            [name, name.upper()],
            name,
            "ed25519:k",
            NOW,
            functools.partial(answers.__setitem__, name),
        )
    assert answers == {}  # nothing is confirmed while it is only queued
    (ali_keys, ali_stored, _), (_, _, bob_failed) = store.writes
    assert ali_keys == ["ali", "ALI"]  # both keys in one write
    ali_stored()
    bob_failed(HistoryFailing("the disk is full"))
    assert answers["ali"] is True
    refusal = answers["bob"]
    assert isinstance(refusal, BrokerUnavailable) and "the disk is full" in str(refusal)
