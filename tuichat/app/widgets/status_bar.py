"""The line at the top: server, current room, connection state and round-trip time."""

from __future__ import annotations

from rich.style import Style
from rich.text import Text
from textual.color import Color
from textual.reactive import reactive
from textual.widget import Widget

from tuichat.app.colors import readable, theme_color


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
        variables = self.app.theme_variables
        text = theme_color(variables, "foreground") or Color.parse("#e0e0e0")
        panel = theme_color(variables, "panel", "surface") or Color.parse("#242f38")

        def style(*names: str, bold: bool = False) -> Style:
            color = theme_color(variables, *names)
            shown = None if color is None else readable(color, panel, text).rich_color
            return Style(color=shown, bold=bold or None)

        state_style = {
            "connected": style("text-success", "success", bold=True),
            "connecting": style("text-warning", "warning"),
        }.get(self.state, style("text-error", "error", bold=True))
        rtt = "—" if self.rtt_ms is None else f"{self.rtt_ms:.0f} ms"
        line = Text.assemble(
            (" tuichat ", "bold reverse"),
            " ",
            (self.server or "…", "bold"),
            "  ",
            (self.room, style("text-primary", "primary", bold=True)),
            "  ",
            (self.user, style("text-secondary", "secondary")),
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
