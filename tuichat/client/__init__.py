"""The one client library: used by the app, the tests, bots and the benchmark."""

from tuichat.client.client import (
    Backoff,
    ChatClient,
    ClientError,
    ClientEvent,
    ConnectionClosed,
    Disconnected,
    Reconnected,
    Reconnecting,
    RequestFailed,
    new_message_id,
)

__all__ = [
    "Backoff",
    "ChatClient",
    "ClientError",
    "ClientEvent",
    "ConnectionClosed",
    "Disconnected",
    "Reconnected",
    "Reconnecting",
    "RequestFailed",
    "new_message_id",
]
