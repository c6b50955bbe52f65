"""Servers run as real processes (`python -m tuichat.server`), never left running."""

from __future__ import annotations

import asyncio
import re
import sys
from dataclasses import dataclass

LISTENING = re.compile(rb"listening on ([\d.]+):(\d+)")
_started: list[asyncio.subprocess.Process] = []
NO_FLOOD_CONTROL = (
    "--messages-per-second", "1e12", "--message-burst", "1000000000",
    "--text-bytes-per-second", "1e12", "--text-byte-burst", "1000000000000",
    "--connections-per-second", "1e12", "--connection-burst", "1000000000",
    "--private-messages-per-second", "1e12", "--private-message-burst", "1000000000",
    "--registrations-per-hour", "1000000000", "--new-rooms-per-hour", "1000000000",
    "--moderation-per-second", "1e12", "--moderation-burst", "1000000000",
    "--searches-per-second", "1e12", "--search-burst", "1000000000",
)  # fmt: skip
"""Flags that lift the flood limits (new connections per network included), for tests that
send and connect as fast as they can."""


@dataclass
class ServerProcess:
    process: asyncio.subprocess.Process
    host: str
    port: int
    log: list[bytes]

    async def wait_for_log(self, pattern: bytes, timeout: float = 10.0) -> bytes:
        """Return the first log line (already seen or still to come) containing `pattern`."""
        async with asyncio.timeout(timeout):
            for line in self.log:
                if pattern in line:
                    return line
            assert self.process.stderr is not None
            while line := await self.process.stderr.readline():
                self.log.append(line)
                if pattern in line:
                    return line
        raise AssertionError(f"the server exited without logging {pattern!r}")


async def start_server_process(*args: str) -> ServerProcess:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tuichat.server", "--port", "0", *args,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _started.append(process)
    server = ServerProcess(process, "", 0, [])
    line = await server.wait_for_log(b"listening on")
    match = LISTENING.search(line)
    assert match, line
    server.host, server.port = match.group(1).decode(), int(match.group(2))
    return server


async def kill_leftovers() -> None:
    """Kill every server process a test started and did not stop."""
    while _started:
        process = _started.pop()
        if process.returncode is None:
            process.kill()
            await process.wait()
