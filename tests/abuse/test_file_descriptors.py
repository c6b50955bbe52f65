"""A server out of file descriptors says so plainly, serves the connections it has, and takes
new ones again once some are closed.

The server runs as a process with an open-file limit of `LIMIT`; connections are opened until
one is refused. Refused, with the server's own listener (`tuichat.server.listener`), means told
`server_full` and closed; asyncio's server would leave it waiting in the backlog, and uvloop's
would close it without a word (and neither says plainly in the log why).
"""

from __future__ import annotations

import asyncio
import re
import resource
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.server_process import NO_FLOOD_CONTROL
from tuichat.client import ChatClient, Disconnected
from tuichat.protocol import Challenge, Connection, Error, Hello, Left, Presence, Role, Welcome

LIMIT = 64
"""The server's open-file limit: a few dozen connections besides its own files."""
ANSWER_S = 5.0
"""How long a connection may wait for the server's first frame (and its `welcome`)."""
MAX_PING_S = 1.0
"""The round trip an existing client gets while the server is out of files."""
LISTENING = re.compile(rb"listening on ([\d.]+):(\d+)")
"""The server accepts with its own listener on every path (not only behind balancers)."""


def low_file_limit() -> None:
    """In the server's process, before it starts: at most `LIMIT` open files."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (LIMIT, hard))


@dataclass
class Server:
    """A server process whose log is read as it comes (nothing it writes is left unread)."""

    process: asyncio.subprocess.Process
    host: str = ""
    port: int = 0
    log: list[bytes] = field(default_factory=list)
    _grown: asyncio.Condition = field(default_factory=asyncio.Condition)
    _reader: asyncio.Task[None] | None = None

    async def read_log(self) -> None:
        assert self.process.stderr is not None
        while line := await self.process.stderr.readline():
            async with self._grown:
                self.log.append(line)
                self._grown.notify_all()

    async def wait_for_log(self, pattern: bytes, timeout: float = 10.0) -> bytes:
        """The first line of the log (seen already or still to come) that holds `pattern`."""
        seen = 0
        async with asyncio.timeout(timeout), self._grown:
            while True:
                for line in self.log[seen:]:
                    if pattern in line:
                        return line
                seen = len(self.log)
                if self._reader is not None and self._reader.done():
                    raise AssertionError(f"the server exited without logging {pattern!r}")
                await self._grown.wait()

    def tail(self) -> str:
        return b"".join(self.log[-20:]).decode(errors="replace")


@pytest.fixture
async def start() -> AsyncIterator[list[Server]]:
    """The servers a test started (`start_server`); killed at the end if still running."""
    started: list[Server] = []
    yield started
    for server in started:
        if server.process.returncode is None:
            server.process.kill()
            await server.process.wait()
        if server._reader is not None:
            await server._reader


async def start_server(started: list[Server], tmp_path: Path, *args: str) -> Server:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tuichat.server", "--port", "0", "--db",
        str(tmp_path / "history.sqlite3"), *NO_FLOOD_CONTROL, *args,
        stderr=asyncio.subprocess.PIPE, preexec_fn=low_file_limit,
    )  # fmt: skip
    server = Server(process)
    started.append(server)
    server._reader = asyncio.create_task(server.read_log())
    line = await server.wait_for_log(b"listening on")
    match = LISTENING.search(line)
    assert match, line
    server.host, server.port = match.group(1).decode(), int(match.group(2))
    return server


@dataclass
class Raw:
    """A bare connection that said `hello` and was welcomed (or was refused: `refusal`)."""

    writer: asyncio.StreamWriter | None
    refusal: str = ""


async def connect(server: Server, name: str) -> Raw:
    """Connect and say `hello`; a connection the server does not welcome is closed again and
    says how it was refused."""
    try:
        reader, writer = await asyncio.open_connection(server.host, server.port)
    except OSError as exc:
        return Raw(None, f"connect failed: {exc}")
    conn = Connection(Role.CLIENT)
    refusal = ""
    try:
        async with asyncio.timeout(ANSWER_S):
            while not refusal:
                data = await reader.read(65536)
                if not data:
                    refusal = "closed by the server"
                for event in conn.receive_data(data):
                    if isinstance(event, Challenge):
                        writer.write(conn.send(Hello(name=name)))
                    elif isinstance(event, Welcome):
                        return Raw(writer)
                    elif isinstance(event, Error):
                        refusal = f"{event.code}: {event.message}"
    except TimeoutError:
        refusal = f"no welcome in {ANSWER_S:.0f} s"
    except OSError as exc:
        refusal = f"connection failed: {exc}"
    writer.close()
    return Raw(None, refusal)


async def left(client: ChatClient, names: set[str]) -> None:
    """Wait until `client` has heard every one of `names` leave the lobby."""
    waiting = set(names)
    async with asyncio.timeout(10):
        while waiting:
            event = await client.next_event()
            if isinstance(event, Left):
                waiting.discard(event.name)
            elif isinstance(event, Presence):
                waiting.difference_update(event.left)
            elif isinstance(event, Disconnected):
                raise AssertionError(f"{client.name} was disconnected: {event}")


async def close(connections: list[Raw]) -> None:
    for raw in connections:
        if raw.writer is not None:
            raw.writer.close()
            await raw.writer.wait_closed()


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
@pytest.mark.parametrize("path", ["plain", "listener"])
async def test_out_of_file_descriptors_is_said_plainly_and_the_server_serves_on(
    start: list[Server], tmp_path: Path, loop: str, path: str
) -> None:
    # a balancer that never connects: the server's own listener takes every connection
    listener = ["--proxy-from", "192.0.2.1"] if path == "listener" else []
    server = await start_server(start, tmp_path, "--event-loop", loop, *listener)
    keeper = await ChatClient.connect("keeper", server.host, server.port)
    held: list[Raw] = []
    try:
        refused = None
        for n in range(2 * LIMIT):  # (the limit counts the server's own files too)
            raw = await connect(server, f"conn{n}")
            if raw.writer is None:
                refused = raw
                break
            held.append(raw)
        assert refused is not None, f"{len(held)} connections and none refused"
        assert len(held) > LIMIT // 3, f"refused after only {len(held)}: {refused.refusal}"
        # told why (not left waiting, nor closed without a word)
        assert refused.refusal.startswith("server_full"), refused.refusal

        line = await server.wait_for_log(b"OUT OF FILE DESCRIPTORS")
        assert f"open-file limit (ulimit -n) is {LIMIT}".encode() in line, line
        assert re.search(rb"holding (\d+ connections, )?\d+ open files", line), line

        # the connections it holds are served: a ping, and a message and its acknowledgement
        assert await keeper.ping() < MAX_PING_S
        async with asyncio.timeout(ANSWER_S):  # (stored first: the disk may be slow)
            ack = await keeper.send("#lobby", "still here")
        assert ack.seq > 0

        # some connections go (the keeper hears them leave: their files are closed by then),
        # and new ones are taken again
        await close(held[:5])
        del held[:5]
        await left(keeper, {f"conn{n}" for n in range(5)})
        raw = await connect(server, "again")
        assert raw.writer is not None, f"not taken again: {raw.refusal}\n{server.tail()}"
        held.append(raw)
        line = await server.wait_for_log(b"accepting connections again")
        assert b"holding" in line, line
        assert await keeper.ping() < MAX_PING_S
        assert server.process.returncode is None
    finally:
        await close(held)
        await keeper.abort()
