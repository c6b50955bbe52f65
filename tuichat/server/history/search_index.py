"""The full-text index of the SQLite history: FTS5 tables of folded text, in shards.

Every stored message (room or private) gets a search id (`sid`, counting up) and a row in
the shard `search_<sid // SHARD_ROWS>`: its text folded (`tuichat.chat.search.fold`) and
hidden words (`tag`) for its room, its sender and, for a private message, its parties. The
tables are contentless (the text is not kept twice) with `detail=column` (no positions:
a query is words, never a phrase). `found` maps a sid back to its message.

A deleted message leaves its index at once (FTS5's `delete`), and its shard is merged anew
(`optimize`) in the same transaction, which is what takes its words out of the file, not only
out of the answers; with `secure_delete` on and the WAL truncated after the commit, nothing
of the text is left on disk. Shards keep that merge to `SHARD_ROWS` rows: about 35 ms for
chat-sized messages, 300 ms for the longest ones (it stalls the writer meanwhile, which is why
deletes share the moderation requests' bucket).

A search goes from the newest shard to the oldest, newest first within each, a batch of
candidates at a time; the store checks each against what the user may read.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from tuichat.chat.search import ROOM_TAG, SearchQuery, fold, tag

SHARD_BITS = 13
SHARD_ROWS = 1 << SHARD_BITS
"""Messages per shard of the index: what a delete merges anew."""
MAX_EXAMINED = 4096
"""Candidates one search looks through at most (those the user may not read count too);
past it, the page ends early and its `next` goes on from there."""
BATCH = 256
"""Candidates read from the index at a time, at most (a search reads as many as it needs
first, and more only when some of them were not the user's to read)."""


def shard_of(sid: int) -> int:
    return sid >> SHARD_BITS


def table(shard: int) -> str:
    return f"search_{shard}"


def room_tags(room: str, sender_key: str) -> str:
    return f"{ROOM_TAG} {tag('r', room)} {tag('s', sender_key)}"


def private_tags(sender_key: str, target_key: str, hidden: bool) -> str:
    """A hidden message (its target ignores the sender) is found by its sender only."""
    parties = tag("p", sender_key) if hidden else f"{tag('p', sender_key)} {tag('p', target_key)}"
    return f"{parties} {tag('s', sender_key)}"


class SearchIndex:
    """The shards of one database; used on the writer's connection (and `match` on any)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        rows = conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name GLOB 'search_[0-9]*'"
        ).fetchall()
        numbers = (name.removeprefix("search_") for (name,) in rows)
        self.shards = {int(n) for n in numbers if n.isdigit()}  # (not FTS5's own tables)
        (last,) = conn.execute("SELECT COALESCE(MAX(sid), 0) FROM found").fetchone()
        self.next_sid = last + 1

    def add(self, conn: sqlite3.Connection, rows: Iterable[tuple[int, str, int, str, str]]) -> None:
        """Index `(sid, room, seq, text, tags)` rows (`room` "" for a private message, whose
        `seq` is its pid)."""
        by_shard: dict[int, list[tuple[int, str, str]]] = {}
        found = []
        for sid, room, seq, text, tags in rows:
            by_shard.setdefault(shard_of(sid), []).append((sid, fold(text), tags))
            found.append((sid, room, seq))
        conn.executemany("INSERT INTO found VALUES (?, ?, ?)", found)
        for shard, entries in by_shard.items():
            self._make(conn, shard)
            conn.executemany(
                f"INSERT INTO {table(shard)} (rowid, body, tags) VALUES (?, ?, ?)", entries
            )

    def remove(self, conn: sqlite3.Connection, sid: int, text: str, tags: str) -> int:
        """Take a message out of the index (`text` and `tags` as indexed); return its shard."""
        shard = shard_of(sid)
        if shard in self.shards:
            name = table(shard)
            conn.execute(
                f"INSERT INTO {name} ({name}, rowid, body, tags) VALUES ('delete', ?, ?, ?)",
                (sid, fold(text), tags),
            )
        return shard

    def replace(self, conn: sqlite3.Connection, sid: int, old: str, new: str, tags: str) -> None:
        """Index a message's new text (an edit) in place of its old one."""
        shard = self.remove(conn, sid, old, tags)
        self._make(conn, shard)
        conn.execute(
            f"INSERT INTO {table(shard)} (rowid, body, tags) VALUES (?, ?, ?)",
            (sid, fold(new), tags),
        )

    def purge(self, conn: sqlite3.Connection, shards: Iterable[int]) -> None:
        """Merge the shards anew: what was removed from them leaves the file's pages."""
        for shard in shards:
            if shard in self.shards:
                name = table(shard)
                conn.execute(f"INSERT INTO {name} ({name}) VALUES ('optimize')")

    def _make(self, conn: sqlite3.Connection, shard: int) -> None:
        if shard not in self.shards:
            conn.execute(
                f"CREATE VIRTUAL TABLE IF NOT EXISTS {table(shard)} USING fts5(body, tags,"
                " content='', columnsize=0, detail=column,"
                " tokenize='unicode61 remove_diacritics 2')"
            )
            self.shards.add(shard)


def match(query: SearchQuery) -> str:
    """The FTS5 query of a search (every word a prefix; its hidden words as filters)."""
    words = " AND ".join(f'"{word}"*' for word in query.words)
    filters = []
    if query.room:
        filters.append(tag("r", query.room))
    elif query.with_key:
        filters += [tag("p", query.user_key), tag("p", query.with_key)]
    else:
        filters.append(f"({ROOM_TAG} OR {tag('p', query.user_key)})")
    if query.sender_key:
        filters.append(tag("s", query.sender_key))
    return f"{{body}}: ({words}) AND {{tags}}: ({' AND '.join(filters)})"


def candidates(
    conn: sqlite3.Connection, shards: list[int], expression: str, before: int, limit: int
) -> list[tuple[int, str, int]]:
    """Up to `limit` `(sid, room, seq)` of indexed messages matching `expression` with a sid
    below `before` (0: no bound), newest first."""
    found: list[int] = []
    for shard in sorted(shards, reverse=True):
        if before and shard > shard_of(before - 1):
            continue
        found += [
            sid
            for (sid,) in conn.execute(
                f"SELECT rowid FROM {table(shard)} WHERE {table(shard)} MATCH ? AND rowid < ?"
                " ORDER BY rowid DESC LIMIT ?",
                (expression, before or 2**62, limit - len(found)),
            )
        ]
        if len(found) >= limit:
            break
    if not found:
        return []
    marks = ",".join("?" * len(found))
    rows = conn.execute(f"SELECT sid, room, seq FROM found WHERE sid IN ({marks})", found)
    where = {sid: (room, seq) for sid, room, seq in rows}
    return [(sid, *where[sid]) for sid in found if sid in where]
