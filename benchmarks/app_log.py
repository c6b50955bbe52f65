"""How fast the app's log takes incoming messages, and what they cost in memory.

Runs the real `ChatApp` headless (120x40), welcomed by a real server, then posts
N room messages into it in batches, exactly as the network worker does (a
`ServerEvents` message per batch of up to 4,096 events). Reports the time until
the last message is laid out and drawn and the resident memory added; then, in a
second run, how long the app takes to show a key typed while messages stream in.

    python benchmarks/app_log.py --count 10000 100000
    python benchmarks/app_log.py --count 100000 --text latin persian

`--text persian` sends Persian messages from Persian names (drawn right to left by the app:
shaped, reordered, right-aligned) to compare with the Latin figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from datetime import UTC

from tuichat.app.app import ChatApp
from tuichat.app.events import ServerEvents
from tuichat.app.widgets.chat_input import ChatInput
from tuichat.app.widgets.chat_log import ChatLog
from tuichat.client import ChatClient, ClientEvent
from tuichat.protocol import Message
from tuichat.server import ChatServer, ServerConfig

BATCH = 4096
TEXTS = {
    "latin": (
        "the quick brown fox jumps over the lazy dog while the chat keeps scrolling {i}",
        "user",
    ),
    "persian": (
        "من می‌خواهم فردا به کلاس برنامه‌نویسی بروم و درباره‌ی پایتون صحبت کنیم، شماره {i}",
        "کاربر",
    ),
}
"""The text of each message and the start of each sender's name, by language."""


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * 4096


async def measure(count: int, keys: bool, language: str) -> dict[str, float]:
    text, sender = TEXTS[language]
    server = ChatServer(ServerConfig(port=0, server_name="bench", db=None))  # nothing kept
    await server.start()
    host, port = server.address

    async def connector(name: str) -> ChatClient:
        return await ChatClient.connect(name, host, port)

    app = ChatApp(connector, "reader", tz=UTC, ping_interval=None)
    async with app.run_test(size=(120, 40)) as pilot:
        while app.client is None:
            await pilot.pause()
        log = app.query_one(ChatLog)
        await pilot.pause()
        before = rss_bytes()  # the texts below count: the log keeps them

        def batch(start: int) -> list[ClientEvent]:  # made as the network worker would
            return [
                Message(
                    "#lobby", i + 1, f"{sender}{i % 50}", text.format(i=i), 1_767_269_400_000 + i
                )
                for i in range(start, min(start + BATCH, count))
            ]

        key_delays: list[float] = []
        chat_input = app.query_one(ChatInput)
        started = time.perf_counter()
        for start in range(0, count, BATCH):
            app.post_message(ServerEvents(batch(start)))
            if keys and (start // BATCH) % 4 == 0:  # a key press now and then, timed until shown
                typed = time.perf_counter()
                await pilot.press("x")
                while not chat_input.value.endswith("x"):
                    await pilot.pause()
                key_delays.append(time.perf_counter() - typed)
        last = text.format(i=count - 1)
        while not log.entries or log.entries[-1].text != last:  # (the log keeps the newest)
            await pilot.pause()
        await pilot.pause()  # one more refresh: the last lines are drawn
        elapsed = time.perf_counter() - started
        after = rss_bytes()
        assert log.is_vertical_scroll_end
    await server.stop()
    if keys:
        return {
            "key_press_median_ms": round(statistics.median(key_delays) * 1000, 1),
            "key_press_max_ms": round(max(key_delays) * 1000, 1),
        }
    return {
        "count": count,
        "seconds": round(elapsed, 3),
        "per_message_us": round(elapsed / count * 1e6, 2),
        "rss_added_mb": round((after - before) / 2**20, 1),
    }


def run_one(count: int, *flags: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--one", "--count", str(count), *flags],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--keys", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--text", nargs="+", choices=sorted(TEXTS), default=["latin"])
    parser.add_argument("--runs", type=int, default=1, help="runs of each (the median is shown)")
    args = parser.parse_args()
    if args.one:
        print(json.dumps(asyncio.run(measure(args.count[0], args.keys, args.text[0]))))
        return
    columns = ("text", "messages", "seconds", "µs/msg", "+RSS MB", "key med ms", "key max ms")
    print(" ".join(f"{c:>10}" for c in columns))
    for count in args.count:  # each run in a fresh process, so memory figures do not mix
        for language in args.text:
            runs = [run_one(count, "--text", language) for _ in range(args.runs)]
            r = sorted(runs, key=lambda run: run["seconds"])[len(runs) // 2]
            r.update(run_one(count, "--keys", "--text", language))
            keys = ("count", "seconds", "per_message_us", "rss_added_mb")
            keys += ("key_press_median_ms", "key_press_max_ms")
            print(f"{language:>10} " + " ".join(f"{r[k]:>10}" for k in keys))


if __name__ == "__main__":
    main()
