"""The asyncio shell around the protocol state machine and the chat logic.

Each connection is an `asyncio.Protocol`: bytes read go into its `Connection`,
the events that come out are handed to the `Chat`, and the deliveries that come
back are encoded once and written to every recipient's transport without
awaiting anyone.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from tuichat.chat import LOBBY, Chat, ChatError, Delivery, User
from tuichat.chat.names import check_room
from tuichat.protocol import (
    PROTOCOL_VERSION,
    Ack,
    AnyMessage,
    Bye,
    Codec,
    Connection,
    Error,
    Event,
    Hello,
    InvalidMessage,
    Join,
    ListRooms,
    Part,
    Parted,
    Ping,
    Pong,
    Private,
    ProtocolError,
    Role,
    RoomList,
    RoomState,
    Send,
    State,
    UserList,
    Welcome,
    Who,
    encode_frame,
)
from tuichat.server.config import ServerConfig

log = logging.getLogger("tuichat.server")


def now_ms() -> int:
    """Return the wall-clock time in milliseconds since the Unix epoch."""
    return time.time_ns() // 1_000_000


class Session(asyncio.Protocol):
    """One client's connection: moves bytes between its socket and the server."""

    def __init__(self, server: ChatServer) -> None:
        self.server = server
        self.conn = Connection(Role.SERVER, max_frame=server.config.max_frame)
        self.user: User[Session] | None = None
        self.peer = "?"
        self.transport: asyncio.Transport | None = None
        self.close_reason = "disconnect"

    # --- asyncio.Protocol ------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        self.server.sessions.add(self)

    def data_received(self, data: bytes) -> None:
        if self.conn.state is State.CLOSED:
            return
        try:
            events = self.conn.receive_data(data)
        except ProtocolError as exc:
            self.fail(exc)
            return
        for event in events:
            self.server.handle(self, event)
            if self.conn.finished:
                break

    def eof_received(self) -> bool | None:
        self.conn.receive_eof()
        return None  # let the transport close itself

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.sessions.discard(self)
        self.server.logout(self, self.close_reason)

    # --- writing ---------------------------------------------------------

    def send(self, message: AnyMessage) -> None:
        """Encode and write one message to this client alone."""
        if self.transport is not None and not self.conn.we_closed:
            self.transport.write(self.conn.send(message))

    def write_frame(self, frame: bytes) -> None:
        """Write an already encoded frame (a broadcast shared by many sessions)."""
        if self.transport is not None and not self.conn.we_closed:
            self.transport.write(frame)

    def fail(self, exc: ProtocolError) -> None:
        """Tell the client why, then close: the stream from it cannot be trusted."""
        log.info("%s: closing after protocol error: %s", self.describe(), exc)
        self.send(Error(code=str(exc.code), message=exc.detail, fatal=True, ref=exc.ref))
        self.close("disconnect")

    def close(self, reason: str) -> None:
        """Close the connection once what was written has been sent."""
        self.close_reason = reason
        if self.transport is not None:
            self.transport.close()

    def describe(self) -> str:
        """Return who this is, for the log."""
        return f"{self.user.name} ({self.peer})" if self.user else self.peer


class ChatServer:
    """A tuichat server: a listening socket, every session, and the chat they share."""

    def __init__(
        self, config: ServerConfig | None = None, *, clock: Callable[[], int] = now_ms
    ) -> None:
        self.config = config or ServerConfig()
        self.clock = clock
        self.chat: Chat[Session] = Chat(self.config.chat)
        self.sessions: set[Session] = set()
        self._server: asyncio.Server | None = None
        self._handlers: dict[type[Any], Any] = {
            Hello: self._hello,
            Send: self._send,
            Private: self._private,
            Join: self._join,
            Part: self._part,
            ListRooms: self._list_rooms,
            Who: self._who,
            Ping: self._ping,
            Pong: _ignore,
            Bye: self._bye,
        }

    # --- lifecycle -------------------------------------------------------

    async def start(self) -> None:
        """Start listening; `port` 0 picks a free port (see `address`)."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: Session(self), self.config.host, self.config.port
        )
        host, port = self.address
        log.info("listening on %s:%d (protocol version %d)", host, port, PROTOCOL_VERSION)

    @property
    def address(self) -> tuple[str, int]:
        """Return the host and port the server listens on."""
        assert self._server is not None, "the server is not started"
        sockname = self._server.sockets[0].getsockname()
        return sockname[0], sockname[1]

    async def serve_forever(self) -> None:
        """Serve until cancelled."""
        assert self._server is not None
        await self._server.serve_forever()

    async def stop(self, message: str = "the server is shutting down") -> None:
        """Tell every client the server is going away, close them all and stop listening."""
        if self._server is not None:
            self._server.close()
        for session in list(self.sessions):
            session.send(Bye(reason="shutdown", message=message))
            session.close("shutdown")
        if self._server is not None:
            await self._server.wait_closed()
        log.info("stopped")

    # --- dispatch --------------------------------------------------------

    def handle(self, session: Session, event: Event) -> None:
        """Carry out one event from a session; a refused request gets an `error` reply."""
        if isinstance(event, InvalidMessage):
            session.send(Error(code=str(event.code), message=event.detail, ref=event.ref))
            return
        ref: int | None = getattr(event, "ref", None)
        handler = self._handlers[type(event)]
        try:
            handler(session, event)
        except ChatError as exc:
            session.send(Error(code=str(exc.code), message=exc.message, ref=ref))

    def deliver(self, deliveries: Iterable[Delivery[Session]]) -> None:
        """Encode each message once and write it to all its recipients."""
        for delivery in deliveries:
            frame = encode_frame(Codec.encode(delivery.message))
            for session in delivery.recipients:
                session.write_frame(frame)

    def logout(self, session: Session, reason: str) -> None:
        """Take the session's user offline (if it had one) and tell their rooms."""
        user = session.user
        if user is None:
            return
        session.user = None
        self.deliver(self.chat.logout(user, reason, self.clock()))
        log.info("%s left (%s)", user.name, reason)

    # --- handlers --------------------------------------------------------

    def _user(self, session: Session) -> User[Session]:
        assert session.user is not None  # the state machine only passes these after welcome
        return session.user

    def _hello(self, session: Session, hello: Hello) -> None:
        user, deliveries = self.chat.login(hello.name, session, self.clock())
        session.user = user
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
                users=self.chat.who(LOBBY),
                motd=motd,
                limits={
                    "max_frame": self.config.max_frame,
                    "max_text_bytes": self.config.chat.max_text_bytes,
                    "max_rooms_per_user": self.config.chat.max_rooms_per_user,
                },
                ref=hello.ref,
            )
        )
        log.info("%s joined from %s", user.name, session.peer)
        self.deliver(deliveries)

    def _send(self, session: Session, send: Send) -> None:
        message, deliveries = self.chat.post(
            self._user(session), send.room, send.text, send.action, self.clock()
        )
        session.send(
            Ack(room=message.room, seq=message.seq, ts=message.ts, id=send.id, ref=send.ref)
        )
        self.deliver(deliveries)

    def _private(self, session: Session, private: Private) -> None:
        message, target = self.chat.private(
            self._user(session), private.to, private.text, private.action, self.clock()
        )
        target.handle.send(message)
        session.send(dataclasses.replace(message, id=private.id, ref=private.ref))

    def _join(self, session: Session, join: Join) -> None:
        user = self._user(session)
        room, deliveries = self.chat.join(user, join.room, self.clock())
        session.send(RoomState(room=room.name, users=room.names(), seq=room.seq, ref=join.ref))
        self.deliver(deliveries)
        log.info("%s joined %s", user.name, room.name)

    def _part(self, session: Session, part: Part) -> None:
        user = self._user(session)
        room_name, deliveries = self.chat.part(user, part.room, self.clock())
        self.deliver(deliveries)
        session.send(Parted(room=room_name, ref=part.ref))
        log.info("%s left %s", user.name, room_name)

    def _list_rooms(self, session: Session, request: ListRooms) -> None:
        session.send(RoomList(rooms=self.chat.room_list(), ref=request.ref))

    def _who(self, session: Session, who: Who) -> None:
        room = check_room(who.room) if who.room else ""
        session.send(UserList(room=room, users=self.chat.who(room), ref=who.ref))

    def _ping(self, session: Session, ping: Ping) -> None:
        session.send(Pong(data=ping.data, ref=ping.ref))

    def _bye(self, session: Session, bye: Bye) -> None:
        self.logout(session, "quit")
        session.send(Bye(reason="quit", message="goodbye", ref=bye.ref))
        session.close("quit")


def _ignore(session: Session, message: AnyMessage) -> None:
    """Messages that need no answer (a `pong` to our own `ping`)."""
