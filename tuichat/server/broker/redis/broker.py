"""The Redis broker: Redis numbers and stores; every server hears the rooms it follows.

A Lua script gives a room message its seq, recognises a retried send by its
client id, appends it to the room's stream (bounded) and publishes it on the
room's shard channel, in one atomic step. Each server subscribes to the channels
of the rooms it has members in and delivers what it hears in seq order; a gap (a
lost publication, a Redis restart) is filled from the stream first, and every
`CHECK_EVERY` seconds each followed room's position in Redis is compared with
what was delivered here.

A room's epoch is kept in Redis beside its seq. If Redis loses its data the
epoch is gone: the next post or check makes a new one, and the room's members
are told to reload (`on_room_reset`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import msgpack

from tuichat.protocol import Message, PrivateMessage
from tuichat.server.broker.base import (
    Broker,
    BrokerHandler,
    BrokerRefused,
    BrokerUnavailable,
    Post,
    PrivateDone,
    PrivatePost,
    PublishDone,
    Published,
    PublishedPrivate,
    RoomPosition,
)
from tuichat.server.broker.local import random_epoch
from tuichat.server.broker.redis import keys
from tuichat.server.broker.redis.link import RedisLink
from tuichat.server.broker.redis.scripts import EPOCH, POST, PRIVATE

log = logging.getLogger("tuichat.server")

CHECK_EVERY = 2.0
"""Seconds between checks that every followed room was delivered in full and kept its epoch."""
DEDUP_TTL = 24 * 3600
"""Seconds a message's client id is remembered (a retry within it is not stored twice)."""


@dataclass(slots=True)
class _Feed:
    """A room this server follows: its epoch and the last seq delivered here."""

    epoch: int = 0
    delivered: int = 0
    ready: asyncio.Future[None] | None = None
    """Done once the subscription is on and the position read."""
    waiting: list[Callable[[], None]] = field(default_factory=list)


def _number(entry_id: bytes | str) -> int:
    """The seq or pid a stream entry is stored under (its id is `<number>-0`)."""
    text = entry_id if isinstance(entry_id, str) else entry_id.decode()
    return int(text.split("-")[0])


def message_from_entry(room: str, entry_id: bytes | str, fields: dict[bytes, bytes]) -> Message:
    """A room message as read back from its stream."""
    return Message(
        room,
        _number(entry_id),
        fields[b"s"].decode(),
        fields[b"t"].decode(),
        int(fields[b"ts"]),
        fields[b"a"] == b"1",
    )


def private_from_entry(entry_id: bytes | str, fields: dict[bytes, bytes]) -> PrivateMessage:
    """A private message as read back from a user's stream."""
    return PrivateMessage(
        fields[b"f"].decode(),
        fields[b"to"].decode(),
        fields[b"t"].decode(),
        int(fields[b"ts"]),
        fields[b"a"] == b"1",
        pid=_number(entry_id),
    )


class RedisBroker(Broker):
    """Numbers and stores in Redis (one server or a Cluster); hears the rooms it follows."""

    def __init__(self, link: RedisLink, server_id: str, history_per_room: int) -> None:
        self.link = link
        self.id = server_id
        self.history_per_room = history_per_room
        self._feeds: dict[str, _Feed] = {}
        self._pending: dict[str, PublishDone] = {}
        """Posts of ours not delivered here yet: token → their callback."""
        self._counter = 0
        self._last_pid = 0
        self._handler: BrokerHandler | None = None

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
        self._last_pid = int(await redis.get(keys.PID) or 0)
        await self.link.subscribe(keys.PRIVATES, self._on_private)
        self.link.on_reconnect.append(self._catch_up)
        self.link.spawn(self._check())
        log.info("redis: server %s on %s", self.id, self.describe())

    async def stop(self) -> None:
        await self.link.stop()

    def describe(self) -> str:
        return f"Redis Cluster {self.link.url}" if self.link.cluster else f"Redis {self.link.url}"

    # --- following rooms ---------------------------------------------------

    def position(self, room: str) -> RoomPosition:
        feed = self._feeds.get(room)
        if feed is None or feed.ready is None or not feed.ready.done():
            return RoomPosition(0, 0)
        return RoomPosition(feed.epoch, feed.delivered)

    def follow(self, rooms: Iterable[str], ready: Callable[[], None]) -> None:
        todo = []
        for room in rooms:
            feed = self._feeds.get(room)
            if feed is None:
                feed = self._feeds[room] = _Feed()
                feed.ready = asyncio.get_running_loop().create_future()
                self.link.spawn(self._follow(room, feed))
            assert feed.ready is not None
            if not feed.ready.done():
                todo.append(feed.ready)
        if not todo:
            ready()
            return

        async def wait() -> None:
            await asyncio.gather(*todo, return_exceptions=True)
            ready()

        self.link.spawn(wait())

    async def _follow(self, room: str, feed: _Feed) -> None:
        assert feed.ready is not None
        try:
            await self.link.subscribe(keys.room_key(room, "messages"), self._on_message)
            feed.epoch, feed.delivered = await self._read_position(room)
        except Exception as exc:
            log.warning("redis: cannot follow %s: %s", room, exc)
        feed.ready.set_result(None)

    async def _read_position(self, room: str) -> tuple[int, int]:
        epoch, seq = await self.link.run_script(
            EPOCH, [keys.room_key(room, "epoch"), keys.room_key(room, "seq")], [random_epoch(room)]
        )
        return int(epoch), int(seq)

    def unfollow(self, room: str) -> None:
        feed = self._feeds.pop(room, None)
        if feed is not None:
            self.link.spawn(self.link.unsubscribe(keys.room_key(room, "messages")))

    # --- delivery --------------------------------------------------------

    async def _on_message(self, data: bytes) -> None:
        room, seq, sender, text, ts, action, token, epoch = msgpack.unpackb(data)
        message = Message(room, seq, sender, text, ts, action == "1")
        feed = self._feeds.get(room)
        if feed is None or feed.ready is None or not feed.ready.done():
            return  # not followed (yet): the position read after subscribing counts it
        if epoch != feed.epoch:
            self._reset(room, feed, epoch, 0)
        if message.seq <= feed.delivered:
            return
        if message.seq > feed.delivered + 1:
            await self._fill(room, feed, message.seq - 1)
        if message.seq == feed.delivered + 1:
            self._delivered(message, feed, token)

    def _reset(self, room: str, feed: _Feed, epoch: int, seq: int) -> None:
        log.warning(
            "redis: %s has a new epoch (Redis lost its history?); its members reload it", room
        )
        feed.epoch, feed.delivered = epoch, seq
        assert self._handler is not None
        self._handler.on_room_reset(room, RoomPosition(epoch, seq))

    def _delivered(self, message: Message, feed: _Feed, token: str) -> None:
        feed.delivered = message.seq
        done = self._pending.pop(token, None)
        if done is not None:
            done(Published(message, feed.epoch, new=True))
        assert self._handler is not None
        self._handler.on_message(message, feed.epoch)

    async def _fill(self, room: str, feed: _Feed, upto: int) -> None:
        """Deliver what `room` missed, up to `upto`, from its stream."""
        entries = await self.link.redis.xrange(
            keys.room_key(room, "log"), f"{feed.delivered + 1}-0", f"{upto}-0"
        )
        for entry_id, fields in entries:
            message = message_from_entry(room, entry_id, fields)
            if message.seq == feed.delivered + 1:
                self._delivered(message, feed, fields.get(b"o", b"").decode())
        if feed.delivered < upto:  # trimmed away: jump, clients get a room_reset on resume
            log.warning("redis: %s lost %d messages to trimming", room, upto - feed.delivered)
            feed.delivered = upto

    async def _check(self) -> None:
        """Every few seconds: deliver what was stored but not heard; notice lost epochs."""
        while not self.link.closing:
            await asyncio.sleep(CHECK_EVERY)
            try:
                await self._catch_up()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.debug("redis: check failed: %s", exc)

    async def _catch_up(self) -> None:
        rooms = [r for r, f in self._feeds.items() if f.ready is not None and f.ready.done()]
        if not rooms:
            return
        async with self.link.redis.pipeline(transaction=False) as pipe:
            for room in rooms:
                pipe.get(keys.room_key(room, "epoch"))
                pipe.get(keys.room_key(room, "seq"))
            answers = await pipe.execute()
        for index, room in enumerate(rooms):
            feed = self._feeds.get(room)
            if feed is None:
                continue
            epoch, seq = answers[2 * index], int(answers[2 * index + 1] or 0)
            if epoch is None or int(epoch) != feed.epoch:
                new_epoch, new_seq = await self._read_position(room)
                self._reset(room, feed, new_epoch, new_seq)
            elif seq > feed.delivered:
                log.info("redis: %s missed %d message(s); delivering them from Redis",
                         room, seq - feed.delivered)  # fmt: skip
                await self._fill(room, feed, seq)

    # --- publishing ------------------------------------------------------

    def _token(self) -> str:
        self._counter += 1
        return f"{self.id}:{self._counter}"

    def publish(self, post: Post, done: PublishDone) -> None:
        token = self._token()
        self._pending[token] = done
        room = post.room
        feed = self._feeds.get(room)
        new_epoch = random_epoch(room)

        async def add(pipe: Any) -> None:
            self.link.script(
                pipe, POST,
                [keys.room_key(room, "seq"), keys.room_key(room, "log"),
                 keys.retry_key(room, post.sender_key, post.client_id),
                 keys.room_key(room, "epoch"), keys.room_key(room, "messages")],
                [room, post.sender, post.sender_key, post.text, post.ts,
                 "1" if post.action else "0", post.client_id, token, self.history_per_room,
                 DEDUP_TTL, new_epoch],
            )  # fmt: skip

        def stored(result: Any) -> None:
            if isinstance(result, Exception) or result is None:
                if self._pending.pop(token, None) is not None:
                    done(BrokerUnavailable(str(result)))
                return
            new, seq, ts, epoch = (int(x) for x in result)
            if new and self._feeds.get(room) is feed is not None:
                return  # it comes back on the room's channel, in order, and is handled there
            if self._pending.pop(token, None) is None:
                return
            message = Message(room, seq, post.sender, post.text, ts, post.action)
            done(Published(message, epoch, new=bool(new)))

        self.link.enqueue(add, stored)

    def publish_private(self, post: PrivatePost, done: PrivateDone) -> None:
        async def add(pipe: Any) -> None:
            self.link.script(
                pipe, PRIVATE,
                [keys.PID, keys.private_log(post.target_key), keys.private_log(post.sender_key),
                 keys.private_retry_key(post.sender_key, post.client_id), keys.PRIVATES],
                [post.sender, post.sender_key, post.target, post.target_key, post.text, post.ts,
                 "1" if post.action else "0", post.client_id, self.history_per_room, DEDUP_TTL],
            )  # fmt: skip

        def stored(result: Any) -> None:
            if isinstance(result, Exception) or result is None:
                done(BrokerUnavailable(str(result)))
                return
            new, pid, ts = (int(x) for x in result)
            self._last_pid = max(self._last_pid, pid)
            message = PrivateMessage(post.sender, post.target, post.text, ts, post.action, pid=pid)
            done(PublishedPrivate(message, new=bool(new)))

        self.link.enqueue(add, stored)

    async def _on_private(self, data: bytes) -> None:
        pid, sender, sender_key, target, target_key, text, ts, action = msgpack.unpackb(data)
        self._last_pid = max(self._last_pid, pid)
        message = PrivateMessage(sender, target, text, ts, action == "1", pid=pid)
        assert self._handler is not None
        self._handler.on_private(message, sender_key, target_key)

    # --- reading ---------------------------------------------------------

    async def page(self, room: str, before: int, limit: int) -> tuple[RoomPosition, list[Message]]:
        top = f"({before}-0" if before else "+"
        async with self.link.redis.pipeline(transaction=False) as pipe:
            pipe.get(keys.room_key(room, "epoch"))
            pipe.get(keys.room_key(room, "seq"))
            pipe.xrevrange(keys.room_key(room, "log"), top, "-", count=limit)
            epoch, seq, entries = await pipe.execute()
        position = RoomPosition(int(epoch or 0), int(seq or 0))
        return position, [message_from_entry(room, i, f) for i, f in reversed(entries)]

    async def replay(self, room: str, after: int, upto: int) -> list[Message]:
        if upto <= after:
            return []
        entries = await self.link.redis.xrange(
            keys.room_key(room, "log"), f"{after + 1}-0", f"{upto}-0"
        )
        return [message_from_entry(room, i, f) for i, f in entries]

    async def privates(self, user_key: str, after: int, limit: int) -> list[PrivateMessage]:
        entries = await self.link.redis.xrange(
            keys.private_log(user_key), f"{after + 1}-0", "+", count=limit
        )
        return [private_from_entry(i, f) for i, f in entries]

    def last_private_id(self) -> int:
        return self._last_pid
