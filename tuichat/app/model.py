"""What the app shows, as plain data: log entries and the state of each room."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum

from tuichat.app.untrusted import MAX_USERS
from tuichat.chat.names import sort_key

MAX_LOG_LINES = 5_000
"""Entries each room's log keeps. Past it the oldest go, a tenth at a time, and scrolling to the
top pages them back in from the room's history (while the room holds fewer)."""
MAX_LOG_CHARS = 2_000_000
"""Characters of text each room's log keeps; past it the oldest entries go the same way."""
TRIM_TO = MAX_LOG_LINES * 9 // 10
"""How many entries a log keeps when it is trimmed."""


class Kind(Enum):
    """What a log line is; each kind looks different."""

    MESSAGE = "message"  # someone else's room message
    OWN = "own"  # our own room message
    ACTION = "action"  # /me
    PRIVATE_IN = "private_in"  # ← ali
    PRIVATE_OUT = "private_out"  # → bob
    SYSTEM = "system"  # joins, leaves, notices
    ERROR = "error"


@dataclass(slots=True)
class LogEntry:
    """One entry of the chat log (it may wrap onto several screen lines)."""

    kind: Kind
    ts: int  # milliseconds since the Unix epoch, server time
    sender: str
    text: str
    mention: bool = False
    seq: int = 0  # the room message's sequence number (0 for other lines)
    history: bool = False  # loaded from the room's history, not received live


@dataclass
class RoomView:
    """A room as the user sees it: its log and who is in it."""

    name: str
    entries: list[LogEntry] = field(default_factory=list)
    members: set[str] = field(default_factory=set)
    seqs: set[int] = field(default_factory=set)
    """Sequence numbers of the room messages in `entries`."""
    history_complete: bool = False
    """Whether `entries` reach back to the first message of the room."""
    loading: bool = False
    pages_loaded: int = 0
    _sorted_members: tuple[str, ...] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    @property
    def oldest_seq(self) -> int:
        """The smallest sequence number shown (0 if none)."""
        return min(self.seqs, default=0)

    @property
    def full(self) -> bool:
        """Whether the log holds as many entries as it may keep."""
        return len(self.entries) >= MAX_LOG_LINES

    def clear(self) -> None:
        """Forget the log (members stay)."""
        self.entries.clear()
        self.seqs.clear()
        self.history_complete = False

    def trim(self) -> int:
        """Drop the oldest entries past `MAX_LOG_LINES` or `MAX_LOG_CHARS`; return how many."""
        removed = trim_log(self.entries)
        if removed:
            self.seqs.difference_update(entry.seq for entry in removed)
            self.history_complete = False
        return len(removed)

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


def mentions(text: str, name: str) -> bool:
    """Whether `text` mentions `name` as a whole word, ignoring case."""
    if not name or name.casefold() not in text.casefold():
        return False
    return re.search(rf"(?<!\w){re.escape(name)}(?!\w)", text, re.IGNORECASE) is not None
