"""Several servers as one chat, on Redis.

Redis is the one place that numbers and stores: a Lua script gives a room
message its sequence number, recognises a retried send by its client id, appends
the message to the room's stream (bounded) and publishes it, in one atomic step.
Every server, the one that took the message too, receives what is published and
delivers it to its own members in sequence order; a gap (a lost subscription, a
Redis restart) is filled from the room's stream before anything newer goes out.

Presence: each server keeps its users in a Redis hash that expires unless the
server refreshes it, and announces logins, joins, parts and logouts on a channel.
Each server keeps a view of everyone on the others; a server whose hash expired
(it died) has its users announced as gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgpack

from tuichat.chat import LOBBY, Room
from tuichat.chat.names import name_keys
from tuichat.protocol import Joined, Left, Message, PrivateMessage, encode_frame
from tuichat.protocol.codec import Codec
from tuichat.server.history.base import HistoryStore, LoadedState, Record

if TYPE_CHECKING:
    from redis.asyncio.client import PubSub

    from tuichat.server.server import ChatServer
    from tuichat.server.session import Session

log = logging.getLogger("tuichat.server")

PREFIX = "tuichat:"
MESSAGES = PREFIX + "messages"
PRIVATES = PREFIX + "privates"
PRESENCE = PREFIX + "presence"
REFRESH = 2.0
"""How often (at most) a server refreshes its presence, looks for servers that died, and
checks that every room's messages were delivered."""
RETRIES = 40
"""Attempts of one Redis command (backing off up to 1 s): a restart of Redis is waited out."""
STOP_GRACE = 2.0
"""Seconds the last words to Redis may take at shutdown."""
RETRY_FOR = 30.0
"""Seconds a command is sent again while Redis restarts before its request fails."""
MAX_PIPELINE = 1000
"""Most commands sent to Redis in one round trip."""
DEDUP_TTL = 24 * 3600
"""Seconds a room message's client id is remembered (a retry within it is not stored twice)."""

POST = """
local seq_key, log_key, id_key, rooms_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local room, sender, sender_key, text = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local ts, action = ARGV[5], ARGV[6]
local client_id, token, maxlen, ttl, channel = ARGV[7], ARGV[8], ARGV[9], ARGV[10], ARGV[11]
if client_id ~= '' then
  local earlier = redis.call('GET', id_key)
  if earlier then
    local cut = string.find(earlier, ':', 1, true)
    return {0, tonumber(string.sub(earlier, 1, cut - 1)), tonumber(string.sub(earlier, cut + 1))}
  end
end
local seq = redis.call('INCR', seq_key)
redis.call('XADD', log_key, 'MAXLEN', '~', maxlen, seq .. '-0',
  's', sender, 'k', sender_key, 't', text, 'ts', ts, 'a', action, 'i', client_id, 'o', token)
if client_id ~= '' then
  redis.call('SET', id_key, seq .. ':' .. ts, 'EX', ttl)
end
redis.call('SADD', rooms_key, room)
redis.call('PUBLISH', channel,
  cmsgpack.pack({room, seq, sender, text, tonumber(ts), action, token}))
return {1, seq, tonumber(ts)}
"""
"""Number, de-duplicate, store and publish one room message, atomically."""

PRIVATE = """
local pid_key, to_log, from_log = KEYS[1], KEYS[2], KEYS[3]
local sender, sender_key, target, target_key = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local text, ts, action, client_id, token, maxlen, channel =
  ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9], ARGV[10], ARGV[11]
local pid = redis.call('INCR', pid_key)
local fields = {'f', sender, 'fk', sender_key, 'to', target, 'tk', target_key, 't', text,
  'ts', ts, 'a', action, 'i', client_id}
redis.call('XADD', to_log, 'MAXLEN', '~', maxlen, pid .. '-0', unpack(fields))
if from_log ~= to_log then
  redis.call('XADD', from_log, 'MAXLEN', '~', maxlen, pid .. '-0', unpack(fields))
end
redis.call('PUBLISH', channel,
  cmsgpack.pack({pid, sender, sender_key, target, target_key, text, tonumber(ts), action,
                 client_id, token}))
return pid
"""
"""Number, store (for both parties) and publish one private message, atomically."""


def room_key(room: str, part: str) -> str:
    """The Redis key of one part of a room (`seq`, `log`)."""
    return f"{PREFIX}room:{room}:{part}"


def private_log(user_key: str) -> str:
    """The Redis stream of the private messages to and from a user."""
    return f"{PREFIX}private:{user_key}"


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
        id=fields[b"i"].decode(),
        pid=_number(entry_id),
    )


@dataclass(slots=True)
class _Command:
    add: Callable[[Any], Awaitable[None]]
    """Puts the command(s) on a pipeline."""
    done: Callable[[Any], None] | None
    """Takes the result of the first command (or the exception)."""
    since: float
    """When it was first queued (loop time)."""


@dataclass(eq=False)
class RemoteUser:
    """Someone connected to another server."""

    name: str
    key: str
    server: str
    rooms: dict[str, None] = field(default_factory=dict)
    """The rooms they are in, in the order they joined."""


class Cluster(HistoryStore):
    """This server's part in a chat that several servers share through Redis.

    It is also the server's history store: what Redis keeps is the history.
    """

    def __init__(
        self, server: ChatServer, url: str, history_per_room: int, presence_ttl: float = 10.0
    ) -> None:
        try:
            from redis.asyncio import Redis
            from redis.asyncio.retry import Retry
            from redis.backoff import ExponentialBackoff
            from redis.exceptions import ConnectionError, TimeoutError
        except ImportError:
            raise RuntimeError("--redis needs redis-py: pip install 'tuichat[redis]'") from None
        self.server = server
        self.redis: Any = Redis.from_url(  # redis-py answers are loosely typed
            url,
            retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), RETRIES),
            retry_on_error=[ConnectionError, TimeoutError, OSError],
            health_check_interval=5,
        )
        self.id = secrets.token_hex(8)
        self.history_per_room = history_per_room
        self._ttl_ms = int(presence_ttl * 1000)
        self._refresh_every = min(REFRESH, presence_ttl / 5)
        self.remote: dict[str, RemoteUser] = {}
        """Users on other servers, by user key."""
        self._remote_names: dict[str, RemoteUser] = {}
        """Both look-alike keys of every remote user's name."""
        self._generation = ""
        self._post = self.redis.register_script(POST)
        self._private = self.redis.register_script(PRIVATE)
        self._pending: dict[str, Callable[[Message | PrivateMessage], None]] = {}
        """Posts of ours not yet delivered: token → what to do when it comes back."""
        self._counter = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._commands: list[_Command] = []
        self._wake = asyncio.Event()
        self._closing = False
        self._pubsub: PubSub | None = None

    # --- lifecycle -------------------------------------------------------

    async def start(self) -> None:
        """Load the shared state, subscribe, and start refreshing our presence."""
        await self.redis.set(PREFIX + "generation", secrets.token_hex(8), nx=True)
        self._generation = (await self.redis.get(PREFIX + "generation")).decode()
        self.server.chat.new_epoch = self.epoch
        await self._subscribe()
        await self._load()
        self._spawn(self._listen())
        self._spawn(self._write())
        self._spawn(self._refresh())
        log.info("cluster: server %s on Redis (generation %s)", self.id, self._generation)

    async def stop(self) -> None:
        """Withdraw our presence and stop listening.

        The loops also stop on `_closing`: redis-py can turn a cancellation into an
        error of its own, which a loop that carries on after errors would outlive.
        """
        self._closing = True
        self._wake.set()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=STOP_GRACE)
        with contextlib.suppress(Exception):
            async with asyncio.timeout(STOP_GRACE):
                await self.redis.delete(self._presence_key(self.id))
        with contextlib.suppress(Exception):
            async with asyncio.timeout(STOP_GRACE):
                if self._pubsub is not None:
                    await self._pubsub.aclose()  # type: ignore[no-untyped-call]
                await self.redis.aclose()

    def epoch(self, room: str) -> int:
        """A room's epoch: the same on every server, new if Redis loses everything."""
        digest = hashlib.sha256(f"{self._generation}\0{room}".encode()).digest()
        return int.from_bytes(digest[:6], "big") + 1

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _load(self) -> None:
        """Rooms and their positions, resume tokens and identities, as Redis has them."""
        chat = self.server.chat
        names = {n.decode() for n in await self.redis.smembers(PREFIX + "rooms")} | {LOBBY}
        for name in names:
            seq = int(await self.redis.get(room_key(name, "seq")) or 0)
            room = chat.rooms.get(name)
            if room is None or room.epoch != self.epoch(name):  # before anyone has joined
                room = chat.rooms[name] = Room(name, self.epoch(name))
            room.seq = room.delivered = max(room.delivered, seq)
        tokens = await self.redis.hgetall(PREFIX + "tokens")
        self.server.load_tokens({k.decode(): v.decode() for k, v in tokens.items()})
        identities = await self.redis.hgetall(PREFIX + "identities")
        self.server.load_identities({k.decode(): v.decode() for k, v in identities.items()})
        await self._load_presence()

    async def _load_presence(self) -> None:
        """Everyone on the other servers, from their presence hashes."""
        seen: dict[str, RemoteUser] = {}
        async for key in self.redis.scan_iter(match=self._presence_key("*")):
            server = key.decode().rsplit(":", 1)[1]
            if server == self.id:
                continue
            for user_key, packed in (await self.redis.hgetall(key)).items():
                name, rooms = msgpack.unpackb(packed)
                seen[user_key.decode()] = RemoteUser(
                    name, user_key.decode(), server, dict.fromkeys(rooms)
                )
        for user in list(self.remote.values()):  # gone while we were away
            if user.key not in seen or seen[user.key].server != user.server:
                self._remote_logout(user.key, "disconnect")
        for user in seen.values():
            known = self.remote.get(user.key)
            if known is None:
                self._remote_login(user.name, user.key, user.server)
                known = self.remote.get(user.key)
                if known is None:  # the same user is here (it has just moved to us)
                    continue
            for room in [r for r in user.rooms if r not in known.rooms]:
                self._remote_join(user.key, room)
            for room in [r for r in known.rooms if r not in user.rooms]:
                self._remote_part(user.key, room, "part")

    # --- subscription ----------------------------------------------------

    async def _subscribe(self) -> None:
        self._pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        await self._pubsub.subscribe(MESSAGES, PRIVATES, PRESENCE)

    async def _listen(self) -> None:
        """Deliver what is published; after a lost connection, catch up and carry on.

        Every `REFRESH` seconds it also compares each room's position in Redis with
        what was delivered here, so that a message whose publication was lost (the
        subscription broke and came back) is delivered from the room's stream.
        """
        loop = asyncio.get_running_loop()
        delay = 0.05
        next_check = loop.time() + REFRESH
        while not self._closing:
            try:
                assert self._pubsub is not None
                message = await self._pubsub.get_message(timeout=REFRESH / 2)
                if message is not None:
                    await self._dispatch(message["channel"], message["data"])
                if loop.time() >= next_check:
                    next_check = loop.time() + REFRESH
                    await self._catch_up()
                delay = 0.05
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the connection to Redis is gone: reconnect and catch up
                log.warning("cluster: Redis connection lost (%s); reconnecting", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                with contextlib.suppress(Exception):
                    if self._pubsub is not None:
                        await self._pubsub.aclose()  # type: ignore[no-untyped-call]
                try:
                    await self._subscribe()
                    await self._catch_up()
                    await self._write_presence()
                    await self._load_presence()
                    log.info("cluster: reconnected to Redis and caught up")
                except Exception as again:
                    log.warning("cluster: still no Redis (%s)", again)

    async def _dispatch(self, channel: bytes, data: bytes) -> None:
        if channel == MESSAGES.encode():
            room, seq, sender, text, ts, action, token = msgpack.unpackb(data)
            message = Message(room, seq, sender, text, ts, action == "1")
            await self._deliver(message, token)
        elif channel == PRIVATES.encode():
            pid, sender, _, target, target_key, text, ts, action, _, token = msgpack.unpackb(data)
            private = PrivateMessage(sender, target, text, ts, action == "1", pid=pid)
            self.server.deliver_private(private, target_key)
            done = self._pending.pop(token, None)
            if done is not None:
                done(private)
        else:
            self._presence_event(msgpack.unpackb(data))

    async def _deliver(self, message: Message, token: str) -> None:
        """Deliver room messages in order: fill a gap from the room's stream first."""
        room = self.server.chat.rooms.get(message.room)
        if room is None:
            room = self.server.chat.rooms[message.room] = Room(
                message.room, self.epoch(message.room)
            )
        if message.seq <= room.delivered:
            return
        if message.seq > room.delivered + 1:
            await self._fill(room, message.seq - 1)
        if message.seq == room.delivered + 1:
            self._delivered(message, token)

    def _delivered(self, message: Message, token: str) -> None:
        done = self._pending.pop(token, None)
        if done is not None:
            done(message)
        self.server.deliver_message(message)

    async def _fill(self, room: Room[Session], upto: int) -> None:
        """Deliver what `room` missed, up to `upto`, from its stream."""
        entries = await self.redis.xrange(
            room_key(room.name, "log"), f"{room.delivered + 1}-0", f"{upto}-0"
        )
        for entry_id, fields in entries:
            message = message_from_entry(room.name, entry_id, fields)
            if message.seq == room.delivered + 1:
                self._delivered(message, fields.get(b"o", b"").decode())
        if room.delivered < upto:  # trimmed away: jump, clients get a room_reset on resume
            log.warning(
                "cluster: %s lost %d messages to trimming", room.name, upto - room.delivered
            )
            room.delivered = room.seq = upto

    async def _catch_up(self) -> None:
        """Deliver whatever Redis has stored that was not delivered here (lost publications)."""
        names = sorted(n.decode() for n in await self.redis.smembers(PREFIX + "rooms"))
        if not names:
            return
        positions = await self.redis.mget([room_key(name, "seq") for name in names])
        for name, last in zip(names, positions, strict=True):
            room = self.server.chat.rooms.get(name)
            if room is None:
                room = self.server.chat.rooms[name] = Room(name, self.epoch(name))
            if int(last or 0) > room.delivered:
                log.info("cluster: %s missed %d message(s); delivering them from Redis",
                         name, int(last or 0) - room.delivered)  # fmt: skip
                await self._fill(room, int(last or 0))

    # --- posting ---------------------------------------------------------

    def _token(self) -> str:
        self._counter += 1
        return f"{self.id}:{self._counter}"

    def post(
        self,
        room: str,
        sender: str,
        sender_key: str,
        text: str,
        action: bool,
        client_id: str,
        ts: int,
        on_delivered: Callable[[Message], None],
        on_earlier: Callable[[int, int], None],
        on_failed: Callable[[Exception], None],
    ) -> None:
        """Number, store and publish a room message.

        `on_delivered(message)` runs when it is delivered here (just before its
        members get it); a retry of an earlier message calls `on_earlier(seq, ts)`.
        """
        token = self._token()
        self._pending[token] = on_delivered  # type: ignore[assignment]
        id_key = room_key(room, f"id:{sender_key}:{client_id}")

        async def add(pipe: Any) -> None:
            await self._post(
                keys=[room_key(room, "seq"), room_key(room, "log"), id_key, PREFIX + "rooms"],
                args=[room, sender, sender_key, text, ts, "1" if action else "0", client_id,
                      token, self.history_per_room, DEDUP_TTL, MESSAGES],
                client=pipe,
            )  # fmt: skip

        def done(result: Any) -> None:
            if isinstance(result, Exception):
                self._pending.pop(token, None)
                on_failed(result)
                return
            new, seq, stored_ts = result
            if not new:
                self._pending.pop(token, None)
                on_earlier(int(seq), int(stored_ts))

        self._enqueue(add, done)

    def private(
        self,
        sender: str,
        sender_key: str,
        target: str,
        target_key: str,
        text: str,
        action: bool,
        client_id: str,
        ts: int,
        on_delivered: Callable[[PrivateMessage], None],
        on_failed: Callable[[Exception], None],
    ) -> None:
        """Number, store and publish a private message; `on_delivered` runs when it comes back."""
        token = self._token()
        self._pending[token] = on_delivered  # type: ignore[assignment]

        async def add(pipe: Any) -> None:
            await self._private(
                keys=[PREFIX + "pid", private_log(target_key), private_log(sender_key)],
                args=[sender, sender_key, target, target_key, text, ts, "1" if action else "0",
                      client_id, token, self.history_per_room, PRIVATES],
                client=pipe,
            )  # fmt: skip

        def done(result: Any) -> None:
            if isinstance(result, Exception):
                self._pending.pop(token, None)
                on_failed(result)

        self._enqueue(add, done)

    def _enqueue(
        self, add: Callable[[Any], Awaitable[None]], done: Callable[[Any], None] | None
    ) -> None:
        """Queue one command (or a few) for Redis; they go out in order, many per round trip."""
        self._commands.append(_Command(add, done, asyncio.get_running_loop().time()))
        self._wake.set()

    async def _write(self) -> None:
        """Send queued commands in order, pipelined; hand each its result.

        A command that meets a Redis restart (connection lost, scripts not loaded
        yet, data still loading) is sent again, for up to `RETRY_FOR` seconds.
        """
        from redis.exceptions import BusyLoadingError, NoScriptError
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError

        passing = (
            NoScriptError,
            BusyLoadingError,
            RedisConnectionError,
            RedisTimeoutError,
            OSError,
        )
        loop = asyncio.get_running_loop()
        delay = 0.05
        while not self._closing:
            await self._wake.wait()
            self._wake.clear()
            while self._commands and not self._closing:
                batch, self._commands = self._commands[:MAX_PIPELINE], self._commands[MAX_PIPELINE:]
                try:
                    async with self.redis.pipeline(transaction=False) as pipe:
                        ends = []
                        for command in batch:
                            await command.add(pipe)
                            ends.append(len(pipe))
                        results = await pipe.execute(raise_on_error=False)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # Redis stayed away longer than the client retries
                    results, ends = [exc] * len(batch), list(range(1, len(batch) + 1))
                again = []
                start = 0
                for command, end in zip(batch, ends, strict=True):
                    result = results[start] if end > start else None
                    start = end
                    if isinstance(result, passing) and loop.time() - command.since < RETRY_FOR:
                        again.append(command)
                    elif command.done is not None:
                        command.done(result)
                if again:
                    log.info(
                        "cluster: %d command(s) met a Redis restart; sending again", len(again)
                    )
                    self._commands[:0] = again
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 1.0)
                else:
                    delay = 0.05

    # --- the history store ------------------------------------------------

    def load(self, recent_ids: int) -> LoadedState:
        return LoadedState(rooms={}, last_private_id=0, tokens={}, identities={})  # see start()

    def append(self, records: Sequence[Record], durable: Callable[[], None]) -> None:
        raise NotImplementedError("on Redis, messages are stored by post() and private()")

    def save_token(self, user_key: str, token_hash: str) -> None:
        self.share("token", user_key, token_hash)

    def save_identity(self, name_key: str, name: str, key_hash: str, now: int) -> None:
        self.share("identity", name_key, key_hash)

    async def close(self) -> None:
        await self.stop()

    # --- reading ---------------------------------------------------------

    async def page(self, room: str, before: int, limit: int) -> list[Message]:
        top = f"({before}-0" if before else "+"
        entries = await self.redis.xrevrange(room_key(room, "log"), top, "-", count=limit)
        return [message_from_entry(room, i, f) for i, f in reversed(entries)]

    async def after(self, room: str, after: int, upto: int) -> list[Message]:
        if upto <= after:
            return []
        entries = await self.redis.xrange(room_key(room, "log"), f"{after + 1}-0", f"{upto}-0")
        return [message_from_entry(room, i, f) for i, f in entries]

    async def privates(self, user_key: str, after: int, limit: int) -> list[PrivateMessage]:
        entries = await self.redis.xrange(private_log(user_key), f"{after + 1}-0", "+", count=limit)
        return [private_from_entry(i, f) for i, f in entries]

    # --- presence --------------------------------------------------------

    @staticmethod
    def _presence_key(server: str) -> str:
        return f"{PREFIX}server:{server}"

    def announce(
        self, kind: str, user_key: str, name: str = "", room: str = "", reason: str = ""
    ) -> None:
        """Tell the other servers of a presence change here, and keep our hash current."""
        event = msgpack.packb([kind, self.id, user_key, name, room, reason])
        user = self.server.chat.users.get(user_key)
        key = self._presence_key(self.id)
        entry = None if kind == "logout" or user is None else [user.name, list(user.rooms)]

        async def add(pipe: Any) -> None:
            if entry is None:
                pipe.hdel(key, user_key)
            else:
                pipe.hset(key, user_key, msgpack.packb(entry))
            pipe.pexpire(key, self._ttl_ms)
            pipe.publish(PRESENCE, event)

        self._enqueue(add, None)  # one lost in an outage is put right after the reconnect

    def share(self, kind: str, key: str, value: str) -> None:
        """Store a token or an identity in Redis and tell the other servers."""
        field_map = PREFIX + ("tokens" if kind == "token" else "identities")
        event = msgpack.packb([kind, self.id, key, value, "", ""])

        async def add(pipe: Any) -> None:
            pipe.hset(field_map, key, value)
            pipe.publish(PRESENCE, event)

        self._enqueue(add, None)

    def kick(self, user: RemoteUser) -> None:
        """Ask the server holding `user` to drop that session (its owner is back here)."""
        self._remote_logout(user.key, None)
        event = msgpack.packb(["kick", self.id, user.key, user.server, "", ""])

        async def add(pipe: Any) -> None:
            pipe.publish(PRESENCE, event)

        self._enqueue(add, None)

    async def _write_presence(self) -> None:
        """Our whole presence hash, as it is now."""
        key = self._presence_key(self.id)
        users = {
            u.key: msgpack.packb([u.name, list(u.rooms)]) for u in self.server.chat.users.values()
        }
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            if users:
                pipe.hset(key, mapping=users)
            pipe.pexpire(key, self._ttl_ms)
            await pipe.execute()

    async def _refresh(self) -> None:
        """Keep our presence alive; notice servers that died."""
        while not self._closing:
            await asyncio.sleep(self._refresh_every)
            try:
                if self.server.chat.users:
                    await self.redis.pexpire(self._presence_key(self.id), self._ttl_ms)
                for server in {u.server for u in self.remote.values()}:
                    if not await self.redis.exists(self._presence_key(server)):
                        log.info("cluster: server %s is gone; its users are offline", server)
                        for user in [u for u in self.remote.values() if u.server == server]:
                            self._remote_logout(user.key, "timeout")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.debug("cluster: refresh failed: %s", exc)

    def _presence_event(self, event: list[Any]) -> None:
        kind, server, key, name, room, reason = event
        if server == self.id:
            return
        if kind == "login":
            self._remote_login(name, key, server)
        elif kind == "join":
            self._remote_join(key, room)
        elif kind == "part":
            self._remote_part(key, room, reason or "part")
        elif kind == "logout":
            self._remote_logout(key, reason or "disconnect")
        elif kind == "kick" and name == self.id:
            self.server.kick(key)
        elif kind == "token":
            self.server.load_tokens({key: name})
        elif kind == "identity":
            self.server.load_identities({key: name})

    def _remote_login(self, name: str, key: str, server: str) -> None:
        local = self.server.chat.users.get(key)
        if local is not None:  # the same name on two servers at once: the older login stays
            return
        user = self.remote.get(key)
        if user is None:
            user = self.remote[key] = RemoteUser(name, key, server)
            for name_key in name_keys(name):
                self._remote_names[name_key] = user
        user.server = server

    def _remote_join(self, key: str, room_name: str) -> None:
        user = self.remote.get(key)
        if user is None or room_name in user.rooms:
            return
        user.rooms[room_name] = None
        self._announce_locally(room_name, Joined(room_name, user.name, self.server.clock()))

    def _remote_part(self, key: str, room_name: str, reason: str) -> None:
        user = self.remote.get(key)
        if user is None or room_name not in user.rooms:
            return
        del user.rooms[room_name]
        self._announce_locally(room_name, Left(room_name, user.name, self.server.clock(), reason))

    def _remote_logout(self, key: str, reason: str | None) -> None:
        user = self.remote.pop(key, None)
        if user is None:
            return
        for name_key in name_keys(user.name):
            if self._remote_names.get(name_key) is user:
                del self._remote_names[name_key]
        if reason is not None:
            for room in user.rooms:
                self._announce_locally(room, Left(room, user.name, self.server.clock(), reason))

    def _announce_locally(self, room_name: str, event: Joined | Left) -> None:
        room = self.server.chat.rooms.get(room_name)
        if room is not None and room.members:
            self.server.fanout.add(room, encode_frame(Codec.encode(event)), presence=True)

    # --- questions the server asks ----------------------------------------

    def find(self, name: str) -> RemoteUser | None:
        """The remote user whose name is `name` or looks like it."""
        for key in name_keys(name):
            user = self._remote_names.get(key)
            if user is not None:
                return user
        return None

    def names(self, room: str) -> list[str]:
        """Remote users in `room` (everyone remote for `""`)."""
        return [u.name for u in self.remote.values() if not room or room in u.rooms]

    def counts(self) -> dict[str, int]:
        """Remote members per room."""
        counts: dict[str, int] = {}
        for user in self.remote.values():
            for room in user.rooms:
                counts[room] = counts.get(room, 0) + 1
        return counts
