"""The chat as the app shows it, and every change to it, as a plain object (no Textual, no I/O).

`ChatState` holds the conversations (rooms and private ones, each a `RoomView`), which one is
on screen, the unread counts and the log of the app's own lines before a connection. The
server's events (already cleaned of anything a terminal would act on) change it through
`apply`; a welcome through `connected` / `reconnected`; pages of history through
`history_entries` and `prepend_history`; the answers to the user's moderation requests
through `moderated`, `room_details`, `ignored_now` and `mod_log` (or `refused`). What the
screen must do about a change (lay out grown logs, fetch history, show a banner, notify) is
gathered in `changes`, which the app takes and carries out: the state never touches a widget
or the network.

The window: each log keeps at most `model.MAX_LOG_LINES` entries. Live ones push the oldest
out; a page the user scrolls up to (`prepend_history(make_room=True)`) pushes the newest out,
and then the log shows older messages (`RoomView.newer`): what comes live waits in its tail
(counted, notified, unread as ever), pages after it come with `append_history` until the log
reaches the tail, `show_context` shows a message far back with those around it, and `to_live`
goes back to the newest at once. Verbs on a message the log does not hold wait for the page
that brings it (if it is older) or are left to the page (history says how messages are now).

Moderation: each room knows its topic, whether it is private, its owner and ops; what a
moderator did is one line however often it is told (and the `left` after a kick or a ban
none), the person acted on is told what happened to them; room messages of people the user
ignores stay in the log hidden, counted on one line that moves to the end as more come.

The app's own lines are made in the language in use; what the server says is shown as it is.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import tzinfo

from tuichat.app import model
from tuichat.app.dates import local_digits
from tuichat.app.i18n import N_, _, ngettext
from tuichat.app.model import Kind, LogEntry, RoomView, trim_log
from tuichat.app.moderation import moderation_line, refusal, when
from tuichat.app.notify import NotifyRules
from tuichat.app.verbs import TARGETS, find, quote
from tuichat.app.verbs import apply as apply_update
from tuichat.client import ClientEvent, Disconnected, Reconnected, Reconnecting
from tuichat.client.status import Status, away_pairs
from tuichat.client.unread import Unread, conversation_key, fold
from tuichat.protocol import (
    Away,
    Bye,
    Error,
    HistoryPage,
    Ignored,
    IsTyping,
    Joined,
    Left,
    Message,
    ModEntry,
    Moderated,
    ModLogPage,
    Notice,
    Parted,
    Presence,
    PrivateMessage,
    PrivatePage,
    ReadMarker,
    RoomDetails,
    RoomReset,
    RoomState,
    Update,
    UserList,
    Welcome,
)

LOBBY = "#lobby"
MAX_PRIVATE = 100
"""Private conversations kept open; a new one past it closes the oldest that is read."""
LEAVE_WORDS = {
    "part": N_("{name} left {room}"),
    "quit": N_("{name} quit {room}"),
    "disconnect": N_("{name} lost their connection"),
    "timeout": N_("{name} timed out"),
    "slow": N_("{name} fell too far behind and was dropped"),
}
"""What the log says when someone leaves a room, by the `left` frame's reason (in English:
shown through `_`)."""
REMOVED = frozenset({"kick", "ban"})
"""`left` reasons the `moderated` line before it has told already (no line of their own)."""
HIDEABLE = frozenset({Kind.MESSAGE, Kind.ACTION})
"""The kinds of room entries hidden when their sender is ignored."""
SEEN_MODERATIONS = 512
"""`moderated` frames remembered, so that one told twice (the answer to our request, and the
room's copy) makes one line."""
GONE_WORDS = {
    "kick": N_("{name} was disconnected from the server"),
    "ban": N_("{name} was banned from the server"),
}
"""What a room says when someone in it is taken off the whole server (its `left`)."""
FINAL_BYES = {
    "kicked": (N_("Removed from the server: {reason}"), N_("an admin disconnected you")),
    "banned": (N_("Banned from the server: {reason}"), N_("you are banned from this server")),
}
"""What the banner says when an admin ends our session, and the reason if the server gave
none."""
PENDING_UPDATES = 256
"""Verbs kept per room for messages older than its log holds (see the module docstring)."""
CONNECTION_STATES = (
    N_("connecting"),
    N_("connected"),
    N_("reconnecting…"),
    N_("disconnected"),
    N_("name refused"),
)
"""The states of the connection, as `ChatState.connection` holds them: in English, for the
status line to tell apart (and show through `_`)."""
Clock = Callable[[], int]
Monotonic = Callable[[], float]


@dataclass
class Changes:
    """What changes since they were last taken ask of the screen."""

    grown: set[str] = field(default_factory=set)
    """Conversation keys whose logs grew ("" for the app's own log before a connection)."""
    shown_again: set[str] = field(default_factory=set)
    """Conversations whose logs were replaced: shown afresh if on screen."""
    history: list[str] = field(default_factory=list)
    """Conversations whose history is to be fetched (a page before their oldest message)."""
    closed: list[str] = field(default_factory=list)
    """Conversations forgotten (their pending read markers go with them)."""
    notify: list[tuple[str, str, str]] = field(default_factory=list)
    """(conversation, sender, text) of messages that notify (see `NotifyRules`)."""
    switch_to: str | None = None
    """The conversation to show (the one on screen was closed)."""
    reconnected: bool = False
    """Back after a drop: read markers waiting for the connection may go."""
    typing: bool = False
    """Who is typing somewhere changed."""
    relayout: dict[str, int] = field(default_factory=dict)
    """Conversations whose logs changed from an index on (a line moved or was said anew):
    laid out again from there."""
    newer: set[str] = field(default_factory=set)
    """Conversations whose logs show older messages and whose tails grew (`RoomView.newer`)."""


class ChatState:
    """The conversations and what the user has read of them; see the module docstring."""

    def __init__(
        self,
        me: str,
        clock: Clock,
        *,
        keywords: Iterable[str] = (),
        notify_rules: NotifyRules | None = None,
        monotonic: Monotonic = time.monotonic,
        tz: tzinfo | None = None,
    ) -> None:
        """`tz`: the time zone the app's own sentences say times in (None: the local one)."""
        self.me = me
        """Our name as the server spells it (as asked for, before a welcome)."""
        self.clock = clock
        self.keywords = tuple(keywords)
        self.notify_rules = notify_rules or NotifyRules()
        self.rooms: dict[str, RoomView] = {}
        """The rooms we are in, by `conversation_key` (their name), the lobby first."""
        self.privates: dict[str, RoomView] = {}
        """The private conversations open, by `conversation_key` (in the order opened)."""
        self.current = LOBBY
        """The key of the conversation on screen."""
        self.unread = Unread(me, self.keywords)
        self.status = Status(monotonic)
        """Who is away and who is typing where (cleaned names, on `monotonic`'s clock)."""
        self.system_log: list[LogEntry] = []
        """The app's own lines before the first welcome (then the lobby's log)."""
        self.connection = "connecting"
        """The connection's state, as the status line says it."""
        self.banner: str | None = None
        """What the banner across the screen says (None: no banner)."""
        self.tz = tz
        self.calendar = "gregorian"
        """The calendar of the dates the app's sentences say (the log's)."""
        self.ignored: tuple[str, ...] = ()
        """The names the user ignores (on all their devices), as the server last said."""
        self._ignored: frozenset[str] = frozenset()
        """The same, `fold`ed."""
        self.admin = False
        """Whether the user is one of the server's admins."""
        self._moderations: dict[tuple[str, str, str, str, int, int], None] = {}
        """The last `SEEN_MODERATIONS` moderation steps shown."""
        self._gone: dict[str, str] = {}
        """Who was last taken off the whole server (`fold`ed), and how (`kick`, `ban`)."""
        self._pending: dict[str, list[Update]] = {}
        """By room: verbs on messages older than its log holds, in the order told."""
        self.changes = Changes()

    def take_changes(self) -> Changes:
        """What changed since the last call, for the screen to carry out."""
        changes, self.changes = self.changes, Changes()
        return changes

    # --- reading it ---------------------------------------------------------

    def conversation(self, key: str) -> RoomView | None:
        """The conversation (a room or a private one) of `conversation_key` `key`, if open."""
        return (self.privates if key.startswith("@") else self.rooms).get(key)

    def view(self, conversation: str) -> RoomView | None:
        """The conversation named `conversation` in any spelling, if open."""
        return self.conversation(conversation_key(conversation))

    def conversations(self) -> list[str]:
        """The keys of every conversation in the sidebar's order: the rooms, then the private
        ones (each in the order opened)."""
        return [*self.rooms, *self.privates]

    def typing_line(self) -> str:
        """ "bob is typing…" for the conversation on screen ("" when nobody is)."""
        view = self.conversation(self.current)
        if view is None:
            return ""
        names = [n for n in self.status.typing_in(view.name) if fold(n) != fold(self.me)]
        if not names:
            return ""
        if len(names) == 1:
            return _("{name} is typing…").format(name=names[0])
        if len(names) <= 3:
            return _("{names} and {last} are typing…").format(
                # TRANSLATORS: between the items of a list, as in: ali, bob and carol
                names=_(", ").join(names[:-1]),
                last=names[-1],
            )
        count = len(names)
        return ngettext("{count} person is typing…", "{count} people are typing…", count).format(
            count=count
        )

    def online_users(self) -> list[str]:
        """Everyone online (all are in the lobby), sorted."""
        lobby = self.rooms.get(LOBBY)
        return list(lobby.sorted_members()) if lobby else []

    def header(self) -> str:
        """What the line above the log says of the room on screen: its name, whether it is
        private, its topic ("" for a room with neither, or a private conversation)."""
        view = self.conversation(self.current)
        if view is None or view.private or not (view.topic or view.invite_only):
            return ""
        if view.topic and view.invite_only:
            # TRANSLATORS: the line above a private room's log: its name, "private", its topic
            return _("{room} · private · {topic}").format(room=view.name, topic=view.topic)
        if view.topic:
            return _("{room} · {topic}").format(room=view.name, topic=view.topic)
        return _("{room} · private: only those invited can join").format(room=view.name)

    def ignores(self, name: str) -> bool:
        """Whether the user ignores `name` (never themselves)."""
        if not self._ignored:
            return False
        folded = fold(name)
        return folded in self._ignored and folded != fold(self.me)

    # --- the log ------------------------------------------------------------

    def add(self, key: str, entry: LogEntry) -> None:
        """Append `entry` to the log of conversation `key` (the app's own log if not open).
        While the log shows older messages (`newer`), what comes waits in its tail, but an
        error, which answers what the user just did, shows where they are."""
        view = self.conversation(key)
        if view is None:
            self.system_log.append(entry)
            self.changes.grown.add("")
        elif view.newer and entry.kind is not Kind.ERROR:
            view.to_tail(entry)
            if entry.seq and not entry.hidden:
                view.unseen_newer += 1
            self.changes.newer.add(key)
        else:
            view.entries.append(entry)
            self.changes.grown.add(key)

    def system(self, conversation: str, text: str, ts: int | None = None) -> None:
        """A line of the app's own (or the server's) in `conversation`."""
        entry = LogEntry(Kind.SYSTEM, self.clock() if ts is None else ts, "", text)
        self.add(conversation_key(conversation), entry)

    def error(self, text: str) -> None:
        """An error line in the conversation on screen."""
        self.add(self.current, LogEntry(Kind.ERROR, self.clock(), "", text))

    # --- the server's words -------------------------------------------------

    def connected(self, welcome: Welcome) -> None:
        """A welcome on a new connection: the rooms it lists, the lobby first, with the app's
        own lines moved into the lobby's log."""
        self.me = welcome.name
        self.connection = "connected"
        self.unread = Unread(welcome.name, self.keywords)
        self.rooms = {LOBBY: RoomView(LOBBY)}  # the lobby first, even if the server forgot it
        self.privates = {}
        self.rooms.update(
            (conversation_key(room), RoomView(room)) for room in welcome.rooms if room != LOBBY
        )
        self._track_welcome(welcome)
        self.status.reset(away_pairs(welcome.away, welcome.away_reasons))
        self.admin = welcome.admin
        self.set_ignored(welcome.ignored)
        lobby = self.rooms[LOBBY]
        lobby.add_members(welcome.users)
        lobby.count = welcome.members
        lobby.entries.extend(self.system_log)
        self.system_log = lobby.entries
        if welcome.motd:
            self.add(LOBBY, LogEntry(Kind.SYSTEM, self.clock(), "", welcome.motd))
        if welcome.devices > 1:
            devices = welcome.devices
            self.system(
                LOBBY,
                ngettext(
                    "you are signed in on {count} device; /signout signs out the others",
                    "you are signed in on {count} devices; /signout signs out the others",
                    devices,
                ).format(count=devices),
            )
        self.changes.history.extend(self.rooms)

    def reconnected(self, welcome: Welcome) -> None:
        """Back after a drop: the rooms are the ones the server says (another device may have
        joined or left some meanwhile)."""
        rooms = {conversation_key(room): room for room in welcome.rooms}
        for key in list(self.rooms):
            if key != LOBBY and key not in rooms:
                self.close(key)
        for key, room in rooms.items():
            if key not in self.rooms:
                self.rooms[key] = RoomView(room)
                self.changes.history.append(key)
        self._track_welcome(welcome)
        self.status.reset(away_pairs(welcome.away, welcome.away_reasons))
        self.admin = welcome.admin
        self.set_ignored(welcome.ignored)
        self.changes.reconnected = True

    def _track_welcome(self, welcome: Welcome) -> None:
        """Tell `unread` how far each conversation was read and where each room is."""
        for marker in welcome.read:
            self.unread.marker(marker.room, marker.seq, marker.epoch)
        for position in welcome.positions:
            self.unread.room(position.room, position.epoch, position.seq)

    def apply(self, event: ClientEvent) -> None:
        """Change the state for one event from the server (or the connection)."""
        changes = self.changes
        if isinstance(event, Message):
            self._message(event)
        elif isinstance(event, Update):
            self._update(event)
        elif isinstance(event, PrivateMessage):
            self._private(event)
        elif isinstance(event, Joined):
            if conversation_key(event.room) == LOBBY:  # back online: a server-wide step is over
                self._gone.pop(fold(event.name), None)
            room = self.view(event.room)
            if room is not None:
                room.add_members((event.name,))
                joined = _("{name} joined {room}").format(name=event.name, room=event.room)
                self.system(event.room, joined, event.ts)
        elif isinstance(event, Left):
            self.status.stopped(event.name, event.room)
            if conversation_key(event.room) == LOBBY:  # (everyone online is in the lobby)
                self.status.offline(event.name)
            changes.typing = True
            room = self.view(event.room)
            if room is not None:
                room.remove_member(event.name)
                if event.reason not in REMOVED:  # (a kick or a ban: its `moderated` told it)
                    words = _(LEAVE_WORDS.get(event.reason, LEAVE_WORDS["part"]))
                    said = words.format(name=event.name, room=event.room)
                    self.system(event.room, said, event.ts)
                elif conversation_key(event.room) != LOBBY and fold(event.name) in self._gone:
                    # (told in the lobby only: the other rooms say where they went)
                    words = _(GONE_WORDS[self._gone[fold(event.name)]])
                    self.system(event.room, words.format(name=event.name), event.ts)
        elif isinstance(event, RoomState):  # another device of ours joined a room
            if self.view(event.room) is None:
                self.system(
                    self.current, _("joined {room} on another device").format(room=event.room)
                )
            self.room_state(event)
        elif isinstance(event, Parted):  # another device of ours left a room
            if self.view(event.room) is not None:
                self.close(conversation_key(event.room))
                self.system(
                    self.current, _("left {room} on another device").format(room=event.room)
                )
        elif isinstance(event, Presence):  # a room too large to name its comers and goers
            room = self.view(event.room)
            if room is not None:
                room.count = event.members
        elif isinstance(event, Away):
            self.status.away_changed(event.name, event.away, event.reason)
        elif isinstance(event, IsTyping):
            self.status.typing(event.name, event.room)
            changes.typing = True
        elif isinstance(event, UserList):
            self.status.listed(event.users, away_pairs(event.away, event.away_reasons))
        elif isinstance(event, ReadMarker):  # another device of ours read a conversation
            self.unread.marker(event.room, event.seq, event.epoch)
        elif isinstance(event, Moderated):
            self.moderated(event)
        elif isinstance(event, RoomDetails):
            self.room_details(event)
        elif isinstance(event, Ignored):  # another device of ours changed the list
            self.set_ignored(event.names)
        elif isinstance(event, Notice):
            where = conversation_key(event.room) if event.room else self.current
            self.system(where, event.text, self.clock())
        elif isinstance(event, Error):
            self.error(event.message)
        elif isinstance(event, RoomReset):
            self.unread.room(event.room, event.epoch, event.seq)
            view = self.view(event.room)
            self._pending.pop(conversation_key(event.room), None)
            if view is not None:
                key = conversation_key(event.room)
                view.clear()
                changes.shown_again.add(key)
                self.system(
                    event.room,
                    _("{room} was reset on the server; reloading").format(room=event.room),
                )
                changes.history.append(key)
        elif isinstance(event, Bye):
            if event.reason in ("signed_out", "replaced"):
                why = event.message or event.reason
                self.banner = _("Signed out: {reason}").format(reason=why)
                self.error(
                    _(
                        "{reason}; this device will not reconnect (start tuichat again to sign in)"
                    ).format(reason=event.message or _("signed out"))
                )
            elif event.reason in FINAL_BYES:
                banner, said = FINAL_BYES[event.reason]
                why = event.message or _(said)
                self.banner = _(banner).format(reason=why)
                self.error(_("{reason}; this device will not reconnect").format(reason=why))
            else:
                why = event.message or event.reason
                self.banner = _("The server is going away: {reason}").format(reason=why)
        elif isinstance(event, Reconnecting):
            self.connection = "reconnecting…"
            if event.attempt == 1:
                self.error(_("connection lost: {reason}").format(reason=event.reason))
            self.banner = _("Connection lost — reconnecting…")
        elif isinstance(event, Reconnected):
            self.connection = "connected"
            self.banner = None
            self.system(self.current, _("reconnected; missed messages follow"))
            self.reconnected(event.welcome)
        elif isinstance(event, Disconnected):
            self.connection = "disconnected"
            if not event.clean or self.banner is None:  # (a clean end keeps the server's words)
                self.banner = _("Disconnected: {reason}").format(reason=event.reason)

    def _message(self, event: Message) -> None:
        key = conversation_key(event.room)
        view = self.rooms.get(key)
        if view is not None:
            if event.seq in view.seqs:
                return  # already shown from the history
            if not view.newer:
                view.seqs.add(event.seq)
            elif event.seq <= view.window_end:
                return  # (a page of the log's brought it)
        own = event.sender == self.me
        kind = Kind.ACTION if event.action else Kind.OWN if own else Kind.MESSAGE
        if self.status.anyone_typing:  # (most messages end nobody's typing: no work for them)
            self.status.stopped(event.sender, event.room)
            self.changes.typing = True
        if view is not None and not own and self.ignores(event.sender):
            self.unread.message(key, event.seq, self.me, "")  # never unread: as if ours
            self.add(key, self._room_entry(view, kind, event, hidden=True))
            if not view.newer:  # (else counted when the tail is shown)
                view.hidden += 1
                self._count_hidden(key, view)
            return
        entry = self._room_entry(view, kind, event)
        mentioned = self.unread.message(
            key, event.seq, event.sender, event.text, to_me=self._to_me(entry)
        )
        entry.mention = mentioned and not entry.deleted
        self.add(key, entry)
        rules = self.notify_rules
        if entry.deleted or own or not (mentioned or rules.some_all):
            return
        if rules.wants(event.room, mention=mentioned):
            self.changes.notify.append((event.room, event.sender, event.text))

    def _to_me(self, entry: LogEntry) -> bool:
        """Whether `entry` is a reply to a message of the user's (a mention of them)."""
        quote = entry.quote
        return quote is not None and not quote.deleted and fold(quote.sender) == fold(self.me)

    def _room_entry(
        self,
        view: RoomView | None,
        kind: Kind,
        message: Message,
        *,
        history: bool = False,
        hidden: bool = False,
    ) -> LogEntry:
        """The log entry of a room message as it is now (edited, deleted, its reactions); a
        reply quotes what it answers, from the server or from the log of `view` (not what
        someone the user ignores said: the quote waits, as for a message not loaded)."""
        quoted = message.quote
        if quoted is not None and self.ignores(quoted.sender):
            quoted = None
        entry = LogEntry(
            kind, message.ts, message.sender, message.text, False, message.seq,
            history=history, hidden=hidden, reply=message.reply or 0, quote=quoted,
            edited=bool(message.edited), deleted=bool(message.deleted),
            reactions=message.reactions or (),
        )  # fmt: skip
        if entry.reply and entry.quote is None and view is not None:
            held = view.tail if view.newer and not history else view.entries
            index = find(held, entry.reply)
            if index < 0 and held is view.tail:
                held = view.entries
                index = find(held, entry.reply)
            if index >= 0 and not held[index].hidden:
                entry.quote = quote(held[index])
        return entry

    def _update(self, event: Update) -> None:
        """A verb on a room message (a reaction, an edit, a delete): its entry shows it, and
        so do the quotes of the replies to it; it is never unread."""
        key = conversation_key(event.room)
        self.unread.verb(event.room, event.seq)
        view = self.rooms.get(key)
        if view is None:
            return
        index = find(view.entries, event.target)
        if index >= 0:
            self._apply_update(key, view, index, event)
        elif view.newer and event.target > view.window_end:  # (past what the log holds)
            tail = view.tail
            index = find(tail, event.target)
            changed = index >= 0 and apply_update(view.name, tail[index], event)
            if changed and event.verb != "react" and not tail[index].hidden:
                quoted = quote(tail[index])
                for reply in tail[index + 1 :]:
                    if reply.reply == event.target:
                        reply.quote = quoted
            # (not in the tail either: a page brings that message as it is now)
        elif not view.seqs or event.target < view.oldest_seq:  # (one a page may bring)
            pending = self._pending.setdefault(key, [])
            pending.append(event)
            del pending[:-PENDING_UPDATES]

    def _apply_update(self, key: str, view: RoomView, index: int, event: Update) -> None:
        entry = view.entries[index]
        if not apply_update(view.name, entry, event):
            return
        if event.verb != "react":
            view.texts_changed()
        if event.verb != "react" and not entry.hidden:
            quoted = quote(entry)
            for reply in view.entries[index + 1 :]:
                if reply.reply == entry.seq:
                    reply.quote = quoted
        relayout = self.changes.relayout
        relayout[key] = min(relayout.get(key, index), index)

    def _private(self, event: PrivateMessage) -> None:
        """A private message, ours (from this device or another) or to us: into its
        conversation, opened for it if need be."""
        own = fold(event.sender) == fold(self.me)
        peer = event.to if own else event.sender
        view = self.open_private(peer)
        if event.pid:
            if event.pid in view.seqs:
                return  # already shown from the history
            if not view.newer:
                view.seqs.add(event.pid)
            elif event.pid <= view.window_end:
                return  # (a page of the log's brought it)
        mentioned = self.unread.message(view.name, event.pid, event.sender, event.text)
        if not own and self.status.anyone_typing:
            self.status.stopped(event.sender, view.name)
            self.changes.typing = True
        kind = Kind.ACTION if event.action else Kind.PRIVATE_OUT if own else Kind.PRIVATE_IN
        shown = event.sender if event.action else peer
        entry = LogEntry(kind, event.ts, shown, event.text, mentioned, event.pid)
        self.add(conversation_key(view.name), entry)
        if not own and self.notify_rules.wants(view.name, mention=mentioned):
            self.changes.notify.append((view.name, event.sender, event.text))

    # --- conversations --------------------------------------------------------

    def room_state(self, state: RoomState) -> RoomView:
        """A room we are in now (joined here or on another device): its view, its place."""
        key = conversation_key(state.room)
        view = self.rooms.get(key)
        if view is None:
            view = self.rooms[key] = RoomView(state.room)
            self.changes.history.append(key)
        view.add_members(state.users)
        view.count = state.members
        view.topic, view.topic_by, view.topic_ts = state.topic, state.topic_by, state.topic_ts
        view.invite_only, view.owner, view.ops = state.private, state.owner, state.ops
        self.status.listed(state.users, away_pairs(state.away, state.away_reasons))
        if state.read:
            self.unread.marker(state.room, state.read, state.epoch)
        self.unread.room(state.room, state.epoch, state.seq)
        return view

    def open_private(self, name: str) -> RoomView:
        """The private conversation with `name`, opened (its history asked for) if it was not."""
        key = conversation_key(f"@{name}")
        view = self.privates.get(key)
        if view is not None:
            if view.peer != name:
                view.name = f"@{name}"  # as the server spells it
            return view
        others = [k for k in self.privates if k != self.current]
        if len(others) >= MAX_PRIVATE:
            read = [k for k in others if not self.unread.counts(k).unread]
            self.close((read or others)[0])
        view = self.privates[key] = RoomView(f"@{name}")
        self.changes.history.append(key)
        return view

    def close(self, key: str) -> None:
        """Forget a conversation (a room we left, a private one closed)."""
        view = (self.privates if key.startswith("@") else self.rooms).pop(key, None)
        self._pending.pop(key, None)
        if view is None:
            return
        self.unread.forget(key)
        self.changes.closed.append(key)
        if key == self.current:
            self.changes.switch_to = LOBBY

    # --- history --------------------------------------------------------------

    def history_entries(
        self, view: RoomView, page: HistoryPage | PrivatePage, *, high: int | None = None
    ) -> tuple[list[LogEntry], bool, int | None]:
        """A page of `view`'s history (cleaned) as log entries: those not shown yet; whether
        it reaches the start of the conversation; the time of its first message. `high`: the
        page holds every message of the room up to this seq (None: up to the log's, or the
        newest)."""
        older: list[LogEntry] = []
        if isinstance(page, PrivatePage):
            oldest = view.oldest_seq  # (live messages may have come in meanwhile)
            for p in page.messages:
                if p.pid in view.seqs or (oldest and p.pid > oldest):
                    continue  # newer than the oldest shown: it comes (or came) live
                own = fold(p.sender) == fold(self.me)
                kind = Kind.ACTION if p.action else Kind.PRIVATE_OUT if own else Kind.PRIVATE_IN
                shown = p.sender if p.action else p.to if own else p.sender
                self.unread.message(view.name, p.pid, p.sender, p.text)
                older.append(LogEntry(kind, p.ts, shown, p.text, seq=p.pid, history=True))
            return older, page.complete, page.messages[0].ts if page.messages else None
        for m in page.messages:
            if m.seq in view.seqs:
                continue
            own = m.sender == self.me
            kind = Kind.ACTION if m.action else Kind.OWN if own else Kind.MESSAGE
            hidden = not own and self.ignores(m.sender)
            entry = self._room_entry(view, kind, m, history=True, hidden=hidden)
            older.append(entry)
            if hidden:
                self.unread.message(view.name, m.seq, self.me, "")  # never unread: as if ours
            else:
                self.unread.message(view.name, m.seq, m.sender, m.text, to_me=self._to_me(entry))
        self._page_read(view, page, older, high)
        return older, page.complete, page.messages[0].ts if page.messages else None

    def _page_read(
        self, view: RoomView, page: HistoryPage, older: list[LogEntry], high: int | None
    ) -> None:
        """What a page of a room's history tells besides its messages: the verbs waiting for
        them, and which seqs of its span are verbs (for `unread`)."""
        key = conversation_key(view.name)
        pending = self._pending.get(key)
        if pending and older:
            held = {entry.seq: entry for entry in older}
            waiting = []
            for update in pending:
                entry = held.get(update.target)
                if entry is None:
                    waiting.append(update)
                else:
                    apply_update(view.name, entry, update)
            self._pending[key] = waiting
        seqs = {m.seq for m in page.messages}
        if not seqs:
            return
        if high is None:
            newest = max(seqs)
            after = [seq for seq in view.seqs if seq > newest]
            high = min(after) - 1 if after else 2**63 - 1  # (up to what is held, or the newest)
            if view.newer and not after:
                high = newest  # (what comes after it is not known here)
        low = 1 if page.complete else min(seqs)
        self.unread.page(view.name, page.epoch, low, high, seqs)

    def prepend_history(
        self,
        view: RoomView,
        older: list[LogEntry],
        complete: bool,
        start: int | None,
        *,
        make_room: bool = False,
    ) -> int:
        """Put a page of history before `view`'s entries; return how many entries were put
        there. The log keeps at most `MAX_LOG_LINES`: what fits of the page (its newest), or
        with `make_room` (the user scrolled up to it) all of it, as many of the newest entries
        going (the log no longer reaches the newest message: `RoomView.newer`)."""
        first_page = not any(entry.history for entry in view.entries)
        view.history_complete = complete
        view.pages_loaded += 1
        space = max(model.MAX_LOG_LINES - len(view.entries), 0)
        if not make_room:  # keep what fits (with the lines it may bring), the newest of it
            space = max(space - first_page - (complete and start is not None), 0)
            if len(older) > space:
                del older[: len(older) - space]
                view.history_complete = False
        view.seqs.update(entry.seq for entry in older)
        if view.history_complete and start is not None:
            what = _("start of the conversation") if view.private else _("start of the room")
            older.insert(0, LogEntry(Kind.SYSTEM, start, "", what))
        if first_page and older:
            earlier = _("── earlier messages above ──")
            older.append(LogEntry(Kind.SYSTEM, older[-1].ts, "", earlier))
        if not older:
            return 0
        view.entries[:0] = older
        originals = {e.seq: e for e in older if e.seq and e.kind in TARGETS and not e.hidden}
        for entry in view.entries:  # (the replies waiting for what they answer)
            if entry.reply and entry.quote is None and entry.reply in originals:
                entry.quote = quote(originals[entry.reply])
        hidden = sum(entry.hidden for entry in older)
        if hidden:  # (the caller lays the whole log out again: the count may change in place)
            view.hidden += hidden
            line = view.hidden_line
            index = view.index_of(line) if line is not None else -1
            if line is not None and index >= 0:
                view.entries[index] = view.hidden_line = self._hidden_line(view, line.ts)
            else:  # (at the end, as when one comes live)
                view.hidden_line = self._hidden_line(view, view.entries[-1].ts)
                view.entries.append(view.hidden_line)
        if make_room and len(view.entries) > model.MAX_LOG_LINES:
            self._cut_newest(view, model.MAX_LOG_LINES)
        if view.new_after is not None:
            view.place_new_line(self.me)
        return len(older)

    def _cut_newest(self, view: RoomView, keep: int) -> None:
        """Drop the entries of `view` past the first `keep`: the log no longer reaches the
        newest message (`RoomView.newer`); the newest of them wait in its tail."""
        entries = view.entries
        dropped = entries[keep:]
        del entries[keep:]
        kept = [entry.seq for entry in entries if entry.seq]
        view.seqs.difference_update(entry.seq for entry in dropped)
        if not view.newer:
            tail = [entry for entry in dropped if entry.kind is not Kind.NEW][-model.TAIL_LINES :]
            before = [entry.seq for entry in dropped[: len(dropped) - len(tail)] if entry.seq]
            view.newer, view.tail, view.unseen_newer = True, tail, 0
            if before or kept:
                view.tail_from = max(before or kept)
            else:  # (nothing kept: the tail holds all there was, from its first message)
                view.tail_from = min((entry.seq for entry in tail if entry.seq), default=1) - 1
        view.window_end = max(kept, default=view.window_end)
        view.recount_hidden()

    def append_history(
        self, view: RoomView, page: HistoryPage, low: int, high: int
    ) -> tuple[int, int]:
        """Put the messages of room `view` after `low` up to `high` (cleaned, in `page`) after
        its entries (the log shows older messages: `RoomView.newer`); once they reach its tail,
        the tail too. Return how many entries came, and how many of the oldest went (the log
        keeps `MAX_LOG_LINES`)."""
        before = len(view.entries)
        if view.newer:
            newer = HistoryPage(
                page.room,
                page.epoch,
                tuple(m for m in page.messages if low < m.seq <= high),
                page.complete,
            )
            entries, _complete, _start = self.history_entries(view, newer, high=high)
            view.entries.extend(entries)
            view.seqs.update(entry.seq for entry in entries)
            view.window_end = max(view.window_end, high)
            if view.window_end >= view.tail_from:
                self._attach(view)
        removed = trim_log(view.entries)
        if removed:
            view.seqs.difference_update(entry.seq for entry in removed)
            view.history_complete = False
            view.generation += 1
        view.recount_hidden()
        return len(view.entries) - before + len(removed), len(removed)

    def _attach(self, view: RoomView) -> None:
        """The log reached its tail: what waited there follows its entries (but what a page
        brought already), and the log follows the newest messages again."""
        newest = view.window_end
        for entry in view.end_tail():
            if entry.seq and (entry.seq <= newest or entry.seq in view.seqs):
                continue
            view.entries.append(entry)
            if entry.seq:
                view.seqs.add(entry.seq)
        if view.new_after is not None:
            view.place_new_line(self.me)

    def to_live(self, key: str) -> bool:
        """Show the newest messages of conversation `key` again, if its log shows older ones:
        what waited in its tail (the page before it is to be fetched). Return whether it did."""
        view = self.conversation(key)
        if view is None or not view.newer:
            return False
        tail = view.end_tail()
        view.entries[:] = tail  # (in place: the log widget holds the list)
        view.seqs = {entry.seq for entry in tail if entry.seq}
        view.history_complete = False
        view.generation += 1
        view.recount_hidden()
        if view.hidden:
            self._count_hidden(key, view)
        if view.new_after is not None:
            view.place_new_line(self.me)
        self.changes.shown_again.add(key)
        return True

    def show_context(self, view: RoomView, page: HistoryPage | PrivatePage, high: int) -> None:
        """Show in the log of `view` the page of its history up to `high` (cleaned) instead of
        what it showed (the message the user went to is in it): the log shows older messages
        (`RoomView.newer`) until it reaches the newest again."""
        key = conversation_key(view.name)
        if not view.newer:
            self._cut_newest(view, 0)
        else:
            view.entries.clear()
            view.seqs.clear()
        view.generation += 1
        view.hidden, view.hidden_line = 0, None
        entries, complete, start = self.history_entries(view, page, high=high)
        view.history_complete = complete
        if complete and start is not None:
            what = _("start of the conversation") if view.private else _("start of the room")
            entries.insert(0, LogEntry(Kind.SYSTEM, start, "", what))
        view.entries.extend(entries)
        view.seqs.update(entry.seq for entry in entries if entry.seq)
        view.window_end = high
        if high >= view.tail_from:
            self._attach(view)
        removed = trim_log(view.entries)  # (the oldest: the message gone to is near the end)
        if removed:
            view.seqs.difference_update(entry.seq for entry in removed)
            view.history_complete = False
        view.recount_hidden()
        self.changes.shown_again.add(key)

    # --- moderation -----------------------------------------------------------

    def set_ignored(self, names: Iterable[str]) -> None:
        """The user ignores `names` now (on all their devices): the room messages of those
        names are hidden (and those of the others shown again), counted in each room."""
        self.ignored = tuple(names)
        folded = frozenset(fold(name) for name in self.ignored)
        if folded == self._ignored:
            return
        self._ignored = folded
        for key, view in self.rooms.items():
            changed = False
            for entry in (*view.entries, *view.tail):
                if entry.kind in HIDEABLE:
                    hidden = self.ignores(entry.sender)
                    if hidden != entry.hidden:
                        entry.hidden, changed = hidden, True
            if changed:
                view.hidden = sum(entry.hidden for entry in view.entries)
                self._count_hidden(key, view)
                self.changes.shown_again.add(key)

    def _count_hidden(self, key: str, view: RoomView) -> None:
        """Say how many messages of `view` are hidden on the last line of its log (taken
        from where it was; none hidden: no line)."""
        line = view.hidden_line
        if line is not None:
            index = view.index_of(line)
            if index >= 0:
                del view.entries[index]
                changes = self.changes.relayout
                changes[key] = min(changes.get(key, index), index)
            view.hidden_line = None
        if view.hidden <= 0:
            return
        ts = view.entries[-1].ts if view.entries else self.clock()
        view.hidden_line = self._hidden_line(view, ts)
        self.add(key, view.hidden_line)

    @staticmethod
    def _hidden_line(view: RoomView, ts: int) -> LogEntry:
        count = view.hidden
        said = ngettext(
            "{count} message from ignored people hidden",
            "{count} messages from ignored people hidden",
            count,
        ).format(count=local_digits(str(count)))
        return LogEntry(Kind.SYSTEM, ts, "", said)

    def ignored_now(self, names: Iterable[str], name: str, ignore: bool) -> None:
        """The answer to our `ignore` of `name` (or of its end): the names ignored now."""
        self.set_ignored(names)
        if ignore:
            said = _("you ignore {name} now: their messages are hidden on all your devices")
        else:
            said = _("you no longer ignore {name}")
        self.system(self.current, said.format(name=name))

    def show_ignored(self) -> None:
        """Say whom the user ignores."""
        if self.ignored:
            # TRANSLATORS: between the items of a list, as in: ali, bob and carol
            names = _(", ").join(self.ignored)
            self.system(self.current, _("you ignore: {names}").format(names=names))
        else:
            self.system(self.current, _("you ignore nobody"))

    def show_topic(self, view: RoomView) -> None:
        """Say what the topic of room `view` is, who set it and when."""
        if not view.topic:
            self.system(view.name, _("{room} has no topic").format(room=view.name))
            return
        said = _("topic of {room}: {topic}").format(room=view.name, topic=view.topic)
        if view.topic_by:
            shown = when(view.topic_ts, self.clock(), self.tz, self.calendar)
            said = _("{topic} (set by {name}, {time})").format(
                topic=said, name=view.topic_by, time=shown
            )
        self.system(view.name, said)

    def show_private(self, view: RoomView) -> None:
        """Say whether room `view` is private."""
        if view.invite_only:
            said = _("{room} is private: only those invited can join it")
        else:
            said = _("{room} is open: anyone can join it")
        self.system(view.name, said.format(room=view.name))

    def moderated(self, event: Moderated) -> None:
        """Someone acted on someone (told to the room's members and to the person acted on,
        or the answer to our request): one line, however often it comes; the person acted on
        is told what happened to them, and a room they are removed from is closed."""
        seen = (
            conversation_key(event.room),
            event.action,
            fold(event.name),
            fold(event.by),
            event.until,
            event.ts,
        )
        if seen in self._moderations:
            return
        self._moderations[seen] = None
        if len(self._moderations) > SEEN_MODERATIONS:
            del self._moderations[next(iter(self._moderations))]
        you = fold(event.name) == fold(self.me)
        key = conversation_key(event.room) if event.room else ""
        view = self.rooms.get(key) if key else None
        said = self._moderation_line(event, self.clock(), you=you)
        where = self.current
        if view is not None:
            where = key
            if event.action == "op" and not view.role(event.name):
                view.ops = (*view.ops, event.name)
            elif event.action == "deop":
                view.ops = tuple(op for op in view.ops if fold(op) != fold(event.name))
            elif event.action in REMOVED or (event.action == "uninvite" and view.invite_only):
                if you:  # (the `parted` that follows finds the room closed: no more lines)
                    self.close(key)
                    where = LOBBY if key == self.current else self.current
                else:
                    view.remove_member(event.name)  # (its `left` follows, without a line)
        elif not event.room and not you:
            where = LOBBY  # the whole server's: where everyone is
            if event.action in REMOVED:
                self._gone[fold(event.name)] = event.action
                if len(self._gone) > SEEN_MODERATIONS:
                    del self._gone[next(iter(self._gone))]
        self.system(where, said, event.ts or None)

    def room_details(self, event: RoomDetails, *, asked: str = "") -> None:
        """What a room is now (its topic, whether it is private, its owner and ops); a change
        told (`change`, or `asked`: the answer to our own request for it) makes a line."""
        view = self.view(event.room)
        if view is None or view.private:
            return
        change, by = event.change or asked, event.by or (self.me if asked else "")
        new_topic = event.topic != view.topic
        new_private = event.private != view.invite_only
        view.topic, view.topic_by, view.topic_ts = event.topic, event.topic_by, event.topic_ts
        view.invite_only, view.owner, view.ops = event.private, event.owner, event.ops
        by = by or event.topic_by or _("the server")
        if change == "topic" and new_topic:
            if event.topic:
                said = _("{by} set the topic of {room}: {topic}")
            else:
                said = _("{by} cleared the topic of {room}")
            self.system(event.room, said.format(by=by, room=view.name, topic=event.topic))
        elif change == "private" and new_private:
            if event.private:
                said = _("{room} is private now: only those invited can join it ({by})")
            else:
                said = _("{room} is open to everyone now ({by})")
            self.system(event.room, said.format(by=by, room=view.name))

    def mod_log(self, where: str, room: str, page: ModLogPage) -> None:
        """A page of the moderation log (of `room`, "" for the whole server's), newest last,
        as lines of conversation `where`."""
        if room:
            title = _("moderation log of {room}:").format(room=room)
            empty = _("nothing in the moderation log of {room}").format(room=room)
        else:
            title, empty = _("moderation log of the server:"), _("nothing in the moderation log")
        if not page.entries:
            self.system(where, empty)
            return
        self.system(where, title)
        if page.more:
            self.system(where, _("(older entries are not shown)"))
        now = self.clock()
        for entry in reversed(page.entries):  # (newest first on the wire)
            said = self._moderation_line(entry, now)
            shown = when(entry.ts, now, self.tz, self.calendar)
            # TRANSLATORS: a line of the moderation log: when, then what was done
            self.system(where, _("{time} — {what}").format(time=shown, what=said))

    def _moderation_line(self, step: Moderated | ModEntry, now: int, *, you: bool = False) -> str:
        """The sentence of a moderation step, told live or read from the log."""
        return moderation_line(
            step.action, step.name, step.by, step.room, reason=step.reason, until=step.until,
            ts=step.ts, you=you, now=now, tz=self.tz, calendar=self.calendar,
        )  # fmt: skip

    def refused(
        self, code: str, message: str, *, room: str = "", name: str = "", action: str = ""
    ) -> None:
        """The server refused a request (`action`) about `room` and `name`: say why (see
        `refusal`)."""
        self.error(refusal(code, message, room=room, name=name, action=action))
