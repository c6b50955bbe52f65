"""One client's connection: an `asyncio.Protocol` that moves bytes to and from the server."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from tuichat.chat import User
from tuichat.protocol import AnyMessage, Connection, Error, ProtocolError, Role

if TYPE_CHECKING:
    from tuichat.server.server import ChatServer

log = logging.getLogger("tuichat.server")


class Session(asyncio.Protocol):
    """Feeds what the client sends into its `Connection`; writes what the server sends back.

    While a room's missed messages are being replayed to the client, live frames
    for that room are held back and written after the replay, in order.
    """

    def __init__(self, server: ChatServer) -> None:
        self.server = server
        self.conn = Connection(Role.SERVER, max_frame=server.config.max_frame)
        self.user: User[Session] | None = None
        self.peer = "?"
        self.transport: asyncio.Transport | None = None
        self.close_reason = "disconnect"
        self.last_heard = asyncio.get_running_loop().time()
        self.ping_outstanding = False
        self._held: dict[str, list[bytes]] = {}
        self._draining = False
        self.closed = asyncio.Event()

    # --- asyncio.Protocol ------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        self.server.sessions.add(self)

    def data_received(self, data: bytes) -> None:
        if self.conn.finished or self._draining:
            return
        self.last_heard = asyncio.get_running_loop().time()
        self.ping_outstanding = False
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
        self.closed.set()

    # --- writing ---------------------------------------------------------

    @property
    def open(self) -> bool:
        """Whether frames can still be written to this client."""
        return self.transport is not None and not self.conn.we_closed

    def send(self, message: AnyMessage) -> None:
        """Encode and write one message to this client alone."""
        if self.open:
            assert self.transport is not None
            self.transport.write(self.conn.send(message))

    def write_frame(self, frame: bytes, room: str = "") -> None:
        """Write an already encoded frame (a broadcast shared by many sessions)."""
        held = self._held.get(room) if room else None
        if held is not None:
            held.append(frame)
        elif self.open:
            assert self.transport is not None
            self.transport.write(frame)

    def hold(self, room: str) -> None:
        """Hold back live frames for `room` until `release(room)`."""
        self._held.setdefault(room, [])

    def release(self, room: str) -> None:
        """Write the frames held back for `room`, and write the next ones at once."""
        for frame in self._held.pop(room, []):
            self.write_frame(frame)

    def fail(self, exc: ProtocolError) -> None:
        """Tell the client why, then close: the stream from it cannot be trusted."""
        log.info("%s: closing after protocol error: %s", self.describe(), exc)
        self.send(Error(code=str(exc.code), message=exc.detail, fatal=True, ref=exc.ref))
        self.close("disconnect")

    def finish(self, reason: str) -> None:
        """Send what is written, then end our side; read and discard until the client closes."""
        self.close_reason = reason
        self._draining = True
        if self.transport is not None and not self.transport.is_closing():
            with contextlib.suppress(OSError):  # the peer may be gone already
                self.transport.write_eof()
            self.transport.resume_reading()

    def close(self, reason: str) -> None:
        """Close the connection once what was written has been sent."""
        self.close_reason = reason
        if self.transport is not None:
            self.transport.close()

    def abort(self, reason: str) -> None:
        """Drop the connection at once, discarding what waits to be written."""
        self.close_reason = reason
        if self.transport is not None:
            self.transport.abort()

    def describe(self) -> str:
        """Return who this is, for the log."""
        return f"{self.user.name} ({self.peer})" if self.user else self.peer
