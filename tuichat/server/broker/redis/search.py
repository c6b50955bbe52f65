"""Search in Redis mode: the stored history read back and matched on the server that asks.

Redis holds no index of words (RediSearch is not part of Redis): a search reads the history
each room keeps (`--redis-history` messages, newest first, `CHUNK` at a time) and that of
the user's private conversations, and matches every text with the same folding as the
SQLite index (`tuichat.chat.search.holds`). Every server reads the same Redis, so a search
finds the same messages whichever server it is made on, messages stored by any of them;
its cost grows with the history kept, so one search looks through at most `SCAN_LIMIT`
entries (a page cut short says where to go on from). Rooms the user may not read are
skipped before they are read; a page goes on from its last hit (`cursor_after`).
"""

from __future__ import annotations

from tuichat.chat.search import SearchQuery, cursor_after, holds, newest_first, older_than
from tuichat.protocol import SearchHit
from tuichat.server.broker.base import Sees
from tuichat.server.broker.redis import keys
from tuichat.server.broker.redis.entries import hidden_from, is_verb, number
from tuichat.server.broker.redis.link import RedisLink

CHUNK = 1000
"""Entries read from a stream at a time."""
SCAN_LIMIT = 200_000
"""Entries one search looks through at most."""


async def search_redis(
    link: RedisLink, query: SearchQuery, sees: Sees
) -> tuple[list[SearchHit], str]:
    """Run `query` as `Broker.search` says (see the module for how)."""
    bound = older_than(query.before)
    before = bound[0] + 1 if bound is not None else 0  # (the hits of its ms sorted out below)
    budget = [SCAN_LIMIT]
    hits: list[SearchHit] = []
    if query.room:
        rooms = [query.room]
    elif query.with_key:
        rooms = []
    else:
        rooms = sorted(
            {r.decode() for r in await link.redis.hvals(keys.ROOM_KEYS)}
            | {r.decode() for r in await link.redis.smembers(keys.UNKEYED_ROOMS)}
        )
    for room in rooms:
        if sees(room):
            hits += await _room_hits(link, room, query, before, budget)
    if not query.room:
        hits += await _private_hits(link, query, before, budget)
    hits = [hit for hit in hits if bound is None or newest_first(hit) < bound]
    hits.sort(key=newest_first, reverse=True)
    page = hits[: query.limit]
    more = len(hits) > query.limit or not budget[0]
    return page, cursor_after(page[-1]) if more and page else ""


async def _room_hits(
    link: RedisLink, room: str, query: SearchQuery, before: int, budget: list[int]
) -> list[SearchHit]:
    """The newest `query.limit` hits of one room older than `before` (ms; 0: no bound)."""
    log_key, texts = keys.room_key(room, "log"), keys.room_key(room, "texts")
    hits: list[SearchHit] = []
    top = "+"
    while budget[0] > 0 and len(hits) <= query.limit:
        count = min(CHUNK, budget[0])
        entries = await link.redis.xrevrange(log_key, top, "-", count=count)
        if not entries:
            break
        budget[0] -= len(entries)
        seqs = [number(entry_id) for entry_id, _ in entries]
        kept = await link.redis.hmget(texts, seqs)
        for (_, fields), seq, text in zip(entries, seqs, kept, strict=True):
            raw = text if text is not None else fields.get(b"t", b"")
            ts = int(fields[b"ts"])
            if is_verb(fields) or not raw or (before and ts >= before):
                continue
            if query.sender_key and fields[b"k"].decode() != query.sender_key:
                continue
            body = raw.decode()
            if holds(body, query.words):
                hits.append(SearchHit(room, seq, fields[b"s"].decode(), body, ts,
                                      fields[b"a"] == b"1"))  # fmt: skip
                if len(hits) > query.limit:
                    break
        if len(entries) < count:
            break
        top = f"({seqs[-1]}-0"
    return hits


async def _private_hits(
    link: RedisLink, query: SearchQuery, before: int, budget: list[int]
) -> list[SearchHit]:
    """The newest `query.limit` hits of the user's private conversations (or of the one with
    `query.with_key`)."""
    user = query.user_key
    stream = (
        keys.conversation_log(user, query.with_key) if query.with_key else keys.private_log(user)
    )
    hits: list[SearchHit] = []
    top = "+"
    while budget[0] > 0 and len(hits) <= query.limit:
        count = min(CHUNK, budget[0])
        entries = await link.redis.xrevrange(stream, top, "-", count=count)
        if not entries:
            break
        budget[0] -= len(entries)
        for entry_id, fields in entries:
            ts = int(fields[b"ts"])
            sender_key = fields[b"fk"].decode()
            if hidden_from(fields, user) or (before and ts >= before):
                continue
            if query.sender_key and sender_key != query.sender_key:
                continue
            text = fields[b"t"].decode()
            if holds(text, query.words):
                other = (fields[b"to"] if sender_key == user else fields[b"f"]).decode()
                sender, action = fields[b"f"].decode(), fields[b"a"] == b"1"
                hits.append(SearchHit("@" + other, number(entry_id), sender, text, ts, action))
                if len(hits) > query.limit:
                    break
        if len(entries) < count:
            break
        top = f"({number(entries[-1][0])}-0"
    return hits
