"""`tuichat-server` as a real process: it logs, says goodbye on SIGTERM/SIGINT and exits 0."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.helpers import expect
from tests.server_process import ServerProcess, start_server_process
from tuichat.client import ChatClient, Disconnected
from tuichat.protocol import Bye, Left


@pytest.fixture
async def server_process(tmp_path: Path) -> AsyncIterator[ServerProcess]:
    server = await start_server_process("--name", "proc", "--db", str(tmp_path / "h.sqlite3"))
    yield server
    if server.process.returncode is None:
        server.process.kill()
        await server.process.wait()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_the_server_says_goodbye_and_exits_0_on_a_signal(
    server_process: ServerProcess, sig: signal.Signals
) -> None:
    ali = await ChatClient.connect("ali", server_process.host, server_process.port)
    await server_process.wait_for_log(b"ali joined from 127.0.0.1")
    server_process.process.send_signal(sig)
    bye = await expect(ali, Bye)
    assert bye.reason == "shutdown"
    assert (await expect(ali, Disconnected)).clean
    async with asyncio.timeout(10):
        assert await server_process.process.wait() == 0
    await server_process.wait_for_log(b"stopped")


async def test_the_server_logs_who_joins_and_leaves(server_process: ServerProcess) -> None:
    ali = await ChatClient.connect("ali", server_process.host, server_process.port)
    bob = await ChatClient.connect("bob", server_process.host, server_process.port)
    await bob.close()
    await expect(ali, Left, name="bob")
    await server_process.wait_for_log(b"bob joined from 127.0.0.1:")
    await server_process.wait_for_log(b"bob left (quit)")
    await ali.close()


async def test_a_killed_client_process_is_announced_as_left(server_process: ServerProcess) -> None:
    ali = await ChatClient.connect("ali", server_process.host, server_process.port)
    script = (
        "import asyncio, sys\n"
        "from tuichat.client import ChatClient\n"
        "async def main():\n"
        f"    c = await ChatClient.connect('bob', '{server_process.host}', {server_process.port})\n"
        "    print('ready', flush=True)\n"
        "    await asyncio.Event().wait()\n"
        "asyncio.run(main())\n"
    )
    bob = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, stdout=asyncio.subprocess.PIPE
    )
    assert bob.stdout is not None
    async with asyncio.timeout(10):
        assert await bob.stdout.readline() == b"ready\n"
    bob.kill()
    await bob.wait()
    left = await expect(ali, Left, name="bob")
    assert left.reason == "disconnect"
    await ali.close()


async def test_a_port_in_use_is_a_one_line_error_and_exit_1(
    server_process: ServerProcess,
) -> None:
    second = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tuichat.server", "--port", str(server_process.port),
        "--no-history", stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    async with asyncio.timeout(10):
        _, err = await second.communicate()
    assert second.returncode == 1
    assert b"cannot listen on" in err
    assert b"Traceback" not in err


async def test_the_app_without_a_server_says_so_in_one_line_and_exits_1() -> None:
    probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()  # a port where nothing listens any more
    app = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tuichat.app", "--port", str(port), "--name", "ali",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    async with asyncio.timeout(20):
        out, err = await app.communicate()
    assert app.returncode == 1
    assert err.decode().splitlines() == [
        f"tuichat: cannot reach a server at 127.0.0.1:{port}: Connection refused"
    ]
    assert out == b""
