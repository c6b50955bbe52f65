"""What durable history costs: acknowledged writes per second, history on and off.

Starts `tuichat-server` as a subprocess, once with SQLite history (acknowledgement
after the group commit, synchronous=FULL) and once with `--no-history`, and runs
the same load against each: S senders (`tuichat.client.ChatClient`), each keeping W
sends in flight, M messages each. Reported: acknowledged messages per second (each
one durable before its ack), then the SQLite store's own rate.

Fan-out with history on and off is measured by `tuichat-bench --servers
tuichat,tuichat-nohistory`.

    python benchmarks/history.py                      # defaults below
    python benchmarks/history.py --senders 4 --messages 5000
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import re
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


async def measure(mode: str, args: argparse.Namespace) -> float:
    """Acknowledged writes per second against a server with `mode` history."""
    with tempfile.TemporaryDirectory() as tmp:
        extra = ["--db", str(Path(tmp) / "h.sqlite3")] if mode == "sqlite" else ["--no-history"]
        server, port = await start_server(extra)
        try:
            seconds = await send_all(port, args.senders, args.messages, args.window)
        finally:
            server.terminate()
            await server.wait()
    return args.senders * args.messages / seconds


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
    parser.add_argument("--runs", type=int, default=3, help="report the median of this many")
    args = parser.parse_args()
    results: dict[str, list[float]] = {"sqlite": [], "off": []}
    for run in range(args.runs):
        for mode in results:  # alternate, so that noise hits both alike
            results[mode].append(asyncio.run(measure(mode, args)))
            print(f"run {run + 1} {mode:>6}: {results[mode][-1]:,.0f} acknowledged writes/s")
    for mode, runs in results.items():
        print(f"history {mode:>6}: median {statistics.median(runs):,.0f} acknowledged writes/s")
    asyncio.run(store_alone(100_000))


if __name__ == "__main__":
    main()
