"""Textual messages the network worker posts into the app."""

from __future__ import annotations

from textual.message import Message

from tuichat.client import ChatClient, ClientEvent


class Connected(Message):
    """The server welcomed us."""

    def __init__(self, client: ChatClient) -> None:
        super().__init__()
        self.client = client


class ServerEvents(Message):
    """Events from the server, in the order they arrived."""

    def __init__(self, events: list[ClientEvent]) -> None:
        super().__init__()
        self.events = events


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
