"""How long the app takes from its start to the first message on screen (a cold start).

Starts a real `tuichat-server` (a subprocess on a free port of 127.0.0.1, its history in a
temporary SQLite file), says one message in #lobby with the client library, then runs the app
as a real process (`python -m tuichat.app --host 127.0.0.1 --port P --name x`) in a
pseudo-terminal of 120x40, with temporary config and data directories (nothing of the user's
is read or written), and times how long it takes until that message's text is written to the
terminal. One start first, unmeasured (it makes the name's identity, as a user's first run
does, and warms the disk cache); then `--runs` starts, and their median (and the median time
until it took the screen, its first frame: what comes before is the interpreter and the
imports).

    python benchmarks/app_start.py
    python benchmarks/app_start.py --runs 9 --importtime   # and where the imports' time goes
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import json
import os
import re
import select
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from tuichat.client import ChatClient

COLUMNS, ROWS = 120, 40
TIMEOUT = 30.0
LISTENING = re.compile(rb"listening on ([\d.]+):(\d+)")


@contextlib.contextmanager
def server_process(directory: Path) -> Iterator[tuple[str, int]]:
    """A `tuichat-server` on a free port of 127.0.0.1, its history in `directory`."""
    env = dict(os.environ, XDG_CONFIG_HOME=str(directory / "server-config"))
    process = subprocess.Popen(
        [sys.executable, "-m", "tuichat.server", "--host", "127.0.0.1", "--port", "0",
         "--name", "startbench", "--db", str(directory / "history.sqlite3"),
        ],
        stderr=subprocess.PIPE, env=env,
    )  # fmt: skip
    assert process.stderr is not None
    try:
        port = 0
        host = ""
        deadline = time.monotonic() + TIMEOUT
        while not port:
            line = process.stderr.readline()
            if not line or time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            found = LISTENING.search(line)
            if found:
                host, port = found.group(1).decode(), int(found.group(2))
        drain = threading.Thread(target=process.stderr.read, daemon=True)  # (never blocks it)
        drain.start()
        yield host, port
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def seed(host: str, port: int, text: str) -> None:
    """Say `text` in #lobby (it is kept in the room's history)."""
    client = await ChatClient.connect("seeder", host, port)
    await client.send("#lobby", text)
    await client.close()


def app_env(home: Path) -> dict[str, str]:
    """The app's environment: its own config, data, state and cache directories, an English
    locale and a terminal that draws right-to-left text as written (so no first-run check),
    and bytecode written and read as an installed package's is."""
    env = dict(os.environ)
    for variable in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "TMUX", "STY", "TEXTUAL"):
        env.pop(variable, None)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # (as installed: its modules' bytecode is kept)
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / "config"),
        XDG_DATA_HOME=str(home / "data"),
        XDG_STATE_HOME=str(home / "state"),
        XDG_CACHE_HOME=str(home / "cache"),
        LANG="C.UTF-8",
        TERM="xterm-256color",
        COLORTERM="truecolor",
        XTERM_VERSION="XTerm(390)",
        COLUMNS=str(COLUMNS),
        LINES=str(ROWS),
    )
    return env


ALTERNATE_SCREEN = b"\x1b[?1049h"
"""What the app writes as it takes the screen: its first frame follows."""


def start_once(
    host: str, port: int, text: str, env: dict[str, str], extra: tuple[str, ...] = ()
) -> tuple[float, float, bytes]:
    """Run the app in a pseudo-terminal until `text` is on it; return the seconds that took
    (from just before the process is made), the seconds until it took the screen, and all it
    wrote (with `-X importtime`, its report too)."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
    wanted = text.encode()
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, *extra, "-m", "tuichat.app", "--host", host, "--port", str(port),
         "--name", "x"],
        stdin=slave, stdout=slave, stderr=slave, env=env,
        start_new_session=True, close_fds=True,
    )  # fmt: skip
    os.close(slave)
    seen = bytearray()
    elapsed = screen = -1.0
    try:
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if not ready:
                if process.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            seen += chunk
            if screen < 0 and ALTERNATE_SCREEN in seen:
                screen = time.perf_counter() - started
            if wanted in seen[-len(chunk) - len(wanted) :]:
                elapsed = time.perf_counter() - started
                break
        if elapsed < 0:
            raise RuntimeError(f"the message never showed (the app wrote {seen[-400:]!r})")
        os.write(master, b"\x11")  # ctrl+q: the app says goodbye and exits
        end = time.monotonic() + 10
        while process.poll() is None and time.monotonic() < end:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                with contextlib.suppress(OSError):
                    os.read(master, 65536)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        os.close(master)
    return elapsed, screen, bytes(seen)


def slowest_imports(report: bytes, top: int = 25) -> list[tuple[int, str]]:
    """The imports that took longest, cumulative µs and module, from `-X importtime`."""
    rows: list[tuple[int, str]] = []
    for line in report.decode(errors="replace").replace("\r", "").splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _self, cumulative, name = (part.strip() for part in line[12:].split("|", 2))
        rows.append((int(cumulative), name))
    return sorted(rows, reverse=True)[:top]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="measured starts (default 5)")
    parser.add_argument(
        "--importtime", action="store_true", help="one more start under -X importtime: its top"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tuichat-start-") as tmp:
        directory = Path(tmp)
        with server_process(directory) as (host, port):
            text = f"cold-start-{uuid.uuid4().hex[:12]}"
            asyncio.run(seed(host, port, text))
            env = app_env(directory / "home")
            start_once(host, port, text, env)  # the first run: the name's identity is made
            starts = [start_once(host, port, text, env)[:2] for _ in range(args.runs)]
            times = [shown for shown, _ in starts]
            result = {
                "runs": args.runs,
                "median_s": round(statistics.median(times), 3),
                "min_s": round(min(times), 3),
                "max_s": round(max(times), 3),
                "screen_median_s": round(statistics.median(screen for _, screen in starts), 3),
                "each_s": [round(t, 3) for t in times],
            }
            print(json.dumps(result))
            if args.importtime:
                _, _, report = start_once(host, port, text, env, ("-X", "importtime"))
                for cumulative, name in slowest_imports(report):
                    print(f"{cumulative / 1000:8.1f} ms  {name}")


if __name__ == "__main__":
    main()
