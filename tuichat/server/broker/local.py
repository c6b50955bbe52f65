"""The broker of a single server: numbering and de-duplication here, history in SQLite or memory.

After centrifuge's `broker_memory.go`: `publish` numbers the message, remembers its
client id, hands it to the store and, once the store says it is durable, calls
the same handler the Redis broker calls from its subscription. A single server
has no peers (`LocalPeers`): it is a cluster of one.
"""

from __future__ import annotations

import secrets
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from tuichat.protocol import Message, PrivateMessage
from tuichat.protocol.auth import new_server_id
from tuichat.server.broker.base import (
    Broker,
    BrokerHandler,
    LocalUser,
    Peers,
    Post,
    PrivateDone,
    PrivatePost,
    PublishDone,
    Published,
    PublishedPrivate,
    RemoteUser,
    RoomPosition,
)
from tuichat.server.history import HistoryStore, LoadedState, StoredMessage, StoredPrivate


def random_epoch(room: str) -> int:
    """A random epoch for a new room (fits in 53 bits, so every language can hold it)."""
    return secrets.randbelow(2**53 - 1) + 1


@dataclass(slots=True)
class _RoomLog:
    """A room's numbering: its epoch, the last seq given out and the last one stored."""

    epoch: int
    seq: int = 0
    stored: int = 0
    recent_ids: OrderedDict[tuple[str, str], tuple[int, int]] = field(default_factory=OrderedDict)
    """(sender key, client id) → (seq, ts) of recent messages, to recognise retried sends."""


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
    ) -> None:
        self.store = store
        self._where = where
        self._recent_limit = recent_ids
        self._new_epoch = new_epoch
        self._rooms: dict[str, _RoomLog] = {}
        for name, record in loaded.rooms.items():
            log = self._rooms[name] = _RoomLog(record.epoch, record.seq, record.seq)
            log.recent_ids.update(record.recent_ids)
        self._last_pid = loaded.last_private_id
        self._recent_privates: OrderedDict[tuple[str, str], PrivateMessage] = OrderedDict(
            loaded.recent_privates
        )
        self._storing_privates: dict[int, list[PrivateDone]] = {}
        """Retries of private messages still being stored, by pid."""
        self._handler: BrokerHandler | None = None

    async def start(self, handler: BrokerHandler) -> None:
        self._handler = handler

    async def stop(self) -> None:
        await self.store.close()  # everything accepted is durable, and its callbacks are queued

    def describe(self) -> str:
        return self._where

    def _log(self, room: str) -> _RoomLog:
        log = self._rooms.get(room)
        if log is None:
            log = self._rooms[room] = _RoomLog(self._new_epoch(room))
        return log

    def position(self, room: str) -> RoomPosition:
        log = self._rooms.get(room)
        return RoomPosition(0, 0) if log is None else RoomPosition(log.epoch, log.stored)

    def follow(self, rooms: Iterable[str], ready: Callable[[Exception | None], None]) -> None:
        for room in rooms:
            self._log(room)
        ready(None)

    def unfollow(self, room: str) -> None:
        log = self._rooms.get(room)
        if log is not None and not log.seq:
            del self._rooms[room]  # nothing to remember: joining and leaving costs nothing

    def publish(self, post: Post, done: PublishDone) -> None:
        log = self._log(post.room)
        key = (post.sender_key, post.client_id)
        if post.client_id:
            earlier = log.recent_ids.get(key)
            if earlier is not None:
                seq, ts = earlier
                message = Message(post.room, seq, post.sender, post.text, ts, post.action)
                done(Published(message, log.epoch, new=False))
                return
        log.seq += 1
        message = Message(post.room, log.seq, post.sender, post.text, post.ts, post.action)
        if post.client_id:
            log.recent_ids[key] = (log.seq, post.ts)
            if len(log.recent_ids) > self._recent_limit:
                log.recent_ids.popitem(last=False)
        epoch = log.epoch

        def durable() -> None:
            log.stored = max(log.stored, message.seq)
            done(Published(message, epoch, new=True))
            assert self._handler is not None
            self._handler.on_message(message, epoch)

        record = StoredMessage(message, epoch, post.sender_key, post.client_id)
        self.store.append([record], durable)

    def publish_private(self, post: PrivatePost, done: PrivateDone) -> None:
        key = (post.sender_key, post.client_id)
        if post.client_id:
            earlier = self._recent_privates.get(key)
            if earlier is not None:
                waiting = self._storing_privates.get(earlier.pid)
                if waiting is None:
                    done(PublishedPrivate(earlier, new=False))
                else:
                    waiting.append(done)
                return
        if post.refusal is not None:
            done(post.refusal)
            return
        self._last_pid += 1
        message = PrivateMessage(
            post.sender, post.target, post.text, post.ts, post.action, pid=self._last_pid
        )
        if post.client_id:
            self._recent_privates[key] = message
            if len(self._recent_privates) > self._recent_limit:
                self._recent_privates.popitem(last=False)
        self._storing_privates[message.pid] = [done]

        def durable() -> None:
            for index, waiting in enumerate(self._storing_privates.pop(message.pid, ())):
                waiting(PublishedPrivate(message, new=index == 0))
            assert self._handler is not None
            self._handler.on_private(message, post.sender_key, post.target_key)

        record = StoredPrivate(message, post.sender_key, post.target_key, post.client_id)
        self.store.append([record], durable)

    async def page(self, room: str, before: int, limit: int) -> tuple[RoomPosition, list[Message]]:
        log = self._rooms.get(room)
        if log is None or not log.stored:
            return RoomPosition(log.epoch if log else 0, 0), []
        position = RoomPosition(log.epoch, log.stored)
        return position, await self.store.page(room, before, limit)

    async def stored_position(self, room: str) -> RoomPosition:
        return self.position(room)

    async def replay(self, room: str, after: int, upto: int) -> list[Message]:
        return await self.store.after(room, after, upto)

    async def privates(self, user_key: str, after: int, limit: int) -> list[PrivateMessage]:
        return await self.store.privates(user_key, after, limit)

    def last_private_id(self) -> int:
        return self._last_pid


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

    def joined(self, user: LocalUser, room: str) -> None:
        pass

    def parted(self, user: LocalUser, room: str, reason: str) -> None:
        pass

    def logged_out(self, user_key: str, name: str, reason: str) -> None:
        pass

    def kick(self, user: RemoteUser) -> None:
        pass

    def save_token(self, user_key: str, token_hash: str) -> None:
        self.store.save_token(user_key, token_hash)

    def claim(
        self, name_keys: Iterable[str], name: str, owner: str, now: int,
        done: Callable[[bool | Exception], None], *, replacing: str | None = None,
    ) -> None:  # fmt: skip
        # one event loop is the only writer: the server checked that the name is free
        for key in name_keys:
            self.store.save_identity(key, name, owner, now)
        done(True)

    async def server_id(self) -> str:
        return self._server_id
