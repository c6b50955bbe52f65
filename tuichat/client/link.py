"""One TCP (or TLS) connection to a server: frames in, frames out, nothing more."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Callable

from tuichat.protocol import AnyMessage, Connection, Event, ProtocolError, Role

READ_SIZE = 256 * 1024


class Link:
    """Reads frames into `on_event` until the connection ends, then calls `on_lost(reason)`."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        on_event: Callable[[Link, Event], None],
        on_lost: Callable[[Link, str, bool], None],
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._conn = Connection(Role.CLIENT)
        self._on_event = on_event
        self._on_lost = on_lost
        loop = asyncio.get_running_loop()
        self.last_heard = loop.time()
        self.closed = False
        self._task = loop.create_task(self._read_loop(), name="tuichat-read")

    @classmethod
    async def open(
        cls,
        host: str,
        port: int,
        ssl_context: ssl.SSLContext | None,
        on_event: Callable[[Link, Event], None],
        on_lost: Callable[[Link, str, bool], None],
    ) -> Link:
        """Connect; raise `OSError` if the server cannot be reached."""
        reader, writer = await asyncio.open_connection(host, port, ssl=ssl_context)
        return cls(reader, writer, on_event, on_lost)

    def send(self, message: AnyMessage) -> None:
        """Write one message (buffered; the transport sends it as soon as it can)."""
        if not self.closed:
            self._writer.write(self._conn.send(message))

    async def drain(self) -> None:
        """Wait until the write buffer is below its high-water mark."""
        if not self.closed:
            with contextlib.suppress(ConnectionError):
                await self._writer.drain()

    async def wait_closed(self) -> None:
        """Wait until the server has closed the connection."""
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(self._task)

    async def abort(self) -> None:
        """Drop the connection at once."""
        self._writer.close()
        with contextlib.suppress(OSError):
            await self._writer.wait_closed()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    def kill(self) -> None:
        """Drop the connection at once, without waiting (for a dead peer)."""
        transport = self._writer.transport
        transport.abort()

    async def _read_loop(self) -> None:
        reason, clean = "the server closed the connection", False
        loop = asyncio.get_running_loop()
        try:
            while True:
                data = await self._reader.read(READ_SIZE)
                if not data:
                    self._conn.receive_eof()
                    break
                self.last_heard = loop.time()
                for event in self._conn.receive_data(data):
                    self._on_event(self, event)
                if self._conn.they_closed:
                    reason, clean = "the server said goodbye", True
        except ProtocolError as exc:
            reason = f"protocol error from the server: {exc}"
        except OSError as exc:
            reason = f"connection lost: {exc.strerror or exc}"
        finally:
            self.closed = True
            self._writer.close()
            self._on_lost(self, reason, clean)
