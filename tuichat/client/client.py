"""An asyncio client for tuichat servers: requests as coroutines, everything else as events.

A `ChatClient` is a session that can outlive its connections. With
`reconnect=True` it reconnects after a drop (exponential backoff with jitter),
resumes every room from the last position it delivered, and sends again what
the server had not acknowledged, so that the events it yields have no gaps and
no duplicates.

Who is away and who is typing where is kept in `ChatClient.status` (see
`tuichat.client.status`) as the events arrive, before the app reads them.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import random
import re
import secrets
import ssl
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, cast

from tuichat import DEFAULT_PORT
from tuichat.client.link import Link
from tuichat.client.resume import Resume
from tuichat.client.status import Status, TypingThrottle, away_pairs
from tuichat.client.unread import conversation_key, fold
from tuichat.protocol import (
    SERVER_MESSAGE_TYPES,
    Ack,
    AnyMessage,
    Away,
    Bye,
    Challenge,
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
    Presence,
    Private,
    PrivateHistory,
    PrivateMessage,
    PrivatePage,
    React,
    ReadMarker,
    RoomDetails,
    RoomInfo,
    RoomList,
    RoomReset,
    RoomState,
    Search,
    SearchResults,
    Send,
    ServerMessage,
    SetAway,
    SetPrivate,
    SetTopic,
    SignedOut,
    SignOut,
    Typing,
    Update,
    UserList,
    Welcome,
    Who,
)
from tuichat.protocol.auth import SigningKey, legacy_proof

T = TypeVar("T")

LOBBY = "#lobby"


def changes(presence: Presence) -> list[Joined | Left]:
    """The comings and goings a `presence` names, one by one (its names are disjoint)."""
    joined: list[Joined | Left] = [Joined(presence.room, n, presence.ts) for n in presence.joined]
    reasons = (*presence.reasons, *("part",) * (len(presence.left) - len(presence.reasons)))
    left = [
        Left(presence.room, n, presence.ts, r) for n, r in zip(presence.left, reasons, strict=False)
    ]
    return joined + left


FATAL_REFUSALS = frozenset(
    {
        ErrorCode.INVALID_NAME,
        ErrorCode.UNSUPPORTED_VERSION,
        ErrorCode.NAME_REGISTERED,
        ErrorCode.BAD_SIGNATURE,
        ErrorCode.KEY_UPGRADE_REQUIRED,
        ErrorCode.BANNED,
    }
)
"""Refusals of a `hello` that no retry will change."""

FINAL_BYES = {
    "replaced": "signed in again from another connection",
    "signed_out": "signed out from another device",
    "kicked": "an admin disconnected you from the server",
    "banned": "you are banned from this server",
}
"""Why a server may end a session that the client must not take back by reconnecting, and
what to say if the server said nothing."""


class ClientError(Exception):
    """Base class of the errors this library raises."""


class RequestFailed(ClientError):
    """The server answered a request with an `error`; `code` says why (see PROTOCOL.md)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{message} ({code})")
        self.code = code
        self.message = message


class ConnectionClosed(ClientError):
    """The connection ended before the server answered."""


class UntrustedServer(ClientError):
    """The server claims to be a chat this name knows under another address (it may be
    relaying our login there), so the name's key was not used."""


class ServerPins(Protocol):
    """Where a name's key has been used: asked before each signature, told after a welcome."""

    def check(self, server_id: str) -> None:
        """Raise `UntrustedServer` if the key must not sign for `server_id` here."""

    def remember(self, server_id: str) -> None:
        """The key signed us in to `server_id` here."""


class ServerSilent(ClientError, TimeoutError):
    """The server accepted the connection (or a request) but did not answer in time."""


@dataclass(frozen=True, slots=True)
class Disconnected:
    """The last event of every client: the session is over, and why."""

    reason: str
    clean: bool


@dataclass(frozen=True, slots=True)
class Reconnecting:
    """The connection dropped; the client tries again in `delay` seconds."""

    reason: str
    attempt: int
    delay: float


@dataclass(frozen=True, slots=True)
class Reconnected:
    """The session is back; missed messages follow, then live ones."""

    welcome: Welcome


ClientEvent = ServerMessage | Disconnected | Reconnecting | Reconnected


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delays between reconnection attempts: exponential, capped, with full jitter."""

    first: float = 0.25
    factor: float = 2.0
    cap: float = 10.0

    def delay(self, attempt: int) -> float:
        """Return a random delay for attempt number `attempt` (1, 2, ...)."""
        return random.uniform(0, min(self.cap, self.first * self.factor ** (attempt - 1)))


@dataclass
class _Unacked:
    message: Send | Private | React | Edit | Delete
    future: asyncio.Future[Any]


class ChatClient:
    """A welcomed tuichat session. Create it with `ChatClient.connect`.

    Requests (`send`, `private`, `join`, ...) return the server's reply or raise
    `RequestFailed`. Everything the server pushes (messages, joins, leaves,
    notices, errors not tied to a request) arrives through `async for event in
    client`, which ends after a `Disconnected` event.
    """

    def __init__(
        self,
        name: str,
        host: str,
        port: int,
        *,
        ssl_context: ssl.SSLContext | None,
        timeout: float,
        client_name: str,
        reconnect: bool,
        backoff: Backoff,
        heartbeat: float,
        max_unread: int = 100_000,
        key: SigningKey | None = None,
        legacy_key: str | None = None,
        pins: ServerPins | None = None,
        send_typing: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._name = name
        self._pins = pins
        self._key = key
        self._legacy_key = legacy_key
        self._challenge: asyncio.Future[Challenge] | None = None
        self._host = host
        self._port = port
        self._ssl = ssl_context
        self._timeout = timeout
        self._client_name = client_name
        self._reconnect = reconnect
        self._backoff = backoff
        self._heartbeat = heartbeat
        self._max_unread = max_unread
        self._overrun = ""
        """Why we dropped the connection ourselves (too many events unread), if we did."""
        self._replaced = ""
        """Why the server replaced this session by another connection's (or another device
        signed it out), if it did."""
        self._link: Link | None = None
        self._events: asyncio.Queue[ClientEvent] = asyncio.Queue()
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._unacked: OrderedDict[str, _Unacked] = OrderedDict()
        self._next_ref = 0
        self._closing = False
        self._finished = False
        self._ready = False  # welcomed on the current link (and unacknowledged sends re-sent)
        self._reconnecting = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self.welcome: Welcome | None = None
        self.ignored: tuple[str, ...] = ()
        self.members: dict[str, int] = {}
        """How many members each room has, as the server last said (`welcome` for the lobby,
        `room_state`, `user_list`, `presence`): in a room too large to be named in full, the
        count to show."""
        """The names we ignore (on every device of ours), as the server last said."""
        self._resume = Resume()
        """Where the session is, to resume it (positions, last private message, token)."""
        self.read: dict[str, Position] = {}
        """The user's read marker of each conversation (`#room`, or `@name` with a pid), as
        the server has it: ours, and those our other devices moved."""
        self._unsent_marks: dict[str, Position] = {}
        """Markers moved while not connected, sent once we are again."""
        self.status = Status(clock)
        """Who is away (and why) and who is typing where, as the server said last."""
        self.send_typing = send_typing
        """Whether `typing` tells the server (off: it sends nothing; whether to show what others
        type is the app's choice)."""
        self._typing = TypingThrottle(clock)
        self._away: str | None = None
        """The person's away reason as we last knew it (ours, or another device's), or None."""
        self._away_chosen = False
        """`set_away` was called: after a reconnection on our own, the server hears it again."""

    # --- connecting ------------------------------------------------------

    @classmethod
    async def connect(
        cls,
        name: str,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        *,
        ssl_context: ssl.SSLContext | None = None,
        timeout: float = 10.0,
        client_name: str = "tuichat",
        reconnect: bool = False,
        backoff: Backoff | None = None,
        heartbeat: float = 10.0,
        max_unread: int = 100_000,
        key: SigningKey | None = None,
        legacy_key: str | None = None,
        pins: ServerPins | None = None,
        send_typing: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> ChatClient:
        """Connect, say hello as `name` and return the welcomed client.

        Raises `OSError` if the server cannot be reached, `RequestFailed` if it
        refuses the name (codes `invalid_name`, `name_taken`), and `TimeoutError`.
        With `reconnect`, a later drop is followed by reconnection attempts
        instead of the end of the session. `heartbeat` is how often (seconds)
        a quiet connection is pinged; three times that without a word from the
        server counts as a drop. `key` is the private key that owns the name: the
        first `hello` signed with a key registers the name to it, and from then on the
        server refuses the name (code `name_registered`) to anyone who cannot sign with
        it. `legacy_key` is the name's protocol-1 secret: to a server that asks
        (`key_upgrade_required`) it is proved, never sent, to move the name to `key`. `pins` is
        asked before the key signs a challenge (see `ServerPins`). A server that
        accepts the connection but does not answer within `timeout` raises
        `ServerSilent` (a `TimeoutError`); so does a request it does not answer. When
        more than `max_unread` events wait to be read (a server sending faster than
        we read), the connection is dropped, as if it had been lost (with
        `reconnect`, what was missed comes back on resume). `send_typing` false keeps
        `typing` from sending anything (see `send_typing`); `clock` (seconds, monotonic)
        times typing notices, for `status` and for `typing`'s pace.
        """
        client = cls(
            name,
            host,
            port,
            ssl_context=ssl_context,
            timeout=timeout,
            client_name=client_name,
            reconnect=reconnect,
            backoff=backoff or Backoff(),
            heartbeat=heartbeat,
            max_unread=max_unread,
            key=key,
            legacy_key=legacy_key,
            pins=pins,
            send_typing=send_typing,
            clock=clock,
        )
        try:
            await client._open()
            client._ready = True
        except BaseException:
            client._closing = True
            if client._link is not None:
                await client._link.abort()
            raise
        client._spawn(client._heartbeats())
        return client

    async def _open(self) -> Welcome:
        """Open a connection and say hello (resuming if this session had one before)."""
        self._ready = False
        where = f"{self._host}:{self._port}"
        async with asyncio.timeout(self._timeout):
            challenge = self._challenge = asyncio.get_running_loop().create_future()
            self._link = await Link.open(
                self._host, self._port, self._ssl, self._on_event, self._on_lost
            )
        try:
            async with asyncio.timeout(self._timeout):
                said = await asyncio.shield(challenge)
                if not (_well_formed(said.server_id) and _well_formed(said.nonce)):
                    raise UntrustedServer(f"{where} sent a malformed challenge; not signing it")
                if self._key is not None and self._pins is not None:
                    self._pins.check(said.server_id)
                hello = self._hello(said)
                try:
                    welcome = await self._request(hello, Welcome, link=self._link)
                except RequestFailed as exc:
                    if exc.code != ErrorCode.KEY_UPGRADE_REQUIRED or not self._legacy_key:
                        raise
                    proof = legacy_proof(
                        self._legacy_key,
                        said.server_id,
                        said.nonce,
                        self._name,
                        hello.public_key or "",
                    )  # the secret itself is never sent: a server cannot use it elsewhere
                    hello = dataclasses.replace(hello, legacy_proof=proof)
                    welcome = await self._request(hello, Welcome, link=self._link)
                if self._key is not None and self._pins is not None:
                    self._pins.remember(said.server_id)
                return welcome
        except TimeoutError as exc:
            raise ServerSilent(
                f"{where} accepted the connection but did not answer within {self._timeout:g} s"
            ) from exc
        finally:
            self._challenge = None  # no one waits for it any more

    @property
    def positions(self) -> dict[str, Position]:
        """The last position delivered in each room we are in."""
        return self._resume.positions

    def _hello(self, challenge: Challenge) -> Hello:
        resume = self._resume.hello()
        key = self._key
        return Hello(
            name=self._name,
            client=self._client_name,
            positions=resume.positions,
            private_after=resume.private_after,
            token=resume.token,
            public_key=key.public if key else None,
            signature=key.sign_login(challenge.server_id, challenge.nonce, self._name)
            if key
            else None,
        )

    @property
    def name(self) -> str:
        """Our name as the server spells it."""
        return self._name

    @property
    def connected(self) -> bool:
        """Whether a connection is up right now."""
        link = self._link
        return self._ready and link is not None and not link.closed and not self._finished

    # --- requests --------------------------------------------------------

    async def send(
        self, room: str, text: str, *, action: bool = False, id: str = "", reply: int = 0
    ) -> Ack:
        """Post to a room (`reply`: the seq of the message it answers); return the
        acknowledgement (the message is stored).

        The send survives reconnections: it is retried until acknowledged.
        """
        message = Send(
            room=room, text=text, action=action, id=id or new_message_id(), reply=reply or None
        )
        self._typing.message_sent(room)
        return await self._send_until_acknowledged(message, Ack)

    async def react(self, room: str, seq: int, text: str) -> Ack:
        """Give the reaction `text` to message `seq` of `room`, or take it back if we gave it;
        return the acknowledgement of the `update` (retried like `send`)."""
        message = React(room=room, seq=seq, text=text, id=new_message_id())
        return await self._send_until_acknowledged(message, Ack)

    async def edit(self, room: str, seq: int, text: str) -> Ack:
        """Replace the text of our message `seq` of `room` (retried like `send`)."""
        message = Edit(room=room, seq=seq, text=text, id=new_message_id())
        return await self._send_until_acknowledged(message, Ack)

    async def delete(self, room: str, seq: int) -> Ack:
        """Delete message `seq` of `room` (ours; anyone's for the room's ops and admins)."""
        message = Delete(room=room, seq=seq, id=new_message_id())
        return await self._send_until_acknowledged(message, Ack)

    async def search(
        self, words: str, *, room: str = "", sender: str = "", before: str = "", limit: int = 20
    ) -> SearchResults:
        """Find stored messages we may read that hold every word (each as a prefix), newest
        first: in `room` ("#room", "@name", or "" for all), from `sender` ("" for anyone);
        `before` is the `next` of the previous page."""
        request = Search(words=words, room=room, sender=sender, before=before, limit=limit)
        return await self._request(request, SearchResults)

    async def private(self, to: str, text: str, *, action: bool = False) -> PrivateMessage:
        """Send a private message; return the server's copy of it (retried like `send`)."""
        message = Private(to=to, text=text, action=action, id=new_message_id())
        self._typing.message_sent(f"@{to}")
        return await self._send_until_acknowledged(message, PrivateMessage)

    async def join(self, room: str) -> RoomState:
        """Join (or create) a room; return who is in it."""
        return await self._request(Join(room=room), RoomState)

    async def part(self, room: str) -> None:
        """Leave a room."""
        await self._request(Part(room=room), Parted)

    async def history(self, room: str, before: int = 0, limit: int = 50) -> HistoryPage:
        """Return up to `limit` messages of `room` older than seq `before` (0: the newest)."""
        return await self._request(History(room=room, before=before, limit=limit), HistoryPage)

    async def private_history(self, name: str, before: int = 0, limit: int = 50) -> PrivatePage:
        """Return up to `limit` private messages with `name` older than pid `before` (0: the
        newest)."""
        request = PrivateHistory(name=name, before=before, limit=limit)
        return await self._request(request, PrivatePage)

    def mark_read(self, room: str, seq: int) -> None:
        """Say we have read `room` (`#room`, or `@name`: a private conversation) up to `seq`
        (a pid for `@name`); our other devices hear it. Nothing is sent unless it moves the
        marker on; while not connected, it is sent after the reconnection."""
        epoch = self.positions[room].epoch if room in self.positions else 0
        known = self.read.get(room)
        if known is not None and known.epoch == epoch and known.seq >= seq:
            return
        marker = self.read[room] = Position(room, epoch, seq)
        link = self._link
        if self.connected and link is not None:
            link.send(MarkRead(room=room, seq=seq, epoch=epoch))
        else:
            self._unsent_marks[room] = marker

    async def sign_out_others(self) -> int:
        """Sign out every other session (device) of ours; return how many this server had."""
        return (await self._request(SignOut(), SignedOut)).devices

    async def set_away(self, reason: str | None) -> str | None:
        """Say that we are away, with `reason` ("" for none), or back (None): on every device of
        ours, for everyone online, until we go offline. Return the reason as the server keeps
        it (one line, cleaned), or None.

        Raises `RequestFailed` (`text_too_long`) for a reason longer than the server allows
        (200 bytes of UTF-8 by default). While the connection is down (with `reconnect`), the
        choice is sent once the session is back; after a reconnection with no other device of
        ours online meanwhile, the server hears our last choice again.
        """
        self._away, self._away_chosen = reason, True
        if not self.connected and self._reconnect and not self._finished:
            return reason  # sent after the reconnection (`_reassert_away`)
        request = SetAway(away=reason is not None, reason=reason or "")
        reply = await self._request(request, Away)
        return reply.reason if reply.away else None

    def typing(self, conversation: str) -> bool:
        """Tell the others in `conversation` (`#room`, or `@name`: that person) that we are
        typing; call it on every keystroke. Return whether a notice went out: at most one every
        `status.TYPING_RENEW` seconds per conversation (and at once after our message there),
        none while `send_typing` is off or we are not connected. Nothing comes back."""
        link = self._link
        if not self.send_typing or not self.connected or link is None:
            return False
        if conversation_key(conversation) == conversation_key(f"@{self._name}"):
            return False  # nobody to tell
        if not self._typing.allow(conversation):
            return False
        link.send(Typing(room=conversation))
        return True

    async def list_rooms(self, *, most: int = 10_000) -> tuple[RoomInfo, ...]:
        """Return the rooms people are in and their member counts, by name (page after page,
        up to `most` rooms)."""
        rooms: list[RoomInfo] = []
        while True:
            after = rooms[-1].room if rooms else ""
            page = await self._request(ListRooms(after=after), RoomList)
            rooms.extend(page.rooms)
            if not page.more or not page.rooms or len(rooms) >= most:
                return tuple(rooms[:most])

    async def who(self, room: str = "", *, most: int = 100_000) -> tuple[str, ...]:
        """Return who is online in `room`, or on the whole server (page after page, up to
        `most` names)."""
        names: list[str] = []
        while True:
            page = await self.who_page(room, names[-1] if names else "")
            names.extend(page.users)
            if not page.more or not page.users or len(names) >= most:
                return tuple(names[:most])

    async def who_page(self, room: str = "", after: str = "", limit: int = 0) -> UserList:
        """Return one page of who is in `room` (the whole server for ""): the names after
        `after` in the list's order, at most `limit` (0: as many as the server lists at once);
        its `more` says whether names follow, its `members` (when not 0) how many in all."""
        return await self._request(Who(room=room, after=after, limit=limit), UserList)

    async def moderate(
        self, room: str, action: str, name: str, reason: str = "", duration: int = 0
    ) -> Moderated:
        """Act on `name` in `room` (`action`: see `MODERATE_ACTIONS`; `duration` in seconds for
        a ban or a mute, 0: until undone); return what the server did. Raises `RequestFailed`
        (`not_op`, `not_admin`, `cannot_moderate`, ...) when it may not be done."""
        request = Moderate(room=room, action=action, name=name, reason=reason, duration=duration)
        return await self._request(request, Moderated)

    async def set_topic(self, room: str, topic: str) -> RoomDetails:
        """Set the topic of `room` ("" clears it); return the room as it is now."""
        return await self._request(SetTopic(room=room, topic=topic), RoomDetails)

    async def set_private(self, room: str, private: bool) -> RoomDetails:
        """Make `room` invite-only, or open again; return the room as it is now."""
        return await self._request(SetPrivate(room=room, private=private), RoomDetails)

    async def ignore(self, name: str, ignore: bool = True) -> tuple[str, ...]:
        """Ignore `name` (or stop: `ignore` false) on every device of ours; return the names
        ignored now (also kept in `ignored`)."""
        reply = await self._request(Ignore(name=name, ignore=ignore), Ignored)
        return reply.names

    async def mod_log(self, room: str = "", before: int = 0, limit: int = 50) -> ModLogPage:
        """Read the moderation log (of `room`, or all of it for an admin), newest first."""
        return await self._request(ModLog(room=room, before=before, limit=limit), ModLogPage)

    async def ping(self) -> float:
        """Return the round-trip time to the server, in seconds."""
        started = time.perf_counter()
        await self._request(Ping(data=0), Pong)
        return time.perf_counter() - started

    async def close(self, timeout: float = 5.0) -> None:
        """Say goodbye, wait for the server to close, then close our end."""
        link = self._link
        self._closing = True
        if link is not None and not link.closed:
            with contextlib.suppress(OSError, ClientError, TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._request(Bye(), Bye, link=link)
                    await link.wait_closed()
        await self.abort()

    async def abort(self) -> None:
        """Drop the connection at once, without a goodbye; the session ends."""
        self._closing = True
        for task in list(self._tasks):
            task.cancel()
        if self._link is not None:
            await self._link.abort()
        self._finish("closed by us", clean=True)

    async def __aenter__(self) -> ChatClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # --- events ----------------------------------------------------------

    async def next_event(self) -> ClientEvent:
        """Return the next event (after `Disconnected`, keep returning it)."""
        event = await self._events.get()
        if isinstance(event, Disconnected):
            self._events.put_nowait(event)
        return event

    async def next_events(self, limit: int = 4096) -> list[ClientEvent]:
        """Wait for at least one event; return it with those already waiting (up to `limit`)."""
        batch = [await self.next_event()]
        queue = self._events
        while len(batch) < limit and not isinstance(batch[-1], Disconnected) and not queue.empty():
            batch.append(queue.get_nowait())
        if isinstance(batch[-1], Disconnected) and queue.empty():
            queue.put_nowait(batch[-1])
        return batch

    async def __aiter__(self) -> AsyncIterator[ClientEvent]:
        while True:
            event = await self.next_event()
            yield event
            if isinstance(event, Disconnected):
                return

    # --- internals: requests ----------------------------------------------

    async def _request(
        self, message: AnyMessage, reply_type: type[T], link: Link | None = None
    ) -> T:
        if link is None:
            if not self.connected:
                raise ConnectionClosed("not connected")
            link = self._link
        if link is None or link.closed or (self._finished and not isinstance(message, Bye)):
            raise ConnectionClosed("not connected")
        ref = self._new_ref()
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[ref] = future
        try:
            link.send(_with_ref(message, ref))
            await link.drain()
            try:
                async with asyncio.timeout(self._timeout):
                    reply = await future
            except TimeoutError as exc:
                raise ServerSilent(
                    f"the server did not answer {message.TYPE!r} within {self._timeout:g} s"
                ) from exc
        finally:
            self._pending.pop(ref, None)
        return _expect(reply, reply_type)

    async def _send_until_acknowledged(
        self, message: Send | Private | React | Edit | Delete, reply_type: type[T]
    ) -> T:
        if self._finished:
            raise ConnectionClosed("the session is over")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._unacked[message.id] = _Unacked(message, future)
        try:
            if self.connected:
                self._transmit(message)
            return _expect(await future, reply_type)
        finally:
            self._unacked.pop(message.id, None)

    def _transmit(self, message: Send | Private | React | Edit | Delete) -> None:
        assert self._link is not None
        ref = self._new_ref()
        self._pending[ref] = self._unacked[message.id].future
        self._link.send(_with_ref(message, ref))

    def _new_ref(self) -> int:
        self._next_ref += 1
        return self._next_ref

    # --- internals: incoming ----------------------------------------------

    def _on_event(self, link: Link, event: Event) -> None:
        if not isinstance(event, SERVER_MESSAGE_TYPES):
            return  # InvalidMessage: a newer server's message type we do not know
        if self._overrun:
            return  # dropping this connection: what is left of it comes again on resume
        if isinstance(event, Presence):
            self.members[event.room] = event.members
            if event.joined or event.left:  # a crowd, named: as if one by one
                for change in changes(event):
                    self._on_event(link, change)
                return
        elif isinstance(event, Welcome):
            self.members[LOBBY] = event.members or len(event.users)
        elif isinstance(event, RoomState | UserList) and event.room:
            self.members[event.room] = event.members or len(event.users)
        if isinstance(event, Bye) and event.reason in FINAL_BYES:
            self._replaced = event.message or FINAL_BYES[event.reason]
        if isinstance(event, Ping):
            link.send(Pong(data=event.data, ref=event.ref))
            return
        if isinstance(event, Challenge):
            if link is self._link and self._challenge is not None and not self._challenge.done():
                self._challenge.set_result(event)
            return
        ref = getattr(event, "ref", None)
        future = self._pending.pop(ref, None) if ref is not None else None
        if future is not None and not future.done():
            if isinstance(event, Error):
                future.set_exception(RequestFailed(event.code, event.message))
            else:
                future.set_result(event)
        if isinstance(event, Welcome):
            self._welcomed(event)
        elif isinstance(event, RoomState):
            self._resume.room(event.room, event.epoch, event.seq)
            if event.read:
                self._marker(Position(event.room, event.epoch, event.read))
        elif isinstance(event, ReadMarker):
            self._marker(Position(event.room, event.epoch, event.seq))
        elif isinstance(event, Parted):
            self._resume.left(event.room)
            self.members.pop(event.room, None)
        elif isinstance(event, Ignored):
            self.ignored = event.names
        self._track_status(event)
        if isinstance(event, Message | Update):
            if not self._resume.message(event):
                return
        elif isinstance(event, PrivateMessage):
            if not self._resume.private(event.pid):
                return
        elif isinstance(event, RoomReset):
            self._resume.room(event.room, event.epoch, event.seq)
        elif isinstance(event, Left) and event.name == self._name:
            self._resume.left(event.room)
            self.members.pop(event.room, None)
        elif future is not None:
            return  # a reply: it went to whoever asked
        self._events.put_nowait(event)
        if self._events.qsize() > self._max_unread and not self._overrun:
            self._overrun = f"more than {self._max_unread} events came in before we read them"
            link.kill()

    def _welcomed(self, welcome: Welcome) -> None:
        """Take our name, token and positions from a `welcome` (first or resumed)."""
        self.welcome = welcome
        self.ignored = welcome.ignored
        self._name = welcome.name
        self._resume.welcome(welcome)
        for marker in welcome.read:
            self._marker(marker)

    def _track_status(self, event: ServerMessage) -> None:
        """Keep `status` (who is away, who is typing) as the server tells it."""
        status = self.status
        if isinstance(event, Welcome):
            status.reset(away_pairs(event.away, event.away_reasons))
        elif isinstance(event, RoomState | UserList):
            status.listed(event.users, away_pairs(event.away, event.away_reasons))
        elif isinstance(event, Away):
            status.away_changed(event.name, event.away, event.reason)
            if fold(event.name) == fold(self._name):
                self._away = event.reason if event.away else None
        elif isinstance(event, IsTyping):
            status.typing(event.name, event.room)
        elif isinstance(event, Message):
            status.stopped(event.sender, event.room)
        elif isinstance(event, PrivateMessage):
            if fold(event.sender) != fold(self._name):
                status.stopped(event.sender, f"@{event.sender}")
        elif isinstance(event, Left):
            if event.room == LOBBY:
                status.offline(event.name)
            else:
                status.stopped(event.name, event.room)

    def _reassert_away(self, welcome: Welcome) -> None:
        """After a reconnection: alone (the server forgot us meanwhile), say again whether we
        are away; with other devices of ours online, their state is ours."""
        shown = self.status.away_reason(self._name)
        if welcome.devices > 1 or not self._away_chosen:
            self._away = shown
        elif shown != self._away and self._link is not None:
            away = self._away
            self._link.send(SetAway(away=away is not None, reason=away or ""))

    def _marker(self, marker: Position) -> None:
        """Keep a read marker the server sent, unless ours is further on."""
        known = self.read.get(marker.room)
        if known is None or known.epoch != marker.epoch or known.seq < marker.seq:
            self.read[marker.room] = marker

    def _on_lost(self, link: Link, reason: str, clean: bool) -> None:
        if link is not self._link:
            return
        if self._overrun:
            reason, self._overrun = self._overrun, ""
        retried = {id(u.future) for u in self._unacked.values()}
        for future in self._pending.values():
            if not future.done() and id(future) not in retried:
                future.set_exception(ConnectionClosed(reason))
        self._pending.clear()  # unacknowledged sends get new refs when they are sent again
        if self._challenge is not None and not self._challenge.done():
            self._challenge.set_exception(ConnectionClosed(reason))
        self._ready = False
        if self._replaced:  # another connection has the session now: do not take it back
            self._finish(self._replaced, clean=True)
        elif self._closing or not self._reconnect or self.welcome is None:
            self._finish(reason, clean)
        elif not self._reconnecting:  # a link lost during a reconnection attempt: that loop goes on
            self._reconnecting = True
            self._spawn(self._reconnect_loop(reason))

    async def _reconnect_loop(self, reason: str) -> None:
        try:
            await self._reconnect_attempts(reason)
        finally:
            self._reconnecting = False

    async def _reconnect_attempts(self, reason: str) -> None:
        attempt = 0
        while not (self._closing or self._finished):
            attempt += 1
            delay = self._backoff.delay(attempt)
            self._events.put_nowait(Reconnecting(reason, attempt, delay))
            await asyncio.sleep(delay)
            try:
                welcome = await self._open()
            except (OSError, TimeoutError, ClientError) as exc:
                if self._link is not None:
                    await self._link.abort()
                if isinstance(exc, RequestFailed) and exc.code in FATAL_REFUSALS:
                    self._finish(f"the server refused us: {exc.message}", clean=False)
                    return
                if isinstance(exc, UntrustedServer):
                    self._finish(str(exc), clean=False)
                    return
                reason = exc.message if isinstance(exc, RequestFailed) else str(exc)
                reason = reason or type(exc).__name__
                continue
            self._events.put_nowait(Reconnected(welcome))
            self._reassert_away(welcome)
            for unacked in list(self._unacked.values()):
                self._transmit(unacked.message)
            marks, self._unsent_marks = self._unsent_marks, {}
            for mark in marks.values():
                if self._link is not None:
                    self._link.send(MarkRead(room=mark.room, seq=mark.seq, epoch=mark.epoch))
            self._ready = True
            return

    async def _heartbeats(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._finished:
            await asyncio.sleep(self._heartbeat / 2)
            link = self._link
            if link is None or link.closed:
                continue
            quiet = loop.time() - link.last_heard
            if quiet > 3 * self._heartbeat:
                link.kill()  # the server is gone without a word: treat it as a drop
            elif quiet > self._heartbeat:
                link.send(Ping(data=0))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _finish(self, reason: str, clean: bool) -> None:
        if self._finished:
            return
        self._finished = True
        for future in self._pending.values():
            if not future.done():
                future.set_exception(ConnectionClosed(reason))
        for unacked in self._unacked.values():
            if not unacked.future.done():
                unacked.future.set_exception(ConnectionClosed(reason))
        self._events.put_nowait(Disconnected(reason, clean))


def _with_ref(message: AnyMessage, ref: int) -> AnyMessage:
    with_ref: AnyMessage = dataclasses.replace(cast(Any, message), ref=ref)
    return with_ref


def _expect(reply: Any, reply_type: type[T]) -> T:
    if not isinstance(reply, reply_type):
        raise ClientError(f"expected {reply_type.__name__}, got {type(reply).__name__}")
    return reply


def _well_formed(text: str) -> bool:
    """Whether a challenge field is what PROTOCOL.md says: a little base64url text."""
    return 0 < len(text) <= 64 and _BASE64URL.fullmatch(text) is not None


_BASE64URL = re.compile(r"[A-Za-z0-9_-]+")


def new_message_id() -> str:
    """Return a fresh client-made message id."""
    return secrets.token_hex(8)
