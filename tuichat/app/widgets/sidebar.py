"""The sidebar: who is online in the current room (with a count) and the rooms we are in."""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from tuichat.app.colors import name_color

MAX_SHOWN = 200
"""Members listed at most (more than any screen is tall); the rest are counted."""


class Sidebar(Widget):
    """Renders the member list (given sorted) and the room list, as plain text."""

    DEFAULT_CSS = """
    Sidebar {
        dock: right;
        width: 24;
        background: $panel;
        border-left: vkey $primary-background;
        padding: 0 1;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    """

    users: reactive[tuple[str, ...]] = reactive(())
    rooms: reactive[tuple[str, ...]] = reactive(())
    current: reactive[str] = reactive("")
    me: reactive[str] = reactive("")

    def render(self) -> Text:
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(f"Online — {len(self.users)}\n", style="bold")
        for user in self.users[:MAX_SHOWN]:
            marker = "●" if user != self.me else "◉"
            text.append(f"{marker} ", style=name_color(user))
            text.append(f"{user}\n", style="bold" if user == self.me else "")
        if len(self.users) > MAX_SHOWN:
            text.append(f"… and {len(self.users) - MAX_SHOWN} more\n", style="dim")
        text.append("\nRooms\n", style="bold")
        for room in self.rooms:
            style = "bold reverse" if room == self.current else ""
            text.append(f" {room} \n", style=style)
        return text
