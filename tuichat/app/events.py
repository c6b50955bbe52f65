"""Textual messages the network worker posts into the app."""

from __future__ import annotations

import asyncio

from textual.message import Message

from tuichat.client import ChatClient, ClientEvent


class Connected(Message):
    """The server welcomed us."""

    def __init__(self, client: ChatClient) -> None:
        super().__init__()
        self.client = client


class ServerEvents(Message):
    """Events from the server, in the order they arrived. The app may take them a slice at a
    time; `taken` is set once all of them are (the sender waits for it before it reads more,
    so what the app has not taken yet waits in the client, under the client's own limit)."""

    def __init__(self, events: list[ClientEvent]) -> None:
        super().__init__()
        self.events = events
        self.applied = 0
        """How many of `events` the app has taken."""
        self.taken = asyncio.Event()


class NameRefused(Message):
    """The server refused our name (`invalid_name` or `name_taken`)."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__()
        self.name = name
        self.reason = reason


class ConnectFailed(Message):
    """The server could not be reached."""

    def __init__(self, reason: str) -> None:
        super().__init__()
        self.reason = reason
