"""Tab completion of names and rooms in the input line."""

from __future__ import annotations

from collections.abc import Iterable


def complete(
    line: str, cursor: int, names: Iterable[str], rooms: Iterable[str]
) -> tuple[str, int] | None:
    """Complete the word before `cursor`; return the new line and cursor, or None.

    `#word` completes rooms; any other word completes names (case-insensitively).
    A name completed at the start of the line gets `: ` after it, elsewhere a space.
    With several candidates, the longest common prefix is filled in.
    """
    start = cursor
    while start > 0 and not line[start - 1].isspace():
        start -= 1
    word = line[start:cursor]
    if not word:
        return None
    candidates = sorted(rooms if word.startswith("#") else names, key=str.casefold)
    folded = word.casefold()
    matches = [c for c in candidates if c.casefold().startswith(folded)]
    if not matches:
        return None
    if len(matches) == 1:
        (match,) = matches
        at_start = start == 0 and not word.startswith("#")
        suffix = ": " if at_start and not line.startswith("/") else " "
        completion = match + suffix
    else:
        completion = _common_prefix(matches)
        if len(completion) <= len(word):
            return None
    new_line = line[:start] + completion + line[cursor:]
    return new_line, start + len(completion)


def _common_prefix(words: list[str]) -> str:
    first = words[0]
    for i, char in enumerate(first):
        if any(len(w) <= i or w[i].casefold() != char.casefold() for w in words[1:]):
            return first[:i]
    return first
