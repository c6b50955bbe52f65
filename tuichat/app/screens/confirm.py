"""A small modal dialog that asks a yes-or-no question: Enter says yes, Escape no."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen

from tuichat.app.bidi import Bidi
from tuichat.app.i18n import N_, paragraphs, translate_bindings
from tuichat.app.widgets.bidi_text import BidiText


class ConfirmDialog(ModalScreen[bool]):
    """Asks `question` (in the language in use; names in it are plain text); dismisses with
    True on Enter, False on Escape. `hint` says what the keys do; in a right-to-left
    language both read right to left, whatever word they start with."""

    DEFAULT_CSS = """
    ConfirmDialog {
        align: center middle;
    }
    ConfirmDialog > Vertical {
        width: 60;
        max-width: 90%;
        height: auto;
        max-height: 100%;
        border: thick $primary;
        background: $surface;
        padding: 1 2;
    }
    ConfirmDialog .question {
        text-style: bold;
    }
    ConfirmDialog .hint {
        color: $text-muted;
        margin-top: 1;
    }
    """

    BINDINGS = [
        Binding("enter", "answer(True)", N_("Yes")),
        Binding("escape", "answer(False)", N_("No")),
    ]

    def __init__(self, question: str, hint: str, *, bidi: Bidi | None = None) -> None:
        """`bidi`: how right-to-left text is drawn (the app's `--bidi` mode)."""
        super().__init__()
        translate_bindings(self)
        self._bidi = bidi or Bidi()
        self._question = question
        self._hint = hint

    def compose(self) -> ComposeResult:
        with Vertical():
            yield BidiText(paragraphs(self._question), bidi=self._bidi, classes="question")
            yield BidiText(paragraphs(self._hint), bidi=self._bidi, classes="hint")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)
