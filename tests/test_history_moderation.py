"""Moderation in the stores (memory and SQLite): rules and the moderation log kept together,
private messages hidden from a target who ignores their sender, the 6 → 7 migration."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
from pathlib import Path

from tests.test_history_reads import store_fixture
from tuichat.chat.rules import BAN, TOPIC, ModEvent, Rule
from tuichat.protocol import PrivateMessage
from tuichat.server.history import HistoryStore, SQLiteHistory, StoredPrivate
from tuichat.server.history.sqlite import MIGRATIONS

NOW = 1_700_000_000_000

__all__ = ["store_fixture"]  # the `store` fixture: an empty store of each kind


async def moderate(store: HistoryStore, event: ModEvent) -> None:
    stored: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    store.save_moderation(event, lambda: stored.set_result(None), stored.set_exception)
    await stored


async def append(store: HistoryStore, *records: StoredPrivate) -> None:
    stored: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    store.append(records, lambda: stored.set_result(None), stored.set_exception)
    await stored


def event(room: str, action: str, name: str, *rules: Rule, logged: bool = True) -> ModEvent:
    return ModEvent("id", room, action, name, "ali", "why", 0, NOW, rules, logged=logged)


def private(pid: int, sender: str, target: str, hidden: bool = False) -> StoredPrivate:
    message = PrivateMessage(sender, target, f"text {pid}", NOW + pid, False, pid=pid)
    return StoredPrivate(message, sender, target, hidden=hidden)


async def test_the_log_is_read_newest_first_by_room_or_all(store: HistoryStore) -> None:
    await moderate(store, event("#dev", "kick", "eve"))
    await moderate(store, event("", "ban", "mallory"))
    await moderate(store, event("#dev", "mute", "eve"))
    await moderate(store, event("@ali", "ignore", "eve", logged=False))
    everything = await store.mod_log(None, 0, 10)
    assert [e.action for e in everything] == ["mute", "ban", "kick"]
    assert [e.action for e in await store.mod_log("#dev", 0, 10)] == ["mute", "kick"]
    assert [e.action for e in await store.mod_log("", 0, 10)] == ["ban"]
    older = await store.mod_log(None, everything[0].id, 1)
    assert [e.action for e in older] == ["ban"]
    first = everything[-1]
    assert (first.room, first.name, first.by, first.reason, first.ts) == (
        "#dev", "eve", "ali", "why", NOW,
    )  # fmt: skip


async def test_a_hidden_private_message_is_its_senders_only(store: HistoryStore) -> None:
    await append(store, private(1, "eve", "ali", hidden=True), private(2, "bob", "ali"))
    await append(store, private(3, "ali", "eve"))
    assert [m.pid for m in await store.conversation("eve", "ali", 0, 10)] == [1, 3]
    assert [m.pid for m in await store.conversation("ali", "eve", 0, 10)] == [3]
    assert [m.pid for m in await store.privates("ali", 0, 10)] == [2, 3]
    assert [m.pid for m in await store.privates("eve", 0, 10)] == [1, 3]
    assert [m.pid for m in await store.unread_privates("ali", 10)] == [2]
    assert (await store.private(1)) is not None  # (a retry of it is still recognised)


async def test_sqlite_keeps_the_rules_across_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    store = SQLiteHistory(path)
    topic = Rule("#dev", TOPIC, "", {"text": "friday", "by": "ali", "ts": NOW})
    ban = Rule("#dev", BAN, "eve", {"name": "Eve", "until": 0})
    await moderate(store, event("#dev", "topic", "", topic))
    await moderate(store, event("#dev", "ban", "eve", ban))
    await moderate(store, event("#dev", "unban", "eve", dataclasses.replace(ban, value=None)))
    await store.close()
    again = SQLiteHistory(path)
    try:
        assert again.load().rules == (topic,)
        assert len(await again.mod_log(None, 0, 10)) == 3
    finally:
        await again.close()


async def test_a_version_6_database_takes_the_new_tables_and_keeps_its_private_messages(
    tmp_path: Path,
) -> None:
    path = tmp_path / "v6.sqlite3"
    conn = sqlite3.connect(path)
    conn.executescript("".join(MIGRATIONS[:6]) + "PRAGMA user_version = 6;")
    conn.execute(
        "INSERT INTO privates VALUES (1, 'Eve', 'eve', 'Ali', 'ali', 'old', ?, 0, NULL)", (NOW,)
    )
    conn.commit()
    conn.close()
    store = SQLiteHistory(path)
    try:
        assert [m.text for m in await store.conversation("ali", "eve", 0, 10)] == ["old"]
        assert store.load().rules == ()
    finally:
        await store.close()
