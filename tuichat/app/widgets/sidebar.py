"""The sidebar: who is online in the current room (with a count), then the conversations (the
rooms we are in, then the private ones) with what waits to be read in each."""

from __future__ import annotations

from dataclasses import dataclass

from rich.cells import cell_len
from rich.style import Style
from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from tuichat.app.colors import name_color

MAX_SHOWN = 200
"""Members listed at most (more than any screen is tall); the rest are counted."""
MAX_COUNT = 999
"""Counts above it are shown as `999+`."""


@dataclass(frozen=True, slots=True)
class ConversationItem:
    """One conversation of the sidebar: its name (`#room` or `@name`), its unread messages
    and the mentions of the user among them."""

    name: str
    unread: int = 0
    mentions: int = 0


def _count(number: int) -> str:
    return f"{number}" if number <= MAX_COUNT else f"{MAX_COUNT}+"


class Sidebar(Widget):
    """Renders the member list (given sorted) and the conversations, as plain text."""

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
    Sidebar > .sidebar--current {
        text-style: bold reverse;
    }
    Sidebar > .sidebar--active {
        text-style: bold;
    }
    Sidebar > .sidebar--unread {
        color: $text-muted;
    }
    Sidebar > .sidebar--mention {
        background: $warning;
        color: $background;
        text-style: bold;
    }
    """

    COMPONENT_CLASSES = {
        "sidebar--current",  # the conversation on screen
        "sidebar--active",  # the name of a conversation with unread messages
        "sidebar--unread",  # the count of unread messages
        "sidebar--mention",  # the badge that counts the mentions among them
    }

    users: reactive[tuple[str, ...]] = reactive(())
    conversations: reactive[tuple[ConversationItem, ...]] = reactive(())
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
        rooms = [item for item in self.conversations if not item.name.startswith("@")]
        private = [item for item in self.conversations if item.name.startswith("@")]
        text.append("\nRooms\n", style="bold")
        for item in rooms:
            self._append_item(text, item)
        if private:
            text.append("\nPrivate\n", style="bold")
            for item in private:
                self._append_item(text, item)
        return text

    def _append_item(self, text: Text, item: ConversationItem) -> None:
        """One line: the name, then the unread count and the mention badge at the right."""
        style = self.get_component_rich_style
        current = item.name == self.current
        base = style("sidebar--current") if current else Style()
        counts = Text()
        if item.unread:
            counts.append(f" {_count(item.unread)}", style=base + style("sidebar--unread"))
        if item.mentions:
            counts.append(" ", style=base)
            counts.append(f" {_count(item.mentions)} ", style=style("sidebar--mention"))
        room_for_name = max(self.size.width - cell_len(counts.plain) - 2, 1)
        name = Text(item.name)
        name.truncate(room_for_name, overflow="ellipsis")
        active = style("sidebar--active") if item.unread and not current else Style()
        line = Text.assemble(" ", name, " ", style=base + active)
        gap = self.size.width - line.cell_len - counts.cell_len
        if gap > 0:
            line.append(" " * gap, style=base)
        text.append_text(line)
        text.append_text(counts)
        text.append("\n")
