"""A bounded fuzz of a live server over loopback: malformed input ends connections, not the server.

Thousands of deterministic inputs (seed `SEED`) — random bytes, random msgpack values,
and valid frames that are bit-flipped, truncated, mis-sized or given fields of the
wrong type — are sent over many short connections. Everything the server answers
must be well-formed, a fatal error must be its last frame, and afterwards the server
must still serve a normal client, with no leftover users or connection counts, and
with its memory within a bound. (The decoder and the state machine alone are covered
by property tests in test_codec.py and test_connection.py.)
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import logging
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import events_until, expect
from tests.server_process import NO_FLOOD_CONTROL, ServerProcess, start_server_process
from tuichat.bench.fuzzing import HARD, SOFT, fuzz_input
from tuichat.bench.servers import resident_bytes
from tuichat.client import ChatClient, Disconnected
from tuichat.protocol import (
    Challenge,
    Codec,
    Connection,
    Error,
    ErrorCode,
    Event,
    Hello,
    History,
    HistoryPage,
    Message,
    Ping,
    Pong,
    Position,
    ProtocolError,
    Role,
    Welcome,
    encode_frame,
)
from tuichat.server import ChatServer, ServerConfig
from tuichat.server.config import RateLimits

SEED = 1234
FUZZ_INPUTS = 4000
"""Inputs sent in all: each a frame, a broken frame, or a run of raw bytes."""
WORKERS = 8
"""Connections open at once."""
MAX_CONNECTIONS_PER_IP = 24
RSS_GROWTH_LIMIT = 16 * 1024 * 1024

BARRIER = Ping(data=-424242, ref=-424242)
BARRIER_PONG = Pong(data=-424242, ref=-424242)
KNOWN_CODES = {str(code) for code in ErrorCode}


# --- inputs ---------------------------------------------------------------------------------


@dataclass
class Visit:
    """One short connection: maybe a hello (answered before anything else), then the inputs."""

    number: int
    hello: bool
    writes: list[bytes]
    intact: bool
    """Whether the stream is still well-framed after the inputs (no hard input)."""


def plan(seed: int, total: int) -> list[Visit]:
    """Split `total` inputs into visits: some soft inputs, then maybe one hard one to end it."""
    rng = random.Random(seed)
    visits: list[Visit] = []
    made = 0
    while made < total:
        kinds = [rng.choice(SOFT) for _ in range(rng.randint(0, 15))]
        if rng.random() < 0.6 or not kinds:
            kinds.append(rng.choice(HARD))
        kinds = kinds[: total - made]
        intact = not set(kinds) & set(HARD)
        inputs = [fuzz_input(rng, kind) for kind in kinds]
        made += len(inputs)
        writes: list[bytes] = []  # several inputs per write, or one write for all
        while inputs:
            take = rng.randint(1, len(inputs))
            writes.append(b"".join(inputs[:take]))
            del inputs[:take]
        visits.append(Visit(len(visits), rng.random() < 0.7, writes, intact))
    return visits


# --- the server and the visits --------------------------------------------------------------


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[ServerProcess]:
    process = await start_server_process(
        "--db", str(tmp_path / "history.sqlite3"),
        "--max-connections-per-ip", str(MAX_CONNECTIONS_PER_IP),
        "--hello-timeout", "2", "--frame-timeout", "2",
        *NO_FLOOD_CONTROL,
    )  # fmt: skip

    async def read_log() -> None:  # as it comes: a full pipe would block the server
        assert process.process.stderr is not None
        while line := await process.process.stderr.readline():
            process.log.append(line)

    reading = asyncio.create_task(read_log())
    yield process
    if process.process.returncode is None:
        process.process.kill()
        await process.process.wait()
    await reading


async def visit(host: str, port: int, visit: Visit) -> list[Event]:
    """Run one connection: send its inputs, then our end of the stream; read to the end."""
    reader, writer = await asyncio.open_connection(host, port)
    conn = Connection(Role.CLIENT)
    frames: list[Event] = []

    async def read() -> bool:
        try:
            data = await reader.read(65536)
        except OSError:  # reset, or a broken pipe on our side: the end either way
            return False
        if not data:
            return False
        try:
            frames.extend(conn.receive_data(data))
        except ProtocolError as exc:
            raise AssertionError(
                f"visit {visit.number}: the server sent a bad frame: {exc}"
            ) from exc
        return True

    try:
        async with asyncio.timeout(10):
            if visit.hello:
                writer.write(encode_frame(Codec.encode(Hello(name=f"fz{visit.number}", ref=0))))
                while not [f for f in frames if getattr(f, "ref", None) == 0]:
                    assert await read(), f"visit {visit.number}: closed before the welcome"
                assert isinstance(frames[0], Challenge), frames  # always the first frame
                assert isinstance(frames[1], Welcome), frames
            with contextlib.suppress(OSError):  # the server may have closed already
                for data in visit.writes:
                    writer.write(data)
                if visit.intact:  # let the server answer before we end the stream
                    writer.write(encode_frame(Codec.encode(BARRIER)))
                    while BARRIER_PONG not in frames and await read():
                        pass
                writer.write_eof()
            while await read():
                pass
    finally:
        writer.close()
    return frames


def check(visit: Visit, frames: list[Event]) -> None:
    """What the server said is well-formed; a fatal error, if any, is the last thing it said."""
    errors = [f for f in frames if isinstance(f, Error)]
    unknown = {e.code for e in errors} - KNOWN_CODES
    assert not unknown, f"visit {visit.number}: unknown error codes {unknown}"
    fatal = [i for i, f in enumerate(frames) if isinstance(f, Error) and f.fatal]
    assert fatal in ([], [len(frames) - 1]), f"visit {visit.number}: {frames}"


async def test_a_live_fuzz_ends_connections_not_the_server(server: ServerProcess) -> None:
    host, port = server.host, server.port
    watch = await ChatClient.connect("watch", host, port)
    await watch.send("#lobby", "warming up")
    before = resident_bytes(server.process.pid)

    visits = plan(SEED, FUZZ_INPUTS)
    queue: asyncio.Queue[Visit] = asyncio.Queue()
    for item in visits:
        queue.put_nowait(item)

    async def worker() -> None:
        while not queue.empty():
            item = queue.get_nowait()
            check(item, await visit(host, port, item))

    await asyncio.gather(*(worker() for _ in range(WORKERS)))
    assert server.process.returncode is None, "the server died"
    growth = resident_bytes(server.process.pid) - before

    # a normal client still chats, and nobody from the fuzz is left behind
    after = await ChatClient.connect("after", host, port)
    ack = await after.send("#lobby", "anyone?")
    message = await expect(after, Message, text="anyone?")
    assert (message.sender, message.seq) == ("after", ack.seq)
    seen = await events_until(watch, Message, text="anyone?")  # all the while, `watch` was fine
    assert not [e for e in seen if isinstance(e, Error | Disconnected)], seen
    assert await after.who() == ("after", "watch")
    # ... and no connection is still counted against 127.0.0.1
    spare = [await asyncio.open_connection(host, port) for _ in range(MAX_CONNECTIONS_PER_IP - 3)]
    probe = await ChatClient.connect("probe", host, port)  # the last one allowed
    await probe.close()
    for _, writer in spare:
        writer.close()
    await watch.close()
    await after.close()

    problems = [
        line
        for line in server.log
        if b"Traceback" in line or b" ERROR " in line or b" CRITICAL " in line
    ]
    assert not problems, b"".join(problems).decode()
    assert growth < RSS_GROWTH_LIMIT, (
        f"the server grew by {growth / 2**20:.1f} MiB over {FUZZ_INPUTS} inputs"
    )
    print(
        f"{FUZZ_INPUTS} fuzz inputs over {len(visits)} connections (seed {SEED}); "
        f"server memory grew by {growth / 2**20:.1f} MiB"
    )


# --- what the fuzz cannot reach: extreme integers behind a valid resume token ---------------

BIG = 2**64 - 1
"""The largest msgpack integer (uint64); every integer field must take it (PROTOCOL.md §3.7)."""
SMALL = -(2**63)


@pytest.mark.parametrize(
    "hello_fields, request_",
    [
        pytest.param({"private_after": SMALL}, None, id="private_after-int64-min"),
        pytest.param({"private_after": BIG}, None, id="private_after-uint64-max"),
        pytest.param({"positions": "extreme"}, None, id="position-seq-uint64-max"),
        pytest.param({}, History(room="#lobby", before=BIG, limit=BIG), id="history-uint64-max"),
        pytest.param({}, History(room="#lobby", before=SMALL, limit=SMALL), id="history-int64-min"),
    ],
)
async def test_extreme_integers_in_a_resuming_session_are_handled(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    hello_fields: dict[str, Any],
    request_: History | None,
) -> None:
    server = ChatServer(
        ServerConfig(
            host="127.0.0.1", port=0, db=str(tmp_path / "h.sqlite3"), rate=RateLimits.unlimited()
        )
    )
    await server.start()
    try:
        ali = await ChatClient.connect("ali", *server.address)
        await ali.send("#lobby", "before the drop")
        await ali.private("ali", "a note to self")
        assert ali.welcome is not None
        token, (lobby,) = ali.welcome.token, ali.welcome.positions
        await ali.close()
        if hello_fields.get("positions") == "extreme":
            hello_fields = {"positions": (Position("#lobby", lobby.epoch, BIG),)}
        reader, writer = await asyncio.open_connection(*server.address)
        conn = Connection(Role.CLIENT)
        frames: list[Event] = []

        async def read_until(ref: int) -> None:
            async with asyncio.timeout(5):
                while not [f for f in frames if getattr(f, "ref", None) == ref]:
                    data = await reader.read(65536)
                    assert data, frames
                    frames.extend(conn.receive_data(data))

        with caplog.at_level(logging.INFO):
            hello = Hello(name="ali", token=token, ref=1, **hello_fields)
            writer.write(encode_frame(Codec.encode(hello)))
            await read_until(1)
            if request_ is not None:
                writer.write(encode_frame(Codec.encode(dataclasses.replace(request_, ref=2))))
            # the history reader is one thread: this page comes after every query above
            writer.write(encode_frame(Codec.encode(History(room="#lobby", ref=3))))
            await read_until(3)
            gc.collect()
        writer.close()
        replies = {getattr(f, "ref", None): f for f in frames}
        assert isinstance(replies[1], Welcome)
        assert not [f for f in frames if isinstance(f, Error)], frames
        assert isinstance(replies[3], HistoryPage)
        assert [m.text for m in replies[3].messages] == ["before the drop"]
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert not errors, [r.getMessage() for r in errors]
    finally:
        await server.stop()
