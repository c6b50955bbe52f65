"""History kept in memory only: nothing survives a restart (`--history off`), the rooms'
claims of their comparison keys included."""

from __future__ import annotations

import asyncio
import dataclasses
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from tuichat.chat import verbs
from tuichat.chat.rules import ModEvent
from tuichat.chat.search import SearchQuery, cursor_after, holds, newest_first, older_than
from tuichat.protocol import Message, ModEntry, PrivateMessage, RoomEvent, SearchHit, Update
from tuichat.server.broker.base import MAX_MARKERS, Held, ReadMarker, Sees
from tuichat.server.history.base import (
    HistoryStore,
    LoadedState,
    Record,
    RoomRecord,
    StoredMessage,
    StoredRead,
    merged,
)


@dataclass(slots=True)
class _Room:
    epoch: int
    kept: deque[StoredMessage] = field(default_factory=deque)
    """Messages and verbs in seq order, without gaps (messages as they are now)."""
    given: dict[int, dict[str, dict[str, str]]] = field(default_factory=dict)
    """Reactions by message seq: reaction → user key → name, in the order given."""

    def record(self, seq: int) -> StoredMessage | None:
        if not self.kept or not 0 <= seq - self.kept[0].message.seq < len(self.kept):
            return None
        return self.kept[seq - self.kept[0].message.seq]

    def now(self, record: StoredMessage) -> RoomEvent:
        """A kept message as it is now (its reactions, a reply's quote)."""
        message = record.message
        if isinstance(message, Update):
            return message
        quote = None
        if message.reply:
            original = self.record(message.reply)
            if original is not None and isinstance(original.message, Message):
                quote = verbs.quote_of(original.message)
        given = self.given.get(message.seq)
        reactions = verbs.gathered(
            (text, name) for text, who in (given or {}).items() for name in who.values()
        )
        if quote is None and reactions is None:
            return message
        return dataclasses.replace(message, quote=quote, reactions=reactions)

    def apply(self, record: StoredMessage) -> None:
        """Carry out a verb on the message it is about (if it is still kept)."""
        update = record.message
        assert isinstance(update, Update)
        target = self.record(update.target)
        if target is None or not isinstance(target.message, Message) or target.message.deleted:
            if update.verb == "edit":  # (made as its message was deleted: its text goes too)
                blank = dataclasses.replace(record, message=dataclasses.replace(update, text=""))
                self.kept[update.seq - self.kept[0].message.seq] = blank
            return
        index = update.target - self.kept[0].message.seq
        if update.verb == "react":
            given = self.given.setdefault(update.target, {}).setdefault(update.text, {})
            if update.on:
                given.setdefault(record.sender_key, update.sender)
            else:
                given.pop(record.sender_key, None)
            return
        self.kept[index] = dataclasses.replace(
            target, message=verbs.applied(target.message, update)
        )
        if update.verb == "delete":
            self.given.pop(update.target, None)
            for i in range(index + 1, len(self.kept)):  # its edits' texts go too
                edit = self.kept[i].message
                if (
                    isinstance(edit, Update)
                    and edit.verb == "edit"
                    and edit.target == update.target
                ):
                    edit = dataclasses.replace(edit, text="")
                    self.kept[i] = dataclasses.replace(self.kept[i], message=edit)


HIDDEN = "\0"
"""Before the target key of a hidden private message: no read of the target's matches it."""

KEPT_MARKERS_PER_KEPT_MESSAGE = 100
"""Read markers kept in memory in all, for each message kept per room (100,000 by default):
past it, those of the users who moved one least lately go."""


class MemoryHistory(HistoryStore):
    """The last `keep` messages of each room and of private messages, and each user's read
    markers, in memory; acknowledged at once."""

    def __init__(self, keep: int = 1000) -> None:
        self._keep = keep
        self._rooms: dict[str, _Room] = {}
        self._privates: deque[tuple[str, str, PrivateMessage, str]] = deque(maxlen=keep)
        """(sender key, target key, message, client id), oldest first; the target key of a
        hidden message (see `StoredPrivate.hidden`) is `HIDDEN` and the key."""
        self._reads: dict[str, dict[str, ReadMarker]] = {}
        """Each user's read markers by conversation, the users and their markers the least
        recently moved first."""
        self._read_count = 0
        self._room_keys: dict[str, str] = {}
        """Comparison key → the room that holds it."""
        self._keyed_rooms: set[str] = set()
        """The rooms that claimed a key."""
        self._log: deque[ModEntry] = deque(maxlen=keep * 10)
        self._log_id = 0

    def load(self) -> LoadedState:
        return LoadedState(last_private_id=0, tokens={}, identities={})

    def append(
        self,
        records: Sequence[Record],
        durable: Callable[[], None],
        failed: Callable[[Exception], None] | None = None,
    ) -> None:
        for record in records:
            if isinstance(record, StoredMessage):
                name = record.message.room
                room = self._rooms.get(name)
                if room is None:
                    room = self._rooms[name] = _Room(record.epoch, deque(maxlen=self._keep))
                if len(room.kept) == room.kept.maxlen:
                    room.given.pop(room.kept[0].message.seq, None)
                room.kept.append(record)
                if isinstance(record.message, Update):
                    room.apply(record)
            else:
                target = HIDDEN + record.target_key if record.hidden else record.target_key
                kept = (record.sender_key, target, record.message, record.client_id)
                self._privates.append(kept)
        asyncio.get_running_loop().call_soon(durable)

    def failure(self) -> Exception | None:
        return None

    def save_token(self, user_key: str, token_hash: str) -> None:
        pass  # tokens live in the server's memory already

    def save_identity(
        self,
        name_keys: Sequence[str],
        name: str,
        owner: str,
        now: int,
        durable: Callable[[], None],
        failed: Callable[[Exception], None],
    ) -> None:
        asyncio.get_running_loop().call_soon(durable)  # identities live in the server's memory

    async def room_claim(self, room: str, key: str) -> tuple[str | None, bool]:
        return self._room_keys.get(key), room in self._keyed_rooms or room in self._rooms

    def save_room_key(
        self,
        room: str,
        key: str,
        durable: Callable[[], None],
        failed: Callable[[Exception], None],
    ) -> None:
        if key not in self._room_keys and room not in self._keyed_rooms:
            self._room_keys[key] = room
            self._keyed_rooms.add(room)
        asyncio.get_running_loop().call_soon(durable)

    def save_moderation(
        self,
        event: ModEvent,
        durable: Callable[[], None],
        failed: Callable[[Exception], None],
    ) -> None:
        if event.logged:  # (the rules live in the server's memory already)
            self._log_id += 1
            self._log.append(
                ModEntry(self._log_id, event.ts, event.room, event.action, event.name, event.by,
                         event.reason, event.until)
            )  # fmt: skip
        asyncio.get_running_loop().call_soon(durable)

    async def mod_log(self, room: str | None, before: int, limit: int) -> list[ModEntry]:
        found: list[ModEntry] = []
        for entry in reversed(self._log):
            if len(found) >= limit:
                break
            if (room is None or entry.room == room) and (not before or entry.id < before):
                found.append(entry)
        return found

    def save_reads(
        self,
        reads: Sequence[StoredRead],
        durable: Callable[[list[ReadMarker]], None],
        failed: Callable[[Exception], None],
    ) -> None:
        asyncio.get_running_loop().call_soon(durable, [self._save_read(read) for read in reads])

    def _save_read(self, read: StoredRead) -> ReadMarker:
        markers = self._reads.pop(read.user_key, {})  # to the end: the user moved one last
        self._reads[read.user_key] = markers
        conversation = read.marker.conversation
        kept, moved = merged(markers.get(conversation), read.marker)
        if moved:
            self._read_count -= markers.pop(conversation, None) is not None
            if len(markers) >= MAX_MARKERS:
                del markers[next(iter(markers))]
                self._read_count -= 1
        self._read_count += conversation not in markers
        markers[conversation] = kept
        while self._read_count > self._keep * KEPT_MARKERS_PER_KEPT_MESSAGE:  # all users' bound
            oldest = next(iter(self._reads))
            self._read_count -= len(self._reads.pop(oldest))
        return kept

    async def read_markers(self, user_key: str) -> list[ReadMarker]:
        return list(reversed(self._reads.get(user_key, {}).values()))

    async def unread_privates(self, user_key: str, limit: int) -> list[PrivateMessage]:
        markers = self._reads.get(user_key, {})
        found: list[PrivateMessage] = []
        for sender, target, message, _ in reversed(self._privates):
            if len(found) >= limit:
                break
            if target == user_key and sender != user_key:
                marker = markers.get("@" + sender)
                if message.pid > (marker.seq if marker else 0):
                    found.append(message)
        return found[::-1]

    async def conversation(
        self, user_key: str, other_key: str, before: int, limit: int
    ) -> list[PrivateMessage]:
        found: list[PrivateMessage] = []
        for sender, target, message, _ in reversed(self._privates):
            if len(found) >= limit:
                break
            if (sender, target) in (
                (user_key, other_key), (other_key, user_key), (user_key, HIDDEN + other_key)
            ) and (not before or message.pid < before):  # fmt: skip
                found.append(message)
        return found[::-1]

    async def room(self, name: str) -> RoomRecord | None:
        room = self._rooms.get(name)
        if room is None or not room.kept:
            return None
        return RoomRecord(room.epoch, room.kept[-1].message.seq)

    async def sent(self, room: str, sender_key: str, limit: int) -> dict[str, tuple[int, int]]:
        kept = self._rooms.get(room)
        found: list[tuple[str, tuple[int, int]]] = []
        for record in reversed(kept.kept if kept else ()):
            if len(found) >= limit:
                break
            if record.client_id and record.sender_key == sender_key:
                found.append((record.client_id, (record.message.seq, record.message.ts)))
        return dict(reversed(found))

    async def sent_privates(self, sender_key: str, limit: int) -> dict[str, int]:
        found: list[tuple[str, int]] = []
        for sender, _, message, client_id in reversed(self._privates):
            if len(found) >= limit:
                break
            if client_id and sender == sender_key:
                found.append((client_id, message.pid))
        return dict(reversed(found))

    async def private(self, pid: int) -> PrivateMessage | None:
        return next((m for _, _, m, _ in self._privates if m.pid == pid), None)

    async def page(self, room: str, before: int, limit: int) -> list[Message]:
        kept = self._rooms.get(room)
        if kept is None or not limit:
            return []
        found: list[Message] = []
        for record in reversed(kept.kept):
            message = record.message
            if isinstance(message, Message) and (not before or message.seq < before):
                now = kept.now(record)
                assert isinstance(now, Message)
                found.append(now)
                if len(found) >= limit:
                    break
        return found[::-1]

    async def after(self, room: str, after: int, upto: int) -> list[RoomEvent]:
        kept = self._rooms.get(room)
        if kept is None:
            return []
        return [kept.now(r) for r in kept.kept if after < r.message.seq <= upto]

    async def held(self, room: str, seq: int, user_key: str) -> Held | None:
        kept = self._rooms.get(room)
        record = kept.record(seq) if kept is not None else None
        if kept is None or record is None or not isinstance(record.message, Message):
            return None
        now = kept.now(record)
        assert isinstance(now, Message)
        given = kept.given.get(seq, {})
        reacted = frozenset(text for text, who in given.items() if user_key in who)
        return Held(now, record.sender_key, reacted)

    async def search(self, query: SearchQuery, sees: Sees) -> tuple[list[SearchHit], str]:
        bound = older_than(query.before)
        hits: list[SearchHit] = []
        rooms = [query.room] if query.room else [] if query.with_key else list(self._rooms)
        for name in rooms:
            kept = self._rooms.get(name)
            if kept is None or not sees(name):
                continue
            await asyncio.sleep(0)  # (a room at a time: others are served between them)
            for record in kept.kept:
                m = record.message
                if (
                    isinstance(m, Message)
                    and not m.deleted
                    and (not query.sender_key or record.sender_key == query.sender_key)
                    and holds(m.text, query.words)
                ):
                    hits.append(SearchHit(name, m.seq, m.sender, m.text, m.ts, m.action))
        if not query.room:
            for sender, target, p, _ in self._privates:
                other = target if sender == query.user_key else sender
                if query.user_key not in (sender, target) or query.with_key not in ("", other):
                    continue
                if p.pid <= query.private_since:  # an earlier holder of the name had it
                    continue
                if query.sender_key not in ("", sender) or not holds(p.text, query.words):
                    continue
                name = p.to if sender == query.user_key else p.sender
                hits.append(SearchHit("@" + name, p.pid, p.sender, p.text, p.ts, p.action))
        hits = [h for h in hits if bound is None or newest_first(h) < bound]
        hits.sort(key=newest_first, reverse=True)
        page = hits[: query.limit]
        return page, cursor_after(page[-1]) if len(hits) > query.limit else ""

    async def privates(self, user_key: str, after: int, limit: int) -> list[PrivateMessage]:
        found = [m for s, t, m, _ in self._privates if user_key in (s, t) and m.pid > after]
        return found[:limit]

    async def close(self) -> None:
        pass
