"""A small modal dialog that asks for one line of text."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input

from tuichat.app.bidi import Bidi
from tuichat.app.i18n import N_, _, paragraphs, translate_bindings
from tuichat.app.widgets.bidi_input import BidiInput
from tuichat.app.widgets.bidi_text import BidiText


class PromptDialog(ModalScreen[str | None]):
    """Asks a question; dismisses with the text entered, or None on Escape.

    `title` and `problem` may hold the server's words: they are shown as plain text (and
    are given in the language in use, like `placeholder` and `hint`, the line under the
    field that says its keys; in a right-to-left language it reads right to left, though it
    starts with a key's name).
    """

    DEFAULT_CSS = """
    PromptDialog {
        align: center middle;
    }
    PromptDialog > Vertical {
        width: 60;
        max-width: 90%;
        height: auto;
        border: thick $primary;
        background: $surface;
        padding: 1 2;
    }
    PromptDialog .title {
        text-style: bold;
        margin-bottom: 1;
    }
    PromptDialog .problem {
        width: 100%;
        color: $error;
        margin-bottom: 1;
    }
    PromptDialog .hint {
        color: $text-muted;
        margin-top: 1;
    }
    PromptDialog > Vertical {
        max-height: 100%;
        overflow-y: auto;
    }
    PromptDialog.-compact > Vertical {
        padding: 0 1;
        border: round $primary;
    }
    PromptDialog.-compact .title, PromptDialog.-compact .problem {
        margin-bottom: 0;
    }
    PromptDialog.-compact .hint {
        margin-top: 0;
    }
    PromptDialog.-compact Input {
        border: none;
        height: 1;
    }
    """

    COMPACT_BELOW = 24
    """Rows below which the dialog drops its margins and borders, so that its reason fits."""

    BINDINGS = [Binding("escape", "cancel", N_("Cancel"))]

    def __init__(
        self,
        title: str,
        *,
        problem: str = "",
        placeholder: str = "",
        value: str = "",
        hint: str = "",
        bidi: Bidi | None = None,
    ) -> None:
        """`hint`: what the keys do ("": Enter confirms, Escape cancels); `bidi`: how
        right-to-left text is drawn (the app's `--bidi` mode)."""
        super().__init__()
        self._bidi = bidi or Bidi()
        translate_bindings(self)
        self._title = title
        self._problem = problem
        self._placeholder = placeholder
        self._value = value
        self._hint = hint

    def compose(self) -> ComposeResult:
        with Vertical():
            yield BidiText(self._title, bidi=self._bidi, classes="title")
            if self._problem:
                yield BidiText(self._problem, bidi=self._bidi, classes="problem", id="problem")
            yield BidiInput(
                value=self._value, placeholder=self._placeholder, bidi=self._bidi, id="answer"
            )
            hint = self._hint or _("Enter to confirm · Escape to cancel")
            yield BidiText(paragraphs(hint), bidi=self._bidi, classes="hint")

    def on_resize(self) -> None:
        self.set_class(self.size.height < self.COMPACT_BELOW, "-compact")

    @on(Input.Submitted)
    def submitted(self, event: Input.Submitted) -> None:
        if event.value.strip():
            self.dismiss(event.value.strip())

    def action_cancel(self) -> None:
        self.dismiss(None)
