"""The asyncio shell around the protocol state machine, the chat logic and the broker.

Sessions hand events to `ChatServer.handle`; the chat decides; the broker numbers
and stores messages and hands them back (`on_message`), whichever broker it is;
then they are acknowledged and handed to the room's fan-out, encoded once: at the
end of the loop's pass each member gets one write of everything its rooms heard,
without awaiting anyone. Away states travel with presence (the peers); typing goes
through the broker to whoever may be shown it, and is never stored.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import dataclasses
import functools
import heapq
import ipaddress
import logging
import secrets
import ssl
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Iterable, Mapping
from functools import partial
from typing import Any, TypeVar

from tuichat.chat import LOBBY, Chat, ChatError, Delivery, Room, User, verbs
from tuichat.chat import moderation as plan
from tuichat.chat.chat import no_such_room
from tuichat.chat.moderation import Person
from tuichat.chat.names import (
    check_name,
    check_reason,
    check_room,
    name_key,
    name_keys,
    room_key,
    sort_key,
)
from tuichat.chat.rules import SERVER, ModEvent, Rule, Rules, Sanction
from tuichat.chat.search import MAX_RESULTS, SearchQuery, query_words
from tuichat.protocol import (
    PROTOCOL_VERSION,
    Ack,
    AnyMessage,
    Away,
    Bye,
    Codec,
    Delete,
    Edit,
    Error,
    ErrorCode,
    Event,
    Hello,
    History,
    HistoryPage,
    Ignore,
    Ignored,
    InvalidMessage,
    IsTyping,
    Join,
    Joined,
    Left,
    ListRooms,
    MarkRead,
    Message,
    Moderate,
    Moderated,
    ModLog,
    ModLogPage,
    Part,
    Parted,
    Ping,
    Pong,
    Position,
    Private,
    PrivateHistory,
    PrivateMessage,
    PrivatePage,
    ProtocolError,
    React,
    RoomDetails,
    RoomEvent,
    RoomInfo,
    RoomList,
    RoomReset,
    RoomState,
    Search,
    SearchHit,
    SearchResults,
    Send,
    SetAway,
    SetPrivate,
    SetTopic,
    SignedOut,
    SignOut,
    Typing,
    UserList,
    Welcome,
    Who,
    encode_frame,
)
from tuichat.protocol import ReadMarker as MarkerMessage
from tuichat.protocol.messages import MODERATE_ACTIONS
from tuichat.server.admins import Admins
from tuichat.server.admission import Admission, parse_address
from tuichat.server.broker import (
    Broker,
    LocalUser,
    Peers,
    Post,
    PresenceEvent,
    PrivatePost,
    Published,
    PublishedPrivate,
    ReadMarker,
    RemoteAway,
    RemoteJoined,
    RemoteUser,
    RoomClaim,
    RoomPosition,
    TypingEvent,
    make_broker,
)
from tuichat.server.config import ServerConfig
from tuichat.server.fanout import Fanout
from tuichat.server.flood import FloodLimits
from tuichat.server.history.base import merged
from tuichat.server.limits import MAX_PAGE, KeyedBuckets
from tuichat.server.listener import Listener
from tuichat.server.ownership import (
    SINCE,
    Ownership,
    TokenLine,
    Verdict,
    key_of,
    new_lineage,
    owner_of,
    token_hash,
)
from tuichat.server.session import Session

log = logging.getLogger("tuichat.server")

M = TypeVar("M", Message, PrivateMessage, SearchHit)

MAX_REPLAY = 10_000
"""Most missed messages of one room replayed on resume; beyond it the client reloads."""
MAX_ID = 64
"""Longest client-made message id."""
LISTEN_BACKLOG = 4096
"""Connections the kernel queues before the server accepts them (a reconnect storm)."""
SHUTDOWN_GRACE = 2.0
"""Seconds clients get, at shutdown, to read their last frames and close."""
HEARTBEAT_BATCH = 1000
"""Sessions a heartbeat check goes through between two turns of the event loop."""
BACKLOG_CHECK = 0.05
"""Seconds between two sums of what waits for the clients furthest behind."""
MAX_PAGE_BYTES = 256 * 1024
VERB_WAIT = 40.0
"""Seconds the next verb in a room waits, at most, for the one before to be stored."""
"""A `history_page` holds fewer messages when their texts would pass this size."""


REPLACED = "you signed in again from another connection, which now has this session"
SIGNED_OUT = "another of your devices signed this one out"
MAX_MARKER_SEQ = 2**53 - 1
"""The largest seq (and epoch) a read marker keeps: every store, Redis's scripts too, holds it
exactly."""
CACHED_MARKERS = 64
"""Read markers held in memory per user online here (the most recently moved), for the
`room_state` of a room they join."""
MAX_SEQ = 2**63 - 1
"""The largest sequence number (and `before`) a store can hold."""
ROOM_PAGE = 500
"""Most rooms in one `room_list`."""
ROOM_NAMES_FOR = 1.0
"""Seconds a sorted list of room names serves `list_rooms` (a room opened since shows later)."""
TYPING_MAX_MEMBERS = 100
"""Rooms with more members than this (on every server) relay no typing notices."""
TYPING_EVERY = 3.0
"""Seconds between two typing notices relayed for one user and conversation (the others are
dropped); the user's message there starts afresh."""
MAX_LOG_PAGE = 200
"""Most entries in one `mod_log_page`."""


def _now() -> float:
    return asyncio.get_running_loop().time()


@dataclasses.dataclass(frozen=True, slots=True)
class MemberList:
    """A page of a member list: names, those of them away and why, and how many in all."""

    users: tuple[str, ...]
    away: tuple[str, ...]
    reasons: tuple[str, ...]
    total: int
    more: bool
    """Names follow after the last of `users`."""

    @property
    def partial(self) -> int:
        """`total` when `users` is not the whole list, else 0 (what a list's `members` says)."""
        return self.total if self.total > len(self.users) else 0


def _list_order(name: str) -> tuple[str, str]:
    """Where `name` sorts in a member list."""
    return sort_key(name), name


def now_ms() -> int:
    """Return the wall-clock time in milliseconds since the Unix epoch."""
    return time.time_ns() // 1_000_000


class ChatServer:
    """A tuichat server: a listening socket, every session, the chat, its broker and peers.

    It is the broker's handler (`BrokerHandler`): what a broker stores comes back
    here to be delivered, from this server or from the others.
    """

    def __init__(
        self,
        config: ServerConfig | None = None,
        *,
        clock: Callable[[], int] = now_ms,
        broker: tuple[Broker, Peers] | None = None,
    ) -> None:
        self.config = config or ServerConfig()
        self.clock = clock
        self.broker, self.peers = broker or make_broker(self.config)
        self.ownership = Ownership()
        self.server_id = ""
        """What a `hello` signs besides its nonce: one id for every server of one chat."""
        self.chat: Chat[Session] = Chat(self.config.chat, position=self._room_position)
        self.sessions: set[Session] = set()
        self.stopping = False
        """`stop` began: no session is read any more."""
        self.fanout = Fanout(self._members, self.config.member_list)
        self.admission = Admission(self.config)
        self._sorted_names: list[str] = []
        self._names_sorted_at = float("-inf")
        self._names_shape = (0, 0)
        cache = functools.lru_cache(maxsize=4096)  # per server: a few KB, parsed once
        self._exempt = cache(self._is_exempt)
        self._network = cache(self._network_of)
        self._source = cache(self._source_of)
        self.flood = FloodLimits(
            self.config.rate, exempt=self._exempt, source=self._source, network=self._network
        )
        self._server: Listener | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._waiting_acks: dict[
            tuple[str, int], list[tuple[Session, Send | React | Edit | Delete]]
        ] = {}
        self._private_origin: dict[int, Session] = {}
        """The session a new private message came from, till its other copies are delivered."""
        self._markers: dict[str, dict[str, ReadMarker]] = {}
        """The most recently moved read markers of every user online here (for `room_state`),
        by user key, then by conversation, the most recent last."""
        self._following: Counter[str] = Counter()
        """Rooms with a join (or a hello) waiting for the broker to follow them."""
        self._greeting: dict[str, Session] = {}
        """The name keys of every hello being carried out."""
        self._claiming: set[str] = set()
        """Rooms with members here opened without a claim of their comparison key, being asked
        whether they hold it (`_hold_key`)."""
        self._backlogged: set[Session] = set()
        """Sessions with much unsent data, the last time one was written to."""
        self._backlog_checked = float("-inf")
        self._typing = KeyedBuckets(1 / TYPING_EVERY, 1)
        """One typing notice relayed per user and conversation every `TYPING_EVERY` seconds."""
        self.rules = Rules()
        """Owners, ops, topics, invitations, bans, mutes and ignores, as the broker stores them."""
        self.admins = Admins(self.config.admins, self.config.admins_file)
        rate = self.config.rate
        self._moderating = KeyedBuckets(rate.moderation_per_second, rate.moderation_burst)
        """Moderation requests per user (on every device)."""
        self._verb_locks: dict[str, tuple[asyncio.Lock, int]] = {}
        """Per room: the verb checked and stored now (and how many wait for the lock)."""
        self._searching = KeyedBuckets(rate.searches_per_second, rate.search_burst)
        """Searches per user (on every device)."""
        self._moderation_origin: dict[str, Session] = {}
        """The session a moderation step came from, till it is carried out here."""
        self._handlers: dict[type[Any], Callable[[Session, Any], None]] = {
            Hello: self._hello,
            Send: self._send,
            Private: self._private,
            Join: self._join,
            Part: self._part,
            ListRooms: self._list_rooms,
            Who: self._who,
            History: self._history,
            PrivateHistory: self._private_history,
            MarkRead: self._mark_read,
            SignOut: self._sign_out,
            SetAway: self._set_away,
            Typing: self._typing_in,
            Moderate: self._moderate,
            SetTopic: self._set_topic,
            SetPrivate: self._set_private,
            Ignore: self._ignore,
            ModLog: self._mod_log,
            React: self._verb,
            Edit: self._verb,
            Delete: self._verb,
            Search: self._search,
            Ping: self._ping,
            Pong: _ignore,
            Bye: self._bye,
        }

    def _is_exempt(self, address: str) -> bool:
        ip = parse_address(address)
        return ip is not None and ip in self.admission.exempt

    def _network_of(self, address: str) -> str:
        """The network of `address` (IPv4 /24, IPv6 /64 by default), for limits that stay."""
        ip = parse_address(address)
        return address if ip is None else self.admission.network(ip)

    def _source_of(self, address: str) -> str:
        """Who sends, for the limits per address: an IPv4 address, or an IPv6 host's network."""
        ip = parse_address(address)
        return str(ip) if isinstance(ip, ipaddress.IPv4Address) else self._network(address)

    def _room_position(self, room: str) -> tuple[int, int]:
        position = self.broker.position(room)
        return position.epoch, position.seq

    # --- lifecycle -------------------------------------------------------

    async def start(self) -> None:
        """Start listening; `port` 0 picks a free port (see `address`)."""
        await self.broker.start(self)
        await self.peers.start(self)
        self.server_id = await self.peers.server_id()
        ready: asyncio.Future[Exception | None] = asyncio.get_running_loop().create_future()
        self.broker.follow([LOBBY], ready.set_result)
        error = await ready
        if error is not None:
            raise error
        lobby = self.chat.rooms[LOBBY]
        lobby.epoch, lobby.delivered = self._room_position(LOBBY)
        self.chat.unkeyed = self.broker.unkeyed_rooms()
        self._hold_key(lobby)
        self._server = await Listener.open(  # (the PROXY header from balancers, then TLS)
            self.config.host,
            self.config.port,
            self.admission.balancers,
            lambda client: Session(self, client),
            tls=self._tls_context(),
            timeout=self.config.hello_timeout,
            backlog=LISTEN_BACKLOG,
            reuse_port=self.config.reuse_port,
            connections=lambda: len(self.sessions),
        )
        self._spawn(self._heartbeats())
        host, port = self.address
        tls = " with TLS" if self.config.tls_cert else ""
        log.info("listening on %s:%d%s (protocol version %d)", host, port, tls, PROTOCOL_VERSION)
        if self.config.proxy_from:
            log.info("PROXY header required from %s", ", ".join(self.config.proxy_from))
        log.info("history: %s", self.broker.describe())
        self._report_admins()

    def _report_admins(self) -> None:
        admins = self.admins
        for problem in admins.problems:
            log.warning("admins: %s", problem)
        for name in admins.listed:
            if not self._owner_of(name):
                log.warning(
                    "admins: %s is not a registered name yet: whoever registers it first is an "
                    "admin (list its key instead, or register it now)", name,
                )  # fmt: skip
        if admins.path is not None:
            count = len(admins.listed) + len(admins.owners)
            log.info("admins: %d from %s and the settings", count, admins.path)

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
        self.stopping = True
        for session in self.sessions:
            if session.transport is not None:
                session.transport.pause_reading()
        await self.peers.stop()
        await self.broker.stop()  # everything accepted is durable, acknowledged and sent
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
        """Ping quiet clients; drop the silent, the nameless and the half-sent.

        The checks keep to their period however long one takes, and a check lets the loop
        run every `HEARTBEAT_BATCH` sessions (the pongs are read as they come, and nobody waits
        for the whole sweep); one ping frame is encoded for each batch."""
        config = self.config
        interval, timeout = config.heartbeat_interval, config.heartbeat_timeout
        tick = min(interval, timeout, config.hello_timeout, config.frame_timeout) / 4
        loop = asyncio.get_running_loop()
        due = loop.time()
        while True:
            due = max(due + tick, loop.time())
            await asyncio.sleep(due - loop.time())
            if self.admins.reload():
                self._report_admins()
            sessions = list(self.sessions)
            for start in range(0, len(sessions), HEARTBEAT_BATCH):
                if start:
                    await asyncio.sleep(0)
                now = loop.time()
                ping: bytes | None = None
                for session in sessions[start : start + HEARTBEAT_BATCH]:
                    transport = session.transport
                    if transport is None or transport.is_closing():
                        continue  # (gone while the loop ran)
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
                        if ping is None:
                            ping = encode_frame(Codec.encode(Ping(data=int(now * 1000))))
                        session.write_frame(ping)

    # --- admission -------------------------------------------------------

    def admit(self, session: Session) -> ProtocolError | None:
        """Count a new connection in, or say why it is refused (logged a few at a time)."""
        refusal = self.admission.admit(session.ip, _now())
        if refusal is None:
            return None
        if refusal.report:
            since = refusal.report - 1
            more = f" (and {since} more since the last such line)" if since else ""
            log.info("%s: refused: %s%s", session.peer, refusal.error.detail, more)
        return refusal.error

    def backlogged(self, session: Session, queued: int) -> None:
        """`session` has `queued` bytes waiting: past the server-wide ceiling on what waits for
        all clients together, the clients furthest behind are dropped (they can resume)."""
        self._backlogged.add(session)
        now = _now()
        if now - self._backlog_checked < BACKLOG_CHECK:
            return
        self._backlog_checked = now
        sizes = {s: s.queued for s in self._backlogged}
        self._backlogged = {s for s, size in sizes.items() if size > 0}
        total = sum(sizes.values())
        for behind in sorted(self._backlogged, key=sizes.__getitem__, reverse=True):
            if total <= self.config.max_pending_total:
                break
            log.info("%s: the server holds too much unsent data; dropping the client furthest "
                     "behind", behind.describe())  # fmt: skip
            total -= sizes[behind]
            behind.abort("slow")

    def forget(self, session: Session) -> None:
        """A connection ended: count it out."""
        self._backlogged.discard(session)
        if session in self.sessions:
            self.sessions.discard(session)
            self.admission.release(session.ip)

    # --- dispatch --------------------------------------------------------

    def handle(self, session: Session, event: Event) -> None:
        """Carry out one event from a session; a refused request gets an `error` reply."""
        if isinstance(event, InvalidMessage):
            session.send(Error(code=str(event.code), message=event.detail, ref=event.ref))
            return
        ref: int | None = getattr(event, "ref", None)
        self._guarded(session, ref, self._handlers[type(event)], session, event)

    def _guarded(
        self, session: Session, ref: int | None, step: Callable[..., None], *args: Any
    ) -> None:
        """Run one step of a request; a `ChatError` becomes its `error` reply."""
        try:
            step(*args)
        except ChatError as exc:
            session.send(_refused(exc, ref))

    def deliver(self, deliveries: Iterable[Delivery[Session]]) -> None:
        """Encode each message once and queue it for its room's members."""
        for delivery in deliveries:
            message = delivery.message
            if not isinstance(message, Joined | Left):
                frame = encode_frame(Codec.encode(message))
                self.fanout.add(delivery.room, frame)
            elif not self.peers.in_room(name_key(message.name), delivery.room.name):
                self.fanout.presence(delivery.room, message)  # (else: still there elsewhere)
            if delivery.leaver is not None:
                frame = encode_frame(Codec.encode(message))
                for session in delivery.leaver.sessions:
                    session.write_frame(frame, delivery.room.name)

    def logout(self, session: Session, reason: str) -> None:
        """End the session of its user (if it had one); after their last, they go offline and
        their rooms hear it."""
        user = session.user
        if user is None:
            return
        session.user = None
        if not self.chat.remove_session(user, session):
            self.peers.sessions_changed(_local(user))
            log.info("%s closed a session (%s); %d left", user.name, reason, len(user.sessions))
            return
        rooms = list(user.rooms)
        self.deliver(self.chat.logout(user, reason, self.clock()))
        self._markers.pop(user.key, None)
        self._unfollow_empty(rooms)
        self.peers.logged_out(user.key, user.name, reason)
        log.info("%s left (%s)", user.name, reason)

    def _follow(self, rooms: list[str], then: Callable[[Exception | None], None]) -> None:
        """Have the broker follow `rooms`, then `then(error)`; rooms nobody joined are let go."""
        for room in rooms:
            self._following[room] += 1

        def ready(error: Exception | None) -> None:
            for room in rooms:
                self._following[room] -= 1
                if not self._following[room]:
                    del self._following[room]
            try:
                then(error)
            finally:
                self._unfollow_empty(rooms)

        self.broker.follow(rooms, ready)

    def _unfollow_empty(self, rooms: Iterable[str]) -> None:
        """Let the broker stop following rooms with no members here and no join on its way."""
        for room in rooms:
            if room not in self.chat.rooms and room not in self._following:
                self.broker.unfollow(room)

    # --- what the broker and the peers hand back (BrokerHandler) -----------

    def on_message(self, message: RoomEvent, epoch: int) -> None:
        """A room message is stored: acknowledge retries waiting for it, deliver it here."""
        for waiting, retried in self._waiting_acks.pop((message.room, message.seq), ()):
            waiting.send(_ack(message, retried))
        delivery = self.chat.delivered(message)
        if delivery is not None:
            self.deliver([delivery])

    def on_private(self, message: PrivateMessage, sender_key: str, target_key: str) -> None:
        """A new private message is stored: its target's sessions here get it, and the
        sender's (but the one it came from, which has its reply)."""
        origin = self._private_origin.pop(message.pid, None)
        frame = encode_frame(Codec.encode(message))
        for key in dict.fromkeys((target_key, sender_key)):
            user = self.chat.users.get(key)
            if user is not None:
                for session in user.sessions:
                    if session is not origin:
                        session.write_frame(frame)

    def on_read(self, user_key: str, marker: ReadMarker) -> None:
        """A user's read marker moved on another server: their sessions here hear it (those of
        the same line, for a name without a key: see `Session.marker_key`)."""
        user = self.chat.users.get(user_key.partition(SINCE)[0])
        if user is not None and any(s.marker_key == user_key for s in user.sessions):
            self._marker_moved(user, marker, None)

    def on_room_reset(self, room_name: str, position: RoomPosition) -> None:
        """A room's history was lost: its members here reload it."""
        room = self.chat.rooms.get(room_name)
        for (name, seq), waiting in list(self._waiting_acks.items()):
            if name == room_name:
                del self._waiting_acks[(name, seq)]
                for session, send in waiting:
                    session.send(_unavailable(RuntimeError("history lost"), send.ref))
        if room is None:
            return
        self.fanout.flush_room(room)
        room.epoch, room.delivered = position.epoch, position.seq
        reset = RoomReset(room=room.name, epoch=position.epoch, seq=position.seq)
        frame = encode_frame(Codec.encode(reset))
        for session in room.handles():
            session.write_frame(frame, room.name)

    def on_presence(self, event: PresenceEvent) -> None:
        """Someone on another server joined or left a room: its members here hear it (unless
        the person is in it here, from another device). A user here whose other device joined
        or left a room there joins or leaves it here too."""
        local = self.chat.users.get(event.key)
        here = local is not None and event.room in local.rooms
        room = self.chat.rooms.get(event.room)
        if event.changed and not here and room is not None and room.members:
            now = self.clock()
            message: Joined | Left
            if isinstance(event, RemoteJoined):
                message = Joined(event.room, event.name, now)
            else:
                message = Left(event.room, event.name, now, event.reason)
            self.fanout.presence(room, message)
        if local is None or event.echo:
            return  # (an echo: that server only followed what a session did elsewhere)
        if isinstance(event, RemoteJoined) and not here:
            self._join_elsewhere(local, event.room)
        elif not isinstance(event, RemoteJoined) and here and event.reason == "part":
            self._part_everywhere(local, event.room, None)

    def on_away(self, event: RemoteAway) -> None:
        """A user of another server is away now, or back: a user online here too takes it on
        (and says so again, for the servers that start later); everyone here hears it if what
        they are shown changed."""
        local = self.chat.users.get(event.key)
        if local is None:
            if event.changed:
                self._announce_away(event.name, event.reason)
            return
        if event.since <= local.away_since:
            return  # known already (or older)
        if self.chat.set_away(local, event.reason, event.since):
            self._announce_away(local.name, local.away)
        self.peers.away_changed(_local(local))

    def on_typing(self, event: TypingEvent) -> None:
        """Someone is typing: the room's members here (not the typist's own sessions), or the
        other party's sessions here, hear it; a session with a backlog does not."""
        if event.room:
            room = self.chat.rooms.get(event.room)
            if room is None or not room.members:
                return
            typist = self.chat.users.get(event.key)
            frame = encode_frame(Codec.encode(IsTyping(name=event.name, room=room.name)))
            skip = typist.sessions if typist is not None else ()
            self.fanout.add(room, frame, skip=skip, ephemeral=True)
            return
        target = self.chat.users.get(event.target_key)
        if target is None or event.target_key == event.key:
            return
        if target.key in self.rules.ignores and self.rules.ignoring(
            target.key, event.key, self._owner_of(event.name)
        ):
            return
        frame = encode_frame(Codec.encode(IsTyping(name=event.name, room=f"@{event.name}")))
        for session in target.sessions:
            if session.takes_ephemeral():
                session.write_frame(frame)

    def on_kick(self, user_key: str, reason: str) -> None:
        """Drop the user's sessions here: their name's owner came back on another server
        (`replaced`), or another device of theirs signed them out (`signed_out`)."""
        user = self.chat.users.get(user_key)
        if user is None:
            return
        if reason == "signed_out":
            log.info("%s signed out their devices here from another server", user.name)
        else:
            log.info("%s is back on another server; dropping this connection", user.name)
        for session in list(user.sessions):
            self._replaced(session, reason)

    def on_tokens(self, tokens: Mapping[str, str]) -> None:
        """Resume tokens (hashed) by user key, as the store or another server has them."""
        self.ownership.load_tokens(tokens)

    def on_identities(self, identities: Mapping[str, str]) -> None:
        """Registrations (key hashes) by name key, as the store or another server has them."""
        self.ownership.load_identities(identities)

    def known_owners(self) -> tuple[Mapping[str, str], Mapping[str, str]]:
        """The resume tokens and registrations known here (to write back to a store that lost
        them)."""
        return self.ownership.tokens, self.ownership.identities

    def is_here(self, user_key: str) -> bool:
        """Whether the user is online on this server."""
        return user_key in self.chat.users

    def local_users(self) -> Iterable[LocalUser]:
        """Everyone online here, with their rooms."""
        return [_local(user) for user in self.chat.users.values()]

    def on_rules(self, rules: list[Rule]) -> None:
        """Every rule as stored: start over from them, and hold everyone here to them (steps
        may have been missed: a ban, a room made private)."""
        self.rules.load(rules)
        for room in list(self.chat.rooms.values()):
            self._enforce(room.name)
        self._enforce_server_bans()

    def on_moderation(self, event: ModEvent) -> None:
        """A moderation step is stored: take its rules, tell the people here (the room's
        members, the person acted on; not the session it came from, which has its reply), and
        hold everyone here to the rules as they are now."""
        held = self.rules.rooms.get(event.room)
        was_op = held is not None and event.target_key in held.ops
        for rule in event.rules:
            self.rules.apply(rule)
        origin = self._moderation_origin.pop(event.id, None)
        skip = (origin,) if origin is not None else ()
        if event.action in ("ignore", "unignore"):
            user = self.chat.users.get(event.by_key)
            if user is not None:
                ignored = Ignored(names=self.rules.ignored(user.key))
                for session in user.sessions:
                    if session is not origin:
                        session.send(ignored)
            return
        if event.action == "create":
            return  # the room's first member is on the way; they get its `room_state`
        if event.action in ("topic", "private", "public"):
            self._room_changed(event, skip)  # (the one who asked has it as the reply)
            if event.action == "private":
                self._enforce(event.room)
            return
        if event.action in ("op", "deop") or (was_op and event.action == "ban"):
            self._room_changed(event, ())  # (a ban ends an op's ops)
        if event.room == SERVER and not event.target_key:  # an address prefix: the admins'
            self._enforce_server_bans()
            return
        notice = Moderated(
            room=event.room, action=event.action, name=event.name, by=event.by,
            reason=event.reason, until=event.until, ts=event.ts,
        )  # fmt: skip
        frame = encode_frame(Codec.encode(notice))
        room = self.chat.rooms.get(event.room or LOBBY)
        if room is not None:
            self.fanout.add(room, frame, skip=skip)
        target = self.chat.users.get(event.target_key)
        if target is not None and (room is None or target.key not in room.members):
            for session in target.sessions:  # (not in the room: an invitation, an unban)
                if session is not origin:
                    session.write_frame(frame)
        if event.room == SERVER:
            if event.action == "kick" and target is not None:
                self._end_sessions(target, "kicked", _sentence("disconnected you from the "
                                                               "server", event))  # fmt: skip
            self._enforce_server_bans()
        elif event.action == "kick" and target is not None:
            self._take_out(target, event.room, "kick")
        elif event.action in ("ban", "uninvite"):
            self._enforce(event.room)

    def _enforce(self, room_name: str) -> None:
        """Take out of a room everyone here the rules keep out of it now: banned (by name or by
        key), or not a member of it while it is private."""
        room = self.chat.rooms.get(room_name)
        held = self.rules.rooms.get(room_name)
        if room is None or held is None or room.name == LOBBY:
            return
        now = self.clock()
        for user in list(room.members.values()):
            session = user.sessions[0] if user.sessions else None
            if session is None or self._person(session, user).admin:
                continue
            if held.bans and self.rules.banned(room.name, user.key, session.identity, now):
                self._take_out(user, room.name, "ban")
            elif held.private and session.identity and not self.rules.member(room.name, user.key):
                self._take_out(user, room.name, "kick")  # (uninvited; one without a key stays)

    def _enforce_server_bans(self) -> None:
        """End every session here that a server-wide ban (of the name, its key, or an address
        prefix) keeps out now."""
        if not self.rules.server.bans and not self.rules.networks:
            return
        for session in list(self.sessions):
            user = session.user
            if user is None:
                continue
            ban = self._server_ban(user.key, session.identity, session.ip)
            if ban is not None:
                message = _sentence("banned you from this server", ban, self.clock())
                self._end_sessions(user, "banned", message, only=session)

    def _end_sessions(
        self, user: User[Session], reason: str, message: str, only: Session | None = None
    ) -> None:
        """End the user's sessions here (or `only` that one): `bye` with `reason` and
        `message`, then close."""
        for session in [only] if only is not None else list(user.sessions):
            self.logout(session, "ban" if reason == "banned" else "kick")
            session.send(Bye(reason=reason, message=message))
            session.close(reason)

    def _room_changed(self, event: ModEvent, skip: tuple[Session, ...]) -> None:
        """Tell a room's members here what it is now (its topic, privacy or ops changed)."""
        room = self.chat.rooms.get(event.room)
        if room is None:
            return
        details = self._details(room.name, change=_CHANGES.get(event.action, ""), by=event.by)
        self.fanout.add(room, encode_frame(Codec.encode(details)), skip=skip)

    def _details(
        self, room: str, ref: int | None = None, change: str = "", by: str = ""
    ) -> RoomDetails:
        held = self.rules.room(room)
        return RoomDetails(
            room=room, topic=held.topic, topic_by=held.topic_by, topic_ts=held.topic_ts,
            private=held.private, owner=held.owner, ops=held.op_names(), change=change, by=by,
            ref=ref,
        )  # fmt: skip

    def _take_out(self, user: User[Session], room_name: str, reason: str) -> None:
        """A moderator took `user` out of a room: every session of theirs here leaves it."""
        room = self.chat.membership(user, room_name)
        if room is None or room.name == LOBBY:
            return
        self.fanout.flush_room(room)  # the notice (and what came before) reaches them first
        name, deliveries = self.chat.part(user, room.name, self.clock(), reason)
        self.deliver(deliveries)
        self._unfollow_empty([name])
        self.peers.parted(_local(user), name, reason)
        for session in user.sessions:
            session.send(Parted(room=name))
        log.info("%s was taken out of %s (%s)", user.name, name, reason)

    # --- who may do what -----------------------------------------------------

    def _owner_of(self, name: str) -> str:
        """The key that owns `name`, or the registered name it looks like (`ed25519:<key>`);
        "" for none."""
        for key in name_keys(name):
            stored = self.ownership.identities.get(key)
            if stored:
                return key_of(owner_of(stored))
        return ""

    def _person(self, session: Session, user: User[Session]) -> Person:
        """The user of `session` as moderation sees them (an admin only with their key proved)."""
        owner = session.identity
        return Person(user.name, user.key, owner, self.admins.holds(user.key, owner))

    def _sees(self, session: Session, user: User[Session], room: str) -> bool:
        """Whether the user may see `room` (its history, members, place in room lists): any
        room that is not private; a private one as its member, invited, op or an admin."""
        if not self.rules.is_private(room):
            return True
        if room in user.rooms or self.rules.member(room, user.key):
            return True
        return self._person(session, user).admin

    def _check_entry(self, session: Session, user: User[Session], room: str) -> None:
        """Raise `ChatError` if the user may not join `room` (see `_entry_refusal`)."""
        refusal = self._entry_refusal(user.key, session.identity, room)
        if refusal is not None:
            raise refusal

    def _may_enter(self, session: Session, user: User[Session], room: str) -> bool:
        return self._entry_refusal(user.key, session.identity, room) is None

    def _entry_refusal(self, key: str, owner: str, room: str) -> ChatError | None:
        """Why the user of `key` (whose proved key is `owner`, "" for none) may not be in
        `room`: banned from it, or it is private and they are not invited (None: they may;
        an admin always may)."""
        if room not in self.rules.rooms or self.admins.holds(key, owner):
            return None
        now = self.clock()
        ban = self.rules.banned(room, key, owner, now)
        if ban is not None:
            sentence = plan.sanction_sentence("banned", f"from {room}", ban, now)
            return ChatError(ErrorCode.BANNED, sentence)
        if not self.rules.member(room, key):
            return ChatError(
                ErrorCode.PRIVATE_ROOM,
                f"{room} is private: only the people invited can join it; ask one of its ops",
            )
        return None

    def _server_ban(self, key: str, owner: str, address: str) -> Sanction | None:
        """The server-wide ban that keeps a `hello` out, if any."""
        if not self.rules.server.bans and not self.rules.networks:
            return None
        if owner and self.admins.holds(key, owner):
            return None
        now = self.clock()
        return self.rules.banned(SERVER, key, owner, now) or self.rules.network_ban(address, now)

    # --- sessions --------------------------------------------------------

    def _user(self, session: Session) -> User[Session]:
        assert session.user is not None  # the state machine only passes these after welcome
        return session.user

    def _hello(self, session: Session, hello: Hello) -> None:
        if session.user is not None or session.greeting:  # a second hello in the same read
            raise ChatError(ErrorCode.ALREADY_WELCOMED, "the session is already open")
        name = check_name(hello.name)
        keys = name_keys(name)
        verdict = self.ownership.check_owner(
            keys, hello, session.challenge, self.broker.last_private_id()
        )
        owner = verdict.register
        proved = key_of(owner) if owner is not None else ""  # the key the hello proved
        if verdict.owned and owner is None:
            proved = self._owner_of(name)
        ban = self._server_ban(keys[0], proved, session.ip)
        if ban is not None:
            now = self.clock()
            raise ChatError(
                ErrorCode.BANNED,
                plan.sanction_sentence("banned", "from this server", ban, now),
            )
        new_name = owner is not None and verdict.replacing is None
        if new_name and not self.flood.registration(session.ip, _now()):
            raise ChatError(
                ErrorCode.RATE_LIMITED,
                "too many names were registered from your address lately; try again later",
            )
        self._replace_ghost(hello, verdict)
        self._replace_remote_ghost(hello, verdict)
        online = self.chat.find(name)
        remote = self.peers.find(name)
        if verdict.owned:  # the key's owner: another device of theirs, online or not
            if any(other is not None and other.key != keys[0] for other in (online, remote)):
                raise ChatError(ErrorCode.NAME_TAKEN, f"the name {name!r} is taken; pick another")
            self._check_devices(online, keys[0], hello.token)  # before any work for it
        elif online is not None or any(key in self._greeting for key in keys):
            raise ChatError(ErrorCode.NAME_TAKEN, f"the name {name!r} is taken; pick another")
        room_limit = self.config.chat.max_rooms_per_user
        if online is not None:  # the person's rooms are this device's
            rooms = list(online.rooms)
        elif remote is not None:  # on other servers only: their rooms, here too
            rooms = [LOBBY, *(r for r in self.peers.rooms_of(remote.key) if r != LOBBY)]
            rooms = rooms[:room_limit]
        else:
            rooms = [LOBBY]
            for position in hello.positions or ():
                with contextlib.suppress(ChatError):  # a room that cannot be joined is not resumed
                    room = check_room(position.room)
                    if (
                        room not in rooms
                        and len(rooms) < room_limit
                        and self._entry_refusal(keys[0], proved, room) is None
                        and self._opens_room(session, room)
                    ):
                        rooms.append(room)
        session.greeting = True
        for key in keys:  # the name is held for this hello until it is welcomed or refused
            self._greeting[key] = session

        def finished() -> None:
            session.greeting = False
            for key in keys:
                if self._greeting.get(key) is session:
                    del self._greeting[key]

        def welcome(error: Exception | None) -> None:
            finished()
            if error is not None:
                session.send(_unavailable(error, hello.ref))
            elif session.open:
                self._guarded(
                    session, hello.ref, self._welcome, session, hello, keys, verdict, rooms
                )
            session.markers = ()

        session.line, fresh = self._line(keys, hello, verdict)
        session.owned = verdict.owned or verdict.register is not None  # (registering: proved)
        session.identity = proved
        lineage = session.line.lineage
        session.marker_key = f"{keys[0]}{SINCE}{lineage}" if lineage else keys[0]

        def follow() -> None:  # the user's read markers first (a new line has none)
            then = partial(self._follow, rooms, welcome)
            if fresh:
                then()
            else:
                self._spawn(self._read_markers(session, session.marker_key, then))

        if owner is None:
            follow()
            return

        def claimed(result: bool | Exception) -> None:
            if result is True:
                self.ownership.registered(keys, owner)
                moved = " (moved from its version-1 secret)" if verdict.replacing else ""
                log.info("%s is now registered to its key%s", name, moved)
                follow()
                return
            finished()
            if isinstance(result, Exception):
                session.send(_unavailable(result, hello.ref))
            else:
                session.send(
                    Error(
                        code=str(ErrorCode.NAME_REGISTERED),
                        message=f"{name} was just registered to another key; pick another name",
                        ref=hello.ref,
                    )
                )

        self.peers.claim(
            dict.fromkeys(keys), name, owner, self.clock(), claimed, replacing=verdict.replacing
        )

    def _line(
        self, keys: tuple[str, str], hello: Hello, verdict: Verdict
    ) -> tuple[TokenLine, bool]:
        """The line of sessions `hello` continues (see `TokenLine`), and whether it is new."""
        if verdict.owned:  # the key's owner: private messages since the name was registered
            return TokenLine(verdict.since), False
        if verdict.register is not None:  # registering now: from now on
            return TokenLine(self.broker.last_private_id()), True
        line = self.ownership.token_line(keys[0], hello.token)
        if line is not None:  # resuming a line of a name without a key
            return line, False
        return TokenLine(self.broker.last_private_id(), new_lineage()), True  # taken afresh

    async def _read_markers(
        self, session: Session, user_key: str, then: Callable[[], None]
    ) -> None:
        """Read the user's read markers for the session's `welcome`, then `then()`."""
        try:
            session.markers = await self.broker.read_markers(user_key)
        except Exception as exc:  # the store is away: none shown till the next sign-in
            log.warning("cannot read the read markers of %s: %s", user_key, exc)
        finally:
            then()

    def _welcome(
        self,
        session: Session,
        hello: Hello,
        keys: tuple[str, str],
        verdict: Verdict,
        rooms: list[str],
    ) -> None:
        """The rooms are followed (and a new name is registered): bring the user online, or
        add this session to those of the user online here.

        A hello that proved the name's key (`verdict.owned`) may, like one with a valid
        token, read the user's private history (since the name was registered). `rooms`: the
        rooms followed for it, the only ones it is put back in. `keys`: the name's keys.
        """
        keyless = verdict.register is None and not verdict.owned
        if keyless and any(key in self.ownership.identities for key in keys):  # since the check
            raise ChatError(
                ErrorCode.NAME_REGISTERED,
                f"{hello.name} was just registered to a key; pick another name",
            )
        user = self.chat.find(hello.name)
        if user is not None:  # another session of someone online here
            if not verdict.owned or user.key != keys[0]:  # (a key only now registering: no)
                raise ChatError(
                    ErrorCode.NAME_TAKEN, f"the name {hello.name!r} is taken; pick another"
                )
            self._add_session(user, session, hello.token)
            positions = {p.room: p for p in hello.positions or ()}
            resumed = [(r, positions[n]) for n, r in user.rooms.items() if n in positions]
            deliveries: list[Delivery[Session]] = []
            rejoined: list[Delivery[Session]] = []
            self.peers.sessions_changed(_local(user))
        else:
            if not verdict.owned and self.peers.find(hello.name) is not None:  # (since the check)
                raise ChatError(
                    ErrorCode.NAME_TAKEN, f"the name {hello.name!r} is taken; pick another"
                )
            self.chat.check_session([], self.peers.devices(keys[0]))  # those on other servers
            elsewhere = verdict.owned and self.peers.devices(keys[0]) > 0
            if elsewhere:  # their rooms as they are now (they may have changed since the hello)
                rooms = [r for r in rooms if r == LOBBY or self.peers.in_room(keys[0], r)]
            user, deliveries = self.chat.login(hello.name, session, self.clock())
            self.fanout.joined(user.rooms[LOBBY], session)
            resumed, rejoined = self._rejoin(user, hello.positions or (), rooms)
            if elsewhere:  # away is the person's: as their other devices have it
                reason, since = self.peers.away(user.key)
                self.chat.set_away(user, reason, since)
            self.peers.logged_in(_local(user))
            if elsewhere:
                for there in self.peers.rooms_of(user.key):
                    if there not in user.rooms:  # joined there since: followed, then joined
                        self._join_elsewhere(user, there)
        session.user = user
        since = session.private_since = session.line.since
        token, stored = self.ownership.new_token(user.key, session.line)
        session.token_hash = token_hash(token)
        self.peers.save_token(user.key, stored)
        online = len(self.chat.users)
        motd = self.config.motd or (
            f"Welcome to {self.config.server_name}, {user.name}! "
            f"{online} user{'s' if online != 1 else ''} online."
        )
        markers = session.markers
        listed = self._listed(LOBBY)
        if markers and user.key not in self._markers:  # (none: the common case, none kept)
            recent = reversed(markers[:CACHED_MARKERS])
            self._markers[user.key] = {m.conversation: m for m in recent}
        session.send(
            Welcome(
                version=PROTOCOL_VERSION,
                server=self.config.server_name,
                name=user.name,
                rooms=tuple(user.rooms),
                users=listed.users,
                motd=motd,
                limits={
                    "max_frame": self.config.max_frame,
                    "max_text_bytes": self.config.chat.max_text_bytes,
                    "max_rooms_per_user": self.config.chat.max_rooms_per_user,
                    "max_devices": self.config.chat.max_devices,
                    "heartbeat_interval_ms": int(self.config.heartbeat_interval * 1000),
                    "heartbeat_timeout_ms": int(self.config.heartbeat_timeout * 1000),
                    "member_list": self.config.member_list,
                },
                positions=tuple(_position(room) for room in user.rooms.values()),
                token=token,
                private_seq=self.broker.last_private_id(),
                devices=len(user.sessions) + self.peers.devices(user.key),
                read=tuple(Position(m.label, m.epoch, m.seq) for m in markers),
                away=listed.away,
                away_reasons=listed.reasons,
                ignored=self.rules.ignored(user.key),
                admin=self._person(session, user).admin,
                members=listed.partial,
                ref=hello.ref,
            )
        )
        for name in user.rooms:
            if name in self.rules.rooms:
                session.send(self._details(name))
        log.info("%s joined from %s (%d sessions)", user.name, session.peer, len(user.sessions))
        self.deliver(deliveries)
        self.deliver(rejoined)
        for room, position in resumed:
            self._resume_room(session, room, position)
        if hello.private_after is not None:  # (never from before the line began: `since`)
            after = min(max(hello.private_after, since, 0), MAX_SEQ)
            self._spawn(self._replay_privates(session, after))
        elif session.owned:  # a device signing in afresh: what was sent to it while away
            self._spawn(self._replay_unread(session, since, self.broker.last_private_id()))

    def _check_devices(self, user: User[Session] | None, user_key: str, token: str | None) -> None:
        """Refuse a session past the user's device limit (unless it replaces the device's own
        earlier connection, which brings that connection's token)."""
        sessions = user.sessions if user is not None else []
        hashed = token_hash(token) if token else ""
        if not any(hashed and s.token_hash == hashed for s in sessions):
            self.chat.check_session(sessions, self.peers.devices(user_key))

    def _add_session(self, user: User[Session], session: Session, token: str | None) -> None:
        """Add `session` to those of `user`; the device's earlier connection (it brings that
        connection's token) is replaced in place: no one sees the user leave and come back."""
        hashed = token_hash(token) if token else ""
        ghost = next((s for s in user.sessions if hashed and s.token_hash == hashed), None)
        if ghost is None:
            self.chat.check_session(user.sessions, self.peers.devices(user.key))
            user.add_session(session)
        else:
            log.info("%s is back from another connection; dropping the old one", user.name)
            ghost.user = None
            user.replace_session(ghost, session)
            ghost.abort("disconnect")
        for room in user.rooms.values():
            self.fanout.joined(room, session)

    def _replace_ghost(self, hello: Hello, verdict: Verdict) -> None:
        """A returning user of a keyless name with a valid token takes over the session that
        still looks alive (a keyed name's owner opens another session instead)."""
        ghost = self.chat.find(hello.name)
        if ghost is None or verdict.owned or not self.ownership.check_token(ghost.key, hello.token):
            return
        log.info("%s is back from another connection; dropping the old one", ghost.name)
        for old in list(ghost.sessions):
            self._replaced(old)

    def _replaced(self, old: Session, reason: str = "replaced") -> None:
        """The user of `old` signed in again elsewhere (`replaced`), or another device of theirs
        signed it out (`signed_out`): say so (a client that is still there must not reconnect
        and take the session back), and drop it."""
        self.logout(old, "disconnect")
        old.send(Bye(reason=reason, message=REPLACED if reason == "replaced" else SIGNED_OUT))
        old.close("disconnect")

    def _replace_remote_ghost(self, hello: Hello, verdict: Verdict) -> None:
        """The name is in use on another server: the owner of a keyless name takes it over with
        its token, anyone else is refused (a keyed name's owner opens another session)."""
        ghost = self.peers.find(hello.name)
        if ghost is None or verdict.owned:
            return
        if not self.ownership.check_token(ghost.key, hello.token):
            raise ChatError(ErrorCode.NAME_TAKEN, f"the name {hello.name!r} is taken; pick another")
        log.info("%s is back from another server; dropping the old connection", ghost.name)
        for held in self.peers.servers_of(ghost.key):
            self.peers.kick(held)

    def _listed(self, room: str, after: str = "", limit: int = 0) -> MemberList:
        """Who is in `room` (on every server; everyone online for ""): at most `limit` names
        (the `member_list` limit for 0, or a larger one) that sort after `after`, as
        `welcome`, `room_state` and `user_list` give them."""
        most = self.config.member_list
        limit = most if limit <= 0 else min(limit, most)
        remote = self.peers.names(room)
        if not remote:
            here = self.chat.room(room or LOBBY)  # (no such room: `no_such_room`)
            names, total = here.page(after, limit + 1), len(here.members)
        else:  # the first names after `after`, without sorting everyone
            everyone = dict.fromkeys((*self._local_names(room), *remote))
            total = len(everyone)
            wanted: Iterable[str] = everyone
            if after:
                last = _list_order(after)
                wanted = (name for name in everyone if _list_order(name) > last)
            names = heapq.nsmallest(limit + 1, wanted, key=_list_order)
        listed = tuple(names[:limit])
        away, reasons = self._away_among(listed)
        return MemberList(listed, away, reasons, total, len(names) > limit)

    def _local_names(self, room: str) -> tuple[str, ...]:
        """The members of `room` here (none if it has none here)."""
        try:
            return self.chat.who(room)
        except ChatError:
            return ()

    def _members(self, room: Room[Session]) -> int:
        """How many are in `room`, on every server."""
        return len(room.members) + self.peers.count(room.name)

    def _away_among(self, names: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """Those of `names` who are away, sorted like them, and their reasons."""
        remote = self.peers.away_users()
        if not self.chat.away and not remote:
            return (), ()
        wanted = set(names)
        reasons = {u.name: u.away for u in self.chat.away.values() if u.name in wanted}
        for key, (name, reason) in remote.items():
            if key not in self.chat.users and name in wanted:
                reasons.setdefault(name, reason)
        away = tuple(sorted(reasons, key=sort_key))
        return away, tuple(reasons[name] or "" for name in away)

    def _rejoin(
        self, user: User[Session], positions: Iterable[Position], rooms: list[str]
    ) -> tuple[list[tuple[Room[Session], Position]], list[Delivery[Session]]]:
        """Put a user who comes online in `rooms` (those followed for them): where they were
        (`positions`), or where their sessions on other servers are.

        Returns the rooms to replay and the `joined` announcements (to deliver
        after the `welcome`).
        """
        announcements: list[Delivery[Session]] = []
        for name in rooms:
            if name in user.rooms:
                continue
            if name in self.rules.rooms and not self._may_enter(user.sessions[0], user, name):
                continue  # banned, or made private, since the hello was checked
            try:
                room, deliveries = self.chat.join(user, name, self.clock())
            except ChatError:
                continue  # a room that cannot be joined any more is simply not resumed
            self._hold_key(room)
            self.fanout.joined(room, user.sessions[0])
            announcements += deliveries
        resumed: dict[str, tuple[Room[Session], Position]] = {}
        for position in positions:
            with contextlib.suppress(ChatError):
                name = check_room(position.room)
                if name in user.rooms:
                    resumed.setdefault(name, (user.rooms[name], position))
        return list(resumed.values()), announcements

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
        """Write what the client missed in `room` (`after` < seq <= `upto`), then what the room
        heard meanwhile (held back till then), a page at a time as the client reads them.

        Messages the store cannot give end the replay with `room_reset`: the client reloads.
        """
        epoch = room.epoch
        count = max(1, MAX_PAGE_BYTES // (self.config.chat.max_text_bytes + 512))
        with session.pacing():
            try:
                while after < upto and session.open:
                    last = min(after + count, upto)
                    async with session.paging:  # one page in memory per client, of all its rooms
                        if not session.open:
                            return
                        try:
                            messages = await self.broker.replay(room.name, after, last)
                        except Exception as exc:  # the store is away: the client reloads instead
                            log.warning("cannot replay %s: %s", room.name, exc)
                            messages = []
                        if room.epoch != epoch:
                            return  # its history was lost meanwhile: a `room_reset` is held
                        if [m.seq for m in messages] != list(range(after + 1, last + 1)):
                            session.send(RoomReset(room=room.name, epoch=epoch, seq=upto))
                            return
                        frames = [encode_frame(Codec.encode(m)) for m in messages]
                        await session.paced_write(frames)
                    count = max(1, min(MAX_PAGE, count * MAX_PAGE_BYTES // sum(map(len, frames))))
                    after = last
            finally:
                await session.release(room.name)

    async def _replay_privates(self, session: Session, after: int) -> None:
        """Write the user's private messages with pid > `after`, a page at a time as the client
        reads them."""
        count = max(1, MAX_PAGE_BYTES // (self.config.chat.max_text_bytes + 512))
        with session.pacing():
            while True:
                async with session.paging:  # one page in memory per client, rooms' included
                    user = session.user
                    if user is None or not session.open:
                        return
                    try:
                        messages = await self.broker.privates(user.key, after, count)
                    except Exception as exc:  # the next resume replays them
                        log.warning("cannot replay private messages to %s: %s", user.name, exc)
                        return
                    frames = [encode_frame(Codec.encode(m)) for m in messages]
                    await session.paced_write(frames)
                if len(messages) < count:
                    return
                after = messages[-1].pid
                count = max(1, min(MAX_PAGE, count * MAX_PAGE_BYTES // sum(map(len, frames))))

    async def _replay_unread(self, session: Session, since: int, upto: int) -> None:
        """Write the private messages sent to the user after their read marker of each
        conversation (and after `since`, up to `upto`: those after the welcome come live): a
        device signing in afresh gets what came while the user was away."""
        with session.pacing():
            async with session.paging:
                user = session.user
                if user is None or not session.open:
                    return
                try:
                    messages = await self.broker.unread_privates(user.key, MAX_PAGE)
                except Exception as exc:  # they stay unread: the next sign-in sends them
                    log.warning("cannot read the unread messages of %s: %s", user.name, exc)
                    return
                unread = [m for m in messages if since < m.pid <= upto]
                kept = _within(unread, 4 * MAX_PAGE_BYTES)
                await session.paced_write(encode_frame(Codec.encode(m)) for m in kept)

    # --- messages --------------------------------------------------------

    def _send(self, session: Session, send: Send) -> None:
        user = self._user(session)
        _check_id(send.id)
        room, text = self.chat.check_post(user, send.room, send.text)
        held = self.rules.rooms.get(room.name)
        if held is not None and held.mutes:
            self._check_voice(session, user, room.name)
        self._typing.refill((user.key, room.name))  # the message ends the typing: afresh
        reply = send.reply
        if reply is not None and not 0 < reply <= room.delivered:
            raise ChatError(
                ErrorCode.NO_SUCH_MESSAGE, f"there is no message {reply} in {room.name}"
            )
        post = Post(
            room.name, user.name, user.key, text, send.action, send.id, self.clock(), "", reply or 0
        )
        self.broker.publish(post, lambda result: self._published(session, send, result))

    def _verb(self, session: Session, request: React | Edit | Delete) -> None:
        """A reaction, an edit or a delete: checked against the message as stored, then
        numbered and stored in the room's order like a message (and acknowledged like one)."""
        user = self._user(session)
        _check_id(request.id)
        room = self.chat.membership(user, request.room)
        if room is None:
            raise ChatError(ErrorCode.NOT_IN_ROOM, f"you are not in {request.room}; join it first")
        if isinstance(request, Delete) and not self._moderating.take(user.key, 1, _now()):
            raise ChatError(ErrorCode.RATE_LIMITED, "slow down: too many deletes")
        text = ""
        if isinstance(request, React):
            text = verbs.check_reaction(request.text)
        elif isinstance(request, Edit):
            text = self.chat.clean_text(request.text)
        if not isinstance(request, Delete):
            held = self.rules.rooms.get(room.name)
            if held is not None and held.mutes:
                self._check_voice(session, user, room.name)
        seq = request.seq
        if not 0 < seq <= room.delivered:
            raise ChatError(ErrorCode.NO_SUCH_MESSAGE, f"there is no message {seq} in {room.name}")

        async def check_and_publish() -> None:
            lock, users = self._verb_locks.get(room.name, (asyncio.Lock(), 0))
            self._verb_locks[room.name] = (lock, users + 1)
            try:
                async with lock:  # a room's verbs one at a time: each checked as the last left it
                    await checked_and_stored()
            finally:
                lock, users = self._verb_locks[room.name]
                if users > 1:
                    self._verb_locks[room.name] = (lock, users - 1)
                else:
                    del self._verb_locks[room.name]

        async def checked_and_stored() -> None:
            try:
                held = await self.broker.held(room.name, seq, user.key)
            except Exception as exc:
                session.send(_unavailable(exc, request.ref))
                return
            original = held.message if held is not None else None
            on = None
            try:
                if isinstance(request, React):
                    given = held is not None and text in held.reacted
                    verbs.refuse_reaction(original, seq, text, given)
                    on = not given
                elif isinstance(request, Edit):
                    verbs.refuse_edit(
                        original, seq, held is not None and held.sender_key == user.key
                    )
                else:
                    allowed = held is not None and (
                        held.sender_key == user.key or self._moderates(session, user, room.name)
                    )
                    verbs.refuse_delete(original, seq, allowed)
            except ChatError as exc:
                session.send(_refused(exc, request.ref))
                return
            post = Post(room.name, user.name, user.key, text, False, request.id, self.clock(),
                        request.TYPE, seq, on)  # fmt: skip
            stored = asyncio.get_running_loop().create_future()

            def published(result: Published | Exception) -> None:
                self._published(session, request, result)
                if not stored.done():
                    stored.set_result(None)

            self.broker.publish(post, published)
            with contextlib.suppress(TimeoutError):  # (a broker answers within its retries)
                async with asyncio.timeout(VERB_WAIT):
                    await stored

        self._spawn(check_and_publish())

    def _moderates(self, session: Session, user: User[Session], room: str) -> bool:
        """Whether the user is an owner or op of `room`, or an admin."""
        try:
            plan.check_role(self.rules, room, self._person(session, user), "delete")
        except ChatError:
            return False
        return True

    def _search(self, session: Session, request: Search) -> None:
        user = self._user(session)
        if not self._searching.take(user.key, 1, _now()):
            raise ChatError(ErrorCode.RATE_LIMITED, "slow down: too many searches")
        words = query_words(request.words)
        room = with_key = ""
        if request.room.startswith("@"):
            with_key = name_key(check_name(request.room[1:]))
        elif request.room:
            room = self._room_of(user, request.room)
            self._check_sees(session, room)
        sender_key = name_key(check_name(request.sender)) if request.sender else ""
        limit = max(1, min(request.limit, MAX_RESULTS))
        query = SearchQuery(
            words, user.key, room, with_key, sender_key, request.before, limit,
            session.private_since or 0,
        )  # fmt: skip

        async def reply() -> None:
            hits, more = await self.broker.search(query, lambda r: self._sees(session, user, r))
            # (not cut to a byte budget: at most `MAX_RESULTS` texts, far below the 16 MiB a
            # client takes, and a cut page could not say where to go on from)
            session.send(SearchResults(hits=tuple(hits), next=more, ref=request.ref))

        self._spawn(self._answering(session, request.ref, reply()))

    def _muted(self, session: Session, user: User[Session], room: str) -> Sanction | None:
        """The mute that keeps the user from posting in `room` now, if any."""
        owner = session.identity
        mute = self.rules.muted(room, user.key, owner, self.clock())
        return None if mute is None or self.admins.holds(user.key, owner) else mute

    def _check_voice(self, session: Session, user: User[Session], room: str) -> None:
        """Raise `muted` if the user may not post in `room` now."""
        mute = self._muted(session, user, room)
        if mute is not None:
            now = self.clock()
            raise ChatError(
                ErrorCode.MUTED,
                plan.sanction_sentence("muted", f"in {room}", mute, now) + " (you can still read)",
            )

    def _published(
        self, session: Session, send: Send | React | Edit | Delete, result: Published | Exception
    ) -> None:
        """Acknowledge a stored message; a retry of one not delivered here yet waits for it."""
        if isinstance(result, Exception):
            session.send(_unavailable(result, send.ref))
            return
        message = result.message
        room = self.chat.rooms.get(message.room)
        if (
            result.new
            or room is None
            or result.epoch != room.epoch
            or message.seq <= room.delivered  # a retry of a delivered message
        ):
            session.send(_ack(message, send))
        else:  # a retry of a message on its way here
            self._waiting_acks.setdefault((room.name, message.seq), []).append((session, send))

    def _private(self, session: Session, private: Private) -> None:
        user = self._user(session)
        _check_id(private.id)
        try:  # a name that cannot be anyone's is nobody online (and costs no look-alike keys)
            to = check_name(private.to)
        except ChatError:
            target = None
        else:
            found = self._online(to)
            target = (found.name, found.key) if found is not None else None
            if target is None and name_key(to) in self.ownership.identities:
                target = (to, name_key(to))  # registered, and away: it waits for them
        refusal = None
        text = private.text
        try:  # refused only once the broker knows it is no retry (a retry is answered)
            text = self.chat.clean_text(private.text)
            if target is None:
                raise ChatError(
                    ErrorCode.NO_SUCH_USER,
                    f"{private.to!r} is not online (only a registered name gets messages while "
                    "away)",
                )
            if not self.flood.private(session.ip, user.key, target[1], _now()):
                raise ChatError(
                    ErrorCode.RATE_LIMITED,
                    f"slow down: too many private messages to {target[0]} lately",
                )
        except ChatError as exc:
            refusal = exc
        if target is not None and refusal is None:
            self._typing.refill((user.key, f"@{target[1]}"))
        hidden = target is not None and self.rules.ignoring(target[1], user.key, session.identity)
        post = PrivatePost(
            user.name, user.key, target[0] if target else private.to,
            target[1] if target else "", text, private.action, private.id, self.clock(), refusal,
            hidden,
        )  # fmt: skip

        def stored(result: PublishedPrivate | Exception) -> None:
            if isinstance(result, ChatError):
                session.send(_refused(result, private.ref))
            elif isinstance(result, Exception):
                session.send(_unavailable(result, private.ref))
            else:
                if result.new:  # its other copies (`on_private`) come next; this one has it
                    pid = result.message.pid
                    self._private_origin[pid] = session
                    asyncio.get_running_loop().call_soon(self._private_origin.pop, pid, None)
                session.send(dataclasses.replace(result.message, id=private.id, ref=private.ref))

        self.broker.publish_private(post, stored)

    def _history(self, session: Session, request: History) -> None:
        name = check_room(request.room)
        self._check_sees(session, name)
        limit = max(1, min(request.limit, MAX_PAGE))
        room = self.chat.rooms.get(name)
        before = min(max(request.before, 0), MAX_SEQ)  # stores hold 64-bit signed integers
        if room is not None:  # not past what was delivered here
            before = min(before, room.delivered + 1) if before else room.delivered + 1

        async def reply() -> None:
            position, page = await self.broker.page(name, before, limit)
            here = self.chat.rooms.get(name)
            if here is None and not position.seq and not self.peers.count(name):
                session.send(_no_such_room(name, request.ref))
                return
            complete = not page or page[0].seq == 1 or len(page) < limit
            messages = _within(page, MAX_PAGE_BYTES)
            complete = complete and len(messages) == len(page)
            session.send(
                HistoryPage(
                    room=name,
                    epoch=here.epoch if here is not None else position.epoch,
                    messages=tuple(messages),
                    complete=complete,
                    ref=request.ref,
                )
            )

        self._spawn(self._answering(session, request.ref, reply()))

    def _check_sees(self, session: Session, room: str) -> None:
        """Raise `private_room` if the user may not see `room`."""
        if not self._sees(session, self._user(session), room):
            raise ChatError(
                ErrorCode.PRIVATE_ROOM, f"{room} is private: only its members can see it"
            )

    async def _answering(
        self, session: Session, ref: int | None, reply: Coroutine[Any, Any, None]
    ) -> None:
        """Run a reply that reads the store; if the store fails, say so instead."""
        try:
            await reply
        except Exception as exc:
            session.send(_unavailable(exc, ref))

    def _online(self, name: str) -> User[Session] | RemoteUser | None:
        """The user online (here or on another server) whose name is `name` or looks like it."""
        return self.chat.find(name) or self.peers.find(name)

    def _party(self, name: str) -> tuple[str, str]:
        """The other party of a private conversation with `name`: their name as they are online
        (here or elsewhere) and their user key; for someone offline, `name` and its key."""
        found = self._online(name)
        return (found.name, found.key) if found is not None else (name, name_key(name))

    def _private_history(self, session: Session, request: PrivateHistory) -> None:
        user = self._user(session)
        shown, other_key = self._party(check_name(request.name))
        limit = max(1, min(request.limit, MAX_PAGE))
        before = min(max(request.before, 0), MAX_SEQ)
        since = session.private_since or 0

        async def reply() -> None:  # one more than asked: whether anything older is left
            page = await self.broker.conversation(user.key, other_key, before, limit + 1)
            older, page = len(page) > limit, page[-limit:]
            mine = [m for m in page if m.pid > since]  # (a keyless name's earlier holders')
            messages = _within(mine, MAX_PAGE_BYTES)
            complete = not older or len(mine) < len(page)
            session.send(
                PrivatePage(
                    name=shown,
                    messages=tuple(messages),
                    complete=complete and len(messages) == len(mine),
                    ref=request.ref,
                )
            )

        self._spawn(self._answering(session, request.ref, reply()))

    def _mark_read(self, session: Session, request: MarkRead) -> None:
        user = self._user(session)
        seq = min(max(request.seq, 0), MAX_MARKER_SEQ)
        if request.room.startswith("@"):
            shown, other_key = self._party(check_name(request.room[1:]))
            marker = ReadMarker(f"@{other_key}", f"@{shown}", 0, seq)
        else:
            mine = self.chat.membership(user, request.room)  # (a look-alike of one of theirs)
            room = mine.name if mine is not None else check_room(request.room)
            self._check_sees(session, room)
            here = self.chat.rooms.get(room)
            epoch = min(max(request.epoch, 0), MAX_MARKER_SEQ)
            if here is not None:  # epoch 0: the room's own; not past its last message
                if epoch and epoch != here.epoch:  # read before the room's history was replaced
                    if request.ref is not None:
                        known = self._markers.get(user.key, {}).get(room)
                        now = known or ReadMarker(room, room, here.epoch, 0)
                        session.send(_marker_message(now, request.ref))
                    return
                epoch, seq = here.epoch, min(seq, here.delivered)
            marker = ReadMarker(room, room, epoch, seq)
        before = self._markers.get(user.key, {}).get(marker.conversation)

        def stored(result: ReadMarker | Exception) -> None:
            if isinstance(result, Exception):
                session.send(_unavailable(result, request.ref))
                return
            if not user.sessions:
                return  # (gone meanwhile)
            if request.ref is not None:
                session.send(_marker_message(result, request.ref))
            if result == before:
                return  # it did not move: nobody needs telling
            moved_on = result.seq != marker.seq or result.epoch != marker.epoch
            origin = None if moved_on and request.ref is None else session
            self._marker_moved(user, result, origin)

        self.broker.mark_read(session.marker_key, marker, stored)

    def _marker_moved(
        self, user: User[Session], marker: ReadMarker, origin: Session | None
    ) -> None:
        """Keep the user's marker, and tell their sessions (but the one that moved it); an
        older one, arriving late, is not taken."""
        markers = self._markers.setdefault(user.key, {})
        kept, moved = merged(markers.pop(marker.conversation, None), marker)
        markers[marker.conversation] = kept  # the most recently moved last
        while len(markers) > CACHED_MARKERS:
            del markers[next(iter(markers))]
        others = [session for session in user.sessions if session is not origin] if moved else ()
        if others:
            frame = encode_frame(Codec.encode(_marker_message(marker, None)))
            for session in others:
                session.write_frame(frame)

    def _sign_out(self, session: Session, request: SignOut) -> None:
        user = self._user(session)
        if not session.owned:  # a name without a key has one session: none to sign out
            session.send(SignedOut(devices=0, ref=request.ref))
            return
        others = [s for s in user.sessions if s is not session]
        for other in others:
            self._replaced(other, "signed_out")
        for held in self.peers.servers_of(user.key):
            self.peers.kick(held, "signed_out")
        log.info("%s signed out their other sessions", user.name)
        session.send(SignedOut(devices=len(others), ref=request.ref))

    # --- away and typing -------------------------------------------------

    def _set_away(self, session: Session, request: SetAway) -> None:
        user = self._user(session)
        reason = self.chat.check_away(request.reason) if request.away else None
        away = Away(name=user.name, away=reason is not None, reason=reason or "")
        session.send(dataclasses.replace(away, ref=request.ref))
        if reason == user.away:
            return  # nothing changes: nobody else hears of it
        since = max(time.time_ns(), user.away_since + 1)  # later than any change known here
        self.chat.set_away(user, reason, since)
        self._announce_away(user.name, reason, session)
        self.peers.away_changed(_local(user))
        log.info("%s is %s", user.name, "back" if reason is None else "away")

    def _announce_away(self, name: str, reason: str | None, origin: Session | None = None) -> None:
        """Everyone online here (the lobby) hears that `name` is away now, or back; `origin`,
        which has its reply, does not."""
        away = Away(name=name, away=reason is not None, reason=reason or "")
        frame = encode_frame(Codec.encode(away))
        lobby = self.chat.rooms[LOBBY]
        self.fanout.add(lobby, frame, presence=True, skip=(origin,) if origin else ())

    def _typing_in(self, session: Session, request: Typing) -> None:
        """Relay that the user is typing, at most every `TYPING_EVERY` seconds per
        conversation; one they cannot type in is dropped. Never answered."""
        user = self._user(session)
        conversation = request.room
        try:
            if conversation.startswith("@"):
                target = check_name(conversation[1:])
                found = self._online(target)
                if found is None or found.key == user.key:
                    return  # nobody online by that name, or oneself
                event = TypingEvent(user.name, user.key, target_key=found.key)
                limited = f"@{found.key}"
            else:
                room = self.chat.membership(user, conversation)
                if room is None:
                    return
                limited = room.name
                if len(room.members) + self.peers.count(limited) > TYPING_MAX_MEMBERS:
                    return  # a crowd: who types there is noise, and costs everyone's reads
                held = self.rules.rooms.get(limited)
                if held is not None and held.mutes and self._muted(session, user, limited):
                    return  # (who cannot post does not type either)
                event = TypingEvent(user.name, user.key, room=limited)
        except ChatError:
            return  # not a conversation at all
        if self._typing.take((user.key, limited), 1, _now()):
            self.broker.typing(event)

    # --- moderation -------------------------------------------------------

    def _moderator(self, session: Session) -> tuple[User[Session], Person]:
        """The user of a moderation request, once their requests are within the limit."""
        user = self._user(session)
        if not self._moderating.take(user.key, 1, _now()):
            raise ChatError(ErrorCode.RATE_LIMITED, "slow down: too many moderation requests")
        return user, self._person(session, user)

    def _room_of(self, user: User[Session], room_name: str) -> str:
        """The room a request names: one of the user's (by a look-alike too), or as written."""
        mine = self.chat.membership(user, room_name)
        return mine.name if mine is not None else check_room(room_name)

    def _someone(self, name: str) -> tuple[Person, bool]:
        """Whom a request is about (online here or elsewhere, registered, or neither), and
        whether their name is registered."""
        checked = check_name(name)
        found = self._online(checked)
        shown, key = (found.name, found.key) if found is not None else (checked, name_key(checked))
        owner = self._owner_of(checked)
        return Person(shown, key, owner, bool(owner) and self.admins.holds(key, owner)), bool(owner)

    def _in_room(self, key: str, room: str) -> bool:
        """Whether the user of `key` is in `room`, here or on another server."""
        local = self.chat.rooms.get(room)
        return (local is not None and key in local.members) or self.peers.in_room(key, room)

    def _moderate(self, session: Session, request: Moderate) -> None:
        user, actor = self._moderator(session)
        action = request.action
        if action not in MODERATE_ACTIONS:
            raise ChatError(
                ErrorCode.BAD_MESSAGE, f"action must be one of: {', '.join(MODERATE_ACTIONS)}"
            )
        room = self._room_of(user, request.room)
        reason = check_reason(request.reason, plan.MAX_REASON_BYTES, "a reason")
        now = self.clock()
        ends = plan.until(now, request.duration) if action in ("ban", "mute") else 0
        plan.check_role(self.rules, room, actor, action)
        scope = SERVER if room == LOBBY and action in plan.SERVER_WIDE else room
        prefix = plan.network(request.name) if scope == SERVER else None
        if prefix is not None and action in ("ban", "unban"):
            rules = plan.network_rules(self.rules, action, prefix, actor, reason, ends, now)
            self._carry_out(session, request.ref, ModEvent(
                _event_id(), SERVER, action, prefix, user.name, reason, ends, now, rules,
                by_key=user.key,
            ))  # fmt: skip
            return
        target, registered = self._someone(request.name)
        undoing = action in ("unban", "unmute", "deop")  # (an uninvitation takes people out)
        plan.check_target(self.rules, room, actor, target, undoing=undoing)
        if action in ("op", "invite") and not registered:
            made = "an op" if action == "op" else "invited"
            raise ChatError(
                ErrorCode.NOT_REGISTERED,
                f"{target.name} is not a registered name: only a registered name can be {made} "
                "(the app registers the names it uses)",
            )
        if action == "kick":
            present = (
                self.chat.find(target.name) is not None or self.peers.find(target.name) is not None
                if scope == SERVER
                else self._in_room(target.key, room)
            )
            if not present:
                where = "online" if scope == SERVER else f"in {room}"
                raise ChatError(ErrorCode.NO_SUCH_USER, f"{target.name} is not {where}")
        rules = plan.moderation_rules(self.rules, scope, action, actor, target, reason, ends, now)
        self._carry_out(session, request.ref, ModEvent(
            _event_id(), scope, action, target.name, user.name, reason, ends, now, rules,
            target_key=target.key, by_key=user.key,
        ))  # fmt: skip

    def _carry_out(
        self,
        session: Session,
        ref: int | None,
        event: ModEvent,
        reply: Callable[[], Any] | None = None,
    ) -> None:
        """Have the broker store `event` (then every server carries it out); `session` gets
        the reply (a `moderated`, or what `reply()` makes once it is carried out here)."""
        self._moderation_origin[event.id] = session

        def stored(error: Exception | None) -> None:
            if error is not None:
                self._moderation_origin.pop(event.id, None)
                session.send(_unavailable(error, ref))
                return
            if reply is None:
                session.send(
                    Moderated(
                        room=event.room, action=event.action, name=event.name, by=event.by,
                        reason=event.reason, until=event.until, ts=event.ts, ref=ref,
                    )
                )  # fmt: skip
            else:  # (after this server has taken its rules)
                asyncio.get_running_loop().call_soon(lambda: session.send(reply()))
            log.info("%s: %s %s %s", event.by, event.action, event.name, event.room or "(server)")

        self.broker.moderate(event, stored)

    def _set_topic(self, session: Session, request: SetTopic) -> None:
        user, actor = self._moderator(session)
        room = self._room_of(user, request.room)
        plan.check_role(self.rules, room, actor, "topic")
        topic = check_reason(request.topic, plan.MAX_TOPIC_BYTES, "a topic")
        now = self.clock()
        event = ModEvent(
            _event_id(), room, "topic", "", user.name, topic, ts=now,
            rules=(plan.topic_rule(room, topic, actor, now),), by_key=user.key,
        )  # fmt: skip
        self._carry_out(
            session, request.ref, event,
            lambda: self._details(room, request.ref, "topic", user.name),
        )  # fmt: skip

    def _set_private(self, session: Session, request: SetPrivate) -> None:
        user, actor = self._moderator(session)
        room = self._room_of(user, request.room)
        if room == LOBBY:
            raise ChatError(ErrorCode.BAD_MESSAGE, f"{LOBBY} is everyone's: it cannot be private")
        plan.check_role(self.rules, room, actor, "private")
        members: dict[str, str] = {}
        if request.private:  # everyone in it now (with a registered name) stays a member
            here = self.chat.rooms.get(room)
            names = [*(here.members.values() if here else ())]
            for each in names:
                if self._owner_of(each.name):
                    members[each.key] = each.name
            for name in self.peers.names(room):
                if self._owner_of(name):
                    members.setdefault(name_key(name), name)
        now = self.clock()
        event = ModEvent(
            _event_id(), room, "private" if request.private else "public", "", user.name,
            ts=now, rules=plan.private_rules(room, request.private, actor, members, now),
            by_key=user.key,
        )  # fmt: skip
        self._carry_out(
            session, request.ref, event,
            lambda: self._details(room, request.ref, "private", user.name),
        )  # fmt: skip

    def _ignore(self, session: Session, request: Ignore) -> None:
        user, person = self._moderator(session)
        if not session.identity:
            raise ChatError(
                ErrorCode.NOT_REGISTERED,
                "an ignore list is kept for a registered name only (the app registers its names)",
            )
        target, _ = self._someone(request.name)
        rule = plan.ignore_rule(self.rules, person, target, request.ignore)
        event = ModEvent(
            _event_id(), SERVER, "ignore" if request.ignore else "unignore", target.name,
            user.name, ts=self.clock(), rules=(rule,), target_key=target.key, by_key=user.key,
            logged=False,
        )  # fmt: skip

        def reply() -> Ignored:
            return Ignored(names=self.rules.ignored(user.key), ref=request.ref)

        self._carry_out(session, request.ref, event, reply)

    def _mod_log(self, session: Session, request: ModLog) -> None:
        user, actor = self._moderator(session)
        room: str | None = self._room_of(user, request.room) if request.room else None
        if not actor.admin and (room is None or not self.rules.is_op(room, user.key)):
            raise ChatError(
                ErrorCode.NOT_OP,
                "only admins read the whole moderation log; a room's owner and ops, its own",
            )
        limit = max(1, min(request.limit, MAX_LOG_PAGE))
        before = min(max(request.before, 0), MAX_SEQ)

        async def reply() -> None:
            entries = await self.broker.mod_log(room, before, limit + 1)
            session.send(
                ModLogPage(
                    entries=tuple(entries[:limit]), more=len(entries) > limit, ref=request.ref
                )
            )

        self._spawn(self._answering(session, request.ref, reply()))

    # --- rooms and presence ----------------------------------------------

    def _join(self, session: Session, join: Join) -> None:
        user = self._user(session)
        live = self.chat.live_room(join.room)
        if live is not None:  # in use here (by this name, or one that looks like it): at once
            self._enter(session, user, live, join, None)
            return
        name = self.chat.check_join(user, join.room)
        self._check_entry(session, user, name)  # (a refusal costs no new room)
        if not self._opens_room(session, name):
            raise ChatError(
                ErrorCode.RATE_LIMITED,
                "too many rooms were opened from your address lately; join one that has people",
            )

        def enter(result: RoomClaim) -> None:
            if session.user is user:
                self._guarded(
                    session, join.ref, self._enter, session, user, result.room, join, result.keyed
                )

        def claimed(result: RoomClaim | Exception) -> None:
            if session.user is not user:
                return  # gone meanwhile
            if isinstance(result, Exception):
                session.send(_unavailable(result, join.ref))
            elif result.new and session.owned and result.room not in self.rules.rooms:
                # its maker owns it (a name with a key only; not one an admin prepared)
                self._make_owner(session, user, result.room, partial(enter, result))
            else:  # this room, or the one whose name it looks like
                enter(result)

        self.broker.claim_room(name, room_key(name), claimed)

    def _make_owner(
        self, session: Session, user: User[Session], room: str, then: Callable[[], None]
    ) -> None:
        """Make the user the owner of the room they are making, then `then()` (the room opens
        without an owner if that cannot be stored)."""
        person = self._person(session, user)
        event = ModEvent(
            _event_id(), room, "create", user.name, user.name, ts=self.clock(),
            rules=(plan.owner_rule(room, person),), target_key=user.key, by_key=user.key,
        )  # fmt: skip

        def stored(error: Exception | None) -> None:
            if error is not None:
                log.warning("%s opens without an owner: %s", room, error)
            then()

        self.broker.moderate(event, stored)

    def _enter(
        self, session: Session, user: User[Session], room: str, join: Join, keyed: bool | None
    ) -> None:
        """Have the broker follow `room`, then put `user` in it (`keyed`: whether it holds its
        comparison key; None: not known yet)."""
        name = self.chat.check_join(user, room)
        self._check_entry(session, user, name)
        if keyed is None and not self._opens_room(session, name):
            raise ChatError(
                ErrorCode.RATE_LIMITED,
                "too many rooms were opened from your address lately; join one that has people",
            )

        def followed(error: Exception | None) -> None:
            if session.user is not user:
                return  # gone meanwhile
            if error is not None:
                session.send(_unavailable(error, join.ref))
            else:
                self._guarded(session, join.ref, self._joined, session, user, name, join, keyed)

        self._follow([name], followed)

    def _hold_key(self, room: Room[Session]) -> None:
        """Ask the broker whether `room` (with members here, entered without a claim: resumed,
        joined on another device) holds its comparison key; if it does, a join here of a name
        that looks like it comes to it at once (`Chat.live_room`)."""
        if room.key or room.name in self._claiming or room.name in self.chat.unkeyed:
            return  # (known, being asked, or known not to)
        self._claiming.add(room.name)

        def claimed(result: RoomClaim | Exception) -> None:
            self._claiming.discard(room.name)
            if isinstance(result, Exception):
                log.debug("cannot claim the key of %s: %s", room.name, result)
            elif result.keyed and result.room == room.name:
                self.chat.hold_key(room.name)

        self.broker.claim_room(room.name, room_key(room.name), claimed)

    def _opens_room(self, session: Session, room: str) -> bool:
        """Whether `session` may enter `room`: a room nobody is in takes one of its network's
        new rooms."""
        if room in self.chat.rooms or self.peers.count(room):
            return True
        return self.flood.new_room(session.ip, _now())

    def _joined(
        self,
        session: Session | None,
        user: User[Session],
        name: str,
        join: Join | None,
        keyed: bool | None = None,
    ) -> None:
        """Put `user` in the room; every session of theirs gets its `room_state` (the one that
        asked, `session`, as the reply to `join`). `keyed`: whether the room holds its
        comparison key (None: not known; the broker is asked)."""
        if session is not None:  # (a ban may have come while the room was being followed)
            self._check_entry(session, user, name)
        room, deliveries = self.chat.join(user, name, self.clock())
        if keyed:
            self.chat.hold_key(room.name)
        elif keyed is None:
            self._hold_key(room)
        for each in user.sessions:
            self.fanout.joined(room, each)
        self.peers.joined(_local(user), room.name, echo=join is None)
        marker = self._markers.get(user.key, {}).get(room.name)
        listed = self._listed(room.name)
        held = self.rules.room(room.name)
        state = RoomState(
            room=room.name,
            users=listed.users,
            seq=room.delivered,
            epoch=room.epoch,
            read=marker.seq if marker is not None and marker.epoch == room.epoch else 0,
            away=listed.away,
            away_reasons=listed.reasons,
            topic=held.topic,
            topic_by=held.topic_by,
            topic_ts=held.topic_ts,
            private=held.private,
            owner=held.owner,
            ops=held.op_names(),
            members=listed.partial,
        )
        for each in user.sessions:
            asked = each is session and join is not None
            each.send(dataclasses.replace(state, ref=join.ref) if asked and join else state)
        if self.peers.in_room(user.key, room.name):  # the room heard it from the other server
            for delivery in deliveries:
                frame = encode_frame(Codec.encode(delivery.message))
                for each in user.sessions:
                    each.write_frame(frame, room.name)
        else:
            self.deliver(deliveries)
        log.info("%s joined %s", user.name, room.name)

    def _join_elsewhere(self, user: User[Session], name: str) -> None:
        """Another device of `user`, on another server, joined room `name`: join it here too."""
        try:
            self.chat.check_join(user, name)
        except ChatError:
            return

        def followed(error: Exception | None) -> None:
            if error is not None:
                log.warning("cannot follow %s for %s: %s", name, user.name, error)
            elif (
                user.sessions
                and name not in user.rooms
                and self.peers.in_room(user.key, name)
                and self._may_enter(user.sessions[0], user, name)  # (not banned since)
            ):
                self._guarded(user.sessions[0], None, self._joined, None, user, name, None)

        self._follow([name], followed)

    def _part(self, session: Session, part: Part) -> None:
        user = self._user(session)
        self._part_everywhere(user, part.room, session, part.ref)

    def _part_everywhere(
        self, user: User[Session], name: str, session: Session | None, ref: int | None = None
    ) -> None:
        """Take `user` out of room `name`; every session of theirs gets `parted` (the one that
        asked, `session`, as the reply to `part`)."""
        room = self.chat.membership(user, name)
        if room is not None:
            self.fanout.flush_room(room)  # what the room heard before the leave reaches the leaver
        try:
            room_name, deliveries = self.chat.part(user, name, self.clock())
        except ChatError:
            if session is None:
                return  # (already out of it, or the lobby)
            raise
        self.deliver(deliveries)
        self._unfollow_empty([room_name])
        self.peers.parted(_local(user), room_name, "part", echo=session is None)
        for each in user.sessions:
            each.send(Parted(room=room_name, ref=ref if each is session else None))
        log.info("%s left %s", user.name, room_name)

    def _list_rooms(self, session: Session, request: ListRooms) -> None:
        limit = min(request.limit, ROOM_PAGE) if request.limit > 0 else ROOM_PAGE
        names = self._room_names()
        rooms: list[RoomInfo] = []
        more = False
        user = self._user(session)
        for name in names[bisect.bisect_right(names, request.after) :]:
            members = self._member_count(name)
            if not members and name != LOBBY:
                continue  # emptied since the names were sorted
            if name in self.rules.rooms and not self._sees(session, user, name):
                continue  # private: for its members' eyes
            if len(rooms) == limit:
                more = True
                break
            rooms.append(RoomInfo(name, members))
        session.send(RoomList(rooms=tuple(rooms), more=more, ref=request.ref))

    def _member_count(self, name: str) -> int:
        """People in room `name`, here and on the other servers, each once."""
        room = self.chat.rooms.get(name)
        local = room.members if room is not None else {}
        return len(local) + sum(1 for key in self.peers.keys(name) if key not in local)

    def _room_names(self) -> list[str]:
        """The names of the rooms people are in, sorted; sorted anew at most once a second, so
        that a page of `list_rooms` costs its length, not the number of rooms."""
        now, remote = _now(), self.peers.counts()
        shape = (len(self.chat.rooms), len(remote))  # a room opened or gone here: sort anew
        if now - self._names_sorted_at >= ROOM_NAMES_FOR or shape != self._names_shape:
            local = (n for n, r in self.chat.rooms.items() if r.members or n == LOBBY)
            self._sorted_names = sorted({*local, *remote})
            self._names_sorted_at, self._names_shape = now, shape
        return self._sorted_names

    def _who(self, session: Session, who: Who) -> None:
        room = check_room(who.room) if who.room else ""
        if room:
            self._check_sees(session, room)
        if not room or room in self.chat.rooms or self.peers.count(room):
            listed = self._listed(room, who.after, who.limit)
            session.send(
                UserList(
                    room=room, users=listed.users, away=listed.away,
                    away_reasons=listed.reasons, members=listed.partial, more=listed.more,
                    ref=who.ref,
                )
            )  # fmt: skip
            return

        async def reply() -> None:  # nobody is in it: a room with history, or none at all
            if (await self.broker.stored_position(room)).seq:
                session.send(UserList(room=room, users=(), ref=who.ref))
            else:
                session.send(_no_such_room(room, who.ref))

        self._spawn(self._answering(session, who.ref, reply()))

    def _ping(self, session: Session, ping: Ping) -> None:
        session.send(Pong(data=ping.data, ref=ping.ref))

    def _bye(self, session: Session, bye: Bye) -> None:
        if session.user is not None:  # what its rooms heard before the bye still reaches it
            for room in session.user.rooms.values():
                self.fanout.flush_room(room)
        self.logout(session, "quit")
        session.send(Bye(reason="quit", message="goodbye", ref=bye.ref))
        session.close("quit")


_CHANGES = {
    "topic": "topic", "private": "private", "public": "private", "op": "ops", "deop": "ops",
    "ban": "ops",
}  # fmt: skip
"""What a `room_info` says changed, by the moderation step that changed it."""


def _sentence(what: str, cause: ModEvent | Sanction, now: int = 0) -> str:
    """`root banned you from this server for 2 more hours: spam`-like words (how long is left
    counted from `now`, or from when it was done)."""
    why = f": {cause.reason}" if cause.reason else ""
    ends = plan.describe_until(cause.until, now or cause.ts)
    return f"{cause.by or 'an admin'} {what}{ends}{why}"


def _event_id() -> str:
    return secrets.token_hex(8)


def _local(user: User[Session]) -> LocalUser:
    return LocalUser(
        user.key, user.name, tuple(user.rooms), len(user.sessions), user.away, user.away_since
    )


def _check_id(client_id: str) -> None:
    if len(client_id) > MAX_ID:
        raise ChatError(ErrorCode.BAD_MESSAGE, f"an id has at most {MAX_ID} characters")


def _within(messages: list[M], budget: int) -> list[M]:
    """The newest of `messages` (oldest first) whose texts fit in `budget` bytes (at least one)."""
    kept = 0
    size = 0
    for message in reversed(messages):
        size += len(message.text.encode("utf-8", "surrogatepass")) + 64
        if isinstance(message, Message) and (message.reactions or message.quote):
            size += sum(len(r.text) * 4 + 8 + 100 * len(r.names) for r in message.reactions or ())
            size += 400 if message.quote else 0
        if size > budget and kept:
            break
        kept += 1
    return messages[len(messages) - kept :]


def _refused(exc: ChatError, ref: int | None) -> Error:
    return Error(code=str(exc.code), message=exc.message, ref=ref)


def _no_such_room(room: str, ref: int | None) -> Error:
    return _refused(no_such_room(room), ref)


def _unavailable(exc: Exception, ref: int | None) -> Error:
    log.warning("the broker cannot store right now: %s", exc)
    return Error(
        code=str(ErrorCode.UNAVAILABLE),
        message="the chat cannot store messages right now; try again",
        ref=ref,
    )


def _ack(message: RoomEvent, send: Send | React | Edit | Delete) -> Ack:
    return Ack(room=message.room, seq=message.seq, ts=message.ts, id=send.id, ref=send.ref)


def _marker_message(marker: ReadMarker, ref: int | None) -> MarkerMessage:
    return MarkerMessage(room=marker.label, seq=marker.seq, epoch=marker.epoch, ref=ref)


def _position(room: Room[Session]) -> Position:
    return Position(room=room.name, epoch=room.epoch, seq=room.delivered)


def _ignore(session: Session, message: AnyMessage) -> None:
    """Messages that need no answer (a `pong` to our own `ping`)."""
