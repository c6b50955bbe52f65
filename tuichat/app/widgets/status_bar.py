"""The line at the top: server, current room, connection state and round-trip time."""

from __future__ import annotations

from rich.style import Style
from rich.text import Text
from textual.color import Color
from textual.reactive import reactive
from textual.widget import Widget

from tuichat.app.bidi import Bidi
from tuichat.app.colors import readable, theme_color
from tuichat.app.dates import local_digits
from tuichat.app.i18n import N_, _

STATES = {state: N_(state) for state in ("connected", "connecting", "disconnected", "name refused")}
"""The connection states, as shown."""


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

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.bidi = Bidi()
        """How right-to-left names are drawn (the app sets its `--bidi` mode)."""
        self.rtl_layout = False
        """A right-to-left UI: a Persian room's `#` at its right, as the sidebar has it."""

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
        ms = local_digits(f"{self.rtt_ms:.0f}") if self.rtt_ms is not None else ""
        rtt = "—" if self.rtt_ms is None else _("{ms} ms").format(ms=ms)
        state = _(STATES.get(self.state, self.state))
        line = Text.assemble(
            (" tuichat ", "bold reverse"),
            " ",
            (self.bidi.name(self.server, rtl_layout=self.rtl_layout) or "…", "bold"),
            "  ",
            (
                self.bidi.name(self.room, rtl_layout=self.rtl_layout),
                style("text-primary", "primary", bold=True),
            ),
            "  ",
            (
                self.bidi.name(self.user, rtl_layout=self.rtl_layout),
                style("text-secondary", "secondary"),
            ),
            "  ",
            (f"● {self.bidi.display(state)}", state_style),
            "  ",
            (self.bidi.display(_("rtt {rtt}").format(rtt=rtt)), "dim"),
            no_wrap=True,
            overflow="ellipsis",
        )
        if self.sidebar_hint:  # at the right edge, kept whatever else must give way
            hint = Text(f" {self.bidi.display(self.sidebar_hint)} ", style="reverse")
            room = max(self.size.width - hint.cell_len, 0)
            line.truncate(room, overflow="ellipsis", pad=True)
            line.append_text(hint)
        return line
