"""The servers under test, each started as a subprocess on a free port of 127.0.0.1."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

NGIRCD_CONF = """\
# ngIRCd for the fan-out benchmark: loopback only, flood throttling lifted.
[Global]
    Name = irc.bench.local
    Info = tuichat-bench peer
    Listen = 127.0.0.1
    Ports = {port}
    AdminInfo1 = bench
    AdminInfo2 = bench
    AdminEMail = bench@localhost
    MotdPhrase = bench
[Limits]
    MaxConnections = 0
    MaxConnectionsIP = 0
    MaxJoins = 0
    MaxNickLength = 30
    MaxListSize = 100
    # clamp every flood penalty to 0 s; senders also OPER and set +F (relaxed flood control)
    MaxPenaltyTime = 0
    PingTimeout = 600
    PongTimeout = 60
[Options]
    DNS = no
    Ident = no
    PAM = no
    MorePrivacy = no
    OperCanUseMode = yes
    ScrubCTCP = no
    IncludeDir = {include}
[Operator]
    Name = bench
    Password = bench
"""

SERVERS = ("tuichat", "tuichat-nohistory", "tuichat-redis", "tuichat-redis2", "ngircd")
"""What `--servers` can name: tuichat with SQLite history, without history, on Redis (one
server, or two sharing the chat, clients spread over both), and ngIRCd."""

UNLIMITED_FLOOD = [
    "--messages-per-second", "1e9", "--message-burst", "1000000000",
    "--text-bytes-per-second", "1e12", "--text-byte-burst", "1000000000000",
    "--max-connections", "1000000", "--max-connections-per-ip", "1000000",
    "--max-connections-per-prefix", "1000000",
    "--connections-per-second", "1e9", "--connection-burst", "1000000000",
    "--private-messages-per-second", "1e9", "--private-message-burst", "1000000000",
    "--registrations-per-hour", "1000000000", "--new-rooms-per-hour", "1000000000",
]  # fmt: skip
"""Flood control and connection caps lifted: every client comes from 127.0.0.1 and sends flat out.

The frame cap, text limits and the slow-reader budget stay as they are.
"""


@dataclass
class ServerProcess:
    """Running servers (one, or several on one Redis): where they listen, their CPU, memory."""

    name: str
    protocol: str
    """"tuichat" or "irc"."""
    ports: list[int]
    """Where clients connect (spread over them in turn)."""
    processes: list[subprocess.Popen[bytes]]
    """The servers, then any helper (Redis), whose CPU counts as the server side's."""
    workdir: tempfile.TemporaryDirectory[str]
    servers: int = 1
    """How many of `processes` are chat servers (their memory is the per-connection figure)."""

    @property
    def port(self) -> int:
        return self.ports[0]

    def cpu_seconds(self) -> float:
        """CPU time every thread of every process has used so far (nanosecond resolution)."""
        return sum(cpu_seconds(process.pid) for process in self.processes)

    def rss_bytes(self) -> int:
        """The chat servers' resident memory now."""
        return sum(resident_bytes(process.pid) for process in self.processes[: self.servers])

    def stop(self) -> None:
        """Stop every process (SIGTERM, then SIGKILL after 10 s) and remove the files."""
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        self.workdir.cleanup()


def cpu_seconds(pid: int) -> float:
    """CPU time every thread of process `pid` has used so far (nanosecond resolution)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):  # a thread that just ended
            total += int((task / "schedstat").read_text().split()[0])
    return total / 1e9


def resident_bytes(pid: int) -> int:
    """The resident memory of process `pid` now (Linux)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"process {pid} reports no resident memory (has it ended?)")


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def ngircd_binary() -> str | None:
    """Where ngIRCd is installed, if it is."""
    return shutil.which("ngircd") or next(
        (p for p in ("/usr/sbin/ngircd", "/usr/local/sbin/ngircd") if Path(p).exists()), None
    )


def knows_read_markers(python: str = sys.executable) -> bool:
    """Whether the tuichat installed for `python` has read markers (`mark_read`)."""
    with tempfile.TemporaryDirectory(prefix="tuichat-bench-") as elsewhere:  # as `start` runs it
        done = subprocess.run(
            [python, "-c", "from tuichat.protocol import MarkRead"],
            capture_output=True,
            cwd=elsewhere,
            check=False,
        )
    return done.returncode == 0


def start(name: str, event_loop: str = "auto", python: str = sys.executable) -> ServerProcess:
    """Start the server(s) `name` (one of `SERVERS`) and wait until they accept connections.

    tuichat runs on `python`: another interpreter may have another version installed (a
    baseline to compare with)."""
    workdir = tempfile.TemporaryDirectory(prefix="tuichat-bench-")
    work = Path(workdir.name)
    log = open(work / "server.log", "wb")  # noqa: SIM115 (the processes hold it)
    server = ServerProcess(name, "tuichat", [], [], workdir)

    def launch(command: list[str], port: int) -> None:
        process = subprocess.Popen(  # not in the current folder: `-m` would import from it
            command, stdout=log, stderr=log, stdin=subprocess.DEVNULL, cwd=work
        )
        server.processes.append(process)
        try:
            _wait_until_listening(process, port)
        except RuntimeError as exc:
            server.stop()
            raise RuntimeError(
                f"{name}: {exc}: {(work / 'server.log').read_text()[-500:]}"
            ) from None

    if name == "ngircd":
        binary = ngircd_binary()
        if binary is None:
            raise RuntimeError("ngircd is not installed (Debian: apt-get install ngircd)")
        include = work / "conf.d"
        include.mkdir()
        port = free_port()
        (work / "ngircd.conf").write_text(NGIRCD_CONF.format(port=port, include=include))
        os.chmod(work, 0o755)  # ngIRCd reads its files as user nobody when run as root
        server.protocol = "irc"
        server.ports.append(port)
        launch([binary, "-n", "-f", str(work / "ngircd.conf")], port)
        return server
    count = 2 if name == "tuichat-redis2" else 1
    helpers: list[subprocess.Popen[bytes]] = []
    if name.startswith("tuichat-redis"):
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError(
                "redis-server is not installed (Debian: apt-get install redis-server)"
            )
        redis_port = free_port()
        launch(
            [binary, "--port", str(redis_port), "--bind", "127.0.0.1", "--dir", str(work),
             "--appendonly", "yes", "--appendfsync", "always", "--save", ""],
            redis_port,
        )  # fmt: skip
        helpers = server.processes[:]
        server.processes.clear()
        history = ["--redis", f"redis://127.0.0.1:{redis_port}/0"]
    elif name == "tuichat-nohistory":
        history = ["--no-history"]
    else:
        history = ["--db", str(work / "history.sqlite3")]
    for _ in range(count):
        port = free_port()
        server.ports.append(port)
        launch(
            [python, "-m", "tuichat.server", "--port", str(port), "--log-level", "WARNING",
             "--event-loop", event_loop, *history, *UNLIMITED_FLOOD],
            port,
        )  # fmt: skip
    server.servers = count
    server.processes += helpers  # Redis's CPU is the server side's too
    return server


def _wait_until_listening(process: subprocess.Popen[bytes], port: int) -> None:
    deadline = time.monotonic() + 15
    while True:
        if process.poll() is not None:
            raise RuntimeError("exited at start")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"nothing listens on {port} after 15 s") from None
            time.sleep(0.05)
