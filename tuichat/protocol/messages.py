"""The messages of the wire protocol, as small frozen dataclasses.

Each class has a `TYPE`, the value of the `type` key on the wire; every field is
a key of the same name. Fields with a default may be omitted by the sender.
`ref` is chosen by the client on a request and copied by the server into the one
reply (or `error`) that answers it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

PROTOCOL_VERSION = 2


@dataclass(frozen=True, slots=True)
class RoomInfo:
    """One row of a room list: a room and how many members it has."""

    room: str
    members: int


@dataclass(frozen=True, slots=True)
class Position:
    """Where a reader is in a room: the room's `epoch` and the last `seq` seen."""

    room: str
    epoch: int
    seq: int


@dataclass(frozen=True, slots=True)
class Reaction:
    """The reactions of one text under a message: how many gave it and who (the first
    `MAX_REACTION_NAMES`, in the order they reacted)."""

    text: str
    count: int
    names: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Quote:
    """A one-line preview of the message a reply answers (its text "" once deleted)."""

    sender: str
    text: str
    deleted: bool | None = None


@dataclass(frozen=True, slots=True)
class SearchHit:
    """One message found by `search`: in a room (`room` "#name", `seq`), or in a private
    conversation (`room` "@name" of the other party, `seq` the message's pid)."""

    room: str
    seq: int
    sender: str
    text: str
    ts: int
    action: bool = False


# --- client to server -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Hello:
    """First message of a client: who it is and which protocol it speaks."""

    TYPE: ClassVar[str] = "hello"
    name: str
    version: int = PROTOCOL_VERSION
    client: str = ""
    positions: tuple[Position, ...] | None = None  # resuming: where we were in each room
    private_after: int | None = None  # resuming: the last private message `pid` we saw
    token: str | None = None  # resuming: the `token` of our previous `welcome`
    public_key: str | None = None  # the key that owns `name` (registers it on first use)
    signature: str | None = None  # public_key's signature of the challenge (see auth.py)
    legacy_proof: str | None = None  # proof of the version-1 secret of `name`, when asked
    ref: int | None = None


@dataclass(frozen=True, slots=True)
class Send:
    """Post `text` to a room the client is a member of."""

    TYPE: ClassVar[str] = "send"
    room: str
    text: str
    action: bool = False
    id: str = ""
    reply: int | None = None  # the seq of the message this one answers
    ref: int | None = None


@dataclass(frozen=True, slots=True)
class React:
    """Give the reaction `text` to message `seq` of `room`, or take it back if given."""

    TYPE: ClassVar[str] = "react"
    room: str
    seq: int
    text: str
    id: str = ""
    ref: int | None = None


@dataclass(frozen=True, slots=True)
class Edit:
    """Replace the text of one's own message `seq` of `room`."""

    TYPE: ClassVar[str] = "edit"
    room: str
    seq: int
    text: str
    id: str = ""
    ref: int | None = None


@dataclass(frozen=True, slots=True)
class Delete:
    """Delete message `seq` of `room` (one's own; a room's owner or ops and the server's
    admins, anyone's)."""

    TYPE: ClassVar[str] = "delete"
    room: str
    seq: int
    id: str = ""
    ref: int | None = None


@dataclass(frozen=True, slots=True)
class Search:
    """Find stored messages holding every word of `words` (each word as a prefix), newest
    first: in one room (`room` "#name") or private conversation (`room` "@name") or all
    the user may read (`room` ""), from one sender (`sender`) or anyone; `before` is the
    `next` of the page before."""

    TYPE: ClassVar[str] = "search"
    words: str
    room: str = ""
    sender: str = ""
    before: str = ""
    limit: int = 20
    ref: int | None = None


@dataclass(frozen=True, slots=True)
class Private:
    """Send `text` to one online user only."""

    TYPE: ClassVar[str] = "private"
    to: str
    text: str
    action: bool = False
    id: str = ""
    ref: int | None = None


@dataclass(frozen=True, slots=True)
class Join:
    """Join a room, creating it if it does not exist."""

    TYPE: ClassVar[str] = "join"
    room: str
    ref: int | None = None


@dataclass(frozen=True, slots=True)
class Part:
    """Leave a room."""

    TYPE: ClassVar[str] = "part"
    room: str
    ref: int | None = None


@dataclass(frozen=True, slots=True)
class ListRooms:
    """Ask for the rooms people are in, by name, with their member counts: a page of up to
    `limit` (0: the server's page size) after the room `after`."""

    TYPE: ClassVar[str] = "list_rooms"
    after: str = ""
    limit: int = 0
    ref: int | None = None


@dataclass(frozen=True, slots=True)
class History:
    """Ask for up to `limit` messages of a room before `seq` `before` (0: the newest)."""

    TYPE: ClassVar[str] = "history"
    room: str
    before: int = 0
    limit: int = 50
    ref: int | None = None


@dataclass(frozen=True, slots=True)
class PrivateHistory:
    """Ask for up to `limit` private messages with `name` before pid `before` (0: the newest)."""

    TYPE: ClassVar[str] = "private_history"
    name: str
    before: int = 0
    limit: int = 50
    ref: int | None = None


@dataclass(frozen=True, slots=True)
class MarkRead:
    """The user has read a conversation (`#room`, or `@name` for a private one) up to `seq`
    (a room's seq, or a private message's pid); every other device of the user hears it."""

    TYPE: ClassVar[str] = "mark_read"
    room: str
    seq: int
    epoch: int = 0
    ref: int | None = None


@dataclass(frozen=True, slots=True)
class SetAway:
    """The user is away (`away`, with an optional `reason`), or back (`away` false): all of
    their sessions, until they go offline."""

    TYPE: ClassVar[str] = "set_away"
    away: bool = True
    reason: str = ""
    ref: int | None = None


@dataclass(frozen=True, slots=True)
class Typing:
    """The user is typing in `room` (`#room`, or `@name` for a private conversation): relayed
    to the others there at most every few seconds, never stored, never answered."""

    TYPE: ClassVar[str] = "typing"
    room: str
    ref: int | None = None


@dataclass(frozen=True, slots=True)
class SignOut:
    """Sign out every other session (device) of this user."""

    TYPE: ClassVar[str] = "sign_out"
    ref: int | None = None


@dataclass(frozen=True, slots=True)
class Who:
    """Ask who is online in `room`, or on the whole server when `room` is empty."""

    TYPE: ClassVar[str] = "who"
    room: str = ""
    after: str = ""  # a page of the names after this one, in the list's order ("": from the start)
    limit: int = 0  # names at most (0: the server's `member_list` limit)
    ref: int | None = None


# --- both directions -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Moderate:
    """Act on someone in a room, as its owner, one of its ops or a server admin.

    `action` is one of `MODERATE_ACTIONS`; `name` is the person (for `ban`/`unban` in the
    lobby, by an admin, also an address prefix such as `203.0.113.0/24`: server-wide).
    `duration` (seconds, 0: until undone) applies to `ban` and `mute`."""

    TYPE: ClassVar[str] = "moderate"
    room: str
    action: str
    name: str
    reason: str = ""
    duration: int = 0
    ref: int | None = None


@dataclass(frozen=True, slots=True)
class SetTopic:
    """Set a room's topic ("" clears it), as its owner or one of its ops."""

    TYPE: ClassVar[str] = "set_topic"
    room: str
    topic: str
    ref: int | None = None


@dataclass(frozen=True, slots=True)
class SetPrivate:
    """Make a room invite-only (`private` true) or open again, as its owner or one of its ops."""

    TYPE: ClassVar[str] = "set_private"
    room: str
    private: bool
    ref: int | None = None


@dataclass(frozen=True, slots=True)
class Ignore:
    """Ignore `name` (`ignore` false: stop): their private messages are never delivered to us,
    and our clients hide their room messages. Kept for the user, on every device."""

    TYPE: ClassVar[str] = "ignore"
    name: str
    ignore: bool = True
    ref: int | None = None


@dataclass(frozen=True, slots=True)
class ModLog:
    """Read the moderation log (admins: all of it, or one `room`; a room's owner and ops: that
    room's), newest first, entries with `id` < `before` (0: the newest)."""

    TYPE: ClassVar[str] = "mod_log"
    room: str = ""
    before: int = 0
    limit: int = 50
    ref: int | None = None


@dataclass(frozen=True, slots=True)
class Ping:
    """Ask the peer for a `pong` carrying the same `data`."""

    TYPE: ClassVar[str] = "ping"
    data: int = 0
    ref: int | None = None


@dataclass(frozen=True, slots=True)
class Pong:
    """The answer to a `ping`."""

    TYPE: ClassVar[str] = "pong"
    data: int = 0
    ref: int | None = None


@dataclass(frozen=True, slots=True)
class Bye:
    """The sender is closing the connection (a client quitting, a server stopping)."""

    TYPE: ClassVar[str] = "bye"
    reason: str = "quit"
    message: str = ""
    ref: int | None = None


# --- server to client -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Challenge:
    """The server's first frame: what a `hello` that owns its name must sign."""

    TYPE: ClassVar[str] = "challenge"
    nonce: str
    server_id: str


@dataclass(frozen=True, slots=True)
class Welcome:
    """The server accepted a `hello`: the session is open."""

    TYPE: ClassVar[str] = "welcome"
    version: int
    server: str
    name: str
    rooms: tuple[str, ...]
    users: tuple[str, ...]
    motd: str = ""
    limits: dict[str, int] | None = None
    positions: tuple[Position, ...] = ()
    token: str = ""
    private_seq: int = 0
    devices: int = 1  # the user's sessions now, this one included
    read: tuple[Position, ...] = ()  # the user's read markers (`@name` rooms: epoch 0, a pid)
    away: tuple[str, ...] = ()  # those of `users` who are away...
    away_reasons: tuple[str, ...] = ()  # ...and why, in the same order ("" for no reason)
    ignored: tuple[str, ...] = ()  # the names the user ignores
    admin: bool = False  # the user is one of the server's admins
    members: int = 0  # users online (0: as many as `users`); more than `users` names: a first page
    ref: int | None = None


@dataclass(frozen=True, slots=True)
class Message:
    """A message posted to a room, delivered to every member (the sender too)."""

    TYPE: ClassVar[str] = "message"
    room: str
    seq: int
    sender: str
    text: str
    ts: int
    action: bool = False
    reply: int | None = None  # the seq of the message this one answers
    quote: Quote | None = None  # (history pages and replays) a preview of that message
    edited: bool | None = None  # (history pages and replays) its text was edited
    deleted: bool | None = None  # (history pages and replays) deleted: its text is ""
    reactions: tuple[Reaction, ...] | None = None  # (history pages and replays) under it


@dataclass(frozen=True, slots=True)
class Update:
    """A verb on message `target` of `room`, in the room's order (it has a `seq` of its
    own): `react` (the reaction `text` given by `sender`, or with `on` false taken back),
    `edit` (its new `text`), `delete` (its text is gone)."""

    TYPE: ClassVar[str] = "update"
    room: str
    seq: int
    sender: str
    ts: int
    verb: str
    target: int
    text: str = ""
    on: bool | None = None


RoomEvent = Message | Update
"""What takes a seq in a room: a message, or a verb on one."""


@dataclass(frozen=True, slots=True)
class Ack:
    """The server accepted a `send`; `seq` is the message's place in the room."""

    TYPE: ClassVar[str] = "ack"
    room: str
    seq: int
    ts: int
    id: str = ""
    ref: int | None = None


@dataclass(frozen=True, slots=True)
class PrivateMessage:
    """A private message; the target gets it, the sender gets a copy with its `ref`."""

    TYPE: ClassVar[str] = "private_message"
    sender: str
    to: str
    text: str
    ts: int
    action: bool = False
    id: str = ""
    pid: int = 0
    ref: int | None = None


@dataclass(frozen=True, slots=True)
class Joined:
    """`name` joined `room` (sent to every member, the newcomer included)."""

    TYPE: ClassVar[str] = "joined"
    room: str
    name: str
    ts: int


@dataclass(frozen=True, slots=True)
class Presence:
    """Presence changes of `room` written together (a crowd coming or going): who is in it
    now that was not (`joined`) and who is no longer (`left`, with `reasons`); in a room of
    more than the `member_list` limit, no names: only how many are in it (`members`)."""

    TYPE: ClassVar[str] = "presence"
    room: str
    ts: int
    members: int
    joined: tuple[str, ...] = ()
    left: tuple[str, ...] = ()
    reasons: tuple[str, ...] = ()  # why each of `left` left, in the same order


@dataclass(frozen=True, slots=True)
class Left:
    """`name` left `room`; `reason` is `part`, `quit`, `disconnect`, `timeout` or `slow`."""

    TYPE: ClassVar[str] = "left"
    room: str
    name: str
    ts: int
    reason: str = "part"


@dataclass(frozen=True, slots=True)
class RoomState:
    """The reply to `join`: the room and who is in it."""

    TYPE: ClassVar[str] = "room_state"
    room: str
    users: tuple[str, ...]
    seq: int = 0
    epoch: int = 0
    read: int = 0  # the user's read marker in the room (0: nothing read, or another epoch)
    away: tuple[str, ...] = ()  # those of `users` who are away...
    away_reasons: tuple[str, ...] = ()  # ...and why, in the same order ("" for no reason)
    topic: str = ""  # as in `room_info`
    topic_by: str = ""
    topic_ts: int = 0
    private: bool = False
    owner: str = ""
    ops: tuple[str, ...] = ()
    members: int = 0  # members (0: as many as `users`); more than `users` names: a first page
    ref: int | None = None


@dataclass(frozen=True, slots=True)
class HistoryPage:
    """The reply to `history`: messages oldest first; `complete` at the start of the room."""

    TYPE: ClassVar[str] = "history_page"
    room: str
    epoch: int
    messages: tuple[Message, ...]
    complete: bool = False
    ref: int | None = None


@dataclass(frozen=True, slots=True)
class PrivatePage:
    """The reply to `private_history`: the messages with `name`, oldest first; `complete`
    at the start of the conversation."""

    TYPE: ClassVar[str] = "private_page"
    name: str
    messages: tuple[PrivateMessage, ...]
    complete: bool = False
    ref: int | None = None


@dataclass(frozen=True, slots=True)
class ReadMarker:
    """Another device of the user read `room` (`#room` or `@name`) up to `seq`; with a `ref`,
    the reply to a `mark_read`: the marker as stored."""

    TYPE: ClassVar[str] = "read_marker"
    room: str
    seq: int
    epoch: int = 0
    ref: int | None = None  # the reply to a `mark_read` that had a ref: the marker as stored


@dataclass(frozen=True, slots=True)
class SignedOut:
    """The reply to `sign_out`: how many other sessions were signed out on this server (those
    on other servers of the chat are signed out too)."""

    TYPE: ClassVar[str] = "signed_out"
    devices: int = 0
    ref: int | None = None


@dataclass(frozen=True, slots=True)
class RoomReset:
    """The server cannot replay what the client missed in `room`: reload it from `seq`."""

    TYPE: ClassVar[str] = "room_reset"
    room: str
    epoch: int
    seq: int


@dataclass(frozen=True, slots=True)
class Parted:
    """The reply to `part`."""

    TYPE: ClassVar[str] = "parted"
    room: str
    ref: int | None = None


@dataclass(frozen=True, slots=True)
class RoomList:
    """The reply to `list_rooms`."""

    TYPE: ClassVar[str] = "room_list"
    rooms: tuple[RoomInfo, ...]
    more: bool = False  # there are rooms after the last one: ask again with `after` set to it
    ref: int | None = None


@dataclass(frozen=True, slots=True)
class UserList:
    """The reply to `who`: online users of `room` (of the server if `room` is empty)."""

    TYPE: ClassVar[str] = "user_list"
    room: str
    users: tuple[str, ...]
    away: tuple[str, ...] = ()  # those of `users` who are away...
    away_reasons: tuple[str, ...] = ()  # ...and why, in the same order ("" for no reason)
    members: int = 0  # members in all (0: as many as `users`)
    more: bool = False  # names follow after the last of `users` (ask with `after`)
    ref: int | None = None


@dataclass(frozen=True, slots=True)
class Away:
    """`name` is away (with `reason`, maybe "") or back (`away` false); with a `ref`, the reply
    to the user's own `set_away`. Sent to everyone online when it changes."""

    TYPE: ClassVar[str] = "away"
    name: str
    away: bool
    reason: str = ""
    ref: int | None = None


@dataclass(frozen=True, slots=True)
class IsTyping:
    """`name` is typing in `room` (`#room`, or `@name` for a private conversation with them):
    shown for a few seconds unless renewed, and until their message arrives."""

    TYPE: ClassVar[str] = "is_typing"
    name: str
    room: str


@dataclass(frozen=True, slots=True)
class Notice:
    """A line of text from the server itself, for one room or (room empty) for the user."""

    TYPE: ClassVar[str] = "notice"
    text: str
    room: str = ""


@dataclass(frozen=True, slots=True)
class Moderated:
    """Someone acted on `name` in `room` ("": server-wide): `action` (see `MODERATE_ACTIONS`)
    by `by`, with `reason`; `until` (ms since the epoch, 0: until undone) for `ban` and `mute`.
    Sent to the room's members and to the person acted on; with a `ref`, the reply to
    `moderate`."""

    TYPE: ClassVar[str] = "moderated"
    room: str
    action: str
    name: str
    by: str
    reason: str = ""
    until: int = 0
    ts: int = 0
    ref: int | None = None


@dataclass(frozen=True, slots=True)
class RoomDetails:
    """What a room is: its topic (and who set it, when), whether it is private, its owner and
    ops. Sent after `welcome` for each room of the user that has any of it, to the members when
    it changes (`change`: `topic`, `private` or `ops`; `by`: who changed it), and as the reply to
    `set_topic` and `set_private`."""

    TYPE: ClassVar[str] = "room_info"
    room: str
    topic: str = ""
    topic_by: str = ""
    topic_ts: int = 0
    private: bool = False
    owner: str = ""
    ops: tuple[str, ...] = ()
    change: str = ""
    by: str = ""
    ref: int | None = None


@dataclass(frozen=True, slots=True)
class Ignored:
    """The names the user ignores: the reply to `ignore`, and to their other sessions when the
    list changes."""

    TYPE: ClassVar[str] = "ignored"
    names: tuple[str, ...]
    ref: int | None = None


@dataclass(frozen=True, slots=True)
class ModEntry:
    """One line of the moderation log (`id`: its place, for paging)."""

    id: int
    ts: int
    room: str
    action: str
    name: str
    by: str
    reason: str = ""
    until: int = 0


@dataclass(frozen=True, slots=True)
class ModLogPage:
    """The reply to `mod_log`: entries newest first; `more`: older ones are left."""

    TYPE: ClassVar[str] = "mod_log_page"
    entries: tuple[ModEntry, ...]
    more: bool = False
    ref: int | None = None


@dataclass(frozen=True, slots=True)
class SearchResults:
    """The reply to `search`: hits newest first; `next` (if not "") asks for older ones."""

    TYPE: ClassVar[str] = "search_results"
    hits: tuple[SearchHit, ...]
    next: str = ""
    ref: int | None = None


@dataclass(frozen=True, slots=True)
class Error:
    """A request failed, or (with `fatal`) the server is about to close the connection."""

    TYPE: ClassVar[str] = "error"
    code: str
    message: str
    fatal: bool = False
    ref: int | None = None


ClientMessage = (
    Hello
    | Send
    | React
    | Edit
    | Delete
    | Search
    | Private
    | Join
    | Part
    | ListRooms
    | Who
    | History
    | PrivateHistory
    | MarkRead
    | SignOut
    | SetAway
    | Typing
    | Moderate
    | SetTopic
    | SetPrivate
    | Ignore
    | ModLog
    | Ping
    | Pong
    | Bye
)
ServerMessage = (
    Challenge
    | Welcome
    | Message
    | Update
    | SearchResults
    | Ack
    | PrivateMessage
    | Joined
    | Left
    | Presence
    | RoomState
    | HistoryPage
    | PrivatePage
    | ReadMarker
    | SignedOut
    | RoomReset
    | Parted
    | RoomList
    | UserList
    | Away
    | IsTyping
    | Notice
    | Moderated
    | RoomDetails
    | Ignored
    | ModLogPage
    | Error
    | Ping
    | Pong
    | Bye
)
AnyMessage = ClientMessage | ServerMessage

CLIENT_MESSAGE_TYPES: tuple[type[ClientMessage], ...] = (
    Hello, Send, Private, Join, Part, ListRooms, Who, History, PrivateHistory, MarkRead, SignOut,
    SetAway, Typing, Moderate, SetTopic, SetPrivate, Ignore, ModLog, React, Edit, Delete, Search,
    Ping, Pong, Bye,
)  # fmt: skip
SERVER_MESSAGE_TYPES: tuple[type[ServerMessage], ...] = (
    Challenge, Welcome, Message, Ack, PrivateMessage, Joined, Left, RoomState, HistoryPage,
    PrivatePage, ReadMarker, SignedOut, RoomReset, Parted, RoomList, UserList, Away, IsTyping,
    Notice, Moderated, RoomDetails, Ignored, ModLogPage, Update, SearchResults, Presence, Error,
    Ping, Pong, Bye,
)  # fmt: skip
MODERATE_ACTIONS = ("op", "deop", "invite", "uninvite", "kick", "ban", "unban", "mute", "unmute")
"""What a `moderate` may ask for."""
VERBS = ("react", "edit", "delete")
"""The verbs of an `update`."""
MAX_REACTION_NAMES = 20
"""Names a `Reaction` carries at most (its `count` says how many gave it)."""

__all__ = [
    "CLIENT_MESSAGE_TYPES",
    "MAX_REACTION_NAMES",
    "MODERATE_ACTIONS",
    "PROTOCOL_VERSION",
    "SERVER_MESSAGE_TYPES",
    "VERBS",
    "Ack",
    "AnyMessage",
    "Away",
    "Bye",
    "Challenge",
    "ClientMessage",
    "Delete",
    "Edit",
    "Error",
    "Hello",
    "History",
    "HistoryPage",
    "Ignore",
    "Ignored",
    "IsTyping",
    "Join",
    "Joined",
    "Left",
    "ListRooms",
    "MarkRead",
    "Message",
    "ModEntry",
    "ModLog",
    "ModLogPage",
    "Moderate",
    "Moderated",
    "Notice",
    "Part",
    "Parted",
    "Ping",
    "Pong",
    "Position",
    "Presence",
    "Private",
    "PrivateHistory",
    "PrivateMessage",
    "PrivatePage",
    "Quote",
    "React",
    "Reaction",
    "ReadMarker",
    "RoomDetails",
    "RoomEvent",
    "RoomInfo",
    "RoomList",
    "RoomReset",
    "RoomState",
    "Search",
    "SearchHit",
    "SearchResults",
    "Send",
    "ServerMessage",
    "SetAway",
    "SetPrivate",
    "SetTopic",
    "SignOut",
    "SignedOut",
    "Typing",
    "Update",
    "UserList",
    "Welcome",
    "Who",
]
