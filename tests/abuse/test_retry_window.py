"""Nobody can push your client ids out of the server's memory: a retry is never stored twice.

The attack: the server remembered the last 4,096 client ids of a room, whoever sent them, so
an attacker posting 4,096 messages with fresh ids pushed the victim's id out (in 14 s under
the default limits), and the victim's retry of a message whose acknowledgement it missed was
posted a second time. Each sender now has their own window per room (their last 1,024 ids),
read back from the history when it is not in memory; the same for private messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.raw import open_raw
from tests.server_process import NO_FLOOD_CONTROL, ServerProcess, start_server_process
from tuichat.client import ChatClient
from tuichat.protocol import Private, PrivateMessage
from tuichat.server.broker import Post, Published
from tuichat.server.broker.local import LocalBroker
from tuichat.server.history import SQLiteHistory

FLOOD = 5_000
"""Messages with fresh ids the attacker sends after the victim's (more than the old window)."""
ATTACKERS = 5
IN_FLIGHT = 250


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "h.sqlite3"


@pytest.fixture
async def server(db: Path) -> AsyncIterator[ServerProcess]:
    """A real server; the flood limits are lifted only so that the attack takes a second."""
    process = await start_server_process("--db", str(db), *NO_FLOOD_CONTROL)
    yield process
    await stopped(process)


async def stopped(server: ServerProcess) -> None:
    if server.process.returncode is None:
        server.process.terminate()
        await server.process.wait()


async def flood(server: ServerProcess, room: str) -> None:
    """`FLOOD` messages with fresh ids into `room`, from `ATTACKERS` names at once."""

    async def attacker(number: int) -> None:
        client = await ChatClient.connect(f"attacker{number}", server.host, server.port)
        if room != "#lobby":
            await client.join(room)
        mine = FLOOD // ATTACKERS
        for first in range(0, mine, IN_FLIGHT):
            count = min(IN_FLIGHT, mine - first)
            await asyncio.gather(*(client.send(room, f"flood {first + i}") for i in range(count)))
        await client.close()

    await asyncio.gather(*(attacker(n) for n in range(ATTACKERS)))


def rows_with_id(db: Path, client_id: str) -> int:
    with contextlib.closing(sqlite3.connect(db)) as conn:  # once the server has stopped
        (count,) = conn.execute(
            "SELECT COUNT(*) FROM messages WHERE client_id = ?", (client_id,)
        ).fetchone()
    return int(count)


async def test_a_flood_of_fresh_ids_cannot_make_a_retry_post_twice(
    server: ServerProcess, db: Path
) -> None:
    victim = await ChatClient.connect("victim", server.host, server.port)
    first = await victim.send("#lobby", "only once", id="victim-1")  # its ack got lost, say
    await flood(server, "#lobby")
    retry = await victim.send("#lobby", "only once", id="victim-1")
    assert (retry.seq, retry.ts) == (first.seq, first.ts)  # the original, not a new message
    await victim.close()
    await stopped(server)
    assert rows_with_id(db, "victim-1") == 1


async def test_a_retry_is_recognised_in_a_room_that_was_forgotten_meanwhile(
    server: ServerProcess, db: Path
) -> None:
    victim = await ChatClient.connect("victim", server.host, server.port)
    await victim.join("#quiet")
    first = await victim.send("#quiet", "only once", id="victim-2")
    await victim.part("#quiet")  # nobody is in it: the server forgets it
    await flood(server, "#quiet")  # read back, flooded, forgotten again
    await victim.join("#quiet")
    retry = await victim.send("#quiet", "only once", id="victim-2")
    assert (retry.seq, retry.ts) == (first.seq, first.ts)
    assert (await victim.send("#quiet", "new")).seq == FLOOD + 2
    await victim.close()
    await stopped(server)
    assert rows_with_id(db, "victim-2") == 1


async def test_a_retry_is_recognised_after_a_restart(server: ServerProcess, db: Path) -> None:
    victim = await ChatClient.connect("victim", server.host, server.port, reconnect=True)
    first = await victim.send("#lobby", "only once", id="victim-3")
    await flood(server, "#lobby")
    await stopped(server)
    again = await start_server_process("--db", str(db), "--port", str(server.port))
    try:
        retry = await victim.send("#lobby", "only once", id="victim-3")  # after reconnecting
        assert (retry.seq, retry.ts) == (first.seq, first.ts)
        await victim.close()
    finally:
        await stopped(again)
    assert rows_with_id(db, "victim-3") == 1


async def test_a_flood_of_private_messages_cannot_make_a_retry_post_twice(
    server: ServerProcess, db: Path
) -> None:
    bob = await ChatClient.connect("bob", server.host, server.port)
    victim = await open_raw(server.host, server.port)
    await victim.hello("victim")
    victim.send(Private(to="bob", text="psst", id="victim-p", ref=1))
    first = await victim.reply(1)
    assert isinstance(first, PrivateMessage)
    attacker = await ChatClient.connect("attacker", server.host, server.port)
    for start in range(0, FLOOD, IN_FLIGHT):
        spam = (attacker.private("bob", f"spam {start + i}") for i in range(IN_FLIGHT))
        await asyncio.gather(*spam)
    victim.send(Private(to="bob", text="psst", id="victim-p", ref=2))
    retry = await victim.reply(2)
    assert isinstance(retry, PrivateMessage) and (retry.pid, retry.ts) == (first.pid, first.ts)
    victim.writer.close()
    await attacker.close()
    await bob.close()
    await stopped(server)
    with contextlib.closing(sqlite3.connect(db)) as conn:
        stored = conn.execute("SELECT COUNT(*) FROM privates WHERE client_id = 'victim-p'")
        assert stored.fetchone() == (1,)


async def test_windows_pushed_out_of_memory_are_read_back_from_the_history(
    tmp_path: Path,
) -> None:
    """The memory for ids is bounded: past it, windows are dropped and read back when needed."""
    store = SQLiteHistory(tmp_path / "h.sqlite3")
    broker = LocalBroker(store, store.load(), 1024, remembered_ids=64)
    await broker.start(_Handler())  # type: ignore[arg-type]
    ready: asyncio.Future[Exception | None] = asyncio.get_running_loop().create_future()
    broker.follow(["#lobby"], ready.set_result)
    assert await ready is None

    async def post(sender: str, client_id: str) -> Published:
        done: asyncio.Future[Published] = asyncio.get_running_loop().create_future()
        message = Post("#lobby", sender, sender, "hi", False, client_id, 1)
        broker.publish(message, done.set_result)  # type: ignore[arg-type]
        return await done

    try:
        first = await post("victim", "v-1")
        for n in range(200):  # 200 senders, 10 ids each: far more than the 64 held
            for i in range(10):
                await post(f"sender{n}", f"s-{i}")
        assert broker.ids_in_memory() <= 64
        retry = await post("victim", "v-1")
        assert not retry.new and retry.message.seq == first.message.seq
        assert (await post("sender0", "s-3")).message.seq == 2 + 3  # read back as well
    finally:
        await broker.stop()


class _Handler:
    def __getattr__(self, name: str) -> object:  # a BrokerHandler that does nothing
        return lambda *args: None
