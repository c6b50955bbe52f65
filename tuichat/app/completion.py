"""Tab completion of commands, names and rooms in the composer."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from tuichat.client.unread import fold

COMMANDS = (
    "/away", "/back", "/ban", "/delete", "/deop", "/edit", "/exit", "/help", "/ignore", "/invite",
    "/join", "/kick", "/me", "/modlog", "/msg", "/mute", "/notify", "/op", "/part", "/private",
    "/query", "/quit", "/react", "/reply", "/search", "/signout", "/topic", "/unban", "/unignore",
    "/uninvite", "/unmute", "/users",
)  # fmt: skip
"""The commands Tab completes (those `commands.parse_input` knows, by their main names)."""


@dataclass(frozen=True, slots=True)
class Completions:
    """Every way to complete the word that ends at the cursor."""

    start: int
    """Where the word starts in the text."""
    end: int
    """Where it ends (the cursor)."""
    word: str
    candidates: tuple[str, ...]
    """The names or rooms that start with the word, in sorted order."""
    suffix: str
    """What follows a completed candidate: `: ` or a space."""

    @property
    def options(self) -> tuple[str, ...]:
        """Each candidate as it would be inserted, its suffix included."""
        return tuple(candidate + self.suffix for candidate in self.candidates)

    def apply(self, text: str, index: int) -> tuple[str, int]:
        """Return `text` with the word replaced by option `index`, and the cursor after it."""
        option = self.candidates[index] + self.suffix
        return text[: self.start] + option + text[self.end :], self.start + len(option)

    def common_prefix(self) -> str:
        """The longest start all candidates share (case-insensitively)."""
        return _common_prefix(list(self.candidates))


def completions(
    text: str, cursor: int, names: Iterable[str], rooms: Iterable[str]
) -> Completions | None:
    """Return the candidates for the word before `cursor` in `text`, or None if there are none.

    `/word` at the start completes commands, `#word` rooms; any other word completes names
    (case-insensitively). A name at
    the start of the text gets `: ` after it (unless the text is a `/command`), elsewhere a
    space. A word ends at any whitespace, line breaks included.
    """
    start = cursor
    while start > 0 and not text[start - 1].isspace():
        start -= 1
    word = text[start:cursor]
    if not word:
        return None
    if start == 0 and word.startswith("/") and not word.startswith("//"):  # a command's name
        found = sorted(c for c in COMMANDS if c.startswith(word.casefold()))
        return Completions(start, cursor, word, tuple(found), " ") if found else None
    room = word.startswith("#")
    folded = fold(word)  # (`كا` finds `کامران`; a half-space or none, the same)
    matches = sorted(
        (c for c in (rooms if room else names) if fold(c).startswith(folded)),
        key=str.casefold,
    )
    if not matches:
        return None
    at_start = start == 0 and not room and not text.startswith("/")
    suffix = ": " if at_start else " "
    return Completions(start, cursor, word, tuple(matches), suffix)


def complete(
    line: str, cursor: int, names: Iterable[str], rooms: Iterable[str]
) -> tuple[str, int] | None:
    """Complete the word before `cursor`; return the new line and cursor, or None.

    One candidate is filled in with its suffix (see `completions`); with several, their longest
    common prefix is filled in, or None is returned if it adds nothing.
    """
    found = completions(line, cursor, names, rooms)
    if found is None:
        return None
    if len(found.candidates) == 1:
        return found.apply(line, 0)
    prefix = found.common_prefix()
    if len(prefix) <= len(found.word):
        return None
    return line[: found.start] + prefix + line[cursor:], found.start + len(prefix)


def _common_prefix(words: list[str]) -> str:
    first = words[0]
    for i, char in enumerate(first):
        if any(len(w) <= i or w[i].casefold() != char.casefold() for w in words[1:]):
            return first[:i]
    return first
