"""Bringing what Redis holds to the current schema, once per Redis, at a server's start.

Schema 2 (`keys.SCHEMA`; absent means 1) compares names with Persian and Arabic folding
(`tuichat.chat.names.FOLD`), so every comparison key changes where a name has a folded
letter or digit, and rooms get comparison keys of their own:

- registrations, resume tokens, read markers (the user's, and everyone's of a private
  conversation with them), private message streams and conversations move to the new keys
  (`tuichat.server.rekey` decides what two entries that now clash become);
- each room with stored messages claims its comparison key (`keys.ROOM_KEYS`); of rooms
  whose names look alike, the one whose oldest kept message is the oldest holds it, the
  others are listed in `keys.UNKEYED_ROOMS` and keep their names.

Redis keeps no names with the registrations, only their keys, so the new keys come from the
old ones (`rekey`). Redis keeps no registration times either: of two registrations that now
clash, the one registered before the other's last private message number (its `#` mark)
is taken as the earlier; on a tie, the one whose key comes first.

Two servers may start at once: the one that sets `keys.MIGRATING` (SET NX, expiring, and
renewed while it works) migrates, the others wait until `keys.SCHEMA` says it is done (or
the holder died, its lock expired, and one of them takes over: every step can be done
again).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from typing import Any

import msgpack

from tuichat.chat.names import rekey, room_key
from tuichat.server.broker.base import BrokerRefused
from tuichat.server.broker.redis import keys
from tuichat.server.broker.redis.link import RedisLink
from tuichat.server.ownership import since_of
from tuichat.server.rekey import STRANDED, Registration, plan, split_user_key

log = logging.getLogger("tuichat.server")

SCHEMA_VERSION = 2
LOCK_MS = 60_000
"""How long the migration lock holds unless renewed (a server that died lets go by then)."""
RENEW_EVERY = 10.0
"""Seconds between two renewals of the lock while migrating."""
WAIT_STEP = 0.05
"""Seconds between two looks, while another server migrates."""
SCAN_COUNT = 1000
BATCH = 500
"""Commands per round trip."""
ENTRIES = 1000
"""Stream entries read at a time."""

OWNERS = """
local identities, tokens, done = KEYS[1], KEYS[2], KEYS[3]
local at = 3
for i = 1, tonumber(ARGV[2]) do
  redis.call('HSET', identities, ARGV[at], ARGV[at + 1])
  at = at + 2
end
local gone = tonumber(ARGV[at])
at = at + 1
for i = 1, gone do
  redis.call('HDEL', identities, ARGV[at])
  at = at + 1
end
while at < #ARGV do
  local token = redis.call('HGET', tokens, ARGV[at])
  if token then
    redis.call('HDEL', tokens, ARGV[at])
    redis.call('HSET', tokens, ARGV[at + 1], token)
  end
  at = at + 2
end
redis.call('SADD', done, ARGV[1])
return 1
"""
"""The registrations as they are to be (ARGV: the step's marker, how many to set and their
keys and owners, how many to drop and their keys, then old and new user keys in order: their
resume tokens move), and the step marked done, at once."""

MOVE_READS = """
local from, from_order, to, to_order, done = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
for at = 2, #ARGV, 2 do
  local field, target = ARGV[at], ARGV[at + 1]
  local value = redis.call('HGET', from, field)
  if value then
    local score = redis.call('ZSCORE', from_order, field)
    redis.call('HDEL', from, field)
    redis.call('ZREM', from_order, field)
    local there = redis.call('HGET', to, target)
    if not there or cmsgpack.unpack(there)[4] < cmsgpack.unpack(value)[4] then
      redis.call('HSET', to, target, value)
      redis.call('ZADD', to_order, score or cmsgpack.unpack(value)[4], target)
    end
  end
end
if from ~= to and redis.call('HLEN', from) == 0 then
  redis.call('DEL', from, from_order)
end
redis.call('SADD', done, ARGV[1])
return 1
"""
"""Move read markers (ARGV: the step's marker, then pairs of a field of hash KEYS[1] and its
field in hash KEYS[3]; their orders are KEYS[2] and KEYS[4]): of two that meet, the one moved
later stays. Marks the step done (KEYS[5]) at once."""

REBUILT = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('RENAME', KEYS[1], KEYS[2])
else
  redis.call('DEL', KEYS[2])
end
for at = 4, #KEYS do
  redis.call('DEL', KEYS[at])
end
redis.call('SADD', KEYS[3], ARGV[1])
return 1
"""
"""A stream rebuilt (KEYS[1]) takes the place of KEYS[2]; its other sources (KEYS[4] on) go;
the step is marked done (KEYS[3]), at once."""

RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
"""Let go of the migration lock if it is still ours."""


async def migrate(link: RedisLink, server_id: str) -> None:
    """Bring Redis to `SCHEMA_VERSION` (or wait while another server does)."""
    redis = link.redis
    announced = False
    while True:
        version = int(await redis.get(keys.SCHEMA) or 1)
        if version > SCHEMA_VERSION:
            raise BrokerRefused(
                f"this Redis holds schema {version}, written by a newer tuichat (this one knows "
                f"up to {SCHEMA_VERSION}); start the newer version"
            )
        if version == SCHEMA_VERSION:
            return
        if await redis.set(keys.MIGRATING, server_id, nx=True, px=LOCK_MS):
            break
        if not announced:
            log.info(
                "redis: another server is bringing Redis to schema %d; waiting", SCHEMA_VERSION
            )
            announced = True
        await asyncio.sleep(WAIT_STEP)
    renewing = asyncio.get_running_loop().create_task(_renew(link, server_id))
    try:
        if int(await redis.get(keys.SCHEMA) or 1) < SCHEMA_VERSION:  # (unless done meanwhile)
            log.info(
                "redis: bringing Redis to schema %d (names folded for Persian)", SCHEMA_VERSION
            )
            await fold_persian(link)
            await redis.set(keys.SCHEMA, SCHEMA_VERSION)
            await redis.delete(keys.MIGRATION_PLAN)
            await redis.delete(keys.MIGRATION_DONE)
            log.info("redis: Redis is at schema %d", SCHEMA_VERSION)
    finally:
        renewing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await renewing
        await link.run_script(RELEASE, [keys.MIGRATING], [server_id])


async def _renew(link: RedisLink, server_id: str) -> None:
    while True:
        await asyncio.sleep(RENEW_EVERY)
        with contextlib.suppress(Exception):
            if (await link.redis.get(keys.MIGRATING) or b"").decode() == server_id:
                await link.redis.pexpire(keys.MIGRATING, LOCK_MS)


async def fold_persian(link: RedisLink) -> None:
    """Schema 1 → 2 (see the module docstring). What moves where is decided once and kept in
    Redis (`keys.MIGRATION_PLAN`), and each step is marked done (`keys.MIGRATION_DONE`) in
    the same atomic step as its last write: a server that takes over from one that died
    carries on where it stopped, and does nothing twice."""
    redis = link.redis
    reads = [k async for k in _scan(link, f"{keys.GLOBAL}reads:*")]
    streams = [k async for k in _scan(link, f"{keys.GLOBAL}private:*")]
    conversations = [k async for k in _scan(link, f"{keys.GLOBAL}conversation:*")]
    pairs = {name: _pair(name) for name in conversations}
    saved = await redis.get(keys.MIGRATION_PLAN)
    if saved is None:
        moves, final = await _decide(link, reads, streams, pairs)
        packed = msgpack.packb({"moves": list(moves.items()), "identities": final})
        await redis.set(keys.MIGRATION_PLAN, packed)
    else:
        unpacked = msgpack.unpackb(saved)
        moves, final = dict(unpacked["moves"]), dict(unpacked["identities"])
    done = {marker.decode() for marker in await redis.smembers(keys.MIGRATION_DONE)}
    if "owners" not in done:
        identities = _decoded(await redis.hgetall(keys.IDENTITIES))
        changed = [x for k, v in final.items() if identities.get(k) != v for x in (k, v)]
        gone = [k for k in identities if k not in final]
        await link.run_script(
            OWNERS, [keys.IDENTITIES, keys.TOKENS, keys.MIGRATION_DONE],
            ["owners", len(changed) // 2, *changed, len(gone), *gone,
             *(x for move in moves.items() for x in move)],
        )  # fmt: skip
    if moves:
        await _move_reads(link, reads, moves, done)
        moved_streams: dict[str, list[str]] = {}
        for name in streams:
            user = name.removeprefix(f"{keys.GLOBAL}private:")
            moved_streams.setdefault(keys.private_log(moves.get(user, user)), []).append(name)
        partners: set[str] = set()
        for name, pair in pairs.items():
            if pair is None:
                continue
            first, second = pair
            if first in moves or second in moves:
                partners.update(pair)
                target = keys.conversation_log(moves.get(first, first), moves.get(second, second))
                moved_streams.setdefault(target, []).append(name)
        touched = {keys.private_log(user) for user in partners | set(moves)}
        for target in sorted(moved_streams, key=lambda target: STRANDED not in target):
            sources = moved_streams[target]
            if f"stream:{target}" in done:
                continue
            if target in touched or any(source != target for source in sources):
                await _rebuild(link, target, sources, moves)
        await _move_retries(link, moves)
    await _room_keys(link)


async def _decide(
    link: RedisLink, reads: list[str], streams: list[str], pairs: dict[str, tuple[str, str] | None]
) -> tuple[dict[str, str], dict[str, str]]:
    """What moves where (old user key → new, what is kept apart first), and the registrations
    as they are to be (new key → owner)."""
    redis = link.redis
    identities = _decoded(await redis.hgetall(keys.IDENTITIES))
    tokens = _decoded(await redis.hgetall(keys.TOKENS))
    by_owner: dict[str, list[str]] = {}
    for key, owner in identities.items():
        by_owner.setdefault(owner, []).append(key)
    registrations = [
        Registration(
            min(olds), owner, sorted(olds), tuple(dict.fromkeys(rekey(k) for k in sorted(olds))),
            (since_of(owner), min(olds)),
        )
        for owner, olds in by_owner.items()
    ]  # fmt: skip
    users: set[str] = set(identities) | set(tokens)
    users.update(split_user_key(name.removeprefix(f"{keys.GLOBAL}reads:"))[0] for name in reads)
    users.update(name.removeprefix(f"{keys.GLOBAL}private:") for name in streams)
    for pair in pairs.values():
        if pair is not None:
            users.update(pair)
    decided = plan(registrations, {user: rekey(user) for user in users})
    moves = dict(sorted(decided.moves.items(), key=lambda move: not move[1].startswith(STRANDED)))
    # (what is kept apart first: its key may be where another's moves to)
    return moves, {key: registration.owner for key, registration in decided.identities.items()}


async def _move_reads(
    link: RedisLink, reads: list[str], moves: dict[str, str], done: set[str]
) -> None:
    """Move the read markers of those who move, and everyone's markers of a private
    conversation with one of them (of two that meet, the one moved later stays)."""
    prefix = f"{keys.GLOBAL}reads:"
    order = list(moves)
    moving = sorted(
        (name for name in reads if split_user_key(name.removeprefix(prefix))[0] in moves),
        key=lambda name: order.index(split_user_key(name.removeprefix(prefix))[0]),
    )  # in the order of `moves`: what is kept apart first
    for name in moving:  # the hash of a user who moves goes to their new key
        if f"reads:{name}" in done:
            continue
        key, rest = split_user_key(name.removeprefix(prefix))
        user, to_user = key + rest, moves[key] + rest
        fields = [f.decode() for f in await link.redis.hkeys(name)]
        await link.run_script(
            MOVE_READS,
            [name, keys.read_order(user), keys.reads_key(to_user), keys.read_order(to_user),
             keys.MIGRATION_DONE],
            [f"reads:{name}", *(x for field in fields for x in (field, field))],
        )  # fmt: skip
    for name in [k async for k in _scan(link, f"{prefix}*")]:
        if f"fields:{name}" in done:
            continue
        user = name.removeprefix(prefix)
        fields = [f.decode() for f in await link.redis.hkeys(name)]
        moved = [
            (field, "@" + moves[field[1:]])
            for field in fields
            if field.startswith("@") and field[1:] in moves
        ]
        moved.sort(key=lambda pair: not pair[1][1:].startswith(STRANDED))
        if moved:
            await link.run_script(
                MOVE_READS,
                [name, keys.read_order(user), name, keys.read_order(user), keys.MIGRATION_DONE],
                [f"fields:{name}", *(x for pair in moved for x in pair)],
            )


async def _rebuild(link: RedisLink, target: str, sources: list[str], moves: dict[str, str]) -> None:
    """Stream `target` made of the entries of `sources` (a stream of private messages: ids
    `<pid>-0`), their parties' keys moved; the sources but `target` are dropped. Written
    to a new key and renamed over `target`, so that no entry is lost on the way."""
    redis = link.redis
    entries: dict[bytes, dict[bytes, bytes]] = {}
    for source in sources:
        start = "-"
        while True:
            chunk = await redis.xrange(source, start, "+", count=ENTRIES)
            for entry_id, fields in chunk:
                entries[entry_id] = fields
            if len(chunk) < ENTRIES:
                break
            start = "(" + chunk[-1][0].decode()
    building = target + ":rebuilding"
    await redis.delete(building)
    ordered = sorted(entries.items(), key=lambda item: int(item[0].split(b"-")[0]))
    for at in range(0, len(ordered), BATCH):
        async with redis.pipeline(transaction=False) as pipe:
            for entry_id, fields in ordered[at : at + BATCH]:
                moved = dict(fields)
                for party in (b"fk", b"tk"):
                    key = fields.get(party, b"").decode()
                    moved[party] = moves.get(key, key).encode()
                pipe.xadd(building, moved, id=entry_id)
            await pipe.execute()
    others = [source for source in sources if source != target]
    await link.run_script(  # (at once: the stream in its place, its sources gone, step done)
        REBUILT, [building, target, keys.MIGRATION_DONE, *others], [f"stream:{target}"]
    )


async def _move_retries(link: RedisLink, moves: dict[str, str]) -> None:
    """The client ids of recent sends (kept a day) of the users who move go with them, so that
    a retry across the upgrade is still recognised (those kept apart are left to expire)."""
    moving = {old: new for old, new in moves.items() if not new.startswith(STRANDED)}
    if not moving:
        return
    redis = link.redis
    renames: list[tuple[str, str]] = []
    for pattern, marker in (
        (f"{keys.PREFIX}{{r:*}}:id:*", "}:id:"), (f"{keys.GLOBAL}private-id:*", "private-id:"),
    ):  # fmt: skip
        async for name in _scan(link, pattern):
            head, _, rest = name.partition(marker)
            for old, new in moving.items():  # (a key may hold a `:`: match the known ones)
                if rest.startswith(old + ":"):
                    renames.append((name, f"{head}{marker}{new}{rest[len(old) :]}"))
                    break
    for name, renamed in renames:  # (one by one: on a Cluster, each in its room's slot)
        with contextlib.suppress(Exception):  # (expired meanwhile)
            await redis.rename(name, renamed)


async def _room_keys(link: RedisLink) -> None:
    """Each room with stored messages claims its comparison key; of look-alikes, the one with
    the oldest kept message holds it."""
    redis = link.redis
    head, tail = f"{keys.PREFIX}{{r:", "}:seq"
    rooms = sorted(
        {
            room
            async for name in _scan(link, f"{head}*{tail}")
            if "}" not in (room := name[len(head) : -len(tail)]) and room.startswith("#")
        }
    )
    firsts: dict[str, float] = {}
    for at in range(0, len(rooms), BATCH):
        batch = rooms[at : at + BATCH]
        async with redis.pipeline(transaction=False) as pipe:
            for room in batch:
                pipe.xrange(keys.room_key(room, "log"), "-", "+", count=1)
            answers = await pipe.execute()
        for room, entries in zip(batch, answers, strict=True):
            firsts[room] = int(entries[0][1][b"ts"]) if entries else float("inf")
    held = _decoded(await redis.hgetall(keys.ROOM_KEYS))
    holders = dict(held)
    unkeyed: list[str] = []
    for room in sorted(rooms, key=lambda r: (firsts[r], r)):
        key = room_key(room)
        holder = holders.setdefault(key, room)
        if holder != room:
            unkeyed.append(room)
            log.warning(
                "room %s keeps its name, but joins of names that look like it go to %s, which "
                "is older (the comparison of room names folds Persian and Arabic letters)",
                room,
                holder,
            )
    claims = {key: room for key, room in holders.items() if held.get(key) != room}
    async with redis.pipeline(transaction=False) as pipe:
        for key, room in claims.items():
            pipe.hsetnx(keys.ROOM_KEYS, key, room)
        if unkeyed:
            pipe.sadd(keys.UNKEYED_ROOMS, *unkeyed)
        await pipe.execute()


async def _scan(link: RedisLink, pattern: str) -> Any:
    """The names of the keys matching `pattern` (every node of a Cluster), as text."""
    async for name in link.redis.scan_iter(match=pattern, count=SCAN_COUNT):
        yield name.decode() if isinstance(name, bytes) else str(name)


def _pair(name: str) -> tuple[str, str] | None:
    """The two user keys of a conversation's stream (`keys.conversation_log`)."""
    rest = name.removeprefix(f"{keys.GLOBAL}conversation:")
    size, _, keyed = rest.partition(":")
    if not size.isdigit() or keyed[int(size) : int(size) + 1] != ":":
        return None
    return keyed[: int(size)], keyed[int(size) + 1 :]


def _decoded(mapping: dict[bytes, bytes]) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in mapping.items()}


def unkeyed(names: Iterable[bytes]) -> frozenset[str]:
    """The members of `keys.UNKEYED_ROOMS` as text."""
    return frozenset(name.decode() for name in names)
