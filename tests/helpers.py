"""Helpers shared by the tests: waiting for events, never for time."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from tuichat.client import ChatClient, ClientEvent, Disconnected, RequestFailed

T = TypeVar("T")

TIMEOUT = 10.0


async def expect(client: ChatClient, kind: type[T], timeout: float = TIMEOUT, **fields: Any) -> T:
    """Return the next event of `kind` whose attributes equal `fields`, skipping others."""
    async with asyncio.timeout(timeout):
        while True:
            event = await client.next_event()
            if isinstance(event, kind) and all(getattr(event, k) == v for k, v in fields.items()):
                return event
            if isinstance(event, Disconnected):
                raise AssertionError(f"disconnected while waiting for {kind.__name__}: {event}")


async def collect(
    client: ChatClient, kind: type[T], count: int, timeout: float = TIMEOUT
) -> list[T]:
    """Return the next `count` events of `kind`, in order, skipping other kinds."""
    found: list[T] = []
    async with asyncio.timeout(timeout):
        while len(found) < count:
            event: ClientEvent = await client.next_event()
            if isinstance(event, kind):
                found.append(event)
            elif isinstance(event, Disconnected):
                raise AssertionError(f"disconnected after {len(found)} of {count}: {event}")
    return found


async def events_until(
    client: ChatClient, kind: type[Any], timeout: float = TIMEOUT, **fields: Any
) -> list[ClientEvent]:
    """Return every event up to and including the first `kind` matching `fields`."""
    seen: list[ClientEvent] = []
    async with asyncio.timeout(timeout):
        while True:
            event = await client.next_event()
            seen.append(event)
            if isinstance(event, kind) and all(getattr(event, k) == v for k, v in fields.items()):
                return seen


async def until(ask: Callable[[], Awaitable[object]], wanted: object) -> None:
    """Ask again until the answer is `wanted` (other servers hear of changes a moment later)."""
    answer: object = None
    try:
        async with asyncio.timeout(TIMEOUT):
            while True:
                try:
                    answer = await ask()
                except RequestFailed as refused:  # e.g. no such room there, yet
                    answer = refused
                if answer == wanted:
                    return
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"still {answer!r} after {TIMEOUT} s, not {wanted!r}") from None
