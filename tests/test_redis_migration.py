"""The Redis migration is fenced by its lock (tuichat/server/broker/redis/migrate.py): a server
whose lock expired while it was held up, or was taken by another server, writes nothing more,
and the server holding the lock finishes with nothing lost; a renewal extends only the server's
own lock. On a real redis-server and on a real Redis Cluster (`{g}` keys on one node, rooms on
the others).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator, Sequence
from typing import Any

import msgpack
import pytest
from redis.exceptions import ResponseError

from tests.helpers import TIMEOUT
from tests.redis_cluster import RedisCluster
from tests.redis_kinds import RedisStore, redis_client, redis_config
from tests.test_room_keys import (
    FIRST_KAMRAN,
    MILAD,
    SECOND_KAMRAN,
    Owners,
    check_migrated,
    old_redis,
    write_old_redis,
)
from tuichat.chat.names import rekey
from tuichat.client import SigningKey
from tuichat.server import ChatServer
from tuichat.server.broker.redis import RedisBroker, keys, migrate
from tuichat.server.broker.redis.link import RedisLink
from tuichat.server.rekey import STRANDED

__all__ = ["old_redis"]  # the fixture, for pytest to find

KAMRAN, KEPT_APART, NEW_MILAD = rekey(FIRST_KAMRAN), STRANDED + SECOND_KAMRAN, rekey(MILAD)
FOR_FIRST = (1, "for the first kamran", "bob", KAMRAN)
FOR_SECOND = (2, "for the second kamran", "bob", KEPT_APART)
FROM_MILAD = (3, "from milad", NEW_MILAD, "bob")
STREAMS = {
    keys.private_log(KAMRAN): [FOR_FIRST],
    keys.private_log(KEPT_APART): [FOR_SECOND],
    keys.private_log(NEW_MILAD): [FROM_MILAD],
    keys.private_log("bob"): [FOR_FIRST, FOR_SECOND, FROM_MILAD],
    keys.conversation_log("bob", KAMRAN): [FOR_FIRST],
    keys.conversation_log(KEPT_APART, "bob"): [FOR_SECOND],
    keys.conversation_log(NEW_MILAD, "bob"): [FROM_MILAD],
}
"""Every private message stream once the data of `old_rows` is migrated: (pid, text, sender's
key, target's key) of each entry."""
READS = {
    KAMRAN: {"@bob": ["@bob", 0, 1, 1000, 1000]},
    KEPT_APART: {"@bob": ["@bob", 0, 2, 2600, 2600]},
    "bob": {"@" + NEW_MILAD: ["@" + MILAD, 0, 3, 3100, 3100]},
}
"""Every user's read markers then: conversation → label, epoch, seq, moved at, and its place in
the user's order."""
PRIVATE_RETRY = "pid-1"
"""The client id of milad's private message, remembered for a retry (kept in the `{g}` slot)."""

MIGRATION_KEYS = [
    *(keys.GLOBAL + name for name in ("identities", "tokens", "room-keys", "unkeyed-rooms",
      "schema", "migrat*", "reads:*", "read-order:*", "private:*", "private-id:*",
      "conversation:*")),
    keys.PREFIX + "{r:*}:id:*", keys.PREFIX + "{r:*" + migrate.ROOM_FENCE,
]  # fmt: skip
"""What the migration may write (the patterns of the keys)."""


async def write_old_data(store: RedisStore, owners: Owners) -> None:
    """`old_rows` as schema 1 kept them, with a private message's retry id too."""
    await write_old_redis(store, owners)
    client = await redis_client(store)
    try:
        remembered = msgpack.packb([3, 3000, "bob", "from milad", 0])
        await client.set(keys.private_retry_key(MILAD, PRIVATE_RETRY), remembered, ex=86400)
    finally:
        await client.aclose()


async def snapshot(client: Any) -> dict[bytes, bytes]:
    """Every key the migration may write, with its value (as DUMP serializes it)."""
    found = {name for pattern in MIGRATION_KEYS async for name in client.scan_iter(match=pattern)}
    return {name: await client.dump(name) for name in sorted(found)}


async def check_stored(client: Any) -> None:
    """Every private message and read marker of `old_rows` is where its user finds it, and
    nothing else is left (no stream half rebuilt, no marker under an old key)."""
    streams: dict[str, list[tuple[int, str, str, str]]] = {}
    for pattern in ("private:*", "conversation:*"):
        async for name in client.scan_iter(match=keys.GLOBAL + pattern):
            streams[name.decode()] = [
                (int(entry_id.split(b"-")[0]), *(fields[f].decode() for f in (b"t", b"fk", b"tk")))
                for entry_id, fields in await client.xrange(name)
            ]
    assert streams == STREAMS
    reads: dict[str, dict[str, list[Any]]] = {}
    async for name in client.scan_iter(match=keys.GLOBAL + "reads:*"):
        user = name.decode().removeprefix(keys.GLOBAL + "reads:")
        order = dict(await client.zrange(keys.read_order(user), 0, -1, withscores=True))
        reads[user] = {
            field.decode(): [*msgpack.unpackb(value), order.get(field)]
            for field, value in (await client.hgetall(name)).items()
        }
    assert reads == READS
    orders = {name async for name in client.scan_iter(match=keys.GLOBAL + "read-order:*")}
    assert orders == {keys.read_order(user).encode() for user in READS}
    assert await client.exists(keys.private_retry_key(NEW_MILAD, PRIVATE_RETRY)) == 1
    assert await client.exists(keys.private_retry_key(MILAD, PRIVATE_RETRY)) == 0


class Stall:
    """Holds one server's migration just before its first run of one script, as a server held
    up (paused, cut off) would be, until `go` is set; keeps what that run answered."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, link: RedisLink, script: str) -> None:
        self.reached = asyncio.Event()
        self.go = asyncio.Event()
        self.answers: list[Any] = []
        original = RedisLink.run_script
        stall = self

        async def run_script(self: RedisLink, text: str, names: Sequence[str], args: Any) -> Any:
            if self is not link or text != script or stall.reached.is_set():
                return await original(self, text, names, args)
            stall.reached.set()
            await stall.go.wait()
            answer = await original(self, text, names, args)
            stall.answers.append(answer)
            return answer

        monkeypatch.setattr(RedisLink, "run_script", run_script)

    async def wait(self, starting: asyncio.Task[None]) -> None:
        """Until the server is held there (it fails at once if it starts without that run)."""
        held = asyncio.ensure_future(self.reached.wait())
        await asyncio.wait({held, starting}, timeout=TIMEOUT, return_when=asyncio.FIRST_COMPLETED)
        held.cancel()
        if not self.reached.is_set() and starting.done():
            starting.result()  # (its failure, if it failed)
        assert self.reached.is_set(), "the migration never got to that script"


class Heard(logging.Handler):
    """Set once the server logs a message with all of `words`."""

    def __init__(self, *words: str) -> None:
        super().__init__()
        self.words = words
        self.event = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if all(word in record.getMessage() for word in self.words):
            self.event.set()

    async def wait(self) -> None:
        await asyncio.wait_for(self.event.wait(), TIMEOUT)


@contextlib.contextmanager
def hearing(*words: str) -> Iterator[Heard]:
    """Listen to the server's log for a message with all of `words`."""
    heard = Heard(*words)
    logger = logging.getLogger("tuichat.server")
    logger.addHandler(heard)
    try:
        yield heard
    finally:
        logger.removeHandler(heard)


def link_of(server: ChatServer) -> RedisLink:
    assert isinstance(server.broker, RedisBroker)
    return server.broker.link


async def stop(server: ChatServer, starting: asyncio.Task[None]) -> None:
    """Stop a server whose start may have failed (or still be held)."""
    if not starting.done():
        starting.cancel()
    with contextlib.suppress(BaseException):
        await starting
    if starting.cancelled() or starting.exception() is not None:
        await server.broker.stop()  # (its connection to Redis)
    else:
        await server.stop()


@pytest.mark.parametrize(
    "script",
    [
        pytest.param(migrate.SAVE_PLAN, id="plan"),
        pytest.param(migrate.OWNERS, id="owners"),
        pytest.param(migrate.MOVE_READS, id="reads"),
        pytest.param(migrate.APPEND, id="append"),
        pytest.param(migrate.REBUILT, id="rebuilt"),
        pytest.param(migrate.RETRIES, id="private-retries"),
        pytest.param(migrate.ROOM_RETRIES, id="room-retries"),
        pytest.param(migrate.CLAIM_KEYS, id="room-keys"),
        pytest.param(migrate.FINISH, id="finish"),
    ],
)
async def test_a_server_held_up_past_its_lock_writes_nothing_after_the_next_one_took_over(
    old_redis: RedisStore, monkeypatch: pytest.MonkeyPatch, script: str
) -> None:
    owners = Owners(SigningKey.generate(), SigningKey.generate(), SigningKey.generate())
    await write_old_data(old_redis, owners)
    first, second = (
        ChatServer(redis_config(old_redis, "a")),
        ChatServer(redis_config(old_redis, "b")),
    )
    stall = Stall(monkeypatch, link_of(first), script)
    client = await redis_client(old_redis)
    loop = asyncio.get_running_loop()
    starting = loop.create_task(first.start())
    taking_over: asyncio.Task[None] | None = None
    try:
        await stall.wait(starting)
        await client.delete(keys.MIGRATING)  # its lock expires (as if held up past LOCK_MS)
        taking_over = loop.create_task(second.start())
        await asyncio.wait_for(asyncio.shield(taking_over), TIMEOUT)  # migrates, to the end
        assert await client.get(keys.SCHEMA) == b"2"
        await link_of(second).drain()  # (its start queued its lobby's claim of its key)
        finished = await snapshot(client)
        with hearing("no longer holds the lock", "waits") as lost:
            stall.go.set()  # the first one carries on where it was held
            await asyncio.wait_for(asyncio.shield(starting), TIMEOUT)
            await lost.wait()
        assert stall.answers == [migrate.LOST]  # refused: it wrote nothing
        assert await snapshot(client) == finished
        assert await client.exists(keys.MIGRATING) == 0
        await check_stored(client)
        await check_migrated(first, second, owners)
    finally:
        stall.go.set()
        await stop(first, starting)
        if taking_over is not None:
            await stop(second, taking_over)
        await client.aclose()


async def test_a_server_whose_lock_another_took_stops_and_finishes_once_that_one_is_gone(
    old_redis: RedisStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    owners = Owners(SigningKey.generate(), SigningKey.generate(), SigningKey.generate())
    await write_old_data(old_redis, owners)
    monkeypatch.setattr(migrate, "RENEW_EVERY", 0.01)
    server = ChatServer(redis_config(old_redis, "a"))
    stall = Stall(monkeypatch, link_of(server), migrate.REBUILT)
    client = await redis_client(old_redis)
    starting = asyncio.get_running_loop().create_task(server.start())
    try:
        await stall.wait(starting)  # a stream rebuilt, not yet in its place
        with hearing("migration lock is not this server's") as unrenewed:
            # its lock expired and another server took it (its value, a token of its own)
            await client.set(keys.MIGRATING, "another-server", px=migrate.LOCK_MS // 2)
            await client.incr(migrate.MIGRATION_FENCE)
            await unrenewed.wait()
        assert await client.get(keys.MIGRATING) == b"another-server"  # left as it was
        assert 0 < await client.pttl(keys.MIGRATING) <= migrate.LOCK_MS // 2  # not extended
        before = await snapshot(client)
        with hearing("no longer holds the lock", "waits") as lost:
            stall.go.set()
            await lost.wait()
        assert stall.answers == [migrate.LOST]
        assert await snapshot(client) == before  # the stream was not put in place
        assert not starting.done()  # waiting for the other server
        await client.delete(keys.MIGRATING)  # the other server died: its lock expires
        await asyncio.wait_for(asyncio.shield(starting), TIMEOUT)  # this one takes over
        assert await client.get(keys.SCHEMA) == b"2"
        assert await client.exists(keys.MIGRATING, keys.MIGRATION_PLAN, keys.MIGRATION_DONE) == 0
        await check_stored(client)
        await check_migrated(server, server, owners)
    finally:
        stall.go.set()
        await stop(server, starting)
        await client.aclose()


async def open_link(store: RedisStore) -> RedisLink:
    link = RedisLink(store.url, isinstance(store, RedisCluster))
    await link.start()
    return link


async def test_the_renewals_stop_once_the_migration_is_over_though_their_cancellation_is_lost(
    old_redis: RedisStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    owners = Owners(SigningKey.generate(), SigningKey.generate(), SigningKey.generate())
    await write_old_data(old_redis, owners)
    monkeypatch.setattr(migrate, "RENEW_EVERY", 0)  # (a renewal under way when it is over)
    original, renewals = migrate.renew, []

    async def renew(link: RedisLink, server_id: str) -> bool:
        renewals.append(server_id)
        if len(renewals) == 2:  # (the first is the migration's own, before the renewals start)
            # its command drops the cancellation, as redis-py's `asyncio.wait_for` does on
            # Python 3.11 when the command is sent at the moment the cancellation comes
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.Event().wait()
        return await original(link, server_id)

    monkeypatch.setattr(migrate, "renew", renew)
    link, client = await open_link(old_redis), await redis_client(old_redis)
    try:
        await asyncio.wait_for(migrate.migrate(link, "a"), TIMEOUT)
        assert renewals == ["a", "a"]  # the renewal that lost its cancellation was the last
        assert await client.get(keys.SCHEMA) == b"2"
        assert await client.exists(keys.MIGRATING) == 0  # let go of
        await check_stored(client)
    finally:
        await link.stop()
        await client.aclose()


async def test_a_renewal_extends_the_servers_own_lock_and_no_one_elses(
    old_redis: RedisStore,
) -> None:
    link, client = await open_link(old_redis), await redis_client(old_redis)
    try:
        await client.set(keys.MIGRATING, "b", px=5000)
        assert not await migrate.renew(link, "a")
        assert await client.get(keys.MIGRATING) == b"b"
        assert 0 < await client.pttl(keys.MIGRATING) <= 5000
        assert await migrate.renew(link, "b")
        assert await client.pttl(keys.MIGRATING) > 5000
        await client.delete(keys.MIGRATING)  # expired
        assert not await migrate.renew(link, "b")
        assert await client.exists(keys.MIGRATING) == 0  # not taken anew
    finally:
        await link.stop()
        await client.aclose()


async def test_each_migration_script_checks_the_lock_and_its_step_itself(
    old_redis: RedisStore,
) -> None:
    link, client = await open_link(old_redis), await redis_client(old_redis)
    ours = migrate.Holder("a", 2)
    owners = [1, "key", "owner", 0]  # (the registrations: one set, none dropped, no token)
    try:
        await client.set(keys.MIGRATING, "b", px=migrate.LOCK_MS)
        with pytest.raises(migrate.LostLock):
            await migrate._step(
                link, ours, migrate.OWNERS, [keys.IDENTITIES, keys.TOKENS], owners, "owners"
            )
        assert await client.exists(keys.IDENTITIES, keys.MIGRATION_DONE) == 0
        await client.set(keys.MIGRATING, "a", px=migrate.LOCK_MS)
        await client.sadd(keys.MIGRATION_DONE, "owners")  # done by the server before
        assert not await migrate._step(
            link, ours, migrate.OWNERS, [keys.IDENTITIES, keys.TOKENS], owners, "owners"
        )
        assert await client.exists(keys.IDENTITIES) == 0

        target, source = keys.private_log("ali"), keys.private_log("علی")
        building = target + ":rebuilding"
        await client.xadd(target, {"t": "kept"}, id="1-0")
        rebuilt = [building, target, source]
        assert await migrate._step(link, ours, migrate.REBUILT, rebuilt, [0], "stream:ali")
        assert len(await client.xrange(target)) == 1  # nothing rebuilt: the stream stays
        await client.xadd(source, {"t": "kept too"}, id="2-0")
        await client.xadd(building, {"t": "kept"}, id="1-0")
        with pytest.raises(ResponseError, match="lacks entries"):  # two entries said, one there
            await migrate._step(link, ours, migrate.REBUILT, rebuilt, [2], "stream:ali too")
        assert await client.exists(target, source, building) == 3  # all left as they were

        head = keys.PREFIX + "{r:#dev"
        old, new = head + "}:id:علی:1", head + "}:id:ali:1"
        await client.set(old, "1:1000")
        await client.set(head + migrate.ROOM_FENCE, 3)  # a later holder wrote in the room
        room = [head + migrate.ROOM_FENCE, old, new]
        answer = await link.run_script(migrate.ROOM_RETRIES, room, [2, migrate.ROOM_FENCE_MS])
        assert answer == migrate.LOST
        assert await client.exists(old) == 1 and await client.exists(new) == 0
        answer = await link.run_script(migrate.ROOM_RETRIES, room, [3, migrate.ROOM_FENCE_MS])
        assert answer == 1
        assert await client.exists(old) == 0 and await client.get(new) == b"1:1000"
    finally:
        await link.stop()
        await client.aclose()
