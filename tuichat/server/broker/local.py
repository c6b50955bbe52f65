"""The broker of a single server: numbering and de-duplication here, history in SQLite or memory.

After centrifuge's `broker_memory.go`: `publish` numbers the message, remembers its
client id, hands it to the store and, once the store says it is durable, calls
the same handler the Redis broker calls from its subscription. A single server
has no peers (`LocalPeers`): it is a cluster of one.

A room's numbering (its epoch and last seq) is read from the store when the room is
first followed and forgotten again once nobody here follows it and all of it is
stored, so a server holds only the rooms in use, however many the history has. A
sender's recent client ids in a room are read when they first post there
(`tuichat.server.broker.retries`). When the store cannot write, the messages it was
given fail (`unavailable`), and the rooms' numbering goes back to what is stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import secrets
import time
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any

from tuichat.chat.rules import ModEvent
from tuichat.chat.search import SearchQuery
from tuichat.protocol import Message, ModEntry, PrivateMessage, RoomEvent, SearchHit
from tuichat.protocol.auth import new_server_id
from tuichat.server.broker.base import (
    Broker,
    BrokerHandler,
    BrokerUnavailable,
    ClaimDone,
    Held,
    LocalUser,
    ModerationDone,
    Peers,
    Post,
    PrivateDone,
    PrivatePost,
    PublishDone,
    Published,
    PublishedPrivate,
    ReadMarker,
    RemoteUser,
    RoomClaim,
    RoomPosition,
    Sees,
    TypingEvent,
    room_event,
)
from tuichat.server.broker.retries import RetryWindows, Window
from tuichat.server.history import (
    HistoryStore,
    LoadedState,
    StoredMessage,
    StoredPrivate,
    StoredRead,
)
from tuichat.server.history.base import merged

logger = logging.getLogger("tuichat.server")

MarkerDone = Callable[[ReadMarker | Exception], None]

REMEMBERED_IDS = 131_072
"""Client ids held in memory for all rooms and senders together (about 250 bytes each); past
it, the windows of the senders quiet longest are read back from the store when needed."""
MARKERS_EVERY = 0.1
"""Seconds read markers wait to be stored together: a room where everyone reads as the
messages come costs one write of many markers, not one write (and one sync) each."""
READS_AT_STOP = 2.0
"""Seconds `stop` waits for the reads that posts wait for, before the store closes."""


def random_epoch(room: str) -> int:
    """A random epoch for a new room (fits in 53 bits, so every language can hold it)."""
    return secrets.randbelow(2**53 - 1) + 1


@dataclass(slots=True)
class _RoomLog:
    """A room's numbering: its epoch, the last seq given out and the last one stored."""

    epoch: int
    seq: int = 0
    stored: int = 0
    followed: bool = False
    storing: dict[int, list[PublishDone]] = field(default_factory=dict)
    """The seqs given out and not stored yet, with the retries waiting for each."""
    waiting: int = 0
    """Posts waiting for their sender's client ids to be read from the store."""


@dataclass(slots=True)
class _WaitingRead:
    """A read marker waiting to be stored (`MARKERS_EVERY`), and who waits for it."""

    user_key: str
    marker: ReadMarker
    moved_at: int
    dones: list[MarkerDone]


class LocalBroker(Broker):
    """Numbers messages in this process and stores them in a `HistoryStore`."""

    def __init__(
        self,
        store: HistoryStore,
        loaded: LoadedState,
        recent_ids: int,
        *,
        new_epoch: Callable[[str], int] = random_epoch,
        where: str = "memory only",
        remembered_ids: int = REMEMBERED_IDS,
    ) -> None:
        self.store = store
        self._where = where
        self._recent_limit = recent_ids
        self._new_epoch = new_epoch
        self._rooms: dict[str, _RoomLog] = {}
        """The rooms followed here, and those with messages still being stored."""
        self._loading: dict[str, list[Callable[[Exception | None], None]]] = {}
        """Rooms being read from the store, and what waits for each."""
        self._sent: RetryWindows[tuple[int, int]] = RetryWindows(recent_ids, remembered_ids)
        """Each sender's recent client ids per room → (seq, ts)."""
        self._sent_privates: RetryWindows[int] = RetryWindows(recent_ids, remembered_ids // 4)
        """Each sender's recent client ids of private messages → pid."""
        self._last_pid = loaded.last_private_id
        self._storing_privates: dict[int, list[PrivateDone]] = {}
        """Private messages being stored, by pid: the sender's `done`, then retries'."""
        self._handler: BrokerHandler | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._markers: dict[tuple[str, str], _WaitingRead] = {}
        """Read markers waiting to be stored (`MARKERS_EVERY`), with who waits for each."""
        self._markers_due: asyncio.TimerHandle | None = None
        self._unkeyed = loaded.unkeyed_rooms
        self._claiming: dict[str, list[tuple[str, ClaimDone]]] = {}
        """Comparison keys being claimed, and the claims of the same key waiting for them."""
        self._rules = loaded.rules

    async def start(self, handler: BrokerHandler) -> None:
        self._handler = handler
        handler.on_rules(list(self._rules))

    async def stop(self) -> None:
        self._store_markers()
        # posts waiting for a read from the store are numbered and handed to it first
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(READS_AT_STOP):
                while self._tasks:
                    await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.store.close()  # everything accepted is durable, and its callbacks are queued

    def describe(self) -> str:
        return self._where

    def rooms_in_memory(self) -> int:
        """How many rooms' numbering this server holds now (followed, or still storing)."""
        return len(self._rooms)

    def ids_in_memory(self) -> int:
        """How many client ids this server holds now, to recognise retries."""
        return self._sent.held + self._sent_privates.held

    def position(self, room: str) -> RoomPosition:
        log = self._rooms.get(room)
        return RoomPosition(0, 0) if log is None else RoomPosition(log.epoch, log.stored)

    def follow(self, rooms: Iterable[str], ready: Callable[[Exception | None], None]) -> None:
        wanted = list(dict.fromkeys(rooms))
        remaining = len(wanted)
        errors: list[Exception] = []

        def loaded(room: str, error: Exception | None) -> None:
            nonlocal remaining
            if error is None:
                self._rooms[room].followed = True
            else:
                errors.append(error)
            remaining -= 1
            if not remaining:
                ready(errors[0] if errors else None)

        if not wanted:
            ready(None)
        for room in wanted:
            self._with_room(room, functools.partial(loaded, room))

    def unfollow(self, room: str) -> None:
        log = self._rooms.get(room)
        if log is not None:
            log.followed = False
            self._forget_if_idle(room)

    def _with_room(self, name: str, then: Callable[[Exception | None], None]) -> None:
        """Call `then(None)` once the room's numbering is here (read from the store if it is
        not), or `then(error)` if the store cannot say."""
        if name in self._rooms:
            then(None)
            return
        waiting = self._loading.get(name)
        if waiting is not None:
            waiting.append(then)
            return
        self._loading[name] = [then]
        self._spawn(self._read_room(name))

    async def _read_room(self, name: str) -> None:
        error: Exception | None = None
        try:
            record = await self.store.room(name)
        except Exception as exc:
            error = BrokerUnavailable(f"cannot read the history of {name}: {exc}")
        else:
            if record is None:  # nothing stored: a new room, or one that never had a message
                self._rooms[name] = _RoomLog(self._new_epoch(name))
            else:
                self._rooms[name] = _RoomLog(record.epoch, record.seq, record.seq)
        for then in self._loading.pop(name):
            try:
                then(error)
            except Exception:  # one failing request must not leave the others waiting
                logger.exception("carrying on after reading %s failed", name)
        self._forget_if_idle(name)

    def _forget_if_idle(self, room: str) -> None:
        """Forget a room nobody here follows once all of it is stored (the store has it)."""
        log = self._rooms.get(room)
        if log is not None and not log.followed and not log.storing and not log.waiting:
            del self._rooms[room]
            self._sent.drop_room(room)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def publish(self, post: Post, done: PublishDone) -> None:
        log = self._rooms.get(post.room)
        if log is None:  # not followed here (yet): read its numbering first
            self._with_room(post.room, lambda error: self._resume(post, done, error))
            return
        key = (post.room, post.sender_key)
        window = self._sent.get(key)
        if window is None and post.client_id:
            window = self._sent.open(key)
            self._spawn(self._read_window(key, window))
        if window is not None and not window.loaded:  # the sender's posts wait, in order
            log.waiting += 1

            def loaded(error: Exception | None) -> None:
                log.waiting -= 1
                self._resume(post, done, error)

            window.waiting.append(loaded)
            return
        if post.client_id:
            assert window is not None
            earlier = window.ids.get(post.client_id)
            if earlier is not None:
                self._retried(log, post, earlier, done)
                return
        failure = self.store.failure()
        if failure is not None:
            done(BrokerUnavailable(f"cannot store messages: {failure}"))
            return
        self._number(log, post, window, done)

    def _resume(self, post: Post, done: PublishDone, error: Exception | None) -> None:
        """Carry on with a post that waited for the store."""
        if error is None:
            self.publish(post, done)
        else:
            done(error)
            self._forget_if_idle(post.room)

    async def _read_window(self, key: tuple[str, str], window: Window[tuple[int, int]]) -> None:
        room, sender_key = key
        try:
            stored = await self.store.sent(room, sender_key, self._recent_limit)
        except Exception as exc:
            self._sent.failed(key, window, BrokerUnavailable(f"cannot read {room}: {exc}"))
        else:
            self._sent.fill(window, stored)

    def _retried(
        self, log: _RoomLog, post: Post, earlier: tuple[int, int], done: PublishDone
    ) -> None:
        """Answer a retry with the original message (once it is stored)."""
        seq, ts = earlier
        waiting = log.storing.get(seq)
        if waiting is not None:
            waiting.append(done)
        else:
            done(Published(room_event(post, seq, ts), log.epoch, new=False))

    def _number(
        self,
        log: _RoomLog,
        post: Post,
        window: Window[tuple[int, int]] | None,
        done: PublishDone,
    ) -> None:
        log.seq += 1
        seq, epoch = log.seq, log.epoch
        message = room_event(post, seq, post.ts)
        if post.client_id:
            assert window is not None
            window.storing += 1
            self._sent.add(window, post.client_id, (seq, post.ts))
        log.storing[seq] = []

        def durable() -> None:
            retries = log.storing.pop(seq, [])
            log.stored = max(log.stored, seq)
            if window is not None and post.client_id:
                window.storing -= 1
            done(Published(message, epoch, new=True))
            assert self._handler is not None
            self._handler.on_message(message, epoch)
            for retry in retries:
                retry(Published(message, epoch, new=False))
            self._forget_if_idle(post.room)

        def failed(error: Exception) -> None:
            retries = log.storing.pop(seq, [])
            if window is not None and post.client_id:
                window.storing -= 1
                self._sent.discard(window, post.client_id)
            if not log.storing:  # every message after the failed one failed too
                log.seq = log.stored
            refusal = BrokerUnavailable(f"cannot store messages: {error}")
            for waiting in (done, *retries):
                waiting(refusal)
            self._forget_if_idle(post.room)

        record = StoredMessage(message, epoch, post.sender_key, post.client_id)
        self.store.append([record], durable, failed)

    def publish_private(self, post: PrivatePost, done: PrivateDone) -> None:
        key = ("", post.sender_key)
        window = self._sent_privates.get(key)
        if window is None and post.client_id:
            window = self._sent_privates.open(key)
            self._spawn(self._read_sent_privates(key, window))
        if window is not None and not window.loaded:  # the sender's posts wait, in order

            def loaded(error: Exception | None) -> None:
                if error is None:
                    self.publish_private(post, done)
                else:
                    done(error)

            window.waiting.append(loaded)
            return
        if post.client_id:
            assert window is not None
            earlier = window.ids.get(post.client_id)
            if earlier is not None:
                waiting = self._storing_privates.get(earlier)
                if waiting is None:
                    self._spawn(self._answer_private_retry(earlier, done))
                else:
                    waiting.append(done)
                return
        if post.refusal is not None:
            done(post.refusal)
            return
        failure = self.store.failure()
        if failure is not None:
            done(BrokerUnavailable(f"cannot store messages: {failure}"))
            return
        self._last_pid += 1
        pid = self._last_pid
        message = PrivateMessage(post.sender, post.target, post.text, post.ts, post.action, pid=pid)
        if post.client_id:
            assert window is not None
            window.storing += 1
            self._sent_privates.add(window, post.client_id, pid)
        self._storing_privates[pid] = [done]

        def durable() -> None:
            if window is not None and post.client_id:
                window.storing -= 1
            for index, waiting in enumerate(self._storing_privates.pop(pid, ())):
                waiting(PublishedPrivate(message, new=index == 0))
            assert self._handler is not None  # the sender is answered first, then the copies go
            self._handler.on_private(
                message, post.sender_key, "" if post.hidden else post.target_key
            )

        def failed(error: Exception) -> None:
            if window is not None and post.client_id:
                window.storing -= 1
                self._sent_privates.discard(window, post.client_id)
            refusal = BrokerUnavailable(f"cannot store messages: {error}")
            for waiting in self._storing_privates.pop(pid, ()):
                waiting(refusal)  # the pid is not given out again: a gap, never a reuse

        record = StoredPrivate(
            message, post.sender_key, post.target_key, post.client_id, hidden=post.hidden
        )
        self.store.append([record], durable, failed)

    async def _read_sent_privates(self, key: tuple[str, str], window: Window[int]) -> None:
        try:
            stored = await self.store.sent_privates(key[1], self._recent_limit)
        except Exception as exc:
            error = BrokerUnavailable(f"cannot read the private messages: {exc}")
            self._sent_privates.failed(key, window, error)
        else:
            self._sent_privates.fill(window, stored)

    async def _answer_private_retry(self, pid: int, done: PrivateDone) -> None:
        """Answer the retry of a stored private message with the original, read back."""
        try:
            original = await self.store.private(pid)
        except Exception as exc:
            done(BrokerUnavailable(f"cannot read the private messages: {exc}"))
            return
        if original is None:  # kept in memory only, and dropped since
            done(BrokerUnavailable("that private message is no longer kept"))
        else:
            done(PublishedPrivate(original, new=False))

    async def page(self, room: str, before: int, limit: int) -> tuple[RoomPosition, list[Message]]:
        position = await self.stored_position(room)
        if not position.seq:
            return position, []
        return position, await self.store.page(room, before, limit)

    async def stored_position(self, room: str) -> RoomPosition:
        log = self._rooms.get(room)
        if log is not None:
            return RoomPosition(log.epoch, log.stored)
        record = await self.store.room(room)  # nobody here follows it: the store knows
        return RoomPosition(0, 0) if record is None else RoomPosition(record.epoch, record.seq)

    async def replay(self, room: str, after: int, upto: int) -> list[RoomEvent]:
        return await self.store.after(room, after, upto)

    async def held(self, room: str, seq: int, user_key: str) -> Held | None:
        return await self.store.held(room, seq, user_key)

    async def search(self, query: SearchQuery, sees: Sees) -> tuple[list[SearchHit], str]:
        return await self.store.search(query, sees)

    async def privates(self, user_key: str, after: int, limit: int) -> list[PrivateMessage]:
        return await self.store.privates(user_key, after, limit)

    def mark_read(self, user_key: str, marker: ReadMarker, done: MarkerDone) -> None:
        # no other server to tell: `on_read` is never called here
        key = (user_key, marker.conversation)
        waiting = self._markers.get(key)
        if waiting is None:
            self._markers[key] = _WaitingRead(user_key, marker, time.time_ns() // 1_000_000, [done])
        else:  # a later one for the same conversation: stored instead
            waiting.marker, _ = merged(waiting.marker, marker)
            waiting.dones.append(done)
        if self._markers_due is None:
            loop = asyncio.get_running_loop()
            self._markers_due = loop.call_later(MARKERS_EVERY, self._store_markers)

    def _store_markers(self) -> None:
        """Hand the waiting read markers to the store together (one write)."""
        if self._markers_due is not None:
            self._markers_due.cancel()
            self._markers_due = None
        if not self._markers:
            return
        waiting = list(self._markers.values())
        self._markers = {}

        def stored(kept: list[ReadMarker]) -> None:
            for marker, read in zip(kept, waiting, strict=True):
                for done in read.dones:
                    done(marker)

        def failed(error: Exception) -> None:
            refusal = BrokerUnavailable(f"cannot store the read marker: {error}")
            for read in waiting:
                for done in read.dones:
                    done(refusal)

        reads = [StoredRead(read.user_key, read.marker, read.moved_at) for read in waiting]
        self.store.save_reads(reads, stored, failed)

    async def read_markers(self, user_key: str) -> list[ReadMarker]:
        return await self.store.read_markers(user_key)

    async def unread_privates(self, user_key: str, limit: int) -> list[PrivateMessage]:
        return await self.store.unread_privates(user_key, limit)

    async def conversation(
        self, user_key: str, other_key: str, before: int, limit: int
    ) -> list[PrivateMessage]:
        return await self.store.conversation(user_key, other_key, before, limit)

    def last_private_id(self) -> int:
        return self._last_pid

    def unkeyed_rooms(self) -> frozenset[str]:
        return self._unkeyed

    def claim_room(self, room: str, key: str, done: ClaimDone) -> None:
        # one event loop is the only writer: claims of one key wait for each other, so the
        # store's answer (read) and the claim (written) cannot be overtaken by another's
        waiting = self._claiming.get(key)
        if waiting is not None:
            waiting.append((room, done))
            return
        self._claiming[key] = []
        self._spawn(self._claim_room(room, key, done))

    async def _claim_room(self, room: str, key: str, done: ClaimDone) -> None:
        result: RoomClaim | Exception
        try:
            holder, known = await self.store.room_claim(room, key)
            if holder is not None and (holder == room or not known):
                result = RoomClaim(holder)
            elif holder is not None:  # a room of its own whose look-alike has the key
                result = RoomClaim(room, keyed=False)
            else:
                stored: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                self.store.save_room_key(
                    room, key, lambda: _resolve(stored), lambda error: _reject(stored, error)
                )
                await stored
                result = RoomClaim(room, new=not known)
        except Exception as exc:
            result = BrokerUnavailable(f"cannot find the room {room}: {exc}")
        try:
            done(result)
        finally:
            for other, then in self._claiming.pop(key, ()):
                self.claim_room(other, key, then)

    def moderate(self, event: ModEvent, done: ModerationDone) -> None:
        failure = self.store.failure()
        if failure is not None:
            done(BrokerUnavailable(f"cannot store it: {failure}"))
            return

        def durable() -> None:
            done(None)
            assert self._handler is not None
            self._handler.on_moderation(event)

        def failed(error: Exception) -> None:
            done(BrokerUnavailable(f"cannot store it: {error}"))

        self.store.save_moderation(event, durable, failed)

    async def mod_log(self, room: str | None, before: int, limit: int) -> list[ModEntry]:
        return await self.store.mod_log(room, before, limit)

    def typing(self, event: TypingEvent) -> None:
        assert self._handler is not None
        self._handler.on_typing(event)  # nobody else to tell: it is delivered here, at once


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _reject(future: asyncio.Future[None], error: Exception) -> None:
    if not future.done():
        future.set_exception(error)


class LocalPeers(Peers):
    """No other servers: names and tokens are kept in the local store."""

    def __init__(self, store: HistoryStore, loaded: LoadedState) -> None:
        self.store = store
        self._loaded = loaded
        self._server_id = loaded.server_id or new_server_id()  # in memory: a new chat each start

    async def start(self, handler: BrokerHandler) -> None:
        handler.on_tokens(self._loaded.tokens)
        handler.on_identities(self._loaded.identities)

    async def stop(self) -> None:
        pass

    def find(self, name: str) -> RemoteUser | None:
        return None

    def names(self, room: str) -> list[str]:
        return []

    def counts(self) -> dict[str, int]:
        return {}

    def count(self, room: str) -> int:
        return 0

    def logged_in(self, user: LocalUser) -> None:
        pass

    def joined(self, user: LocalUser, room: str, *, echo: bool = False) -> None:
        pass

    def parted(self, user: LocalUser, room: str, reason: str, *, echo: bool = False) -> None:
        pass

    def keys(self, room: str) -> list[str]:
        return []

    def in_room(self, user_key: str, room: str) -> bool:
        return False

    def rooms_of(self, user_key: str) -> list[str]:
        return []

    def devices(self, user_key: str) -> int:
        return 0

    def servers_of(self, user_key: str) -> list[RemoteUser]:
        return []

    def sessions_changed(self, user: LocalUser) -> None:
        pass

    def away_changed(self, user: LocalUser) -> None:
        pass

    def away(self, user_key: str) -> tuple[str | None, int]:
        return None, 0

    def away_users(self) -> dict[str, tuple[str, str]]:
        return {}

    def logged_out(self, user_key: str, name: str, reason: str) -> None:
        pass

    def kick(self, user: RemoteUser, reason: str = "replaced") -> None:
        pass

    def save_token(self, user_key: str, token_hash: str) -> None:
        self.store.save_token(user_key, token_hash)

    def claim(
        self, name_keys: Iterable[str], name: str, owner: str, now: int,
        done: Callable[[bool | Exception], None], *, replacing: str | None = None,
    ) -> None:  # fmt: skip
        # one event loop is the only writer: the server checked that the name is free, and
        # holds its keys for this hello until it is answered; the answer waits for the disk,
        # so a registration the user was welcomed with outlives a crash

        def failed(error: Exception) -> None:  # a name that cannot be stored is not registered
            done(BrokerUnavailable(f"cannot store the registration: {error}"))

        self.store.save_identity(list(name_keys), name, owner, now, lambda: done(True), failed)

    async def server_id(self) -> str:
        return self._server_id
