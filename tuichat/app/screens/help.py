"""The help screen (F1): every key of the app and every command, on one page."""

from __future__ import annotations

from collections.abc import Sequence

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

COMMANDS = (
    ("/msg NAME TEXT", "a private message (opens the conversation)"),
    ("/query NAME", "open the private conversation with NAME"),
    ("/me ACTION", "say what you do: * ali waves"),
    ("/join #ROOM", "join a room, or switch to it if you are in it"),
    ("/part [#ROOM]", "leave a room (or close a private conversation)"),
    ("/users", "who is in the room (and who is away)"),
    ("/away [REASON]", "say you are away, on all your devices"),
    ("/back", "say you are back"),
    ("/notify all|mentions|none", "what in this conversation notifies you"),
    ("/signout", "sign out your other devices"),
    ("/help", "the commands, in the log"),
    ("/exit", "say goodbye and quit (also /quit, ctrl+q)"),
    ("//text", "send text that starts with /"),
)


def keys_table(keys: Sequence[tuple[str, str]]) -> Table:
    """Two columns of plain text; a long description wraps within its own column."""
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column(ratio=1)
    for key, what in keys:
        table.add_row(Text(key), Text(what))
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
    HelpScreen .heading {
        text-style: bold;
        color: $text-accent;
        margin-top: 1;
    }
    """

    BINDINGS = [
        Binding("escape", "dismiss", "Close"),
        Binding("f1", "dismiss", "Close"),
        Binding("q", "dismiss", "Close"),
    ]

    def __init__(self, keys: Sequence[tuple[str, str]]) -> None:
        super().__init__()
        self._keys = keys

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static("Keys", classes="heading")
            yield Static(keys_table(self._keys), id="help-keys")
            yield Static("Commands", classes="heading")
            yield Static(keys_table(COMMANDS), id="help-commands")
            yield Static(Text("Escape, F1 or q closes this.", style="dim"), classes="heading")

    async def action_dismiss(self, result: None = None) -> None:
        self.dismiss(result)
