"""What durable history costs: acknowledged writes per second, and fan-out with history on and off.

Starts `tuichat-server` as a subprocess, once with SQLite history (acknowledgement
after the group commit, synchronous=FULL) and once with `--no-history`, and runs
the same load against each:

- writes: S senders, each keeping W sends in flight, M messages each; no other
  readers. Reported: acknowledged messages per second (each one durable before
  its ack).
- fan-out: the same senders plus R receivers in two other processes; reported:
  deliveries per second (messages x receivers) until every receiver has all.

    python benchmarks/history.py                      # defaults below
    python benchmarks/history.py --senders 4 --messages 5000 --receivers 20
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import re
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

from tuichat.client import ChatClient
from tuichat.protocol import Message

SPAWN = multiprocessing.get_context("spawn")  # a forked child would inherit the running loop


async def start_server(extra: list[str]) -> tuple[asyncio.subprocess.Process, int]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tuichat.server", "--port", "0", "--log-level", "INFO", *extra,
        "--messages-per-second", "1e12", "--message-burst", "1000000000",
        "--text-bytes-per-second", "1e12", "--text-byte-burst", "1000000000000",
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stderr is not None
    while True:
        line = await process.stderr.readline()
        if match := re.search(rb"listening on [\d.]+:(\d+)", line):
            return process, int(match.group(1))
        if not line:
            raise RuntimeError("the server did not start")


async def send_all(port: int, senders: int, messages: int, window: int) -> float:
    """Send from `senders` clients with `window` sends in flight each; return seconds."""
    clients = [await ChatClient.connect(f"sender{i}", "127.0.0.1", port) for i in range(senders)]
    text = "x" * 90

    async def run(client: ChatClient) -> None:
        limit = asyncio.Semaphore(window)

        async def one(i: int) -> None:
            async with limit:
                await client.send("#lobby", f"{i:08d} {text}")

        await asyncio.gather(*(one(i) for i in range(messages)))

    started = time.perf_counter()
    await asyncio.gather(*(run(c) for c in clients))
    elapsed = time.perf_counter() - started
    for client in clients:
        await client.close()
    return elapsed


def receive(port: int, count: int, expected: int, ready: object, done: object) -> None:
    """A receiver process: `count` clients that each wait for `expected` messages."""

    async def main() -> None:
        clients = [
            await ChatClient.connect(f"r{id(object())}{i}", "127.0.0.1", port) for i in range(count)
        ]
        ready.set()  # type: ignore[attr-defined]

        async def drain(client: ChatClient) -> None:
            got = 0
            while got < expected:
                for event in await client.next_events():
                    got += isinstance(event, Message)

        await asyncio.gather(*(drain(c) for c in clients))
        done.set()  # type: ignore[attr-defined]
        for client in clients:
            await client.abort()

    asyncio.run(main())


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    return ticks / 100


async def measure(mode: str, args: argparse.Namespace) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        extra = ["--db", str(Path(tmp) / "h.sqlite3")] if mode == "sqlite" else ["--no-history"]
        server, port = await start_server(extra)
        try:
            seconds = await send_all(port, args.senders, args.messages, args.window)
            writes = args.senders * args.messages / seconds
            total = args.senders * args.messages
            ready = [SPAWN.Event() for _ in range(2)]
            done = [SPAWN.Event() for _ in range(2)]
            per_process = args.receivers // 2
            receivers = [
                SPAWN.Process(target=receive, args=(port, per_process, total, ready[i], done[i]))
                for i in range(2)
            ]
            for process in receivers:
                process.start()
            for event in ready:
                await asyncio.to_thread(event.wait)
            cpu_before = cpu_seconds(server.pid)
            started = time.perf_counter()
            await send_all(port, args.senders, args.messages, args.window)
            for event in done:
                await asyncio.to_thread(event.wait)
            fanout_seconds = time.perf_counter() - started
            server_cpu = cpu_seconds(server.pid) - cpu_before
            for process in receivers:
                process.join()
        finally:
            server.terminate()
            await server.wait()
    deliveries = total * per_process * 2
    return {
        "writes_per_s": writes,
        "deliveries_per_s": deliveries / fanout_seconds,
        "server_cpu_share": server_cpu / fanout_seconds,
    }


async def store_alone(count: int) -> float:
    """Durable appends per second of the SQLite store by itself, one append per message."""
    from tuichat.server.history import SQLiteHistory, StoredMessage

    with tempfile.TemporaryDirectory() as tmp:
        store = SQLiteHistory(Path(tmp) / "h.sqlite3")
        done = asyncio.Event()
        remaining = count

        def durable() -> None:
            nonlocal remaining
            remaining -= 1
            if not remaining:
                done.set()

        started = time.perf_counter()
        for i in range(count):
            message = Message("#lobby", i + 1, "bench", "x" * 90, 1_767_269_400_000, False)
            store.append([StoredMessage(message, 1, "bench", f"id{i}")], durable)
            if i % 1000 == 999:
                await asyncio.sleep(0)  # let callbacks run, as the server's loop would
        await done.wait()
        elapsed = time.perf_counter() - started
        commits = store.commits
        await store.close()
    print(f"SQLite store alone: {count / elapsed:,.0f} durable appends/s ({commits} commits)")
    return count / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--senders", type=int, default=4)
    parser.add_argument("--messages", type=int, default=5000, help="per sender")
    parser.add_argument("--window", type=int, default=64, help="sends in flight per sender")
    parser.add_argument("--receivers", type=int, default=20)
    parser.add_argument("--runs", type=int, default=3, help="report the median of this many")
    args = parser.parse_args()
    resource.setrlimit(resource.RLIMIT_NOFILE, (4096, 4096))
    results: dict[str, list[dict[str, float]]] = {"sqlite": [], "off": []}
    for run in range(args.runs):
        for mode in results:  # alternate, so that noise hits both alike
            results[mode].append(asyncio.run(measure(mode, args)))
            print(f"run {run + 1} {mode:>6}: " + ", ".join(
                f"{k} {v:,.2f}" for k, v in results[mode][-1].items()
            ), flush=True)  # fmt: skip
    print()
    print(f"{'history':>8} {'acked writes/s':>15} {'deliveries/s':>13} {'server CPU':>11}")
    medians = {}
    for mode, runs in results.items():
        medians[mode] = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        m = medians[mode]
        print(
            f"{mode:>8} {m['writes_per_s']:>15,.0f} {m['deliveries_per_s']:>13,.0f}"
            f" {m['server_cpu_share']:>10.0%}"
        )
    ratio = medians["sqlite"]["deliveries_per_s"] / medians["off"]["deliveries_per_s"]
    print(f"fan-out with SQLite history / without: {ratio:.2f}")
    asyncio.run(store_alone(100_000))


if __name__ == "__main__":
    main()
