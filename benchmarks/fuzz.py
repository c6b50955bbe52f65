"""A live fuzz of a real `tuichat-server`: a million hostile frames, and it must take them all.

Starts `tuichat-server` as a subprocess (127.0.0.1, a free port, SQLite history in a
temporary folder, flood control lifted, every connection from 127.0.0.1 allowed) and
runs many short connections against it, `--connections` at a time. Each connection
(a "visit") mostly says hello first, then sends a few to a few hundred inputs, many
per write: valid requests, random msgpack values, valid messages with fields of the
wrong type (the generators of tests/test_live_fuzz.py, in `tuichat.bench.fuzzing`);
well-formed but hostile requests (500-message history pages, joins of many rooms,
privates to nobody, texts at and over every limit, 64 KiB frames, deep nesting,
thousands of keys, resumes of thousands of rooms, non-minimal and duplicated msgpack);
and then often one input that breaks the stream (random bytes, bit flips,
truncations, wrong lengths, invalid UTF-8, ext values, bytes after `bye`, ...). Some
visits say nothing, stall in the middle of a frame, reset the connection or hang up
at once. Every visit's inputs come from `--seed` and its number alone (except which
epochs and seqs a resume names: those of rooms seen so far).

Every answer is read and decoded with the protocol's own client-side state machine.
A visit fails if a frame does not decode or is not a valid server message, if an
error code is unknown, its `fatal` flag is wrong or it is one this setup rules out
(`unavailable` with no Redis, `rate_limited`/`flood` with flood control off, the
connection limits), if anything follows a fatal error or the server's `bye`, if its
`hello` is not welcomed, if an intact stream's closing `ping` gets no `pong`, if an
input the server must refuse with a fatal error is answered with silence, or if the
server does not close within a minute. A connection the server ends without its last
word is accepted only when the server's log explains it: a slow reader it dropped
(by design without a frame), or a fatal error or `bye` it logged, lost because the
connection was reset (the server closed with our bytes unread, so its kernel reset
the connection and discarded what it had not sent yet). Throughout, the server's
resident memory (VmRSS) and CPU time are sampled. At the end the server must be
alive; a normal client (connected all along, and a new one) must still chat; no
connection may still be counted against 127.0.0.1; its open files must be back to
what they were; its log must hold no "Traceback", no ERROR or CRITICAL line (the
server logs at ERROR only when it cannot start or cannot store history, and asyncio
logs unhandled exceptions at ERROR: here, each is a bug) and no WARNING that the
store failed (with a local SQLite file, a bug too); and its peak memory (VmHWM)
must stay under `--max-rss-mib`.

The default bound, 300 MiB: the idle server takes about 45 MiB. What it may
legitimately hold is bounded by its limits: per connection a frame being read
(64 KiB) and at most `max_pending_write` (1 MiB) waiting to be written, so 64
connections can pin about 70 MiB; plus what grows with the fuzz by design (a resume
token hash per name ever seen, the last seq of every room that has messages, the
retry ids) and SQLite's page cache, a few tens of MiB for a million frames. That is
about 150 MiB at worst; 300 MiB leaves twice that, and a leak of even 300 bytes a
frame (300 MB over a million frames) still crosses it.

    python benchmarks/fuzz.py                                 # 1,000,000 frames, seed 1
    python benchmarks/fuzz.py --frames 100000 --seed 7 --connections 16
    python benchmarks/fuzz.py --replay FILE                   # resend saved visits, one by one

On FAIL the temporary folder is kept: the server's log, and `failures.jsonl` with
every failing visit's bytes as written (hex, one write per item), the reason, and the
frames it received; when the server logs a traceback or dies, the visits in flight
then are saved too. `--replay` sends those visits again, one at a time, to a fresh
server.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from tuichat.bench.fuzzing import (
    ENDERS,
    HARD,
    HOSTILE,
    SOFT,
    Scene,
    ender_input,
    fuzz_input,
    hostile_input,
)
from tuichat.client import ChatClient, Disconnected
from tuichat.protocol import (
    FATAL_CODES,
    Bye,
    Codec,
    Connection,
    Error,
    ErrorCode,
    Event,
    Hello,
    InvalidMessage,
    Message,
    Ping,
    Pong,
    ProtocolError,
    Role,
    RoomState,
    Welcome,
    encode_frame,
)

KNOWN_CODES = {str(code) for code in ErrorCode}
FATAL = {str(code) for code in FATAL_CODES}
UNEXPECTED = {"unavailable", "rate_limited", "flood", "server_full", "too_many_connections"}
"""Codes this setup rules out: the history is a local SQLite file (no Redis to be away),
flood control is lifted, and the connection limits are far above what the fuzz opens."""
BARRIER_DATA = -424242
BARRIER = encode_frame(Codec.encode(Ping(data=BARRIER_DATA, ref=BARRIER_DATA)))
HELLO_TIMEOUT, FRAME_TIMEOUT = 3.0, 2.0
"""The server's timeouts here: short, so that visits that stall or say nothing end soon."""
VISIT_TIMEOUT = 60.0
"""A visit's end must come within this (the server closes, or answers our end of stream)."""
NO_FLOOD_CONTROL = [
    "--messages-per-second", "1e12", "--message-burst", "1000000000",
    "--text-bytes-per-second", "1e12", "--text-byte-burst", "1000000000000",
    "--connections-per-second", "1e12", "--connection-burst", "1000000000",
    "--private-messages-per-second", "1e12", "--private-message-burst", "1000000000",
    "--registrations-per-hour", "1000000000", "--new-rooms-per-hour", "1000000000",
]  # fmt: skip
"""Flood limits lifted (the fuzz looks for crashes, not for limits: tests/abuse does those)."""
HOSTILE_WEIGHTS = {
    "history": 4, "rooms": 1, "private": 3, "big-text": 2, "big-frame": 0.2, "nesting": 2,
    "width": 0.4, "resume": 1, "hello": 3, "lookup": 3, "encoding": 6, "duplicate-keys": 4,
}  # fmt: skip
assert set(HOSTILE_WEIGHTS) == set(HOSTILE)
STYLES = {"eof": 0.925, "rst": 0.03, "close": 0.02, "drop": 0.02, "silent": 0.0025, "stall": 0.0025}
"""How a visit ends: our end of stream (then read to the end), a reset, a close without
reading, a hang-up right after connecting, no byte at all, or a frame left unfinished."""


# --- the server -----------------------------------------------------------------------------


class Server:
    """`tuichat-server` in a subprocess, logging to a file; its memory, CPU and open files."""

    def __init__(self, workdir: Path, max_per_ip: int, log_level: str) -> None:
        self.log_path = workdir / "server.log"
        script = Path(sys.executable).with_name("tuichat-server")
        command = [str(script)] if script.exists() else [sys.executable, "-m", "tuichat.server"]
        command += [
            "--host", "127.0.0.1", "--port", "0", "--db", str(workdir / "history.sqlite3"),
            "--max-connections-per-ip", str(max_per_ip), "--log-level", log_level,
            "--max-connections-per-prefix", str(max_per_ip),
            "--hello-timeout", str(HELLO_TIMEOUT), "--frame-timeout", str(FRAME_TIMEOUT),
            *NO_FLOOD_CONTROL,
        ]  # fmt: skip
        self.command = command
        self._log = open(self.log_path, "wb")  # noqa: SIM115 (the process holds it)
        self.process = subprocess.Popen(
            command, stdout=self._log, stderr=self._log, stdin=subprocess.DEVNULL, cwd=workdir
        )
        self.port = 0
        self.pid = self.process.pid
        self.ticks = os.sysconf("SC_CLK_TCK")

    def wait_listening(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if match := re.search(rb"listening on [\d.]+:(\d+)", self.log_path.read_bytes()):
                self.port = int(match.group(1))
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"the server did not start: {self.log_path.read_text()[-2000:]}")

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def status(self, key: str) -> int:
        """A figure of /proc/PID/status in bytes (VmRSS, VmHWM); 0 once the process is gone."""
        try:
            with open(f"/proc/{self.pid}/status") as status:
                for line in status:
                    if line.startswith(key + ":"):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
        return 0

    def cpu_seconds(self) -> float:
        """User and system time of every thread, ended ones included (/proc/PID/stat)."""
        try:
            with open(f"/proc/{self.pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / self.ticks

    def open_files(self) -> int:
        try:
            return len(os.listdir(f"/proc/{self.pid}/fd"))
        except OSError:
            return -1

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL after 10 s; return the exit status."""
        if self.alive:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode


LEVEL = re.compile(rb"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ (DEBUG|INFO|WARNING|ERROR|CRITICAL) (.*)")
PEER = rb"(\d+\.\d+\.\d+\.\d+:\d+)\)?: "
SLOW = re.compile(PEER + rb"(?:reads too slowly|far behind|the server holds)")
BUG_WARNINGS = [b"cannot store", b"cannot replay"]
"""WARNING lines that mean the store failed; with a local SQLite file on a sound disk
that is a bug (with Redis it could be Redis being away)."""
FATAL_LOGGED = re.compile(PEER + rb"closing after protocol error: (\w+)")
QUIT_LOGGED = re.compile(rb"^([fr]z\d+) left \(quit\)")
INFO_KINDS = [
    (b" joined from ", "hello"), (b"closing after protocol error", "protocol error"),
    (b" joined #", "join"), (b" left #", "part"), (b" left (", "left"),
    (b"reads too slowly", "slow reader"), (b"far behind", "slow reader"),
    (b"holds too much unsent", "server backlog"), (b"no answer for", "heartbeat timeout"),
    (b"is now registered", "registered"), (b"is back from another", "replaced"),
]  # fmt: skip


@dataclass
class LogWatch:
    """Reads the server's log as it grows: counts by level, problems, slow-reader drops."""

    path: Path
    offset: int = 0
    partial: bytes = b""
    levels: collections.Counter[str] = field(default_factory=collections.Counter)
    info: collections.Counter[str] = field(default_factory=collections.Counter)
    other_info: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    """Lines with "Traceback" (and what follows), ERROR or CRITICAL lines, and WARNING lines
    saying the store failed."""
    unlevelled: int = 0
    slow_peers: dict[str, list[bytes]] = field(default_factory=dict)
    """Peers dropped as slow readers: when (the log's timestamps)."""
    fatal_peers: dict[str, list[tuple[bytes, str]]] = field(default_factory=dict)
    """Peers closed after a fatal error: when, and the code."""
    quits: dict[str, list[bytes]] = field(default_factory=dict)
    """The fuzz's own names whose `bye` the server carried out: when."""
    lines: int = 0

    def logged(self, table: dict[str, list[Any]], peer: str, since: float, until: float) -> Any:
        """The entry of `table` for `peer` logged between `since` and `until`, or None."""
        for entry in table.get(peer, []):
            stamp = entry[0] if isinstance(entry, tuple) else entry
            when = datetime.strptime(stamp.decode(), "%Y-%m-%d %H:%M:%S,%f").timestamp()
            if since - 1 <= when <= until + 1:
                return entry
        return None

    def poll(self) -> int:
        """Read what was added; return how many problem lines it held."""
        with open(self.path, "rb") as log:
            log.seek(self.offset)
            data = log.read()
        self.offset += len(data)
        data = self.partial + data
        *lines, self.partial = data.split(b"\n")
        found = len(self.problems)
        follow = 0
        for line in lines:
            self.lines += 1
            match = LEVEL.match(line)
            if match is None:
                self.unlevelled += 1
                if b"Traceback" in line or follow:
                    self.problems.append(line.decode(errors="replace"))
                    follow = max(follow - 1, 0) if b"Traceback" not in line else 40
                continue
            level, message = match.group(1).decode(), match.group(2)
            self.levels[level] += 1
            follow = 0
            if level in ("ERROR", "CRITICAL") or b"Traceback" in line:
                self.problems.append(line.decode(errors="replace"))
                follow = 40
            elif level == "WARNING" and any(bug in message for bug in BUG_WARNINGS):
                self.problems.append(line.decode(errors="replace"))
            elif level == "WARNING" and len(self.warnings) < 50:
                self.warnings.append(line.decode(errors="replace"))
            elif level == "INFO":
                kind = next((k for pattern, k in INFO_KINDS if pattern in message), "")
                if kind:
                    self.info[kind] += 1
                else:
                    self.info["other"] += 1
                    if len(self.other_info) < 10:
                        self.other_info.append(message.decode(errors="replace")[:160])
            if level == "INFO" and (slow := SLOW.search(message)):
                self.slow_peers.setdefault(slow.group(1).decode(), []).append(line[:23])
            elif level == "INFO" and (fatal := FATAL_LOGGED.search(message)):
                peer, code = fatal.group(1).decode(), fatal.group(2).decode()
                self.fatal_peers.setdefault(peer, []).append((line[:23], code))
            elif level == "INFO" and (quit := QUIT_LOGGED.match(message)):
                self.quits.setdefault(quit.group(1).decode(), []).append(line[:23])
        return len(self.problems) - found


# --- the visits -----------------------------------------------------------------------------


@dataclass
class Visit:
    """One connection: what it sends, how it ends, and what came back."""

    number: int
    style: str
    name: str
    """The name of its first `hello` ("" if it sends none of its own first)."""
    writes: list[tuple[bytes, int]]
    """The bytes of each write after the hello, and how many inputs it completes."""
    intact: bool
    """No input broke the stream: a closing `ping` must get its `pong`."""
    ender: str
    """The kind of the last input if it breaks the stream ("" if none)."""
    must_say_why: bool
    """The last input must be answered with a fatal error (or a `bye`), never silence."""
    order: list[str]
    """The kind of each input, in order."""
    planned: int
    split: bool
    """The stream is cut at random bytes: writes end inside frames."""
    written: int = 0
    inputs_written: int = 0
    barrier_written: bool = False
    sent: list[bytes] = field(default_factory=list)
    """Every write, in order (kept until the visit has been checked)."""
    frames: collections.deque[Event] = field(default_factory=lambda: collections.deque(maxlen=200))
    """The last frames received."""
    count: int = 0
    """Frames received."""
    received: int = 0
    port: int = 0
    started: float = 0.0
    finished: float = 0.0
    ended: str = ""
    reset: bool = False
    """The server's side reset the connection."""
    problems: list[str] = field(default_factory=list)
    log: list[str] = field(default_factory=list)
    """The server's log lines about this visit (for failed visits)."""


def weighted(rng: random.Random, weights: dict[str, float]) -> str:
    return rng.choices(list(weights), list(weights.values()))[0]


def make_visit(seed: int, number: int, scene: Scene, most: int) -> Visit:
    """The visit `number` of run `seed` (at most `most` frames), from those two alone.

    `scene.positions` (rooms seen so far) only picks the rooms of a resume, from a
    random generator of its own, so the rest of the visit does not depend on it.
    """
    rng = random.Random(f"tuichat-fuzz/{seed}/{number}")
    style = weighted(rng, STYLES)
    prelude = rng.random() < 0.75 and most > 1
    scene.name = f"fz{number}" if prelude else ""
    order: list[str] = []
    inputs: list[bytes] = []

    def add(frames: list[bytes], kind: str) -> None:
        inputs.extend(frames)
        order.extend([kind] * len(frames))

    if not prelude and rng.random() < 0.5:  # a hello that resumes rooms, as the first frame
        add(hostile_input(rng, "resume", scene), "hostile:resume")
    size = rng.choice([rng.randint(0, 10), rng.randint(0, 10), rng.randint(11, 50),
                       rng.randint(11, 50), rng.randint(51, 250)])  # fmt: skip
    while len(inputs) < size:
        if rng.random() < 0.7:
            kind = rng.choice(SOFT)
            add([fuzz_input(rng, kind)], kind)
        else:
            kind = weighted(rng, HOSTILE_WEIGHTS)
            add(hostile_input(rng, kind, scene), "hostile:" + kind)
    ender, must_say_why, end = "", False, rng.random()
    if end < 0.3:
        ender = rng.choice(HARD)
        last = fuzz_input(rng, ender)
    elif end < 0.55:
        ender, must_say_why = rng.choice(ENDERS), True
        last = ender_input(rng, ender)
    budget = most - prelude
    if len(inputs) + bool(ender) + (not ender) > budget:  # the end of the run: cut it short
        del inputs[max(0, budget - 1) :]
        del order[len(inputs) :]
        ender, must_say_why = "", False
    if ender:
        add([last], ("hard:" if not must_say_why else "ender:") + ender)
    writes, split = chunked(rng, inputs)
    planned = prelude + len(inputs) + (not ender)
    return Visit(
        number, style, scene.name, writes, not ender, ender, must_say_why, order, planned, split
    )


def chunked(rng: random.Random, inputs: list[bytes]) -> tuple[list[tuple[bytes, int]], bool]:
    """Group inputs into writes: many inputs per write, or the stream cut at random bytes."""
    if not inputs:
        return [], False
    if rng.random() < 0.1:  # frames split across writes
        stream = b"".join(inputs)
        ends: list[int] = []
        total = 0
        for data in inputs:
            total += len(data)
            ends.append(total)
        cuts = sorted({rng.randint(1, len(stream)) for _ in range(rng.randint(1, 12))} | {total})
        writes, start, done = [], 0, 0
        for cut in cuts:
            completed = sum(1 for end in ends[done:] if end <= cut)
            done += completed
            writes.append((stream[start:cut], completed))
            start = cut
        return writes, True
    writes = []
    while inputs:
        take = rng.randint(1, 64)
        writes.append((b"".join(inputs[:take]), len(inputs[:take])))
        inputs = inputs[take:]
    return writes, False


class Reader:
    """Reads and decodes everything the server sends on one connection, as it comes.

    Plain sockets, not transports: a write that fails (the server has closed) must not
    throw away what the server sent before it closed, such as its fatal error.
    """

    def __init__(self, visit: Visit, tally: Tally, sock: socket.socket) -> None:
        self.visit = visit
        self.tally = tally
        self.sock = sock
        self.conn = Connection(Role.CLIENT)
        self.welcomed = asyncio.Event()
        self.barrier = asyncio.Event()
        self.closed = asyncio.Event()
        self.terminal: str = ""
        """The fatal error code, or "bye", once the server said it ends the connection."""
        self.broken = False
        self.reset = False
        """The connection was reset (seen by a read or a write: the first one gets the error)."""
        self.write_failed = False

    async def read(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while data := await loop.sock_recv(self.sock, 1 << 18):
                self.received(data)
        except OSError:  # reset
            self.reset = True
        finally:
            self.closed.set()

    async def write(self, data: bytes) -> bool:
        """Write all of `data` unless the connection failed; return whether it was written."""
        if self.write_failed or self.closed.is_set():
            return False
        self.visit.sent.append(data)
        try:
            await asyncio.get_running_loop().sock_sendall(self.sock, data)
        except OSError as exc:
            self.write_failed = True
            self.reset = self.reset or isinstance(exc, ConnectionResetError | BrokenPipeError)
            return False
        return True

    def received(self, data: bytes) -> None:
        visit = self.visit
        visit.received += len(data)
        if self.broken:
            return
        try:
            events = self.conn.receive_data(data)
        except ProtocolError as exc:
            self.broken = True
            visit.problems.append(f"the server sent a bad frame: {exc}")
            return
        for event in events:
            self.on_frame(event)

    def on_frame(self, event: Event) -> None:
        visit = self.visit
        visit.frames.append(event)
        visit.count += 1
        if self.terminal:
            visit.problems.append(f"a frame after the server's {self.terminal}: {event!r:.300}")
        if isinstance(event, InvalidMessage):
            self.tally.answers["(invalid)"] += 1
            visit.problems.append(f"not a valid server message: {event.code}: {event.detail}")
            return
        self.tally.answers[event.TYPE] += 1
        if isinstance(event, Error):
            self.tally.codes[event.code] += 1
            if event.code not in KNOWN_CODES:
                visit.problems.append(f"unknown error code {event.code!r}")
            if event.fatal != (event.code in FATAL):
                visit.problems.append(f"error {event.code} has fatal={event.fatal}")
            if event.code in UNEXPECTED:
                visit.problems.append(f"error {event.code}: {event.message} (ref {event.ref})")
            if event.fatal:
                self.terminal = event.code
        elif isinstance(event, Bye):
            self.terminal = "bye"
        elif isinstance(event, Pong) and event.ref == BARRIER_DATA and event.data == BARRIER_DATA:
            self.barrier.set()
        elif isinstance(event, Welcome) and event.positions:
            lobby = event.positions[0]
            self.tally.learn(lobby.room, lobby.epoch, lobby.seq)
        elif isinstance(event, RoomState):
            self.tally.learn(event.room, event.epoch, event.seq)
        if not self.welcomed.is_set() and getattr(event, "ref", None) == 0 and visit.name:
            if not isinstance(event, Welcome):
                visit.problems.append(f"the hello got {event!r:.300}, not a welcome")
            self.welcomed.set()


@dataclass
class Tally:
    """What all the visits did together."""

    frames_target: int
    seed: int
    connections: int
    workdir: Path
    written: int = 0
    pending: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    visits: int = 0
    next_number: int = 0
    kinds: collections.Counter[str] = field(default_factory=collections.Counter)
    answers: collections.Counter[str] = field(default_factory=collections.Counter)
    codes: collections.Counter[str] = field(default_factory=collections.Counter)
    endings: collections.Counter[str] = field(default_factory=collections.Counter)
    styles: collections.Counter[str] = field(default_factory=collections.Counter)
    failed: list[Visit] = field(default_factory=list)
    """Failed visits kept for the report: the first few of each kind of problem."""
    failures: int = 0
    failure_kinds: collections.Counter[str] = field(default_factory=collections.Counter)
    silent: list[Visit] = field(default_factory=list)
    positions: dict[str, tuple[int, int]] = field(default_factory=dict)
    in_flight: dict[int, Visit] = field(default_factory=dict)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def fail(self, visit: Visit) -> None:
        self.failures += 1
        kinds = {problem_kind(problem) for problem in visit.problems}
        fresh = any(self.failure_kinds[kind] < 5 for kind in kinds)
        self.failure_kinds.update(kinds)
        if fresh and len(self.failed) < 100:
            self.failed.append(visit)

    def learn(self, room: str, epoch: int, seq: int) -> None:
        if len(self.positions) < 200 or room in self.positions:
            self.positions[room] = (epoch, seq)

    def next_visit(self) -> Visit | None:
        room = self.frames_target - self.written - self.pending
        if room <= 0:
            return None
        number = self.next_number
        self.next_number += 1
        peers = [f"fz{n}" for n in range(max(0, number - self.connections), number)] + ["watch"]
        scene = Scene(number, "", peers, self.positions)
        visit = make_visit(self.seed, number, scene, room)
        self.pending += visit.planned
        self.in_flight[number] = visit
        return visit

    def done(self, visit: Visit) -> None:
        self.pending -= visit.planned
        self.written += visit.written
        self.visits += 1
        self.kinds.update(visit.order[: visit.inputs_written])
        self.kinds["hello (first frame)"] += bool(visit.name and visit.written)
        self.kinds["ping (closing)"] += visit.barrier_written
        self.styles[visit.style] += 1
        self.bytes_received += visit.received
        self.in_flight.pop(visit.number, None)
        if visit.problems:
            self.fail(visit)
        if not visit.problems and visit.ended != "silent":
            visit.frames.clear()
        if visit.ended != "silent" and not visit.problems:
            visit.sent = []
        self.changed.set()


async def run_visit(host: str, port: int, visit: Visit, tally: Tally) -> None:
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no waiting for delayed acks
    try:
        await loop.sock_connect(sock, (host, port))
    except OSError:
        sock.close()
        raise
    visit.port = sock.getsockname()[1]
    visit.started = time.time()
    reader = Reader(visit, tally, sock)
    reading = asyncio.create_task(reader.read())
    try:
        async with asyncio.timeout(VISIT_TIMEOUT):
            await visit_body(visit, reader)
    except TimeoutError:
        visit.problems.append(
            f"no end within {VISIT_TIMEOUT:.0f} s (terminal: {reader.terminal or 'none'}, "
            f"barrier: {reader.barrier.is_set()}, {visit.count} frames)"
        )
    finally:
        visit.finished = time.time()
        reading.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reading
        sock.close()
        tally.bytes_sent += sum(map(len, visit.sent))


async def visit_body(visit: Visit, reader: Reader) -> None:
    sock = reader.sock
    if visit.style == "drop":  # hang up at once
        visit.ended = "by us"
        return
    if visit.style == "silent":  # say nothing: the server must give up with hello_timeout
        await reader.closed.wait()
        visit.ended = reader.terminal or "silent"
        if reader.terminal != "hello_timeout":
            visit.problems.append(f"a silent client got {reader.terminal or 'no error'}")
        return
    if visit.name and await reader.write(encode_frame(Codec.encode(Hello(name=visit.name, ref=0)))):
        visit.written += 1  # its ref 0 marks the welcome
        await first(reader.welcomed, reader.closed)
        if not reader.welcomed.is_set():
            visit.problems.append(f"closed before the welcome ({reader.terminal or 'no error'})")
    if visit.style == "stall":  # half a frame header: the server must give up with frame_timeout
        await reader.write(b"\x00\x00")
        await reader.closed.wait()
        visit.ended = reader.terminal or "silent"
        if reader.terminal not in ("frame_timeout", "hello_timeout"):
            visit.problems.append(f"a stalled frame got {reader.terminal or 'no error'}")
        return
    for data, frames in visit.writes:
        if not await reader.write(data):
            break
        visit.written += frames
        visit.inputs_written += frames
        if visit.split:
            await asyncio.sleep(0.001)  # separate segments
    if visit.intact and await reader.write(BARRIER):
        visit.written += 1
        visit.barrier_written = True
        await first(reader.barrier, reader.closed)
    if visit.style == "rst":
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        visit.ended = "by us"
        return  # the socket is closed by run_visit
    if visit.style == "close":
        visit.ended = "by us"
        return
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_WR)
    await reader.closed.wait()
    visit.reset = reader.reset
    if reader.terminal:
        visit.ended = reader.terminal
    elif (visit.intact and not reader.barrier.is_set()) or visit.must_say_why:
        visit.ended = "silent"  # checked against the log (slow readers) at the end
    else:
        visit.ended = "reset" if reader.reset else "closed"


async def first(*events: asyncio.Event) -> None:
    waits = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()


async def worker(host: str, port: int, tally: Tally, server: Server) -> None:
    while True:
        visit = tally.next_visit()
        if visit is None:
            if tally.pending <= 0 or not server.alive:
                return
            tally.changed.clear()
            await tally.changed.wait()
            continue
        try:
            await run_visit(host, port, visit, tally)
        except OSError as exc:
            visit.problems.append(f"cannot connect: {exc}")
        finally:
            if visit.ended == "silent":
                tally.silent.append(visit)
            tally.endings[visit.ended or "none"] += 1
            tally.done(visit)
        if tally.failures > 1000 or not server.alive:
            return


# --- the run --------------------------------------------------------------------------------


@dataclass
class Sample:
    seconds: float
    frames: int
    rss: int
    cpu: float


async def sample(server: Server, tally: Tally, log: LogWatch, samples: list[Sample],
                 incidents: list[dict[str, Any]], started: float) -> None:  # fmt: skip
    """Every quarter second: memory and CPU; every half: the log (saving suspects on trouble)."""
    tick = 0
    while True:
        samples.append(
            Sample(time.monotonic() - started, tally.written, server.status("VmRSS"),
                   server.cpu_seconds())
        )  # fmt: skip
        tick += 1
        if tick % 2 == 0:
            trouble = log.poll()
            if (trouble or not server.alive) and len(incidents) < 5:
                what = "the server died" if not server.alive else f"{trouble} problem log lines"
                incidents.append(
                    {"what": what, "at_seconds": round(time.monotonic() - started, 1),
                     "in_flight": [visit_record(v, what) for v in tally.in_flight.values()]}
                )  # fmt: skip
            if not server.alive:
                return
        await asyncio.sleep(0.25)


def visit_record(visit: Visit, reason: str) -> dict[str, Any]:
    return {
        "visit": visit.number, "style": visit.style, "hello": visit.name, "port": visit.port,
        "reason": reason, "writes": [data.hex() for data in visit.sent],
        "frames_received": visit.count,
        "reset": visit.reset,
        "last_frames": [repr(frame)[:500] for frame in list(visit.frames)[-50:]],
        "server_log": visit.log[-50:],
    }  # fmt: skip


async def watcher_drain(
    watch: ChatClient,
    seen: collections.Counter[str],
    bad: list[str],
    texts: set[str],
    heard: asyncio.Event,
) -> None:
    """Read everything the watching client gets; note errors and disconnections."""
    while True:
        event = await watch.next_event()
        seen[type(event).__name__] += 1
        if isinstance(event, Disconnected | Error):
            bad.append(repr(event)[:300])
            heard.set()
            if isinstance(event, Disconnected):
                return
        if isinstance(event, Message) and event.sender == "after":
            texts.add(event.text)
            heard.set()


async def normal_client_works(host: str, port: int, seed: int) -> str:
    """A new client joins a room, sends, and receives its message; return "" or why not."""
    try:
        async with asyncio.timeout(20):
            after = await ChatClient.connect("after", host, port)
            room = f"#check{seed}"
            await after.join(room)
            text = f"still here after the fuzz (seed {seed})"
            ack = await after.send(room, text)
            while True:
                event = await after.next_event()
                if isinstance(event, Message) and event.room == room and event.text == text:
                    break
                if isinstance(event, Disconnected):
                    return f"disconnected: {event}"
            if (event.sender, event.seq) != ("after", ack.seq):
                return f"got {event} for ack {ack}"
            await after.send("#lobby", "anyone?")
            await after.close()
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return ""


async def slots_are_free(host: str, port: int, limit: int) -> str:
    """Every connection the fuzz made is counted out: all `limit` per-address slots open."""
    spare: list[asyncio.StreamWriter] = []
    try:
        for _ in range(limit - 2):  # the watcher holds one, the probe takes the last
            spare.append((await asyncio.open_connection(host, port))[1])
        probe = await ChatClient.connect("probe", host, port, timeout=10)
        await probe.close()
    except Exception as exc:
        return f"after {len(spare)} spare connections: {type(exc).__name__}: {exc}"
    finally:
        for writer in spare:
            writer.close()
    return ""


def explain_silent(tally: Tally, log: LogWatch) -> None:
    """A visit the server closed without its last word must be explained by the server's log.

    Either the server dropped it as a slow reader (by design without a frame), or it
    logged the fatal error (or the `bye`) it sent and then the connection was reset:
    the server closed while bytes we sent were still unread, so its kernel reset the
    connection and threw away what it had not yet sent, that last frame included.
    """
    for visit in tally.silent:
        peer = f"127.0.0.1:{visit.port}"
        since, until = visit.started, visit.finished
        explained = ""
        if log.logged(log.slow_peers, peer, since, until):
            explained = "slow reader, dropped (logged)"
        elif visit.reset and (fatal := log.logged(log.fatal_peers, peer, since, until)):
            explained = f"{fatal[1]} logged, the frame lost to a reset"
        elif visit.reset and any(
            log.logged(log.quits, name, since, until) for name in (visit.name, f"rz{visit.number}")
        ):
            explained = "bye logged, the frame lost to a reset"
        if explained:
            tally.endings["silent"] -= 1
            tally.endings[explained] += 1
            continue
        if visit.intact:
            why = "an intact stream was closed without the pong"
        elif visit.must_say_why:
            why = f"{visit.ender} was answered with silence"
        else:
            continue
        how = "reset" if visit.reset else "end of stream"
        visit.problems.append(f"{why} ({how}; the log explains nothing for this port)")
        tally.fail(visit)


async def fuzz(args: argparse.Namespace) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="tuichat-fuzz-"))
    max_per_ip = 4 * args.connections + 32
    server = Server(workdir, max_per_ip, args.log_level)
    try:
        try:
            server.wait_listening()
        except RuntimeError as exc:
            print(exc)
            return 2
        return await fuzz_server(args, server, workdir, max_per_ip)
    finally:
        server.stop()


async def fuzz_server(
    args: argparse.Namespace, server: Server, workdir: Path, max_per_ip: int
) -> int:
    host, port = "127.0.0.1", server.port
    log = LogWatch(server.log_path)
    tally = Tally(args.frames, args.seed, args.connections, workdir)
    print(f"server: {' '.join(server.command[:1])} (pid {server.pid}) on {host}:{port}")
    print(
        f"fuzzing: {args.frames:,} frames, seed {args.seed}, {args.connections} connections "
        f"at once, {type(asyncio.get_running_loop()).__module__} event loop",
        flush=True,
    )

    watch = await ChatClient.connect("watch", host, port)
    await watch.send("#lobby", "warming up")
    await watch.history("#lobby")
    watch_seen: collections.Counter[str] = collections.Counter()
    watch_bad: list[str] = []
    watch_texts: set[str] = set()
    watch_heard = asyncio.Event()
    draining = asyncio.create_task(
        watcher_drain(watch, watch_seen, watch_bad, watch_texts, watch_heard)
    )
    await asyncio.sleep(0.5)
    rss_start, files_start, cpu_start = (
        server.status("VmRSS"),
        server.open_files(),
        server.cpu_seconds(),
    )

    samples: list[Sample] = []
    incidents: list[dict[str, Any]] = []
    started = time.monotonic()
    own_cpu = time.process_time()
    sampling = asyncio.create_task(sample(server, tally, log, samples, incidents, started))
    progress = asyncio.create_task(report_progress(tally, server, started))
    await asyncio.gather(*(worker(host, port, tally, server) for _ in range(args.connections)))
    elapsed = time.monotonic() - started
    own_cpu = time.process_time() - own_cpu
    progress.cancel()
    rss_fuzz_end = server.status("VmRSS")
    cpu_fuzz = server.cpu_seconds() - cpu_start

    reasons: list[str] = []
    checks: list[tuple[str, str]] = []
    alive = server.alive
    checks.append(("server alive", "yes" if alive else f"NO (exit status {server.process.poll()})"))
    if not alive:
        reasons.append(f"the server died (exit status {server.process.poll()})")
    if alive:
        await asyncio.sleep(1.0)  # let the last connections be counted out
        why = await normal_client_works(host, port, args.seed)
        checks.append(("a new client joins, sends, receives", why or "ok"))
        if why:
            reasons.append(f"a normal client failed: {why}")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(10):
                await watch_heard.wait()
        watch_ok = "anyone?" in watch_texts and not watch_bad
        checks.append(
            (
                "the client connected all along",
                "ok" if watch_ok else f"NOT OK: {watch_bad[:3] or 'did not get the new message'}",
            )
        )
        if not watch_ok:
            reasons.append(f"the watching client: {watch_bad[:3] or 'missed the new message'}")
        try:
            async with asyncio.timeout(60):
                why = await slots_are_free(host, port, max_per_ip)
        except TimeoutError:
            why = "no answer within 60 s"
        checks.append((f"all {max_per_ip} connection slots of 127.0.0.1 free", why or "ok"))
        if why:
            reasons.append(f"connections still counted: {why}")
    draining.cancel()
    with contextlib.suppress(Exception):
        await watch.close()
    files_end = server.open_files()
    for _ in range(40):  # what was closed last may take a moment
        if files_end <= files_start + 8:
            break
        await asyncio.sleep(0.25)
        files_end = server.open_files()
    if alive and files_end > files_start + 8:
        reasons.append(f"the server holds {files_end} open files, {files_start} before the fuzz")
    sampling.cancel()
    rss_end, rss_hwm = server.status("VmRSS"), server.status("VmHWM")
    cpu_total = server.cpu_seconds()
    exit_status = server.stop()
    log.poll()
    if log.partial:
        log.partial += b"\n"
        log.poll()
    if exit_status not in (0, None) and alive:
        reasons.append(f"the server exited with status {exit_status} on SIGTERM")
    explain_silent(tally, log)
    attach_log(tally.failed, server.log_path)

    if tally.written < args.frames:
        reasons.append(f"only {tally.written:,} of {args.frames:,} frames were sent")
    if tally.failures:
        reasons.append(f"{tally.failures} visit(s) failed their checks (see below)")
    tracebacks = sum("Traceback" in line for line in log.problems)
    store_failures = sum(any(b.decode() in line for b in BUG_WARNINGS) for line in log.problems)
    if log.problems:
        reasons.append(
            f"the server log has {tracebacks} traceback(s), "
            f"{log.levels['ERROR'] + log.levels['CRITICAL']} ERROR/CRITICAL line(s) and "
            f"{store_failures} WARNING line(s) of a failed store"
        )
    unexpected = {code: n for code, n in tally.codes.items() if code in UNEXPECTED}
    if unexpected:
        reasons.append(f"error codes this setup rules out: {unexpected}")
    peak = max([rss_hwm, *(s.rss for s in samples)])
    bound = args.max_rss_mib * 2**20
    if peak >= bound:
        reasons.append(f"peak RSS {peak / 2**20:.1f} MiB is over the bound {args.max_rss_mib} MiB")
    if incidents or tally.failed:
        save_failures(workdir / "failures.jsonl", tally, incidents)

    mib = 2**20
    sampled_peak = max((s.rss for s in samples), default=0)
    print()
    print(f"frames sent       {tally.written:,} ({tally.bytes_sent / mib:,.1f} MiB)")
    print(f"  by kind         {counts(tally.kinds)}")
    print(
        f"connections       {tally.visits:,} ({args.connections} at once); "
        f"we ended them by: {counts(tally.styles)}"
    )
    print(f"  last word       {counts(tally.endings)}")
    print("                  (a code: the server's fatal error; closed/reset: after our end of")
    print("                  stream, nothing more to say; by us: reset, closed or hung up)")
    print(f"elapsed           {elapsed:.1f} s")
    print(f"frames/s          {tally.written / elapsed:,.0f}")
    print(
        f"answers           {sum(tally.answers.values()):,} frames "
        f"({tally.bytes_received / mib:,.1f} MiB)"
    )
    print(f"  by type         {counts(tally.answers)}")
    print(f"  error codes     {counts(tally.codes)}")
    print(f"watching client   {sum(watch_seen.values()):,} events: {counts(watch_seen)}")
    print(
        f"server RSS        start {rss_start / mib:.1f} MiB, peak {peak / mib:.1f} MiB "
        f"(VmHWM {rss_hwm / mib:.1f}, sampled {sampled_peak / mib:.1f}), "
        f"end of fuzz {rss_fuzz_end / mib:.1f} MiB, end {rss_end / mib:.1f} MiB "
        f"(bound {args.max_rss_mib} MiB)"
    )
    print(
        f"server CPU        {cpu_fuzz:.1f} s during the fuzz "
        f"({cpu_fuzz / elapsed * 100:.0f}% of one core), {cpu_total:.1f} s in all; "
        f"fuzz client CPU {own_cpu:.1f} s"
    )
    print(f"server open files {files_start} before, {files_end} after")
    points = timeline(samples, tally.written)
    for start in range(0, len(points), 4):
        label = "server over time" if not start else ""
        print(f"{label:<18}" + "; ".join(points[start : start + 4]))
    print(f"server log        {log.lines:,} lines: {counts(log.levels)}; {tracebacks} traceback(s)")
    print(f"  INFO lines      {counts(log.info)}")
    for line in log.other_info[:5]:
        print(f"    other INFO:   {line}")
    for line in log.warnings[:10]:
        print(f"  WARNING         {line[:200]}")
    stamped = collections.Counter(line[24:] for line in log.problems if LEVEL.match(line.encode()))
    for line, number in stamped.most_common(15):
        print(f"  PROBLEM {number:>6} x {line[:300]}")
    traceback = [line for line in log.problems if not LEVEL.match(line.encode())]
    for line in traceback[:60]:
        print(f"  TRACEBACK       {line[:300]}")
    for name, result in checks:
        print(f"check             {name}: {result}")
    if tally.failed:
        print(f"failed visits     {tally.failures}, by problem:")
        for kind, number in tally.failure_kinds.most_common(20):
            print(f"  {number:>6} x      {kind}")
    shown: set[str] = set()
    for visit in tally.failed:  # the first of each kind
        kinds = {problem_kind(problem) for problem in visit.problems}
        if not kinds <= shown:
            print_failure(visit)
            shown |= kinds
    for incident in incidents:
        print(
            f"incident          {incident['what']} at {incident['at_seconds']} s: "
            f"{len(incident['in_flight'])} visits in flight saved"
        )
    if reasons:
        print(f"kept              {workdir} (server.log, failures.jsonl)")
        print("FAIL")
        for reason in reasons:
            print(f"  - {reason}")
        return 1
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        print(f"kept              {workdir}")
    print("PASS")
    return 0


async def report_progress(tally: Tally, server: Server, started: float) -> None:
    while True:
        await asyncio.sleep(15)
        seconds = time.monotonic() - started
        print(
            f"  {seconds:6.0f} s  {tally.written:>10,} frames  {tally.visits:>8,} connections  "
            f"RSS {server.status('VmRSS') / 2**20:6.1f} MiB  failures {tally.failures}",
            flush=True,
        )


def counts(counter: collections.Counter[str]) -> str:
    return ", ".join(f"{key} {value:,}" for key, value in counter.most_common() if value)


def timeline(samples: list[Sample], total: int) -> list[str]:
    """At each tenth of the frames sent: the server's RSS, and its CPU use since the last."""
    points, last = [], samples[0] if samples else None
    for tenth in range(1, 11):
        wanted = total * tenth // 10
        at = next((s for s in samples if s.frames >= wanted), samples[-1] if samples else None)
        if at is None or last is None:
            continue
        busy = "  -"
        if at.seconds > last.seconds:
            busy = f"{(at.cpu - last.cpu) / (at.seconds - last.seconds) * 100:3.0f}"
        points.append(f"{tenth * 10:>3}%: {at.rss / 2**20:5.1f} MiB, {busy}% CPU")
        last = at
    return points


def problem_kind(problem: str) -> str:
    """A problem without its particulars, to count problems by kind."""
    return re.sub(r"\(ref [^)]*\)|\d+", "N", problem)[:100]


def attach_log(visits: list[Visit], path: Path) -> None:
    """Add to each visit the server's log lines that name its port or its names."""
    wanted: dict[bytes, list[Visit]] = {}
    for visit in visits:
        wanted.setdefault(f"127.0.0.1:{visit.port}".encode(), []).append(visit)
        for name in (visit.name, f"rz{visit.number}"):
            if name:
                wanted.setdefault(f"{name} ".encode(), []).append(visit)
    found = re.compile(rb"127\.0\.0\.1:\d+|\b[fr]z\d+ ")
    with open(path, "rb") as log:
        for line in log:
            keys = {match.group() for match in found.finditer(line)}
            named = {id(v): v for key in keys for v in wanted.get(key, [])}
            if not named or not LEVEL.match(line):
                continue
            when = datetime.strptime(line[:23].decode(), "%Y-%m-%d %H:%M:%S,%f").timestamp()
            for visit in named.values():
                if visit.started - 1 <= when <= visit.finished + 1:
                    visit.log.append(line.decode(errors="replace").rstrip()[:300])


def print_failure(visit: Visit) -> None:
    print(
        f"failed visit      #{visit.number} (style {visit.style}, hello {visit.name or '-'}, "
        f"ender {visit.ender or '-'}, port {visit.port}, {len(visit.sent)} writes, "
        f"{sum(map(len, visit.sent)):,} bytes)"
    )
    for problem in visit.problems[:5]:
        print(f"  problem         {problem[:300]}")
    for data in visit.sent[:3]:
        print(f"  wrote           {data[:160].hex()}{'…' if len(data) > 160 else ''}")
    for frame in list(visit.frames)[-3:]:
        print(f"  received        {frame!r:.200}")
    for line in visit.log[-6:]:
        print(f"  server log      {line[24:220]}")


def save_failures(path: Path, tally: Tally, incidents: list[dict[str, Any]]) -> None:
    with open(path, "w") as out:
        for visit in tally.failed:
            out.write(json.dumps(visit_record(visit, "; ".join(visit.problems))) + "\n")
        for incident in incidents:
            for record in incident["in_flight"]:
                out.write(json.dumps(record) + "\n")


# --- replaying saved visits -----------------------------------------------------------------


async def replay(args: argparse.Namespace, records: list[dict[str, Any]]) -> int:
    """Send each saved visit again, alone, to a fresh server; say what came back."""
    workdir = Path(tempfile.mkdtemp(prefix="tuichat-fuzz-replay-"))
    server = Server(workdir, 1000, args.log_level)
    try:
        server.wait_listening()
        return await replay_to(server, records)
    finally:
        server.stop()
        print(f"server log: {server.log_path}")


async def replay_to(server: Server, records: list[dict[str, Any]]) -> int:
    log = LogWatch(server.log_path)
    tally = Tally(0, 0, 1, server.log_path.parent)
    loop = asyncio.get_running_loop()
    bad = 0
    for record in records:
        visit = Visit(record["visit"], "eof", "", [], False, "", False, [], 0, False)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        await loop.sock_connect(sock, ("127.0.0.1", server.port))
        reader = Reader(visit, tally, sock)
        reading = asyncio.create_task(reader.read())
        for data in record["writes"]:
            await reader.write(bytes.fromhex(data))
            await asyncio.sleep(0.05)
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_WR)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(10):
                await reader.closed.wait()
        reading.cancel()
        sock.close()
        await asyncio.sleep(0.2)
        problems = log.poll()
        print(
            f"visit {record['visit']}: {len(record['writes'])} writes, "
            f"{visit.count} frames back ({reader.terminal or 'no terminal frame'}), "
            f"server {'alive' if server.alive else 'DEAD'}, {problems} problem log lines"
        )
        for frame in list(visit.frames)[-5:]:
            print(f"    {frame!r:.200}")
        for problem in visit.problems:
            print(f"    problem: {problem[:200]}")
        if problems or not server.alive or visit.problems:
            bad += 1
            for line in log.problems[-problems:] if problems else []:
                print(f"    LOG {line[:300]}")
        if not server.alive:
            break
    return 1 if bad else 0


# --- main -----------------------------------------------------------------------------------


def loop_factory() -> Any:
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=1_000_000, help="frames to send in all")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--connections", type=int, default=64, help="connections at once")
    parser.add_argument("--max-rss-mib", type=float, default=300, help="bound on server RSS")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING"],
                        help="the server's (INFO names the slow readers it drops)")  # fmt: skip
    parser.add_argument("--keep", action="store_true", help="keep the server's folder on PASS")
    parser.add_argument("--replay", metavar="FILE", help="resend the visits saved in FILE")
    args = parser.parse_args()
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        if args.replay:
            lines = Path(args.replay).read_text().splitlines()
            return runner.run(replay(args, [json.loads(line) for line in lines if line]))
        return runner.run(fuzz(args))


if __name__ == "__main__":
    sys.exit(main())
