"""The server killed with SIGKILL mid-stream and restarted on the same database loses nothing."""

from __future__ import annotations

import asyncio
import signal
import socket
import sqlite3
from pathlib import Path

from tests.server_process import NO_FLOOD_CONTROL, ServerProcess, start_server_process
from tuichat.client import Backoff, ChatClient, Disconnected
from tuichat.protocol import Ack, Message

CLIENTS = 3
PER_CLIENT = 150


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_sigkill_mid_stream_loses_no_acknowledged_message(tmp_path: Path) -> None:
    db = tmp_path / "history.sqlite3"
    port = free_port()
    args = ("--port", str(port), "--db", str(db), "--heartbeat-interval", "0.5", *NO_FLOOD_CONTROL)

    async def start() -> ServerProcess:
        return await start_server_process(*args)

    server = await start()
    clients = [
        await ChatClient.connect(
            f"user{i}",
            "127.0.0.1",
            port,
            reconnect=True,
            backoff=Backoff(first=0.05, cap=0.5),
            heartbeat=0.5,
        )
        for i in range(CLIENTS)
    ]
    total = CLIENTS * PER_CLIENT
    acks: list[tuple[Ack, str]] = []
    seen: dict[str, list[Message]] = {c.name: [] for c in clients}

    a_third_acked = asyncio.Event()

    async def talk(client: ChatClient) -> None:
        for i in range(PER_CLIENT):
            text = f"{client.name} says {i}"
            acks.append((await client.send("#lobby", text), text))
            if len(acks) >= total // 3:
                a_third_acked.set()

    async def listen(client: ChatClient) -> None:
        mine = seen[client.name]
        while not mine or mine[-1].seq < total:
            event = await client.next_event()
            assert not isinstance(event, Disconnected), event
            if isinstance(event, Message):
                mine.append(event)

    listeners = [asyncio.create_task(listen(c)) for c in clients]
    talkers = [asyncio.create_task(talk(c)) for c in clients]
    async with asyncio.timeout(60):
        await a_third_acked.wait()
        server.process.send_signal(signal.SIGKILL)
        await server.process.wait()
        acked_before_kill = len(acks)
        server = await start()
        await asyncio.gather(*talkers)
        await asyncio.gather(*listeners)
    assert acked_before_kill < total  # the kill really was mid-stream

    # every client ends with the same complete, duplicate-free sequence
    reference = [(m.seq, m.sender, m.text) for m in seen[clients[0].name]]
    assert [seq for seq, _, _ in reference] == list(range(1, total + 1))
    for client in clients:
        assert [(m.seq, m.sender, m.text) for m in seen[client.name]] == reference

    for client in clients:
        await client.close()
    server.process.send_signal(signal.SIGTERM)
    assert await server.process.wait() == 0

    # every acknowledged message is in the history, once, where its ack said (the file is
    # the server's alone while it runs)
    rows = sqlite3.connect(db).execute("SELECT seq, text FROM messages WHERE room = '#lobby'")
    stored = dict(rows.fetchall())
    assert len(stored) == total
    for ack, text in acks:
        assert stored[ack.seq] == text
    assert sorted(stored.values()) == sorted(text for _, text in acks)


async def test_sigterm_flushes_and_clients_resume_after_the_restart(tmp_path: Path) -> None:
    db = tmp_path / "history.sqlite3"
    port = free_port()
    args = ("--port", str(port), "--db", str(db))
    server = await start_server_process(*args)
    options = {"reconnect": True, "backoff": Backoff(first=0.05, cap=0.3)}
    ali = await ChatClient.connect("ali", "127.0.0.1", port, **options)  # type: ignore[arg-type]
    bob = await ChatClient.connect("bob", "127.0.0.1", port, **options)  # type: ignore[arg-type]
    await ali.send("#lobby", "before the restart")
    server.process.send_signal(signal.SIGTERM)
    assert await server.process.wait() == 0
    while_down = asyncio.create_task(ali.send("#lobby", "sent while the server was down"))
    server = await start_server_process(*args)
    ack = await asyncio.wait_for(while_down, 20)
    assert ack.seq == 2
    texts = []
    async with asyncio.timeout(20):
        while len(texts) < 2:
            event = await bob.next_event()
            if isinstance(event, Message):
                texts.append(event.text)
    assert texts == ["before the restart", "sent while the server was down"]
    await ali.close()
    await bob.close()
    server.process.send_signal(signal.SIGTERM)
    assert await server.process.wait() == 0
