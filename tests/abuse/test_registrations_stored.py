"""A registration is acknowledged only once it is on disk, under a real server process.

- a registration whose write fails (the file may not grow: a file-size limit set on the running
  process) is answered `unavailable`, and once the disk takes writes again the name is free;
- a registration the server welcomed survives a SIGKILL right after the welcome.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import resource
import signal
import sqlite3
from pathlib import Path

from tests.abuse.test_storage_faults import start, stop
from tests.helpers import TIMEOUT, until
from tests.raw import open_raw
from tests.server_process import NO_FLOOD_CONTROL, ServerProcess
from tuichat.chat.names import name_keys
from tuichat.client import SigningKey
from tuichat.protocol import Error, Welcome

KEY_A = SigningKey.generate()
KEY_B = SigningKey.generate()


def survives_file_limits() -> None:
    """For the server's process: a write past its file-size limit fails (EFBIG), not kills."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


def limit_files(server: ServerProcess, size: int) -> None:
    """From now on no file of the running server may grow past `size` bytes."""
    _, hard = resource.prlimit(server.process.pid, resource.RLIMIT_FSIZE)
    resource.prlimit(server.process.pid, resource.RLIMIT_FSIZE, (size, hard))


async def answer(server: ServerProcess, name: str, key: SigningKey) -> str:
    """What `server` answers a hello for `name` signed with `key`: "welcomed" or a code."""
    raw = await open_raw(server.host, server.port)
    try:
        raw.send(await raw.signed_hello(name, key, ref=1))
        reply = await raw.reply(1, timeout=TIMEOUT)
    finally:
        raw.writer.close()
    if isinstance(reply, Welcome):
        return "welcomed"
    assert isinstance(reply, Error), reply
    return reply.code


def owners(db: Path) -> dict[str, str]:
    """The registrations in the history file (name key → owner's key), read with the server
    stopped (what may follow the key in a stored owner is left off)."""
    with contextlib.closing(sqlite3.connect(db)) as conn:
        rows = conn.execute("SELECT name_key, owner FROM identities").fetchall()
    return {name_key: owner.partition("#")[0] for name_key, owner in rows}


async def test_a_registration_that_cannot_be_written_is_refused_and_leaves_the_name_free(
    tmp_path: Path, servers: list[ServerProcess]
) -> None:
    db = tmp_path / "h.sqlite3"
    server = await start("--db", str(db), *NO_FLOOD_CONTROL, limit=survives_file_limits)
    servers.append(server)
    # the write-ahead log may not grow past what it has: the next commit fails, and nothing
    # failed before it (the store still takes writes when the registration comes)
    limit_files(server, (tmp_path / "h.sqlite3-wal").stat().st_size)
    assert await answer(server, "sara", KEY_A) == "unavailable"
    assert await answer(server, "sara", KEY_A) == "unavailable"  # and again, not welcomed
    limit_files(server, resource.RLIM_INFINITY)  # the disk has room again
    # the name is free: another key registers it once the store takes writes again (the
    # failed registration is not written after all)
    await until(functools.partial(answer, server, "sara", KEY_B), "welcomed")
    assert await answer(server, "sara", KEY_A) == "name_registered"
    await stop(server)
    assert b"cannot write the history to" in b"".join(server.log)  # the operator is told why
    assert set(owners(db).values()) == {f"ed25519:{KEY_B.public}"}

    again = await start("--db", str(db), *NO_FLOOD_CONTROL)  # a restart on the same file
    servers.append(again)
    assert await answer(again, "sara", KEY_A) == "name_registered"
    assert await answer(again, "sara", KEY_B) == "welcomed"
    await stop(again)


async def test_registrations_welcomed_right_before_a_sigkill_survive_it(
    tmp_path: Path, servers: list[ServerProcess]
) -> None:
    db = tmp_path / "h.sqlite3"
    server = await start("--db", str(db), *NO_FLOOD_CONTROL)
    servers.append(server)
    names = [f"user{number}" for number in range(80)]  # (one address may hold 100 connections)
    raws = [await open_raw(server.host, server.port) for _ in names]
    for raw, name in zip(raws, names, strict=True):  # at once: the last come while the first
        raw.send(await raw.signed_hello(name, KEY_A, ref=1))  # are being committed
    replies = await asyncio.gather(*(raw.reply(1, timeout=TIMEOUT) for raw in raws))
    server.process.send_signal(signal.SIGKILL)  # at once: no shutdown stores anything
    await server.process.wait()
    assert all(isinstance(reply, Welcome) for reply in replies), replies
    for raw in raws:
        raw.writer.close()

    stored = owners(db)
    for name in names:
        assert {stored.get(key) for key in name_keys(name)} == {f"ed25519:{KEY_A.public}"}
    again = await start("--db", str(db), *NO_FLOOD_CONTROL)
    servers.append(again)
    for name in names:
        assert await answer(again, name, KEY_B) == "name_registered"
    assert await answer(again, names[0], KEY_A) == "welcomed"
    await stop(again)
