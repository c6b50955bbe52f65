"""Ordered delivery of the rooms a server follows, and gap filling.

A server subscribes to the shard channel of each room it has members in and
delivers what it hears in seq order; a gap (a lost publication, a Redis restart)
is filled from the room's stream first. Every `CHECK_EVERY` seconds the position
in Redis of every followed room is compared with what was delivered here: what is
missing is delivered, and a lost epoch (Redis lost its data) becomes a new one,
whose members are told to reload. One room's deliveries never interleave (a lock
per room), so nothing is delivered twice or out of order.

Typing in a room goes on a channel of the room's own beside its messages (in the same
cluster slot, so a server hears it only for the rooms it follows); nothing of it is stored,
and a lost one is not looked for.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import msgpack

from tuichat.protocol import Message
from tuichat.server.broker.base import (
    BrokerHandler,
    BrokerUnavailable,
    PublishDone,
    Published,
    RoomPosition,
    TypingEvent,
)
from tuichat.server.broker.local import random_epoch
from tuichat.server.broker.redis import keys
from tuichat.server.broker.redis.entries import message_from_entry
from tuichat.server.broker.redis.link import RedisLink
from tuichat.server.broker.redis.scripts import EPOCH

log = logging.getLogger("tuichat.server")

CHECK_EVERY = 2.0
"""Seconds between checks that every followed room was delivered in full and kept its epoch."""

Ready = Callable[[Exception | None], None]


@dataclass(slots=True)
class _Feed:
    """A room this server follows: its epoch and the last seq delivered here."""

    epoch: int = 0
    delivered: int = 0
    ready: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    """Done once the subscription is on and the position read (or failed)."""
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    pending: dict[str, PublishDone] = field(default_factory=dict)
    """Posts of ours to this room not delivered here yet: token → their callback."""


class RoomFeeds:
    """The rooms this server follows, each delivered in order to `handler`."""

    def __init__(self, link: RedisLink) -> None:
        self.link = link
        self.handler: BrokerHandler | None = None
        """Set when the broker starts."""
        self._feeds: dict[str, _Feed] = {}

    def position(self, room: str) -> RoomPosition:
        feed = self.following(room)
        return RoomPosition(0, 0) if feed is None else RoomPosition(feed.epoch, feed.delivered)

    def following(self, room: str) -> _Feed | None:
        """The feed of `room` if it is followed and its position known."""
        feed = self._feeds.get(room)
        if feed is None or not feed.ready.done() or feed.ready.exception() is not None:
            return None
        return feed

    def follow(self, rooms: Iterable[str], ready: Ready) -> None:
        todo = []
        for room in rooms:
            feed = self._feeds.get(room)
            if feed is None:
                feed = self._feeds[room] = _Feed()
                self.link.spawn(self._follow(room, feed))
            if not feed.ready.done():
                todo.append(feed.ready)
            elif feed.ready.exception() is not None:  # failed before: try again
                feed = self._feeds[room] = _Feed()
                self.link.spawn(self._follow(room, feed))
                todo.append(feed.ready)
        if not todo:
            ready(None)
            return

        async def wait() -> None:
            failed = [r for r in await asyncio.gather(*todo, return_exceptions=True) if r]
            ready(failed[0] if failed and isinstance(failed[0], Exception) else None)

        self.link.spawn(wait())

    async def _follow(self, room: str, feed: _Feed) -> None:
        try:
            await self.link.subscribe_many(  # (one slot: the room's hash tag)
                {
                    keys.room_key(room, "messages"): self.on_message,
                    keys.room_key(room, "typing"): self.on_typing,
                }
            )
            feed.epoch, feed.delivered = await self.read_position(room)
        except Exception as exc:
            log.warning("redis: cannot follow %s: %s", room, exc)
            if self._feeds.get(room) is feed:
                del self._feeds[room]
            feed.ready.set_exception(BrokerUnavailable(f"cannot follow {room}: {exc}"))
            feed.ready.exception()  # seen: whoever waits hears of it through `ready`
            return
        feed.ready.set_result(None)

    async def read_position(self, room: str) -> tuple[int, int]:
        """The room's epoch (made now if it has none) and its last seq, in Redis."""
        epoch, seq = await self.link.run_script(
            EPOCH, [keys.room_key(room, "epoch"), keys.room_key(room, "seq")], [random_epoch(room)]
        )
        return int(epoch), int(seq)

    def unfollow(self, room: str) -> None:
        feed = self._feeds.pop(room, None)
        if feed is not None:
            self._fail_pending(feed, "left the room")
            self.link.spawn(self.link.unsubscribe(keys.room_key(room, "messages")))
            self.link.spawn(self.link.unsubscribe(keys.room_key(room, "typing")))

    def expect(self, room: str, token: str, done: PublishDone) -> _Feed | None:
        """Our post `token` to `room` is on its way: call `done` when it is delivered here."""
        feed = self.following(room)
        if feed is not None:
            feed.pending[token] = done
        return feed

    # --- delivery --------------------------------------------------------

    async def on_message(self, data: bytes) -> None:
        """A room message published on a room's channel: deliver it in order."""
        room, seq, sender, text, ts, action, token, epoch = msgpack.unpackb(data)
        feed = self.following(room)
        if feed is None:
            return  # not followed (yet): the position read after subscribing counts it
        async with feed.lock:
            if self._feeds.get(room) is not feed:
                return
            if epoch != feed.epoch:
                current, _ = await self.read_position(room)
                if current != epoch:
                    return  # from an epoch that is gone already
                self._reset(room, feed, epoch)
            if seq <= feed.delivered:
                return
            if seq > feed.delivered + 1:
                await self._fill(room, feed, seq - 1)
            if seq == feed.delivered + 1:
                self._delivered(Message(room, seq, sender, text, ts, action == "1"), feed, token)

    async def on_typing(self, data: bytes) -> None:
        """Someone typing in a room this server follows: its members here hear it."""
        event = typing_event(data)
        if event is not None and event.room in self._feeds:
            assert self.handler is not None
            self.handler.on_typing(event)

    def _reset(self, room: str, feed: _Feed, epoch: int) -> None:
        """The room has a new epoch: its members reload, and it is delivered again from 1."""
        log.warning(
            "redis: %s has a new epoch (Redis lost its history?); its members reload it", room
        )
        feed.epoch, feed.delivered = epoch, 0
        assert self.handler is not None
        self.handler.on_room_reset(room, RoomPosition(epoch, 0))

    def _delivered(self, message: Message, feed: _Feed, token: str) -> None:
        feed.delivered = message.seq
        done = feed.pending.pop(token, None)
        if done is not None:
            done(Published(message, feed.epoch, new=True))
        assert self.handler is not None
        self.handler.on_message(message, feed.epoch)

    async def _fill(self, room: str, feed: _Feed, upto: int) -> None:
        """Deliver what `room` missed, up to `upto`, from its stream (holding its lock)."""
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
            self._fail_pending(feed, "its history was trimmed")

    def fail_pending(self, why: str) -> None:
        """No post still on its way will be delivered here: their senders hear so."""
        for feed in self._feeds.values():
            self._fail_pending(feed, why)

    @staticmethod
    def _fail_pending(feed: _Feed, why: str) -> None:
        """Posts that will not be delivered here: their senders hear so (a retry is answered)."""
        pending, feed.pending = feed.pending, {}
        for done in pending.values():
            done(BrokerUnavailable(why))

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
        """Compare each followed room with Redis; deliver what is missing, reset a lost epoch."""
        rooms = [room for room in self._feeds if self.following(room) is not None]
        if not rooms:
            return
        for room, (epoch, seq) in zip(rooms, await positions(self.link, rooms), strict=True):
            feed = self.following(room)
            if feed is None:
                continue
            async with feed.lock:
                if self._feeds.get(room) is not feed:
                    continue
                if epoch != feed.epoch:
                    epoch, seq = await self.read_position(room)
                    self._reset(room, feed, epoch)
                if seq > feed.delivered:
                    log.info("redis: %s missed %d message(s); delivering them from Redis",
                             room, seq - feed.delivered)  # fmt: skip
                    await self._fill(room, feed, seq)


def typing_payload(event: TypingEvent) -> bytes:
    """What goes on a typing channel for `event`."""
    data: bytes = msgpack.packb([event.name, event.key, event.room, event.target_key])
    return data


def typing_event(data: bytes) -> TypingEvent | None:
    """The event in what a typing channel carried (None if it is not one: a later version may
    add fields after these)."""
    try:
        name, key, room, target_key, *_ = msgpack.unpackb(data)
    except (ValueError, TypeError):
        return None
    if not all(isinstance(v, str) for v in (name, key, room, target_key)):
        return None
    return TypingEvent(name, key, room, target_key)


async def positions(link: RedisLink, rooms: list[str]) -> list[tuple[int, int]]:
    """Each room's epoch (0: none) and last seq (0: no history) as Redis has them."""
    async with link.redis.pipeline(transaction=False) as pipe:
        for room in rooms:
            pipe.get(keys.room_key(room, "epoch"))
            pipe.get(keys.room_key(room, "seq"))
        answers = await pipe.execute()
    return [(int(answers[i] or 0), int(answers[i + 1] or 0)) for i in range(0, len(answers), 2)]
