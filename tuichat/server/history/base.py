"""The storage interface the server talks to, and the records it stores.

The chat logic never touches storage: the server hands records to a
`HistoryStore`, which calls back once they are durable, and asks it for pages of
history. An SQLite store is the embedded default, memory the other; the local
broker (`tuichat.server.broker.local`) numbers what they store.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from tuichat.protocol import Message, PrivateMessage


@dataclass(frozen=True, slots=True)
class RoomRecord:
    """A room as stored: its epoch, its last sequence number, its recent client ids."""

    epoch: int
    seq: int
    recent_ids: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)
    """(sender key, client id) → (seq, ts), for the newest messages that had an id."""


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """A room message to store, with who sent it and the id their client gave it."""

    message: Message
    epoch: int
    sender_key: str
    client_id: str


@dataclass(frozen=True, slots=True)
class StoredPrivate:
    """A private message to store (visible to its two parties only)."""

    message: PrivateMessage
    sender_key: str
    target_key: str
    client_id: str = ""


Record = StoredMessage | StoredPrivate


@dataclass(frozen=True, slots=True)
class LoadedState:
    """What a server needs from storage when it starts."""

    rooms: dict[str, RoomRecord]
    last_private_id: int
    tokens: dict[str, str]
    """User key → hash of the resume token of their last session."""
    identities: dict[str, str]
    """Name key → the name's owner (`ed25519:<public key>`, or `sha256:<hash>` from version 1)."""
    recent_privates: dict[tuple[str, str], PrivateMessage] = field(default_factory=dict)
    """(sender key, client id) → the newest private messages that had an id, oldest first."""
    server_id: str = ""
    """The chat's identity, made the first time the store was used ("" if nothing is kept)."""


class HistoryStore(ABC):
    """Durable history: appends with a callback when durable, and range reads."""

    @abstractmethod
    def load(self, recent_ids: int) -> LoadedState:
        """Return the stored rooms (with up to `recent_ids` client ids each, to recognise
        retried sends), the last private message id and the `recent_ids` newest private
        messages with an id, the resume tokens and the identities."""

    @abstractmethod
    def append(self, records: Sequence[Record], durable: Callable[[], None]) -> None:
        """Store `records` in order; call `durable()` on the event loop once they are safe.

        Calls to `durable` happen in the order of the `append` calls.
        """

    @abstractmethod
    def save_token(self, user_key: str, token_hash: str) -> None:
        """Remember the resume token of a user's current session."""

    @abstractmethod
    def save_identity(self, name_key: str, name: str, owner: str, now: int) -> None:
        """Remember that `name` belongs to `owner` (replacing an earlier owner)."""

    @abstractmethod
    async def page(self, room: str, before: int, limit: int) -> list[Message]:
        """Return up to `limit` messages of `room` with seq < `before`, oldest first."""

    @abstractmethod
    async def after(self, room: str, after: int, upto: int) -> list[Message]:
        """Return the messages of `room` with `after` < seq <= `upto`, oldest first."""

    @abstractmethod
    async def privates(self, user_key: str, after: int, limit: int) -> list[PrivateMessage]:
        """Return private messages to or from `user_key` with pid > `after`, oldest first."""

    @abstractmethod
    async def close(self) -> None:
        """Make everything appended durable, then release the storage."""
