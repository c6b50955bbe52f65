"""What the app shows, as plain data: log entries and the state of each conversation."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum
from itertools import islice

from tuichat.app.i18n import N_, _
from tuichat.app.untrusted import MAX_USERS
from tuichat.chat.names import sort_key
from tuichat.client.unread import fold
from tuichat.protocol import Quote, Reaction

MAX_LOG_LINES = 5_000
"""Entries each conversation's log keeps (its window). Past it the oldest go, a tenth at a time;
scrolling to the top pages them back in from the history, and once the window is full each page
read back drops as many of the newest (the log no longer reaches the newest message: `newer`)."""
MAX_LOG_CHARS = 2_000_000
"""Characters of text each room's log keeps; past it the oldest entries go the same way."""
TRIM_TO = MAX_LOG_LINES * 9 // 10
"""How many entries a log keeps when it is trimmed."""
TAIL_LINES = 500
"""Entries kept of what comes live while the log shows older messages (`RoomView.tail`)."""
BACKGROUND_LINES = 1_000
"""Entries kept by a conversation not on screen (and a fifth of `MAX_LOG_CHARS`): with up to
64 rooms and 100 private conversations, what they all hold stays bounded; coming back to one,
scrolling up pages the rest back in."""
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
    count: int = 0
    """How many are in the room, as the server last said of a room too large to name everyone
    (0: as many as `members`)."""
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
    newer: bool = False
    """The log does not reach the newest message: the user paged back past what it keeps, or
    went to an older message. What comes live meanwhile waits in `tail`."""
    tail: list[LogEntry] = field(default_factory=list)
    """While `newer`: the newest entries (at most `TAIL_LINES`), shown when the log reaches
    them (paged forward to `tail_from`, or back to the newest at once)."""
    tail_from: int = 0
    """While `newer`: `tail` holds every message after this seq."""
    window_end: int = 0
    """While `newer`: `entries` hold every message from their oldest up to this seq."""
    unseen_newer: int = 0
    """While `newer`: messages that came live (counted for the "new messages" line)."""
    generation: int = 0
    """Counts the times `entries` were replaced or lost their oldest: a page of history asked
    for before is not next to them any more."""
    _sorted_members: tuple[str, ...] | None = field(
        default=None, init=False, repr=False, compare=False
    )
    _counted: tuple[LogEntry | None, int, int] = field(
        default=(None, 0, 0), init=False, repr=False, compare=False
    )
    """The first entry, the number of entries and their characters when they were last
    counted (while entries are only appended, the count goes on from there)."""

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

    @property
    def newest_seq(self) -> int:
        """The largest sequence number shown (0 if none)."""
        return max(self.seqs, default=0)

    def clear(self) -> None:
        """Forget the log (members stay)."""
        self.entries.clear()
        self.seqs.clear()
        self.history_complete = False
        self.hidden, self.hidden_line = 0, None
        self.end_tail()
        self.generation += 1

    def end_tail(self) -> list[LogEntry]:
        """The log reaches the newest message again: return what waited in `tail` (and forget
        it)."""
        tail, self.tail = self.tail, []
        self.newer, self.tail_from, self.window_end, self.unseen_newer = False, 0, 0, 0
        return tail

    def to_tail(self, entry: LogEntry) -> None:
        """Keep `entry` (come live while the log shows older messages) in `tail`; past
        `TAIL_LINES`, the oldest go a tenth at a time."""
        tail = self.tail
        tail.append(entry)
        if len(tail) > TAIL_LINES + TAIL_LINES // 10:
            cut = len(tail) - TAIL_LINES
            self.tail_from = max(self.tail_from, *(e.seq for e in tail[:cut]))
            del tail[:cut]

    def recount_hidden(self) -> None:
        """Count the hidden entries of `entries` again (after some came or went in bulk)."""
        self.hidden = sum(entry.hidden for entry in self.entries)
        line = self.hidden_line
        if line is not None and self.index_of(line) < 0:
            self.hidden_line = None

    def text_chars(self) -> int:
        """The characters of the entries' texts."""
        entries = self.entries
        first, count, chars = self._counted
        if entries and entries[0] is first and count <= len(entries):
            chars += sum(len(entry.text) for entry in islice(entries, count, None))
        else:
            chars = sum(len(entry.text) for entry in entries)
        self._counted = (entries[0] if entries else None, len(entries), chars)
        return chars

    def texts_changed(self) -> None:
        """An entry's text changed in place (an edit): count them all again next time."""
        self._counted = (None, 0, 0)

    def trim(self, lines: int | None = None) -> int:
        """Drop the oldest entries past `MAX_LOG_LINES` (or `lines`, and as many characters
        of `MAX_LOG_CHARS`) or `MAX_LOG_CHARS`; return how many."""
        entries = self.entries
        chars = self.text_chars()
        most = MAX_LOG_LINES if lines is None else lines
        if len(entries) <= most and chars <= MAX_LOG_CHARS * most // MAX_LOG_LINES:
            return 0
        removed = trim_log(entries, chars, most)
        chars -= sum(len(entry.text) for entry in removed)
        self._counted = (entries[0] if entries else None, len(entries), chars)
        if removed:
            self.seqs.difference_update(entry.seq for entry in removed)
            self.history_complete = False
            self.generation += 1  # (a page asked for before is not next to the oldest now)
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


def trim_log(
    entries: list[LogEntry], chars: int | None = None, lines: int | None = None
) -> list[LogEntry]:
    """Remove (and return) the oldest entries of a log that is past `MAX_LOG_LINES` or
    `MAX_LOG_CHARS` (`chars`: the characters of their texts, if known), leaving `TRIM_TO`
    entries at most and the newest one at least. With `lines`, the limits are that many
    entries and as large a part of `MAX_LOG_CHARS`."""
    most = MAX_LOG_LINES if lines is None else lines
    most_chars = MAX_LOG_CHARS * most // MAX_LOG_LINES
    if len(entries) <= 1:
        chars = 0
    elif chars is None:
        chars = sum(len(entry.text) for entry in entries)
    if len(entries) <= most and chars <= most_chars:
        return []
    cut = max(len(entries) - TRIM_TO * most // MAX_LOG_LINES, 0)
    chars -= sum(len(entry.text) for entry in entries[:cut])
    budget = most_chars * 9 // 10
    while chars > budget and cut < len(entries) - 1:
        chars -= len(entries[cut].text)
        cut += 1
    removed = entries[:cut]
    del entries[:cut]
    return removed
