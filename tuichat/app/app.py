"""The tuichat app: wires the network worker, the chat state and the widgets together."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from datetime import tzinfo
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.css.query import NoMatches
from textual.notifications import SeverityLevel
from textual.widgets import Static

from tuichat.app import commands as cmd
from tuichat.app import untrusted
from tuichat.app.events import Connected, ConnectFailed, NameRefused, ServerEvents
from tuichat.app.model import MAX_LOG_LINES, Kind, LogEntry, RoomView, mentions, trim_log
from tuichat.app.palette import ChatCommands
from tuichat.app.screens.prompt import PromptDialog
from tuichat.app.widgets.chat_input import ChatInput
from tuichat.app.widgets.chat_log import ChatLog
from tuichat.app.widgets.sidebar import Sidebar
from tuichat.app.widgets.status_bar import StatusBar
from tuichat.client import (
    ChatClient,
    ClientError,
    ClientEvent,
    ConnectionClosed,
    Disconnected,
    Reconnected,
    Reconnecting,
    RequestFailed,
    ServerSilent,
    UntrustedServer,
)
from tuichat.protocol import (
    Bye,
    Error,
    HistoryPage,
    Joined,
    Left,
    Message,
    Notice,
    PrivateMessage,
    RoomReset,
)

Connector = Callable[[str], Awaitable[ChatClient]]
Clock = Callable[[], int]

LOBBY = "#lobby"
HISTORY_PAGE = 50
"""Messages fetched at a time: when a room is shown, and each time the log reaches its top."""


def wall_clock_ms() -> int:
    """Return the time in milliseconds since the Unix epoch."""
    return time.time_ns() // 1_000_000


LEAVE_WORDS = {
    "part": "left",
    "quit": "quit",
    "disconnect": "lost their connection",
}


class ChatApp(App[int]):
    """A full-screen chat client. The network runs in a worker; widgets only render state.

    The server is not trusted: what it sends is cleaned by `untrusted` where it enters the
    app's state (plain text of bounded size, numbers in range), every widget draws text as
    plain `Content`/`Text`, never markup, and each room keeps at most `MAX_LOG_LINES` entries.
    """

    CSS_PATH = "app.tcss"
    TITLE = "tuichat"
    COMMANDS = App.COMMANDS | {ChatCommands}
    BINDINGS = [
        Binding("ctrl+q", "exit_chat", "Quit", priority=True),
        Binding("ctrl+end", "jump_to_end", "Newest", show=False),
        Binding("pageup", "page_log(-1)", "Page up", show=False),
        Binding("pagedown", "page_log(1)", "Page down", show=False),
    ]

    def __init__(
        self,
        connector: Connector,
        name: str,
        *,
        server_label: str = "",
        tz: tzinfo | None = None,
        ping_interval: float | None = 5.0,
        clock: Clock = wall_clock_ms,
    ) -> None:
        super().__init__()
        self._connector = connector
        self._user_name = name
        self._server_label = server_label
        self._tz = tz
        self._ping_interval = ping_interval
        self.client: ChatClient | None = None
        self.rooms: dict[str, RoomView] = {}
        self.current_room = LOBBY
        self._system_log: list[LogEntry] = []
        self._clock = clock
        self._log_flush_pending = False
        self._grown: set[str] = set()  # rooms whose logs grew since the last flush

    # --- layout ------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield StatusBar(id="status")
        yield Static(id="banner")
        with Horizontal(id="main"):
            with Vertical():
                yield ChatLog(tz=self._tz, id="log")
                yield Static(id="unseen")
            yield Sidebar(id="sidebar")
        yield ChatInput(
            self._completion_candidates,
            id="input",
            placeholder="Say something — /help for commands",
        )

    def on_mount(self) -> None:
        status = self.query_one(StatusBar)
        status.server = self._server_label
        status.user = self._user_name
        log = self.query_one(ChatLog)
        log.show(self._system_log)
        self.watch(log, "unseen", self._show_unseen)
        self.query_one(ChatInput).focus()
        self.connect(self._user_name)
        if self._ping_interval:
            self.set_interval(self._ping_interval, self._measure_rtt)

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
        """Show a toast; unlike Textual's, its message is plain text unless `markup` is asked."""
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=markup)

    # --- state the palette and the widgets read ---------------------------

    @property
    def my_name(self) -> str:
        """Our name as the server spells it."""
        return untrusted.name(self.client.name) if self.client else self._user_name

    def online_users(self) -> list[str]:
        """Everyone online (all are in the lobby), sorted."""
        lobby = self.rooms.get(LOBBY)
        return list(lobby.sorted_members()) if lobby else []

    def joined_rooms(self) -> list[str]:
        """The rooms we are in, the lobby first."""
        return list(self.rooms)

    def _completion_candidates(self) -> tuple[Iterable[str], Iterable[str]]:
        return self.online_users(), self.joined_rooms()

    # --- the network worker -----------------------------------------------

    @work(exclusive=True, group="net", exit_on_error=False)
    async def connect(self, name: str) -> None:
        """Connect as `name`, then post every server event into the app until disconnected."""
        self.query_one(StatusBar).state = "connecting"
        try:
            client = await self._connector(name)
        except RequestFailed as exc:
            self.post_message(NameRefused(name, untrusted.line(exc.message)))
            return
        except (OSError, TimeoutError, ClientError) as exc:
            self.post_message(ConnectFailed(untrusted.line(_why_not(exc))))
            return
        self.post_message(Connected(client))
        while True:
            events = await client.next_events()
            self.post_message(ServerEvents(events))
            if isinstance(events[-1], Disconnected):
                return

    @on(Connected)
    def _connected(self, event: Connected) -> None:
        client = self.client = event.client
        assert client.welcome is not None
        welcome = untrusted.clean(client.welcome)
        status = self.query_one(StatusBar)
        status.state = "connected"
        status.user = welcome.name
        status.server = welcome.server
        self.rooms = {LOBBY: RoomView(LOBBY)}  # the lobby first, even if the server forgot it
        self.rooms.update((room, RoomView(room)) for room in welcome.rooms if room != LOBBY)
        lobby = self.rooms[LOBBY]
        lobby.add_members(welcome.users)
        lobby.entries.extend(self._system_log)
        self._system_log = lobby.entries
        if welcome.motd:
            self._add(LOBBY, LogEntry(Kind.SYSTEM, self._clock(), "", welcome.motd))
        self.switch_room(LOBBY)
        for room in self.rooms:
            self._load_history(room)

    @on(NameRefused)
    def _name_refused(self, event: NameRefused) -> None:
        self.query_one(StatusBar).state = "name refused"

        def retry(name: str | None) -> None:
            if name is None:
                self.exit(return_code=1, message=Text(f"tuichat: {event.reason}"))
            else:
                self._user_name = name
                self.query_one(StatusBar).user = name
                self.connect(name)

        self.push_screen(
            PromptDialog("Choose another name", problem=event.reason, value=event.name), retry
        )

    @on(ConnectFailed)
    def _connect_failed(self, event: ConnectFailed) -> None:
        self.exit(return_code=1, message=Text(f"tuichat: {event.reason}"))

    @on(ServerEvents)
    def _server_events(self, event: ServerEvents) -> None:
        for server_event in event.events:
            self._apply(untrusted.clean(server_event))
        self._refresh_sidebar()

    def _apply(self, event: ClientEvent) -> None:
        me = self.my_name
        if isinstance(event, Message):
            view = self.rooms.get(event.room)
            if view is not None:
                if event.seq in view.seqs:
                    return  # already shown from the history
                view.seqs.add(event.seq)
            own = event.sender == me
            kind = Kind.ACTION if event.action else Kind.OWN if own else Kind.MESSAGE
            mentioned = not own and mentions(event.text, me)
            entry = LogEntry(kind, event.ts, event.sender, event.text, mentioned, event.seq)
            self._add(event.room, entry)
            if mentioned:
                self.bell()
        elif isinstance(event, PrivateMessage):
            if event.sender == me:
                entry = LogEntry(Kind.PRIVATE_OUT, event.ts, event.to, event.text)
            else:
                entry = LogEntry(Kind.PRIVATE_IN, event.ts, event.sender, event.text, True)
                self.bell()
            self._add(self.current_room, entry)
        elif isinstance(event, Joined):
            room = self.rooms.get(event.room)
            if room is not None:
                room.add_members((event.name,))
                self._system(event.room, f"{event.name} joined {event.room}", event.ts)
        elif isinstance(event, Left):
            room = self.rooms.get(event.room)
            if room is not None:
                room.remove_member(event.name)
                words = LEAVE_WORDS.get(event.reason, "left")
                self._system(event.room, f"{event.name} {words} {event.room}".strip(), event.ts)
        elif isinstance(event, Notice):
            self._system(event.room or self.current_room, event.text, self._clock())
        elif isinstance(event, Error):
            self._error(event.message)
        elif isinstance(event, RoomReset):
            view = self.rooms.get(event.room)
            if view is not None:
                view.clear()
                if event.room == self.current_room:
                    self.query_one(ChatLog).show(view.entries)
                self._system(event.room, f"{event.room} was reset on the server; reloading")
                self._load_history(event.room)
        elif isinstance(event, Bye):
            self._banner(f"The server is going away: {event.message or event.reason}")
        elif isinstance(event, Reconnecting):
            self.query_one(StatusBar).state = "reconnecting…"
            if event.attempt == 1:
                self._error(f"connection lost: {event.reason}")
            self._banner("Connection lost — reconnecting…")
        elif isinstance(event, Reconnected):
            self.query_one(StatusBar).state = "connected"
            self.query_one("#banner").remove_class("-visible")
            self._system(self.current_room, "reconnected; missed messages follow")
        elif isinstance(event, Disconnected):
            self.query_one(StatusBar).state = "disconnected"
            if not event.clean or not self.query_one("#banner").has_class("-visible"):
                self._banner(f"Disconnected: {event.reason}")

    # --- the log ---------------------------------------------------------

    def _add(self, room: str, entry: LogEntry) -> None:
        view = self.rooms.get(room)
        entries = view.entries if view is not None else self._system_log
        entries.append(entry)
        self._grown.add(room if view is not None else "")
        if not self._log_flush_pending:
            self._log_flush_pending = True  # trim and lay out once after the whole batch
            self.call_next(self._flush_log)

    def _flush_log(self) -> None:
        self._log_flush_pending = False
        try:
            log = self.query_one(ChatLog)
        except NoMatches:
            return  # the app is closing
        trimmed = 0
        for room in self._grown:
            view = self.rooms.get(room)
            entries = view.entries if view is not None else self._system_log
            removed = view.trim() if view is not None else len(trim_log(entries))
            if entries is log.entries:
                trimmed = removed
        self._grown.clear()
        log.entries_added(trimmed)

    def _system(self, room: str, text: str, ts: int | None = None) -> None:
        self._add(room, LogEntry(Kind.SYSTEM, self._clock() if ts is None else ts, "", text))

    def _error(self, text: str) -> None:
        self._add(self.current_room, LogEntry(Kind.ERROR, self._clock(), "", text))

    def _banner(self, text: str) -> None:
        banner = self.query_one("#banner", Static)
        banner.update(Content(text))
        banner.add_class("-visible")

    def _show_unseen(self, unseen: int) -> None:
        label = self.query_one("#unseen", Static)
        label.set_class(unseen > 0, "-visible")
        if unseen:
            label.update(
                Content(f"↓ {unseen} new message{'s' if unseen != 1 else ''} — PgDn or ctrl+End")
            )

    def switch_room(self, room: str) -> None:
        """Show `room`'s log and members."""
        if room not in self.rooms:
            return
        self.current_room = room
        self.query_one(ChatLog).show(self.rooms[room].entries)
        self.query_one(StatusBar).room = room
        self._refresh_sidebar()

    def _refresh_sidebar(self) -> None:
        sidebar = self.query_one(Sidebar)
        view = self.rooms.get(self.current_room)
        sidebar.me = self.my_name
        sidebar.users = view.sorted_members() if view else ()
        sidebar.rooms = tuple(self.rooms)
        sidebar.current = self.current_room

    # --- input -----------------------------------------------------------

    @on(ChatInput.Entered)
    def _entered(self, event: ChatInput.Entered) -> None:
        command = cmd.parse_input(event.line)
        if command is not None:
            self.run_command(command)

    def run_command(self, command: cmd.Command) -> None:
        """Carry out what the user typed."""
        room = self.current_room
        if isinstance(command, cmd.SayText):
            self._request(lambda c: c.send(room, command.text))
        elif isinstance(command, cmd.Action):
            self._request(lambda c: c.send(room, command.text, action=True))
        elif isinstance(command, cmd.PrivateText):
            self._request(lambda c: c.private(command.to, command.text))
        elif isinstance(command, cmd.JoinRoom):
            self._join(command.room)
        elif isinstance(command, cmd.PartRoom):
            self._part(command.room or room)
        elif isinstance(command, cmd.ListUsers):
            members = self.rooms[room].sorted_members() if room in self.rooms else ()
            self._system(room, f"{len(members)} in {room}: {', '.join(members)}")
        elif isinstance(command, cmd.ShowHelp):
            if command.problem:
                self._error(command.problem)
            self._system(room, cmd.HELP)
        elif isinstance(command, cmd.Exit):
            self.action_exit_chat()

    def _request(self, call: Callable[[ChatClient], Coroutine[Any, Any, object]]) -> None:
        client = self.client  # while reconnecting, sends wait in the client and go out after
        if client is None:
            self._error("not connected")
            return

        async def run() -> None:
            try:
                await call(client)
            except ClientError as exc:
                self._failed(exc)

        self.run_worker(run(), group="requests")

    def _failed(self, exc: ClientError) -> None:
        """Show why a request failed: the server's words if it refused, else what broke."""
        self._error(untrusted.line(exc.message if isinstance(exc, RequestFailed) else str(exc)))

    def _join(self, room: str) -> None:
        client = self.client
        if client is None:
            return

        async def run() -> None:
            try:
                state = untrusted.clean(await client.join(room))
            except ClientError as exc:
                self._failed(exc)
                return
            view = self.rooms.setdefault(state.room, RoomView(state.room))
            view.add_members(state.users)
            self.switch_room(state.room)
            self._load_history(state.room)

        self.run_worker(run(), group="requests")

    def _part(self, room: str) -> None:
        client = self.client
        if client is None:
            return

        async def run() -> None:
            try:
                await client.part(room)
            except ClientError as exc:
                self._failed(exc)
                return
            self.rooms.pop(room.casefold(), None)
            if self.current_room == room.casefold():
                self.switch_room(LOBBY)
            else:
                self._refresh_sidebar()

        self.run_worker(run(), group="requests")

    def _load_history(self, room: str) -> None:
        """Fetch the page of history before the oldest message shown in `room` (unless its log
        holds all it may keep)."""
        client = self.client
        view = self.rooms.get(room)
        if client is None or view is None or view.loading or view.history_complete or view.full:
            return
        view.loading = True

        async def run() -> None:
            try:
                page = untrusted.clean(
                    await client.history(room, before=view.oldest_seq, limit=HISTORY_PAGE)
                )
            except ClientError as exc:
                self._failed(exc)
                return
            finally:
                view.loading = False
            self._prepend_history(view, page)

        self.run_worker(run(), group="history")

    def _prepend_history(self, view: RoomView, page: HistoryPage) -> None:
        me = self.my_name
        first_page = not any(entry.history for entry in view.entries)
        older = [
            LogEntry(
                Kind.ACTION if m.action else Kind.OWN if m.sender == me else Kind.MESSAGE,
                m.ts, m.sender, m.text, seq=m.seq, history=True,
            )
            for m in page.messages
            if m.seq not in view.seqs
        ]  # fmt: skip
        view.history_complete = page.complete
        view.pages_loaded += 1
        space = max(MAX_LOG_LINES - len(view.entries), 0)
        if len(older) > space:  # keep what fits next to what is shown, the newest of the page
            del older[: len(older) - space]
            view.history_complete = False
        view.seqs.update(entry.seq for entry in older)
        if view.history_complete and page.messages:
            older.insert(0, LogEntry(Kind.SYSTEM, page.messages[0].ts, "", "start of the room"))
        if first_page and older:
            older.append(LogEntry(Kind.SYSTEM, older[-1].ts, "", "── earlier messages above ──"))
        if not older:
            return
        view.entries[:0] = older
        if view.name == self.current_room:
            self.query_one(ChatLog).entries_prepended(len(older))

    @on(ChatLog.ReachedTop)
    def _reached_top(self) -> None:
        self._load_history(self.current_room)

    async def _measure_rtt(self) -> None:
        client = self.client
        if client is None or not client.connected:
            return

        async def run() -> None:
            with contextlib.suppress(ClientError):
                self.query_one(StatusBar).rtt_ms = await client.ping() * 1000

        self.run_worker(run(), group="ping", exclusive=True)

    # --- actions (keys and palette) --------------------------------------

    def action_private_message(self, user: str) -> None:
        """Ask for a message and send it privately to `user`."""

        def send(text: str | None) -> None:
            if text:
                self.run_command(cmd.PrivateText(user, text))

        self.push_screen(PromptDialog(f"Private message to {user}", placeholder="message"), send)

    def action_join_room(self) -> None:
        """Ask for a room name and join it."""

        def join(room: str | None) -> None:
            if room:
                self._join(room if room.startswith("#") else f"#{room}")

        self.push_screen(PromptDialog("Join room", placeholder="#room"), join)

    def action_leave_room(self) -> None:
        """Leave the current room."""
        self._part(self.current_room)

    def action_clear_log(self) -> None:
        """Clear the current room's log on this screen."""
        self.query_one(ChatLog).clear()

    def action_jump_to_end(self) -> None:
        """Scroll the log to the newest line."""
        self.query_one(ChatLog).scroll_end(animate=False)

    def action_page_log(self, direction: int) -> None:
        """Scroll the log a page up (-1) or down (1), whatever has the focus."""
        log = self.query_one(ChatLog)
        if direction < 0:
            if log.scroll_y == 0:
                self._load_history(self.current_room)
            log.scroll_page_up(animate=False)
        else:
            log.scroll_page_down(animate=False)

    def action_exit_chat(self) -> None:
        """Say goodbye to the server and quit."""
        client = self.client

        async def run() -> None:
            if client is not None:
                await client.close()
            self.exit(0)

        self.run_worker(run(), group="exit", exclusive=True)


def _why_not(exc: BaseException) -> str:
    """The sentence that says why connecting failed."""
    detail = str(exc) or type(exc).__name__
    if isinstance(exc, ServerSilent | UntrustedServer):
        return detail  # the server answered the connection: it is not unreachable
    if isinstance(exc, ConnectionClosed):
        return f"the server closed the connection before welcoming us: {detail}"
    return f"cannot reach the server: {detail}"
