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
from tuichat.client.unread import (
    READ_INTERVAL,
    Counts,
    Unread,
    conversation_key,
    fold,
    mentions,
    read_pause,
)
from tuichat.protocol.auth import SigningKey

__all__ = [
    "READ_INTERVAL",
    "Backoff",
    "ChatClient",
    "ClientError",
    "ClientEvent",
    "ConnectionClosed",
    "Counts",
    "Disconnected",
    "Reconnected",
    "Reconnecting",
    "RequestFailed",
    "ServerPins",
    "ServerSilent",
    "SigningKey",
    "Unread",
    "UntrustedServer",
    "conversation_key",
    "fold",
    "mentions",
    "new_message_id",
    "read_pause",
]
