"""The sidebar: the conversations (the rooms we are in, then the private ones) with what waits
to be read in each, then who is online in the current room (with a count). Each part scrolls
on its own, so a long member list never hides the rooms."""

from __future__ import annotations

from dataclasses import dataclass

from rich.cells import cell_len, chop_cells
from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.reactive import reactive
from textual.widget import Widget

from tuichat.app.bidi import Bidi
from tuichat.app.colors import name_color
from tuichat.app.dates import local_digits
from tuichat.app.i18n import _
from tuichat.client.unread import fold

MAX_SHOWN = 200
"""Members listed at most (more than any screen is tall); the rest are counted."""
MAX_COUNT = 999
"""Counts above it are shown as `999+`."""
ROLE_MARKS = {"owner": "~", "op": "@"}
"""What goes before the name of the room's owner and of its ops in the member list."""


@dataclass(frozen=True, slots=True)
class ConversationItem:
    """One conversation of the sidebar: its name (`#room` or `@name`), its unread messages
    and the mentions of the user among them."""

    name: str
    unread: int = 0
    mentions: int = 0


def _truncated(text: str, cells: int) -> str:
    """`text` cut (in logical order) to `cells` cells, ending in `…` if something was cut."""
    if cell_len(text) <= cells:
        return text
    return chop_cells(text, max(cells - 1, 1))[0] + "…"


def _rows(items: tuple[ConversationItem, ...]) -> tuple[int, int]:
    """What the height of the list of conversations depends on: how many, how many private."""
    return len(items), sum(item.name.startswith("@") for item in items)


def _count(number: int) -> str:
    return local_digits(f"{number}" if number <= MAX_COUNT else f"{MAX_COUNT}+")


class Sidebar(Vertical):
    """The conversations and the members of the current room, as plain text (names come
    from the network: nothing in them is markup)."""

    DEFAULT_CSS = """
    Sidebar {
        dock: right;
        width: 24;
        background: $panel;
        border-left: vkey $primary-background;
    }
    Sidebar.-collapsed {
        display: none;
    }
    Sidebar > #sidebar-conversations {
        height: auto;
        max-height: 50%;
        scrollbar-size-vertical: 1;
    }
    Sidebar > #sidebar-members {
        height: 1fr;
        scrollbar-size-vertical: 1;
    }
    Sidebar Conversations, Sidebar Members {
        width: 1fr;
        height: auto;
        padding: 0 1;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    """

    users: reactive[tuple[str, ...]] = reactive(())
    count: reactive[int] = reactive(0)
    """How many are in the room shown, when more than `users` (a large room; 0: as many)."""
    conversations: reactive[tuple[ConversationItem, ...]] = reactive(())
    current: reactive[str] = reactive("")
    me: reactive[str] = reactive("")
    away: reactive[frozenset[str]] = reactive(frozenset())
    """The members who are away (their names `fold`ed)."""
    owner: reactive[str] = reactive("")
    """The owner of the room shown (`fold`ed; "": none)."""
    ops: reactive[frozenset[str]] = reactive(frozenset())
    """Its ops (`fold`ed)."""

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.bidi = Bidi()
        """How right-to-left names are drawn (the app sets its `--bidi` mode)."""
        self.rtl_layout = False
        """Lines drawn from the right (a right-to-left UI)."""

    def shown(self, name: str) -> str:
        """`name` (a `#room`, an `@name` or a name) as drawn."""
        return self.bidi.name(name, rtl_layout=self.rtl_layout)

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="sidebar-conversations", can_focus=False):
            yield Conversations(self)
        with VerticalScroll(id="sidebar-members", can_focus=False):
            yield Members(self)

    def _changed(self) -> None:
        for part in self._parts():
            part.refresh(layout=True)

    def _redraw(self, kind: type[Widget], layout: bool = False) -> None:
        """Draw the part `kind` again (and lay the screen out again if its height changes:
        `layout`); a change of counts alone redraws the lines of the conversations."""
        for part in self.query(kind):
            part.refresh(layout=layout)

    def watch_conversations(
        self, old: tuple[ConversationItem, ...], new: tuple[ConversationItem, ...]
    ) -> None:
        self._redraw(Conversations, layout=_rows(old) != _rows(new))

    def watch_current(self) -> None:
        self._redraw(Conversations)

    def watch_users(self, old: tuple[str, ...], new: tuple[str, ...]) -> None:
        rows = MAX_SHOWN + 1  # (past it, one line counts the others)
        self._redraw(Members, layout=min(len(old), rows) != min(len(new), rows))

    def _members_changed(self) -> None:
        self._redraw(Members)

    watch_me = watch_away = watch_owner = watch_ops = watch_count = _members_changed

    def refresh_parts(self) -> None:
        """Draw every part again (how text is drawn changed)."""
        if self.is_mounted:
            self._changed()

    def _parts(self) -> list[Conversations | Members]:
        return [*self.query(Conversations), *self.query(Members)]

    def text(self) -> str:
        """Everything the sidebar shows, as plain text."""
        return "\n".join(part.render().plain for part in self._parts())


class Conversations(Widget):
    """The rooms we are in, then the private conversations, each with its counts."""

    DEFAULT_CSS = """
    Conversations > .sidebar--current {
        text-style: bold reverse;
    }
    Conversations > .sidebar--active {
        text-style: bold;
    }
    Conversations > .sidebar--unread {
        color: $text-muted;
    }
    Conversations > .sidebar--mention {
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

    def __init__(self, sidebar: Sidebar) -> None:
        super().__init__()
        self.sidebar = sidebar

    def on_resize(self) -> None:
        self.refresh()  # each line is as wide as the sidebar: drawn again at its new width

    def render(self) -> Text:
        text = Text(no_wrap=True, overflow="ellipsis")
        items = self.sidebar.conversations
        rooms = [item for item in items if not item.name.startswith("@")]
        private = [item for item in items if item.name.startswith("@")]
        text.append(self.sidebar.shown(_("Rooms")) + "\n", style="bold")
        for item in rooms:
            self._append_item(text, item)
        if private:
            text.append("\n" + self.sidebar.shown(_("Private")) + "\n", style="bold")
            for item in private:
                self._append_item(text, item)
        text.rstrip()
        return text

    def _append_item(self, text: Text, item: ConversationItem) -> None:
        """One line: the name, then the unread count and the mention badge at the right."""
        style = self.get_component_rich_style
        current = item.name == self.sidebar.current
        base = style("sidebar--current") if current else Style()
        counts = Text()
        if item.unread:
            counts.append(f" {_count(item.unread)}", style=base + style("sidebar--unread"))
        if item.mentions:
            counts.append(" ", style=base)
            counts.append(f" {_count(item.mentions)} ", style=style("sidebar--mention"))
        width = self.content_size.width or 22
        room_for_name = max(width - cell_len(counts.plain) - 2, 1)
        name = Text(self.sidebar.shown(_truncated(item.name, room_for_name)))
        active = style("sidebar--active") if item.unread and not current else Style()
        line = Text.assemble(" ", name, " ", style=base + active)
        gap = " " * max(width - line.cell_len - counts.cell_len, 0)
        if self.sidebar.rtl_layout:  # the counts at the left, the name at the right
            line = Text.assemble(gap, line, style=base + active)
            text.append_text(counts)
            text.append_text(line)
        else:
            line.append(gap, style=base)
            text.append_text(line)
            text.append_text(counts)
        text.append("\n")


class Members(Widget):
    """Who is online in the current room, its owner marked `~` and its ops `@`."""

    def __init__(self, sidebar: Sidebar) -> None:
        super().__init__()
        self.sidebar = sidebar

    def render(self) -> Text:
        sidebar = self.sidebar
        users, me, away = sidebar.users, sidebar.me, sidebar.away
        dark = self.app.current_theme.dark
        rtl = sidebar.rtl_layout
        text = Text(no_wrap=True, overflow="ellipsis", justify="right" if rtl else "left")
        count = max(len(users), sidebar.count)
        heading = _("Online — {count}").format(count=local_digits(str(count)))
        text.append(f"\n{sidebar.bidi.display(heading)}\n", style="bold")
        width = self.content_size.width or 22
        away_word = sidebar.bidi.display(_("away"))
        owner, ops = sidebar.owner, sidebar.ops
        for user in users[:MAX_SHOWN]:
            folded = fold(user)
            is_away = folded in away
            role = ""
            if owner and folded == owner:
                role = ROLE_MARKS["owner"]
            elif folded in ops:
                role = ROLE_MARKS["op"]
            room = width - 2 - len(role) - (cell_len(away_word) + 1 if is_away else 0)
            shown = sidebar.shown(_truncated(user, room))  # (cut in logical order: its start stays)
            # away: a hollow mark, the name dimmed
            dot = ("○" if is_away else "●" if user != me else "◉", name_color(user, dark))
            style = ("dim " if is_away else "") + ("bold" if user == me else "")
            if not rtl:  # the mark, the role, the name, "away"
                pieces = [(f"{dot[0]} ", dot[1]), (role, "bold"), (shown, style)]
                if is_away:
                    pieces.append((f" {away_word}", "dim italic"))
            else:  # the same from the right
                pieces = [(f"{away_word} ", "dim italic")] if is_away else []
                if role:
                    pieces += [(shown, style), (f"{role} ", "bold")]
                else:
                    pieces.append((f"{shown} ", style))
                pieces.append(dot)
            for part, part_style in pieces:
                if part:
                    text.append(part, style=part_style.strip())
            text.append("\n")
        if len(users) > MAX_SHOWN:
            more = _("… and {count} more").format(count=local_digits(str(len(users) - MAX_SHOWN)))
            text.append(f"{sidebar.bidi.display(more)}\n", style="dim")
        text.rstrip()
        return text
