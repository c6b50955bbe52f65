"""How fast the app's log takes incoming messages, what they cost in memory, and how quickly a
key typed meanwhile is shown.

Runs the real `ChatApp` headless (120x40), welcomed by a real server, then posts N room
messages into it in batches of up to 4,096 events, as the network worker does: a
`ServerEvents` message per batch, the next one once the app has taken the last (the worker
waits for that; what comes meanwhile waits in the client). Reports the time until the last
message is laid out and drawn, and the process's resident memory after the messages (and
how much they added). In a second run, a thread types a key every 50 ms while the messages
stream in, as the terminal driver's input thread does, and each key is timed from then until
the first frame drawn with it in the composer.

    python benchmarks/app_log.py --count 10000 100000
    python benchmarks/app_log.py --count 1000000
    python benchmarks/app_log.py --count 100000 --text latin persian

`--text persian` sends Persian messages from Persian names (drawn right to left by the app:
shaped, reordered, right-aligned) to compare with the Latin figure.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import subprocess
import sys
import threading
import time
from datetime import UTC
from typing import Any

from textual import events

from tuichat.app.app import ChatApp
from tuichat.app.events import ServerEvents
from tuichat.app.widgets.chat_input import ChatInput
from tuichat.app.widgets.chat_log import ChatLog
from tuichat.client import ChatClient, ClientEvent
from tuichat.protocol import Message
from tuichat.server import ChatServer, ServerConfig

BATCH = 4096
KEY_EVERY = 0.05
"""Seconds between two keys typed while the messages stream in."""
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


class Typist(threading.Thread):
    """Types `x` into the app every `KEY_EVERY` s from a thread of its own, as the terminal
    driver's input thread does, and times each key until the first frame that shows it."""

    def __init__(self, app: ChatApp, chat_input: ChatInput) -> None:
        super().__init__(daemon=True)
        self.app = app
        self.chat_input = chat_input
        self.typed: list[float] = []
        """When each key was sent."""
        self.delays: list[float] = []
        self.stopping = threading.Event()
        display = app._display

        def displayed(screen: Any, renderable: Any) -> None:  # each frame the app draws
            display(screen, renderable)
            shown = self.chat_input.value.count("x")
            now = time.perf_counter()
            while len(self.delays) < min(shown, len(self.typed)):
                self.delays.append(now - self.typed[len(self.delays)])

        app._display = displayed  # type: ignore[method-assign]

    def run(self) -> None:
        driver = self.app._driver
        assert driver is not None
        while not self.stopping.wait(KEY_EVERY):
            self.typed.append(time.perf_counter())
            driver.send_message(events.Key("x", "x"))


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
        gc.collect()
        before = rss_bytes()  # the texts below count: the log keeps them

        def batch(start: int) -> list[ClientEvent]:  # made as the network worker would
            return [
                Message(
                    "#lobby", i + 1, f"{sender}{i % 50}", text.format(i=i), 1_767_269_400_000 + i
                )
                for i in range(start, min(start + BATCH, count))
            ]

        async def taken(message: ServerEvents, last: str) -> None:
            if hasattr(message, "taken"):
                await message.taken.wait()
            else:  # (an app from before it said so: until its log shows the batch)
                while not log.entries or log.entries[-1].text != last:  # noqa: ASYNC110
                    await asyncio.sleep(0)

        typist = Typist(app, app.query_one(ChatInput))
        if keys:
            typist.start()
        started, cpu = time.perf_counter(), time.process_time()
        for start in range(0, count, BATCH):
            events = batch(start)
            message = ServerEvents(events)
            app.post_message(message)
            await taken(message, events[-1].text)  # type: ignore[union-attr]
        last = text.format(i=count - 1)
        while not log.entries or log.entries[-1].text != last:  # (the log keeps the newest)
            await pilot.pause()
        await pilot.pause()  # one more refresh: the last lines are drawn
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu
        typist.stopping.set()
        gc.collect()
        after = rss_bytes()
        assert log.is_vertical_scroll_end
    await server.stop()
    if keys:
        delays = typist.delays or [float("nan")]
        return {
            "keys": len(typist.delays),
            "key_press_median_ms": round(statistics.median(delays) * 1000, 1),
            "key_press_max_ms": round(max(delays) * 1000, 1),
        }
    return {
        "count": count,
        "seconds": round(elapsed, 3),
        "cpu_seconds": round(cpu, 3),
        "per_message_us": round(elapsed / count * 1e6, 2),
        "rss_mb": round(after / 2**20, 1),
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
    columns = ("text", "messages", "seconds", "CPU s", "µs/msg", "RSS MB", "+RSS MB")
    columns += ("key med ms",)
    print(" ".join(f"{c:>10}" for c in (*columns, "key max ms")))
    for count in args.count:  # each run in a fresh process, so memory figures do not mix
        for language in args.text:
            runs = [run_one(count, "--text", language) for _ in range(args.runs)]
            r = sorted(runs, key=lambda run: run["seconds"])[len(runs) // 2]
            typed = [run_one(count, "--keys", "--text", language) for _ in range(args.runs)]
            r.update(sorted(typed, key=lambda run: run["key_press_median_ms"])[len(typed) // 2])
            keys = ("count", "seconds", "cpu_seconds", "per_message_us", "rss_mb", "rss_added_mb")
            keys += ("key_press_median_ms", "key_press_max_ms")
            print(f"{language:>10} " + " ".join(f"{r[k]:>10}" for k in keys))


if __name__ == "__main__":
    main()
