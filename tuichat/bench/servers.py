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
from collections.abc import Callable
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

SERVERS = (
    "tuichat", "tuichat-nohistory", "tuichat-redis", "tuichat-redis2", "tuichat-reuseport",
    "redis", "ngircd",
)  # fmt: skip
"""What `--servers` can name: tuichat with SQLite history, without history, on Redis (one
server; two sharing the chat with clients spread over their two ports; two sharing one port
with SO_REUSEPORT, the kernel spreading the clients), Redis pub/sub, and ngIRCd."""

REDIS_PEER = [
    "--bind", "127.0.0.1", "--protected-mode", "no", "--save", "", "--appendonly", "no",
    "--client-output-buffer-limit", "pubsub 0 0 0", "--maxclients", "100000",
    "--tcp-backlog", "4096",
]  # fmt: skip
"""Redis as a pub/sub peer: no persistence, no cap on a slow subscriber's output buffer, room
for every client (its own defaults: 10,000 clients, a subscriber dropped past 32 MB queued)."""

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
    """"tuichat", "irc" or "redis"."""
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

    def connections(self) -> list[int]:
        """Established connections to `ports` that each chat server process holds now."""
        ours = tcp_sockets("01", set(self.ports))
        return [len(ours & socket_inodes(p.pid)) for p in self.processes[: self.servers]]

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


def tcp_sockets(state: str, ports: set[int]) -> set[int]:
    """The socket inodes of TCP sockets in `state` ("01" established, "0A" listening, as
    /proc/net/tcp writes it) whose local port is in `ports`."""
    inodes: set[int] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as lines:
            next(lines)
            for line in lines:
                fields = line.split()
                if fields[3] == state and int(fields[1].rsplit(":", 1)[1], 16) in ports:
                    inodes.add(int(fields[9]))
    return inodes


def socket_inodes(pid: int) -> set[int]:
    """The inodes of the sockets process `pid` has open."""
    inodes: set[int] = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):  # a file closed meanwhile
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(int(target[8:-1]))
    return inodes


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def missing(name: str) -> str | None:
    """Why server `name` cannot run here (a program not installed), or None."""
    if name == "ngircd" and ngircd_binary() is None:
        return "ngircd is not installed (Debian: apt-get install ngircd)"
    if uses_redis(name) and shutil.which("redis-server") is None:
        return "redis-server is not installed (Debian: apt-get install redis-server)"
    return None


def uses_redis(name: str) -> bool:
    """Whether server `name` runs Redis (as the peer, or under tuichat)."""
    return name == "redis" or name.startswith("tuichat-redis") or name == "tuichat-reuseport"


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
    problem = missing(name)
    if problem:
        raise RuntimeError(problem)
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
        _start_ngircd(server, launch)
    elif name == "redis":
        server.protocol = "redis"
        server.ports.append(free_port())
        redis = ["--port", str(server.port), "--dir", str(work), *REDIS_PEER]
        launch([_redis_binary(), *redis], server.port)
    else:
        _start_tuichat(server, launch, event_loop, python)
    return server


Launch = Callable[[list[str], int], None]
"""Start a command as one of the server's processes and wait until it listens on the port."""


def _redis_binary() -> str:
    binary = shutil.which("redis-server")
    assert binary is not None  # `missing` said so
    return binary


def _start_ngircd(server: ServerProcess, launch: Launch) -> None:
    binary = ngircd_binary()
    assert binary is not None  # `missing` said so
    work = Path(server.workdir.name)
    include = work / "conf.d"
    include.mkdir()
    port = free_port()
    (work / "ngircd.conf").write_text(NGIRCD_CONF.format(port=port, include=include))
    os.chmod(work, 0o755)  # ngIRCd reads its files as user nobody when run as root
    server.protocol = "irc"
    server.ports.append(port)
    launch([binary, "-n", "-f", str(work / "ngircd.conf")], port)


def _start_tuichat(server: ServerProcess, launch: Launch, event_loop: str, python: str) -> None:
    """One tuichat server, or two on one Redis: on two ports, or sharing one (SO_REUSEPORT)."""
    name, work = server.name, Path(server.workdir.name)
    count = 2 if name in ("tuichat-redis2", "tuichat-reuseport") else 1
    helpers: list[subprocess.Popen[bytes]] = []
    if uses_redis(name):
        redis_port = free_port()
        launch(
            [_redis_binary(), "--port", str(redis_port), "--bind", "127.0.0.1", "--dir",
             str(work), "--appendonly", "yes", "--appendfsync", "always", "--save", ""],
            redis_port,
        )  # fmt: skip
        helpers = server.processes[:]
        server.processes.clear()
        history = ["--redis", f"redis://127.0.0.1:{redis_port}/0"]
    elif name == "tuichat-nohistory":
        history = ["--no-history"]
    else:
        history = ["--db", str(work / "history.sqlite3")]
    shared = name == "tuichat-reuseport"
    if shared:
        history.append("--reuse-port")
        server.ports.append(free_port())
    for _ in range(count):
        if not shared:
            server.ports.append(free_port())
        launch(
            [python, "-m", "tuichat.server", "--port", str(server.ports[-1]), "--log-level",
             "WARNING", "--event-loop", event_loop, *history, *UNLIMITED_FLOOD],
            server.ports[-1],
        )  # fmt: skip
    server.servers = count
    server.processes += helpers  # Redis's CPU is the server side's too


def _wait_until_listening(process: subprocess.Popen[bytes], port: int) -> None:
    """Until `process` itself listens on `port` (another may share it: SO_REUSEPORT)."""
    deadline = time.monotonic() + 15
    while True:
        if process.poll() is not None:
            raise RuntimeError("exited at start")
        with contextlib.suppress(OSError):  # it may end meanwhile
            if tcp_sockets("0A", {port}) & socket_inodes(process.pid):
                return
        if time.monotonic() > deadline:
            raise RuntimeError(f"nothing listens on {port} after 15 s")
        time.sleep(0.05)
