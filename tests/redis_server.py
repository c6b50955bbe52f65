"""A real `redis-server` for the tests: on a unix socket in a temporary directory, restartable."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path

import pytest

READY = b"ready to accept connections"


class RedisServer:
    """One redis-server process; its data (append-only file) survives `restart()`."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="tuichat-redis-"))  # short: a socket path is
        self.socket = self.dir / "redis.sock"  # limited to about 100 bytes
        self.url = f"unix://{self.socket}"
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("redis-server is not installed (Debian: apt-get install redis-server)")
        self.process = await asyncio.create_subprocess_exec(
            binary, "--port", "0", "--unixsocket", str(self.socket), "--unixsocketperm", "700",
            "--dir", str(self.dir), "--appendonly", "yes", "--appendfsync", "always",
            "--save", "", "--daemonize", "no",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        assert self.process.stdout is not None
        async with asyncio.timeout(10):
            while READY not in (line := await self.process.stdout.readline()):
                assert line, "redis-server exited before it was ready"
        asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        process = self.process
        assert process is not None and process.stdout is not None
        while await process.stdout.readline():
            pass

    async def kill(self) -> None:
        """Stop Redis at once (SIGKILL): what it acknowledged is in its append-only file."""
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()
        self.socket.unlink(missing_ok=True)

    async def restart(self) -> None:
        await self.kill()
        await self.start()

    async def stop(self) -> None:
        await self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)
