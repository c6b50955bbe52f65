"""A connection driven by hand, for tests that must see exactly the frames the server sends."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

import msgpack

from tuichat.protocol import (
    AnyMessage,
    Challenge,
    Codec,
    Connection,
    Error,
    Event,
    Hello,
    Role,
    Welcome,
    encode_frame,
)
from tuichat.protocol.auth import SigningKey


class Raw:
    """A connection driven by hand: bytes written as given, the server's frames decoded."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.conn = Connection(Role.CLIENT)
        self.pending: deque[Event] = deque()
        self.eof = False
        self.challenge: Challenge | None = None
        """The server's first frame (kept here, not among the frames `next` returns)."""

    def send(self, *messages: AnyMessage) -> None:
        self.write(b"".join(encode_frame(Codec.encode(m)) for m in messages))

    def send_map(self, *values: Any) -> None:
        """Send msgpack values of our own making (maps with wrong fields, not maps at all)."""
        self.write(b"".join(encode_frame(msgpack.packb(v)) for v in values))

    def write(self, data: bytes) -> None:
        self.writer.write(data)

    async def _next(self) -> Event | None:
        while not self.pending:
            if self.eof:
                return None
            try:
                data = await self.reader.read(65536)
            except ConnectionResetError:
                data = b""
            if not data:
                self.eof = True
                continue
            for event in self.conn.receive_data(data):
                if isinstance(event, Challenge):
                    self.challenge = event
                else:
                    self.pending.append(event)
        return self.pending.popleft()

    async def challenged(self, timeout: float = 5.0) -> Challenge:
        """Wait for the server's challenge (what a `hello` with a key signs)."""
        async with asyncio.timeout(timeout):
            while self.challenge is None:
                data = await self.reader.read(65536)
                assert data, "the server closed the connection before its challenge"
                for event in self.conn.receive_data(data):
                    if isinstance(event, Challenge):
                        self.challenge = event
                    else:
                        self.pending.append(event)
        return self.challenge

    async def signed_hello(self, name: str, key: SigningKey, **fields: Any) -> Hello:
        """A `hello` for `name` signed with `key` for this connection's challenge."""
        challenge = await self.challenged()
        signature = key.sign_login(challenge.server_id, challenge.nonce, name)
        return Hello(name=name, public_key=key.public, signature=signature, **fields)

    async def next(self, timeout: float = 5.0) -> Event | None:
        """Return the server's next frame, or None once it has closed the connection."""
        async with asyncio.timeout(timeout):
            return await self._next()

    async def next_error(self, timeout: float = 5.0) -> Error:
        """Return the server's next `error` frame (skipping pushed events)."""
        async with asyncio.timeout(timeout):
            while True:
                event = await self._next()
                assert event is not None, "the server closed the connection"
                if isinstance(event, Error):
                    return event

    async def reply(self, ref: int, timeout: float = 5.0) -> Event:
        """Return the frame that answers request `ref` (skipping pushed events)."""
        skipped: list[Event] = []
        async with asyncio.timeout(timeout):
            while True:
                event = await self._next()
                assert event is not None, f"closed before the answer to {ref}, after {skipped}"
                if getattr(event, "ref", None) == ref:
                    return event
                skipped.append(event)

    async def rest(self, timeout: float = 5.0) -> list[Event]:
        """Return every frame up to the end of the connection, which the server must close."""
        events: list[Event] = []
        async with asyncio.timeout(timeout):
            while (event := await self._next()) is not None:
                events.append(event)
        return events

    async def hello(self, name: str) -> Welcome:
        self.send(Hello(name=name, ref=0))
        welcome = await self.reply(0)
        assert isinstance(welcome, Welcome), welcome
        return welcome


async def open_raw(host: str, port: int, source: str = "127.0.0.1") -> Raw:
    """Connect a `Raw` to a server."""
    reader, writer = await asyncio.open_connection(host, port, local_addr=(source, 0))
    return Raw(reader, writer)
