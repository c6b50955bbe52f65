"""The storage interface the server talks to, and the records it stores.

The chat logic never touches storage: the server hands records to a
`HistoryStore`, which calls back once they are durable (or failed), and asks it
for pages of history. An SQLite store is the embedded default, memory the other;
the local broker (`tuichat.server.broker.local`) numbers what they store, and
reads a room's numbering back (`room`) only when the room is followed. Read markers
are stored beside the messages, in order with them (`save_reads`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tuichat.chat.rules import ModEvent, Rule
from tuichat.chat.search import SearchQuery
from tuichat.protocol import Message, ModEntry, PrivateMessage, RoomEvent, SearchHit
from tuichat.server.broker.base import Held, ReadMarker, Sees


class HistoryRefused(Exception):
    """The history cannot be used (the sentence says why and what to do)."""


class HistoryFailing(Exception):
    """The store cannot write right now (a full disk, a deleted file); appends are refused
    until it can."""


@dataclass(frozen=True, slots=True)
class RoomRecord:
    """A room as stored: its epoch and its last sequence number."""

    epoch: int
    seq: int


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """A room message (or a verb on one: an `Update`) to store, with who sent it and the id
    their client gave it. A verb changes the message it is about as it is stored: an edit
    replaces its text, a delete takes its text (and its edits' texts) out of storage, a
    reaction is given or taken back."""

    message: RoomEvent
    epoch: int
    sender_key: str
    client_id: str


@dataclass(frozen=True, slots=True)
class StoredPrivate:
    """A private message to store (visible to its two parties only; `hidden`: to its sender
    only, see `PrivatePost.hidden`)."""

    message: PrivateMessage
    sender_key: str
    target_key: str
    client_id: str = ""
    hidden: bool = False


Record = StoredMessage | StoredPrivate


@dataclass(frozen=True, slots=True)
class StoredRead:
    """A user's read marker to store, and when it was set (ms since the epoch)."""

    user_key: str
    marker: ReadMarker
    moved_at: int


def merged(stored: ReadMarker | None, marker: ReadMarker) -> tuple[ReadMarker, bool]:
    """The marker kept when `marker` comes after `stored`, and whether it moved.

    A marker moves forward only within an epoch; one of another epoch replaces it. The label
    is always the newest.
    """
    if stored is not None and stored.epoch == marker.epoch and stored.seq >= marker.seq:
        return ReadMarker(stored.conversation, marker.label, stored.epoch, stored.seq), False
    return marker, True


@dataclass(frozen=True, slots=True)
class LoadedState:
    """What a server needs from storage when it starts (nothing per room: rooms are read when
    they are followed)."""

    last_private_id: int
    tokens: dict[str, str]
    """User key → hash of the resume token of their last session."""
    identities: dict[str, str]
    """Name key → the name's owner (`ed25519:<public key>`, or `sha256:<hash>` from version 1)."""
    server_id: str = ""
    """The chat's identity, made the first time the store was used ("" if nothing is kept)."""
    unkeyed_rooms: frozenset[str] = frozenset()
    """Known rooms that do not hold their comparison key (see `Broker.claim_room`)."""
    rules: tuple[Rule, ...] = ()
    """Every rule stored (see `tuichat.chat.rules`)."""


class HistoryStore(ABC):
    """Durable history: appends with a callback when durable, and range reads."""

    @abstractmethod
    def load(self) -> LoadedState:
        """Return the last private message id, the resume tokens, the identities and the
        chat's identity (nothing that grows with rooms or messages)."""

    @abstractmethod
    def append(
        self,
        records: Sequence[Record],
        durable: Callable[[], None],
        failed: Callable[[Exception], None] | None = None,
    ) -> None:
        """Store `records` in order; call `durable()` on the event loop once they are safe, or
        `failed(error)` if they cannot be stored (then nothing of them is).

        Calls to `durable` and `failed` happen in the order of the `append` calls, and once an
        append failed, every later one fails too until `failure()` says None again.
        """

    @abstractmethod
    def failure(self) -> Exception | None:
        """Why appends fail right now (None: they are taken); an append made meanwhile fails."""

    @abstractmethod
    async def room(self, name: str) -> RoomRecord | None:
        """Return the room's epoch and last seq as stored (None: it has no message)."""

    @abstractmethod
    async def sent(self, room: str, sender_key: str, limit: int) -> dict[str, tuple[int, int]]:
        """Return the client ids of the sender's newest `limit` messages in `room` that had
        one, oldest first: client id → (seq, ts)."""

    @abstractmethod
    def save_token(self, user_key: str, token_hash: str) -> None:
        """Remember the resume token of a user's current session."""

    @abstractmethod
    def save_identity(
        self,
        name_keys: Sequence[str],
        name: str,
        owner: str,
        now: int,
        durable: Callable[[], None],
        failed: Callable[[Exception], None],
    ) -> None:
        """Remember that `name` (each of its keys) belongs to `owner`, replacing an earlier owner;
        call `durable()` on the event loop once it is safe, or `failed(error)` if it cannot be
        stored (then none of its keys is), in order with `append` and failing like it."""

    @abstractmethod
    async def room_claim(self, room: str, key: str) -> tuple[str | None, bool]:
        """Return the room that holds comparison key `key` (None: none does), and whether
        `room` is a known room (it claimed a key before, or has stored messages)."""

    @abstractmethod
    def save_room_key(
        self,
        room: str,
        key: str,
        durable: Callable[[], None],
        failed: Callable[[Exception], None],
    ) -> None:
        """Remember that `room` holds comparison key `key` (unless a room holds it already);
        call `durable()` on the event loop once it is safe, or `failed(error)`, in order with
        `append` and failing like it."""

    @abstractmethod
    def save_moderation(
        self,
        event: ModEvent,
        durable: Callable[[], None],
        failed: Callable[[Exception], None],
    ) -> None:
        """Store the event's rules (removing those with a value of None) and, if it is
        `logged`, its entry in the moderation log, together; call `durable()` on the event loop
        once it is safe, or `failed(error)`, in order with `append` and failing like it."""

    @abstractmethod
    async def mod_log(self, room: str | None, before: int, limit: int) -> list[ModEntry]:
        """Return the newest `limit` entries of the moderation log with id < `before` (0: no
        bound), of one room (`""`: the server-wide ones) or of all (None), newest first."""

    @abstractmethod
    def save_reads(
        self,
        reads: Sequence[StoredRead],
        durable: Callable[[list[ReadMarker]], None],
        failed: Callable[[Exception], None],
    ) -> None:
        """Store read markers one after another (see `merged`), keeping each user's
        `MAX_MARKERS` most recently moved; call `durable(the markers as stored, in order)` on
        the event loop once it is safe, or `failed(error)`, in order with `append` and failing
        like it."""

    def save_read(
        self,
        read: StoredRead,
        durable: Callable[[ReadMarker], None],
        failed: Callable[[Exception], None],
    ) -> None:
        """Store one read marker (`save_reads`); `durable` gets it as stored."""
        self.save_reads((read,), lambda kept: durable(kept[0]), failed)

    @abstractmethod
    async def read_markers(self, user_key: str) -> list[ReadMarker]:
        """Return the user's read markers, the most recently moved first."""

    @abstractmethod
    async def unread_privates(self, user_key: str, limit: int) -> list[PrivateMessage]:
        """Return the newest `limit` private messages to `user_key` from someone else with a pid
        above the user's marker of that conversation (`@` and the sender's key), oldest first."""

    @abstractmethod
    async def conversation(
        self, user_key: str, other_key: str, before: int, limit: int
    ) -> list[PrivateMessage]:
        """Return the newest `limit` private messages between the two users (either way) with
        pid < `before` (0: no bound), oldest first."""

    @abstractmethod
    async def sent_privates(self, sender_key: str, limit: int) -> dict[str, int]:
        """Return the client ids of the sender's newest `limit` private messages that had one,
        oldest first: client id → pid."""

    @abstractmethod
    async def private(self, pid: int) -> PrivateMessage | None:
        """Return the private message `pid` (None: it is not kept)."""

    @abstractmethod
    async def page(self, room: str, before: int, limit: int) -> list[Message]:
        """Return up to `limit` messages of `room` with seq < `before` (0: no bound), oldest
        first, as `Broker.page` gives them (verbs left out)."""

    @abstractmethod
    async def after(self, room: str, after: int, upto: int) -> list[RoomEvent]:
        """Return the messages and verbs of `room` with `after` < seq <= `upto`, oldest first,
        as `Broker.replay` gives them."""

    @abstractmethod
    async def held(self, room: str, seq: int, user_key: str) -> Held | None:
        """Return message `seq` of `room` as `Broker.held` gives it."""

    @abstractmethod
    async def search(self, query: SearchQuery, sees: Sees) -> tuple[list[SearchHit], str]:
        """Search the stored messages as `Broker.search` does."""

    @abstractmethod
    async def privates(self, user_key: str, after: int, limit: int) -> list[PrivateMessage]:
        """Return private messages to or from `user_key` with pid > `after`, oldest first."""

    @abstractmethod
    async def close(self) -> None:
        """Make everything appended durable, then release the storage."""
