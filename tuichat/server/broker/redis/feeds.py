"""Ordered delivery of the rooms a server follows, and gap filling.

A server subscribes to the shard channel of each room it has members in and
delivers what it hears in seq order; a gap (a lost publication, a Redis restart)
is filled from the room's stream first. Every `CHECK_EVERY` seconds the position
in Redis of every followed room is compared with what was delivered here: what is
missing is delivered, and a lost epoch (Redis lost its data) becomes a new one,
whose members are told to reload.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import msgpack

from tuichat.protocol import Message
from tuichat.server.broker.base import BrokerHandler, PublishDone, Published, RoomPosition
from tuichat.server.broker.local import random_epoch
from tuichat.server.broker.redis import keys
from tuichat.server.broker.redis.entries import message_from_entry
from tuichat.server.broker.redis.link import RedisLink
from tuichat.server.broker.redis.scripts import EPOCH

log = logging.getLogger("tuichat.server")

CHECK_EVERY = 2.0
"""Seconds between checks that every followed room was delivered in full and kept its epoch."""


@dataclass(slots=True)
class _Feed:
    """A room this server follows: its epoch and the last seq delivered here."""

    epoch: int = 0
    delivered: int = 0
    ready: asyncio.Future[None] | None = None
    """Done once the subscription is on and the position read."""
    waiting: list[Callable[[], None]] = field(default_factory=list)


class RoomFeeds:
    """The rooms this server follows, each delivered in order to `handler`."""

    def __init__(self, link: RedisLink) -> None:
        self.link = link
        self.handler: BrokerHandler | None = None
        """Set when the broker starts."""
        self._feeds: dict[str, _Feed] = {}
        self.pending: dict[str, PublishDone] = {}
        """Posts of ours not delivered here yet: token → their callback."""

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
            await self.link.subscribe(keys.room_key(room, "messages"), self.on_message)
            feed.epoch, feed.delivered = await self.read_position(room)
        except Exception as exc:
            log.warning("redis: cannot follow %s: %s", room, exc)
        feed.ready.set_result(None)

    async def read_position(self, room: str) -> tuple[int, int]:
        epoch, seq = await self.link.run_script(
            EPOCH, [keys.room_key(room, "epoch"), keys.room_key(room, "seq")], [random_epoch(room)]
        )
        return int(epoch), int(seq)

    def following(self, room: str) -> _Feed | None:
        """The feed of `room` if it is followed and its position known."""
        feed = self._feeds.get(room)
        return feed if feed is not None and feed.ready is not None and feed.ready.done() else None

    def unfollow(self, room: str) -> None:
        feed = self._feeds.pop(room, None)
        if feed is not None:
            self.link.spawn(self.link.unsubscribe(keys.room_key(room, "messages")))

    # --- delivery --------------------------------------------------------

    async def on_message(self, data: bytes) -> None:
        """A room message published on a room's channel: deliver it in order."""
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
        assert self.handler is not None
        self.handler.on_room_reset(room, RoomPosition(epoch, seq))

    def _delivered(self, message: Message, feed: _Feed, token: str) -> None:
        feed.delivered = message.seq
        done = self.pending.pop(token, None)
        if done is not None:
            done(Published(message, feed.epoch, new=True))
        assert self.handler is not None
        self.handler.on_message(message, feed.epoch)

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

    async def check(self) -> None:
        """Every few seconds: deliver what was stored but not heard; notice lost epochs."""
        while not self.link.closing:
            await asyncio.sleep(CHECK_EVERY)
            try:
                await self.catch_up()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.debug("redis: check failed: %s", exc)

    async def catch_up(self) -> None:
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
                new_epoch, new_seq = await self.read_position(room)
                self._reset(room, feed, new_epoch, new_seq)
            elif seq > feed.delivered:
                log.info("redis: %s missed %d message(s); delivering them from Redis",
                         room, seq - feed.delivered)  # fmt: skip
                await self._fill(room, feed, seq)
