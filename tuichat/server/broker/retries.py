"""Which client ids each sender used lately, to recognise a retried send: one window per sender.

A window holds one sender's newest `per_sender` client ids in one room, so nobody else's
sends can push yours out. A window is read from the store the first time its sender posts
in the room (`open`, then `fill`); all windows together hold at most `total` ids, and past
that the least recently used ones are dropped (never one with a message still being
stored, whose ids the store does not have yet), to be read back from the store when their
sender posts there again. The store keeps what a window forgets: dropping one costs a read,
never a duplicate.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar

log = logging.getLogger("tuichat.server")

V = TypeVar("V")

Key = tuple[str, str]
"""(room, sender key)."""


@dataclass(eq=False, slots=True)
class Window(Generic[V]):
    """One sender's newest client ids in one room."""

    ids: OrderedDict[str, V] = field(default_factory=OrderedDict)
    """Client id → what a retry of it is answered with, oldest first."""
    loaded: bool = False
    """Whether the store's part is here; until then the sender's posts wait in `waiting`."""
    waiting: list[Callable[[Exception | None], None]] = field(default_factory=list)
    storing: int = 0
    """The sender's messages with an id that are not stored yet (the window must stay)."""


class RetryWindows(Generic[V]):
    """Every sender's window, least recently used first, with at most `total` ids in all."""

    def __init__(self, per_sender: int, total: int) -> None:
        self.per_sender = per_sender
        self.total = total
        self.held = 0
        """Client ids in all windows."""
        self._windows: OrderedDict[Key, Window[V]] = OrderedDict()
        self._rooms: dict[str, set[str]] = {}
        """The senders with a window, by room."""

    def __len__(self) -> int:
        return len(self._windows)

    def get(self, key: Key) -> Window[V] | None:
        """The sender's window (now the most recently used), if there is one."""
        window = self._windows.get(key)
        if window is not None:
            self._windows.move_to_end(key)
        return window

    def open(self, key: Key) -> Window[V]:
        """A new window, empty until `fill` brings what the store has."""
        window: Window[V] = Window()
        self._windows[key] = window
        self._rooms.setdefault(key[0], set()).add(key[1])
        return window

    def fill(self, window: Window[V], stored: Mapping[str, V]) -> None:
        """The store's ids for the window (oldest first) are here: the posts waiting run."""
        for client_id, value in stored.items():
            if client_id not in window.ids:
                self.add(window, client_id, value, shrink=False)
        window.loaded = True
        self._run(window, None)
        self._shrink()

    def failed(self, key: Key, window: Window[V], error: Exception) -> None:
        """The store could not say: the window goes, and its waiting posts get `error`."""
        if self._windows.get(key) is window:
            self.drop(key)
        self._run(window, error)

    def add(self, window: Window[V], client_id: str, value: V, *, shrink: bool = True) -> None:
        """Remember a client id (the sender's oldest goes past `per_sender`)."""
        window.ids[client_id] = value
        self.held += 1
        if len(window.ids) > self.per_sender:
            window.ids.popitem(last=False)
            self.held -= 1
        if shrink:
            self._shrink()

    def discard(self, window: Window[V], client_id: str) -> None:
        """Forget a client id (its message could not be stored)."""
        if window.ids.pop(client_id, None) is not None:
            self.held -= 1

    def drop(self, key: Key) -> None:
        """Forget a window."""
        window = self._windows.pop(key, None)
        if window is not None:
            self.held -= len(window.ids)
            senders = self._rooms[key[0]]
            senders.discard(key[1])
            if not senders:
                del self._rooms[key[0]]

    def drop_room(self, room: str) -> None:
        """Forget every window of a room."""
        for sender in list(self._rooms.get(room, ())):
            self.drop((room, sender))

    def _run(self, window: Window[V], error: Exception | None) -> None:
        waiting, window.waiting = window.waiting, []
        for then in waiting:
            try:
                then(error)
            except Exception:  # one failing post must not leave the others waiting
                log.exception("carrying on with a post after reading client ids failed")

    def _shrink(self) -> None:
        """Past `total` ids, drop the least recently used windows that may go."""
        excess = self.held - self.total
        if excess <= 0:
            return
        victims: list[Key] = []
        for key, window in self._windows.items():
            if window.loaded and not window.storing and not window.waiting:
                victims.append(key)
                excess -= len(window.ids)
                if excess <= 0:
                    break
        for key in victims:
            self.drop(key)
