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
    ServerPins,
    ServerSilent,
    UntrustedServer,
    new_message_id,
)
from tuichat.protocol.auth import SigningKey

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
    "ServerPins",
    "ServerSilent",
    "SigningKey",
    "UntrustedServer",
    "new_message_id",
]
