"""Message history: the storage interface and its implementations."""

from tuichat.server.history.base import (
    HistoryFailing,
    HistoryRefused,
    HistoryStore,
    LoadedState,
    RoomRecord,
    StoredMessage,
    StoredPrivate,
    StoredRead,
)
from tuichat.server.history.memory import MemoryHistory
from tuichat.server.history.sqlite import SQLiteHistory

__all__ = [
    "HistoryFailing",
    "HistoryRefused",
    "HistoryStore",
    "LoadedState",
    "MemoryHistory",
    "RoomRecord",
    "SQLiteHistory",
    "StoredMessage",
    "StoredPrivate",
    "StoredRead",
]
