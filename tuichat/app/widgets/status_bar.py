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

    def render(self) -> Text:
        state_style = {"connected": "bold #98c379", "connecting": "#e5c07b"}.get(
            self.state, "bold #e06c75"
        )
        rtt = "—" if self.rtt_ms is None else f"{self.rtt_ms:.0f} ms"
        return Text.assemble(
            (" tuichat ", "bold reverse"),
            " ",
            (self.server or "…", "bold"),
            "  ",
            (self.room, "bold #61afef"),
            "  ",
            (self.user, "#c678dd"),
            "  ",
            (f"● {self.state}", state_style),
            "  ",
            (f"rtt {rtt}", "dim"),
            no_wrap=True,
            overflow="ellipsis",
        )
