"""The tuichat app: wires the network worker, the chat state and the widgets together."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import tzinfo
from functools import partial
from typing import TYPE_CHECKING, Any

from rich.cells import cell_len
from rich.text import Text
from textual import events, on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.command import CommandPalette
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.css.query import NoMatches
from textual.notifications import SeverityLevel
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Static
from textual.worker import Worker, WorkerState

from tuichat.app import model, terminal, untrusted
from tuichat.app.bidi import MODES, Bidi, Mode
from tuichat.app.config import Config
from tuichat.app.events import Connected, ConnectFailed, NameRefused, ServerEvents
from tuichat.app.i18n import (
    N_,
    _,
    is_rtl,
    ngettext,
    paragraphs,
    plain,
    set_language,
    token,
    translate_bindings,
)
from tuichat.app.keys import read_alt_digits
from tuichat.app.lazy import lazy_module
from tuichat.app.model import Kind, LogEntry, RoomView, trim_log
from tuichat.app.moderation import refusal
from tuichat.app.notify import MEANINGS, Level, NotifyRules, desktop_escape, summary
from tuichat.app.palette import ChatCommands
from tuichat.app.state import LOBBY, ChatState
from tuichat.app.verbs import (
    find,
    latest,
    may_delete,
    own,
    selection_hint,
    substituted,
    targetable,
)
from tuichat.app.widgets.bidi_input import BidiCommandPalette
from tuichat.app.widgets.bidi_text import BidiText
from tuichat.app.widgets.chat_input import ChatInput
from tuichat.app.widgets.chat_log import ChatLog
from tuichat.app.widgets.sidebar import ConversationItem, Sidebar
from tuichat.app.widgets.status_bar import StatusBar
from tuichat.app.wrap import wrap
from tuichat.chat import ChatError
from tuichat.chat.search import fold as search_fold
from tuichat.chat.search import query_words, words_of
from tuichat.chat.verbs import check_reaction, preview
from tuichat.client import (
    ChatClient,
    ClientError,
    ConnectionClosed,
    Disconnected,
    RequestFailed,
    ServerSilent,
    UntrustedServer,
)
from tuichat.client.unread import Unread, conversation_key, fold, read_pause
from tuichat.protocol import HistoryPage, Message, PrivatePage, RoomState, SearchHit

if TYPE_CHECKING:
    from tuichat.app import commands as cmd
    from tuichat.app.screens import prompt as dialogs
    from tuichat.app.screens.search import Found, SearchScreen
else:  # (the commands when the first is typed; the dialogs when one opens: a quicker start)
    cmd = lazy_module("tuichat.app.commands")
    dialogs = lazy_module("tuichat.app.screens.prompt")

read_alt_digits()  # alt+1 … alt+9 switch conversations, whatever Textual makes of ESC and 1

Connector = Callable[[str], Awaitable[ChatClient]]
Clock = Callable[[], int]

HISTORY_PAGE = 50
"""Messages fetched at a time: when a conversation is opened, and each time the log reaches
its top."""
IDLE_CHECK = 15.0
"""Seconds between two looks at how long the user has been idle (`config.away_after`)."""
NARROW = 70
"""Columns below which the sidebar folds away."""
SWITCHING = frozenset({"next_unread", "switch_to", "cycle", "select_message", "search"})
"""Actions that change the conversation on screen, or what has the keys (not while a dialog
is open)."""
SEEK_PAGE = 200
"""Messages fetched at a time while looking back for one (the message a reply answers, a
search hit); one further back than that is shown with the messages around it (`SEEK_AFTER`
of them after it), in place of what the log showed."""
SEEK_AFTER = 50
"""Seqs after a message gone to (out of the log) that are fetched with it."""
MAX_RANGE_PAGE = 500
"""The most messages asked for in one request (the protocol's largest page)."""
SLICE = 0.005
"""Seconds spent taking the server's events before the keys typed and the screen get their
turn (a batch takes several turns: typing stays quick while thousands of messages come)."""
TYPING_SLICE = 0.003
TYPING_GAP = 0.001
TYPING_WHILE = 1.0
"""While the user types (a key in the composer less than `TYPING_WHILE` s ago), slices are
`TYPING_SLICE` s with `TYPING_GAP` s between them: the key's way to the screen (the composer,
the screen, its update timer, each a task of its own) is not held up by a slice at each step.
Events are taken a third slower meanwhile."""
SHOW_EVERY = 0.05
"""Seconds between two updates of what the screen shows of the state while more events wait
(the log laid out and drawn, the sidebar's counts): a flood is drawn 20 times a second, not
once per slice."""
OLDER_SHOWN = N_("↓ older messages — PgDn for more, ctrl+End for the newest")
"""Under a log that shows older messages (it stops before the newest)."""
HEADER_LINES = 2
"""Rows the room's header (its name and topic) takes at most."""
PROMPTS = {
    "topic": (N_("Topic of {room}"), N_("the topic (- clears it)")),
    "invite": (N_("Invite to {room}"), N_("name")),
    "uninvite": (N_("Withdraw an invitation to {room}"), N_("name")),
    "kick": (N_("Kick from {room}"), N_("name [reason]")),
    "ban": (N_("Ban from {room}"), N_("name [reason] [10m, 2h, 7d, 1w]")),
    "unban": (N_("Unban in {room}"), N_("name")),
    "mute": (N_("Mute in {room}"), N_("name [reason] [10m, 2h, 7d, 1w]")),
    "unmute": (N_("Unmute in {room}"), N_("name")),
    "op": (N_("Make an op of {room}"), N_("name")),
    "deop": (N_("Take op in {room}"), N_("name")),
    "ignore": (N_("Ignore"), N_("name")),
    "unignore": (N_("Stop ignoring"), N_("name")),
}
"""What the palette's moderation dialogs ask, by command: their title and placeholder."""
SELECTION_KEYS = (
    ("r, e, d y, +", N_("reply to it, edit it (yours), delete it, react to it")),
    ("Enter, Escape", N_("the message it answers; back to the composer")),
)
"""The keys of the selection in the log, for the help."""
IN_ROOMS = N_("replies, reactions, edits and deletes are for room messages, not private ones")
"""What a verb in a private conversation says."""
REACTION_RULE = N_("a reaction is an emoji or a short word: one line, 16 characters at most")
REACTION_HINT = N_("an emoji or a short word: 👍, {plus_one}, thanks")
"""The reaction dialog's placeholder (short enough for its field: `REACTION_KEYS` says the
rest)."""
REACTION_KEYS = N_("Enter reacts, Escape cancels (the same reaction again takes yours back)")
SEARCH_RULE = N_("a search has at most 8 words and 200 characters")


@dataclass
class Composing:
    """A reply or an edit being written in the composer."""

    verb: str
    """`reply` or `edit`."""
    key: str
    """The conversation it is in."""
    entry: LogEntry
    """The message it answers, or edits."""
    draft: str = ""
    """What the composer held before the edit (put back after it)."""


def wall_clock_ms() -> int:
    """Return the time in milliseconds since the Unix epoch."""
    return time.time_ns() // 1_000_000


class ChatApp(App[int]):
    """A full-screen chat client. The network runs in a worker; widgets only render state.

    The server is not trusted: what it sends is cleaned by `untrusted` where it enters the
    app's state (plain text of bounded size, numbers in range), every widget draws text as
    plain `Content`/`Text`, never markup, and each conversation keeps at most `MAX_LOG_LINES`
    entries.

    Conversations are the rooms we are in (`#room`, in `rooms`) and private ones (`@name`, in
    `privates`), known by their `conversation_key`; `unread` counts what waits to be read in
    each. What is on screen while the app has the focus is read: the marker goes to the server
    about once every `READ_INTERVAL` s per conversation (`read_pause`), and at once on leaving
    it.
    """

    CSS_PATH = "app.tcss"
    TITLE = "tuichat"
    COMMANDS = App.COMMANDS | {ChatCommands}
    COMMAND_PALETTE_BINDING = "ctrl+k"
    BINDINGS = [
        Binding("ctrl+q", "exit_chat", N_("Quit"), priority=True, id="quit"),
        Binding("f1", "show_help", N_("Help"), priority=True, id="help"),
        Binding("f2", "toggle_sidebar", N_("Sidebar"), priority=True, id="sidebar"),
        Binding(
            "ctrl+k", "command_palette", N_("Palette"), show=False, priority=True,
            id="command_palette",
        ),
        Binding("ctrl+end", "jump_to_end", N_("Newest"), show=False, id="jump_to_end"),
        Binding("pageup", "page_log(-1)", N_("Page up"), show=False, id="page_up"),
        Binding("pagedown", "page_log(1)", N_("Page down"), show=False, id="page_down"),
        Binding(
            "alt+a", "next_unread", N_("Next unread"), show=False, priority=True,
            id="next_unread",
        ),
        Binding(
            "ctrl+n", "cycle(1)", N_("Next conversation"), show=False, priority=True,
            id="next_conversation",
        ),
        Binding(
            "ctrl+p", "cycle(-1)", N_("Previous conversation"), show=False, priority=True,
            id="previous_conversation",
        ),
        Binding(
            "alt+up", "select_message", N_("Select a message (then ↑ ↓, PgUp PgDn, Home End)"),
            show=False, id="select_message",
        ),
        Binding("ctrl+f", "search", N_("Search messages"), show=False, id="search"),
        *(
            Binding(
                f"alt+{n}", f"switch_to({n})", f"Conversation {n}", show=False, priority=True,
                id=f"conversation_{n}",
            )
            for n in range(1, 10)
        ),
    ]  # fmt: skip
    """The app's keys, their descriptions in English (each instance shows them translated:
    `describe`)."""

    def __init__(
        self,
        connector: Connector,
        name: str,
        *,
        server_label: str = "",
        tz: tzinfo | None = None,
        ping_interval: float | None = 5.0,
        clock: Clock = wall_clock_ms,
        config: Config | None = None,
        notify_rules: NotifyRules | None = None,
        keywords: Iterable[str] = (),
        environ: Mapping[str, str] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        bidi: Bidi | None = None,
        ask_bidi: bool = False,
        bidi_answered: Callable[[Mode], None] | None = None,
    ) -> None:
        """`config`: the settings file's (and flags') choices; `notify_rules` and `keywords`,
        when given, take the place of its notification settings.

        The app speaks `config.lang` (English if None: `cli.py` reads the environment's
        language into it), laid out right to left (the `-rtl` class) in Persian."""
        config = config or Config(name=name)
        set_language(config.lang or "en")
        super().__init__()
        translate_bindings(self, describe)
        self.set_class(is_rtl(), "-rtl")
        self.config = config
        self.bidi = bidi or Bidi(config.bidi if config.bidi in MODES else "app")
        """How right-to-left text is drawn (`--bidi`)."""
        self._ask_bidi = ask_bidi
        """Whether the first-run check is shown at start."""
        self._bidi_answered = bidi_answered
        """Told each answer of the check (to remember it for this terminal)."""
        self._connector = connector
        self._user_name = name
        self._server_label = server_label
        self._tz = tz
        self._ping_interval = ping_interval
        self.client: ChatClient | None = None
        self.state = ChatState(
            name,
            clock,
            keywords=tuple(keywords) or self.config.notify.keywords,
            notify_rules=notify_rules or self.config.notify.rules(),
            monotonic=monotonic,
            tz=tz,
        )
        """Everything shown, changed only through it (see `ChatState`); the app carries out
        what its changes ask of the screen (`_carry_out`)."""
        self._environ = environ
        self._clock = clock
        self._monotonic = monotonic
        self._last_active = monotonic()
        self._auto_away = False
        """We went away for being idle (`config.away_after`): the next key brings us back."""
        self._typing_timer: Timer | None = None
        self._log_flush_pending = False
        self._grown: set[str] = set()  # conversations whose logs grew since the last flush
        self._relayout: dict[str, int] = {}  # conversation → where its log changed since then
        self._read_pending: dict[str, int] = {}  # conversation → the seq to mark read
        self._read_next: dict[str, float] = {}  # conversation → when its next marker may go
        self._read_timers: dict[str, Timer] = {}
        self._holding_reads = False
        self._autojoined = False
        self._sidebar_choice: dict[bool, bool] = {}
        """Whether the user wants the sidebar shown, narrow (True) or wide (F2 sets it)."""
        self.composing: Composing | None = None
        """The reply or edit being written (None: a message of its own)."""
        self._seeking: tuple[str, int] | None = None
        """The conversation and seq of the message the log is paged back to find."""
        self._last_search: Found | None = None
        """What the search panel showed when it last closed (shown again when it opens)."""
        self._inbox: deque[ServerEvents] = deque()
        """Batches of the server's events not wholly taken yet (see `SLICE`)."""
        self._taking = False
        """The rest of `_inbox` is to be taken on a later turn."""
        self._shown_at = 0.0
        """When the state's changes were last carried out (`perf_counter`)."""
        self._typed_at = -TYPING_WHILE
        """When the composer last changed (`time.monotonic`; see `TYPING_SLICE`)."""

    # --- layout ------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield StatusBar(id="status")
        yield BidiText(id="banner")
        with Horizontal(id="main"):
            with Vertical():
                yield BidiText(id="header", max_lines=HEADER_LINES)
                yield ChatLog(tz=self._tz, timestamps=self.config.timestamps, id="log")
                yield BidiText(id="selecting", max_lines=3)
                yield Static(id="unseen")
                yield BidiText(id="typing")
            yield Sidebar(id="sidebar")
        yield BidiText(id="composing", max_lines=1)
        yield ChatInput(
            self._completion_candidates,
            id="input",
            placeholder=_("Say something — /help for commands"),
        )

    def on_resize(self, event: events.Resize) -> None:
        self._place_sidebar(event.size.width)

    def _place_sidebar(self, width: int) -> None:
        """Below `NARROW` columns the sidebar folds away (F2 brings it back), above it shows,
        unless the user chose otherwise with F2 at that width."""
        narrow = width < NARROW
        shown = self._sidebar_choice.get(narrow, not narrow)
        self.query_one(Sidebar).set_class(not shown, "-collapsed")
        self.query_one(StatusBar).sidebar_hint = "" if shown else _("F2 people")

    def action_toggle_sidebar(self) -> None:
        narrow = self.size.width < NARROW
        sidebar = self.query_one(Sidebar)
        self._sidebar_choice[narrow] = sidebar.has_class("-collapsed")
        self._place_sidebar(self.size.width)

    def action_show_help(self) -> None:
        """F1: the help screen, or (on it) back from it."""
        from tuichat.app.screens.help import HelpScreen

        if isinstance(self.screen, HelpScreen):
            self.screen.dismiss(None)
            return
        self.push_screen(HelpScreen(self.key_help(), bidi=self.bidi))

    def key_help(self) -> list[tuple[str, str]]:
        """Each key of the app and what it does, as bound now (in the language in use)."""
        editor = _either_key(self.config.keys.get("open_editor", "ctrl+o,f4"))
        shown: list[tuple[str, str]] = [
            ("Enter", _("send")),
            ("shift+enter, alt+enter, ctrl+j", _("a new line in the message")),
            (editor, _("edit the message in $VISUAL / $EDITOR")),
            ("Tab, shift+tab", _("complete a name or a room (again: the next, the one before)")),
            ("Up / Down", _("the messages you sent (from the first / last line)")),
        ]
        numbered = False
        for binding in self.BINDINGS:
            assert isinstance(binding, Binding)
            if binding.action.startswith("switch_to("):
                if not numbered:
                    shown.append(("alt+1 … alt+9", _("switch to conversation 1 … 9")))
                    numbered = True
                continue
            keys = self.config.keys.get(binding.id or "", binding.key)
            shown.append((_either_key(keys), describe(binding)))
        shown.extend((keys, _(what)) for keys, what in SELECTION_KEYS)
        return shown

    def on_mount(self) -> None:
        self.theme = self.config.theme
        self.set_keymap(dict(self.config.keys))
        self._draw_with(self.bidi)
        self.query_one(ChatLog).calendar = self.config.effective_calendar()
        self.state.calendar = self.config.effective_calendar()
        status = self.query_one(StatusBar)
        status.server = self._server_label
        status.user = self._user_name
        log = self.query_one(ChatLog)
        log.show(self.state.system_log)
        self.watch(log, "unseen", self._show_unseen)
        self.watch(log, "scroll_y", self._read_shown, init=False)
        self.query_one(ChatInput).focus()
        if self._ask_bidi:
            self.check_bidi()
        self.connect(self._user_name)
        if self._ping_interval:
            self.set_interval(self._ping_interval, self._measure_rtt)
        if self.config.away_after:
            self.set_interval(IDLE_CHECK, self.check_away)

    def _draw_with(self, bidi: Bidi) -> None:
        """Draw right-to-left text as `bidi` says, everywhere (and, when that changes while
        the app runs, tell a VTE terminal whether to reorder rows itself: `CSI 8 l/h`)."""
        if bidi.active != self.bidi.active and self.is_running and not self.is_headless:
            self.write_escape(terminal.EXPLICIT if bidi.active else terminal.IMPLICIT)
        self.bidi = bidi
        rtl = is_rtl()
        log = self.query_one(ChatLog)
        log.bidi, log.rtl_layout = bidi, rtl and bidi.active
        log.redraw()
        sidebar = self.query_one(Sidebar)
        sidebar.bidi, sidebar.rtl_layout = bidi, rtl and bidi.active
        sidebar.refresh_parts()
        status = self.query_one(StatusBar)
        status.bidi, status.rtl_layout = bidi, rtl and bidi.active
        status.refresh()
        self.query_one(ChatInput).bidi = bidi
        self.query_one("#banner", BidiText).bidi = bidi
        self.query_one("#typing", BidiText).bidi = bidi
        self.query_one("#header", BidiText).bidi = bidi
        self.query_one("#selecting", BidiText).bidi = bidi
        self.query_one("#composing", BidiText).bidi = bidi
        self._show_connection()
        self._show_typing()

    def check_bidi(self) -> None:
        """Ask which of two lines reads correctly, and draw as the answer says (and tell
        `bidi_answered`, to remember it for this terminal)."""
        answered = self._bidi_answered

        def chosen(mode: Mode | None) -> None:
            if mode is None:
                return
            self._draw_with(Bidi(mode, upper_is_rtl=self.bidi.upper_is_rtl))
            if answered is not None:
                answered(mode)
            self._system(self.current_room, _("right-to-left text: {mode}").format(mode=mode))

        from tuichat.app.screens.bidi_check import BidiCheck

        self.push_screen(BidiCheck(), chosen)

    def set_bidi(self, mode: str) -> None:
        """`/bidi`: say who reorders right-to-left text, change it, or ask (`check`)."""
        if mode == "check":
            self.check_bidi()
        elif mode in MODES:
            self._draw_with(Bidi(mode, upper_is_rtl=self.bidi.upper_is_rtl))
            self._system(self.current_room, _("right-to-left text: {mode}").format(mode=mode))
        else:
            self._system(
                self.current_room, _("right-to-left text: {mode}").format(mode=self.bidi.mode)
            )

    async def on_unmount(self) -> None:
        if self.client is not None:
            await self.client.abort()  # the app is gone: so is its connection

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = False,
    ) -> None:
        """Show a toast; unlike Textual's, its message is plain text unless `markup` is asked
        (and right-to-left text in it is drawn as the log draws it)."""
        if not markup:
            message = "\n".join(self._toast_lines(message))
        title = self.bidi.display(title)
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=markup)

    def _toast_lines(self, message: str) -> Iterator[str]:
        """A toast's lines as drawn: a right-to-left paragraph wrapped in logical order at
        the toast's width (Textual's: 60 cells, at most half the screen, less its padding and
        border), each line in visual order and right-aligned."""
        width = max(min(60, self.size.width // 2) - 4, 10)
        bidi = self.bidi
        for paragraph in message.split("\n"):
            if not bidi.is_rtl(paragraph):
                yield bidi.display(paragraph)
                continue
            for line in wrap(paragraph, width):
                drawn = bidi.display(line, True)
                yield " " * max(width - cell_len(drawn), 0) + drawn

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        """Textual's own commands of the palette, in the language in use."""
        for command in super().get_system_commands(screen):
            yield command._replace(title=_(command.title), help=_(command.help))

    def action_command_palette(self) -> None:
        """The command palette (ctrl+k), its prompt in the language in use."""
        if self.use_command_palette and not isinstance(self.screen, CommandPalette):
            placeholder = _("Search for commands…")
            palette = BidiCommandPalette(
                id="--command-palette", placeholder=placeholder, bidi=self.bidi
            )
            self.push_screen(palette)

    def watch_app_focus(self, focus: bool) -> None:
        if focus:
            self._read_shown()  # back from another window: what is on screen is read now

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Keys that switch conversations do nothing while a dialog or the palette is open."""
        return not (action in SWITCHING and len(self.screen_stack) > 1)

    # --- state the palette and the widgets read ---------------------------

    @property
    def my_name(self) -> str:
        """Our name as the server spells it."""
        return untrusted.name(self.client.name) if self.client else self.state.me

    @property
    def rooms(self) -> dict[str, RoomView]:
        """The rooms we are in, by `conversation_key`, the lobby first (`ChatState.rooms`)."""
        return self.state.rooms

    @property
    def privates(self) -> dict[str, RoomView]:
        """The private conversations open, by `conversation_key` (`ChatState.privates`)."""
        return self.state.privates

    @property
    def unread(self) -> Unread:
        """The unread and mention counts of every conversation."""
        return self.state.unread

    @property
    def notify_rules(self) -> NotifyRules:
        """What notifies (`/notify`), and how: the bell, a desktop notification."""
        return self.state.notify_rules

    @property
    def current_room(self) -> str:
        """The key of the conversation on screen."""
        return self.state.current

    @current_room.setter
    def current_room(self, key: str) -> None:
        self.state.current = key

    def online_users(self) -> list[str]:
        """Everyone online (all are in the lobby), sorted."""
        return self.state.online_users()

    def joined_rooms(self) -> list[str]:
        """The rooms we are in, the lobby first."""
        return [view.name for view in self.rooms.values()]

    def conversations(self) -> list[str]:
        """The keys of every conversation in the sidebar's order: the rooms, then the private
        ones (each in the order opened)."""
        return self.state.conversations()

    def _completion_candidates(self) -> tuple[Iterable[str], Iterable[str]]:
        return self.online_users(), self.joined_rooms()

    def conversation(self, key: str) -> RoomView | None:
        """The conversation (a room or a private one) of `conversation_key` `key`, if open."""
        return self.state.conversation(key)

    def _view(self, conversation: str) -> RoomView | None:
        return self.state.view(conversation)

    # --- the network worker -----------------------------------------------

    @work(exclusive=True, group="net", exit_on_error=False)
    async def connect(self, name: str) -> None:
        """Connect as `name`, then post every server event into the app until disconnected."""
        self.state.connection = "connecting"
        self._show_connection()
        try:
            client = await self._connector(name)
        except RequestFailed as exc:
            said = untrusted.line(exc.message)
            if exc.code == "banned":  # (no other name helps)
                why = plain(_("the server refused us: {reason}").format(reason=said))  # (printed)
                self.post_message(ConnectFailed(why))
            else:
                self.post_message(NameRefused(name, said))
            return
        except (OSError, TimeoutError, ClientError) as exc:
            self.post_message(ConnectFailed(untrusted.line(_why_not(exc))))
            return
        self.post_message(Connected(client))
        while True:
            events = await client.next_events()
            batch = ServerEvents(events)
            if not self.post_message(batch):
                return  # (the app is closing)
            await batch.taken.wait()  # (what comes meanwhile waits in the client)
            if isinstance(events[-1], Disconnected):
                return

    @on(Connected)
    def _connected(self, event: Connected) -> None:
        client = self.client = event.client
        assert client.welcome is not None
        welcome = untrusted.clean(client.welcome)
        status = self.query_one(StatusBar)
        status.user = welcome.name
        status.server = welcome.server
        client.send_typing = self.config.typing
        self.query_one(ChatLog).me = welcome.name
        self.state.connected(welcome)
        if welcome.limits and "max_text_bytes" in welcome.limits:  # this server's, if others
            self.query_one(ChatInput).max_bytes = welcome.limits["max_text_bytes"]
        self.switch_room(LOBBY)
        self._carry_out()
        if not self._autojoined:  # once: a room left since stays left after a reconnection
            self._autojoined = True
            for room in self.config.autojoin:
                if conversation_key(room) not in self.rooms:
                    self._join(room, switch=False)

    @on(NameRefused)
    def _name_refused(self, event: NameRefused) -> None:
        self.state.connection = "name refused"
        self._show_connection()

        def retry(name: str | None) -> None:
            if name is None:
                self.exit(return_code=1, message=Text(f"tuichat: {event.reason}"))
            else:
                self._user_name = self.state.me = name
                self.query_one(StatusBar).user = name
                self.connect(name)

        self.push_screen(
            dialogs.PromptDialog(
                _("Choose another name"), problem=event.reason, value=event.name, bidi=self.bidi
            ),
            retry,
        )

    @on(ConnectFailed)
    def _connect_failed(self, event: ConnectFailed) -> None:
        self.exit(return_code=1, message=Text(f"tuichat: {event.reason}"))

    @on(ServerEvents)
    def _server_events(self, event: ServerEvents) -> None:
        self._inbox.append(event)
        if not self._taking:
            self._take_events()

    def _take_events(self) -> None:
        """Apply the server's events waiting, for `SLICE` seconds at most; the rest on a later
        turn, after the keys typed meanwhile (and a frame, if one is due)."""
        self._taking = False
        inbox = self._inbox
        apply, clean = self.state.apply, untrusted.clean
        deadline = time.perf_counter() + (TYPING_SLICE if self._typing_now() else SLICE)
        taken: list[ServerEvents] = []
        while inbox:
            batch = inbox[0]
            events, at, end = batch.events, batch.applied, len(batch.events)
            while at < end:
                stop = min(at + 32, end)
                for server_event in events[at:stop]:
                    apply(clean(server_event))
                at = stop
                if time.perf_counter() >= deadline:
                    break
            batch.applied = at
            if at < end:
                break
            taken.append(inbox.popleft())
        now = time.perf_counter()
        if not inbox or now - self._shown_at >= SHOW_EVERY:  # (else the changes add up)
            self._shown_at = now
            self._carry_out()
        for batch in taken:
            batch.taken.set()
        if inbox:
            self._taking = True
            self._next_turn()

    def _next_turn(self) -> None:
        """Take more events once the loop has run what waits: a key read meanwhile reaches
        the app, which hands it to the composer before the next slice (two hops: the key's
        own event first), and the composer and the screen's update get their turn."""
        loop = asyncio.get_running_loop()
        if self._typing_now():  # (a pause: the key's way to the screen is several tasks long)
            loop.call_later(TYPING_GAP, self.call_later, self._take_events)
        else:
            loop.call_soon(loop.call_soon, self.call_later, self._take_events)

    def _typing_now(self) -> bool:
        """Whether the user typed in the composer in the last `TYPING_WHILE` seconds."""
        return time.monotonic() - self._typed_at < TYPING_WHILE

    def _carry_out(self) -> None:
        """Do what the state's changes ask of the screen, then show the state as it is."""
        changes = self.state.take_changes()
        for key in changes.closed:
            self._read_pending.pop(key, None)
            timer = self._read_timers.pop(key, None)
            if timer is not None:
                timer.stop()
        if changes.switch_to is not None:
            self.switch_room(changes.switch_to)
        for key, index in changes.relayout.items():
            self._relayout[key] = min(self._relayout.get(key, index), index)
        if changes.grown or changes.relayout:
            self._grown |= changes.grown
            if not self._log_flush_pending:
                self._log_flush_pending = True  # trim and lay out once after the whole batch
                self.call_next(self._flush_log)
        if self.current_room in changes.shown_again:
            view = self.conversation(self.current_room)
            if view is not None:
                self.query_one(ChatLog).show(view.entries)
        if self.current_room in changes.relayout:
            self._refresh_selection()  # (a verb may have changed the message selected)
        for key in changes.history:
            self._load_history(key)
        if changes.notify:
            self._notify_user(changes.notify)
        if changes.reconnected:
            for key in list(self._read_pending):
                self._send_read(key)
        if changes.typing:
            self._show_typing()
        if self.current_room in changes.newer or self.current_room in changes.shown_again:
            self._show_window()
        self._show_connection()
        self._show_header()
        if not self._log_flush_pending:  # (else once the log is laid out, and read)
            self._refresh_sidebar()

    def _show_window(self) -> None:
        """Tell the log whether the conversation on screen shows older messages (it stops
        before the newest), and how many came since; say so under it."""
        try:
            log = self.query_one(ChatLog)
        except NoMatches:
            return  # (the app is closing)
        view = self.conversation(self.current_room)
        newer = view is not None and view.newer and log.entries is view.entries
        log.more_below = newer
        if newer and view is not None:
            log.unseen = view.unseen_newer
        self._show_unseen(log.unseen)

    def _show_header(self) -> None:
        """The line above the log: the room on screen, whether it is private, its topic
        (shown only when it has a topic or is private)."""
        text = self.state.header()
        header = self.query_one("#header", BidiText)
        header.update(f"\u200f{text}" if text and is_rtl() else text)  # (RLM: the UI's way)
        header.set_class(bool(text), "-visible")

    def _show_typing(self) -> None:
        """The line under the log: who is typing in the conversation on screen (until the next
        notice runs out, when it is looked at again)."""
        text = self.state.typing_line() if self.config.typing else ""
        try:
            line = self.query_one("#typing", BidiText)
        except NoMatches:
            return  # (the app is closing: its widgets are gone)
        line.update(text)
        line.set_class(bool(text), "-visible")
        if self._typing_timer is not None:
            self._typing_timer.stop()
            self._typing_timer = None
        due = self.state.status.next_change()
        if due is not None:
            wait = max(due - self._monotonic(), 0.0) + 0.05
            self._typing_timer = self.set_timer(wait, self._show_typing)

    def _show_connection(self) -> None:
        self.query_one(StatusBar).state = self.state.connection
        banner = self.query_one("#banner", BidiText)
        text = self.state.banner
        if text is not None:
            banner.update(text)
        banner.set_class(text is not None, "-visible")

    def _notify_user(self, items: list[tuple[str, str, str]]) -> None:
        """Ring the bell once for the batch (a burst of mentions is one bell) and ask the
        terminal for one desktop notification, as the rules say."""
        rules = self.notify_rules
        if rules.bell:
            self.bell()
        shown = summary(items)
        if rules.desktop and shown is not None:
            self.write_escape(desktop_escape(*shown, environ=self._environ))

    def write_escape(self, escape: str) -> None:
        """Write a terminal escape of our own making (never text from the network: see
        `notify.desktop_escape`) straight to the terminal."""
        driver = self._driver
        if driver is not None:
            driver.write(escape)
            driver.flush()

    def _room_state(self, state: RoomState) -> RoomView:
        """A room we are in now (joined here or on another device): its view, its place."""
        view = self.state.room_state(state)
        self._carry_out()
        return view

    # --- the log ---------------------------------------------------------

    def _add(self, room: str, entry: LogEntry) -> None:
        self.state.add(room, entry)
        self._carry_out()

    def _flush_log(self) -> None:
        self._log_flush_pending = False
        try:
            log = self.query_one(ChatLog)
        except NoMatches:
            return  # the app is closing
        trimmed = 0
        changed: int | None = None
        relayout, self._relayout = self._relayout, {}
        for room in self._grown | relayout.keys():
            view = self.conversation(room)
            entries = view.entries if view is not None else self.state.system_log
            if view is None:
                removed = len(trim_log(entries))
            else:  # (one not on screen keeps fewer)
                removed = view.trim(None if entries is log.entries else model.BACKGROUND_LINES)
            if entries is log.entries:
                trimmed, changed = removed, relayout.get(room)
        self._grown.clear()
        if changed is not None:  # (a line moved: laid out from there, or all of it if trimmed)
            log.entries_changed(0 if trimmed else changed)
            trimmed = 0
        log.entries_added(trimmed)
        self._read_shown()
        self._refresh_sidebar()

    def _system(self, room: str, text: str, ts: int | None = None) -> None:
        self.state.system(room, text, ts)
        self._carry_out()

    def _error(self, text: str) -> None:
        self.state.error(text)
        self._carry_out()

    def _banner(self, text: str) -> None:
        self.state.banner = text
        self._show_connection()

    def _show_unseen(self, unseen: int) -> None:
        label = self.query_one("#unseen", Static)
        older = self.query_one(ChatLog).more_below
        label.set_class(unseen > 0 or older, "-visible")
        if unseen:
            said = ngettext(
                "↓ {count} new message — PgDn or ctrl+End",
                "↓ {count} new messages — PgDn or ctrl+End",
                unseen,
            )
            shown = self.bidi.display(said.format(count=unseen))
            label.update(Content(shown), layout=False)  # (one row)
        elif older:
            label.update(Content(self.bidi.display(_(OLDER_SHOWN))), layout=False)

    def switch_room(self, room: str) -> None:
        """Show a conversation (by its name or key): its log and members. Coming into it
        with unread messages puts the "new messages" line above the first of them."""
        key = conversation_key(room)
        view = self.conversation(key)
        if view is None:
            return
        log = self.query_one(ChatLog)
        entering = key != self.current_room or log.entries is not view.entries
        if entering:
            self._end_selection(focus=False)
            if self.composing is not None and self.composing.key != key:
                self._stop_composing()
            if self._seeking is not None and self._seeking[0] != key:
                self._seeking = None
            self._leave(self.current_room)
            view.new_after = self.unread.read_up_to(key) if self.unread.counts(key).unread else None
            view.place_new_line(self.my_name)
        self.current_room = key
        with self._reads_held():  # (the log passes its end on the way to the line)
            log.show(view.entries)
            if entering:
                self._scroll_to_new_line(view)
        self._show_window()
        self.query_one(StatusBar).room = view.name
        self._show_header()
        self._refresh_sidebar()
        self._read_shown()

    def _leave(self, key: str) -> None:
        """The user leaves a conversation: its marker goes at once, its line goes away, and
        if its log showed older messages it shows the newest again (when they come back)."""
        self._send_read(key)
        view = self.conversation(key)
        if view is not None and view.new_after is not None:
            view.new_after = None
            view.place_new_line(self.my_name)
        if self.state.to_live(key):
            self.state.changes.shown_again.discard(key)  # (not on screen any more)
            self._load_history(key)

    def _scroll_to_new_line(self, view: RoomView) -> None:
        log = self.query_one(ChatLog)
        if view.new_after is not None and log.entries is view.entries:
            index = next((i for i, e in enumerate(view.entries) if e.kind is Kind.NEW), -1)
            log.scroll_to_entry(index)

    def _refresh_sidebar(self) -> None:
        sidebar = self.query_one(Sidebar)
        view = self.conversation(self.current_room)
        lobby = self.rooms.get(LOBBY)
        shown = lobby if view is not None and view.private else view
        sidebar.me = self.my_name
        sidebar.users = shown.sorted_members() if shown else ()
        sidebar.count = shown.count if shown else 0
        sidebar.owner = fold(shown.owner) if shown else ""
        sidebar.ops = frozenset(fold(op) for op in shown.ops) if shown else frozenset()
        items = []
        for views in (self.rooms, self.privates):
            for key, each in views.items():
                counts = self.unread.counts(key)
                items.append(ConversationItem(each.name, counts.unread, counts.mentions))
        sidebar.conversations = tuple(items)
        sidebar.current = view.name if view else ""
        sidebar.away = frozenset(fold(name) for name in self.state.status.away)

    # --- reading -----------------------------------------------------------

    @contextlib.contextmanager
    def _reads_held(self) -> Iterator[None]:
        """Nothing is read while the log moves to where it will show (a switch, a page)."""
        held, self._holding_reads = self._holding_reads, True
        try:
            yield
        finally:
            self._holding_reads = held

    def _read_shown(self) -> None:
        """What the log shows of the conversation on screen is read (if the app has the
        focus): counts clear at once, the marker goes to the server soon."""
        view = self.conversation(self.current_room)
        if view is None or not self.app_focus or self._holding_reads:
            return
        try:
            log = self.query_one(ChatLog)
        except NoMatches:
            return
        entries = log.entries
        if entries is not view.entries:
            return
        seq = next((entries[i].seq for i in range(log.last_shown(), -1, -1) if entries[i].seq), 0)
        if not seq:
            return
        waiting = self.unread.counts(view.name).unread
        if self.unread.marker(view.name, seq) and waiting:
            # (past our own messages only, the marker stays where it is on the server: they
            # are never unread, and each marker sent costs a request of the flood budget)
            self._read_pending[self.current_room] = seq
            self._queue_read(self.current_room)
            self._refresh_sidebar()

    def _queue_read(self, key: str) -> None:
        if key in self._read_timers:
            return  # it goes when the timer fires, with the newest seq
        wait = self._read_next.get(key, 0.0) - time.monotonic()
        if wait <= 0:
            self._send_read(key)
        else:
            self._read_timers[key] = self.set_timer(wait, partial(self._send_read, key))

    def _send_read(self, key: str) -> None:
        """Send the marker waiting for conversation `key`, if any (and if connected)."""
        timer = self._read_timers.pop(key, None)
        if timer is not None:
            timer.stop()
        client = self.client
        seq = self._read_pending.get(key)
        if seq is None or client is None or not client.connected:
            return  # (sent when the connection is back)
        del self._read_pending[key]
        view = self.conversation(key)
        client.mark_read(view.name if view is not None else key, seq)
        self._read_next[key] = time.monotonic() + read_pause()

    # --- input -----------------------------------------------------------

    @on(ChatInput.Entered)
    def _entered(self, event: ChatInput.Entered) -> None:
        self._active()
        view = self.conversation(self.current_room)
        if view is not None and view.newer:  # (what it says, and the answers, are at the end)
            self.action_jump_to_end()
        command = cmd.parse_input(event.line)
        composing = self.composing
        if (
            composing is not None
            and composing.key == self.current_room
            and (
                isinstance(command, cmd.SayText | cmd.Action)
                or (composing.verb == "edit" and isinstance(command, cmd.Substitute))
            )
        ):
            self._send_composed(composing, command)
        elif command is not None:
            self.run_command(command)

    def run_command(self, command: cmd.Command) -> None:
        """Carry out what the user typed."""
        room = self.current_room
        view = self.conversation(room)
        if isinstance(command, cmd.SayText | cmd.Action):
            action = isinstance(command, cmd.Action)
            text = command.text
            if view is not None and view.private:
                peer = view.peer
                self._request(lambda c: c.private(peer, text, action=action))
            else:
                where = view.name if view is not None else room
                self._request(lambda c: c.send(room, text, action=action), room=where)
        elif isinstance(command, cmd.PrivateText):
            to = command.to
            self.switch_room(self._open_private(to).name)
            self._request(lambda c: c.private(to, command.text))
        elif isinstance(command, cmd.OpenPrivate):
            self.switch_room(self._open_private(command.name).name)
        elif isinstance(command, cmd.JoinRoom):
            self._join(command.room)
        elif isinstance(command, cmd.PartRoom):
            target = self._view(command.room) if command.room else view
            if target is not None and target.private:
                self._close(conversation_key(target.name))
            else:
                self._part(command.room or room)
        elif isinstance(command, cmd.ListUsers):
            if view is not None and view.private:
                if view.peer in self.online_users():
                    said = _("{name} is online")
                else:
                    said = _("{name} is not online")
                self._system(room, said.format(name=view.peer))
            else:
                members = view.sorted_members() if view is not None else ()
                shown = _(", ").join(self._with_away(member) for member in members)
                count = len(members)
                said = ngettext("{count} in {room}: {names}", "{count} in {room}: {names}", count)
                self._system(room, said.format(count=count, room=room, names=shown))
        elif isinstance(command, cmd.SignOutOthers):
            self.action_sign_out_others()
        elif isinstance(command, cmd.SetNotify):
            self.action_set_notify(command.level)
        elif isinstance(command, cmd.SetBidi):
            self.set_bidi(command.mode)
        elif isinstance(command, cmd.SetAway):
            self._auto_away = False  # (chosen: a key does not undo it)
            self.set_away(command.reason)
        elif isinstance(command, cmd.Ignore):
            self._ignore(command)
        elif isinstance(command, cmd.ShowModLog):
            self._show_mod_log(command, view)
        elif isinstance(command, cmd.SetTopic | cmd.SetPrivate | cmd.Moderate):
            self._moderate(command, view)
        elif isinstance(command, cmd.Reply | cmd.React | cmd.Edit | cmd.Substitute | cmd.Delete):
            self._verb(command, view)
        elif isinstance(command, cmd.SearchFor):
            self.action_search(_search_line(command))
        elif isinstance(command, cmd.ShowHelp):
            if command.problem:
                self._error(command.problem)
            self._system(room, _(cmd.HELP))
            self._system(room, _(cmd.MODERATION_HELP))
            self._system(room, _(cmd.VERBS_HELP))
        elif isinstance(command, cmd.Exit):
            self.action_exit_chat()

    # --- moderation -----------------------------------------------------------

    def _moderate(
        self, command: cmd.SetTopic | cmd.SetPrivate | cmd.Moderate, view: RoomView | None
    ) -> None:
        """`/topic`, `/private`, `/kick`, `/ban`, `/op`... in the room on screen."""
        if isinstance(command, cmd.Moderate):
            used = command.action
        else:
            used = "topic" if isinstance(command, cmd.SetTopic) else "private"
        if view is None or view.private:
            said = _("/{command} works in a room, not in a private conversation")
            self._error(said.format(command=used))
            return
        room, state = view.name, self.state
        if isinstance(command, cmd.SetTopic):
            topic = command.topic
            if topic is None:
                state.show_topic(view)
                self._carry_out()
                return

            async def set_topic(client: ChatClient) -> None:
                details = await client.set_topic(room, topic)
                state.room_details(untrusted.clean(details), asked="topic")

            self._ask(set_topic, room=room, action="topic")
        elif isinstance(command, cmd.SetPrivate):
            private = command.private
            if private is None:
                state.show_private(view)
                self._carry_out()
                return

            async def set_private(client: ChatClient) -> None:
                details = await client.set_private(room, private)
                state.room_details(untrusted.clean(details), asked="private")

            self._ask(set_private, room=room, action="private")
        else:
            action, name, reason, duration = (
                command.action,
                command.name,
                command.reason,
                command.duration,
            )

            async def moderate(client: ChatClient) -> None:
                done = await client.moderate(room, action, name, reason, duration)
                state.moderated(untrusted.clean(done))

            self._ask(moderate, room=room, name=name, action=action)

    def _ignore(self, command: cmd.Ignore) -> None:
        """`/ignore NAME`, `/unignore NAME`, or (no name) say who is ignored."""
        name, ignore, state = command.name, command.ignore, self.state
        if not name:
            state.show_ignored()
            self._carry_out()
            return

        async def ignoring(client: ChatClient) -> None:
            names = await client.ignore(name, ignore)
            state.ignored_now(tuple(untrusted.name(each) for each in names), name, ignore)

        self._ask(ignoring, name=name, action="ignore")

    def _show_mod_log(self, command: cmd.ShowModLog, view: RoomView | None) -> None:
        """`/modlog [#ROOM|all]`: the moderation log, newest last, in the log on screen."""
        where = self.current_room
        if command.everything:
            room = ""
        elif command.room:
            room = command.room
        elif view is not None and not view.private:
            room = view.name
        elif self.state.admin:
            room = ""  # (an admin in a private conversation: the whole server's)
        else:
            self._error(_("/modlog works in a room, or name one: /modlog #ROOM"))
            return
        state = self.state

        async def reading(client: ChatClient) -> None:
            page = await client.mod_log(room)
            state.mod_log(where, room, untrusted.clean(page))

        self._ask(reading, room=room, action="modlog")

    def _ask(
        self,
        call: Callable[[ChatClient], Awaitable[None]],
        *,
        room: str = "",
        name: str = "",
        action: str = "",
    ) -> None:
        """Send a request (`call` sends it and hands its answer to the state); a refusal is
        said as `moderation.refusal` says it, for `action` on `room` and `name`."""
        client = self.client
        if client is None:
            self._error(_("not connected"))
            return
        self._asking(client, call, room, name, action)

    @work(group="requests", exit_on_error=False)
    async def _asking(
        self,
        client: ChatClient,
        call: Callable[[ChatClient], Awaitable[None]],
        room: str,
        name: str,
        action: str,
    ) -> None:
        try:
            await call(client)
        except RequestFailed as exc:
            message = untrusted.line(exc.message)
            self.state.refused(exc.code, message, room=room, name=name, action=action)
        self._carry_out()

    def _with_away(self, name: str) -> str:
        """`name`, with "(away: reason)" if they are away."""
        reason = self.state.status.away_reason(name)
        if reason is None:
            return name
        if reason:
            return _("{name} (away: {reason})").format(name=name, reason=reason)
        return _("{name} (away)").format(name=name)

    # --- away and typing ------------------------------------------------------

    def set_away(self, reason: str | None) -> None:
        """Say we are away (`reason`, maybe ""), or back (None), on all our devices."""
        client = self.client
        if client is None:
            self._error(_("not connected"))
            return
        self._setting_away(client, reason)

    @work(group="requests", exit_on_error=False)
    async def _setting_away(self, client: ChatClient, reason: str | None) -> None:
        kept = await client.set_away(reason)
        # (the server answers us, not our stream: our own mark in the sidebar is set here)
        self.state.status.away_changed(self.my_name, kept is not None, kept or "")
        self._refresh_sidebar()
        where = self.current_room
        if kept is None:
            self._system(where, _("you are back"))
        elif kept:
            self._system(where, _("you are away: {reason}").format(reason=untrusted.line(kept)))
        else:
            self._system(where, _("you are away"))

    def check_away(self) -> None:
        """Away after `config.away_after` minutes without a key (checked every `IDLE_CHECK`)."""
        minutes = self.config.away_after
        if not minutes or self._auto_away or self.client is None:
            return
        if self.state.status.away_reason(self.my_name) is not None:
            return  # away already, by choice
        if self._monotonic() - self._last_active >= minutes * 60:
            self._auto_away = True
            idle = ngettext("idle for {count} minute", "idle for {count} minutes", minutes)
            self.set_away(idle.format(count=minutes))  # (others read it in our language)

    def _active(self) -> None:
        self._last_active = self._monotonic()
        if self._auto_away:
            self._auto_away = False
            self.set_away(None)

    @on(ChatInput.Changed)
    def _composing(self, event: ChatInput.Changed) -> None:
        """Each change of the composer: we are here (not idle), and typing (unless it is a
        command, or typing indicators are off)."""
        self._typed_at = time.monotonic()
        self._active()
        text = event.text_area.text
        client = self.client
        view = self.conversation(self.current_room)
        if not self.config.typing or client is None or view is None:
            return
        if text.strip() and not text.startswith("/"):
            client.typing(view.name)

    def _request(
        self, call: Callable[[ChatClient], Coroutine[Any, Any, object]], *, room: str = ""
    ) -> None:
        """Send a request (`call`) about `room` (a refusal names it: `moderation.refusal`)."""
        client = self.client  # while reconnecting, sends wait in the client and go out after
        if client is None:
            self._error(_("not connected"))
            return

        self._requesting(client, call, room)

    @work(group="requests", exit_on_error=False)
    async def _requesting(
        self,
        client: ChatClient,
        call: Callable[[ChatClient], Coroutine[Any, Any, object]],
        room: str = "",
    ) -> None:
        try:
            await call(client)
        except RequestFailed as exc:
            self.state.refused(exc.code, untrusted.line(exc.message), room=room)
            self._carry_out()

    @on(Worker.StateChanged)
    def _worker_failed(self, event: Worker.StateChanged) -> None:
        """The one place a failed request is told: in the log, in the server's words if it
        refused (an error of ours is shown as a toast)."""
        worker = event.worker
        if event.state is not WorkerState.ERROR or worker.group == "net":
            return  # (the network worker says what went wrong itself)
        error = worker.error
        if isinstance(error, ClientError):
            self._failed(error)
        else:
            said = _("{task} failed: {error}").format(task=worker.name, error=repr(error))
            self.notify(said, severity="error")

    def _failed(self, exc: ClientError) -> None:
        """Show why a request failed: the server's words if it refused, else what broke."""
        self._error(untrusted.line(exc.message if isinstance(exc, RequestFailed) else str(exc)))

    def _open_private(self, name: str) -> RoomView:
        """The private conversation with `name`, opened (with its history) if it was not."""
        view = self.state.open_private(name)
        self._carry_out()
        return view

    def _close(self, key: str) -> None:
        """Forget a conversation (a room we left, a private one closed)."""
        self.state.close(key)
        self._carry_out()

    def _join(self, room: str, *, switch: bool = True) -> None:
        client = self.client
        if client is None:
            return
        if conversation_key(room) in self.rooms:
            if switch:
                self.switch_room(room)  # in it already: go there
            return

        self._joining(client, room, switch)

    @work(group="requests", exit_on_error=False)
    async def _joining(self, client: ChatClient, room: str, switch: bool) -> None:
        try:
            state = untrusted.clean(await client.join(room))
        except RequestFailed as exc:  # (banned from it, or it is private)
            self.state.refused(exc.code, untrusted.line(exc.message), room=room)
            self._carry_out()
            return
        self._room_state(state)
        if switch:
            self.switch_room(state.room)

    def _part(self, room: str) -> None:
        client = self.client
        if client is not None:
            self._parting(client, room)

    @work(group="requests", exit_on_error=False)
    async def _parting(self, client: ChatClient, room: str) -> None:
        await client.part(room)
        self._close(conversation_key(room))

    def _load_history(self, room: str, limit: int = HISTORY_PAGE, *, wanted: bool = False) -> None:
        """Fetch the page of history (`limit` messages) before the oldest message shown in
        conversation `room`: if its log has room for it, or if the user asks for it
        (`wanted`: they scrolled to its top), when its newest entries make room."""
        client = self.client
        view = self.conversation(room)
        if client is None or view is None or view.loading or view.history_complete:
            return
        if view.full and not wanted:
            return
        view.loading = True
        self._fetching_history(client, view, limit, wanted)

    @work(group="history", exit_on_error=False)
    async def _fetching_history(
        self, client: ChatClient, view: RoomView, limit: int, wanted: bool
    ) -> None:
        generation = view.generation
        try:
            older, complete, start = await self._history_page(client, view, limit)
        finally:
            view.loading = False
        if view.generation != generation:  # (the log was replaced, or lost its oldest: the
            older, complete, start = [], False, None  # page is not next to it any more)
        self._prepend_history(view, older, complete, start, wanted)

    async def _history_page(
        self, client: ChatClient, view: RoomView, limit: int = HISTORY_PAGE
    ) -> tuple[list[LogEntry], bool, int | None]:
        """The page before the oldest message of `view`, as `ChatState.history_entries`."""
        before = view.oldest_seq
        page: HistoryPage | PrivatePage
        if view.private:
            page = await client.private_history(view.peer, before=before, limit=limit)
        else:
            page = await client.history(view.name, before=before, limit=limit)
        return self.state.history_entries(view, untrusted.clean(page))

    def _prepend_history(
        self,
        view: RoomView,
        older: list[LogEntry],
        complete: bool,
        start: int | None,
        wanted: bool = False,
    ) -> None:
        first_page = not any(entry.history for entry in view.entries)
        added = self.state.prepend_history(view, older, complete, start, make_room=wanted)
        log = self.query_one(ChatLog)
        if added and log.entries is view.entries:
            with self._reads_held():
                log.more_below = view.newer
                log.entries_prepended(added)
                if first_page and not wanted:  # (the user scrolling up stays where they are)
                    self._scroll_to_new_line(view)
            self._show_window()
            self._read_shown()
        self._refresh_sidebar()
        seeking = self._seeking
        if seeking is not None and seeking[0] == conversation_key(view.name):
            self._seek(*seeking)

    @on(ChatLog.ReachedTop)
    def _reached_top(self, event: ChatLog.ReachedTop) -> None:
        self._load_history(self.current_room, wanted=event.wanted)

    @on(ChatLog.ReachedBottom)
    def _reached_bottom(self) -> None:
        self._load_newer(self.current_room)

    def _load_newer(self, key: str) -> None:
        """Fetch the page of history after the newest message shown in conversation `key`,
        whose log shows older messages (a private conversation's shows the newest again)."""
        client = self.client
        view = self.conversation(key)
        if client is None or view is None or not view.newer or view.loading:
            return
        if view.private:  # (its numbers are not the conversation's own: no page "after")
            self.action_jump_to_end()
            return
        view.loading = True
        self._fetching_newer(client, view)

    @work(group="history", exit_on_error=False)
    async def _fetching_newer(self, client: ChatClient, view: RoomView) -> None:
        generation = view.generation
        low = view.window_end
        high = max(min(low + HISTORY_PAGE, view.tail_from), low)
        try:
            page = await self._range(client, view.name, low, high)
        finally:
            view.loading = False
        if view.generation != generation or not view.newer:
            return
        _added, trimmed = self.state.append_history(view, page, low, high)
        log = self.query_one(ChatLog)
        if log.entries is view.entries:
            with self._reads_held():
                log.entries_added(trimmed, follow=False)
            self._show_window()
            self._read_shown()
        self._refresh_sidebar()

    async def _range(self, client: ChatClient, room: str, low: int, high: int) -> HistoryPage:
        """The messages of `room` after seq `low` up to `high` (all of them: a page the server
        cut to its size limit is asked for again below its first message), as one page."""
        messages: list[Message] = []
        epoch, complete = 0, False
        bound = high + 1
        while bound - 1 > low:
            limit = min(bound - 1 - low, MAX_RANGE_PAGE)
            page = untrusted.clean(await client.history(room, before=bound, limit=limit))
            epoch = page.epoch
            inside = [m for m in page.messages if low < m.seq < bound]
            messages[:0] = inside
            complete = page.complete and len(inside) == len(page.messages)
            if len(inside) < len(page.messages) or complete or len(inside) >= limit or not inside:
                break  # (older ones came too, or the room starts, or every seq is a message)
            bound = inside[0].seq
        return HistoryPage(room, epoch, tuple(messages), complete)

    def _measure_rtt(self) -> None:
        client = self.client
        if client is not None and client.connected:
            self._pinging(client)

    @work(group="ping", exclusive=True, exit_on_error=False)
    async def _pinging(self, client: ChatClient) -> None:
        with contextlib.suppress(ClientError):  # (a missed ping is no news: the next one tells)
            self.query_one(StatusBar).rtt_ms = await client.ping() * 1000

    # --- replies, reactions, edits and deletes -------------------------------

    def _verb(
        self,
        command: cmd.Reply | cmd.React | cmd.Edit | cmd.Substitute | cmd.Delete,
        view: RoomView | None,
    ) -> None:
        """`/reply`, `/react`, `/edit`, `s/old/new/`, `/delete`: on the latest message (of
        someone else for a reply, the user's own for an edit or a delete) of the room on
        screen."""
        if view is None or view.private:
            self._error(_(IN_ROOMS))
            return
        me = self.my_name
        if isinstance(command, cmd.Reply):
            target = latest(view.entries, me, mine=False)
        elif isinstance(command, cmd.React):
            target = latest(view.entries, me)
        else:
            target = latest(view.entries, me, mine=True)
        if target is None:
            if isinstance(command, cmd.Reply):
                said = _("nothing to reply to in {room}: no message of someone else here")
            elif isinstance(command, cmd.React):
                said = _("nothing to react to in {room}")
            else:
                said = _("you have no message in {room} to change")
            self._error(said.format(room=view.name))
            return
        if isinstance(command, cmd.Reply):
            if command.text:
                self._send_reply(view, target, command.text)
            else:
                self._start_composing("reply", view, target)
        elif isinstance(command, cmd.React):
            self._react(view, target, command.text)
        elif isinstance(command, cmd.Edit):
            if command.text:
                self._edit(view, target, command.text)
            else:
                self._start_composing("edit", view, target)
        elif isinstance(command, cmd.Substitute):
            self._substitute(view, target, command)
        else:
            self._delete(view, target)

    def _send_reply(
        self, view: RoomView, target: LogEntry, text: str, *, action: bool = False
    ) -> None:
        room, seq = view.name, target.seq

        async def replying(client: ChatClient) -> None:
            await client.send(room, text, action=action, reply=seq)

        self._ask(replying, room=room)  # (refused as a message is: `rate_limited` says how fast)

    def _react(self, view: RoomView, target: LogEntry, text: str) -> None:
        try:
            reaction = check_reaction(text)
        except ChatError:
            self._error(_(REACTION_RULE))
            return
        room, seq = view.name, target.seq

        async def reacting(client: ChatClient) -> None:
            await client.react(room, seq, reaction)

        self._ask(reacting, room=room, action="react")

    def _edit(self, view: RoomView, target: LogEntry, text: str) -> None:
        if text == target.text:
            return  # (nothing changes)
        room, seq = view.name, target.seq

        async def editing(client: ChatClient) -> None:
            await client.edit(room, seq, text)

        self._ask(editing, room=room, action="edit")

    def _substitute(self, view: RoomView, target: LogEntry, command: cmd.Substitute) -> None:
        """`s/old/new/`: the user's latest message with `old` replaced by `new`."""
        text = substituted(target.text, command.old, command.new, command.everywhere)
        if text is None:
            said = _("“{old}” is not in your latest message: {text}")
            self._error(said.format(old=command.old, text=preview(target.text)))
        elif not text.strip():
            self._error(_("that would leave your message empty: /delete deletes it"))
        else:
            self._edit(view, target, text)

    def _delete(self, view: RoomView, target: LogEntry) -> None:
        room, seq = view.name, target.seq

        async def deleting(client: ChatClient) -> None:
            await client.delete(room, seq)

        self._ask(deleting, room=room, action="delete")

    # --- writing a reply or an edit ---------------------------------------

    def _start_composing(self, verb: str, view: RoomView, target: LogEntry) -> None:
        """Write a reply to `target` (or an edit of it) in the composer: a line above it says
        what is being written, Enter sends it, Escape gives it up."""
        composer = self.query_one(ChatInput)
        previous = self.composing
        draft = previous.draft if previous is not None and previous.verb == "edit" else None
        if draft is None:
            draft = composer.value
        key = conversation_key(view.name)
        if verb == "edit":
            self.composing = Composing(verb, key, target, draft)
            composer.value = target.text
        else:
            if previous is not None and previous.verb == "edit":
                composer.value = previous.draft
            self.composing = Composing(verb, key, target)
        self._show_composing()
        composer.focus()

    def _send_composed(self, composing: Composing, command: cmd.Command) -> None:
        """Enter on a reply or an edit being written: send it."""
        view = self.conversation(composing.key)
        self.composing = None
        self._show_composing()
        if view is None:
            return
        entry = composing.entry
        if composing.verb == "reply" and isinstance(command, cmd.SayText | cmd.Action):
            self._send_reply(view, entry, command.text, action=isinstance(command, cmd.Action))
        elif composing.verb == "edit":
            if isinstance(command, cmd.Substitute):
                self._substitute(view, entry, command)
            elif isinstance(command, cmd.SayText | cmd.Action):
                self._edit(view, entry, command.text)
            composer = self.query_one(ChatInput)
            if composing.draft and not composer.value:
                composer.value = composing.draft

    def _stop_composing(self) -> None:
        """Give up the reply or edit being written (an edit puts back what was there)."""
        composing = self.composing
        if composing is None:
            return
        self.composing = None
        if composing.verb == "edit":
            self.query_one(ChatInput).value = composing.draft
        self._show_composing()

    @on(ChatInput.Escaped)
    def _escaped(self) -> None:
        self._stop_composing()

    def _show_composing(self) -> None:
        """The line above the composer: what is being written."""
        line = self.query_one("#composing", BidiText)
        composing = self.composing
        self.query_one(ChatInput).escape_gives_up = composing is not None
        if composing is None:
            text = ""
        elif composing.verb == "reply":
            entry = composing.entry
            # TRANSLATORS: above the composer while a reply is written; ↳ points to it
            said = _("↳ reply to {name}: {text} — Enter sends it, Escape gives it up")
            text = said.format(name=entry.sender, text=preview(entry.text))
        else:
            text = _("✎ editing your message — Enter saves it, Escape gives it up")
        line.update(f"\u200f{text}" if text and is_rtl() else text)
        line.set_class(bool(text), "-visible")

    # --- the selection in the log ---------------------------------------------

    def action_select_message(self) -> None:
        """Select the newest message on screen: its keys act on it (see `SELECTION_KEYS`)."""
        log = self.query_one(ChatLog)
        if log.selected is not None:
            return
        if not log.select_last():
            self.notify(_("Nothing to select here"), timeout=2)
            return
        self._selecting(log)

    def _select(self, entry: LogEntry) -> None:
        """Select `entry` in the log on screen."""
        log = self.query_one(ChatLog)
        log.select(entry)
        self._selecting(log)

    def _selecting(self, log: ChatLog) -> None:
        log.can_focus = True
        log.focus()

    def _end_selection(self, *, focus: bool = True) -> None:
        """Nothing selected any more; the keys go to the composer again."""
        log = self.query_one(ChatLog)
        if log.selected is not None:
            log.select(None)
        log.can_focus = False
        if focus or log.has_focus:
            self.query_one(ChatInput).focus()

    @on(ChatLog.Selected)
    def _selected(self, event: ChatLog.Selected) -> None:
        self._show_selection(event.entry)
        log = self.query_one(ChatLog)
        if event.entry is None and log.can_focus:  # (what was selected went)
            log.can_focus = False
            if log.has_focus:
                self.query_one(ChatInput).focus()

    def _show_selection(self, entry: LogEntry | None) -> None:
        """The lines under the log while a message is selected: what its keys do, and who
        gave its reactions (`selection_hint`)."""
        line = self.query_one("#selecting", BidiText)
        view = self.conversation(self.current_room)
        if entry is None or view is None:
            text = ""
        else:
            confirming = self.query_one(ChatLog).confirming
            text = selection_hint(entry, private=view.private, confirming=confirming)
        line.update(paragraphs(text))  # (each line reads right to left in a RTL UI)
        line.set_class(bool(text), "-visible")

    def _refresh_selection(self) -> None:
        """Say again what the selected message is now (a verb changed it: its reactions, or
        it was deleted)."""
        try:
            log = self.query_one(ChatLog)
        except NoMatches:
            return  # (the app is closing)
        if log.selected is not None:
            self._show_selection(log.selected)

    @on(ChatLog.Typed)
    def _typed_through(self, event: ChatLog.Typed) -> None:
        """A key typed while a message was selected that is none of the selection's: the
        user is writing. The selection ends, and the key goes to the composer as typed."""
        self._end_selection()
        key = events.Key(event.key, event.character)
        self.query_one(ChatInput)._forward_event(key)  # (as the app hands a key to the focus)

    @on(ChatLog.Chosen)
    def _chosen(self, event: ChatLog.Chosen) -> None:
        """A key of the selection: the verb it asks for on the selected message."""
        verb, entry = event.verb, event.entry
        log = self.query_one(ChatLog)
        view = self.conversation(self.current_room)
        if verb == "leave" or view is None:
            self._end_selection()
            return
        if verb == "keep":
            self._show_selection(entry)
            return
        if verb == "original":
            self._show_selection(entry)
            if entry.reply and not view.private:
                self._seek(self.current_room, entry.reply)
            return
        if view.private or not targetable(entry):
            self._show_selection(entry)
            self._error(_(IN_ROOMS) if view.private else _("that message cannot be changed"))
            return
        if verb == "reply":
            self._end_selection(focus=False)
            self._start_composing("reply", view, entry)
        elif verb == "edit":
            if not own(entry, self.my_name):
                self._show_selection(entry)
                self._error(_("only its author can edit a message"))
                return
            self._end_selection(focus=False)
            self._start_composing("edit", view, entry)
        elif verb == "delete":
            if not may_delete(
                entry, self.my_name, owner=view.owner, ops=view.ops, admin=self.state.admin
            ):  # (said at once: the server would refuse it)
                self._error(refusal("not_author", "", room=view.name, action="delete"))
            else:
                log.confirming = True
            self._show_selection(entry)
        elif verb == "confirm":
            self._delete(view, entry)
            self._show_selection(entry)
        elif verb == "react":
            self._show_selection(entry)
            self._ask_reaction(view, entry)

    def _ask_reaction(self, view: RoomView, entry: LogEntry) -> None:
        """Ask for a reaction to `entry`, and give it."""

        def react(text: str | None) -> None:
            if text:
                self._react(view, entry, text)

        title = _("React to the message of {name}").format(name=entry.sender)
        placeholder = _(REACTION_HINT).format(plus_one=token("+1"))
        dialog = dialogs.PromptDialog(
            title, placeholder=placeholder, hint=_(REACTION_KEYS), bidi=self.bidi
        )
        self.push_screen(dialog, react)

    def _seek(self, key: str, seq: int, *, shown_around: bool = False) -> None:
        """Select message `seq` of the conversation on screen (`key`), paging its history
        back to it if it is a little older than the log holds, else showing it with the
        messages around it (`shown_around`: that was done, and it is not there)."""
        view = self.conversation(key)
        if view is None or key != self.current_room:
            self._seeking = None if view is not None else self._seeking
            return
        index = find(view.entries, seq)
        if index >= 0:
            self._seeking = None
            entry = view.entries[index]
            if entry.hidden:
                self._error(_("that message is from someone you ignore"))
            else:
                self._select(entry)
            return
        older = not view.seqs or seq < view.oldest_seq
        held = not older and (not view.newer or seq <= view.window_end)  # (and not there)
        if shown_around or held or (older and view.history_complete):
            self._seeking = None
            said = _("that message is not in the log of {room} any more")
            self._error(said.format(room=view.name))
            return
        self._seeking = (key, seq)
        if older and not view.full and view.oldest_seq - seq <= SEEK_PAGE:
            self._load_history(key, SEEK_PAGE)  # (close by: the log pages back to it)
        elif not view.loading and self.client is not None:
            view.loading = True
            self._fetching_context(self.client, view, seq)

    @work(group="history", exit_on_error=False)
    async def _fetching_context(self, client: ChatClient, view: RoomView, seq: int) -> None:
        """Show message `seq` of `view` with the messages around it, in place of what its
        log showed (it was too far from them), then select it."""
        page: HistoryPage | PrivatePage
        try:
            if view.private:
                high = seq
                found = await client.private_history(view.peer, before=seq + 1, limit=SEEK_PAGE)
                page = untrusted.clean(found)
            else:
                high = seq + SEEK_AFTER
                page = await self._range(client, view.name, max(seq - SEEK_PAGE, 0), high)
        finally:
            view.loading = False
        key = conversation_key(view.name)
        if self._seeking != (key, seq) or self.conversation(key) is not view:
            return  # (the user went elsewhere meanwhile)
        self.state.show_context(view, page, high)
        self._carry_out()
        self._seek(key, seq, shown_around=True)

    # --- search ----------------------------------------------------------------

    def action_search(self, query: str = "") -> None:
        """The search panel (ctrl+f), looking for `query` at once if it is not ""."""
        from tuichat.app.screens.search import SearchScreen

        if isinstance(self.screen, SearchScreen):
            if query:
                self.screen.ask(query)
            return
        screen = SearchScreen(
            query,
            previous=self._last_search,
            joined=lambda room: conversation_key(room) in self.rooms,
            bidi=self.bidi,
            rtl_layout=is_rtl() and self.bidi.active,
            clock=self._clock,
            tz=self._tz,
            calendar=self.config.effective_calendar(),
        )
        self.push_screen(screen, partial(self._search_closed, screen))

    def _search_closed(self, screen: SearchScreen, hit: SearchHit | None) -> None:
        """The search panel closed (on `hit`, or None): what it showed is kept, to show
        again when it opens next."""
        self._last_search = screen.found
        self._open_hit(hit)

    def on_search_screen_wanted(self, event: SearchScreen.Wanted) -> None:
        """The search panel wants hits (by its name: no import of the panel at start)."""
        screen, text, before = event.screen, event.query, event.before
        search = cmd.parse_search(text)
        try:
            words = query_words(search.words)
        except ChatError:
            if words_of(search_fold(search.words)):
                screen.failed(text, _(SEARCH_RULE))
            else:
                screen.failed(text, _("say what to look for: a word at least"))
            return
        client = self.client
        if client is None:
            screen.failed(text, _("not connected"))
            return
        self._searching(client, screen, text, search, words, before)

    @work(group="search", exclusive=True, exit_on_error=False)
    async def _searching(
        self,
        client: ChatClient,
        screen: SearchScreen,
        text: str,
        search: cmd.SearchFor,
        words: tuple[str, ...],
        before: str,
    ) -> None:
        try:
            results = await client.search(
                search.words, room=search.room, sender=search.sender, before=before
            )
        except RequestFailed as exc:
            said = refusal(exc.code, untrusted.line(exc.message), room=search.room, action="search")
            screen.failed(text, said)
            return
        except ClientError as exc:
            screen.failed(text, untrusted.line(str(exc)))
            return
        screen.shown(text, words, untrusted.clean(results), bool(before))

    def _open_hit(self, hit: SearchHit | None) -> None:
        """Show the message a search found, in its conversation (joined, or opened, if need
        be: the panel asked before choosing a hit in a room the user is not in), selected."""
        if hit is None:
            return
        if hit.room.startswith("@"):
            view = self._open_private(hit.room[1:])
            key = conversation_key(view.name)
            self.switch_room(key)
            self._seek(key, hit.seq)
            return
        key = conversation_key(hit.room)
        if key in self.rooms:
            self.switch_room(key)
            self._seek(key, hit.seq)
        else:
            self._seeking = (key, hit.seq)  # (when its history comes in)
            self._join(hit.room)

    # --- actions (keys and palette) --------------------------------------

    def action_private_message(self, user: str) -> None:
        """Ask for a message and send it privately to `user`."""

        def send(text: str | None) -> None:
            if text:
                self.run_command(cmd.PrivateText(user, text))

        dialog = dialogs.PromptDialog(
            _("Private message to {user}").format(user=user),
            placeholder=_("message"),
            bidi=self.bidi,
        )
        self.push_screen(dialog, send)

    def action_join_room(self) -> None:
        """Ask for a room name and join it."""

        def join(room: str | None) -> None:
            if room:
                self._join(room if room.startswith("#") else f"#{room}")

        self.push_screen(
            dialogs.PromptDialog(_("Join room"), placeholder=_("#room"), bidi=self.bidi), join
        )

    def action_leave_room(self) -> None:
        """Leave the current room (or close the current private conversation)."""
        self.run_command(cmd.PartRoom())

    def action_moderation(self, command: str) -> None:
        """Ask what moderation command `command` (`kick`, `ban`, `topic`...) takes, and run
        it in the room on screen (as `/COMMAND` would)."""
        view = self.conversation(self.current_room)
        room = view.name if view is not None else ""
        title, placeholder = PROMPTS.get(command, PROMPTS["kick"])
        value = view.topic if command == "topic" and view is not None else ""

        def run(answer: str | None) -> None:
            if answer:
                self.run_moderation(f"/{command} {answer}")

        dialog = dialogs.PromptDialog(
            _(title).format(room=room), placeholder=_(placeholder), value=value, bidi=self.bidi
        )
        self.push_screen(dialog, run)

    def action_on_message(self, command: str) -> None:
        """`command` (`reply`, `react`, `edit`, `delete`) on the latest message it may act on
        in the room on screen, from the palette: a reply or a reaction asked for in a dialog,
        an edit written in the composer."""
        view = self.conversation(self.current_room)
        if view is None or view.private:
            self._error(_(IN_ROOMS))
            return
        me = self.my_name
        if command in ("edit", "delete"):
            self.run_command(cmd.Edit() if command == "edit" else cmd.Delete())
            return
        target = latest(view.entries, me, mine=False if command == "reply" else None)
        if target is None:
            self.run_command(cmd.Reply() if command == "reply" else cmd.React("?"))
            return
        if command == "react":
            self._ask_reaction(view, target)
            return

        def reply(text: str | None) -> None:
            if text:
                self._send_reply(view, target, text)

        title = _("Reply to {name}: {text}").format(name=target.sender, text=preview(target.text))
        self.push_screen(
            dialogs.PromptDialog(title, placeholder=_("message"), bidi=self.bidi), reply
        )

    def run_moderation(self, line: str) -> None:
        """Run a moderation command line (from the palette) as if typed."""
        command = cmd.parse_input(line)
        if command is not None:
            self.run_command(command)

    def action_clear_log(self) -> None:
        """Clear the current conversation's log on this screen."""
        self.query_one(ChatLog).clear()

    def action_set_notify(self, level: str = "") -> None:
        """Set what in the conversation on screen notifies (`all`, `mentions`, `none`); with
        no level, say what it is."""
        view = self.conversation(self.current_room)
        if view is None:
            return
        rules = self.notify_rules
        if level:
            rules.set_level(view.name, Level(level))
        now = rules.level(view.name)
        said = _("notifications for {name}: {level} ({meaning})").format(
            name=view.name, level=now.value, meaning=_(MEANINGS[now])
        )
        self._system(self.current_room, said)

    def action_next_unread(self) -> None:
        """Go to the next conversation with unread messages: those that mention us first."""
        key = self.unread.next_unread(self.conversations(), self.current_room)
        if key is None:
            self.notify(_("Nothing unread"), timeout=2)
        else:
            self.switch_room(key)

    def action_switch_to(self, number: int) -> None:
        """Go to the `number`th conversation of the sidebar (1 is the first)."""
        order = self.conversations()
        if 1 <= number <= len(order):
            self.switch_room(order[number - 1])

    def action_cycle(self, step: int) -> None:
        """Go to the next (1) or previous (-1) conversation of the sidebar, round the end."""
        order = self.conversations()
        if order:
            at = order.index(self.current_room) if self.current_room in order else 0
            self.switch_room(order[(at + step) % len(order)])

    def action_sign_out_others(self) -> None:
        """Sign out every other device of ours, and say how many went."""
        client = self.client
        if client is None:
            self._error(_("not connected"))
            return
        self._signing_out(client, self.current_room)

    @work(group="requests", exit_on_error=False)
    async def _signing_out(self, client: ChatClient, room: str) -> None:
        count = await client.sign_out_others()
        said = ngettext(
            "signed out {count} other device", "signed out {count} other devices", count
        )
        self._system(room, said.format(count=count))

    def action_jump_to_end(self) -> None:
        """Scroll the log to the newest line (showing the newest messages again, if it
        showed older ones)."""
        log = self.query_one(ChatLog)
        key = self.current_room
        if self.state.to_live(key):
            self._seeking = None
            self._carry_out()  # (shown afresh, at its end)
            self._load_history(key)
        log.scroll_end(animate=False)

    def action_page_log(self, direction: int) -> None:
        """Scroll the log a page up (-1) or down (1), whatever has the focus."""
        log = self.query_one(ChatLog)
        if direction < 0:
            if log.scroll_y == 0:
                self._load_history(self.current_room, wanted=True)
            log.scroll_page_up(animate=False)
        else:
            if log.is_vertical_scroll_end:
                self._load_newer(self.current_room)
            log.scroll_page_down(animate=False)

    def action_exit_chat(self) -> None:
        """Send the read markers still waiting, say goodbye to the server and quit."""
        for key in list(self._read_pending):
            self._send_read(key)
        self._saying_goodbye(self.client)

    @work(group="exit", exclusive=True, exit_on_error=False)
    async def _saying_goodbye(self, client: ChatClient | None) -> None:
        try:
            if client is not None:
                await client.close()
        finally:
            self.exit(0)


def _search_line(command: cmd.SearchFor) -> str:
    """A search as typed in the panel: its words, `from:NAME`, `in:#ROOM`."""
    words = [command.words] if command.words else []
    if command.sender:
        words.append(f"from:{command.sender}")
    if command.room:
        words.append(f"in:{command.room}")
    return " ".join(words)


def _why_not(exc: BaseException) -> str:
    """The sentence that says why connecting failed."""
    detail = str(exc) or type(exc).__name__
    if isinstance(exc, ServerSilent | UntrustedServer):
        return detail  # the server answered the connection: it is not unreachable
    if isinstance(exc, ConnectionClosed):
        return _("the server closed the connection before welcoming us: {reason}").format(
            reason=detail
        )
    return _("cannot reach the server: {reason}").format(reason=detail)


def describe(binding: Binding) -> str:
    """What a key of the app does, in the language in use."""
    if binding.action.startswith("switch_to("):
        return _("Conversation {n}").format(n=binding.action.removeprefix("switch_to(")[:-1])
    return _(binding.description)


def _either_key(keys: str) -> str:
    """Comma-separated keys (`ctrl+o,f4`) as the help says them: `ctrl+o or f4`."""
    # TRANSLATORS: between two keys that do the same, as in: ctrl+o or f4
    return _(" or ").join(keys.split(","))
