"""Many idle connections on one server process: what each costs, and whether the heartbeat keeps up.

Starts `tuichat-server` (SQLite history in a temporary folder, flood and connection limits
lifted, its open-file limit raised to its hard limit) and opens `--connections` idle
connections to it from `--workers` client processes (each under its own open-file limit), each
bound to loopback source addresses of its own (127.0.0.2, 127.0.0.3, ...) so that no source
address runs out of ephemeral ports. Every connection says `hello` (which puts it in #lobby),
waits for its `welcome`, then only answers pings with pongs.

Measured: the time to connect (and welcome) them all; the server's memory (VmRSS and Pss)
before, after half of them and after all of them, per connection (the second half's figure is
the marginal cost: the first connections reuse memory the server freed while starting); and
the heartbeat, with a short interval: each client notes when each ping arrives, how late it
is (past the interval after the client last sent anything; the protocol allows the server's
check period more), and the server's stamp in it (its loop's clock, the same monotonic clock
on Linux), so that a check's pings can be told apart and the time they take to reach every
client measured; one more connection pings the server every 20 ms meanwhile (how long a
request waits behind a check); the server's CPU time (utime + stime of /proc/PID/stat) per
heartbeat round and per check; and whether any connection is dropped. Then it extrapolates
linearly to `--extrapolate` connections: memory, heartbeat cost, and the open-file limits.

    python benchmarks/idle.py                          # 19,000 connections, 4 client processes
    python benchmarks/idle.py --connections 5000 --workers 1 --json
    python benchmarks/idle.py --heartbeat-interval 60 --heartbeat-timeout 180 --window 10
                                                       # checks without pings: the bare sweep
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import math
import multiprocessing
import os
import resource
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter
from multiprocessing.connection import Connection as Pipe
from pathlib import Path
from typing import Any, cast

from tuichat.bench.servers import UNLIMITED_FLOOD, free_port
from tuichat.protocol import (
    Bye,
    Connection,
    Error,
    Hello,
    Ping,
    Pong,
    ProtocolError,
    Role,
    Welcome,
)

IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)
"""Linux: choose the source port at `connect` (by the whole 4-tuple), not at `bind`."""
CLIENT_FILE_MARGIN = 100
"""Files a client process needs besides its connections."""
SERVER_FILE_MARGIN = 200
"""Files the server should have to spare besides its connections and its own files."""
HELLO_TIMEOUT = 10.0
"""The server's default `--hello-timeout` and `--frame-timeout` (they bound its check period)."""
TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")
PROBE_EVERY = 0.02
"""Seconds between two pings of the probe connection while the heartbeat is recorded."""


# --- the server ----------------------------------------------------------------------


def raise_file_limit() -> int:
    """Raise this process's open-file limit to its hard limit; return it."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def start_server(
    work: Path, interval: float, timeout: float, event_loop: str
) -> tuple[subprocess.Popen[bytes], int]:
    """Start the server; return it and its port once it accepts connections."""
    port = free_port()
    command = [
        sys.executable, "-m", "tuichat.server", "--host", "127.0.0.1", "--port", str(port),
        "--db", str(work / "history.sqlite3"), "--log-level", "WARNING",
        "--heartbeat-interval", str(interval), "--heartbeat-timeout", str(timeout),
        "--event-loop", event_loop, *UNLIMITED_FLOOD,
    ]  # fmt: skip
    log = open(work / "server.log", "wb")  # noqa: SIM115 (the server holds it)
    process = subprocess.Popen(  # not in the current folder: `-m` would import from it
        command, stdout=log, stderr=log, stdin=subprocess.DEVNULL, cwd=work,
        preexec_fn=raise_file_limit,
    )  # fmt: skip
    deadline = time.monotonic() + 15
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited: {(work / 'server.log').read_text()[-500:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return process, port
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"nothing listens on {port} after 15 s") from None
            time.sleep(0.05)


def memory(pid: int) -> dict[str, int]:
    """The resident (VmRSS) and proportional (Pss) memory of process `pid`, in bytes."""
    found = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                found["rss"] = int(line.split()[1]) * 1024
    with open(f"/proc/{pid}/smaps_rollup") as rollup:
        for line in rollup:
            if line.startswith("Pss:"):
                found["pss"] = int(line.split()[1]) * 1024
    return found


def cpu_seconds(pid: int) -> float:
    """utime + stime of process `pid` (every thread), from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS_PER_SECOND  # fields 14 and 15


def open_files(pid: int) -> Counter[str]:
    """Process `pid`'s open files by kind: socket, a file's path, anon_inode:[eventpoll]..."""
    kinds: Counter[str] = Counter()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            kinds["socket" if target.startswith("socket:") else target] += 1
    return kinds


def file_limit(pid: int) -> tuple[int, int]:
    """The soft and hard open-file limit of process `pid`."""
    with open(f"/proc/{pid}/limits") as limits:
        for line in limits:
            if line.startswith("Max open files"):
                soft, hard = line.split()[3:5]
                return int(soft), int(hard)
    raise RuntimeError(f"process {pid} reports no open-file limit")


# --- the clients (one process each) --------------------------------------------------


class IdleClient(asyncio.Protocol):
    """One idle connection: `hello`, then a `pong` for every `ping`, noting when each came."""

    def __init__(self, worker: Worker, name: str) -> None:
        self.worker = worker
        self.name = name
        self.conn = Connection(Role.CLIENT)
        self.transport: asyncio.Transport | None = None
        self.welcomed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.last_sent = 0.0
        """When this client last wrote (monotonic seconds): the server's silence starts then."""
        self.pings: list[tuple[float, float, float]] = []
        """While recording: each ping's arrival, how long after `last_sent` it came, and how
        long after `last_sent` the server sent it (its `data`: the server's clock in ms, the
        same monotonic clock as ours on Linux)."""
        self.lost = ""
        self.probing: dict[int, float] = {}
        """While probing: when each ping not answered yet was sent, by its `data`."""
        self.round_trips: list[float] = []

    async def probe(self, every: float) -> None:
        """Ping the server every `every` seconds, noting each round trip: how long the server
        leaves a request waiting (while a check sweeps through every connection, say)."""
        assert self.transport is not None
        for n in itertools.count(1):
            self.probing[n] = time.monotonic()
            self.transport.write(self.conn.send(Ping(data=n)))
            self.last_sent = time.monotonic()
            await asyncio.sleep(every)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self.conn.send(Hello(name=self.name, client="idle-bench")))
        self.last_sent = time.monotonic()

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        assert self.transport is not None
        try:
            events = self.conn.receive_data(data)
        except ProtocolError as exc:
            self._lose(f"protocol error: {exc}")
            self.transport.abort()
            return
        for event in events:
            if isinstance(event, Ping):
                if self.worker.recording:
                    sent = event.data / 1000 - self.last_sent
                    self.pings.append((now, now - self.last_sent, sent))
                self.transport.write(self.conn.send(Pong(data=event.data, ref=event.ref)))
                self.last_sent = time.monotonic()
            elif isinstance(event, Pong):
                asked = self.probing.pop(event.data, None)
                if asked is not None:
                    self.round_trips.append(now - asked)
            elif isinstance(event, Welcome):
                if not self.welcomed.done():
                    self.welcomed.set_result(None)
            elif isinstance(event, Error):
                self._lose(f"error {event.code}: {event.message}")
            elif isinstance(event, Bye):
                self._lose(f"bye {event.reason}")

    def connection_lost(self, exc: Exception | None) -> None:
        self._lose(f"connection lost ({exc or 'closed by the server'})")

    def _lose(self, why: str) -> None:
        if self.lost:
            return
        self.lost = why
        if not self.welcomed.done():
            self.welcomed.set_exception(ConnectionError(why))
        elif not self.worker.closing:
            self.worker.dropped[why] += 1


class Worker:
    """A client process's connections, driven by commands from the main process."""

    def __init__(self, pipe: Pipe, index: int, sources: list[str], target: tuple[str, int]):
        self.pipe = pipe
        self.index = index
        self.sources = sources
        self.target = target
        self.clients: list[IdleClient] = []
        self.recording = False
        self.closing = False
        self.dropped: Counter[str] = Counter()
        self.named = 0
        """Connections asked for so far (each has a name of its own)."""
        self.probe: IdleClient | None = None
        """The connection that pings the server while recording (not idle, then)."""
        self.probing: asyncio.Task[None] | None = None

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            command: dict[str, Any] = await loop.run_in_executor(None, self.pipe.recv)
            action = command["action"]
            if action == "connect":
                answer = await self.connect(command["count"], command["concurrency"])
            elif action == "record":
                for client in self.clients:
                    client.pings.clear()
                self.recording = True
                if command.get("probe") and self.clients:
                    self.probe = self.clients[0]
                    self.probing = asyncio.create_task(self.probe.probe(PROBE_EVERY))
                answer = {}
            elif action == "report":
                self.recording = False
                if self.probing is not None:
                    self.probing.cancel()
                answer = {
                    "pings": [c.pings for c in self.clients if not c.lost and c is not self.probe],
                    "round_trips": self.probe.round_trips if self.probe is not None else [],
                    "open": sum(not client.lost for client in self.clients),
                    "dropped": dict(self.dropped),
                }
            else:  # close: reset every connection (SO_LINGER 0: no TIME_WAIT left behind)
                self.closing = True
                for client in self.clients:
                    if client.transport is not None:
                        client.transport.abort()
                self.pipe.send({})
                return
            self.pipe.send(answer)

    async def connect(self, count: int, concurrency: int) -> dict[str, Any]:
        gate = asyncio.Semaphore(concurrency)
        failures: Counter[str] = Counter()

        async def one(n: int) -> None:
            async with gate:
                try:
                    client = await self.open(
                        f"idle{self.index}x{n}", self.sources[n % len(self.sources)]
                    )
                except (OSError, ConnectionError, TimeoutError) as exc:
                    failures[str(exc) or type(exc).__name__] += 1
                    return
                self.clients.append(client)

        started = time.monotonic()
        first, self.named = self.named, self.named + count
        await asyncio.gather(*(one(n) for n in range(first, first + count)))
        return {
            "connected": len(self.clients),
            "failures": dict(failures.most_common(5)),
            "seconds": time.monotonic() - started,
        }

    async def open(self, name: str, source: str) -> IdleClient:
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
            sock.bind((source, 0))
            sock.setblocking(False)
            async with asyncio.timeout(60):
                await loop.sock_connect(sock, self.target)
                _, client = await loop.create_connection(lambda: IdleClient(self, name), sock=sock)
                try:
                    await client.welcomed
                except BaseException:
                    if client.transport is not None:
                        client.transport.abort()
                    raise
                return client
        except BaseException:
            sock.close()
            raise


def run_worker(pipe: Pipe, index: int, sources: list[str], target: tuple[str, int]) -> None:
    raise_file_limit()
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    asyncio.run(Worker(pipe, index, sources, target).serve())


# --- the measurement -----------------------------------------------------------------


def ask_all(pipes: list[Pipe], commands: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for pipe, command in zip(pipes, commands, strict=True):
        pipe.send(command)
    return [pipe.recv() for pipe in pipes]


def bursts(stamped: list[tuple[float, float]], gap: float) -> list[list[tuple[float, float]]]:
    """Split pings (sorted by the server's stamp) into the server's checks: no more than `gap`
    between two stamps of one check."""
    groups: list[list[tuple[float, float]]] = []
    for ping in stamped:
        if groups and ping[0] - groups[-1][-1][0] <= gap:
            groups[-1].append(ping)
        else:
            groups.append([ping])
    return groups


def run(args: argparse.Namespace) -> dict[str, Any]:
    say = (lambda line: print(line, file=sys.stderr, flush=True)) if args.json else print
    hard = raise_file_limit()
    per_worker = math.ceil(args.connections / args.workers)
    if per_worker + CLIENT_FILE_MARGIN > hard:
        raise SystemExit(
            f"{per_worker:,} connections per client process need an open-file limit of "
            f"{per_worker + CLIENT_FILE_MARGIN:,} (the hard limit is {hard:,}): use more --workers"
        )
    interval, timeout = args.heartbeat_interval, args.heartbeat_timeout
    tick = min(interval, timeout, HELLO_TIMEOUT) / 4
    result: dict[str, Any] = {
        "connections": args.connections,
        "workers": args.workers,
        "heartbeat_interval_s": interval,
        "heartbeat_timeout_s": timeout,
        "check_period_s": tick,
        "event_loop": args.event_loop,
    }
    with tempfile.TemporaryDirectory(prefix="tuichat-idle-") as folder:
        server, port = start_server(Path(folder), interval, timeout, args.event_loop)
        pipes: list[Pipe] = []
        workers: list[multiprocessing.process.BaseProcess] = []
        try:
            time.sleep(1)  # let the server settle (it has just opened its history)
            before = memory(server.pid)
            files_before = open_files(server.pid)
            soft, _ = file_limit(server.pid)
            result["server_file_limit"] = soft
            say(f"server {server.pid} on port {port}: {before['rss'] / 2**20:.1f} MiB resident, "
                f"open-file limit {soft:,}; {sum(files_before.values())} open files: "
                f"{dict(files_before)}")  # fmt: skip
            context = multiprocessing.get_context("fork")
            for index in range(args.workers):
                sources = [
                    f"127.0.0.{2 + index * args.sources_per_worker + s}"
                    for s in range(args.sources_per_worker)
                ]
                ours, theirs = context.Pipe()
                process = context.Process(
                    target=run_worker, args=(theirs, index, sources, ("127.0.0.1", port))
                )
                process.start()
                pipes.append(ours)
                workers.append(process)
            counts = [
                len(range(index, args.connections, args.workers)) for index in range(args.workers)
            ]
            say(f"connecting {args.connections:,} from {args.workers} processes "
                f"({args.sources_per_worker} source addresses each)...")  # fmt: skip
            # in two halves: the second half's cost is the marginal one (the first reuses
            # memory the server freed at start-up)
            connect_s = 0.0
            failures: Counter[str] = Counter()
            halves = [[c // 2 for c in counts], [c - c // 2 for c in counts]]
            marks = [before]
            for half in halves:
                started = time.monotonic()
                answers = ask_all(
                    pipes,
                    [
                        {"action": "connect", "count": c, "concurrency": args.concurrency}
                        for c in half
                    ],
                )
                connect_s += time.monotonic() - started
                for answer in answers:
                    failures.update(answer["failures"])
                time.sleep(args.settle)  # presence counts are written within 5 s; let them go
                marks.append(memory(server.pid))
            connected = sum(a["connected"] for a in answers)
            result.update(
                connected=connected,
                connect_s=round(connect_s, 2),
                connects_per_s=round(connected / connect_s),
                connect_failures=dict(failures),
            )
            say(f"  {connected:,} connected and welcomed in {connect_s:.1f} s "
                f"({connected / connect_s:,.0f}/s); {sum(failures.values())} failed "
                f"{dict(failures) or ''}")  # fmt: skip
            after = marks[-1]
            files_after = open_files(server.pid)
            per_rss = (after["rss"] - before["rss"]) / max(connected, 1)
            per_pss = (after["pss"] - before["pss"]) / max(connected, 1)
            second = max(sum(halves[1]), 1)
            marginal = (after["rss"] - marks[1]["rss"]) / second
            marginal_pss = (after["pss"] - marks[1]["pss"]) / second
            own_files = sum(files_before.values()) - files_before["socket"]
            listening = files_before["socket"]
            result.update(
                rss_before=before["rss"],
                rss_half=marks[1]["rss"],
                rss_after=after["rss"],
                pss_before=before["pss"],
                pss_after=after["pss"],
                rss_per_connection=round(per_rss),
                pss_per_connection=round(per_pss),
                rss_per_connection_marginal=round(marginal),
                pss_per_connection_marginal=round(marginal_pss),
                server_files=sum(files_after.values()),
                server_sockets=files_after["socket"],
                server_other_files={k: n for k, n in files_after.items() if k != "socket"},
            )
            say(
                f"  server memory {before['rss'] / 2**20:.1f} -> {after['rss'] / 2**20:.1f} MiB "
                f"resident: {per_rss / 1024:.2f} KiB per connection ({per_pss / 1024:.2f} KiB Pss)"
                f"; the second half {marginal / 1024:.2f} KiB each ({marginal_pss / 1024:.2f} Pss)"
            )
            say(f"  {files_after['socket']:,} sockets and {own_files} other files open")

            # the heartbeat: a few rounds of pings, every arrival noted by its client
            say(f"heartbeat: interval {interval} s, timeout {timeout} s, checked every "
                f"{tick} s; recording {args.rounds} rounds...")  # fmt: skip
            ask_all(
                pipes, [{"action": "record", "probe": index == 0} for index in range(args.workers)]
            )
            cpu_start, wall_start = cpu_seconds(server.pid), time.monotonic()
            time.sleep(args.window or args.rounds * (interval + tick))
            cpu_used, window = cpu_seconds(server.pid) - cpu_start, time.monotonic() - wall_start
            reports = ask_all(pipes, [{"action": "report"}] * args.workers)
            final = memory(server.pid)
            result.update(
                heartbeat(reports, connected, interval, tick, window, cpu_used, wall_start)
            )
            result["rss_after_heartbeat"] = final["rss"]
            for line in describe_heartbeat(result):
                say(line)
            result["extrapolated"] = extrapolate(result, args.extrapolate, own_files, listening)
            for line in describe_extrapolation(result["extrapolated"]):
                say(line)
        finally:
            if pipes:
                with contextlib.suppress(OSError, EOFError):
                    ask_all(pipes, [{"action": "close"}] * len(pipes))
            for worker in workers:
                worker.join(10)
                if worker.is_alive():
                    worker.kill()
            server.terminate()
            try:
                server.wait(15)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
    return result


def heartbeat(
    reports: list[dict[str, Any]],
    connected: int,
    interval: float,
    tick: float,
    window: float,
    cpu_used: float,
    start: float,
) -> dict[str, Any]:
    """What the clients saw of the heartbeat, and what it cost the server."""
    per_client: list[list[tuple[float, float, float]]] = [p for r in reports for p in r["pings"]]
    pings = sum(len(p) for p in per_client)
    connected -= 1  # the probe is not idle
    late = sorted(after - interval for p in per_client for _, after, _ in p)
    server_late = sorted(sent - interval for p in per_client for _, _, sent in p)
    transit = sorted(after - sent for p in per_client for _, after, sent in p)
    rounds = pings / max(connected, 1)
    # on time: no silence went unpinged for longer than interval + the check period (+ 100 ms)
    slack = 0.1
    expected = int((window - interval - tick - slack) // (interval + tick)) + 1
    on_time = sum(
        len(p) >= expected and all(after <= interval + tick + slack for _, after, _ in p)
        for p in per_client
    )
    # the checks: pings the server stamped within half a check period of each other
    stamped = sorted((at - after + sent, at) for p in per_client for at, after, sent in p)
    checks = bursts(stamped, gap=tick / 2)
    spreads = [max(at for _, at in c) - min(at for _, at in c) for c in checks]
    sweeps = [c[-1][0] - c[0][0] for c in checks]
    sizes = [len(c) for c in checks]
    dropped: Counter[str] = Counter()
    for report in reports:
        dropped.update(report["dropped"])
    trips = sorted(t for r in reports for t in r["round_trips"])

    def ms(values: list[float], q: float) -> float | None:
        return (
            round(values[min(int(len(values) * q), len(values) - 1)] * 1000, 1) if values else None
        )

    return {
        "window_s": round(window, 2),
        "pings": pings,
        "rounds": round(rounds, 2),
        "idle_connections": connected,
        "pings_expected_per_connection": expected,
        "connections_pinged_on_time": on_time,
        "median_lateness_ms": ms(late, 0.5),
        "p99_lateness_ms": ms(late, 0.99),
        "max_lateness_ms": ms(late, 1.0),
        "max_server_lateness_ms": ms(server_late, 1.0),
        "p99_server_lateness_ms": ms(server_late, 0.99),
        "max_transit_ms": ms(transit, 1.0),
        "p99_transit_ms": ms(transit, 0.99),
        "checks_with_pings": len(checks),
        "median_pings_per_check": int(statistics.median(sizes)) if sizes else 0,
        "max_check_spread_ms": round(max(spreads) * 1000, 1) if spreads else None,
        "median_check_spread_ms": round(statistics.median(spreads) * 1000, 1) if spreads else None,
        "max_sweep_ms": round(max(sweeps) * 1000, 1) if sweeps else None,
        "checks": [
            (round(c[0][0] - start, 3), len(c), round(spread * 1000, 1), round(sweep * 1000, 1))
            for c, spread, sweep in zip(checks, spreads, sweeps, strict=True)
        ],
        "probe_round_trips": len(trips),
        "probe_median_ms": ms(trips, 0.5),
        "probe_p99_ms": ms(trips, 0.99),
        "probe_max_ms": ms(trips, 1.0),
        "server_cpu_s": round(cpu_used, 3),
        "cpu_ms_per_round": round(cpu_used / rounds * 1000, 1) if rounds else None,
        "cpu_us_per_connection_round": round(cpu_used / max(pings, 1) * 1e6, 2),
        "cpu_ms_per_check": round(cpu_used / (window / tick) * 1000, 2),
        "dropped": sum(dropped.values()),
        "drop_reasons": dict(dropped),
        "still_open": sum(r["open"] for r in reports),
    }


def extrapolate(
    measured: dict[str, Any], target: int, own_files: int, listening: int
) -> dict[str, Any]:
    """Scale the per-connection figures linearly to `target` connections."""
    connected = measured["connected"]
    scale = target / max(connected, 1)
    server_files = target + own_files + listening + SERVER_FILE_MARGIN
    _, client_hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    per_client_process = client_hard - CLIENT_FILE_MARGIN
    low, high = (int(p) for p in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    interval = measured["heartbeat_interval_s"]
    round_s = interval + measured["check_period_s"]
    cpu_round = measured["server_cpu_s"] / max(measured["rounds"], 1e-9) * scale
    cpu_check = measured["cpu_ms_per_check"] / 1000 * scale
    default_round = 10.0 + 2.5  # the defaults: ping after 10 s of silence, checked every 2.5 s
    return {
        "connections": target,
        "rss_bytes": round(
            measured["rss_after"] + measured["rss_per_connection_marginal"] * (target - connected)
        ),
        "cpu_s_per_round": round(cpu_round, 2),
        "cpu_s_per_check": round(cpu_check, 3),
        "cpu_share_at_this_interval": round(cpu_round / round_s, 3),
        "cpu_share_at_default_interval": round(cpu_round / default_round, 3),
        "check_spread_s": round((measured["max_check_spread_ms"] or 0) / 1000 * scale, 2),
        "probe_stall_s": round((measured["probe_max_ms"] or 0) / 1000 * scale, 2),
        "server_ulimit_n": server_files,
        "server_files": {
            "connections": target,
            "own": own_files,
            "sockets": listening,
            "margin": SERVER_FILE_MARGIN,
        },
        "client_processes": math.ceil(target / per_client_process),
        "client_ulimit_n": per_client_process + CLIENT_FILE_MARGIN,
        "ephemeral_ports_per_source": high - low + 1,
        "source_addresses": math.ceil(target / (high - low + 1)),
    }


def describe_heartbeat(r: dict[str, Any]) -> list[str]:
    tick_ms = r["check_period_s"] * 1000
    window = r["window_s"]
    cpu = (
        f"  server CPU {r['server_cpu_s']:.2f} s in {window:.1f} s "
        f"({r['server_cpu_s'] / window:.1%} of a core): {r['cpu_ms_per_check']:.1f} ms per check"
    )
    probe = (
        f"  meanwhile one more connection, pinging every {PROBE_EVERY * 1000:.0f} ms, got its "
        f"pongs in {r['probe_median_ms']} ms (median), {r['probe_p99_ms']} ms (p99), "
        f"{r['probe_max_ms']} ms at most"
    )
    if not r["pings"]:
        return [f"  no pings in {window:.1f} s (the interval is longer)", probe, cpu]
    return [
        f"  {r['pings']:,} pings in {window:.1f} s ({r['rounds']:.2f} rounds); "
        f"{r['connections_pinged_on_time']:,} of {r['idle_connections']:,} idle connections "
        f"pinged on time every round (within the interval + {tick_ms:.0f} ms + 100)",
        f"  late past the interval: median {r['median_lateness_ms']:.0f} ms, p99 "
        f"{r['p99_lateness_ms']:.0f}, max {r['max_lateness_ms']:.0f} (the server sent at most "
        f"{r['max_server_lateness_ms']:.0f} ms late, the client read it at most "
        f"{r['max_transit_ms']:.0f} ms after)",
        f"  one check's pings reach their clients within {r['max_check_spread_ms']:.0f} ms "
        f"(median {r['median_check_spread_ms']:.0f} ms, {r['median_pings_per_check']:,} "
        f"pings); the longest check stamped its pings over {r['max_sweep_ms']:.0f} ms",
        probe,
        f"{cpu}, {r['cpu_ms_per_round']:.0f} ms per round, "
        f"{r['cpu_us_per_connection_round']:.1f} µs per connection per round",
        f"  dropped: {r['dropped']} {r['drop_reasons'] or ''}; still open {r['still_open']:,}; "
        f"resident {r['rss_after_heartbeat'] / 2**20:.1f} MiB",
    ]


def describe_extrapolation(e: dict[str, Any]) -> list[str]:
    files = e["server_files"]
    return [
        f"extrapolated to {e['connections']:,} connections (linearly):",
        f"  server memory {e['rss_bytes'] / 2**20:,.0f} MiB resident",
        f"  heartbeat: {e['cpu_s_per_round']:.2f} s of CPU per round "
        f"({e['cpu_share_at_this_interval']:.0%} of a core at this interval, "
        f"{e['cpu_share_at_default_interval']:.0%} at the default 10 s), "
        f"{e['cpu_s_per_check'] * 1000:.0f} ms per check; a check's pings spread over "
        f"{e['check_spread_s']:.2f} s; a request may wait {e['probe_stall_s']:.2f} s behind it",
        f"  server: ulimit -n {e['server_ulimit_n']:,} ({files['connections']:,} connections + "
        f"{files['own']} files and {files['sockets']} sockets of its own (listening, the loop's) "
        f"+ {files['margin']} to spare); its hard limit (LimitNOFILE=) and fs.nr_open must allow "
        f"it",
        f"  clients: {e['client_processes']} processes of at most "
        f"{e['client_ulimit_n'] - CLIENT_FILE_MARGIN:,} connections (ulimit -n "
        f"{e['client_ulimit_n']:,} each), from at least {e['source_addresses']} source addresses "
        f"({e['ephemeral_ports_per_source']:,} ephemeral ports each)",
    ]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--connections", type=int, default=19_000)
    parser.add_argument("--workers", type=int, default=4, help="client processes (default 4)")
    parser.add_argument(
        "--sources-per-worker", type=int, default=2, help="loopback source addresses each"
    )
    parser.add_argument(
        "--concurrency", type=int, default=100, help="handshakes in flight per client process"
    )
    parser.add_argument("--heartbeat-interval", type=float, default=2.0)
    parser.add_argument("--heartbeat-timeout", type=float, default=6.0)
    parser.add_argument("--rounds", type=int, default=4, help="heartbeat rounds to record")
    parser.add_argument(
        "--window", type=float, default=0, help="seconds to record (default: the rounds')"
    )
    parser.add_argument(
        "--settle", type=float, default=6.0, help="seconds to wait after connecting"
    )
    parser.add_argument("--event-loop", choices=["auto", "uvloop", "asyncio"], default="auto")
    parser.add_argument("--extrapolate", type=int, default=100_000)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    return parser.parse_args(argv)


def main() -> None:
    args = parse_args()
    result = run(args)
    if args.json:
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
