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
the holder died, its lock expired, and one of them takes over: it carries on where the
other stopped).

A holder that stalls past its lock (a paused process, a lost network) may wake up after
another server took over; it must then write nothing. Every write of the migration is a
Lua script that checks first that the lock is still this server's (`GUARD`), and a step's
script also that the step is not done yet (its marker in `keys.MIGRATION_DONE`, read in the
script): a server that lost the lock hears `LOST`, stops (`LostLock`) and waits for the
holder to finish. On a Redis Cluster a script touches one hash slot: the lock, the plan, the
markers and all the migration moves of the whole chat carry `{g}`, so each script checks the
lock itself. The retry ids of room messages live in their rooms' slots, where the lock is
out of reach: there each holder's fencing token (`MIGRATION_FENCE`, counted up by every
server that takes the lock) is kept in the room's slot by the holder's writes, and a write
with an older token than the one kept is refused (`ROOM_RETRIES`).
"""

from __future__ import annotations

import asyncio
import heapq
import logging
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import msgpack

from tuichat.chat.names import rekey, room_key
from tuichat.server.broker.base import BrokerRefused
from tuichat.server.broker.redis import keys
from tuichat.server.broker.redis.link import RedisLink
from tuichat.server.ownership import since_of
from tuichat.server.rekey import STRANDED, Registration, plan, split_user_key

log = logging.getLogger("tuichat.server")

T = TypeVar("T")

SCHEMA_VERSION = 2
LOCK_MS = 60_000
"""How long the migration lock holds unless renewed (a server that died lets go by then)."""
RENEW_EVERY = 10.0
"""Seconds between two renewals of the lock while migrating."""
WAIT_STEP = 0.05
"""Seconds between two looks, while another server migrates."""
SCAN_COUNT = 1000
BATCH = 500
"""Commands, entries or keys per round trip; items of Python work between two looks at the
event loop."""
ENTRIES = 1000
"""Stream entries read at a time."""
MIGRATION_FENCE = keys.GLOBAL + "migration-fence"
"""The fencing token of the latest holder of `keys.MIGRATING` (counted up at each take, never
dropped: tokens only grow, whatever the migration)."""
ROOM_FENCE = "}:migration-fence"
"""After a room's `{r:<room>` tag: the highest fencing token that wrote in its slot."""
ROOM_FENCE_MS = 2 * 86_400_000
"""How long a room keeps that token: longer than the retry ids it guards (kept a day)."""

LOST = -1
"""A migration script's answer when the lock is not ours any more: it wrote nothing."""

GUARD = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return -1
end
if ARGV[2] ~= '' and redis.call('SISMEMBER', KEYS[2], ARGV[2]) == 1 then
  return 0
end
"""
"""The head of every migration script of the `{g}` slot (KEYS[1] the lock, KEYS[2] the steps
done; ARGV[1] this server's id, ARGV[2] the step's marker or ""): nothing is written unless the
lock is ours (else `LOST`) and the step not done yet (else 0). Their own keys and arguments
start at KEYS[3] and ARGV[3]; they answer 1 once done."""

ACQUIRE = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return redis.call('INCR', KEYS[2])
end
return 0
"""
"""Take the migration lock (KEYS[1]) if nobody holds it, and answer this holder's fencing token
(KEYS[2] counted up); 0 if another holds it."""

RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
"""Extend the migration lock only if it is still ours (1), else leave it be (0)."""

RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
"""Let go of the migration lock if it is still ours."""

SAVE_PLAN = (
    GUARD
    + """
redis.call('SET', KEYS[3], ARGV[3])
return 1
"""
)
"""Keep the plan (KEYS[3]) of the migration under way."""

OWNERS = (
    GUARD
    + """
local identities, tokens = KEYS[3], KEYS[4]
local at = 4
for i = 1, tonumber(ARGV[3]) do
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
redis.call('SADD', KEYS[2], ARGV[2])
return 1
"""
)
"""The registrations (KEYS[3]) as they are to be (ARGV: how many to set and their keys and
owners, how many to drop and their keys, then old and new user keys in order: their resume
tokens, KEYS[4], move), and the step marked done, at once."""

MOVE_READS = (
    GUARD
    + """
local from, from_order, to, to_order = KEYS[3], KEYS[4], KEYS[5], KEYS[6]
for at = 3, #ARGV, 2 do
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
redis.call('SADD', KEYS[2], ARGV[2])
return 1
"""
)
"""Move read markers (ARGV: pairs of a field of hash KEYS[3] and its field in hash KEYS[5];
their orders are KEYS[4] and KEYS[6]): of two that meet, the one moved later stays. Marks the
step done at once."""

APPEND = (
    GUARD
    + """
local building = KEYS[3]
if ARGV[3] == '1' then
  redis.call('DEL', building)
end
local at = 4
while at <= #ARGV do
  local count = tonumber(ARGV[at + 1])
  redis.call('XADD', building, ARGV[at], unpack(ARGV, at + 2, at + 1 + 2 * count))
  at = at + 2 + 2 * count
end
return 1
"""
)
"""Add entries to a stream being rebuilt (KEYS[3]; ARGV: '1' to start it afresh, dropping what a
server that died left of it, then each entry's id, its number of fields, and its fields and
values)."""

REBUILT = (
    GUARD
    + """
local building, target, count = KEYS[3], KEYS[4], tonumber(ARGV[3])
if count > 0 then
  if redis.call('XLEN', building) ~= count then
    return redis.error_reply('the rebuilt stream ' .. building .. ' lacks entries; left as it was')
  end
  redis.call('RENAME', building, target)
else
  redis.call('DEL', building)
end
for at = 5, #KEYS do
  redis.call('DEL', KEYS[at])
end
redis.call('SADD', KEYS[2], ARGV[2])
return 1
"""
)
"""A stream rebuilt (KEYS[3], of ARGV[3] entries) takes the place of KEYS[4]; its other sources
(KEYS[5] on) go; the step is marked done, at once. Nothing rebuilt (no entries in the sources)
leaves the target as it is: it is only ever replaced by a complete rebuild."""

RETRIES = (
    GUARD
    + """
for at = 3, #KEYS, 2 do
  if redis.call('EXISTS', KEYS[at]) == 1 then
    redis.call('RENAME', KEYS[at], KEYS[at + 1])
  end
end
return 1
"""
)
"""Move the retry ids of private messages (KEYS: pairs of the old key and the new one)."""

ROOM_RETRIES = """
local fence = tonumber(redis.call('GET', KEYS[1]) or '0')
if fence > tonumber(ARGV[1]) then
  return -1
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
for at = 2, #KEYS, 2 do
  if redis.call('EXISTS', KEYS[at]) == 1 then
    redis.call('RENAME', KEYS[at], KEYS[at + 1])
  end
end
return 1
"""
"""Move the retry ids of one room's messages (KEYS: the room's fence, then pairs of the old key
and the new one; ARGV: the holder's fencing token and how long the fence keeps it), unless a
later holder wrote in the room's slot already (`LOST`). The lock is in another slot: the token
stands for it. A holder that lost the lock may still write in a room no later holder has
written in yet; the move it makes is the same a later holder would make (it finds its keys gone
and leaves them), so none is made twice or undone."""

CLAIM_KEYS = (
    GUARD
    + """
local at = 4
for i = 1, tonumber(ARGV[3]) do
  redis.call('HSETNX', KEYS[3], ARGV[at], ARGV[at + 1])
  at = at + 2
end
if at <= #ARGV then
  redis.call('SADD', KEYS[4], unpack(ARGV, at, #ARGV))
end
return 1
"""
)
"""Rooms claim their comparison keys (KEYS[3]; ARGV: how many, then pairs of a key and its
room), unless claimed already; those that do not hold theirs are listed (KEYS[4]; the rest of
ARGV)."""

FINISH = (
    GUARD
    + """
redis.call('SET', KEYS[3], ARGV[3])
redis.call('DEL', KEYS[4], KEYS[2])
return 1
"""
)
"""The schema (KEYS[3]) is ARGV[3]: the plan (KEYS[4]) and the steps done go."""


class LostLock(Exception):
    """Another server holds the migration lock now (or it expired): stop, let the holder
    finish."""


@dataclass(slots=True)
class Holder:
    """This server as the holder of the migration lock."""

    id: str
    """The lock's value."""
    token: int
    """Higher than the token of any server that held the lock before (`MIGRATION_FENCE`)."""
    lost: bool = False
    """Set once a renewal found the lock not ours any more."""
    over: bool = False
    """Set once this server stops migrating: the renewals stop (see `_renew`)."""


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
        token = int(
            await link.run_script(ACQUIRE, [keys.MIGRATING, MIGRATION_FENCE], [server_id, LOCK_MS])
        )
        if token:
            try:
                await _holding(link, Holder(server_id, token))
            except LostLock:
                log.warning(
                    "redis: this server no longer holds the lock on bringing Redis to schema %d "
                    "(it expired while the server was held up, past %d s): it stops, and waits "
                    "for the server that holds it now",
                    SCHEMA_VERSION,
                    LOCK_MS // 1000,
                )
                announced = True
            continue  # (the schema tells whether it is done)
        if not announced:
            log.info(
                "redis: another server is bringing Redis to schema %d; waiting", SCHEMA_VERSION
            )
            announced = True
        await asyncio.sleep(WAIT_STEP)


async def _holding(link: RedisLink, holder: Holder) -> None:
    """Migrate, holding the lock (renewed meanwhile); let go of it after."""
    redis = link.redis
    if not await renew(link, holder.id):
        raise LostLock
    # (renewed once first: the link knows the script before renewals run beside the
    # migration; a script new to it while it reloads its scripts would break the reload)
    renewing = asyncio.get_running_loop().create_task(_renew(link, holder))
    try:
        if int(await redis.get(keys.SCHEMA) or 1) < SCHEMA_VERSION:  # (unless done meanwhile)
            log.info(
                "redis: bringing Redis to schema %d (names folded for Persian)", SCHEMA_VERSION
            )
            await fold_persian(link, holder)
            await _step(link, holder, FINISH, [keys.SCHEMA, keys.MIGRATION_PLAN], [SCHEMA_VERSION])
            log.info("redis: Redis is at schema %d", SCHEMA_VERSION)
    finally:
        holder.over = True
        renewing.cancel()
        try:
            await asyncio.wait({renewing})  # (not `await renewing`: its cancellation is not ours)
        finally:
            await link.run_script(RELEASE, [keys.MIGRATING], [holder.id])


async def renew(link: RedisLink, server_id: str) -> bool:
    """Extend the migration lock by `LOCK_MS` if it is `server_id`'s (compare and set, in one
    step); whether it was."""
    return bool(await link.run_script(RENEW, [keys.MIGRATING], [server_id, LOCK_MS]))


async def _renew(link: RedisLink, holder: Holder) -> None:
    """Renew the lock every `RENEW_EVERY` seconds until `holder` is `over` (or lost it).

    The task is cancelled once the migration is over, but the cancellation can be lost on the
    way: redis-py sends a command under `asyncio.wait_for`, which on Python 3.11 returns the
    command's result, and drops the cancellation, when both come at once. So the loop also
    stops on `over`: else this task would renew the lock for ever, and the server's start,
    which waits for it, would never end."""
    while not holder.over:
        await asyncio.sleep(RENEW_EVERY)
        try:
            ours = await renew(link, holder.id)
        except Exception:  # (Redis away a moment: the lock holds for a while yet)
            continue
        if not ours:
            holder.lost = True
            log.warning("redis: the migration lock is not this server's any more; not renewed")
            return


async def _step(
    link: RedisLink,
    holder: Holder,
    script: str,
    names: Sequence[str],
    args: Sequence[Any],
    marker: str = "",
) -> bool:
    """Run a migration script of the `{g}` slot (see `GUARD`) on keys `names` with `args`, as
    step `marker` (or none); whether it wrote (False: the step was done already). Raise
    `LostLock` if the lock is not ours."""
    answer = await link.run_script(
        script, [keys.MIGRATING, keys.MIGRATION_DONE, *names], [holder.id, marker, *args]
    )
    if answer == LOST:
        raise LostLock
    return bool(answer)


async def _pause(holder: Holder) -> None:
    """Let the event loop run (the lock's renewal among the rest); stop if the lock is lost."""
    await asyncio.sleep(0)
    if holder.lost:
        raise LostLock


async def _paced(items: Iterable[T], holder: Holder) -> AsyncIterator[T]:
    """`items`, with a `_pause` every `BATCH` of them."""
    for at, item in enumerate(items, 1):
        yield item
        if at % BATCH == 0:
            await _pause(holder)


async def fold_persian(link: RedisLink, holder: Holder) -> None:
    """Schema 1 → 2 (see the module docstring). What moves where is decided once and kept in
    Redis (`keys.MIGRATION_PLAN`), and each step is marked done (`keys.MIGRATION_DONE`) in
    the same atomic step as its last write: a server that takes over from one that died
    carries on where it stopped, and does nothing twice."""
    redis = link.redis
    reads = [k async for k in _scan(link, f"{keys.GLOBAL}reads:*")]
    streams = [k async for k in _scan(link, f"{keys.GLOBAL}private:*")]
    conversations = [k async for k in _scan(link, f"{keys.GLOBAL}conversation:*")]
    pairs = {name: _pair(name) async for name in _paced(conversations, holder)}
    saved = await redis.get(keys.MIGRATION_PLAN)
    if saved is None:
        moves, final = await _decide(link, reads, streams, pairs)
        packed = msgpack.packb({"moves": list(moves.items()), "identities": final})
        await _step(link, holder, SAVE_PLAN, [keys.MIGRATION_PLAN], [packed])
    else:
        unpacked = msgpack.unpackb(saved)
        moves, final = dict(unpacked["moves"]), dict(unpacked["identities"])
    done = {marker.decode() for marker in await redis.smembers(keys.MIGRATION_DONE)}
    # (what was done before this server took the lock: its scripts check again themselves)
    if "owners" not in done:
        identities = _decoded(await redis.hgetall(keys.IDENTITIES))
        changed = [x for k, v in final.items() if identities.get(k) != v for x in (k, v)]
        gone = [k for k in identities if k not in final]
        await _step(
            link, holder, OWNERS, [keys.IDENTITIES, keys.TOKENS],
            [len(changed) // 2, *changed, len(gone), *gone,
             *(x for move in moves.items() for x in move)],
            "owners",
        )  # fmt: skip
    if moves:
        await _move_reads(link, holder, reads, moves, done)
        moved_streams: dict[str, list[str]] = {}
        async for name in _paced(streams, holder):
            user = name.removeprefix(f"{keys.GLOBAL}private:")
            moved_streams.setdefault(keys.private_log(moves.get(user, user)), []).append(name)
        partners: set[str] = set()
        async for name, pair in _paced(pairs.items(), holder):
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
                await _pause(holder)
                continue
            if target in touched or any(source != target for source in sources):
                await _rebuild(link, holder, target, sources, moves)
            else:
                await _pause(holder)
        await _move_retries(link, holder, moves)
    await _room_keys(link, holder)


async def _decide(
    link: RedisLink, reads: list[str], streams: list[str], pairs: dict[str, tuple[str, str] | None]
) -> tuple[dict[str, str], dict[str, str]]:
    """What moves where (old user key → new, what is kept apart first), and the registrations
    as they are to be (new key → owner). (Decided on a thread of its own: it looks at every
    user at once, and the event loop keeps renewing the lock meanwhile.)"""
    redis = link.redis
    identities = _decoded(await redis.hgetall(keys.IDENTITIES))
    tokens = _decoded(await redis.hgetall(keys.TOKENS))
    return await asyncio.to_thread(_decided, identities, tokens, reads, streams, pairs)


def _decided(
    identities: dict[str, str],
    tokens: dict[str, str],
    reads: list[str],
    streams: list[str],
    pairs: dict[str, tuple[str, str] | None],
) -> tuple[dict[str, str], dict[str, str]]:
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
    link: RedisLink, holder: Holder, reads: list[str], moves: dict[str, str], done: set[str]
) -> None:
    """Move the read markers of those who move, and everyone's markers of a private
    conversation with one of them (of two that meet, the one moved later stays)."""
    prefix = f"{keys.GLOBAL}reads:"
    position = {user: at for at, user in enumerate(moves)}
    ranked: list[tuple[int, str]] = []
    async for name in _paced(reads, holder):
        at = position.get(split_user_key(name.removeprefix(prefix))[0])
        if at is not None:
            ranked.append((at, name))
    ranked.sort()  # in the order of `moves`: what is kept apart first
    for _, name in ranked:  # the hash of a user who moves goes to their new key
        if f"reads:{name}" in done:
            continue
        key, rest = split_user_key(name.removeprefix(prefix))
        user, to_user = key + rest, moves[key] + rest
        fields = [f.decode() for f in await link.redis.hkeys(name)]
        await _step(
            link, holder, MOVE_READS,
            [name, keys.read_order(user), keys.reads_key(to_user), keys.read_order(to_user)],
            [x for field in fields for x in (field, field)],
            f"reads:{name}",
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
            await _step(
                link, holder, MOVE_READS,
                [name, keys.read_order(user), name, keys.read_order(user)],
                [x for pair in moved for x in pair],
                f"fields:{name}",
            )  # fmt: skip


async def _rebuild(
    link: RedisLink, holder: Holder, target: str, sources: list[str], moves: dict[str, str]
) -> None:
    """Stream `target` made of the entries of `sources` (a stream of private messages: ids
    `<pid>-0`), their parties' keys moved; the sources but `target` are dropped. Written
    to a new key and renamed over `target`, so that no entry is lost on the way."""
    redis = link.redis
    marker = f"stream:{target}"
    read: list[list[tuple[bytes, dict[bytes, bytes]]]] = []
    for source in sources:
        entries: list[tuple[bytes, dict[bytes, bytes]]] = []
        start = "-"
        while True:
            chunk = await redis.xrange(source, start, "+", count=ENTRIES)
            entries.extend(chunk)
            if len(chunk) < ENTRIES:
                break
            start = "(" + chunk[-1][0].decode()
        read.append(entries)
    building = target + ":rebuilding"
    written, last, fresh = 0, -1, 1  # (the first batch starts `building` afresh)
    batch: list[Any] = []
    for entry_id, fields in heapq.merge(*read, key=lambda entry: _pid(entry[0])):
        pid = _pid(entry_id)
        if pid == last:
            continue  # (one message, in two of the sources)
        last = pid
        moved = dict(fields)
        for party in (b"fk", b"tk"):
            key = fields.get(party, b"").decode()
            moved[party] = moves.get(key, key).encode()
        batch += [entry_id, len(moved), *(x for item in moved.items() for x in item)]
        written += 1
        if written % BATCH == 0:
            if not await _step(link, holder, APPEND, [building], [fresh, *batch], marker):
                return  # (done already)
            fresh, batch = 0, []
    if batch and not await _step(link, holder, APPEND, [building], [fresh, *batch], marker):
        return
    others = [source for source in sources if source != target]
    await _step(  # (at once: the stream in its place, its sources gone, step done)
        link, holder, REBUILT, [building, target, *others], [written], marker
    )


def _pid(entry_id: bytes) -> int:
    return int(entry_id.split(b"-")[0])


async def _move_retries(link: RedisLink, holder: Holder, moves: dict[str, str]) -> None:
    """The client ids of recent sends (kept a day) of the users who move go with them, so that
    a retry across the upgrade is still recognised (those kept apart are left to expire)."""
    moving = {old: new for old, new in moves.items() if not new.startswith(STRANDED)}
    if not moving:
        return
    privates: list[str] = []
    rooms: dict[str, list[str]] = {}
    """A room's `{r:<room>` → its keys to rename, each followed by its new name."""
    for pattern, marker in (
        (f"{keys.PREFIX}{{r:*}}:id:*", "}:id:"), (f"{keys.GLOBAL}private-id:*", "private-id:"),
    ):  # fmt: skip
        async for name in _scan(link, pattern):
            head, _, rest = name.partition(marker)
            old = _moving(rest, moving)
            if old is not None:
                renamed = f"{head}{marker}{moving[old]}{rest[len(old) :]}"
                bucket = privates if marker == "private-id:" else rooms.setdefault(head, [])
                bucket += (name, renamed)
    for at in range(0, len(privates), 2 * BATCH):
        await _step(link, holder, RETRIES, privates[at : at + 2 * BATCH], [])
    for head, names in rooms.items():  # (on a Cluster, each in its room's slot)
        for at in range(0, len(names), 2 * BATCH):
            answer = await link.run_script(
                ROOM_RETRIES,
                [head + ROOM_FENCE, *names[at : at + 2 * BATCH]],
                [holder.token, ROOM_FENCE_MS],
            )
            if answer == LOST:
                raise LostLock


def _moving(rest: str, moving: dict[str, str]) -> str | None:
    """The user key of `moving` that `rest` (`<user key>:<client id>`) starts with, if any (a
    key may hold a `:`: the known ones are matched, the shortest first)."""
    at = rest.find(":")
    while at != -1:
        if rest[:at] in moving:
            return rest[:at]
        at = rest.find(":", at + 1)
    return None


async def _room_keys(link: RedisLink, holder: Holder) -> None:
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
    async for room in _paced(sorted(rooms, key=lambda r: (firsts[r], r)), holder):
        key = room_key(room)
        holder_room = holders.setdefault(key, room)
        if holder_room != room:
            unkeyed.append(room)
            log.warning(
                "room %s keeps its name, but joins of names that look like it go to %s, which "
                "is older (the comparison of room names folds Persian and Arabic letters)",
                room,
                holder_room,
            )
    claims = [(key, room) for key, room in holders.items() if held.get(key) != room]
    for at in range(0, max(len(claims), len(unkeyed)), BATCH):
        some = claims[at : at + BATCH]
        await _step(
            link, holder, CLAIM_KEYS, [keys.ROOM_KEYS, keys.UNKEYED_ROOMS],
            [len(some), *(x for claim in some for x in claim), *unkeyed[at : at + BATCH]],
        )  # fmt: skip


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
