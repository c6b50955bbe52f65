"""The Redis broker: Redis numbers and stores; every server hears the rooms it follows.

A Lua script gives a room message its seq, recognises a retried send by its
client id, appends it to the room's stream (bounded) and publishes it on the
room's shard channel, in one atomic step; `feeds.RoomFeeds` delivers what comes
back in order. Private messages go the same way on one channel every server
hears, and are kept for each party and for their conversation. A read marker is
stored by a script too (it only moves forward) and published on a channel of its
own, so the user's sessions on the other servers hear of it. Typing is published and
never stored: on the room's typing channel, or for a private conversation on one channel
every server hears; one that waited for Redis longer than `TYPING_FRESH` is not sent. A
room's epoch is
kept in Redis beside its seq: if Redis loses its data the epoch is gone, the next
post or check makes a new one, and the room's members are told to reload
(`on_room_reset`).

A moderation step is stored by a script too (its rules in one hash, its entry in the
moderation log: a stream of the whole log and one of its room's, each bounded) and published in
the same step on one channel every server hears (`feeds.ModerationFeed`); the rules are read in
full at start and after a lost link.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

import msgpack

from tuichat.chat.rules import ModEvent
from tuichat.chat.search import SearchQuery
from tuichat.protocol import Message, ModEntry, PrivateMessage, RoomEvent, SearchHit
from tuichat.server.broker.base import (
    MAX_MARKERS,
    Broker,
    BrokerHandler,
    BrokerRefused,
    BrokerUnavailable,
    ClaimDone,
    Held,
    ModerationDone,
    Post,
    PrivateDone,
    PrivatePost,
    PublishDone,
    Published,
    PublishedPrivate,
    ReadMarker,
    RoomClaim,
    RoomPosition,
    Sees,
    TypingEvent,
    room_event,
)
from tuichat.server.broker.local import random_epoch
from tuichat.server.broker.redis import keys
from tuichat.server.broker.redis.entries import (
    author_of,
    event_payload,
    hidden_from,
    is_verb,
    mod_entry_from_entry,
    number,
    private_from_entry,
    private_parties,
    rule_field,
    rule_value,
)
from tuichat.server.broker.redis.feeds import (
    Entry,
    ModerationFeed,
    RoomFeeds,
    events_of,
    positions,
    typing_event,
    typing_payload,
)
from tuichat.server.broker.redis.link import RedisLink
from tuichat.server.broker.redis.migrate import migrate, unkeyed
from tuichat.server.broker.redis.scripts import CLAIM_ROOM, MODERATE, POST, PRIVATE, READ
from tuichat.server.broker.redis.search import search_redis

log = logging.getLogger("tuichat.server")

HANDED_HERE = 4096
"""Private messages remembered as delivered when stored (their publication is not delivered)."""
DEDUP_TTL = 24 * 3600
"""Seconds a message's client id is remembered (a retry within it is not stored twice)."""
UNREAD_SCAN = 10_000
"""Most entries of a user's private messages looked through for the unread ones..."""
SCAN_CHUNK = 1000
"""...this many at a time."""
TYPING_FRESH = 1.0
"""Seconds a typing notice may wait for Redis (an outage) before it is not worth sending."""
TYPING_BACKLOG = 100
"""Commands waiting for Redis past which typing notices are not queued at all."""
PAGE_CHUNK = 1000
"""Entries of a room's stream read at a time for a page of history (past verbs' entries)."""
READS_AT_ONCE = 16
"""Reads for verbs and searches made at once (each takes a connection of redis-py's pool)."""
MOD_LOG_KEPT = 100_000
"""Entries of the whole moderation log kept (about: a stream is trimmed in whole blocks)..."""
MOD_LOG_KEPT_PER_ROOM = 10_000
"""...and of each room's (the server's own too)."""

Delivery = tuple[PrivateMessage, str, str]
"""A private message with its sender's and target's keys."""


class RedisBroker(Broker):
    """Numbers and stores in Redis (one server or a Cluster); hears the rooms it follows."""

    def __init__(self, link: RedisLink, server_id: str, history_per_room: int) -> None:
        self.link = link
        self.id = server_id
        self.history_per_room = history_per_room
        self._reading = asyncio.Semaphore(READS_AT_ONCE)
        self.feeds = RoomFeeds(link)
        self.moderation = ModerationFeed(link, server_id)
        self._counter = 0
        self._last_pid = 0
        self._handed_here: OrderedDict[int, None] = OrderedDict()
        self._sending_privates = 0
        """Private messages sent to Redis and not answered yet."""
        self._heard_early: dict[int, Delivery] = {}
        """Our private messages published before Redis answered us: delivered after the answer
        (once nothing is waiting for one, if no answer claims them)."""
        self._handler: BrokerHandler | None = None
        self._unkeyed: frozenset[str] = frozenset()

    # --- lifecycle -------------------------------------------------------

    async def start(self, handler: BrokerHandler) -> None:
        self._handler = handler
        redis = self.link.redis
        await self.link.start()
        await redis.hsetnx(keys.SETTINGS, "history_per_room", self.history_per_room)
        kept = int(await redis.hget(keys.SETTINGS, "history_per_room"))
        if kept != self.history_per_room:
            raise BrokerRefused(
                f"this Redis keeps {kept} messages per room (as the first server said); "
                f"start every server with --redis-history {kept}"
            )
        await migrate(self.link, self.id)  # (before the peers read the registrations)
        self._unkeyed = unkeyed(await redis.smembers(keys.UNKEYED_ROOMS))
        self._last_pid = int(await redis.get(keys.PID) or 0)
        await self.link.subscribe(keys.PRIVATES, self._on_private)
        await self.link.subscribe(keys.READS, self._on_read)
        await self.link.subscribe(keys.TYPING, self._on_typing)
        self.moderation.handler = handler
        await self.link.subscribe(keys.MODERATION, self.moderation.on_publication)
        await self.moderation.load()  # (after subscribing: no step falls between the two)
        self.feeds.handler = handler
        self.link.on_reconnect.append(self.feeds.catch_up)
        self.link.on_reconnect.append(self.moderation.after_reconnect)
        self.link.spawn(self.feeds.check())
        self.link.spawn(self.moderation.check())
        log.info("redis: server %s on %s", self.id, self.describe())

    async def stop(self) -> None:
        """Store what was accepted, deliver it (from the streams, if its publication has not
        come back yet), then close."""
        await self.link.drain()
        try:
            await self.feeds.catch_up()
        except Exception as exc:
            log.warning("redis: at shutdown, could not deliver the last messages: %s", exc)
        self.feeds.fail_pending("the server is shutting down")
        await self.link.stop()

    def describe(self) -> str:
        return f"Redis Cluster {self.link.url}" if self.link.cluster else f"Redis {self.link.url}"

    # --- following rooms ---------------------------------------------------

    def position(self, room: str) -> RoomPosition:
        return self.feeds.position(room)

    def follow(self, rooms: Iterable[str], ready: Callable[[Exception | None], None]) -> None:
        self.feeds.follow(rooms, ready)

    def unfollow(self, room: str) -> None:
        self.feeds.unfollow(room)

    # --- publishing ------------------------------------------------------

    def _token(self) -> str:
        self._counter += 1
        return f"{self.id}:{self._counter}"

    def publish(self, post: Post, done: PublishDone) -> None:
        token = self._token()
        room = post.room
        answered = False

        def answer(result: Published | Exception) -> None:
            nonlocal answered
            if not answered:
                answered = True
                done(result)

        feed = self.feeds.expect(room, token, answer)

        async def add(pipe: Any) -> None:
            self.link.script(
                pipe, POST,
                [keys.room_key(room, "seq"), keys.room_key(room, "log"),
                 keys.retry_key(room, post.sender_key, post.client_id),
                 keys.room_key(room, "epoch"), keys.room_key(room, "messages"),
                 keys.room_key(room, "texts"), keys.room_key(room, "state"),
                 keys.room_key(room, "reacts")],
                [room, post.sender, post.sender_key, post.text, post.ts,
                 "1" if post.action else "0", post.client_id, token, self.history_per_room,
                 DEDUP_TTL, random_epoch(room), post.verb, post.target,
                 "" if post.on is None else "1" if post.on else "0"],
            )  # fmt: skip

        def stored(result: Any) -> None:
            fresh = isinstance(result, list) and int(result[0]) == 1
            if fresh and feed is not None and self.feeds.following(room) is feed:
                return  # it comes back on the room's channel, in order, and is answered there
            if feed is not None:
                feed.pending.pop(token, None)
            if isinstance(result, Exception) or result is None:
                answer(BrokerUnavailable(str(result)))
                return
            new, seq, ts, epoch = (int(x) for x in result)
            answer(Published(room_event(post, seq, ts), epoch, new=bool(new)))

        self.link.enqueue(add, stored)

    def publish_private(self, post: PrivatePost, done: PrivateDone) -> None:
        target_key = "" if post.refusal is not None else post.target_key  # only a retry passes

        async def add(pipe: Any) -> None:
            self.link.script(
                pipe, PRIVATE,
                [keys.PID, keys.private_log(target_key), keys.private_log(post.sender_key),
                 keys.private_retry_key(post.sender_key, post.client_id), keys.PRIVATES,
                 keys.conversation_log(post.sender_key, target_key)],
                [post.sender, post.sender_key, post.target, target_key, post.text, post.ts,
                 "1" if post.action else "0", post.client_id, self.history_per_room, DEDUP_TTL,
                 self._last_pid, self.id, "1" if post.hidden else "0"],
            )  # fmt: skip

        def stored(result: Any) -> None:
            self._sending_privates -= 1
            self._answered(post, done, result)
            if not self._sending_privates:  # no answer will claim what is still held
                for pid in sorted(self._heard_early):
                    self._deliver(*self._heard_early.pop(pid))

        self._sending_privates += 1
        self.link.enqueue(add, stored)

    def _answered(self, post: PrivatePost, done: PrivateDone, result: Any) -> None:
        """Answer the sender; a new message then goes to its parties here (the sender's other
        devices may be here even when the target is not)."""
        if isinstance(result, Exception) or result is None:
            done(BrokerUnavailable(str(result)))
            return
        if int(result[0]) == 2:
            assert post.refusal is not None
            done(post.refusal)
            return
        if int(result[0]) == 0:  # a retry: the original, as it was stored
            pid, ts, target, text, action = msgpack.unpackb(result[1])
            earlier = PrivateMessage(post.sender, target, text, ts, action == "1", pid=pid)
            done(PublishedPrivate(earlier, new=False))
            return
        pid, ts = int(result[1]), int(result[2])
        self._last_pid = max(self._last_pid, pid)
        message = PrivateMessage(post.sender, post.target, post.text, ts, post.action, pid=pid)
        done(PublishedPrivate(message, new=True))
        if self._heard_early.pop(pid, None) is None:  # its publication is still to come
            self._handed_here[pid] = None
            if len(self._handed_here) > HANDED_HERE:
                self._handed_here.popitem(last=False)
        self._deliver(message, post.sender_key, "" if post.hidden else post.target_key)

    def _deliver(self, message: PrivateMessage, sender_key: str, target_key: str) -> None:
        assert self._handler is not None
        self._handler.on_private(message, sender_key, target_key)

    async def _on_private(self, data: bytes) -> None:
        pid, sender, sender_key, target, target_key, text, ts, action, origin = msgpack.unpackb(
            data
        )
        self._last_pid = max(self._last_pid, pid)
        if self._handed_here.pop(pid, 0) is None:
            return  # delivered when it was stored
        message = PrivateMessage(sender, target, text, ts, action == "1", pid=pid)
        if origin == self.id and self._sending_privates:  # before Redis answered us
            self._heard_early[pid] = (message, sender_key, target_key)
            return
        self._deliver(message, sender_key, target_key)

    # --- read markers ------------------------------------------------------

    def mark_read(
        self, user_key: str, marker: ReadMarker, done: Callable[[ReadMarker | Exception], None]
    ) -> None:
        async def add(pipe: Any) -> None:
            self.link.script(
                pipe, READ,
                [keys.reads_key(user_key), keys.read_order(user_key), keys.READS],
                [self.id, user_key, marker.conversation, marker.label, marker.epoch, marker.seq,
                 time.time_ns() // 1_000_000, MAX_MARKERS],
            )  # fmt: skip

        def stored(result: Any) -> None:
            if isinstance(result, Exception) or result is None:
                done(BrokerUnavailable(f"cannot store the read marker: {result}"))
                return
            label, epoch, seq = result
            done(ReadMarker(marker.conversation, label.decode(), int(epoch), int(seq)))

        self.link.enqueue(add, stored)

    async def _on_read(self, data: bytes) -> None:
        origin, user_key, conversation, label, epoch, seq = msgpack.unpackb(data)
        if origin == self.id:
            return  # the server that asked tells its own sessions
        assert self._handler is not None
        self._handler.on_read(user_key, ReadMarker(conversation, label, int(epoch), int(seq)))

    async def read_markers(self, user_key: str) -> list[ReadMarker]:
        stored = await self.link.redis.hgetall(keys.reads_key(user_key))
        moved: list[tuple[int, ReadMarker]] = []
        for conversation, value in stored.items():
            label, epoch, seq, moved_at = msgpack.unpackb(value)
            moved.append((moved_at, ReadMarker(conversation.decode(), label, int(epoch), int(seq))))
        moved.sort(key=lambda pair: pair[0], reverse=True)
        return [marker for _, marker in moved[:MAX_MARKERS]]

    # --- reading ---------------------------------------------------------

    async def page(self, room: str, before: int, limit: int) -> tuple[RoomPosition, list[Message]]:
        top = f"({before}-0" if before else "+"
        position = await self.stored_position(room)
        kept: list[Entry] = []
        while len(kept) < limit:  # past the verbs' entries (the stream is `history_per_room`)
            want = max(limit - len(kept), PAGE_CHUNK)  # (entries hold no text: cheap to read)
            entries = await self.link.redis.xrevrange(
                keys.room_key(room, "log"), top, "-", count=want
            )
            kept += [(i, f) for i, f in entries if not is_verb(f)]
            if len(entries) < want:
                break
            top = f"({number(entries[-1][0])}-0"
        kept.reverse()
        events = await events_of(self.link, room, kept[-limit:])
        return position, [m for m in events if isinstance(m, Message)]

    async def stored_position(self, room: str) -> RoomPosition:
        ((epoch, seq),) = await positions(self.link, [room])
        return RoomPosition(epoch, seq)

    async def replay(self, room: str, after: int, upto: int) -> list[RoomEvent]:
        if upto <= after:
            return []
        entries = await self.link.redis.xrange(
            keys.room_key(room, "log"), f"{after + 1}-0", f"{upto}-0"
        )
        return await events_of(self.link, room, entries)

    async def held(self, room: str, seq: int, user_key: str) -> Held | None:
        async with self._reading:
            return await self._held(room, seq, user_key)

    async def _held(self, room: str, seq: int, user_key: str) -> Held | None:
        entries = await self.link.redis.xrange(keys.room_key(room, "log"), f"{seq}-0", f"{seq}-0")
        if not entries or is_verb(entries[0][1]):
            return None
        (message,) = await events_of(self.link, room, entries)
        assert isinstance(message, Message)
        given = await self.link.redis.hget(keys.room_key(room, "reacts"), seq)
        reacted = (
            frozenset(r[0] for r in msgpack.unpackb(given) if r[1] == user_key)
            if given
            else frozenset()
        )
        return Held(message, author_of(entries[0][1]), reacted)

    async def search(self, query: SearchQuery, sees: Sees) -> tuple[list[SearchHit], str]:
        async with self._reading:
            return await search_redis(self.link, query, sees)

    async def privates(self, user_key: str, after: int, limit: int) -> list[PrivateMessage]:
        entries = await self.link.redis.xrange(
            keys.private_log(user_key), f"{after + 1}-0", "+", count=limit
        )
        return [private_from_entry(i, f) for i, f in entries]

    async def unread_privates(self, user_key: str, limit: int) -> list[PrivateMessage]:
        read = {m.conversation: m.seq for m in await self.read_markers(user_key)}

        def unread(entry_id: bytes, fields: dict[bytes, bytes]) -> bool:
            sender_key, target_key = private_parties(fields)
            return (
                target_key == user_key
                and sender_key != user_key
                and number(entry_id) > read.get("@" + sender_key, 0)
            )

        return await self._newest(keys.private_log(user_key), 0, limit, unread, SCAN_CHUNK)

    async def conversation(
        self, user_key: str, other_key: str, before: int, limit: int
    ) -> list[PrivateMessage]:
        def shown(entry_id: bytes, fields: dict[bytes, bytes]) -> bool:
            return not hidden_from(fields, user_key)  # (their target never sees those)

        key = keys.conversation_log(user_key, other_key)
        return await self._newest(key, before, limit, shown, limit)

    async def _newest(
        self,
        key: str,
        before: int,
        limit: int,
        keep: Callable[[bytes, dict[bytes, bytes]], bool],
        first: int,
    ) -> list[PrivateMessage]:
        """The newest `limit` private messages of the stream `key` with pid < `before` (0: no
        bound) that `keep`, oldest first: read back `first` entries, then `SCAN_CHUNK` at a
        time, through at most `UNREAD_SCAN`."""
        found: list[PrivateMessage] = []
        top, scanned = f"({before}-0" if before else "+", 0
        while len(found) < limit and scanned < UNREAD_SCAN:  # the newest first
            count = min(SCAN_CHUNK if scanned else first, UNREAD_SCAN - scanned)
            entries = await self.link.redis.xrevrange(key, top, "-", count=count)
            for entry_id, fields in entries:
                if keep(entry_id, fields):
                    found.append(private_from_entry(entry_id, fields))
                    if len(found) >= limit:
                        break
            scanned += len(entries)
            if len(entries) < count:
                break
            top = f"({number(entries[-1][0])}-0"
        return found[::-1]

    def last_private_id(self) -> int:
        return self._last_pid

    # --- rooms' comparison keys ----------------------------------------------

    def unkeyed_rooms(self) -> frozenset[str]:
        return self._unkeyed

    def claim_room(self, room: str, key: str, done: ClaimDone) -> None:
        async def add(pipe: Any) -> None:
            self.link.script(pipe, CLAIM_ROOM, [keys.ROOM_KEYS, keys.UNKEYED_ROOMS], [room, key])

        def claimed(result: Any) -> None:
            if isinstance(result, Exception) or result is None:
                done(BrokerUnavailable(f"cannot find the room {room}: {result}"))
                return
            name, keyed, new = result
            done(RoomClaim(name.decode() if isinstance(name, bytes) else str(name), keyed == 1,
                           new == 1))  # fmt: skip

        self.link.enqueue(add, claimed)

    # --- moderation --------------------------------------------------------

    def moderate(self, event: ModEvent, done: ModerationDone) -> None:
        payload = event_payload(self.id, event)
        rules = [x for rule in event.rules for x in (rule_field(rule), rule_value(rule))]

        async def add(pipe: Any) -> None:
            self.link.script(
                pipe, MODERATE,
                [keys.RULES, keys.RULES_VERSION, keys.MOD_LOG, keys.MOD_LOG_ID, keys.MODERATION,
                 keys.moderation_retry_key(event.id), keys.mod_log_key(event.room)],
                [self.moderation.top, payload, "1" if event.logged else "0", MOD_LOG_KEPT,
                 DEDUP_TTL, event.id, event.ts, event.room, event.action, event.name, event.by,
                 event.reason, event.until, MOD_LOG_KEPT_PER_ROOM, *rules],
            )  # fmt: skip

        def stored(result: Any) -> None:
            failed = isinstance(result, Exception) or result is None
            version = self.moderation.answered(event, None if failed else int(result[0]))
            if version is None:
                done(BrokerUnavailable(f"cannot store the moderation step: {result}"))
                return
            if failed:  # (its publication was heard)
                log.info("redis: moderation step %s was stored, though its answer was lost (%s)",
                         event.id, result)  # fmt: skip
            done(None)
            self.moderation.carry_out(event, version)

        self.moderation.sending(event)
        self.link.enqueue(add, stored)

    async def mod_log(self, room: str | None, before: int, limit: int) -> list[ModEntry]:
        """The whole log's stream (`None`), or the room's own (see `keys.mod_log_key`).

        Entries stored before rooms had a stream of their own are in the whole log only (which
        admins read): they are not looked for in a room's."""
        stream = keys.MOD_LOG if room is None else keys.mod_log_key(room)
        top = f"({before}-0" if before else "+"
        entries = await self.link.redis.xrevrange(stream, top, "-", count=limit)
        return [mod_entry_from_entry(entry_id, fields) for entry_id, fields in entries]

    # --- typing ------------------------------------------------------------

    def typing(self, event: TypingEvent) -> None:
        channel = keys.room_key(event.room, "typing") if event.room else keys.TYPING
        data = typing_payload(event)
        loop = asyncio.get_running_loop()
        queued = loop.time()

        if self.link.backlog > TYPING_BACKLOG:
            return  # Redis is slow or away: typing gives way to what matters

        async def add(pipe: Any) -> None:
            if loop.time() - queued <= TYPING_FRESH:  # (after an outage: stale, not sent)
                pipe.spublish(channel, data)

        self.link.enqueue(add, retry=False)

    async def _on_typing(self, data: bytes) -> None:
        event = typing_event(data)
        if event is not None and not event.room:
            assert self._handler is not None
            self._handler.on_typing(event)
