"""The line at the top: server, current room, connection state and round-trip time."""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget


class StatusBar(Widget):
    """Shows where we are connected and how well."""

    DEFAULT_CSS = """
    StatusBar {
        height: 1;
        background: $panel;
        color: $text;
    }
    """

    server: reactive[str] = reactive("")
    room: reactive[str] = reactive("")
    user: reactive[str] = reactive("")
    state: reactive[str] = reactive("connecting")
    rtt_ms: reactive[float | None] = reactive(None)
    sidebar_hint: reactive[str] = reactive("")
    """Said at the right while the sidebar is folded away."""

    def render(self) -> Text:
        colors = self.app.theme_variables
        state_style = {
            "connected": f"bold {colors.get('text-success', 'green')}",
            "connecting": colors.get("text-warning", "yellow"),
        }.get(self.state, f"bold {colors.get('text-error', 'red')}")
        rtt = "—" if self.rtt_ms is None else f"{self.rtt_ms:.0f} ms"
        line = Text.assemble(
            (" tuichat ", "bold reverse"),
            " ",
            (self.server or "…", "bold"),
            "  ",
            (self.room, f"bold {colors.get('text-primary', 'blue')}"),
            "  ",
            (self.user, colors.get("text-secondary", "magenta")),
            "  ",
            (f"● {self.state}", state_style),
            "  ",
            (f"rtt {rtt}", "dim"),
            no_wrap=True,
            overflow="ellipsis",
        )
        if self.sidebar_hint:  # at the right edge, kept whatever else must give way
            hint = Text(f" {self.sidebar_hint} ", style="reverse")
            room = max(self.size.width - hint.cell_len, 0)
            line.truncate(room, overflow="ellipsis", pad=True)
            line.append_text(hint)
        return line
