"""The load generator: many client connections in one process, cheap enough to outrun a server.

Every connection is a plain `asyncio.Protocol`. After its handshake a
connection stops decoding: it counts the deliveries in each chunk it reads by
searching for the bytes every delivered message starts with (C speed), so one
process can take millions of deliveries a second. A few connections are
*probes*: they decode every frame, check sequence numbers and measure latency
from the send timestamp carried at the start of each message's text.

The same workload runs against tuichat (`TuichatLoad`), an IRC server
(`IrcLoad`) and Redis pub/sub (`RedisLoad`, each sender publishing on a second
connection, `RedisPublisher`).

A worker process runs `serve(pipe)` and takes commands from the benchmark's
main process (see `tuichat.bench.run`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection as Pipe
from typing import Any, cast

from tuichat.client.unread import read_pause
from tuichat.protocol import (
    Connection,
    Error,
    Hello,
    MarkRead,
    Message,
    Ping,
    Pong,
    ProtocolError,
    ReadMarker,
    Role,
    Send,
    Welcome,
    encode_frame,
)
from tuichat.protocol.codec import Codec

ROOM_TUICHAT = "#lobby"
ROOM_IRC = "#bench"
ROOM_REDIS = "room"
TEXT_BYTES = 100
"""Size of each message's text: a 19-digit send time in nanoseconds, then padding."""


def message_text(sender: int, number: int) -> str:
    """Return a ~100-byte text that starts with the time it is sent at."""
    head = f"{time.monotonic_ns():019d} {sender:04d} {number:06d} "
    return head + "x" * (TEXT_BYTES - len(head))


def sent_at(text: str | bytes) -> int:
    """The send time (ns) at the start of a benchmark message's text."""
    return int(text[:19])


@dataclass
class Tally:
    """What one connection has received, against what it should have by the end of this phase.

    Counts run on across phases: another worker's senders may start a phase
    before this worker has heard of it, and what arrives early must still count.
    """

    count: int = 0
    target: int = 0
    phase_start: int = 0
    """`target` when this phase began."""
    latencies: list[int] = field(default_factory=list)
    """Per delivery, in microseconds (probes only)."""
    gaps: int = 0
    """Sequence numbers missing or repeated (probes only)."""


class LoadConnection(asyncio.Protocol):
    """One client connection of the load: what tuichat and IRC connections share."""

    tag: bytes = b""
    """Bytes that occur once in every delivered message and nowhere else."""

    def __init__(self, worker: Worker, name: str, probe: bool) -> None:
        self.worker = worker
        self.name = name
        self.probe = probe
        self.transport: asyncio.Transport | None = None
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.tally = Tally()
        self.done = True
        self.dropped = ""
        self._tail = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        self.greet()

    def greet(self) -> None:
        """Say hello to the server (its protocol's handshake)."""
        raise NotImplementedError

    def send_message(self, sender: int, number: int) -> None:
        """Send one ~100-byte message to the benchmark room."""
        raise NotImplementedError

    def expect(self, count: int) -> None:
        """Start a phase in which this connection should receive `count` more messages."""
        tally = self.tally
        tally.phase_start = tally.target
        tally.target += count
        tally.latencies = []
        tally.gaps = 0
        self.done = tally.count >= tally.target
        if not self.done:
            self.worker.waiting += 1

    def counted(self, found: int) -> None:
        tally = self.tally
        tally.count += found
        if not self.done and tally.count >= tally.target:
            self.done = True
            self.worker.one_done()

    def count_tags(self, data: bytes) -> None:
        """Count deliveries without decoding (the tag may straddle reads, even several short
        ones: `_tail` is the last bytes of everything read, not just of the last read)."""
        tag = self.tag
        edge = self._tail + data[: len(tag) - 1]
        self._tail = (data if len(data) >= len(tag) else edge)[1 - len(tag) :]
        self.counted(data.count(tag) + edge.count(tag))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(f"{self.name}: connection lost ({exc})"))
        self.dropped = self.dropped or "connection lost"
        if not self.done:
            self.done = True
            self.worker.one_done()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.abort()


class TuichatLoad(LoadConnection):
    """One tuichat connection; with `mark_every`, it marks the room read at most once every
    `mark_every` seconds while messages come in, as an app marks what it shows."""

    tag = b"\xa4type\xa7message"
    _ping = b"\xa4type\xa4ping"
    _bad = (b"\xa4type\xa5error", b"\xa4type\xa3bye")
    _pong = encode_frame(Codec.encode(Pong(data=0)))

    def __init__(
        self, worker: Worker, name: str, probe: bool, mark_every: float = 0, spread: float = 0
    ) -> None:
        super().__init__(worker, name, probe)
        self.conn = Connection(Role.CLIENT)
        self.seq = 0
        self.sent = 0
        """Messages sent so far: each gets its own id (a repeated id is a retry)."""
        self.epoch = 0
        self.joined_seq = 0
        """The room's seq in the welcome: a counting connection's last seq is this + its count."""
        self.mark_every = mark_every
        self.spread = spread
        """Each pause between markers is `mark_every` times a random factor within this of 1."""
        self.next_mark = 0.0
        """When (monotonic seconds) the room may be marked read next."""
        self.marked_count = 0
        """Messages counted when the room was last marked read."""
        self.marks = 0
        self.marked = 0
        """The seq last marked read."""
        self.stored: asyncio.Future[int] | None = None
        """The seq the server reports stored, once asked (see `check_marker`)."""

    def greet(self) -> None:
        assert self.transport is not None
        self.transport.write(self.conn.send(Hello(name=self.name, client="tuichat-bench")))

    def data_received(self, data: bytes) -> None:
        if self.probe or not self.ready.done():
            self._decode(data)
            return
        self.count_tags(data)
        if self.mark_every and self.tally.count > self.marked_count:
            self._maybe_mark(self.joined_seq + self.tally.count)
        if self._ping in data:
            assert self.transport is not None
            self.transport.write(self._pong)
        if self._bad[0] in data or self._bad[1] in data:
            self.dropped = self.dropped or "an error or a bye from the server"

    def _decode(self, data: bytes) -> None:
        try:
            events = self.conn.receive_data(data)
        except ProtocolError as exc:
            self.dropped = f"protocol error: {exc}"
            self.close()
            return
        now = time.monotonic_ns()
        for event in events:
            if isinstance(event, Message):
                if self.probe:
                    self.tally.latencies.append((now - sent_at(event.text)) // 1000)
                    self.tally.gaps += event.seq != self.seq + 1
                self.seq = event.seq
                self.counted(1)
                if self.mark_every:
                    self._maybe_mark(self.seq)
            elif isinstance(event, Welcome):
                room = next((p for p in event.positions if p.room == ROOM_TUICHAT), None)
                if room is not None:
                    self.epoch, self.seq = room.epoch, room.seq
                self.joined_seq = self.seq
                if not self.ready.done():
                    self.ready.set_result(None)
            elif isinstance(event, ReadMarker):
                if self.stored is not None and not self.stored.done():
                    self.stored.set_result(event.seq)
            elif isinstance(event, Ping):
                assert self.transport is not None
                self.transport.write(self.conn.send(Pong(data=event.data)))
            elif isinstance(event, Error):
                self.dropped = f"{event.code}: {event.message}"
                if self.stored is not None and not self.stored.done():
                    self.stored.set_result(-1)
                if not self.ready.done():
                    self.ready.set_exception(ConnectionError(f"{self.name}: {event.message}"))

    def send_message(self, sender: int, number: int) -> None:
        assert self.transport is not None
        text = message_text(sender, number)
        self.sent += 1
        self.transport.write(self.conn.send(Send(ROOM_TUICHAT, text, id=str(self.sent))))

    def mark_read(self, seq: int) -> None:
        """Tell the server the room is read up to `seq` (no reply), and when to next."""
        assert self.transport is not None
        self.transport.write(self.conn.send(MarkRead(ROOM_TUICHAT, seq, self.epoch)))
        self.marks += 1
        self.marked = seq
        self.marked_count = self.tally.count
        self.next_mark = time.monotonic() + read_pause(self.mark_every, self.spread)

    def _maybe_mark(self, seq: int) -> None:
        """Mark the room read up to `seq` unless it was marked less than `mark_every` ago."""
        if time.monotonic() >= self.next_mark:
            self.mark_read(seq)

    async def check_marker(self) -> bool:
        """Whether the server holds this connection's last marker (probes only: they decode
        the reply). A marker at seq 0 never moves one back, and the reply is what is stored."""
        assert self.transport is not None and self.probe
        self.stored = asyncio.get_running_loop().create_future()
        self.transport.write(self.conn.send(MarkRead(ROOM_TUICHAT, 0, self.epoch, ref=1)))
        try:
            return await asyncio.wait_for(self.stored, 10) == self.marked
        except TimeoutError:
            return False


class IrcLoad(LoadConnection):
    """One IRC connection (for the same workload against an IRC server)."""

    tag = f" PRIVMSG {ROOM_IRC} :".encode()

    def __init__(self, worker: Worker, name: str, probe: bool, oper: bool) -> None:
        super().__init__(worker, name, probe)
        self.oper = oper
        self._partial = b""

    def greet(self) -> None:
        assert self.transport is not None
        self.transport.write(f"NICK {self.name}\r\nUSER {self.name} 0 * :bench\r\n".encode())

    def data_received(self, data: bytes) -> None:
        if self.probe or not self.ready.done():
            self._lines(data)
            return
        self.count_tags(data)
        if b"PING :" in data or b"ERROR :" in data:
            self._lines(data, count=False)

    def _lines(self, data: bytes, count: bool = True) -> None:
        lines = (self._partial + data).split(b"\r\n")
        self._partial = lines.pop()
        now = time.monotonic_ns()
        assert self.transport is not None
        for line in lines:
            if self.tag in line:
                if count:
                    if self.probe:
                        text = line.split(self.tag, 1)[1]
                        self.tally.latencies.append((now - sent_at(text)) // 1000)
                    self.counted(1)
            elif line.startswith(b"PING "):
                self.transport.write(b"PONG " + line[5:] + b"\r\n")
            elif line.startswith(b"ERROR "):
                self.dropped = line.decode(errors="replace")
            else:
                self._handshake(line)

    def _handshake(self, line: bytes) -> None:
        assert self.transport is not None
        parts = line.split(b" ", 2)
        if len(parts) < 2 or self.ready.done():
            return
        if parts[1] == b"001":  # welcome: raise our flood limits if we send, then join
            if self.oper:
                self.transport.write(f"OPER bench bench\r\nMODE {self.name} +F\r\n".encode())
            self.transport.write(f"JOIN {ROOM_IRC}\r\n".encode())
        elif parts[1] == b"366":  # end of the channel's names: joined
            self.ready.set_result(None)
        elif parts[1] in (b"433", b"464", b"465", b"471", b"473", b"474", b"475"):
            self.ready.set_exception(ConnectionError(line.decode(errors="replace")))

    def send_message(self, sender: int, number: int) -> None:
        assert self.transport is not None
        text = message_text(sender, number)
        self.transport.write(f"PRIVMSG {ROOM_IRC} :{text}\r\n".encode())


def resp_value(data: bytes, at: int) -> tuple[Any, int] | None:
    """The RESP2 value at `at` in `data` (bytes, int, str for +/-, or a list) and where it
    ends, or None when `data` ends first."""
    end = data.find(b"\r\n", at)
    if end < 0:
        return None
    kind, line = data[at : at + 1], data[at + 1 : end]
    if kind == b"$":
        size = int(line)
        if size < 0:
            return None, end + 2
        if len(data) < end + 4 + size:
            return None
        return data[end + 2 : end + 2 + size], end + 4 + size
    if kind == b"*":
        items: list[Any] = []
        at = end + 2
        for _ in range(int(line)):
            item = resp_value(data, at)
            if item is None:
                return None
            items.append(item[0])
            at = item[1]
        return items, at
    if kind == b":":
        return int(line), end + 2
    return (line.decode(errors="replace") if kind == b"+" else f"error: {line!r}"), end + 2


def resp_command(*words: bytes) -> bytes:
    """A command as a RESP2 array of bulk strings."""
    return b"*%d\r\n" % len(words) + b"".join(b"$%d\r\n%s\r\n" % (len(w), w) for w in words)


class RedisLoad(LoadConnection):
    """One Redis pub/sub subscriber (RESP2); a sender publishes on a connection of its own,
    `publisher`, since a subscribed RESP2 connection may only (un)subscribe and ping. Every
    subscriber hears every message, the sender's own too: N deliveries a message, as tuichat."""

    tag = b"*3\r\n$7\r\nmessage\r\n$%d\r\n%s\r\n" % (len(ROOM_REDIS), ROOM_REDIS.encode())
    _subscribe = resp_command(b"SUBSCRIBE", ROOM_REDIS.encode())

    def __init__(self, worker: Worker, name: str, probe: bool) -> None:
        super().__init__(worker, name, probe)
        self.publisher: RedisPublisher | None = None
        self._buffer = b""
        self._last: dict[bytes, int] = {}
        """Per sender, the number of the message last heard (probes only)."""

    def greet(self) -> None:
        assert self.transport is not None
        self.transport.write(self._subscribe)

    def data_received(self, data: bytes) -> None:
        if self.probe or not self.ready.done():
            self._parse(data)
        else:
            self.count_tags(data)

    def _parse(self, data: bytes) -> None:
        buffer, at = self._buffer + data, 0
        now = time.monotonic_ns()
        while (value := resp_value(buffer, at)) is not None:
            push, at = value
            if isinstance(push, list) and push[:2] == [b"message", ROOM_REDIS.encode()]:
                self._heard(push[2], now)
            elif isinstance(push, list) and push[:1] == [b"subscribe"] and not self.ready.done():
                self.ready.set_result(None)
            elif isinstance(push, str) and push.startswith("error"):
                self.dropped = push
                if not self.ready.done():
                    self.ready.set_exception(ConnectionError(f"{self.name}: {push}"))
            if not self.probe and self.ready.done():  # from here on, count without parsing
                self._buffer = b""
                self.count_tags(buffer[at:])
                return
        self._buffer = buffer[at:]

    def _heard(self, text: bytes, now: int) -> None:
        """One message: its latency and whether its sender's numbers run on (probes)."""
        if self.probe:
            self.tally.latencies.append((now - sent_at(text)) // 1000)
            sender, number = text[20:24], int(text[25:31])
            self.tally.gaps += number != 0 and number != self._last.get(sender, -1) + 1
            self._last[sender] = number  # each phase numbers its messages from 0 again
        self.counted(1)

    def send_message(self, sender: int, number: int) -> None:
        assert self.publisher is not None and self.publisher.transport is not None
        text = message_text(sender, number).encode()
        self.publisher.transport.write(resp_command(b"PUBLISH", ROOM_REDIS.encode(), text))

    def close(self) -> None:
        super().close()
        if self.publisher is not None and self.publisher.transport is not None:
            self.publisher.transport.abort()


class RedisPublisher(asyncio.Protocol):
    """A sender's publishing connection: reads the replies (each the number of subscribers
    reached, `:N`), which are no deliveries, and notes an error on its subscriber."""

    def __init__(self, subscriber: RedisLoad) -> None:
        self.subscriber = subscriber
        self.transport: asyncio.Transport | None = None
        subscriber.publisher = self

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if b"-" in data:  # replies are `:N` with N >= 0; `-` begins an error
            error = data[data.index(b"-") :].split(b"\r\n", 1)[0]
            self.subscriber.dropped = f"publishing: {error.decode(errors='replace')}"

    def connection_lost(self, exc: Exception | None) -> None:
        self.subscriber.dropped = self.subscriber.dropped or "publisher connection lost"


class Worker:
    """One load-generating process: its connections and the phases it runs."""

    def __init__(self) -> None:
        self.connections: list[LoadConnection] = []
        self.senders: list[tuple[int, LoadConnection]] = []
        self.waiting = 0
        self.all_done: asyncio.Event = asyncio.Event()
        self.last_done = 0

    def one_done(self) -> None:
        self.waiting -= 1
        if self.waiting <= 0:
            self.last_done = time.monotonic_ns()
            self.all_done.set()

    async def connect(
        self,
        kind: str,
        clients: list[dict[str, Any]],
        concurrency: int,
        mark_read_every: float,
        mark_read_spread: float = 0,
    ) -> dict[str, Any]:
        """Open every connection, `concurrency` at a time, and wait until each has joined;
        tuichat connections mark the room read about once every `mark_read_every` seconds
        (`read_pause`)."""
        loop = asyncio.get_running_loop()
        limit = asyncio.Semaphore(concurrency)
        failures: list[str] = []

        async def one(client: dict[str, Any]) -> None:
            factory: Callable[[], LoadConnection]
            if kind == "irc":
                sends = client["sender"] is not None
                factory = lambda: IrcLoad(self, client["name"], client["probe"], sends)  # noqa: E731
            elif kind == "redis":
                factory = lambda: RedisLoad(self, client["name"], client["probe"])  # noqa: E731
            else:
                factory = lambda: TuichatLoad(  # noqa: E731
                    self, client["name"], client["probe"], mark_read_every, mark_read_spread
                )
            async with limit:
                try:
                    _, protocol = await loop.create_connection(factory, "127.0.0.1", client["port"])
                    await asyncio.wait_for(protocol.ready, 60)
                    if isinstance(protocol, RedisLoad) and client["sender"] is not None:
                        await loop.create_connection(
                            lambda: RedisPublisher(protocol), "127.0.0.1", client["port"]
                        )
                except (OSError, ConnectionError, TimeoutError) as exc:
                    failures.append(f"{client['name']}: {exc}")
                    return
            self.connections.append(protocol)
            if client["sender"] is not None:
                self.senders.append((client["sender"], protocol))

        started = time.monotonic_ns()
        await asyncio.gather(*(one(c) for c in clients))
        return {
            "connected": len(self.connections),
            "failures": failures[:5],
            "failed": len(failures),
            "started_ns": started,
            "ended_ns": time.monotonic_ns(),
        }

    async def run(
        self,
        messages: int,
        interval: float,
        expected: int,
        timeout: float,
        echo: bool,
        senders: int,
        start_at: float,
    ) -> dict[str, Any]:
        """Send `messages` from each sender and count arrivals.

        Flat out, or paced: every `interval` seconds from `start_at` (`time.monotonic`),
        the `senders` spread evenly over each interval.
        """
        self.all_done.clear()
        self.waiting = 0
        sender_ids = {id(c) for _, c in self.senders}
        for connection in self.connections:
            own = 0 if echo or id(connection) not in sender_ids else messages
            connection.expect(expected - own)
        if self.waiting == 0:
            self.last_done = time.monotonic_ns()
            self.all_done.set()
        cpu = time.process_time()
        started = time.monotonic_ns()
        await asyncio.gather(
            *(
                self._send(i, c, messages, interval, start_at + interval * i / senders)
                for i, c in self.senders
            )
        )
        sent = time.monotonic_ns()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.all_done.wait(), timeout)
        cpu = time.process_time() - cpu
        tallies = [c.tally for c in self.connections]
        return {
            "started_ns": started,
            "sent_ns": sent,
            "ended_ns": self.last_done if self.all_done.is_set() else time.monotonic_ns(),
            "received": sum(min(t.count, t.target) - t.phase_start for t in tallies),
            "expected": sum(t.target - t.phase_start for t in tallies),
            "extra": sum(max(t.count - t.target, 0) for t in tallies),
            "gaps": sum(t.gaps for t in tallies),
            "latencies_us": [v for t in tallies for v in t.latencies],
            "dropped": [f"{c.name}: {c.dropped}" for c in self.connections if c.dropped][:5],
            "short": [
                f"{c.name}: {c.tally.count - c.tally.phase_start} of "
                f"{c.tally.target - c.tally.phase_start}"
                for c in self.connections
                if c.tally.count < c.tally.target
            ][:5],
            "cpu_s": cpu,
        }

    @staticmethod
    async def _send(
        sender: int, connection: LoadConnection, messages: int, interval: float, first: float
    ) -> None:
        if not interval:
            for number in range(messages):
                connection.send_message(sender, number)
                if number % 64 == 63:
                    await asyncio.sleep(0)  # let the other senders go too
            return
        for number in range(messages):
            delay = first + number * interval - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            connection.send_message(sender, number)

    async def markers(self) -> dict[str, Any]:
        """The read markers sent so far, and how many of the probes' the server holds."""
        tuichat = [c for c in self.connections if isinstance(c, TuichatLoad)]
        probes = [c for c in tuichat if c.probe and c.marks and not c.dropped]
        held = await asyncio.gather(*(c.check_marker() for c in probes))
        return {
            "sent": sum(c.marks for c in tuichat),
            "clients": sum(1 for c in tuichat if c.marks),
            "checked": len(probes),
            "stored": sum(held),
        }

    def close(self) -> None:
        for connection in self.connections:
            connection.close()
        self.connections.clear()
        self.senders.clear()


def serve(pipe: Pipe) -> None:
    """A worker process's main: carry out commands from the pipe until told to stop."""
    try:
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:
        runner = asyncio.Runner()
    with runner:
        runner.run(_serve(pipe))


async def _serve(pipe: Pipe) -> None:
    worker = Worker()
    while True:
        command = await asyncio.to_thread(pipe.recv)  # the pipe stays blocking for big answers
        action = command.pop("action")
        if action == "connect":
            pipe.send(await worker.connect(**command))
        elif action == "run":
            pipe.send(await worker.run(**command))
        elif action == "markers":
            pipe.send(await worker.markers())
        else:  # "close" or "stop"
            worker.close()
            pipe.send({})
            if action == "stop":
                return
