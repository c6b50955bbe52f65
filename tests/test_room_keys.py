"""Rooms whose names look alike are one room (PROTOCOL.md §17): a `join` of a look-alike name
lands in the room that has the name first, with its history, on every broker and across two
servers; the claim of a name's comparison key outlives a restart where the history does.

Also the migration of what an older version stored (SQLite and Redis): comparison keys made
anew with Persian and Arabic folding, the earliest registration of two names that clash now
keeps it, and stored rooms get their keys (of look-alikes, the oldest).
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import msgpack
import pytest

from tests.deployments import Deployment, deployment_fixture
from tests.helpers import TIMEOUT, expect, until
from tests.raw import Raw
from tests.redis_kinds import RedisStore, redis_client, redis_config
from tuichat.chat.errors import ChatError
from tuichat.chat.names import check_room, room_key
from tuichat.client import ChatClient, RequestFailed, SigningKey
from tuichat.protocol import Event, Join, Joined, Message, Position, RoomState
from tuichat.server import ChatServer, ServerConfig
from tuichat.server.broker.redis import keys, migrate
from tuichat.server.config import RateLimits
from tuichat.server.history.sqlite import MIGRATIONS, SCHEMA_VERSION

__all__ = ["deployment_fixture"]  # the `deployment` fixture, for pytest to find

ROOM = "#برنامه‌نویسی"  # programming, with its half-space
WITHOUT_ZWNJ = "#برنامهنویسی"
ARABIC_YEH = "#برنامه‌نويسی"
REFS = itertools.count(1)


async def answer(raw: Raw, message: Any) -> Event:
    ref = next(REFS)
    raw.send(dataclasses.replace(message, ref=ref))
    return await raw.reply(ref, TIMEOUT)


# --- the rules ----------------------------------------------------------------------------


def test_room_names_take_a_zwnj_and_refuse_harakat() -> None:
    assert check_room(ROOM) == ROOM
    assert room_key(ROOM) == room_key(WITHOUT_ZWNJ) == room_key(ARABIC_YEH)
    assert room_key("#کتـاب") == room_key("#كتاب")  # a tatweel is ignored, kaf folded
    assert room_key("#Dev") == room_key("#dev") == room_key("#d\u0435v")  # case, Cyrillic e
    assert room_key("#dev") != room_key("#ops")
    for room, why in (
        ("#\u200cبرنامه", "cannot start or end with a zero-width non-joiner"),  # noqa: RUF001
        ("#برنامه\u200c\u200cنویسی", "two zero-width non-joiners in a row"),
        ("#دارا\u200cب", "may only stand between two letters that would join"),
        ("#بَرنامه", "cannot have harakat"),
    ):
        with pytest.raises(ChatError) as refused:
            check_room(room)
        assert refused.value.code == "invalid_room" and why in refused.value.message


# --- on every broker ----------------------------------------------------------------------


async def test_a_look_alike_of_a_room_is_that_room_with_its_history(
    deployment: Deployment,
) -> None:
    ali = await deployment.connect("ali", on=0)
    state = await ali.join(ROOM)
    assert state.room == ROOM  # the name as it was first joined
    first = await ali.send(ROOM, "سلام")
    names = ["ali"]
    for on, (name, spelling) in enumerate((("bob", WITHOUT_ZWNJ), ("carol", ARABIC_YEH))):
        client = await deployment.connect(name, on=on)
        joined = await client.join(spelling)
        assert (joined.room, joined.seq, joined.epoch) == (ROOM, 1, state.epoch)
        await expect(client, Joined, room=ROOM, name=name)
        page = await client.history(joined.room)
        assert [(m.seq, m.text, m.ts) for m in page.messages] == [(1, "سلام", first.ts)]
        with pytest.raises(RequestFailed) as again:  # in it already, whatever the spelling
            await client.join(WITHOUT_ZWNJ if spelling == ARABIC_YEH else ARABIC_YEH)
        assert again.value.code == "already_in_room"
        names.append(name)
        await until(lambda: ali.who(ROOM), tuple(names))
    bob_ack = await (await deployment.connect("dave", on=1)).join(WITHOUT_ZWNJ)
    assert bob_ack.room == ROOM
    heard = await expect(ali, Joined, room=ROOM, name="dave")
    assert heard.room == ROOM


async def test_the_app_lands_in_the_room_a_look_alike_names(
    server: ChatServer, connect: Callable[[str], Awaitable[ChatClient]]
) -> None:
    from tests.app_support import log_texts, make_app
    from tests.app_support import until as app_until
    from tuichat.app.widgets.chat_input import ChatInput

    bob = await connect("bob")
    assert (await bob.join(ROOM)).room == ROOM
    await bob.send(ROOM, "از قبل")
    app = make_app(server.address, "ali")
    async with app.run_test(size=(100, 30)) as pilot:
        await app_until(pilot, lambda: "bob" in app.online_users())
        composer = app.query_one(ChatInput)
        composer.insert_text_at_cursor("/join " + WITHOUT_ZWNJ)
        await composer.action_submit()
        await app_until(pilot, lambda: app.current_room == ROOM)  # the room's own name
        await app_until(pilot, lambda: "از قبل" in log_texts(app))  # with its history
        assert WITHOUT_ZWNJ not in app.rooms
        await bob.send(ROOM, "خوش آمدی")
        await app_until(pilot, lambda: "خوش آمدی" in log_texts(app))


async def test_a_member_may_name_the_room_by_a_look_alike(deployment: Deployment) -> None:
    ali = await deployment.connect("ali", on=0)
    bob = await deployment.connect("bob", on=1)
    await ali.join(ROOM)
    await bob.join(WITHOUT_ZWNJ)
    await until(lambda: ali.who(ROOM), ("ali", "bob"))
    ack = await bob.send(ARABIC_YEH, "از راه دیگر")  # sent to the room they are in
    assert ack.room == ROOM
    message = await expect(ali, Message, text="از راه دیگر")
    assert (message.room, message.seq, message.sender) == (ROOM, ack.seq, "bob")
    await bob.part(WITHOUT_ZWNJ)
    await until(lambda: ali.who(ROOM), ("ali",))


async def test_two_look_alikes_joined_at_once_on_two_servers_are_one_room(
    deployment: Deployment,
) -> None:
    ann, bob = await deployment.raw(on=0), await deployment.raw(on=1)
    await ann.hello("ann")
    await bob.hello("bob")
    ann.send(Join(room=WITHOUT_ZWNJ, ref=1))
    bob.send(Join(room=ARABIC_YEH, ref=1))
    one, other = await ann.reply(1, TIMEOUT), await bob.reply(1, TIMEOUT)
    assert isinstance(one, RoomState) and isinstance(other, RoomState)
    assert one.room == other.room in (WITHOUT_ZWNJ, ARABIC_YEH)
    assert one.epoch == other.epoch


async def test_the_exact_name_of_a_room_is_that_room(deployment: Deployment) -> None:
    ali = await deployment.connect("ali", on=0)
    assert (await ali.join("#dev")).room == "#dev"
    bob = await deployment.connect("bob", on=1)
    assert (await bob.join("#d\u0435v")).room == "#dev"  # a Cyrillic e: the same room
    assert (await bob.join("#ops")).room == "#ops"  # another name altogether


async def test_a_look_alike_finds_the_room_after_its_last_member_left_and_after_a_restart(
    deployment: Deployment,
) -> None:
    ali = await deployment.connect("ali", on=0)
    await ali.join(ROOM)
    await ali.send(ROOM, "kept")
    await ali.join("#خالی")  # a room that never has a message
    await ali.part(ROOM)
    await ali.part("#خالی")
    bob = await deployment.connect("bob", on=1)
    assert (await bob.join(WITHOUT_ZWNJ)).room == ROOM  # nobody is in it: its history is
    assert (await bob.join("#خـالی")).room == "#خالی"  # the name stays its own, for good
    await ali.close()
    await bob.close()
    if not deployment.durable:
        pytest.skip(f"{deployment.kind}: nothing is kept across a restart")
    await deployment.restart()
    carol = await deployment.connect("carol", on=1)
    state = await carol.join(ARABIC_YEH)
    assert (state.room, state.seq) == (ROOM, 1)
    assert (await carol.join("#خـالی")).room == "#خالی"


# --- migration of what an older version stored ------------------------------------------

FIRST_KAMRAN = "كامران"  # ARABIC KAF: registered first
SECOND_KAMRAN = "کامران"  # KEHEH: registered later, by another key; it looks the same
MILAD = "ميلاد"  # ARABIC YEH: no rival, but its key changes
OLDER_BOOK, NEWER_BOOK = "#كتاب", "#کتاب"  # two stored rooms whose names look alike now
PROGRAMMING = "#برنامهنویسی"  # a stored room without its half-space


@dataclasses.dataclass
class Owners:
    first: SigningKey
    second: SigningKey
    milad: SigningKey


def old_rows(owners: Owners) -> dict[str, list[tuple[Any, ...]]]:
    """What the version before this one stored, table by table (schema 5). Its comparison keys
    of these names were the names themselves: its look-alike data left these letters alone."""
    first, second, milad = FIRST_KAMRAN, SECOND_KAMRAN, MILAD
    return {
        "identities": [
            (first, first, f"ed25519:{owners.first.public}#0", 1000),
            (second, second, f"ed25519:{owners.second.public}#2", 2000),
            (milad, milad, f"ed25519:{owners.milad.public}#0", 1500),
        ],
        "rooms": [(OLDER_BOOK, 11), (NEWER_BOOK, 12), (PROGRAMMING, 13)],
        "messages": [
            (OLDER_BOOK, 1, first, first, "older 1", 1000, 0, None),
            (OLDER_BOOK, 2, first, first, "older 2", 1100, 0, None),
            (NEWER_BOOK, 1, second, second, "newer 1", 2000, 0, None),
            (PROGRAMMING, 1, milad, milad, "p 1", 1200, 0, "id-1"),
            (PROGRAMMING, 2, milad, milad, "p 2", 1300, 0, None),
        ],
        "privates": [
            (1, "bob", "bob", first, first, "for the first kamran", 1000, 0, None),
            (2, "bob", "bob", second, second, "for the second kamran", 2500, 0, None),
            (3, milad, milad, "bob", "bob", "from milad", 3000, 0, None),
        ],
        "reads": [
            (first, "@bob", "@bob", 0, 1, 1000),
            (second, "@bob", "@bob", 0, 2, 2600),
            ("bob", f"@{milad}", f"@{milad}", 0, 3, 3100),
        ],
    }


async def check_migrated(server: ChatServer, other: ChatServer, owners: Owners) -> None:
    """What users notice once a server has migrated the data of `old_rows`."""
    host, port = server.address
    clients: list[ChatClient] = []
    try:
        kamran = await ChatClient.connect(SECOND_KAMRAN, host, port, key=owners.first)
        clients.append(kamran)  # the first owner holds the name in both spellings
        assert kamran.welcome is not None and kamran.welcome.name == SECOND_KAMRAN
        assert Position("@bob", 0, 1) in kamran.welcome.read  # their read marker moved along
        page = await kamran.private_history("bob")
        assert [m.text for m in page.messages] == ["for the first kamran"]  # only theirs
        for spelling, key in ((SECOND_KAMRAN, owners.second), (FIRST_KAMRAN, owners.second)):
            with pytest.raises(RequestFailed) as refused:
                await ChatClient.connect(spelling, *other.address, key=key)
            assert refused.value.code == "name_registered"  # the later owner lost it
        with pytest.raises(RequestFailed) as refused:
            await ChatClient.connect(SECOND_KAMRAN, *other.address)
        assert refused.value.code == "name_registered"
        milad = await ChatClient.connect("میلاد", *other.address, key=owners.milad)
        clients.append(milad)  # FARSI YEH now: the same name, the same owner
        assert [m.text for m in (await milad.private_history("bob")).messages] == ["from milad"]
        for spelling, room, texts in (
            ("#کتـاب", OLDER_BOOK, ["older 1", "older 2"]),  # a look-alike: the older room
            (OLDER_BOOK, OLDER_BOOK, ["older 1", "older 2"]),
            (NEWER_BOOK, NEWER_BOOK, ["newer 1"]),  # its exact name: the room keeps it
            ("#برنامه‌نويسی", PROGRAMMING, ["p 1", "p 2"]),
        ):
            state = await kamran.join(spelling)
            assert state.room == room, spelling
            assert [m.text for m in (await kamran.history(room)).messages] == texts
            await kamran.part(room)
        retry = await milad.join(PROGRAMMING)
        assert retry.seq == 2
        ack = await milad.send(PROGRAMMING, "p 1 again", id="id-1")  # a retry, recognised
        assert ack.seq == 1
    finally:
        for client in clients:
            await client.close()


def warnings_about(caplog: pytest.LogCaptureFixture, *words: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and all(w in r.getMessage() for w in words)
    ]


async def test_an_older_sqlite_database_is_migrated_and_the_earliest_owner_keeps_the_name(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    owners = Owners(SigningKey.generate(), SigningKey.generate(), SigningKey.generate())
    path = tmp_path / "v5.sqlite3"
    conn = sqlite3.connect(path)
    conn.executescript("".join(MIGRATIONS[:5]) + "PRAGMA user_version = 5;")  # as 5 left it
    for table, rows in old_rows(owners).items():
        marks = ", ".join("?" * len(rows[0]))
        conn.executemany(f"INSERT INTO {table} VALUES ({marks})", rows)
    conn.commit()
    conn.close()
    caplog.set_level(logging.INFO, logger="tuichat.server")
    config = ServerConfig(host="127.0.0.1", port=0, db=str(path), rate=RateLimits.unlimited())
    server = ChatServer(config)
    await server.start()
    try:
        assert warnings_about(caplog, SECOND_KAMRAN, FIRST_KAMRAN, "loses its registration")
        assert warnings_about(caplog, NEWER_BOOK, OLDER_BOOK, "keeps its name")
        await check_migrated(server, server, owners)
    finally:
        await server.stop()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    unkeyed = conn.execute("SELECT room FROM room_keys WHERE key IS NULL").fetchall()
    assert unkeyed == [(NEWER_BOOK,)]
    conn.close()
    caplog.clear()
    again = ChatServer(config)  # migrated once: nothing moves the second time
    await again.start()
    try:
        assert not warnings_about(caplog, "loses its registration")
        await check_migrated(again, again, owners)
    finally:
        await again.stop()


@pytest.fixture
def old_redis(redis: RedisStore) -> RedisStore:
    """An empty Redis (or the session's Redis Cluster, emptied) for old data."""
    return redis


async def write_old_redis(store: RedisStore, owners: Owners) -> None:
    """`old_rows` as the version before this one kept them in Redis (schema 1)."""
    rows = old_rows(owners)
    client = await redis_client(store)
    try:
        for key, _, owner, _ in rows["identities"]:
            await client.hset(keys.IDENTITIES, key, owner)
        for room, epoch in rows["rooms"]:
            await client.set(keys.room_key(room, "epoch"), epoch)
        for room, seq, sender, sender_key, text, ts, action, client_id in rows["messages"]:
            fields = {"s": sender, "k": sender_key, "t": text, "ts": ts, "a": action,
                      "i": client_id or "", "o": "old"}  # fmt: skip
            await client.xadd(keys.room_key(room, "log"), fields, id=f"{seq}-0")
            await client.set(keys.room_key(room, "seq"), seq)
            if client_id:  # remembered for a day, to recognise a retry
                retry = keys.retry_key(room, sender_key, client_id)
                await client.set(retry, f"{seq}:{ts}", ex=86400)
        for pid, sender, sender_key, target, target_key, text, ts, action, _ in rows["privates"]:
            fields = {"f": sender, "fk": sender_key, "to": target, "tk": target_key, "t": text,
                      "ts": ts, "a": action, "i": ""}  # fmt: skip
            for stream in dict.fromkeys(
                (keys.private_log(target_key), keys.private_log(sender_key),
                 keys.conversation_log(sender_key, target_key))
            ):  # fmt: skip
                await client.xadd(stream, fields, id=f"{pid}-0")
            await client.set(keys.PID, pid)
        for user, conversation, label, epoch, seq, moved_at in rows["reads"]:
            packed = msgpack.packb([label, epoch, seq, moved_at])
            await client.hset(keys.reads_key(user), conversation, packed)
            await client.zadd(keys.read_order(user), {conversation: moved_at})
    finally:
        await client.aclose()


async def test_an_older_redis_is_migrated_once_by_two_servers_starting_at_once(
    old_redis: RedisStore, caplog: pytest.LogCaptureFixture
) -> None:
    owners = Owners(SigningKey.generate(), SigningKey.generate(), SigningKey.generate())
    await write_old_redis(old_redis, owners)
    caplog.set_level(logging.INFO, logger="tuichat.server")
    pair = (ChatServer(redis_config(old_redis, "a")), ChatServer(redis_config(old_redis, "b")))
    await asyncio.gather(*(server.start() for server in pair))
    try:
        migrations = [r for r in caplog.records if "bringing Redis to schema" in r.getMessage()]
        assert len([r for r in migrations if "waiting" not in r.getMessage()]) == 1
        assert warnings_about(caplog, "loses its registration")
        assert warnings_about(caplog, NEWER_BOOK, OLDER_BOOK, "keeps its name")
        await check_migrated(pair[0], pair[1], owners)
    finally:
        for server in pair:
            await server.stop()
    client = await redis_client(old_redis)
    try:
        assert await client.get(keys.SCHEMA) == b"2"
        assert await client.exists(keys.MIGRATING) == 0  # let go of
    finally:
        await client.aclose()
    caplog.clear()
    again = ChatServer(redis_config(old_redis, "c"))
    await again.start()
    try:
        assert not [r for r in caplog.records if "bringing Redis" in r.getMessage()]
        await check_migrated(again, again, owners)
    finally:
        await again.stop()


async def test_a_redis_migration_stopped_half_way_is_finished_by_the_next_server(
    old_redis: RedisStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    owners = Owners(SigningKey.generate(), SigningKey.generate(), SigningKey.generate())
    await write_old_redis(old_redis, owners)

    async def dies(*args: object) -> None:  # after the owners, markers and streams moved
        raise RuntimeError("the server died here")

    monkeypatch.setattr(migrate, "_move_retries", dies)
    first = ChatServer(redis_config(old_redis, "a"))
    with pytest.raises(RuntimeError):
        await first.start()
    await first.broker.stop()  # (its connection to Redis)
    monkeypatch.undo()
    client = await redis_client(old_redis)
    try:
        assert await client.get(keys.SCHEMA) is None  # not done
        assert await client.smembers(keys.MIGRATION_DONE)  # but some steps are
    finally:
        await client.aclose()
    second = ChatServer(redis_config(old_redis, "b"))
    await second.start()
    try:
        await check_migrated(second, second, owners)
    finally:
        await second.stop()
