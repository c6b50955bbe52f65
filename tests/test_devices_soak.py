"""Two devices of one identity stay connected for a minute with traffic, on every deployment.

The four deployments run at once, so the minute is spent once. On the Redis kinds the two
devices are on different servers.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.deployments import KINDS, Deployment, opened
from tests.helpers import until
from tests.test_contract import events_while, is_message, messages_in, seen
from tests.test_devices import about, barrier
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


async def test_two_devices_stay_connected_for_a_minute_with_traffic_on_every_deployment(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    async def one(kind: str) -> int:
        folder = tmp_path / kind
        folder.mkdir()
        async with opened(kind, request.config, folder) as deployment:
            return await soak(deployment)

    sent = await asyncio.gather(*(one(kind) for kind in KINDS))
    assert all(count > SOAK / PACE / 2 for count in sent), sent
