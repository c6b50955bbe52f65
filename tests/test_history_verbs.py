"""Verbs and search in the stores: what a delete leaves on disk (SQLite) and in Redis, the
search index across shards and migrations, and the plain rules of `tuichat.chat.verbs` and
`tuichat.chat.search`."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from tests.redis_kinds import ConnectTo, RedisStore, connect_to, redis, redis_client, servers
from tests.test_history_reads import store_fixture
from tuichat.chat import verbs
from tuichat.chat.search import SearchQuery, fold, holds, query_words, spans
from tuichat.protocol import Message, Reaction, Update
from tuichat.server import ChatServer
from tuichat.server.history import HistoryStore, SQLiteHistory, StoredMessage
from tuichat.server.history import search_index as index
from tuichat.server.history.sqlite import MIGRATIONS

NOW = 1_700_000_000_000
SECRET = "zebracorn"
"""A word no other text of these tests holds."""

__all__ = ["connect_to", "redis", "servers", "store_fixture"]  # fixtures


def everyone(room: str) -> bool:
    return True


async def append(store: HistoryStore, *records: StoredMessage) -> None:
    stored: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    store.append(records, lambda: stored.set_result(None), stored.set_exception)
    await stored


def said(seq: int, text: str, sender: str = "ali", room: str = "#dev") -> StoredMessage:
    return StoredMessage(Message(room, seq, sender, text, NOW + seq), 7, sender, "")


def verb(
    seq: int, kind: str, target: int, text: str = "", sender: str = "bob", on: bool | None = None
) -> StoredMessage:
    return StoredMessage(
        Update("#dev", seq, sender, NOW + seq, kind, target, text, on), 7, sender, ""
    )


def on_disk(path: Path) -> bytes:
    """Every byte of the database and its WAL."""
    wal = Path(str(path) + "-wal")
    return path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")


# --- the stores ------------------------------------------------------------------


async def test_a_store_applies_each_verb_to_its_message(store: HistoryStore) -> None:
    await append(store, said(1, "first"), said(2, "second", "bob"), said(3, "third"))
    await append(
        store,
        verb(4, "react", 1, "👍", on=True), verb(5, "react", 1, "👍", "carol", on=True),
        verb(6, "react", 1, "👍", on=False), verb(7, "edit", 2, "second, edited", "bob"),
        verb(8, "delete", 3, sender="ali"), verb(9, "edit", 3, "too late", "ali"),
    )  # fmt: skip
    page = {m.seq: m for m in await store.page("#dev", 0, 50)}
    assert sorted(page) == [1, 2, 3]
    assert page[1].reactions == (Reaction("👍", 1, ("carol",)),)
    assert (page[2].text, page[2].edited) == ("second, edited", True)
    assert (page[3].text, page[3].deleted) == ("", True)
    events = await store.after("#dev", 0, 9)
    assert [e.seq for e in events] == list(range(1, 10))
    held = await store.held("#dev", 1, "carol")
    assert held is not None and held.reacted == {"👍"} and held.sender_key == "ali"
    assert await store.held("#dev", 4, "carol") is None  # a verb's seq is no message
    assert await store.held("#dev", 99, "carol") is None


async def test_search_pages_go_back_newest_first(store: HistoryStore) -> None:
    await append(store, *(said(i, f"note {i} {'odd' if i % 2 else 'even'}") for i in range(1, 41)))
    query = SearchQuery(query_words("note odd"), "ali", limit=6)
    first, more = await store.search(query, everyone)
    assert [h.seq for h in first] == [39, 37, 35, 33, 31, 29]
    older, _ = await store.search(SearchQuery(query.words, "ali", limit=6, before=more), everyone)
    assert [h.seq for h in older] == [27, 25, 23, 21, 19, 17]
    hidden, _ = await store.search(query, lambda room: room != "#dev")
    assert hidden == []


async def test_a_deleted_text_is_no_longer_in_the_database_file(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    store = SQLiteHistory(path)
    try:
        await append(store, said(1, f"the {SECRET} plan"), said(2, "an ordinary line"))
        await append(store, verb(3, "edit", 1, f"the {SECRET} plan, edited", "ali"))
        assert SECRET.encode() in on_disk(path)  # (so the check below can fail)
        await append(store, verb(4, "delete", 1, sender="ali"))
        assert SECRET.encode() not in on_disk(path)
        hits, _ = await store.search(SearchQuery(query_words(SECRET), "ali"), everyone)
        assert hits == []
        assert [
            h.text for h in (await store.search(SearchQuery(("ordinary",), "ali"), everyone))[0]
        ] == ["an ordinary line"]
    finally:
        await store.close()
    assert SECRET.encode() not in on_disk(path)
    again = SQLiteHistory(path)  # opened anew, its index is found again
    try:
        hits, _ = await again.search(SearchQuery(("ordinary",), "ali"), everyone)
        assert [h.seq for h in hits] == [2]
    finally:
        await again.close()


async def test_the_index_spans_shards_and_a_delete_merges_only_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(index, "SHARD_BITS", 3)  # 8 messages a shard
    store = SQLiteHistory(tmp_path / "h.sqlite3", synchronous="OFF")
    try:
        await append(store, *(said(i, f"line {i} apple") for i in range(1, 30)))
        assert len(store._index.shards) == 4
        hits, more = await store.search(SearchQuery(("apple",), "ali", limit=12), everyone)
        assert [h.seq for h in hits] == list(range(29, 17, -1)) and more
        hits, _ = await store.search(
            SearchQuery(("apple",), "ali", limit=50, before=more), everyone
        )
        assert [h.seq for h in hits] == list(range(17, 0, -1))
        await append(store, verb(30, "delete", 5, sender="ali"))
        hits, _ = await store.search(SearchQuery(("apple",), "ali", limit=50), everyone)
        assert 5 not in [h.seq for h in hits] and len(hits) == 28
    finally:
        await store.close()


async def test_messages_stored_before_the_index_are_found_after_the_migration(
    tmp_path: Path,
) -> None:
    path = tmp_path / "h.sqlite3"
    conn = sqlite3.connect(path, isolation_level=None)
    for statement in ";".join(MIGRATIONS[:7]).split(";"):
        if statement.strip():
            conn.execute(statement)
    conn.execute("PRAGMA user_version = 7")
    conn.execute("INSERT INTO rooms VALUES ('#old', 5)")
    conn.execute(
        "INSERT INTO messages VALUES ('#old', 1, 'ali', 'ali', 'مي‌خواهم كتاب', 1, 0, NULL)"
    )
    conn.close()
    store = SQLiteHistory(path)
    try:
        hits, _ = await store.search(SearchQuery(query_words("کتاب"), "ali"), everyone)
        assert [(h.room, h.text) for h in hits] == [("#old", "مي‌خواهم كتاب")]
        await append(store, StoredMessage(Message("#old", 2, "bob", "کتاب دوم", NOW), 5, "bob", ""))
        hits, _ = await store.search(SearchQuery(query_words("کتاب"), "ali"), everyone)
        assert [h.seq for h in hits] == [2, 1]
    finally:
        await store.close()


# --- Redis ---------------------------------------------------------------------------


async def everything(client: Any) -> bytes:
    """Every key and value Redis holds, as bytes (streams, hashes, strings, sets)."""
    held = []
    async for key in client.scan_iter(count=1000):
        kind = (await client.type(key)).decode()
        held.append(key)
        if kind == "stream":
            held += [repr(entry).encode() for entry in await client.xrange(key)]
        elif kind == "hash":
            held += [repr(item).encode() for item in (await client.hgetall(key)).items()]
        elif kind == "string":
            held.append(await client.get(key))
        elif kind == "set":
            held += list(await client.smembers(key))
        elif kind == "zset":
            held += [repr(item).encode() for item in await client.zrange(key, 0, -1)]
        elif kind == "list":
            held += list(await client.lrange(key, 0, -1))
    return b"\n".join(held)


async def test_a_deleted_text_is_no_longer_anywhere_in_redis(
    redis: RedisStore, servers: tuple[ChatServer, ChatServer], connect_to: ConnectTo
) -> None:
    ali = await connect_to("ali", servers[0])
    await ali.join("#dev")
    sent = await ali.send("#dev", f"the {SECRET} plan")
    await ali.edit("#dev", sent.seq, f"the {SECRET} plan, edited")
    await ali.send("#dev", "an ordinary line", reply=sent.seq)
    client = await redis_client(redis)
    try:
        assert SECRET.encode() in await everything(client)  # (so the check below can fail)
        await ali.delete("#dev", sent.seq)
        assert SECRET.encode() not in await everything(client)
        page = {m.seq: m for m in (await ali.history("#dev")).messages}
        assert page[sent.seq].deleted and page[sent.seq + 2].quote is not None
    finally:
        await client.aclose()


# --- the rules ------------------------------------------------------------------------


def test_an_update_applied_twice_or_replayed_gives_the_same_message() -> None:
    message = Message("#dev", 1, "ali", "hello", NOW)
    updates = [
        Update("#dev", 2, "bob", NOW, "react", 1, "👍", True),
        Update("#dev", 3, "carol", NOW, "react", 1, "👍", True),
        Update("#dev", 4, "bob", NOW, "react", 1, "👍", False),
        Update("#dev", 5, "ali", NOW, "edit", 1, "hello, all"),
    ]
    once = message
    for update in updates:
        once = verbs.applied(once, update)
    twice = once
    for update in updates:
        twice = verbs.applied(verbs.applied(twice, update), update)
    assert once == twice
    assert (once.text, once.edited, once.reactions) == (
        "hello, all", True, (Reaction("👍", 1, ("carol",)),),
    )  # fmt: skip
    deleted = verbs.applied(once, Update("#dev", 6, "ali", NOW, "delete", 1))
    assert (deleted.text, deleted.deleted, deleted.reactions) == ("", True, None)
    assert verbs.applied(deleted, updates[-1]) == deleted  # nothing brings it back


def test_a_reaction_is_short_one_line_text() -> None:
    assert verbs.check_reaction(" 👍🏽 ") == "👍🏽"
    assert verbs.check_reaction("+1") == "+1"
    for bad in ("", "   ", "a\nb", "x" * 17, "\x1b[31m"):
        with pytest.raises(Exception, match="reaction"):
            verbs.check_reaction(bad)


def test_a_preview_is_one_line_cut_short() -> None:
    assert verbs.preview("one line") == "one line"
    assert verbs.preview("first\nsecond") == "first…"
    assert verbs.preview("x" * 200) == "x" * 79 + "…"


def test_search_folds_like_names_and_words_are_prefixes() -> None:
    assert fold("كتاب") == fold("کتاب")
    assert query_words("  مي‌خوانم  ") == ("میخوانم",)
    assert query_words("Release, release!") == ("release",)
    assert holds("عِلمِ نو", ("علم",)) and holds("۱۲۳ تومان", ("12",))
    assert not holds("ketab", ("ketabha",))
    text = "the Deploy key, deployed"
    assert spans(text, ("deploy",)) == [(4, 10), (16, 24)]
    with pytest.raises(Exception, match="search"):
        query_words("!!!")
    with pytest.raises(Exception, match="words"):
        query_words(" ".join(f"w{i}" for i in range(9)))


async def test_a_search_through_what_one_may_not_read_stops_and_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(index, "MAX_EXAMINED", 10)
    store = SQLiteHistory(tmp_path / "h.sqlite3", synchronous="OFF")
    try:
        await append(store, said(1, "the needle, where all may read it", room="#open"))
        await append(store, *(said(i, f"needle {i}", room="#secret") for i in range(1, 41)))
        query = SearchQuery(("needle",), "eve", limit=5)
        pages = []
        while True:
            hits, more = await store.search(query, lambda room: room != "#secret")
            pages.append(hits)
            if not more:
                break
            query = SearchQuery(("needle",), "eve", limit=5, before=more)
        assert [h.text for page in pages for h in page] == ["the needle, where all may read it"]
        assert 3 <= len(pages) <= 6  # each page looked through at most 10 (and 5 + 1)
    finally:
        await store.close()


async def test_redis_search_goes_room_by_room_and_its_pages_always_get_further(
    servers: tuple[ChatServer, ChatServer], connect_to: ConnectTo, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tuichat.server.broker.redis import search

    ali = await connect_to("ali", servers[0])
    for room in ("#aaa", "#bbb", "#zzz"):
        await ali.join(room)
        for i in range(12):
            await ali.send(room, f"filler {i} of {room}")
    await ali.send("#zzz", "findme please")
    monkeypatch.setattr(search, "SCAN_LIMIT", 10)
    found, pages, before = [], 0, ""
    while True:
        page = await ali.search("findme", before=before)
        pages += 1
        found += [h.text for h in page.hits]
        if not page.next:
            break
        before = page.next
    assert found == ["findme please"] and pages >= 4
    fillers = await ali.search("filler", limit=100)
    assert len(fillers.hits) <= 10 and fillers.next  # out of budget: more to come
