"""The first-run check: which of two lines of Persian reads correctly in this terminal?

Line 1 is drawn by the app (shaped and reordered); line 2 is written in logical order, as a
terminal that reorders rows itself wants it. Whichever reads right tells who should reorder:
1 is `--bidi app`, 2 is `--bidi terminal`. Escape decides nothing (asked again next time).
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Static

from tuichat.app.bidi import Bidi, Mode
from tuichat.app.i18n import N_, _, translate_bindings
from tuichat.app.widgets.bidi_text import BidiText

SAMPLE = "سلام! این یک متن آزمایشی است (۱۲۳)."
"""Persian with joined letters, a bracket pair and digits: wrong orders are plain to see."""
QUESTION = N_("Right-to-left text: which line reads correctly?")
NOTE = N_("Press 1 or 2 (Escape: ask again next time). /bidi changes it later.")


class BidiCheck(ModalScreen[Mode | None]):
    """Asks which line reads correctly; dismissed with "app", "terminal" or None."""

    DEFAULT_CSS = """
    BidiCheck {
        align: center middle;
    }
    BidiCheck > Vertical {
        width: 72;
        max-width: 100%;
        height: auto;
        padding: 1 2;
        border: round $primary;
        background: $panel;
    }
    BidiCheck .sample {
        padding: 0 0 0 2;
        text-style: bold;
    }
    BidiCheck .note {
        color: $text-muted;
    }
    """

    BINDINGS = [
        Binding("1", "choose('app')", N_("The first line reads correctly")),
        Binding("2", "choose('terminal')", N_("The second line reads correctly")),
        Binding("escape", "choose('')", N_("Decide later")),
    ]

    def __init__(self) -> None:
        super().__init__()
        translate_bindings(self)

    def compose(self) -> ComposeResult:
        drawn = Bidi("app")
        question = _(QUESTION)
        with Vertical():
            yield Static(Content(QUESTION))
            if question != QUESTION:  # the translation, as the app would draw it
                yield Static(Content(drawn.display(question)))
            yield Static(Content(f"1   {drawn.display(SAMPLE)}"), classes="sample", id="app-line")
            yield Static(Content(f"2   {SAMPLE}"), classes="sample", id="terminal-line")
            yield BidiText(_(NOTE), bidi=drawn, classes="note")

    def action_choose(self, mode: str) -> None:
        """Close the check with the mode the answer means ("" for none)."""
        self.dismiss("app" if mode == "app" else "terminal" if mode == "terminal" else None)
