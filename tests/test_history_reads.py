"""Read markers, unread private messages and private conversations, in the stores (memory and
SQLite, with the 4 → 5 migration), in the local broker and in the Redis broker (a real Redis)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import TIMEOUT
from tests.redis_server import RedisServer
from tuichat.protocol import PrivateMessage
from tuichat.server.broker import (
    MAX_MARKERS,
    Broker,
    BrokerUnavailable,
    PrivatePost,
    PublishedPrivate,
    ReadMarker,
)
from tuichat.server.broker.local import LocalBroker
from tuichat.server.history import (
    HistoryFailing,
    HistoryStore,
    LoadedState,
    MemoryHistory,
    SQLiteHistory,
    StoredPrivate,
    StoredRead,
)
from tuichat.server.history.sqlite import MIGRATIONS, SCHEMA_VERSION

NOW = 1_700_000_000_000


@pytest.fixture(name="store", params=["memory", "sqlite"])
async def store_fixture(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[HistoryStore]:
    """An empty store of each kind."""
    history: HistoryStore
    if request.param == "memory":
        history = MemoryHistory()
    else:
        history = SQLiteHistory(tmp_path / "h.sqlite3", synchronous="OFF")
    yield history
    await history.close()


def private(pid: int, sender: str, target: str, text: str = "") -> StoredPrivate:
    """A private message between two users whose keys are their names."""
    message = PrivateMessage(sender, target, text or f"{pid}", NOW + pid, False, pid=pid)
    return StoredPrivate(message, sender, target)


async def append(store: HistoryStore, *records: StoredPrivate) -> None:
    stored: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    store.append(records, lambda: stored.set_result(None), stored.set_exception)
    await stored


async def save(store: HistoryStore, user: str, marker: ReadMarker, at: int = NOW) -> ReadMarker:
    kept: asyncio.Future[ReadMarker] = asyncio.get_running_loop().create_future()
    store.save_read(StoredRead(user, marker, at), kept.set_result, kept.set_exception)
    return await kept


def pids(messages: list[PrivateMessage]) -> list[int]:
    return [m.pid for m in messages]


# --- the stores ------------------------------------------------------------


async def test_a_marker_moves_forward_within_an_epoch_and_is_replaced_by_another_epoch(
    store: HistoryStore,
) -> None:
    assert await save(store, "ali", ReadMarker("#dev", "#dev", 7, 5)) == ReadMarker(
        "#dev", "#dev", 7, 5
    )
    behind = await save(store, "ali", ReadMarker("#dev", "#Dev", 7, 3))
    assert behind == ReadMarker("#dev", "#Dev", 7, 5)  # the seq kept, the newest label
    assert await save(store, "ali", ReadMarker("#dev", "#dev", 7, 9)) == ReadMarker(
        "#dev", "#dev", 7, 9
    )
    renumbered = await save(store, "ali", ReadMarker("#dev", "#dev", 8, 2))
    assert renumbered == ReadMarker("#dev", "#dev", 8, 2)
    assert await store.read_markers("ali") == [renumbered]
    assert await store.read_markers("bob") == []


async def test_markers_come_back_most_recently_moved_first_and_only_the_newest_are_kept(
    store: HistoryStore,
) -> None:
    for i in range(MAX_MARKERS):  # all in the same millisecond: their order is still kept
        await save(store, "ali", ReadMarker(f"@u{i}", f"@U{i}", 0, 1))
    await save(store, "ali", ReadMarker("@u0", "@U0", 0, 2))  # moved: the newest now
    await save(store, "ali", ReadMarker("@u1", "@u1", 0, 1))  # relabelled, not moved
    await save(store, "ali", ReadMarker("#new", "#new", 3, 1))  # one too many: @u1 goes
    markers = await store.read_markers("ali")
    assert len(markers) == MAX_MARKERS
    assert markers[:3] == [
        ReadMarker("#new", "#new", 3, 1),
        ReadMarker("@u0", "@U0", 0, 2),
        ReadMarker(f"@u{MAX_MARKERS - 1}", f"@U{MAX_MARKERS - 1}", 0, 1),
    ]
    assert markers[-1] == ReadMarker("@u2", "@U2", 0, 1)
    assert "@u1" not in {m.conversation for m in markers}


async def test_unread_private_messages_are_those_past_the_markers_newest_kept(
    store: HistoryStore,
) -> None:
    await append(
        store,
        private(1, "bob", "ali"), private(2, "ali", "bob"), private(3, "cy", "ali"),
        private(4, "bob", "ali"), private(5, "ali", "ali"), private(6, "cy", "dee"),
        private(7, "bob", "ali"), private(8, "cy", "ali"),
    )  # fmt: skip
    assert pids(await store.unread_privates("ali", 100)) == [1, 3, 4, 7, 8]
    await save(store, "ali", ReadMarker("@bob", "@Bob", 0, 4))
    await save(store, "ali", ReadMarker("@ali", "@ali", 0, 0))  # their own notes never count
    assert pids(await store.unread_privates("ali", 100)) == [3, 7, 8]
    assert pids(await store.unread_privates("ali", 2)) == [7, 8]
    assert pids(await store.unread_privates("ali", 0)) == []
    assert pids(await store.unread_privates("bob", 100)) == [2]
    assert pids(await store.unread_privates("zed", 100)) == []
    unread = await store.unread_privates("ali", 1)
    assert unread == [PrivateMessage("cy", "ali", "8", NOW + 8, False, pid=8)]


async def test_a_conversation_is_both_directions_paged_back_and_a_note_to_oneself_once(
    store: HistoryStore,
) -> None:
    await append(
        store,
        private(1, "bob", "ali"), private(2, "ali", "bob"), private(3, "cy", "ali"),
        private(4, "ali", "ali"), private(5, "bob", "ali"), private(6, "bob", "cy"),
        private(7, "ali", "bob"),
    )  # fmt: skip
    assert pids(await store.conversation("ali", "bob", 0, 100)) == [1, 2, 5, 7]
    assert pids(await store.conversation("bob", "ali", 0, 100)) == [1, 2, 5, 7]
    assert pids(await store.conversation("ali", "bob", 0, 2)) == [5, 7]
    assert pids(await store.conversation("ali", "bob", 5, 2)) == [1, 2]
    assert pids(await store.conversation("ali", "bob", 1, 2)) == []
    assert pids(await store.conversation("ali", "ali", 0, 100)) == [4]
    assert pids(await store.conversation("ali", "zed", 0, 100)) == []
    (first,) = await store.conversation("ali", "bob", 2, 1)
    assert first == PrivateMessage("bob", "ali", "1", NOW + 1, False, pid=1)


# --- SQLite --------------------------------------------------------------


async def test_sqlite_markers_are_stored_in_order_with_messages_and_survive_a_reopen(
    tmp_path: Path,
) -> None:
    path = tmp_path / "h.sqlite3"
    store = SQLiteHistory(path)
    loop = asyncio.get_running_loop()
    order: list[object] = []
    last: asyncio.Future[None] = loop.create_future()
    store.append([private(1, "bob", "ali")], lambda: order.append(1))
    store.save_read(
        StoredRead("ali", ReadMarker("@bob", "@bob", 0, 1), NOW), order.append, last.set_exception
    )
    store.append([private(2, "bob", "ali")], lambda: last.set_result(None))
    await last
    assert order == [1, ReadMarker("@bob", "@bob", 0, 1)]
    await store.close()

    again = SQLiteHistory(path)
    assert await again.read_markers("ali") == [ReadMarker("@bob", "@bob", 0, 1)]
    assert pids(await again.unread_privates("ali", 10)) == [2]
    await again.close()


async def test_sqlite_a_marker_that_cannot_be_written_fails_like_the_messages(
    tmp_path: Path,
) -> None:
    path = tmp_path / "h.sqlite3"
    store = SQLiteHistory(path)
    await save(store, "ali", ReadMarker("@bob", "@bob", 0, 1))
    path.unlink()  # deleted under the store: nothing is stored any more
    with pytest.raises(HistoryFailing):
        await save(store, "ali", ReadMarker("@bob", "@bob", 0, 2))
    with pytest.raises(HistoryFailing):  # refused at once while the store fails
        await save(store, "ali", ReadMarker("@bob", "@bob", 0, 3))
    await store.close()


async def test_a_version_4_database_is_migrated_to_5_with_its_private_messages(
    tmp_path: Path,
) -> None:
    path = tmp_path / "v4.sqlite3"
    conn = sqlite3.connect(path)
    conn.executescript("".join(MIGRATIONS[:4]) + "PRAGMA user_version = 4;")
    conn.executemany(
        "INSERT INTO privates VALUES (?, ?, ?, ?, ?, ?, ?, 0, NULL)",
        [(1, "Bob", "bob", "Ali", "ali", "old", NOW), (2, "Ali", "ali", "Bob", "bob", "re", NOW)],
    )
    conn.commit()
    store = SQLiteHistory(path)
    assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    indexes = {
        row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")
    }
    assert {"reads_by_time", "privates_between"} <= indexes
    assert pids(await store.conversation("bob", "ali", 0, 10)) == [1, 2]
    assert pids(await store.unread_privates("ali", 10)) == [1]
    await save(store, "ali", ReadMarker("@bob", "@Bob", 0, 1))
    assert pids(await store.unread_privates("ali", 10)) == []
    await store.close()
    conn.close()


# --- the local broker ------------------------------------------------------


class Handler:
    """Records what a broker hands back, and when."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []
        self.heard: dict[str, asyncio.Future[None]] = {}

    def wait(self, kind: str) -> asyncio.Future[None]:
        """Done when the next `kind` event is recorded."""
        self.heard[kind] = asyncio.get_running_loop().create_future()
        return self.heard[kind]

    def _record(self, kind: str, value: Any) -> None:
        self.events.append((kind, value))
        waiting = self.heard.pop(kind, None)
        if waiting is not None:
            waiting.set_result(None)

    def on_private(self, message: PrivateMessage, sender_key: str, target_key: str) -> None:
        self._record("private", (message.pid, sender_key, target_key))

    def on_read(self, user_key: str, marker: ReadMarker) -> None:
        self._record("read", (user_key, marker))

    def is_here(self, user_key: str) -> bool:
        return False

    def __getattr__(self, name: str) -> object:  # the rest of BrokerHandler: nothing to do
        return lambda *args: None

    def answer(self, kind: str) -> Callable[[Any], None]:
        """A `done` callback that records its result."""
        return lambda result: self._record(kind, result)


def post(sender: str, target: str, client_id: str = "") -> PrivatePost:
    return PrivatePost(sender, sender, target, target, f"to {target}", False, client_id, NOW)


async def mark(broker: Broker, user: str, marker: ReadMarker) -> ReadMarker:
    done: asyncio.Future[ReadMarker | Exception] = asyncio.get_running_loop().create_future()
    broker.mark_read(user, marker, done.set_result)
    result = await done
    assert isinstance(result, ReadMarker), result
    return result


async def send(broker: Broker, p: PrivatePost) -> PublishedPrivate:
    done: asyncio.Future[PublishedPrivate | Exception] = asyncio.get_running_loop().create_future()
    broker.publish_private(p, done.set_result)
    result = await done
    assert isinstance(result, PublishedPrivate), result
    return result


async def test_the_local_broker_answers_the_sender_before_handing_a_private_message_on(
    store: HistoryStore,
) -> None:
    broker = LocalBroker(store, LoadedState(last_private_id=0, tokens={}, identities={}), 64)
    handler = Handler()
    await broker.start(handler)  # type: ignore[arg-type]
    stored = handler.wait("private")
    broker.publish_private(post("ali", "bob", "c1"), handler.answer("sent"))
    await stored
    assert [kind for kind, _ in handler.events] == ["sent", "private"]
    assert handler.events[1] == ("private", (1, "ali", "bob"))

    assert await mark(broker, "bob", ReadMarker("@ali", "@ali", 0, 1)) == ReadMarker(
        "@ali", "@ali", 0, 1
    )
    assert await mark(broker, "bob", ReadMarker("@ali", "@Ali", 0, 0)) == ReadMarker(
        "@ali", "@Ali", 0, 1
    )
    assert await broker.read_markers("bob") == [ReadMarker("@ali", "@Ali", 0, 1)]
    await send(broker, post("ali", "bob"))
    assert pids(await broker.unread_privates("bob", 10)) == [2]
    assert pids(await broker.conversation("bob", "ali", 0, 10)) == [1, 2]
    assert all(kind != "read" for kind, _ in handler.events)  # a cluster of one: nobody to tell
    await broker.stop()


async def test_the_local_broker_refuses_a_marker_its_store_cannot_keep(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    store = SQLiteHistory(path)
    broker = LocalBroker(store, store.load(), 64)
    await broker.start(Handler())  # type: ignore[arg-type]
    path.unlink()
    done: asyncio.Future[ReadMarker | Exception] = asyncio.get_running_loop().create_future()
    broker.mark_read("ali", ReadMarker("#dev", "#dev", 1, 1), done.set_result)
    assert isinstance(await done, BrokerUnavailable)
    await broker.stop()


# --- the Redis broker ------------------------------------------------------


@pytest.fixture
async def redis_brokers() -> AsyncIterator[list[tuple[Broker, Handler]]]:
    """Two Redis brokers (two servers) on one real redis-server."""
    pytest.importorskip("redis")
    from tuichat.server.broker.redis import RedisBroker, RedisLink

    server = RedisServer()
    await server.start()
    pair: list[tuple[Broker, Handler]] = []
    for name in ("a", "b"):
        broker = RedisBroker(RedisLink(server.url, cluster=False), name, 100)
        handler = Handler()
        await broker.start(handler)  # type: ignore[arg-type]
        pair.append((broker, handler))
    yield pair
    for started, _ in pair:
        await started.stop()
    await server.stop()


async def test_redis_a_marker_is_stored_forward_only_and_heard_by_the_other_servers(
    redis_brokers: list[tuple[Broker, Handler]],
) -> None:
    (a, heard_a), (b, heard_b) = redis_brokers
    heard = heard_b.wait("read")
    assert await mark(a, "ali", ReadMarker("#dev", "#dev", 7, 5)) == ReadMarker(
        "#dev", "#dev", 7, 5
    )
    async with asyncio.timeout(TIMEOUT):
        await heard
    assert heard_b.events == [("read", ("ali", ReadMarker("#dev", "#dev", 7, 5)))]
    assert await mark(b, "ali", ReadMarker("#dev", "#Dev", 7, 4)) == ReadMarker(
        "#dev", "#Dev", 7, 5
    )
    assert await mark(b, "ali", ReadMarker("#dev", "#Dev", 8, 1)) == ReadMarker(
        "#dev", "#Dev", 8, 1
    )
    heard = heard_a.wait("read")
    assert await mark(b, "ali", ReadMarker("@bob", "@bob", 0, 3)) == ReadMarker(
        "@bob", "@bob", 0, 3
    )
    async with asyncio.timeout(TIMEOUT):
        await heard  # the channel is heard in order: everything before it came too
    assert [marker for _, (_, marker) in heard_a.events] == [
        ReadMarker("#dev", "#Dev", 7, 5), ReadMarker("#dev", "#Dev", 8, 1),
        ReadMarker("@bob", "@bob", 0, 3),
    ]  # fmt: skip
    assert len(heard_b.events) == 1  # never its own
    assert await a.read_markers("ali") == [
        ReadMarker("@bob", "@bob", 0, 3), ReadMarker("#dev", "#Dev", 8, 1),
    ]  # fmt: skip


async def test_redis_keeps_the_most_recently_moved_markers_only(
    redis_brokers: list[tuple[Broker, Handler]],
) -> None:
    (a, _), _ = redis_brokers
    answers: list[asyncio.Future[ReadMarker | Exception]] = []
    for i in range(MAX_MARKERS + 1):  # pipelined, within a few milliseconds
        answers.append(asyncio.get_running_loop().create_future())
        a.mark_read("ali", ReadMarker(f"@u{i}", f"@u{i}", 0, 1), answers[-1].set_result)
    await asyncio.gather(*answers)
    markers = await a.read_markers("ali")
    assert len(markers) == MAX_MARKERS
    assert markers[0].conversation == f"@u{MAX_MARKERS}"
    assert markers[-1].conversation == "@u1"


async def test_redis_a_private_message_is_answered_then_handed_on_here_and_there_once(
    redis_brokers: list[tuple[Broker, Handler]],
) -> None:
    (a, heard_a), (b, heard_b) = redis_brokers
    here, there = heard_a.wait("private"), heard_b.wait("private")
    a.publish_private(post("ali", "bob", "c1"), heard_a.answer("sent"))
    async with asyncio.timeout(TIMEOUT):
        await asyncio.gather(here, there)
    assert [kind for kind, _ in heard_a.events] == ["sent", "private"]  # nobody's here: still
    assert heard_a.events[1] == ("private", (1, "ali", "bob"))
    assert heard_b.events == [("private", (1, "ali", "bob"))]
    here = heard_a.wait("private")
    await send(b, post("bob", "ali"))  # heard on a after the first one's copy came back
    async with asyncio.timeout(TIMEOUT):
        await here
    assert [value for kind, value in heard_a.events if kind == "private"] == [
        (1, "ali", "bob"), (2, "bob", "ali"),
    ]  # fmt: skip
    retry = await send(b, post("ali", "bob", "c1"))
    assert (retry.new, retry.message.pid) == (False, 1)


async def test_redis_unread_private_messages_and_conversations(
    redis_brokers: list[tuple[Broker, Handler]],
) -> None:
    (a, _), (b, _) = redis_brokers
    for sender, target in [
        ("bob", "ali"), ("ali", "bob"), ("cy", "ali"), ("ali", "ali"), ("bob", "ali"),
        ("cy", "dee"), ("bob", "ali"),
    ]:  # fmt: skip
        await send(a, post(sender, target))
    assert pids(await b.unread_privates("ali", 100)) == [1, 3, 5, 7]
    await mark(a, "ali", ReadMarker("@bob", "@bob", 0, 5))
    assert pids(await b.unread_privates("ali", 100)) == [3, 7]
    assert pids(await b.unread_privates("ali", 1)) == [7]
    assert pids(await b.conversation("ali", "bob", 0, 100)) == [1, 2, 5, 7]
    assert pids(await b.conversation("bob", "ali", 7, 2)) == [2, 5]
    assert pids(await b.conversation("ali", "ali", 0, 100)) == [4]
    (last,) = await a.conversation("ali", "bob", 0, 1)
    assert (last.sender, last.to, last.text, last.pid) == ("bob", "ali", "to ali", 7)
