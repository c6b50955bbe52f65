"""Storage that fails under a real server process: it refuses, answers and stops in bounded time.

- two servers on one history file: the second refuses to start, in one line;
- a full disk (a file-size limit on the process, or a small tmpfs): every send is answered
  `unavailable` within seconds and the reason is logged once, SIGTERM still exits promptly, and
  every acknowledged message is in the file; once there is room again, numbering goes on;
- the WAL index (`-shm`) truncated under the server used to kill it with SIGBUS: there is none;
  a history that cannot be written is refused at start;
- the history file deleted under the server: sends are refused, and the log says why.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.helpers import collect, until
from tests.server_process import LISTENING, NO_FLOOD_CONTROL, ServerProcess
from tuichat.client import ChatClient, RequestFailed
from tuichat.protocol import ErrorCode, Message

ANSWER_WITHIN = 5.0
"""Seconds a send may take to be answered, acknowledged or refused, while the store fails."""
STOP_WITHIN = 10.0
"""Seconds SIGTERM may take to end a server whose store cannot write."""
FILE_LIMIT = 256 * 1024
"""Bytes any file of the server may grow to (the disk is "full" there)."""


async def start(*args: str, limit: Callable[[], None] | None = None) -> ServerProcess:
    """A real server whose log is read as it comes (a full pipe would stall its logging)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tuichat.server", "--port", "0", *args,
        stderr=asyncio.subprocess.PIPE, preexec_fn=limit,
    )  # fmt: skip
    server = ServerProcess(process, "", 0, [])
    try:
        line = await server.wait_for_log(b"listening on")
    except BaseException:
        await stop(server)
        raise
    match = LISTENING.search(line)
    assert match, line
    server.host, server.port = match.group(1).decode(), int(match.group(2))
    return server


async def stop(server: ServerProcess) -> float:
    """SIGTERM the server, read the rest of its log; return the seconds it took to exit."""
    began = time.monotonic()
    if server.process.returncode is None:
        server.process.send_signal(signal.SIGTERM)
    assert server.process.stderr is not None
    async with asyncio.timeout(STOP_WITHIN * 2):
        rest = await server.process.stderr.read()
        await server.process.wait()
    server.log += rest.splitlines(keepends=True)
    return time.monotonic() - began


def lines(server: ServerProcess, pattern: bytes) -> list[bytes]:
    return [line for line in server.log if pattern in line]


async def keep_reading(server: ServerProcess) -> None:
    """Read the log as it comes, so that a chatty server never blocks on its pipe."""
    assert server.process.stderr is not None
    while line := await server.process.stderr.readline():
        server.log.append(line)


def no_bigger_than(size: int) -> Callable[[], None]:
    """For the server's process: files cannot grow past `size` (writes fail with EFBIG)."""

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))

    return limit


@contextlib.contextmanager
def small_tmpfs(path: Path, size: int) -> Iterator[Path]:
    """A filesystem of `size` bytes at `path` (root only; the test is skipped otherwise)."""
    path.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip("mounting a tmpfs needs root")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


async def test_a_second_server_on_the_same_history_refuses_to_start(
    tmp_path: Path, servers: list[ServerProcess]
) -> None:
    db = tmp_path / "h.sqlite3"
    first = await start("--db", str(db))
    servers.append(first)
    ali = await ChatClient.connect("ali", first.host, first.port)
    await ali.send("#lobby", "before")
    began = time.monotonic()
    second = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tuichat.server", "--port", "0", "--db", str(db),
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    async with asyncio.timeout(10):
        _, err = await second.communicate()
    assert second.returncode == 1
    assert time.monotonic() - began < 5.0
    refusal = [line for line in err.decode().splitlines() if "ERROR" in line]
    assert len(refusal) == 1, err.decode()
    assert f"cannot open the history {db}: another process holds it" in refusal[0]
    assert "Traceback" not in err.decode()
    assert (await ali.send("#lobby", "after")).seq == 2  # the first one carries on, unharmed
    await ali.close()
    assert await stop(first) < STOP_WITHIN and first.process.returncode == 0


@pytest.mark.parametrize("disk", ["file-size-limit", "tmpfs"])
async def test_a_full_disk_refuses_sends_at_once_and_loses_nothing_acknowledged(
    tmp_path: Path, servers: list[ServerProcess], disk: str
) -> None:
    with contextlib.ExitStack() as stack:
        if disk == "tmpfs":
            folder = stack.enter_context(small_tmpfs(tmp_path / "disk", FILE_LIMIT))
            limit = None
        else:
            folder, limit = tmp_path, no_bigger_than(FILE_LIMIT)
        db = folder / "h.sqlite3"
        server = await start("--db", str(db), *NO_FLOOD_CONTROL, limit=limit)
        servers.append(server)
        reading = asyncio.create_task(keep_reading(server))
        ali = await ChatClient.connect("ali", server.host, server.port)
        acked: dict[int, str] = {}
        slowest = 0.0
        refused = 0
        for number in range(5000):
            text = f"{number} " + "x" * 400
            began = time.monotonic()
            try:
                ack = await asyncio.wait_for(ali.send("#lobby", text), ANSWER_WITHIN)
            except RequestFailed as failed:
                assert failed.code == ErrorCode.UNAVAILABLE
                refused += 1
            else:
                assert not refused, "acknowledged after the disk filled up"
                acked[ack.seq] = text
            slowest = max(slowest, time.monotonic() - began)
            if refused == 50:  # the first refusal, then 49 more: none of them waits
                break
        assert refused == 50 and acked, f"{len(acked)} acknowledged, {refused} refused"
        assert slowest < ANSWER_WITHIN
        await ali.abort()
        reading.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reading
        took = await stop(server)
        assert took < STOP_WITHIN and server.process.returncode == 0
        why = lines(server, b"cannot write the history to")
        assert len(why) == 1, why  # the reason once, not once per send
        assert b"Traceback" not in b"".join(server.log)

        if disk == "tmpfs":  # move the history to a disk with room, as an operator would
            for name in os.listdir(folder):
                shutil.copy(folder / name, tmp_path / name)
            db = tmp_path / "h.sqlite3"
    with contextlib.closing(sqlite3.connect(db)) as conn:  # open, it would keep a server out
        stored = dict(conn.execute("SELECT seq, text FROM messages"))
    assert stored == acked  # every acknowledged message, and nothing that was refused
    print(f"\n{disk}: {len(acked)} acknowledged, then 50 refused; slowest answer "
          f"{slowest * 1000:.0f} ms; SIGTERM took {took:.2f} s")  # fmt: skip
    again = await start("--db", str(db))
    servers.append(again)
    ali = await ChatClient.connect("ali", again.host, again.port)
    assert (await ali.send("#lobby", "room again")).seq == max(acked) + 1  # no gap, no repeat
    await ali.close()
    assert await stop(again) < STOP_WITHIN


async def test_writing_resumes_when_the_disk_has_room_again_with_no_gap(
    tmp_path: Path, servers: list[ServerProcess]
) -> None:
    with small_tmpfs(tmp_path / "disk", 4 * FILE_LIMIT) as folder:
        server = await start("--db", str(folder / "h.sqlite3"), *NO_FLOOD_CONTROL)
        servers.append(server)
        ali = await ChatClient.connect("ali", server.host, server.port)
        bob = await ChatClient.connect("bob", server.host, server.port)
        for number in range(3):
            await ali.send("#lobby", f"before {number}")
        filler = folder / "filler"
        with contextlib.suppress(OSError), filler.open("wb") as taking:
            while True:  # until the disk is full
                taking.write(b"\0" * 65536)
                taking.flush()
        with pytest.raises(RequestFailed) as refused:
            await asyncio.wait_for(ali.send("#lobby", "while full"), ANSWER_WITHIN)
        assert refused.value.code == ErrorCode.UNAVAILABLE
        filler.unlink()

        async def send() -> int:
            return (await asyncio.wait_for(ali.send("#lobby", "after"), ANSWER_WITHIN)).seq

        await until(send, 4)  # the first send taken again gets the next number: no gap
        heard = [m.seq for m in await collect(bob, Message, 4)]
        assert heard == [1, 2, 3, 4]
        await server.wait_for_log(b"can be written again")
        await ali.close()
        await bob.close()
        assert await stop(server) < STOP_WITHIN and server.process.returncode == 0


async def test_the_wal_index_cannot_be_broken_from_outside(
    tmp_path: Path, servers: list[ServerProcess]
) -> None:
    db = tmp_path / "h.sqlite3"
    server = await start("--db", str(db))
    servers.append(server)
    ali = await ChatClient.connect("ali", server.host, server.port)
    await ali.send("#lobby", "one")
    shm = tmp_path / "h.sqlite3-shm"
    shm.write_bytes(b"")  # the WAL index truncated under the server (it was killed: SIGBUS)
    assert (await ali.send("#lobby", "two")).seq == 2
    assert shm.stat().st_size == 0  # not used at all: the index lives in the server's memory
    shm.unlink()
    shm.mkdir()  # not even a file
    assert (await ali.send("#lobby", "three")).seq == 3
    await ali.close()
    assert await stop(server) < STOP_WITHIN and server.process.returncode == 0


async def test_a_history_that_cannot_be_written_is_refused_at_start(tmp_path: Path) -> None:
    db = tmp_path / "h.sqlite3"
    (tmp_path / "h.sqlite3-wal").mkdir()  # where the write-ahead log must go
    refused = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tuichat.server", "--port", "0", "--db", str(db),
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    async with asyncio.timeout(10):
        _, err = await refused.communicate()
    assert refused.returncode == 1
    said = err.decode().splitlines()
    assert [line for line in said if "ERROR" in line] == [said[-1]]
    assert f"cannot open the history {db}: it cannot be written" in said[-1]
    assert "Traceback" not in err.decode()


async def test_a_deleted_history_file_is_noticed_and_sends_are_refused(
    tmp_path: Path, servers: list[ServerProcess]
) -> None:
    db = tmp_path / "h.sqlite3"
    server = await start("--db", str(db))
    servers.append(server)
    ali = await ChatClient.connect("ali", server.host, server.port)
    await ali.send("#lobby", "stored")
    db.unlink()
    for _ in range(3):
        with pytest.raises(RequestFailed) as refused:
            await asyncio.wait_for(ali.send("#lobby", "into a deleted file"), ANSWER_WITHIN)
        assert refused.value.code == ErrorCode.UNAVAILABLE
    line = await server.wait_for_log(b"cannot write the history to")
    assert f"the file {db} was deleted or replaced while in use".encode() in line
    await ali.abort()
    assert await stop(server) < STOP_WITHIN and server.process.returncode == 0
    assert len(lines(server, b"cannot write the history to")) == 1  # once, not once a send
