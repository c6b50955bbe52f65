"""What the app shows, as plain data: log entries and the state of each conversation."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum

from tuichat.app.i18n import N_, _
from tuichat.app.untrusted import MAX_USERS
from tuichat.chat.names import sort_key
from tuichat.client.unread import fold
from tuichat.protocol import Quote, Reaction

MAX_LOG_LINES = 5_000
"""Entries each room's log keeps. Past it the oldest go, a tenth at a time, and scrolling to the
top pages them back in from the room's history (while the room holds fewer)."""
MAX_LOG_CHARS = 2_000_000
"""Characters of text each room's log keeps; past it the oldest entries go the same way."""
TRIM_TO = MAX_LOG_LINES * 9 // 10
"""How many entries a log keeps when it is trimmed."""
NEW_MESSAGES = N_("new messages")
"""The text of the line above the first unread message (in English: shown through `_`)."""


class Kind(Enum):
    """What a log line is; each kind looks different."""

    MESSAGE = "message"  # someone else's room message
    OWN = "own"  # our own room message
    ACTION = "action"  # /me
    PRIVATE_IN = "private_in"  # ← ali
    PRIVATE_OUT = "private_out"  # → bob
    SYSTEM = "system"  # joins, leaves, notices
    ERROR = "error"
    NEW = "new"  # the line above the first unread message


@dataclass(slots=True)
class LogEntry:
    """One entry of the chat log (it may wrap onto several screen lines)."""

    kind: Kind
    ts: int  # milliseconds since the Unix epoch, server time
    sender: str
    text: str
    mention: bool = False
    seq: int = 0  # the room message's sequence number, the private message's pid (0: neither)
    history: bool = False  # loaded from the room's history, not received live
    hidden: bool = False  # a message from someone the user ignores: kept, not shown
    reply: int = 0  # the seq of the message it answers (0: not a reply)
    quote: Quote | None = None  # what a reply shows of that message (None: not known yet)
    edited: bool = False
    deleted: bool = False  # its text is gone ("": the log says it was deleted)
    reactions: tuple[Reaction, ...] = ()

    @property
    def extras(self) -> bool:
        """Whether it shows more than its text: a quote, reactions, a mark (edited,
        deleted)."""
        return bool(self.reply or self.reactions or self.edited or self.deleted)


@dataclass
class RoomView:
    """A conversation as the user sees it, a room (`#room`) or a private one (`@name`): its
    log and who is in it."""

    name: str
    entries: list[LogEntry] = field(default_factory=list)
    members: set[str] = field(default_factory=set)
    seqs: set[int] = field(default_factory=set)
    """Sequence numbers (pids in a private conversation) of the messages in `entries`."""
    history_complete: bool = False
    """Whether `entries` reach back to the first message of the conversation."""
    loading: bool = False
    pages_loaded: int = 0
    new_after: int | None = None
    """While the user is in the conversation: the marker it had when they came (the "new
    messages" line goes above the first message after it); None: no line."""
    topic: str = ""
    topic_by: str = ""
    topic_ts: int = 0
    invite_only: bool = False
    """A private room: only those invited may join it."""
    owner: str = ""
    """Who owns the room ("": nobody)."""
    ops: tuple[str, ...] = ()
    """The room's ops (besides its owner)."""
    hidden: int = 0
    """Entries of `entries` that are hidden (messages from people the user ignores)."""
    hidden_line: LogEntry | None = None
    """The line of `entries` that counts them (None while none is hidden)."""
    _sorted_members: tuple[str, ...] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    @property
    def private(self) -> bool:
        """Whether this is a private conversation."""
        return self.name.startswith("@")

    @property
    def peer(self) -> str:
        """Whom a private conversation is with."""
        return self.name[1:]

    @property
    def oldest_seq(self) -> int:
        """The smallest sequence number shown (0 if none)."""
        return min(self.seqs, default=0)

    @property
    def full(self) -> bool:
        """Whether the log holds as many entries as it may keep."""
        return len(self.entries) >= MAX_LOG_LINES

    def role(self, name: str) -> str:
        """What `name` is in the room: "owner", "op" or "" (names compared folded)."""
        folded = fold(name)
        if self.owner and fold(self.owner) == folded:
            return "owner"
        return "op" if any(fold(op) == folded for op in self.ops) else ""

    def clear(self) -> None:
        """Forget the log (members stay)."""
        self.entries.clear()
        self.seqs.clear()
        self.history_complete = False
        self.hidden, self.hidden_line = 0, None

    def trim(self) -> int:
        """Drop the oldest entries past `MAX_LOG_LINES` or `MAX_LOG_CHARS`; return how many."""
        removed = trim_log(self.entries)
        if removed:
            self.seqs.difference_update(entry.seq for entry in removed)
            self.history_complete = False
            self.hidden -= sum(entry.hidden for entry in removed)
            if any(entry is self.hidden_line for entry in removed):
                self.hidden_line = None
        return len(removed)

    def index_of(self, entry: LogEntry) -> int:
        """Where `entry` itself is in `entries` (-1: not there), looked for from the end."""
        entries = self.entries
        for index in range(len(entries) - 1, -1, -1):
            if entries[index] is entry:
                return index
        return -1

    def place_new_line(self, me: str) -> None:
        """Put the "new messages" line just above the first message by someone else than `me`
        after `new_after` (taking it from where it was); no such message, no line."""
        entries = self.entries
        for index, entry in enumerate(entries):
            if entry.kind is Kind.NEW:
                del entries[index]
                break
        after = self.new_after
        if after is None:
            return
        for index, entry in enumerate(entries):
            if entry.seq > after and not entry.hidden and not _own(entry, me):
                entries.insert(index, LogEntry(Kind.NEW, entry.ts, "", _(NEW_MESSAGES)))
                return

    def add_members(self, names: Iterable[str]) -> None:
        """Note that `names` are in the room (up to `MAX_USERS` names in all)."""
        members = self.members
        for member in names:
            if len(members) >= MAX_USERS:
                break
            members.add(member)
        self._sorted_members = None

    def remove_member(self, name: str) -> None:
        """Note that `name` left the room."""
        self.members.discard(name)
        self._sorted_members = None

    def sorted_members(self) -> tuple[str, ...]:
        """The members in display order."""
        if self._sorted_members is None:
            self._sorted_members = tuple(sorted(self.members, key=sort_key))
        return self._sorted_members


def _own(entry: LogEntry, me: str) -> bool:
    kind = entry.kind
    return kind in (Kind.OWN, Kind.PRIVATE_OUT) or (kind is Kind.ACTION and entry.sender == me)


def trim_log(entries: list[LogEntry]) -> list[LogEntry]:
    """Remove (and return) the oldest entries of a log that is past `MAX_LOG_LINES` or
    `MAX_LOG_CHARS`, leaving `TRIM_TO` entries at most and the newest one at least."""
    chars = sum(len(entry.text) for entry in entries) if len(entries) > 1 else 0
    if len(entries) <= MAX_LOG_LINES and chars <= MAX_LOG_CHARS:
        return []
    cut = max(len(entries) - TRIM_TO, 0)
    chars -= sum(len(entry.text) for entry in entries[:cut])
    budget = MAX_LOG_CHARS * 9 // 10
    while chars > budget and cut < len(entries) - 1:
        chars -= len(entries[cut].text)
        cut += 1
    removed = entries[:cut]
    del entries[:cut]
    return removed
