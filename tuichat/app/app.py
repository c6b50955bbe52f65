"""The tuichat app: wires the network worker, the chat state and the widgets together."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Iterator, Mapping
from datetime import tzinfo
from functools import partial
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.css.query import NoMatches
from textual.notifications import SeverityLevel
from textual.timer import Timer
from textual.widgets import Static

from tuichat.app import commands as cmd
from tuichat.app import untrusted
from tuichat.app.events import Connected, ConnectFailed, NameRefused, ServerEvents
from tuichat.app.model import MAX_LOG_LINES, Kind, LogEntry, RoomView, trim_log
from tuichat.app.notify import Level, NotifyRules, desktop_escape, summary
from tuichat.app.palette import ChatCommands
from tuichat.app.screens.prompt import PromptDialog
from tuichat.app.widgets.chat_input import ChatInput
from tuichat.app.widgets.chat_log import ChatLog
from tuichat.app.widgets.sidebar import ConversationItem, Sidebar
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
from tuichat.client.unread import Unread, conversation_key, fold, read_pause
from tuichat.protocol import (
    Bye,
    Error,
    Joined,
    Left,
    Message,
    Notice,
    Parted,
    PrivateMessage,
    ReadMarker,
    RoomReset,
    RoomState,
    Welcome,
)

Connector = Callable[[str], Awaitable[ChatClient]]
Clock = Callable[[], int]

LOBBY = "#lobby"
HISTORY_PAGE = 50
"""Messages fetched at a time: when a conversation is opened, and each time the log reaches
its top."""
MAX_PRIVATE = 100
"""Private conversations kept open; a new one past it closes the oldest that is read."""
SWITCHING = frozenset({"next_unread", "switch_to", "cycle"})
"""Actions that change the conversation on screen (not while a dialog is open)."""


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
        Binding("ctrl+q", "exit_chat", "Quit", priority=True),
        Binding("ctrl+end", "jump_to_end", "Newest", show=False),
        Binding("pageup", "page_log(-1)", "Page up", show=False),
        Binding("pagedown", "page_log(1)", "Page down", show=False),
        Binding("alt+a", "next_unread", "Next unread", show=False, priority=True),
        Binding("ctrl+n", "cycle(1)", "Next conversation", show=False, priority=True),
        Binding("ctrl+p", "cycle(-1)", "Previous conversation", show=False, priority=True),
        *(
            Binding(f"alt+{n}", f"switch_to({n})", f"Conversation {n}", show=False, priority=True)
            for n in range(1, 10)
        ),
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
        notify_rules: NotifyRules | None = None,
        keywords: Iterable[str] = (),
        environ: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__()
        self._connector = connector
        self._user_name = name
        self._server_label = server_label
        self._tz = tz
        self._ping_interval = ping_interval
        self.client: ChatClient | None = None
        self.rooms: dict[str, RoomView] = {}
        """The rooms we are in, by `conversation_key` (their name), the lobby first."""
        self.privates: dict[str, RoomView] = {}
        """The private conversations open, by `conversation_key` (in the order opened)."""
        self.current_room = LOBBY
        """The key of the conversation on screen."""
        self.notify_rules = notify_rules or NotifyRules()
        """What notifies (`/notify`), and how: the bell, a desktop notification."""
        self._keywords = tuple(keywords)
        self._environ = environ
        self.unread = Unread(name, self._keywords)
        self._system_log: list[LogEntry] = []
        self._clock = clock
        self._log_flush_pending = False
        self._grown: set[str] = set()  # conversations whose logs grew since the last flush
        self._notifying: list[tuple[str, str, str]] = []
        """(conversation, sender, text) of this batch's messages that notify."""
        self._read_pending: dict[str, int] = {}  # conversation → the seq to mark read
        self._read_next: dict[str, float] = {}  # conversation → when its next marker may go
        self._read_timers: dict[str, Timer] = {}
        self._holding_reads = False

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
        self.watch(log, "scroll_y", self._read_shown, init=False)
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
        return untrusted.name(self.client.name) if self.client else self._user_name

    def online_users(self) -> list[str]:
        """Everyone online (all are in the lobby), sorted."""
        lobby = self.rooms.get(LOBBY)
        return list(lobby.sorted_members()) if lobby else []

    def joined_rooms(self) -> list[str]:
        """The rooms we are in, the lobby first."""
        return [view.name for view in self.rooms.values()]

    def conversations(self) -> list[str]:
        """The keys of every conversation in the sidebar's order: the rooms, then the private
        ones (each in the order opened)."""
        return [*self.rooms, *self.privates]

    def _completion_candidates(self) -> tuple[Iterable[str], Iterable[str]]:
        return self.online_users(), self.joined_rooms()

    def conversation(self, key: str) -> RoomView | None:
        """The conversation (a room or a private one) of `conversation_key` `key`, if open."""
        return (self.privates if key.startswith("@") else self.rooms).get(key)

    def _view(self, conversation: str) -> RoomView | None:
        return self.conversation(conversation_key(conversation))

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
        self.unread = Unread(welcome.name, self._keywords)
        self.rooms = {LOBBY: RoomView(LOBBY)}  # the lobby first, even if the server forgot it
        self.privates = {}
        self.rooms.update(
            (conversation_key(room), RoomView(room)) for room in welcome.rooms if room != LOBBY
        )
        self._track_welcome(welcome)
        lobby = self.rooms[LOBBY]
        lobby.add_members(welcome.users)
        lobby.entries.extend(self._system_log)
        self._system_log = lobby.entries
        if welcome.motd:
            self._add(LOBBY, LogEntry(Kind.SYSTEM, self._clock(), "", welcome.motd))
        if welcome.devices > 1:
            self._system(
                LOBBY,
                f"you are signed in on {welcome.devices} devices; /signout signs out the others",
            )
        self.switch_room(LOBBY)
        for room in self.rooms:
            self._load_history(room)

    def _track_welcome(self, welcome: Welcome) -> None:
        """Tell `unread` how far each conversation was read and where each room is."""
        for marker in welcome.read:
            self.unread.marker(marker.room, marker.seq, marker.epoch)
        for position in welcome.positions:
            self.unread.room(position.room, position.epoch, position.seq)

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
        self._notifying = []
        for server_event in event.events:
            self._apply(untrusted.clean(server_event))
        if self._notifying:
            self._notify_user(self._notifying)
        self._refresh_sidebar()

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

    def _apply(self, event: ClientEvent) -> None:
        me = self.my_name
        if isinstance(event, Message):
            key = conversation_key(event.room)
            view = self.rooms.get(key)
            if view is not None:
                if event.seq in view.seqs:
                    return  # already shown from the history
                view.seqs.add(event.seq)
            own = event.sender == me
            kind = Kind.ACTION if event.action else Kind.OWN if own else Kind.MESSAGE
            mentioned = self.unread.message(key, event.seq, event.sender, event.text)
            entry = LogEntry(kind, event.ts, event.sender, event.text, mentioned, event.seq)
            self._add(key, entry)
            if not own and self.notify_rules.wants(event.room, mention=mentioned):
                self._notifying.append((event.room, event.sender, event.text))
        elif isinstance(event, PrivateMessage):
            self._private(event)
        elif isinstance(event, Joined):
            room = self._view(event.room)
            if room is not None:
                room.add_members((event.name,))
                self._system(event.room, f"{event.name} joined {event.room}", event.ts)
        elif isinstance(event, Left):
            room = self._view(event.room)
            if room is not None:
                room.remove_member(event.name)
                words = LEAVE_WORDS.get(event.reason, "left")
                self._system(event.room, f"{event.name} {words} {event.room}".strip(), event.ts)
        elif isinstance(event, RoomState):  # another device of ours joined a room
            if self._view(event.room) is None:
                self._system(self.current_room, f"joined {event.room} on another device")
            self._room_state(event)
        elif isinstance(event, Parted):  # another device of ours left a room
            if self._view(event.room) is not None:
                self._close(conversation_key(event.room))
                self._system(self.current_room, f"left {event.room} on another device")
        elif isinstance(event, ReadMarker):  # another device of ours read a conversation
            self.unread.marker(event.room, event.seq, event.epoch)
        elif isinstance(event, Notice):
            where = conversation_key(event.room) if event.room else self.current_room
            self._system(where, event.text, self._clock())
        elif isinstance(event, Error):
            self._error(event.message)
        elif isinstance(event, RoomReset):
            self.unread.room(event.room, event.epoch, event.seq)
            view = self._view(event.room)
            if view is not None:
                view.clear()
                if view is self.conversation(self.current_room):
                    self.query_one(ChatLog).show(view.entries)
                self._system(event.room, f"{event.room} was reset on the server; reloading")
                self._load_history(conversation_key(event.room))
        elif isinstance(event, Bye):
            if event.reason in ("signed_out", "replaced"):
                self._banner(f"Signed out: {event.message or event.reason}")
                self._error(
                    f"{event.message or 'signed out'}; this device will not reconnect "
                    "(start tuichat again to sign in)"
                )
            else:
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
            self._reconnected(event.welcome)
        elif isinstance(event, Disconnected):
            self.query_one(StatusBar).state = "disconnected"
            if not event.clean or not self.query_one("#banner").has_class("-visible"):
                self._banner(f"Disconnected: {event.reason}")

    def _private(self, event: PrivateMessage) -> None:
        """A private message, ours (from this device or another) or to us: into its
        conversation, opened for it if need be."""
        me = self.my_name
        own = fold(event.sender) == fold(me)
        peer = event.to if own else event.sender
        view = self._open_private(peer)
        if event.pid:
            if event.pid in view.seqs:
                return  # already shown from the history
            view.seqs.add(event.pid)
        mentioned = self.unread.message(view.name, event.pid, event.sender, event.text)
        kind = Kind.ACTION if event.action else Kind.PRIVATE_OUT if own else Kind.PRIVATE_IN
        shown = event.sender if event.action else peer
        entry = LogEntry(kind, event.ts, shown, event.text, mentioned, event.pid)
        self._add(conversation_key(view.name), entry)
        if not own and self.notify_rules.wants(view.name, mention=mentioned):
            self._notifying.append((view.name, event.sender, event.text))

    def _room_state(self, state: RoomState) -> RoomView:
        """A room we are in now (joined here or on another device): its view, its place."""
        key = conversation_key(state.room)
        view = self.rooms.get(key)
        if view is None:
            view = self.rooms[key] = RoomView(state.room)
            self._load_history(key)
        view.add_members(state.users)
        if state.read:
            self.unread.marker(state.room, state.read, state.epoch)
        self.unread.room(state.room, state.epoch, state.seq)
        return view

    def _reconnected(self, welcome: Welcome) -> None:
        """Back after a drop: the rooms are the ones the server says (another device may have
        joined or left some meanwhile); markers waiting for the connection go now."""
        rooms = {conversation_key(room): room for room in welcome.rooms}
        for key in list(self.rooms):
            if key != LOBBY and key not in rooms:
                self._close(key)
        for key, room in rooms.items():
            if key not in self.rooms:
                self.rooms[key] = RoomView(room)
                self._load_history(key)
        self._track_welcome(welcome)
        for key in list(self._read_pending):
            self._send_read(key)

    # --- the log ---------------------------------------------------------

    def _add(self, room: str, entry: LogEntry) -> None:
        view = self.conversation(room)
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
            view = self.conversation(room)
            entries = view.entries if view is not None else self._system_log
            removed = view.trim() if view is not None else len(trim_log(entries))
            if entries is log.entries:
                trimmed = removed
        self._grown.clear()
        log.entries_added(trimmed)
        self._read_shown()

    def _system(self, room: str, text: str, ts: int | None = None) -> None:
        entry = LogEntry(Kind.SYSTEM, self._clock() if ts is None else ts, "", text)
        self._add(conversation_key(room), entry)

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
        """Show a conversation (by its name or key): its log and members. Coming into it
        with unread messages puts the "new messages" line above the first of them."""
        key = conversation_key(room)
        view = self.conversation(key)
        if view is None:
            return
        log = self.query_one(ChatLog)
        entering = key != self.current_room or log.entries is not view.entries
        if entering:
            self._leave(self.current_room)
            view.new_after = self.unread.read_up_to(key) if self.unread.counts(key).unread else None
            view.place_new_line(self.my_name)
        self.current_room = key
        with self._reads_held():  # (the log passes its end on the way to the line)
            log.show(view.entries)
            if entering:
                self._scroll_to_new_line(view)
        self.query_one(StatusBar).room = view.name
        self._refresh_sidebar()
        self._read_shown()

    def _leave(self, key: str) -> None:
        """The user leaves a conversation: its marker goes at once, its line goes away."""
        self._send_read(key)
        view = self.conversation(key)
        if view is not None and view.new_after is not None:
            view.new_after = None
            view.place_new_line(self.my_name)

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
        items = []
        for views in (self.rooms, self.privates):
            for key, each in views.items():
                counts = self.unread.counts(key)
                items.append(ConversationItem(each.name, counts.unread, counts.mentions))
        sidebar.conversations = tuple(items)
        sidebar.current = view.name if view else ""

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
        command = cmd.parse_input(event.line)
        if command is not None:
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
                self._request(lambda c: c.send(room, text, action=action))
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
                online = view.peer in self.online_users()
                self._system(room, f"{view.peer} is {'online' if online else 'not online'}")
            else:
                members = view.sorted_members() if view is not None else ()
                self._system(room, f"{len(members)} in {room}: {', '.join(members)}")
        elif isinstance(command, cmd.SignOutOthers):
            self.action_sign_out_others()
        elif isinstance(command, cmd.SetNotify):
            self.action_set_notify(command.level)
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

    def _open_private(self, name: str) -> RoomView:
        """The private conversation with `name`, opened (with its history) if it was not."""
        key = conversation_key(f"@{name}")
        view = self.privates.get(key)
        if view is not None:
            if view.peer != name:
                view.name = f"@{name}"  # as the server spells it
            return view
        others = [k for k in self.privates if k != self.current_room]
        if len(others) >= MAX_PRIVATE:
            read = [k for k in others if not self.unread.counts(k).unread]
            self._close((read or others)[0])
        view = self.privates[key] = RoomView(f"@{name}")
        self._load_history(key)
        return view

    def _close(self, key: str) -> None:
        """Forget a conversation (a room we left, a private one closed)."""
        view = (self.privates if key.startswith("@") else self.rooms).pop(key, None)
        if view is None:
            return
        self._read_pending.pop(key, None)
        timer = self._read_timers.pop(key, None)
        if timer is not None:
            timer.stop()
        self.unread.forget(key)
        if key == self.current_room:
            self.switch_room(LOBBY)
        else:
            self._refresh_sidebar()

    def _join(self, room: str) -> None:
        client = self.client
        if client is None:
            return
        if conversation_key(room) in self.rooms:
            self.switch_room(room)  # in it already: go there
            return

        async def run() -> None:
            try:
                state = untrusted.clean(await client.join(room))
            except ClientError as exc:
                self._failed(exc)
                return
            self._room_state(state)
            self.switch_room(state.room)

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
            self._close(conversation_key(room))

        self.run_worker(run(), group="requests")

    def _load_history(self, room: str) -> None:
        """Fetch the page of history before the oldest message shown in conversation `room`
        (unless its log holds all it may keep)."""
        client = self.client
        view = self.conversation(room)
        if client is None or view is None or view.loading or view.history_complete or view.full:
            return
        view.loading = True

        async def run() -> None:
            try:
                older, complete, start = await self._history_page(client, view)
            except ClientError as exc:
                self._failed(exc)
                return
            finally:
                view.loading = False
            self._prepend_history(view, older, complete, start)

        self.run_worker(run(), group="history")

    async def _history_page(
        self, client: ChatClient, view: RoomView
    ) -> tuple[list[LogEntry], bool, int | None]:
        """The page before the oldest message of `view`: its messages not shown yet, as log
        entries; whether it reaches the start of the conversation; the time of its first
        message (None if it has none)."""
        me = self.my_name
        before = view.oldest_seq
        if view.private:
            page = untrusted.clean(
                await client.private_history(view.peer, before=before, limit=HISTORY_PAGE)
            )
            older: list[LogEntry] = []
            oldest = view.oldest_seq  # (live messages may have come in meanwhile)
            for p in page.messages:
                if p.pid in view.seqs or (oldest and p.pid > oldest):
                    continue  # newer than the oldest shown: it comes (or came) live
                own = fold(p.sender) == fold(me)
                kind = Kind.ACTION if p.action else Kind.PRIVATE_OUT if own else Kind.PRIVATE_IN
                shown = p.sender if p.action else p.to if own else p.sender
                self.unread.message(view.name, p.pid, p.sender, p.text)
                older.append(LogEntry(kind, p.ts, shown, p.text, seq=p.pid, history=True))
            return older, page.complete, page.messages[0].ts if page.messages else None
        history = untrusted.clean(
            await client.history(view.name, before=before, limit=HISTORY_PAGE)
        )
        older = []
        for m in history.messages:
            if m.seq in view.seqs:
                continue
            kind = Kind.ACTION if m.action else Kind.OWN if m.sender == me else Kind.MESSAGE
            older.append(LogEntry(kind, m.ts, m.sender, m.text, seq=m.seq, history=True))
            self.unread.message(view.name, m.seq, m.sender, m.text)
        return older, history.complete, history.messages[0].ts if history.messages else None

    def _prepend_history(
        self, view: RoomView, older: list[LogEntry], complete: bool, start: int | None
    ) -> None:
        first_page = not any(entry.history for entry in view.entries)
        view.history_complete = complete
        view.pages_loaded += 1
        space = max(MAX_LOG_LINES - len(view.entries), 0)
        if len(older) > space:  # keep what fits next to what is shown, the newest of the page
            del older[: len(older) - space]
            view.history_complete = False
        view.seqs.update(entry.seq for entry in older)
        if view.history_complete and start is not None:
            what = "start of the conversation" if view.private else "start of the room"
            older.insert(0, LogEntry(Kind.SYSTEM, start, "", what))
        if first_page and older:
            older.append(LogEntry(Kind.SYSTEM, older[-1].ts, "", "── earlier messages above ──"))
        if not older:
            self._refresh_sidebar()
            return
        view.entries[:0] = older
        if view.new_after is not None:
            view.place_new_line(self.my_name)
        log = self.query_one(ChatLog)
        if log.entries is view.entries:
            with self._reads_held():
                log.entries_prepended(len(older))
                if first_page:
                    self._scroll_to_new_line(view)
            self._read_shown()
        self._refresh_sidebar()

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
        """Leave the current room (or close the current private conversation)."""
        self.run_command(cmd.PartRoom())

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
        now = rules.level(view.name).value
        what = {"all": "every message", "mentions": "mentions and private messages",
                "none": "nothing"}[now]  # fmt: skip
        self._system(self.current_room, f"notifications for {view.name}: {now} ({what})")

    def action_next_unread(self) -> None:
        """Go to the next conversation with unread messages: those that mention us first."""
        key = self.unread.next_unread(self.conversations(), self.current_room)
        if key is None:
            self.notify("Nothing unread", timeout=2)
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
            self._error("not connected")
            return
        room = self.current_room

        async def run() -> None:
            try:
                count = await client.sign_out_others()
            except ClientError as exc:
                self._failed(exc)
                return
            plural = "s" if count != 1 else ""
            self._system(room, f"signed out {count} other device{plural}")

        self.run_worker(run(), group="requests")

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
        """Send the read markers still waiting, say goodbye to the server and quit."""
        client = self.client
        for key in list(self._read_pending):
            self._send_read(key)

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
