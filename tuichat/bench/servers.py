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

SERVERS = ("tuichat", "tuichat-nohistory", "ngircd")
"""What `--servers` can name: tuichat with SQLite history, tuichat without, and ngIRCd."""

UNLIMITED_FLOOD = [
    "--messages-per-second", "1e9", "--message-burst", "1000000000",
    "--text-bytes-per-second", "1e12", "--text-byte-burst", "1000000000000",
    "--max-connections", "1000000", "--max-connections-per-ip", "1000000",
]  # fmt: skip
"""Flood control and connection caps lifted: every client comes from 127.0.0.1 and sends flat out.

The frame cap, text limits and the slow-reader budget stay as they are.
"""


@dataclass
class ServerProcess:
    """A running server: what it is, where it listens, and how to read its CPU and memory."""

    name: str
    protocol: str
    """"tuichat" or "irc"."""
    port: int
    process: subprocess.Popen[bytes]
    workdir: tempfile.TemporaryDirectory[str]

    def cpu_seconds(self) -> float:
        """CPU time the server's threads have used so far (nanosecond resolution)."""
        total = 0
        for task in Path(f"/proc/{self.process.pid}/task").iterdir():
            with contextlib.suppress(OSError):  # a thread that just ended
                total += int((task / "schedstat").read_text().split()[0])
        return total / 1e9

    def rss_bytes(self) -> int:
        """The server's resident memory now."""
        with open(f"/proc/{self.process.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return 0

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 10 s) and remove its files."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.workdir.cleanup()


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


def start(name: str, event_loop: str = "auto") -> ServerProcess:
    """Start the server `name` (one of `SERVERS`) and wait until it accepts connections."""
    workdir = tempfile.TemporaryDirectory(prefix="tuichat-bench-")
    port = free_port()
    log = open(Path(workdir.name) / "server.log", "wb")  # noqa: SIM115 (the process holds it)
    if name == "ngircd":
        binary = ngircd_binary()
        if binary is None:
            raise RuntimeError("ngircd is not installed (Debian: apt-get install ngircd)")
        include = Path(workdir.name) / "conf.d"
        include.mkdir()
        conf = Path(workdir.name) / "ngircd.conf"
        conf.write_text(NGIRCD_CONF.format(port=port, include=include))
        os.chmod(workdir.name, 0o755)  # ngIRCd reads its files as user nobody when run as root
        command = [binary, "-n", "-f", str(conf)]
        protocol = "irc"
    else:
        history = (
            ["--no-history"]
            if name == "tuichat-nohistory"
            else ["--db", str(Path(workdir.name) / "history.sqlite3")]
        )
        command = [
            sys.executable, "-m", "tuichat.server", "--port", str(port), "--log-level", "WARNING",
            "--event-loop", event_loop, *history, *UNLIMITED_FLOOD,
        ]  # fmt: skip
        protocol = "tuichat"
    process = subprocess.Popen(command, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    server = ServerProcess(name, protocol, port, process, workdir)
    deadline = time.monotonic() + 15
    while True:
        if process.poll() is not None:
            server.stop()
            raise RuntimeError(f"{name} exited at start: {(Path(log.name)).read_text()[-500:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return server
        except OSError:
            if time.monotonic() > deadline:
                server.stop()
                raise RuntimeError(f"{name} did not listen on {port} within 15 s") from None
            time.sleep(0.05)
