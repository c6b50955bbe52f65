"""The one client library: used by the app, the tests, bots and the benchmark."""

from tuichat.client.client import (
    ChatClient,
    ClientError,
    ClientEvent,
    ConnectionClosed,
    Disconnected,
    RequestFailed,
    new_message_id,
)

__all__ = [
    "ChatClient",
    "ClientError",
    "ClientEvent",
    "ConnectionClosed",
    "Disconnected",
    "RequestFailed",
    "new_message_id",
]
