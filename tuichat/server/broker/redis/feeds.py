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

Moderation steps (`ModerationFeed`) go on one channel every server hears, and what they add
up to, the rules, is read in full at start and after a lost link.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import msgpack

from tuichat.chat import verbs
from tuichat.chat.rules import ModEvent, Rule
from tuichat.protocol import Message, RoomEvent, Update
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
from tuichat.server.broker.redis.entries import (
    Kept,
    event_from_entry,
    is_verb,
    number,
    published_event,
    rule_field,
    stored_rule,
)
from tuichat.server.broker.redis.link import RedisLink
from tuichat.server.broker.redis.scripts import EPOCH, RULES

log = logging.getLogger("tuichat.server")

CHECK_EVERY = 2.0
"""Seconds between checks that every followed room was delivered in full and kept its epoch."""

CARRIED = 10_000
"""Our moderation steps remembered as handed on (a step sent again is not handed on twice)."""

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
        room, seq, sender, text, ts, action, token, epoch, *more = msgpack.unpackb(data)
        event: RoomEvent
        if more and more[0]:  # a verb: its target and whether a reaction is on
            verb, target, on = more
            event = Update(room, seq, sender, ts, verb, target, text, None if not on else on == "1")
        else:
            event = Message(room, seq, sender, text, ts, action == "1", more[1] if more else None)
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
                self._delivered(event, feed, token)

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

    def _delivered(self, message: RoomEvent, feed: _Feed, token: str) -> None:
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
        events = await events_of(self.link, room, entries, quotes=False)
        for (_, fields), message in zip(entries, events, strict=True):
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


class ModerationFeed:
    """The moderation steps as this server takes them, and every rule as it reads them.

    Each step Redis stores gets a version (`keys.RULES_VERSION`) and is published with it on one
    channel every server hears, in the order stored. A server takes its own steps when Redis
    answers it, which may come before or after the publications of steps stored just before;
    and it reads every rule at start and after a lost link, while steps go on being published.
    So a step's rule is taken only if nothing newer was taken for the same scope, kind and
    subject here, and a full read covers every step up to its version: each server ends with
    the rules Redis has, whatever order their news came in.

    A step whose rules were overtaken here is still handed on (with only the rules it still
    sets: none, maybe), since what it says happened did happen: so what a step does to the
    people here (who is taken out of a room, say) must be decided from the rules as they stand
    once it is taken, not from its action. A server's own step is handed on once, when its
    answer comes (Redis's answer to a step sent again after a lost answer included); if no
    answer comes but its publication was heard, or comes later, it was stored after all, and is
    handed on then.
    """

    def __init__(self, link: RedisLink, origin: str) -> None:
        self.link = link
        self.origin = origin
        """This server's id: its own steps are handed on when Redis answers (their publications
        only if no answer did)."""
        self.handler: BrokerHandler | None = None
        """Set when the broker starts."""
        self.top = 0
        """The highest version known stored (a step's version is above it: see `MODERATE`)."""
        self._floor = 0
        """The version of the last full read: every older step is in it."""
        self._heard = 0
        """The version of the last step heard on the channel."""
        self._taken: dict[str, tuple[int, Rule]] = {}
        """Rules taken here, by field, with their step's version, while an older step may still
        come (ours not answered yet, or a full read under way)."""
        self._held: list[tuple[int, ModEvent]] | None = []
        """Steps heard before the first full read: delivered after it."""
        self._reading = asyncio.Lock()
        self._unanswered: dict[str, int] = {}
        """Our steps sent to Redis and not answered yet, by id: the version their publication
        was heard with (0: not heard yet)."""
        self._carried: OrderedDict[str, None] = OrderedDict()
        """Our latest steps handed on here (by id), so that none is handed on twice."""

    def sending(self, event: ModEvent) -> None:
        """Our step `event` is on its way to Redis (`answered` follows)."""
        self._unanswered.setdefault(event.id, 0)

    def answered(self, event: ModEvent, version: int | None) -> int | None:
        """Redis answered our step `event`: it is stored as `version` (a step sent again: as it
        was the first time), or (None) no answer came. The version it is stored as, as far as
        this server knows (None: not stored, as far as it knows); `carry_out` follows if any."""
        heard = self._unanswered.pop(event.id, 0)
        if version is None:
            version = heard or None  # (its publication says it was stored)
        if version is not None:
            self.top = max(self.top, version)
        else:
            self._forget()
        return version

    def carry_out(self, event: ModEvent, version: int) -> None:
        """Hand on our step `event`, stored as `version` (unless it was handed on here already:
        the same step sent again)."""
        if event.id not in self._carried:
            self._carry(event, version)
        self._forget()

    async def on_publication(self, data: bytes) -> None:
        """A step published on the moderation channel (ours too), in the order stored."""
        published = published_event(data)
        if published is None:
            return
        version, origin, event = published
        self._heard = max(self._heard, version)
        self.top = max(self.top, version)
        if origin != self.origin:
            self._take(event, version)
        elif event.id in self._unanswered:  # handed on once Redis answers
            self._unanswered[event.id] = version
        elif event.id not in self._carried:  # stored, though Redis's answer did not come
            self._carry(event, version)
        self._forget()

    async def load(self) -> None:
        """Read every rule and hand them to the handler (`on_rules`), with what this server took
        from steps stored after the read."""
        async with self._reading:
            before = max(self._floor, self.top)
            version, flat = await self.link.run_script(RULES, [keys.RULES, keys.RULES_VERSION], [])
            version = int(version)
            rules: dict[str, Rule] = {}
            for stored, value in zip(flat[::2], flat[1::2], strict=True):
                rule = stored_rule(stored, value)
                if rule is not None:
                    rules[rule_field(rule)] = rule
            if version < before:
                log.warning("redis: the moderation rules went back (Redis lost data?); "
                            "taking them as Redis has them now")  # fmt: skip
                self._taken.clear()
                self._heard = self.top = version
            for field_, (taken, rule) in self._taken.items():
                if taken > version:
                    rules[field_] = rule
            self._taken = {f: t for f, t in self._taken.items() if t[0] > version}
            self._floor = version
            self.top = max(self.top, version)
            assert self.handler is not None
            self.handler.on_rules([rule for rule in rules.values() if rule.value is not None])
            held, self._held = self._held or [], None
            for taken, event in held:
                self._take(event, taken)
        self._forget()

    async def after_reconnect(self) -> None:
        """The channel was lost a while (steps published meanwhile were not heard): read every
        rule again, in the background, until Redis answers."""
        self.link.spawn(self._reload())

    async def check(self) -> None:
        """Every few seconds: if Redis stored a step that this server has not heard of since the
        last look (its publication lost, the link not: a subscription made again by the client
        library itself), read every rule again."""
        missing = 0
        while not self.link.closing:
            await asyncio.sleep(CHECK_EVERY)
            try:
                stored = int(await self.link.redis.get(keys.RULES_VERSION) or 0)
                if missing and self.top < missing:
                    log.info("redis: moderation steps were not heard; reading the rules again")
                    await self.load()
                missing = stored if stored > self.top else 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.debug("redis: moderation check failed: %s", exc)

    async def _reload(self) -> None:
        delay = 0.05
        while not self.link.closing:
            try:
                await self.load()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("redis: cannot read the moderation rules (%s); trying again", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)

    def _carry(self, event: ModEvent, version: int) -> None:
        """Hand on our step `event`, and remember that it was."""
        self._carried[event.id] = None
        if len(self._carried) > CARRIED:
            self._carried.popitem(last=False)
        self._take(event, version)

    def _take(self, event: ModEvent, version: int) -> None:
        """Hand `event` on, with those of its rules that nothing newer overtook here."""
        if self._held is not None:
            self._held.append((version, event))
            return
        kept: list[Rule] = []
        for rule in event.rules:
            field_ = rule_field(rule)
            taken = self._taken.get(field_)
            if version > self._floor and (taken is None or version > taken[0]):
                self._taken[field_] = (version, rule)
                kept.append(rule)
        if len(kept) < len(event.rules):
            event = dataclasses.replace(event, rules=tuple(kept))
        assert self.handler is not None
        self.handler.on_moderation(event)

    def _forget(self) -> None:
        """Forget the rules taken that no step still to come is older than: once ours are
        answered (and no full read is under way), every step to come is newer than the last one
        heard."""
        if not self._unanswered and not self._reading.locked():
            self._taken = {f: t for f, t in self._taken.items() if t[0] > self._heard}


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


Entry = tuple[bytes, dict[bytes, bytes]]


async def events_of(
    link: RedisLink, room: str, entries: list[Entry], *, quotes: bool = True
) -> list[RoomEvent]:
    """The messages (as they are now, with a reply's quote unless not `quotes`) and verbs of
    a room's stream entries, read with what the room's hashes hold of them."""
    if not entries:
        return []
    seqs = [number(entry_id) for entry_id, _ in entries]
    targets = sorted(
        {int(f[b"g"]) for _, f in entries if b"g" in f and not is_verb(f)} if quotes else set()
    )
    texts, state, reactions = (keys.room_key(room, part) for part in ("texts", "state", "reacts"))
    async with link.redis.pipeline(transaction=False) as pipe:
        pipe.hmget(texts, seqs)
        pipe.hmget(state, seqs)
        pipe.hmget(reactions, seqs)
        if targets:
            pipe.hmget(texts, targets)
            pipe.hmget(state, targets)
            for target in targets:
                pipe.xrange(keys.room_key(room, "log"), f"{target}-0", f"{target}-0")
        results = await pipe.execute()
    quoted = {}
    if targets:
        for index, target in enumerate(targets):
            original = results[5 + index]
            if original and not is_verb(original[0][1]):
                kept = Kept(results[3][index], results[4][index])
                message = event_from_entry(room, original[0][0], original[0][1], kept)
                assert isinstance(message, Message)
                quoted[target] = verbs.quote_of(message)
    events = []
    for i, (entry_id, fields) in enumerate(entries):
        kept = Kept(results[0][i], results[1][i], results[2][i])
        quote = None if is_verb(fields) else quoted.get(int(fields.get(b"g", b"0")))
        events.append(event_from_entry(room, entry_id, fields, kept, quote))
    return events
