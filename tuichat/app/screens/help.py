"""The help screen (F1): every key of the app and every command, on one page.

In a right-to-left language the page is mirrored: what each key or command does on the left,
the key or command on the right, every line aligned to the right.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from tuichat.app.bidi import Bidi
from tuichat.app.i18n import N_, _, is_rtl, translate_bindings
from tuichat.app.widgets.bidi_text import BidiText
from tuichat.app.wrap import wrap

COMMANDS = (
    (N_("/msg NAME TEXT"), N_("a private message (opens the conversation)")),
    (N_("/query NAME"), N_("open the private conversation with NAME")),
    (N_("/me ACTION"), N_("say what you do: * ali waves")),
    (N_("/join #ROOM"), N_("join a room, or switch to it if you are in it")),
    (N_("/part [#ROOM]"), N_("leave a room (or close a private conversation)")),
    ("/users", N_("who is in the room (and who is away)")),
    (N_("/away [REASON]"), N_("say you are away, on all your devices")),
    ("/back", N_("say you are back")),
    ("/notify all|mentions|none", N_("what in this conversation notifies you")),
    ("/signout", N_("sign out your other devices")),
    ("/bidi [app|terminal|off|check]", N_("who draws right-to-left text in order; check: ask")),
    (N_("/topic [TEXT|-]"), N_("the room's topic: show it, set it, or clear it (-)")),
    ("/private [on|off]", N_("only those invited may join the room, or anyone again")),
    (N_("/invite NAME"), N_("let NAME join the room, even while it is private")),
    (N_("/uninvite NAME"), N_("NAME may no longer join the private room (out of it if in)")),
    (N_("/kick NAME [REASON]"), N_("remove NAME from the room (they may join again)")),
    (
        N_("/ban NAME [REASON] [DURATION]"),
        N_("keep NAME out of the room: for 10m, 2h, 7d, 1w, or until /unban NAME"),
    ),
    (
        N_("/mute NAME [REASON] [DURATION]"),
        N_("NAME may read the room but not post, for a while or until /unmute NAME"),
    ),
    (N_("/op NAME, /deop NAME"), N_("make NAME an op of the room (who may moderate it), or not")),
    (N_("/ignore [NAME]"), N_("hide NAME's messages on all your devices (no name: who is)")),
    (N_("/unignore NAME"), N_("show NAME's messages again")),
    (N_("/modlog [#ROOM|all]"), N_("what the room's moderators did (all: an admin's view)")),
    (
        N_("/reply [TEXT]"),
        N_("answer the latest message of someone else (no text: write it in the composer)"),
    ),
    (N_("/react EMOJI"), N_("react to the latest message (the same again takes it back)")),
    (N_("/edit [TEXT]"), N_("change your latest message (no text: edit it in the composer)")),
    ("s/old/new/", N_("your latest message with old replaced by new (s/old/new/g: each one)")),
    ("/delete", N_("delete your latest message")),
    (
        N_("/search WORDS [from:NAME] [in:#ROOM]"),
        N_("find messages by the start of their words, newest first (also ctrl+f)"),
    ),
    ("/help", N_("the commands, in the log")),
    ("/exit", N_("say goodbye and quit (also /quit, ctrl+q)")),
    (N_("//text"), N_("send text that starts with /")),
)
"""Each command (its arguments named in English) and what it does, marked for translation."""


def commands() -> list[tuple[str, str]]:
    """`COMMANDS` in the language in use."""
    return [(_(command), _(what)) for command, what in COMMANDS]


def _drawn(rows: Sequence[tuple[str, str]], bidi: Bidi, width: int) -> list[tuple[str, str]]:
    """Each key and what it does as drawn: a right-to-left description wrapped at `width` in
    logical order, then each of its lines in visual order."""
    drawn: list[tuple[str, str]] = []
    for key, what in rows:
        if bidi.active and bidi.is_rtl(what):
            what = "\n".join(bidi.display(line, True) for line in wrap(what, width))
        drawn.append((bidi.display(key), what))
    return drawn


def keys_table(keys: Sequence[tuple[str, str]], *, rtl: bool = False) -> Table:
    """Two columns of plain text; a long description wraps within its own column. `rtl`
    mirrors it: the descriptions on the left, aligned to the right like the keys."""
    if not rtl:
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold", no_wrap=True)
        table.add_column(ratio=1)
        for key, what in keys:
            table.add_row(Text(key), Text(what))
        return table
    table = Table.grid(padding=(0, 2), expand=True)
    table.add_column(ratio=1, justify="right")
    table.add_column(style="bold", no_wrap=True, justify="right")
    for key, what in keys:
        table.add_row(Text(what), Text(key))
    return table


class HelpScreen(ModalScreen[None]):
    """Lists the keys (as bound now) and the commands; any of Escape, F1 or q closes it."""

    DEFAULT_CSS = """
    HelpScreen {
        align: center middle;
    }
    HelpScreen > VerticalScroll {
        width: 90%;
        max-width: 110;
        height: auto;
        max-height: 100%;
        border: thick $primary;
        background: $surface;
        padding: 0 1;
    }
    HelpScreen .dim {
        color: $text-muted;
    }
    HelpScreen .heading {
        text-style: bold;
        color: $text-accent;
        margin-top: 1;
    }
    """

    BINDINGS = [
        Binding("escape", "dismiss", N_("Close")),
        Binding("f1", "dismiss", N_("Close")),
        Binding("q", "dismiss", N_("Close")),
    ]

    def __init__(self, keys: Sequence[tuple[str, str]], *, bidi: Bidi | None = None) -> None:
        """`keys`: each key and what it does, in the language in use; `bidi`: how
        right-to-left text is drawn."""
        super().__init__()
        self._bidi = bidi or Bidi()
        translate_bindings(self)
        self._keys = keys

    def compose(self) -> ComposeResult:
        rtl = is_rtl() and self._bidi.active
        # what each key does, wrapped in logical order to fit its column, then drawn
        width = max(min(int(self.app.size.width * 0.9), 110) - 4, 20)
        keys = [(k, w) for k, w in self._keys]
        column = max(width - 2 - max((len(k) for k, _w in [*keys, *commands()]), default=0), 10)
        bidi = self._bidi
        with VerticalScroll():
            yield BidiText(_("Keys"), bidi=bidi, classes="heading")
            yield Static(keys_table(_drawn(keys, bidi, column), rtl=rtl), id="help-keys")
            yield BidiText(_("Commands"), bidi=bidi, classes="heading")
            yield Static(keys_table(_drawn(commands(), bidi, column), rtl=rtl), id="help-commands")
            yield BidiText(_("Escape, F1 or q closes this."), bidi=bidi, classes="heading dim")

    async def action_dismiss(self, result: None = None) -> None:
        self.dismiss(result)
