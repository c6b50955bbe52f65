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


@dataclass
class RoomView:
    """A room as the user sees it: its log and who is in it."""

    name: str
    entries: list[LogEntry] = field(default_factory=list)
    members: set[str] = field(default_factory=set)


def mentions(text: str, name: str) -> bool:
    """Whether `text` mentions `name` as a whole word, ignoring case."""
    if not name or name.casefold() not in text.casefold():
        return False
    return re.search(rf"(?<!\w){re.escape(name)}(?!\w)", text, re.IGNORECASE) is not None
