"""What the app shows, as plain data: log entries and the state of each room."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import Enum


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

    @property
    def oldest_seq(self) -> int:
        """The smallest sequence number shown (0 if none)."""
        return min(self.seqs, default=0)

    def clear(self) -> None:
        """Forget the log (members stay)."""
        self.entries.clear()
        self.seqs.clear()
        self.history_complete = False


def mentions(text: str, name: str) -> bool:
    """Whether `text` mentions `name` as a whole word, ignoring case."""
    if not name or name.casefold() not in text.casefold():
        return False
    return re.search(rf"(?<!\w){re.escape(name)}(?!\w)", text, re.IGNORECASE) is not None
