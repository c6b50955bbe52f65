"""The input line: Enter sends, Up/Down walk the history, Tab completes names and rooms."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from textual.binding import Binding
from textual.message import Message
from textual.widgets import Input

from tuichat.app.completion import complete
from tuichat.app.history import InputHistory


class ChatInput(Input):
    """An `Input` with shell-like history and completion."""

    BINDINGS = [
        Binding("up", "history_previous", "Previous input", show=False),
        Binding("down", "history_next", "Next input", show=False),
        Binding("tab", "complete", "Complete", show=False, priority=True),
    ]

    def __init__(
        self,
        candidates: Callable[[], tuple[Iterable[str], Iterable[str]]],
        **kwargs: object,
    ) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.history = InputHistory()
        self._candidates = candidates

    class Entered(Message):
        """The user pressed Enter on `line` (the input is already empty again)."""

        def __init__(self, line: str) -> None:
            super().__init__()
            self.line = line

    async def action_submit(self) -> None:
        """Take the line and empty the input at once, so that keys typed before the app has
        handled this line start a new one."""
        line = self.value
        self.value = ""
        self.remember(line)
        self.post_message(self.Entered(line))

    def remember(self, line: str) -> None:
        """Add an entered line to the history."""
        self.history.add(line)

    def action_history_previous(self) -> None:
        line = self.history.previous(self.value)
        if line is not None:
            self.value = line
            self.cursor_position = len(line)

    def action_history_next(self) -> None:
        line = self.history.next()
        if line is not None:
            self.value = line
            self.cursor_position = len(line)

    def action_complete(self) -> None:
        names, rooms = self._candidates()
        result = complete(self.value, self.cursor_position, names, rooms)
        if result is not None:
            self.value, self.cursor_position = result
