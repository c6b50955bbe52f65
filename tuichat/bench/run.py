"""The benchmark's scenarios, run from the main process against load-generating workers."""

from __future__ import annotations

import math
import multiprocessing
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection as Pipe
from typing import Any

from tuichat.bench import load
from tuichat.bench.servers import ServerProcess

SPAWN = multiprocessing.get_context("spawn")  # a forked child would share the parent's state


@dataclass
class Phase:
    """One burst of messages and what came of it."""

    deliveries: int
    expected: int
    seconds: float
    latencies_us: list[int]
    server_cpu_s: float
    generator_cpu_s: float
    gaps: int = 0
    extra: int = 0
    dropped: list[str] = field(default_factory=list)
    short: list[str] = field(default_factory=list)
    """Connections that got fewer messages than they should (what they got)."""

    @property
    def lost(self) -> int:
        """Deliveries that did not arrive."""
        return self.expected - self.deliveries

    def summary(self) -> dict[str, Any]:
        """The figures a reader wants, JSON-ready."""
        rate = self.deliveries / self.seconds if self.seconds else 0.0
        return {
            "deliveries": self.deliveries,
            "lost": self.lost,
            "duplicates_or_gaps": self.gaps + self.extra,
            "seconds": round(self.seconds, 4),
            "deliveries_per_s": round(rate),
            "latency_p50_ms": _percentile_ms(self.latencies_us, 50),
            "latency_p99_ms": _percentile_ms(self.latencies_us, 99),
            "latency_samples": len(self.latencies_us),
            "server_cpu_ns_per_delivery": round(self.server_cpu_s * 1e9 / max(self.deliveries, 1)),
            "server_cpu_cores": round(self.server_cpu_s / self.seconds, 2) if self.seconds else 0,
            "generator_cpu_cores": round(self.generator_cpu_s / self.seconds, 2)
            if self.seconds
            else 0,
            "dropped": self.dropped[:5],
            "short": self.short[:5],
        }


def _percentile_ms(samples: list[int], percent: int) -> float | None:
    if not samples:
        return None
    ordered = sorted(samples)
    index = min(len(ordered) - 1, math.ceil(percent / 100 * len(ordered)) - 1)
    return round(ordered[index] / 1000, 2)


class Generator:
    """The load-generating worker processes."""

    def __init__(self, workers: int) -> None:
        self._pipes: list[Pipe] = []
        self._processes = []
        for _ in range(workers):
            ours, theirs = SPAWN.Pipe()
            process = SPAWN.Process(target=load.serve, args=(theirs,), daemon=True)
            process.start()
            self._pipes.append(ours)
            self._processes.append(process)

    def ask(self, commands: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Give each worker its command (all at once) and return their answers."""
        for pipe, command in zip(self._pipes, commands, strict=True):
            pipe.send(command)
        return [pipe.recv() for pipe in self._pipes]

    def ask_all(self, command: dict[str, Any]) -> list[dict[str, Any]]:
        return self.ask([dict(command) for _ in self._pipes])

    @property
    def size(self) -> int:
        return len(self._pipes)

    def stop(self) -> None:
        self.ask_all({"action": "stop"})
        for process in self._processes:
            process.join(10)


JOINED = {"tuichat": "connect+join", "irc": "connect+join", "redis": "connect+subscribe"}
"""What the connect phase times, by protocol: until each client is in the room."""


@dataclass
class Connected:
    """Clients connected to one server."""

    clients: int
    seconds: float
    rss_per_client: float
    failed: int
    failures: list[str]


def connect(
    generator: Generator,
    server: ServerProcess,
    clients: int,
    senders: int,
    probes: int,
    mark_read_every: float = 0,
    mark_read_spread: float = 0,
) -> Connected:
    """Connect `clients` (some of them senders, some probes) and time it; measure memory.

    A Redis sender is two connections: its subscriber, and one to publish on. tuichat
    clients mark the room read about once every `mark_read_every` seconds (0: never;
    `read_pause`)."""
    irc = server.protocol == "irc"
    sender_at = {i * clients // senders: n for n, i in enumerate(range(senders))} if senders else {}
    probe_at = {(2 * i + 1) * clients // (2 * probes) for i in range(probes)}
    per_worker: list[list[dict[str, Any]]] = [[] for _ in range(generator.size)]
    for i in range(clients):
        per_worker[i % generator.size].append(
            {
                "name": f"u{i:05d}",
                "sender": sender_at.get(i),
                "probe": i in probe_at,
                "port": server.ports[(i // generator.size) % len(server.ports)],
            }
        )
    rss_before = server.rss_bytes()
    answers = generator.ask(
        [
            {
                "action": "connect",
                "kind": server.protocol,
                "clients": mine,
                "concurrency": 4 if irc else 500,  # ngIRCd's listen backlog is 10; ours 1024
                "mark_read_every": mark_read_every if server.protocol == "tuichat" else 0,
                "mark_read_spread": mark_read_spread,
            }
            for mine in per_worker
        ]
    )
    seconds = (max(a["ended_ns"] for a in answers) - min(a["started_ns"] for a in answers)) / 1e9
    connected = sum(a["connected"] for a in answers)
    return Connected(
        clients=connected,
        seconds=seconds,
        rss_per_client=(server.rss_bytes() - rss_before) / max(connected, 1),
        failed=sum(a["failed"] for a in answers),
        failures=[f for a in answers for f in a["failures"]][:5],
    )


def phase(
    generator: Generator,
    server: ServerProcess,
    senders: int,
    messages: int,
    interval: float,
) -> Phase:
    """Each sender sends `messages` (every `interval` s, or flat out); every client counts."""
    timeout = 60 + messages * interval * 2
    cpu_before = server.cpu_seconds()
    answers = generator.ask_all(
        {
            "action": "run",
            "messages": messages,
            "interval": interval,
            "expected": senders * messages,
            "timeout": timeout,
            "echo": server.protocol != "irc",  # IRC does not echo to the sender
            "senders": senders,
            "start_at": time.monotonic() + 0.1,
        }
    )
    server_cpu = server.cpu_seconds() - cpu_before
    started = min(a["started_ns"] for a in answers)
    ended = max(a["ended_ns"] for a in answers)
    return Phase(
        deliveries=sum(a["received"] for a in answers),
        expected=sum(a["expected"] for a in answers),
        seconds=(ended - started) / 1e9,
        latencies_us=[v for a in answers for v in a["latencies_us"]],
        server_cpu_s=server_cpu,
        generator_cpu_s=sum(a["cpu_s"] for a in answers),
        gaps=sum(a["gaps"] for a in answers),
        extra=sum(a["extra"] for a in answers),
        dropped=[d for a in answers for d in a["dropped"]],
        short=[d for a in answers for d in a["short"]],
    )


def fanout(
    server: ServerProcess,
    generator: Generator,
    clients: int,
    senders: int,
    messages: int,
    runs: int,
    paced_rate: float,
    paced_seconds: float,
    say: Callable[[str], None],
    mark_read_every: float = 0,
    mark_read_spread: float = 0,
) -> dict[str, Any]:
    """The room fan-out workload against one server: connect, then `runs` flat out and paced.

    With `mark_read_every`, every tuichat client marks the room read about that often (s,
    each pause within `mark_read_spread` of it), and the result says how many markers were
    sent and whether the server holds the probes'."""
    probes = max(2, clients // 100)
    marking = mark_read_every if server.protocol == "tuichat" else 0
    also = f", marking read every {marking:g} s" if marking else ""
    say(f"{server.name} N={clients}: connecting {clients} clients ({senders} send, {probes} probe"
        f"{also})")  # fmt: skip
    joined = connect(generator, server, clients, senders, probes, marking, mark_read_spread)
    say(f"  {JOINED[server.protocol]} of {joined.clients} in {joined.seconds:.2f} s "
        f"({joined.rss_per_client / 1024:.1f} KiB of server memory each)")  # fmt: skip
    result: dict[str, Any] = {
        "server": server.name,
        "clients": clients,
        "senders": senders,
        "messages": messages,
        "mark_read_every": marking,
        "connect_s": round(joined.seconds, 3),
        "connect_failed": joined.failed,
        "rss_per_client_bytes": round(joined.rss_per_client),
        "flat": [],
    }
    if server.servers > 1:
        result["connections_per_server"] = spread = server.connections()
        say(f"  connections per server process: {' / '.join(map(str, spread))}")
    if joined.failed:
        say(f"  {joined.failed} failed to connect, e.g. {joined.failures}")
        generator.ask_all({"action": "close"})
        return result
    for run in range(runs):
        flat = phase(generator, server, senders, messages, 0.0).summary()
        result["flat"].append(flat)
        say(f"  flat out, run {run + 1}/{runs}: {_line(flat)}")
    per_message = clients - 1 if server.protocol == "irc" else clients
    interval = senders * per_message / paced_rate
    paced_messages = max(1, min(messages, int(paced_seconds / interval)))
    result["paced_offered_deliveries_per_s"] = paced_rate
    result["paced_messages_per_sender"] = paced_messages
    result["paced"] = []
    for run in range(runs):
        paced = phase(generator, server, senders, paced_messages, interval).summary()
        result["paced"].append(paced)
        say(f"  paced at {paced_rate:,.0f} deliveries/s offered, run {run + 1}/{runs}: "
            f"{_line(paced)}")  # fmt: skip
    result["flat_median"] = _medians(result["flat"])
    result["paced_median"] = _medians(result["paced"])
    if marking:
        answers = generator.ask_all({"action": "markers"})
        markers = {key: sum(a[key] for a in answers) for key in answers[0]}
        result["read_markers"] = markers
        say(
            f"  read markers: {markers['sent']:,} sent by {markers['clients']} clients; "
            f"the server holds {markers['stored']} of {markers['checked']} probes' last ones"
        )
    generator.ask_all({"action": "close"})
    return result


def idle(
    server: ServerProcess, generator: Generator, clients: int, say: Callable[[str], None]
) -> dict[str, Any]:
    """Connect `clients` that stay idle: how long it takes, and the server's memory per client."""
    say(f"{server.name}: connecting {clients} idle clients")
    joined = connect(generator, server, clients, 0, 0)
    say(f"  {JOINED[server.protocol]} of {joined.clients} in {joined.seconds:.2f} s, "
        f"{joined.rss_per_client / 1024:.2f} KiB each; {joined.failed} failed")  # fmt: skip
    spread = server.connections() if server.servers > 1 else None
    generator.ask_all({"action": "close"})
    return {
        "server": server.name,
        "what": JOINED[server.protocol],
        "asked": clients,
        "clients": joined.clients,
        "connections_per_server": spread,
        "connect_s": round(joined.seconds, 3),
        "rss_per_client_bytes": round(joined.rss_per_client),
        "failed": joined.failed,
        "failures": joined.failures,
    }


def _line(summary: dict[str, Any]) -> str:
    return (
        f"{summary['deliveries_per_s']:,} deliveries/s, p50 {summary['latency_p50_ms']} ms, "
        f"p99 {summary['latency_p99_ms']} ms, server {summary['server_cpu_ns_per_delivery']} "
        f"ns/delivery ({summary['server_cpu_cores']} cores), generator "
        f"{summary['generator_cpu_cores']} cores, lost {summary['lost']}"
    )


def _medians(runs: list[dict[str, Any]]) -> dict[str, Any]:
    keys = (
        "deliveries_per_s",
        "latency_p50_ms",
        "latency_p99_ms",
        "server_cpu_ns_per_delivery",
        "server_cpu_cores",
        "generator_cpu_cores",
    )
    medians: dict[str, Any] = {
        key: statistics.median_low([r[key] for r in runs if r[key] is not None]) for key in keys
    }
    medians["lost"] = sum(r["lost"] for r in runs)
    medians["duplicates_or_gaps"] = sum(r["duplicates_or_gaps"] for r in runs)
    return medians
