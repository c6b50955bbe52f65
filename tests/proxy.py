"""A TCP proxy whose connections a test can cut, as a flaky network would."""

from __future__ import annotations

import asyncio
import contextlib


class Proxy:
    """Forwards connections to `target`; `cut()` drops every one of them at once."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._frozen: set[asyncio.StreamWriter] = set()
        self.connections = 0

    async def start(self, port: int = 0) -> tuple[str, int]:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", port)
        host, self.port = self._server.sockets[0].getsockname()[:2]
        return host, self.port

    async def refuse(self) -> None:
        """Cut every connection and refuse new ones, as if the server were unreachable."""
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def accept(self) -> None:
        """Accept connections again, on the same port."""
        await self.start(self.port)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}
        pipes = [
            asyncio.create_task(self._pipe(reader, up_writer)),
            asyncio.create_task(self._pipe(up_reader, writer)),
        ]
        self._tasks.update(pipes)
        await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        for writer_ in (writer, up_writer):
            writer_.transport.abort()
            self._writers.discard(writer_)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                if writer not in self._frozen:
                    writer.write(data)
                    await writer.drain()

    def freeze(self) -> None:
        """Let every open connection go silent (bytes are swallowed), without closing it."""
        self._frozen |= self._writers

    def cut(self) -> None:
        """Drop every open connection, both ways, without a goodbye."""
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def stop(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in self._tasks:
            task.cancel()
