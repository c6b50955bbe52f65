"""The asyncio shell around the protocol state machine, the chat logic and the history.

Sessions hand events to `ChatServer.handle`; the chat decides; messages are
stored, and once durable they are acknowledged and handed to the room's fan-out,
encoded once: at the end of the loop's pass each member gets one write of
everything its rooms heard, without awaiting anyone.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import logging
import secrets
import ssl
import time
from collections.abc import Callable, Coroutine, Iterable
from typing import Any

from tuichat.chat import LOBBY, Chat, ChatError, Delivery, Room, User
from tuichat.chat.names import check_name, check_room, name_keys, sort_key
from tuichat.protocol import (
    PROTOCOL_VERSION,
    Ack,
    AnyMessage,
    Bye,
    Codec,
    Error,
    ErrorCode,
    Event,
    Hello,
    History,
    HistoryPage,
    InvalidMessage,
    Join,
    Joined,
    Left,
    ListRooms,
    Message,
    Part,
    Parted,
    Ping,
    Pong,
    Position,
    Private,
    PrivateMessage,
    ProtocolError,
    RoomInfo,
    RoomList,
    RoomReset,
    RoomState,
    Send,
    UserList,
    Welcome,
    Who,
    encode_frame,
)
from tuichat.server.cluster import Cluster
from tuichat.server.config import ServerConfig
from tuichat.server.fanout import Fanout
from tuichat.server.history import (
    HistoryStore,
    MemoryHistory,
    SQLiteHistory,
    StoredMessage,
    StoredPrivate,
)
from tuichat.server.session import Session

log = logging.getLogger("tuichat.server")

MAX_REPLAY = 10_000
"""Most missed messages of one room replayed on resume; beyond it the client reloads."""
MAX_ID = 64
"""Longest client-made message id."""
MIN_KEY, MAX_KEY = 16, 256
"""Length limits of a name's key (the reference client uses 43 characters: 32 random bytes)."""
LISTEN_BACKLOG = 1024
"""Connections the kernel queues before the server accepts them (a reconnect storm)."""
SHUTDOWN_GRACE = 2.0
"""Seconds clients get, at shutdown, to read their last frames and close."""
MAX_PAGE = 500
"""Most messages in one `history_page`."""
MAX_PAGE_BYTES = 256 * 1024
"""A `history_page` holds fewer messages when their texts would pass this size."""


def now_ms() -> int:
    """Return the wall-clock time in milliseconds since the Unix epoch."""
    return time.time_ns() // 1_000_000


def new_epoch(room: str) -> int:
    """Return a random epoch for a new room (fits in 53 bits, so every language can hold it)."""
    return secrets.randbelow(2**53 - 1) + 1


def token_hash(token: str) -> str:
    """Return what is stored of a resume token."""
    return hashlib.sha256(token.encode()).hexdigest()


class ChatServer:
    """A tuichat server: a listening socket, every session, the chat and its history."""

    def __init__(
        self,
        config: ServerConfig | None = None,
        *,
        clock: Callable[[], int] = now_ms,
        history: HistoryStore | None = None,
    ) -> None:
        self.config = config or ServerConfig()
        self.clock = clock
        self.cluster: Cluster | None = None
        if history is None and self.config.redis_url:
            self.cluster = history = Cluster(
                self, self.config.redis_url, self.config.redis_history, self.config.presence_ttl
            )
        elif history is None:
            db = self.config.db
            history = MemoryHistory() if db is None else SQLiteHistory(db)
        self.history = history
        loaded = history.load(self.config.chat.recent_ids_per_room)
        self.chat: Chat[Session] = Chat(
            self.config.chat,
            rooms=loaded.rooms,
            last_private_id=loaded.last_private_id,
            new_epoch=new_epoch,
        )
        self._tokens = dict(loaded.tokens)
        self._identities = dict(loaded.identities)
        self.sessions: set[Session] = set()
        self.fanout = Fanout()
        self._per_ip: dict[str, int] = {}
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._waiting_acks: dict[tuple[str, int], list[tuple[Session, Send]]] = {}
        self._waiting_privates: dict[int, list[tuple[Session, PrivateMessage]]] = {}
        self._handlers: dict[type[Any], Callable[[Session, Any], None]] = {
            Hello: self._hello,
            Send: self._send,
            Private: self._private,
            Join: self._join,
            Part: self._part,
            ListRooms: self._list_rooms,
            Who: self._who,
            History: self._history,
            Ping: self._ping,
            Pong: _ignore,
            Bye: self._bye,
        }

    # --- lifecycle -------------------------------------------------------

    async def start(self) -> None:
        """Start listening; `port` 0 picks a free port (see `address`)."""
        if self.cluster is not None:
            await self.cluster.start()
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: Session(self),
            self.config.host,
            self.config.port,
            ssl=self._tls_context(),
            ssl_handshake_timeout=self.config.hello_timeout if self.config.tls_cert else None,
            backlog=LISTEN_BACKLOG,
        )
        self._spawn(self._heartbeats())
        host, port = self.address
        where = self.config.redis_url or self.config.db or "memory only"
        tls = " with TLS" if self.config.tls_cert else ""
        log.info("listening on %s:%d%s (protocol version %d)", host, port, tls, PROTOCOL_VERSION)
        log.info("history: %s", where)

    def _tls_context(self) -> ssl.SSLContext | None:
        if not self.config.tls_cert:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.config.tls_cert, self.config.tls_key)
        return context

    @property
    def address(self) -> tuple[str, int]:
        """Return the host and port the server listens on."""
        assert self._server is not None, "the server is not started"
        sockname = self._server.sockets[0].getsockname()
        return sockname[0], sockname[1]

    async def stop(self, message: str = "the server is shutting down") -> None:
        """Store what is pending, tell every client the server is going away, and close."""
        if self._server is None:
            return
        self._server.close()
        for session in self.sessions:
            if session.transport is not None:
                session.transport.pause_reading()
        await self.history.close()  # everything accepted is durable, acknowledged and sent
        await asyncio.sleep(0)
        self.fanout.flush_all()
        for task in list(self._tasks):
            task.cancel()
        sessions = list(self.sessions)
        for session in sessions:
            session.send(Bye(reason="shutdown", message=message))
            session.finish("shutdown")
        # let clients read to the end before the sockets go (closing with unread input resets)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(SHUTDOWN_GRACE):
                await asyncio.gather(*(s.closed.wait() for s in sessions))
        for session in sessions:
            session.abort("shutdown")
        await self._server.wait_closed()
        self._server = None
        log.info("stopped")

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _heartbeats(self) -> None:
        """Ping quiet clients; drop the silent, the nameless and the half-sent."""
        config = self.config
        interval, timeout = config.heartbeat_interval, config.heartbeat_timeout
        tick = min(interval, timeout, config.hello_timeout, config.frame_timeout) / 4
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(tick)
            now = loop.time()
            for session in list(self.sessions):
                quiet = now - session.last_heard
                if session.user is None and now - session.opened_at > config.hello_timeout:
                    session.fail(
                        ProtocolError(ErrorCode.HELLO_TIMEOUT, "no 'hello' in time; goodbye")
                    )
                elif (
                    session.partial_since is not None
                    and now - session.partial_since > config.frame_timeout
                ):
                    session.fail(
                        ProtocolError(ErrorCode.FRAME_TIMEOUT, "a frame's body did not arrive")
                    )
                elif quiet > timeout:
                    log.info("%s: no answer for %.0f s, dropping", session.describe(), quiet)
                    session.abort("timeout")
                elif quiet > interval and not session.ping_outstanding:
                    session.ping_outstanding = True
                    session.send(Ping(data=int(now * 1000)))

    # --- admission -------------------------------------------------------

    def admit(self, session: Session) -> ProtocolError | None:
        """Count a new connection in, or say why it is refused."""
        config = self.config
        if len(self.sessions) >= config.max_connections:
            return ProtocolError(ErrorCode.SERVER_FULL, "the server is full; try again later")
        count = self._per_ip.get(session.ip, 0)
        if count >= config.max_connections_per_ip:
            return ProtocolError(
                ErrorCode.TOO_MANY_CONNECTIONS,
                f"at most {config.max_connections_per_ip} connections from one address",
            )
        self._per_ip[session.ip] = count + 1
        return None

    def forget(self, session: Session) -> None:
        """A connection ended: count it out."""
        if session in self.sessions:
            self.sessions.discard(session)
            left = self._per_ip.get(session.ip, 1) - 1
            if left:
                self._per_ip[session.ip] = left
            else:
                self._per_ip.pop(session.ip, None)

    # --- dispatch --------------------------------------------------------

    def handle(self, session: Session, event: Event) -> None:
        """Carry out one event from a session; a refused request gets an `error` reply."""
        if isinstance(event, InvalidMessage):
            session.send(Error(code=str(event.code), message=event.detail, ref=event.ref))
            return
        try:
            self._handlers[type(event)](session, event)
        except ChatError as exc:
            ref: int | None = getattr(event, "ref", None)
            session.send(Error(code=str(exc.code), message=exc.message, ref=ref))

    def deliver(self, deliveries: Iterable[Delivery[Session]]) -> None:
        """Encode each message once and queue it for its room's members."""
        for delivery in deliveries:
            frame = encode_frame(Codec.encode(delivery.message))
            presence = isinstance(delivery.message, Joined | Left)
            self.fanout.add(delivery.room, frame, presence)
            if delivery.leaver is not None:
                delivery.leaver.write_frame(frame, delivery.room.name)

    def logout(self, session: Session, reason: str) -> None:
        """Take the session's user offline (if it had one) and tell their rooms."""
        user = session.user
        if user is None:
            return
        session.user = None
        self.deliver(self.chat.logout(user, reason, self.clock()))
        if self.cluster is not None:
            self.cluster.announce("logout", user.key, user.name, reason=reason)
        log.info("%s left (%s)", user.name, reason)

    def deliver_message(self, message: Message) -> None:
        """A room message is stored: acknowledge retries waiting for it, deliver it to the room."""
        room = self.chat.rooms[message.room]
        room.seq = max(room.seq, message.seq)
        for waiting, retried in self._waiting_acks.pop((message.room, message.seq), ()):
            waiting.send(_ack(message, retried))
        self.deliver([self.chat.delivered(message)])

    def deliver_private(self, message: PrivateMessage, target_key: str) -> None:
        """A stored private message for `target_key` (from another server, or this one)."""
        target = self.chat.users.get(target_key)
        if target is not None:
            target.handle.send(message)

    def load_tokens(self, tokens: dict[str, str]) -> None:
        """Resume tokens (hashed) by user key, as another server or the store has them."""
        self._tokens.update(tokens)

    def load_identities(self, identities: dict[str, str]) -> None:
        """Key hashes by name key, as another server or the store has them."""
        self._identities.update(identities)

    def kick(self, user_key: str) -> None:
        """The owner of a session here came back on another server: drop this one."""
        user = self.chat.users.get(user_key)
        if user is not None:
            log.info("%s is back on another server; dropping this connection", user.name)
            session = user.handle
            self.logout(session, "disconnect")
            session.abort("disconnect")

    # --- sessions --------------------------------------------------------

    def _user(self, session: Session) -> User[Session]:
        assert session.user is not None  # the state machine only passes these after welcome
        return session.user

    def _hello(self, session: Session, hello: Hello) -> None:
        if session.user is not None:  # a second hello in the same read as the first
            raise ChatError(ErrorCode.ALREADY_WELCOMED, "the session is already open")
        keys = name_keys(check_name(hello.name))
        self._check_owner(keys, hello)
        self._replace_ghost(hello)
        self._replace_remote_ghost(hello)
        user, deliveries = self.chat.login(hello.name, session, self.clock())
        self.fanout.joined(user.rooms[LOBBY], session)
        if hello.key and not any(key in self._identities for key in keys):
            for key in dict.fromkeys(keys):
                self._identities[key] = token_hash(hello.key)
                self.history.save_identity(key, user.name, token_hash(hello.key), self.clock())
            log.info("%s is now registered to its key", user.name)
        session.user = user
        resumed, rejoined = self._rejoin(user, hello.positions or ())
        if self.cluster is not None:
            self.cluster.announce("login", user.key, user.name)
            for room_name in user.rooms:
                self.cluster.announce("join", user.key, user.name, room_name)
        trusted = self._check_token(user.key, hello.token)
        token = secrets.token_urlsafe(18)
        self._tokens[user.key] = token_hash(token)
        self.history.save_token(user.key, token_hash(token))
        online = len(self.chat.users)
        motd = self.config.motd or (
            f"Welcome to {self.config.server_name}, {user.name}! "
            f"{online} user{'s' if online != 1 else ''} online."
        )
        session.send(
            Welcome(
                version=PROTOCOL_VERSION,
                server=self.config.server_name,
                name=user.name,
                rooms=tuple(user.rooms),
                users=self._who_names(LOBBY),
                motd=motd,
                limits={
                    "max_frame": self.config.max_frame,
                    "max_text_bytes": self.config.chat.max_text_bytes,
                    "max_rooms_per_user": self.config.chat.max_rooms_per_user,
                    "heartbeat_interval_ms": int(self.config.heartbeat_interval * 1000),
                    "heartbeat_timeout_ms": int(self.config.heartbeat_timeout * 1000),
                },
                positions=tuple(_position(room) for room in user.rooms.values()),
                token=token,
                private_seq=self.chat.last_private_id,
                ref=hello.ref,
            )
        )
        log.info("%s joined from %s", user.name, session.peer)
        self.deliver(deliveries)
        self.deliver(rejoined)
        for room, position in resumed:
            self._resume_room(session, room, position)
        if trusted and hello.private_after is not None:
            after = min(max(hello.private_after, 0), 2**63 - 1)  # SQLite integers are 64-bit
            self._spawn(self._replay_privates(session, user, after))

    def _check_owner(self, keys: tuple[str, str], hello: Hello) -> None:
        """Refuse a registered name (or a look-alike of it) to anyone without its key."""
        if hello.key is not None and not MIN_KEY <= len(hello.key) <= MAX_KEY:
            raise ChatError(ErrorCode.BAD_MESSAGE, f"a key has {MIN_KEY} to {MAX_KEY} characters")
        owners = {self._identities[key] for key in keys if key in self._identities}
        if not owners:
            return
        if not hello.key or not all(_same(owner, hello.key) for owner in owners):
            raise ChatError(
                ErrorCode.NAME_REGISTERED,
                f"{hello.name} is registered to another key; pick another name "
                "(or bring your identity to this device: tuichat --export-identity)",
            )

    def _replace_ghost(self, hello: Hello) -> None:
        """A returning user with a valid token takes over a session that still looks alive."""
        ghost = self.chat.find(hello.name)
        if ghost is None or not self._proves_owner(ghost.key, hello):
            return
        old = ghost.handle
        log.info("%s is back from another connection; dropping the old one", ghost.name)
        self.logout(old, "disconnect")
        old.abort("disconnect")

    def _replace_remote_ghost(self, hello: Hello) -> None:
        """The name is in use on another server: its owner takes it over, anyone else is refused."""
        ghost = self.cluster.find(hello.name) if self.cluster is not None else None
        if ghost is None or self.cluster is None:
            return
        if not self._proves_owner(ghost.key, hello):
            raise ChatError(ErrorCode.NAME_TAKEN, f"the name {hello.name!r} is taken; pick another")
        log.info("%s is back from another server; dropping the old connection", ghost.name)
        self.cluster.kick(ghost)

    def _who_names(self, room: str) -> tuple[str, ...]:
        """Who is in `room` (everyone for `""`), on this server and the others."""
        remote = self.cluster.names(room) if self.cluster is not None else []
        try:
            local = self.chat.who(room)
        except ChatError:  # no such room here; there may be one on the other servers
            if not remote:
                raise
            local = ()
        return tuple(sorted((*local, *remote), key=sort_key)) if remote else local

    def _rejoin(
        self, user: User[Session], positions: Iterable[Position]
    ) -> tuple[list[tuple[Room[Session], Position]], list[Delivery[Session]]]:
        """Put a returning user back in the rooms they were in.

        Returns the rooms to replay and the `joined` announcements (to deliver
        after the `welcome`).
        """
        resumed: dict[str, tuple[Room[Session], Position]] = {}
        announcements: list[Delivery[Session]] = []
        for position in positions:
            try:
                name = check_room(position.room)
                if name not in user.rooms:
                    room, deliveries = self.chat.join(user, name, self.clock())
                    self.fanout.joined(room, user.handle)
                    announcements += deliveries
            except ChatError:
                continue  # a room that cannot be joined any more is simply not resumed
            resumed.setdefault(name, (user.rooms[name], position))
        return list(resumed.values()), announcements

    def _check_token(self, user_key: str, token: str | None) -> bool:
        stored = self._tokens.get(user_key)
        return bool(token) and stored is not None and _same(stored, token or "")

    def _proves_owner(self, user_key: str, hello: Hello) -> bool:
        """Whether `hello` carries the name's key or the user's last resume token."""
        owner = self._identities.get(user_key)
        same_key = bool(hello.key) and owner is not None and _same(owner, hello.key or "")
        return same_key or self._check_token(user_key, hello.token)

    def _resume_room(self, session: Session, room: Room[Session], position: Position) -> None:
        """Replay what the client missed in `room`, or tell it to reload the room."""
        missed = room.delivered - position.seq
        if position.epoch != room.epoch or missed < 0 or missed > MAX_REPLAY:
            session.send(RoomReset(room=room.name, epoch=room.epoch, seq=room.delivered))
            return
        if missed == 0:
            return
        session.hold(room.name)
        self._spawn(self._replay(session, room, position.seq, room.delivered))

    async def _replay(self, session: Session, room: Room[Session], after: int, upto: int) -> None:
        try:
            messages = await self.history.after(room.name, after, upto)
            if [m.seq for m in messages] != list(range(after + 1, upto + 1)):
                session.send(RoomReset(room=room.name, epoch=room.epoch, seq=upto))
            else:
                await session.paced_write(encode_frame(Codec.encode(m)) for m in messages)
        finally:
            session.release(room.name)

    async def _replay_privates(self, session: Session, user: User[Session], after: int) -> None:
        while session.open:
            messages = await self.history.privates(user.key, after, MAX_PAGE)
            await session.paced_write(encode_frame(Codec.encode(m)) for m in messages)
            if len(messages) < MAX_PAGE:
                return
            after = messages[-1].pid

    # --- messages --------------------------------------------------------

    def _send(self, session: Session, send: Send) -> None:
        user = self._user(session)
        _check_id(send.id)
        if self.cluster is not None:
            self._post_to_cluster(self.cluster, session, user, send)
            return
        message, new = self.chat.post(
            user, send.room, send.text, send.action, send.id, self.clock()
        )
        if new:
            room = self.chat.rooms[message.room]
            record = StoredMessage(message, room.epoch, user.key, send.id)
            self.history.append([record], lambda: self._durable(message, session, send))
        elif message.seq <= self.chat.rooms[message.room].delivered:
            session.send(_ack(message, send))  # a retry of a stored message
        else:  # a retry of a message still being stored
            self._waiting_acks.setdefault((message.room, message.seq), []).append((session, send))

    def _post_to_cluster(
        self, cluster: Cluster, session: Session, user: User[Session], send: Send
    ) -> None:
        """Room messages are numbered and stored in Redis; they come back to be delivered."""
        room, text = self.chat.check_post(user, send.room, send.text)

        def earlier(seq: int, ts: int) -> None:  # a retry of a message stored before
            if seq <= room.delivered:
                session.send(Ack(room=room.name, seq=seq, ts=ts, id=send.id, ref=send.ref))
            else:
                self._waiting_acks.setdefault((room.name, seq), []).append((session, send))

        cluster.post(
            room.name, user.name, user.key, text, send.action, send.id, self.clock(),
            on_delivered=lambda message: session.send(_ack(message, send)),
            on_earlier=earlier,
            on_failed=lambda exc: session.send(_unavailable(exc, send.ref)),
        )  # fmt: skip

    def _durable(self, message: Message, session: Session, send: Send) -> None:
        """A message is stored: acknowledge it and deliver it to the room."""
        session.send(_ack(message, send))
        self.deliver_message(message)

    def _private(self, session: Session, private: Private) -> None:
        user = self._user(session)
        _check_id(private.id)
        if self.cluster is not None:
            self._private_to_cluster(self.cluster, session, user, private)
            return
        message, target = self.chat.private(
            user, private.to, private.text, private.action, private.id, self.clock()
        )
        echo = dataclasses.replace(message, id=private.id, ref=private.ref)
        if target is None:  # a retry: the target has it, or will once it is stored
            waiting = self._waiting_privates.get(message.pid)
            if waiting is None:
                session.send(echo)
            else:
                waiting.append((session, echo))
            return
        self._waiting_privates[message.pid] = [(session, echo)]

        def durable() -> None:
            online = self.chat.users.get(target.key)  # the target may have reconnected since
            if online is not None:
                online.handle.send(message)
            for waiting_session, copy in self._waiting_privates.pop(message.pid, ()):
                waiting_session.send(copy)

        self.history.append([StoredPrivate(message, user.key, target.key)], durable)

    def _private_to_cluster(
        self, cluster: Cluster, session: Session, user: User[Session], private: Private
    ) -> None:
        """Private messages are numbered and stored in Redis; the target's server delivers."""
        local = self.chat.find(private.to)
        remote = cluster.find(private.to) if local is None else None
        target = local or remote
        if target is None:
            raise ChatError(ErrorCode.NO_SUCH_USER, f"{private.to!r} is not online")
        text = self.chat.clean_text(private.text)
        cluster.private(
            user.name, user.key, target.name, target.key, text, private.action, private.id,
            self.clock(),
            on_delivered=lambda message: session.send(
                dataclasses.replace(message, id=private.id, ref=private.ref)
            ),
            on_failed=lambda exc: session.send(_unavailable(exc, private.ref)),
        )  # fmt: skip

    def _history(self, session: Session, request: History) -> None:
        room = self.chat.room(request.room)
        newest = room.delivered + 1
        before = min(request.before, newest) if request.before > 0 else newest
        limit = max(1, min(request.limit, MAX_PAGE))

        async def reply() -> None:
            page = await self.history.page(room.name, before, limit)
            complete = not page or page[0].seq == 1 or len(page) < limit
            messages = _within(page, MAX_PAGE_BYTES)
            complete = complete and len(messages) == len(page)
            session.send(
                HistoryPage(
                    room=room.name,
                    epoch=room.epoch,
                    messages=tuple(messages),
                    complete=complete,
                    ref=request.ref,
                )
            )

        self._spawn(reply())

    # --- rooms and presence ----------------------------------------------

    def _join(self, session: Session, join: Join) -> None:
        user = self._user(session)
        room, deliveries = self.chat.join(user, join.room, self.clock())
        self.fanout.joined(room, session)
        if self.cluster is not None:
            self.cluster.announce("join", user.key, user.name, room.name)
        session.send(
            RoomState(
                room=room.name,
                users=self._who_names(room.name),
                seq=room.delivered,
                epoch=room.epoch,
                ref=join.ref,
            )
        )
        self.deliver(deliveries)
        log.info("%s joined %s", user.name, room.name)

    def _part(self, session: Session, part: Part) -> None:
        user = self._user(session)
        room = user.rooms.get(check_room(part.room))
        if room is not None:
            self.fanout.flush_room(room)  # what the room heard before the leave reaches the leaver
        room_name, deliveries = self.chat.part(user, part.room, self.clock())
        self.deliver(deliveries)
        if self.cluster is not None:
            self.cluster.announce("part", user.key, user.name, room_name, "part")
        session.send(Parted(room=room_name, ref=part.ref))
        log.info("%s left %s", user.name, room_name)

    def _list_rooms(self, session: Session, request: ListRooms) -> None:
        rooms = self.chat.room_list()
        if self.cluster is not None:
            remote = self.cluster.counts()
            names = {info.room for info in rooms} | set(remote)
            local = {info.room: info.members for info in rooms}
            rooms = tuple(
                RoomInfo(name, local.get(name, 0) + remote.get(name, 0)) for name in sorted(names)
            )
        session.send(RoomList(rooms=rooms, ref=request.ref))

    def _who(self, session: Session, who: Who) -> None:
        room = check_room(who.room) if who.room else ""
        session.send(UserList(room=room, users=self._who_names(room), ref=who.ref))

    def _ping(self, session: Session, ping: Ping) -> None:
        session.send(Pong(data=ping.data, ref=ping.ref))

    def _bye(self, session: Session, bye: Bye) -> None:
        if session.user is not None:  # what its rooms heard before the bye still reaches it
            for room in session.user.rooms.values():
                self.fanout.flush_room(room)
        self.logout(session, "quit")
        session.send(Bye(reason="quit", message="goodbye", ref=bye.ref))
        session.close("quit")


def _same(stored_hash: str, secret: str) -> bool:
    """Whether `secret` hashes to `stored_hash` (compared in constant time)."""
    return secrets.compare_digest(stored_hash, token_hash(secret))


def _check_id(client_id: str) -> None:
    if len(client_id) > MAX_ID:
        raise ChatError(ErrorCode.BAD_MESSAGE, f"an id has at most {MAX_ID} characters")


def _within(messages: list[Message], budget: int) -> list[Message]:
    """The newest of `messages` (oldest first) whose texts fit in `budget` bytes (at least one)."""
    kept = 0
    size = 0
    for message in reversed(messages):
        size += len(message.text.encode("utf-8", "surrogatepass")) + 64
        if size > budget and kept:
            break
        kept += 1
    return messages[len(messages) - kept :]


def _unavailable(exc: Exception, ref: int | None) -> Error:
    log.warning("the cluster's store failed: %s", exc)
    return Error(
        code=str(ErrorCode.UNAVAILABLE),
        message="the chat cannot store messages right now; try again",
        ref=ref,
    )


def _ack(message: Message, send: Send) -> Ack:
    return Ack(room=message.room, seq=message.seq, ts=message.ts, id=send.id, ref=send.ref)


def _position(room: Room[Session]) -> Position:
    return Position(room=room.name, epoch=room.epoch, seq=room.delivered)


def _ignore(session: Session, message: AnyMessage) -> None:
    """Messages that need no answer (a `pong` to our own `ping`)."""
