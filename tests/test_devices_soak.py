"""Two devices of one identity stay connected for a minute with traffic, on every deployment.

The four deployments run at once, and the minute runs beside the rest of the suite: when the
run begins, `pytest_collection_modifyitems` (tests/conftest.py) starts it in a process of its
own, with its own servers, Redis and Redis Cluster, and moves this test to the end, where it
waits for the outcome (run alone, it just takes the minute). On the Redis kinds
the two devices are on different servers.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.deployments import KINDS, Deployment, opened
from tests.helpers import until
from tests.redis_cluster import RedisCluster
from tests.test_contract import events_while, is_message, messages_in, seen
from tests.test_devices import about, barrier, known_there
from tuichat.client import Reconnected, Reconnecting, SigningKey

SOAK = 60.0
"""Seconds of traffic."""
PACE = 0.2
"""Seconds between two messages of the person's devices (taking turns)."""


async def soak(deployment: Deployment) -> int:
    """A minute of traffic from two devices of one person; return the messages sent."""
    key = SigningKey.generate()
    watcher = await deployment.connect("watcher", on=0)
    phone = await deployment.connect("bob", on=0, key=key, reconnect=True)
    await known_there(deployment, "bob")
    laptop = await deployment.connect("bob", on=1, key=key, reconnect=True)
    await until(watcher.who, ("bob", "watcher"))
    for client in (phone, laptop, watcher):
        await barrier(client)  # the person's arrival is behind us
    loop = asyncio.get_running_loop()
    end = loop.time() + SOAK
    texts: list[str] = []
    while loop.time() < end:
        device = (phone, laptop)[len(texts) % 2]
        texts.append(f"{deployment.kind} {len(texts)}")
        await device.send("#lobby", texts[-1])
        await asyncio.sleep(PACE)  # pacing the traffic, not waiting for anything
    for client in (phone, laptop, watcher):
        events = await events_while(client, lambda es: seen(es, is_message(texts[-1])))
        got = [m.text for m in messages_in(events, "#lobby") if m.sender == "bob"]
        assert got == texts, f"{deployment.kind}: {len(got)} of {len(texts)}"
        assert not any(isinstance(e, Reconnecting | Reconnected) for e in events)
        assert about("bob", events) == [], f"{deployment.kind}: {about('bob', events)}"
    assert phone.connected and laptop.connected
    return len(texts)


async def soak_all() -> list[int]:
    """The minute of every deployment, at once, with a Redis Cluster of its own."""
    folder = Path(tempfile.mkdtemp(prefix="tuichat-soak-"))
    cluster = RedisCluster()
    try:
        await cluster.start()

        async def one(kind: str) -> int:
            (folder / kind).mkdir()
            async with opened(kind, None, folder / kind, cluster) as deployment:
                return await soak(deployment)

        return list(await asyncio.gather(*(one(kind) for kind in KINDS)))
    finally:
        await cluster.stop()
        shutil.rmtree(folder, ignore_errors=True)


class Soak:
    """The minute, in a process of its own (so that it weighs on no other test's measures)."""

    def __init__(self) -> None:
        self._process: subprocess.Popen[bytes] | None = None
        self._output = tempfile.TemporaryFile()  # noqa: SIM115  (a pipe unread for minutes fills)

    def start(self) -> None:
        """Begin (once)."""
        if self._process is None:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "tests.test_devices_soak"],
                cwd=Path(__file__).resolve().parents[1],
                stdout=self._output,
                stderr=subprocess.STDOUT,
            )

    def outcome(self) -> list[int]:
        """Wait for the end; the messages sent on each deployment."""
        self.start()
        assert self._process is not None
        try:
            self._process.wait(timeout=SOAK * 3)
        except subprocess.TimeoutExpired:
            self._process.kill()
            raise AssertionError("the soak did not end") from None
        self._output.seek(0)
        output = self._output.read().decode(errors="replace")
        last = output.strip().splitlines()[-1] if output.strip() else ""
        if self._process.returncode == SKIPPED:
            pytest.skip(last)
        assert self._process.returncode == 0, output
        return [int(count) for count in last.split()]


SKIPPED = 3
"""The soak's exit status when something it needs is not installed."""

RUN = Soak()
"""Started by tests/conftest.py when this test is collected."""


def test_two_devices_stay_connected_for_a_minute_with_traffic_on_every_deployment() -> None:
    sent = RUN.outcome()
    assert len(sent) == len(KINDS) and all(count > SOAK / PACE / 2 for count in sent), sent


if __name__ == "__main__":
    try:
        print(*asyncio.run(soak_all()))
    except pytest.skip.Exception as skipped:
        print(skipped.msg)
        sys.exit(SKIPPED)
