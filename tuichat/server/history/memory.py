"""History kept in memory only: nothing survives a restart (`--history off`)."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Sequence

from tuichat.protocol import Message, PrivateMessage
from tuichat.server.history.base import (
    HistoryStore,
    LoadedState,
    Record,
    StoredMessage,
)


class MemoryHistory(HistoryStore):
    """The last `keep` messages of each room, in memory; acknowledged at once."""

    def __init__(self, keep: int = 1000) -> None:
        self._keep = keep
        self._rooms: dict[str, deque[Message]] = {}
        self._privates: deque[tuple[str, str, PrivateMessage]] = deque(maxlen=keep)

    def load(self, recent_ids: int) -> LoadedState:
        return LoadedState(rooms={}, last_private_id=0, tokens={}, identities={})

    def append(self, records: Sequence[Record], durable: Callable[[], None]) -> None:
        for record in records:
            if isinstance(record, StoredMessage):
                room = record.message.room
                if room not in self._rooms:
                    self._rooms[room] = deque(maxlen=self._keep)
                self._rooms[room].append(record.message)
            else:
                self._privates.append((record.sender_key, record.target_key, record.message))
        asyncio.get_running_loop().call_soon(durable)

    def save_token(self, user_key: str, token_hash: str) -> None:
        pass  # tokens live in the server's memory already

    def save_identity(self, name_key: str, name: str, owner: str, now: int) -> None:
        pass  # identities live in the server's memory already

    async def page(self, room: str, before: int, limit: int) -> list[Message]:
        kept = [m for m in self._rooms.get(room, ()) if not before or m.seq < before]
        return kept[-limit:] if limit else []

    async def after(self, room: str, after: int, upto: int) -> list[Message]:
        return [m for m in self._rooms.get(room, ()) if after < m.seq <= upto]

    async def privates(self, user_key: str, after: int, limit: int) -> list[PrivateMessage]:
        found = [m for s, t, m in self._privates if user_key in (s, t) and m.pid > after]
        return found[:limit]

    async def close(self) -> None:
        pass
