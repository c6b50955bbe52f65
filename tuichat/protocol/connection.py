"""The per-connection protocol state machine: bytes in, events out; messages in, bytes out.

No sockets, no event loop, no clock. The asyncio server and client feed it the
bytes they read and write the bytes it returns.
"""

from __future__ import annotations

import functools
from enum import Enum
from typing import Any

from tuichat.protocol.codec import Codec, InvalidMessage
from tuichat.protocol.errors import ErrorCode, LocalProtocolError, ProtocolError
from tuichat.protocol.framing import FrameDecoder, encode_frame
from tuichat.protocol.messages import (
    CLIENT_MESSAGE_TYPES,
    PROTOCOL_VERSION,
    SERVER_MESSAGE_TYPES,
    AnyMessage,
    Bye,
    Challenge,
    Error,
    Hello,
    Ping,
    Pong,
    Welcome,
)

DEFAULT_MAX_FRAME = 64 * 1024
"""Largest frame body (bytes) a server accepts from a client."""
DEFAULT_CLIENT_MAX_FRAME = 16 * 1024 * 1024
"""Largest frame body (bytes) a client accepts from a server."""

Event = AnyMessage | InvalidMessage


class Role(Enum):
    """Which end of the connection this object speaks for."""

    CLIENT = "client"
    SERVER = "server"


class State(Enum):
    """Where a connection is in its life."""

    HANDSHAKE = "handshake"  # before `welcome`
    OPEN = "open"  # after `welcome`
    CLOSED = "closed"  # after `bye`, a fatal error or end of stream


# Messages either side may exchange before the handshake is done.
_HANDSHAKE_FROM_CLIENT = (Hello, Ping, Pong, Bye)
_HANDSHAKE_FROM_SERVER = (Challenge, Welcome, Error, Ping, Pong, Bye)


class Connection:
    """One end of a tuichat connection.

    `receive_data` turns received bytes into events: messages, or `InvalidMessage`
    for a frame that is well-formed but not acceptable (the connection stays
    usable). It raises `ProtocolError`, and only that, when the stream itself is
    broken; the connection is then `CLOSED` and refuses more data.
    `send` turns a message into the bytes to write.
    """

    __slots__ = ("_challenged", "_codec", "_frames", "role", "state", "they_closed", "we_closed")

    def __init__(self, role: Role, max_frame: int | None = None) -> None:
        self.role = role
        if max_frame is None:
            max_frame = DEFAULT_MAX_FRAME if role is Role.SERVER else DEFAULT_CLIENT_MAX_FRAME
        self.state = State.HANDSHAKE
        self.they_closed = False
        self.we_closed = False
        self._challenged = False
        self._frames = FrameDecoder(max_frame)
        accepts = CLIENT_MESSAGE_TYPES if role is Role.SERVER else SERVER_MESSAGE_TYPES
        self._codec = _codec(accepts, max_frame)

    @property
    def finished(self) -> bool:
        """Whether this connection is done: closed, or we already said `bye`."""
        return self.state is State.CLOSED or self.we_closed

    @property
    def partial_frame(self) -> bool:
        """Whether part of a frame has arrived and the rest is awaited."""
        return self._frames.pending > 0

    # --- receiving -------------------------------------------------------

    def receive_data(self, data: bytes) -> list[Event]:
        """Feed bytes read from the peer; return the events they complete."""
        if self.they_closed or self.state is State.CLOSED:
            if data:
                self._broken(ErrorCode.BAD_FRAME, "data after the end of the session")
            return []
        try:
            bodies = self._frames.feed(data)
        except ProtocolError:
            self._close()
            raise
        events: list[Event] = []
        for body in bodies:
            try:
                decoded = self._codec.decode(body)
            except ProtocolError:
                self._close()
                raise
            events.append(self._receive(decoded))
            if self.they_closed:
                if body is not bodies[-1] or self._frames.pending:
                    self._broken(ErrorCode.BAD_FRAME, "data after 'bye'")
                break
        return events

    def receive_eof(self) -> None:
        """Note that the peer closed its end of the stream."""
        self.they_closed = True
        self._close()

    def _receive(self, event: Event) -> Event:
        if isinstance(event, InvalidMessage):
            return event
        if isinstance(event, Bye):
            self.they_closed = True
            if self.we_closed:
                self._close()
            return event
        if self.role is Role.SERVER:
            return self._server_receive(event)
        return self._client_receive(event)

    def _server_receive(self, message: AnyMessage) -> Event:
        ref = getattr(message, "ref", None)
        if self.state is State.HANDSHAKE:
            if not isinstance(message, _HANDSHAKE_FROM_CLIENT):
                return InvalidMessage(ErrorCode.HELLO_REQUIRED, "send 'hello' first", ref)
            if isinstance(message, Hello) and message.version != PROTOCOL_VERSION:
                self._broken(
                    ErrorCode.UNSUPPORTED_VERSION,
                    f"protocol version {message.version} is not supported; "
                    f"this server speaks version {PROTOCOL_VERSION}",
                    ref,
                )
        elif isinstance(message, Hello):
            return InvalidMessage(ErrorCode.ALREADY_WELCOMED, "the session is already open", ref)
        return message

    def _client_receive(self, message: AnyMessage) -> Event:
        if self.state is State.HANDSHAKE:
            if not isinstance(message, _HANDSHAKE_FROM_SERVER):
                self._broken(ErrorCode.BAD_MESSAGE, f"{message.TYPE!r} before 'welcome'")
            if isinstance(message, Challenge):
                if self._challenged:
                    self._broken(ErrorCode.BAD_MESSAGE, "a second 'challenge'")
                self._challenged = True
            if isinstance(message, Welcome):
                self.state = State.OPEN
        elif isinstance(message, Welcome | Challenge):
            self._broken(ErrorCode.BAD_MESSAGE, f"{message.TYPE!r} after 'welcome'")
        return message

    # --- sending ---------------------------------------------------------

    def send(self, message: AnyMessage) -> bytes:
        """Return the frame for `message`; raise `LocalProtocolError` if it is not allowed now."""
        if self.we_closed:
            raise LocalProtocolError(f"cannot send {message.TYPE!r}: we already said 'bye'")
        allowed = CLIENT_MESSAGE_TYPES if self.role is Role.CLIENT else SERVER_MESSAGE_TYPES
        if not isinstance(message, allowed):
            raise LocalProtocolError(f"a {self.role.value} cannot send {message.TYPE!r}")
        if self.state is State.HANDSHAKE:
            early = _HANDSHAKE_FROM_CLIENT if self.role is Role.CLIENT else _HANDSHAKE_FROM_SERVER
            if not isinstance(message, early):
                raise LocalProtocolError(f"cannot send {message.TYPE!r} before 'welcome'")
        elif self.role is Role.CLIENT and isinstance(message, Hello):
            raise LocalProtocolError("the session is already open")
        if isinstance(message, Welcome):
            if self.state is not State.HANDSHAKE:
                raise LocalProtocolError("the session is already open")
            self.state = State.OPEN
        if isinstance(message, Bye):
            self.we_closed = True
            if self.they_closed:
                self._close()
        return encode_frame(self._codec.encode(message))

    # --- internals -------------------------------------------------------

    def _broken(self, code: ErrorCode, detail: str, ref: int | None = None) -> None:
        self._close()
        raise ProtocolError(code, detail, ref)

    def _close(self) -> None:
        self.state = State.CLOSED


@functools.lru_cache(maxsize=16)
def _codec(accepts: tuple[type[Any], ...], max_frame: int) -> Codec:
    """One codec for every connection of a kind (a codec keeps no state between frames)."""
    return Codec(accepts, max_frame)
