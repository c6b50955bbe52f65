"""The composer's history of sent texts, walked with Up and Down like a shell's."""

from __future__ import annotations


class InputHistory:
    """Texts the user sent (each may hold several lines), newest last; Up and Down move
    through them."""

    def __init__(self, limit: int = 500) -> None:
        self._lines: list[str] = []
        self._limit = limit
        self._position = 0
        self._draft = ""

    def add(self, line: str) -> None:
        """Remember an entered line (not a repeat of the last one) and reset the walk."""
        if line and (not self._lines or self._lines[-1] != line):
            self._lines.append(line)
            del self._lines[: -self._limit]
        self._position = len(self._lines)
        self._draft = ""

    def previous(self, current: str) -> str | None:
        """Return the line before the current one, or None at the oldest."""
        if self._position == 0:
            return None
        if self._position == len(self._lines):
            self._draft = current
        self._position -= 1
        return self._lines[self._position]

    def next(self) -> str | None:
        """Return the line after the current one (the draft after the newest), or None."""
        if self._position >= len(self._lines):
            return None
        self._position += 1
        if self._position == len(self._lines):
            return self._draft
        return self._lines[self._position]
