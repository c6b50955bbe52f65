"""Search in Redis mode: the stored history read back and matched on the server that asks.

Redis holds no index of words (RediSearch is not part of Redis): a search reads the history
each room keeps (`--redis-history` messages) and that of the user's private conversations,
and matches every text with the same folding as the SQLite index
(`tuichat.chat.search.holds`). Every server reads the same Redis, so a search finds the same
messages whichever server it is made on, messages stored by any of them.

It goes source by source — the rooms the user may read, by name, then their private
conversations — newest first within each, so hits come room by room rather than newest first
across rooms. One request looks through at most `SCAN_LIMIT` entries; its `next` then says
where it stopped (a source and a seq), so paging on always gets further and reaches every
message, however many there are.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from tuichat.chat.search import SearchQuery, holds
from tuichat.protocol import SearchHit
from tuichat.server.broker.base import Sees
from tuichat.server.broker.redis import keys
from tuichat.server.broker.redis.entries import hidden_from, is_verb, number
from tuichat.server.broker.redis.link import RedisLink

CHUNK = 1000
"""Entries read from a stream at a time."""
SCAN_LIMIT = 20_000
"""Entries one search looks through at most (matched on the event loop: about 10 µs each)."""
PRIVATE = "@"
"""The source of the user's private conversations (after every room: `#` sorts first)."""


@dataclass(slots=True)
class _Scan:
    hits: list[SearchHit]
    below: int
    """The lowest seq (or pid) looked at: the next page of this source goes on below it."""
    done: bool
    """Nothing older is left in this source."""


def _where(cursor: str) -> tuple[str, int]:
    """The source and the seq a cursor goes on from (`("", 0)`: from the start)."""
    try:
        source, below = json.loads(cursor)
    except (ValueError, TypeError):
        return "", 0
    if type(source) is not str or type(below) is not int:
        return "", 0
    return source, below


async def search_redis(
    link: RedisLink, query: SearchQuery, sees: Sees
) -> tuple[list[SearchHit], str]:
    """Run `query` as `Broker.search` says (see the module for how)."""
    if query.room:
        sources = [query.room]
    elif query.with_key:
        sources = [PRIVATE]
    else:
        rooms = {r.decode() for r in await link.redis.hvals(keys.ROOM_KEYS)}
        rooms |= {r.decode() for r in await link.redis.smembers(keys.UNKEYED_ROOMS)}
        sources = [*sorted(r for r in rooms if sees(r)), PRIVATE]
    start, below = _where(query.before)
    budget = [SCAN_LIMIT]
    hits: list[SearchHit] = []
    for source in sources:
        if source < start:
            continue
        top = below if source == start else 0
        want = query.limit + 1 - len(hits)
        if source == PRIVATE:
            scan = await _private_hits(link, query, top, want, budget)
        else:
            scan = await _room_hits(link, source, query, top, want, budget)
        hits += scan.hits
        if len(hits) > query.limit:  # a full page: the next one goes on below its last hit
            page = hits[: query.limit]
            last = page[-1]
            return page, json.dumps([PRIVATE if last.room.startswith("@") else last.room,
                                     last.seq])  # fmt: skip
        if not scan.done:  # out of budget: the next page goes on from here
            return hits, json.dumps([source, scan.below])
    return hits, ""


async def _room_hits(
    link: RedisLink, room: str, query: SearchQuery, top: int, want: int, budget: list[int]
) -> _Scan:
    """Up to `want` hits of one room below seq `top` (0: from the newest), newest first."""
    log_key, texts = keys.room_key(room, "log"), keys.room_key(room, "texts")
    hits: list[SearchHit] = []
    start = f"({top}-0" if top else "+"
    below = top
    while len(hits) < want:
        if budget[0] <= 0:
            return _Scan(hits, below, False)
        count = min(CHUNK, budget[0])
        entries = await link.redis.xrevrange(log_key, start, "-", count=count)
        budget[0] -= len(entries)
        seqs = [number(entry_id) for entry_id, _ in entries]
        kept = await link.redis.hmget(texts, seqs) if seqs else []
        for (_, fields), seq, text in zip(entries, seqs, kept, strict=True):
            below = seq
            raw = text if text is not None else fields.get(b"t", b"")
            if is_verb(fields) or not raw:
                continue
            if query.sender_key and fields[b"k"].decode() != query.sender_key:
                continue
            body = raw.decode()
            if holds(body, query.words):
                sender, action = fields[b"s"].decode(), fields[b"a"] == b"1"
                hits.append(SearchHit(room, seq, sender, body, int(fields[b"ts"]), action))
                if len(hits) >= want:
                    return _Scan(hits, below, seq == 1)
        if len(entries) < count:
            return _Scan(hits, below, True)
        start = f"({seqs[-1]}-0"
    return _Scan(hits, below, False)


async def _private_hits(
    link: RedisLink, query: SearchQuery, top: int, want: int, budget: list[int]
) -> _Scan:
    """Up to `want` hits of the user's private conversations (or of the one with
    `query.with_key`) below pid `top`, newest first (none an earlier holder of the name had)."""
    user = query.user_key
    stream = (
        keys.conversation_log(user, query.with_key) if query.with_key else keys.private_log(user)
    )
    hits: list[SearchHit] = []
    start = f"({top}-0" if top else "+"
    below = top
    while len(hits) < want:
        if budget[0] <= 0:
            return _Scan(hits, below, False)
        count = min(CHUNK, budget[0])
        entries = await link.redis.xrevrange(stream, start, "-", count=count)
        budget[0] -= len(entries)
        for entry_id, fields in entries:
            pid = below = number(entry_id)
            if pid <= query.private_since:
                return _Scan(hits, below, True)  # older ones were an earlier holder's
            sender_key = fields[b"fk"].decode()
            if hidden_from(fields, user):
                continue
            if query.sender_key and sender_key != query.sender_key:
                continue
            text = fields[b"t"].decode()
            if holds(text, query.words):
                other = (fields[b"to"] if sender_key == user else fields[b"f"]).decode()
                sender, action = fields[b"f"].decode(), fields[b"a"] == b"1"
                hits.append(SearchHit("@" + other, pid, sender, text, int(fields[b"ts"]), action))
                if len(hits) >= want:
                    return _Scan(hits, below, False)
        if len(entries) < count:
            return _Scan(hits, below, True)
        start = f"({below}-0"
    return _Scan(hits, below, False)
