"""A real three-node Redis Cluster for the tests: on 127.0.0.1 in a temporary directory."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import random
import shutil
import signal
import socket
import tempfile
from pathlib import Path

import pytest

READY = b"ready to accept connections"
IN_USE = b"address already in use"
BUS_OFFSET = 10000
"""A cluster node also listens on its port + 10000 (the cluster bus)."""
PORTS = range(20000, 40000)
"""Ports to choose from (their buses are 30000-49999): below most systems' ephemeral range."""
NODES = 3
SLOTS = 16384
JOIN_NODE_TIMEOUT_MS = 500
"""While the cluster forms: nodes gossip every node_timeout / 2, so with 500 ms `redis-cli
--cluster create` finds them joined after its first second (with 2000 ms it sometimes waits
3-4 s)."""
NODE_TIMEOUT_MS = 2000
"""Once it is formed (CONFIG SET): small, so that the cluster notices a dead node in a few
seconds, yet not so small that a node slowed down on a loaded two-core machine is taken for
dead, which would fail the whole cluster (no replicas) for a while."""
TIMEOUT = 20.0
"""For each step of `start()`: generous, for a loaded machine. `start()` takes about 2 s in
all: redis-cli waits a second for the join, and a primary reports cluster_state:ok no sooner
than 2 s after it started (Redis's CLUSTER_WRITABLE_DELAY)."""
_running: list[asyncio.subprocess.Process] = []
"""Nodes not yet killed, so that the test run cannot leave one behind."""


@atexit.register
def _kill_leftovers() -> None:
    for process in _running:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGKILL)


def _free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))  # no SO_REUSEADDR: a port in TIME_WAIT is not free
        except OSError:
            return False
    return True


def _pick_port(taken: set[int]) -> int:
    """A port that is free, with its cluster bus port free too."""
    for _ in range(1000):
        port = random.choice(PORTS)
        if taken.isdisjoint({port, port + BUS_OFFSET}) and _free(port) and _free(port + BUS_OFFSET):
            return port
    raise RuntimeError("no free port for a Redis Cluster node")


async def _command(port: int, *args: str) -> bytes:
    """Send one command to the node on `port`; return its reply (simple, bulk or integer)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        request = f"*{len(args)}\r\n" + "".join(f"${len(a.encode())}\r\n{a}\r\n" for a in args)
        writer.write(request.encode())
        line = await reader.readline()
        kind, rest = line[:1], line[1:-2]
        if kind == b"-":
            raise RuntimeError(f"redis on port {port}: {args[0]}: {rest.decode()}")
        if kind == b"$":
            length = int(rest)
            return b"" if length < 0 else (await reader.readexactly(length + 2))[:-2]
        if kind in (b"+", b":"):
            return rest
        raise RuntimeError(f"redis on port {port}: unexpected reply {line!r}")
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


def _cluster_info(reply: bytes) -> dict[str, str]:
    pairs = (line.split(":", 1) for line in reply.decode().splitlines() if ":" in line)
    return {key: value for key, value in pairs}


class RedisCluster:
    """Three redis-server nodes on 127.0.0.1 (ephemeral ports), joined with
    `redis-cli --cluster create`."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="tuichat-redis-cluster-"))
        self.ports: list[int] = []
        self.url = ""
        self.processes: list[asyncio.subprocess.Process] = []
        self._drains: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Start the nodes, make them one cluster (every slot served), wait until all agree."""
        server = shutil.which("redis-server")
        cli = shutil.which("redis-cli")
        if server is None or cli is None:
            pytest.skip("redis-server is not installed (Debian: apt-get install redis-server)")
        self.ports = []  # (again, if started anew after `stop()`)
        try:
            for index in range(NODES):
                await self._start_node(server, index)
            self.url = f"redis://127.0.0.1:{self.ports[0]}"
            await self._create(cli)
            await self._wait_until_ok()
            for port in self.ports:
                await _command(port, "CONFIG", "SET", "cluster-node-timeout", str(NODE_TIMEOUT_MS))
        except BaseException:
            await self._kill()
            raise

    async def _start_node(self, binary: str, index: int) -> None:
        """Start one node; if another process took its port meanwhile, try another port."""
        node_dir = self.dir / f"node-{index}"
        for _attempt in range(5):
            shutil.rmtree(node_dir, ignore_errors=True)
            node_dir.mkdir(parents=True)
            port = _pick_port(set(self.ports) | {p + BUS_OFFSET for p in self.ports})
            output = await self._launch(binary, port, node_dir, JOIN_NODE_TIMEOUT_MS)
            if output is None:
                self.ports.append(port)
                return
            assert IN_USE in output.lower(), f"redis-server exited early:\n{output.decode()}"
        raise RuntimeError("redis-server found its ports taken, five times")

    async def _launch(
        self, binary: str, port: int, node_dir: Path, node_timeout_ms: int
    ) -> bytes | None:
        """Start a node; None once it is ready, or what it said before it exited."""
        process = await asyncio.create_subprocess_exec(
            binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(node_dir),
            "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
            "--cluster-node-timeout", str(node_timeout_ms),
            "--appendonly", "yes", "--appendfsync", "always", "--save", "",
            "--daemonize", "no",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        self.processes.append(process)
        _running.append(process)
        assert process.stdout is not None
        log: list[bytes] = []
        async with asyncio.timeout(TIMEOUT):
            while READY not in (line := await process.stdout.readline()).lower():
                if not line:
                    break
                log.append(line)
        if line:
            self._drains.append(asyncio.get_running_loop().create_task(self._drain(process)))
            return None
        await process.wait()
        self.processes.remove(process)
        _running.remove(process)
        return b"".join(log)

    async def restart(self) -> None:
        """SIGKILL every node, then start each again on its port, with its data (append-only
        file) and its cluster configuration; wait until the cluster is ok again."""
        binary = shutil.which("redis-server")
        assert binary is not None
        await self._kill()
        for index, port in enumerate(self.ports):
            output = await self._launch(binary, port, self.dir / f"node-{index}", NODE_TIMEOUT_MS)
            assert output is None, f"redis-server did not start again:\n{output.decode()}"
        await self._wait_until_ok()

    @staticmethod
    async def _drain(process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        while await process.stdout.readline():
            pass

    async def _create(self, cli: str) -> None:
        nodes = [f"127.0.0.1:{port}" for port in self.ports]
        process = await asyncio.create_subprocess_exec(
            cli, "--cluster", "create", *nodes, "--cluster-replicas", "0", "--cluster-yes",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        try:
            async with asyncio.timeout(TIMEOUT):
                output, _ = await process.communicate()
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
        assert process.returncode == 0, f"redis-cli --cluster create failed:\n{output.decode()}"

    async def _wait_until_ok(self) -> None:
        """Until every node says the cluster is ok: all slots served, all nodes known."""
        wanted = {
            "cluster_state": "ok",
            "cluster_slots_assigned": str(SLOTS),
            "cluster_slots_ok": str(SLOTS),
            "cluster_known_nodes": str(NODES),
        }
        pending = list(self.ports)
        async with asyncio.timeout(TIMEOUT):
            while pending:
                info = _cluster_info(await _command(pending[0], "CLUSTER", "INFO"))
                if all(info.get(key) == value for key, value in wanted.items()):
                    pending.pop(0)
                else:
                    await asyncio.sleep(0.02)  # gossip goes round every 100 ms

    async def flushall(self) -> None:
        """Lose all data: FLUSHALL on every primary (with no replicas, every node is one)."""
        for port in self.ports:
            await _command(port, "FLUSHALL")

    async def _kill(self) -> None:
        for process in self.processes:
            if process.returncode is None:
                process.kill()
            await process.wait()
            with contextlib.suppress(ValueError):
                _running.remove(process)
        self.processes.clear()
        for task in self._drains:
            task.cancel()
        self._drains.clear()

    async def stop(self) -> None:
        """Kill every node (SIGKILL) and remove the temporary directory."""
        await self._kill()
        shutil.rmtree(self.dir, ignore_errors=True)
