"""The seam under the server: a `Broker` for messages and a `Peers` for other servers.

After centrifuge's `broker.go`: the server hands a broker what it must number and
store, and the broker calls the server back (`BrokerHandler`) with what is stored,
in order, whichever broker it is. A local broker numbers and stores in this
process (SQLite or memory); the Redis broker numbers and stores in Redis and
hears the other servers' messages too. The server has one path for each request
and never asks which broker it has. Typing takes the same way (`typing`, back
through `on_typing` on every server concerned), relayed once and never stored.

`Peers` is the same seam for presence and name ownership: the users on the
other servers (who is away among them too), and the tokens and registrations they
make. A single server has
no peers (`LocalPeers`): it is a cluster of one.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from tuichat.chat import ChatError
from tuichat.chat.rules import ModEvent, Rule
from tuichat.chat.search import SearchQuery
from tuichat.protocol import Message, ModEntry, PrivateMessage, RoomEvent, SearchHit, Update


class BrokerUnavailable(Exception):
    """The broker cannot number or store right now (its store is down); the request may be
    tried again."""


class BrokerRefused(Exception):
    """The broker cannot serve with these settings (the sentence says why and what to do)."""


@dataclass(frozen=True, slots=True)
class RoomPosition:
    """Where a room's history stands: its epoch and its last stored seq."""

    epoch: int
    seq: int


@dataclass(slots=True)  # not frozen: made for every message, and a frozen init costs more
class Post:
    """A room message to number and store, or (`verb`) a verb on message `target`.

    A message with a `target` is a reply to it. A verb takes a seq of its own like a
    message: `react` (`text` the reaction, `on` whether it is given or taken back), `edit`
    (`text` the new text), `delete` (`text` "").
    """

    room: str
    sender: str
    sender_key: str
    text: str
    action: bool
    client_id: str
    ts: int
    verb: str = ""
    target: int = 0
    on: bool | None = None


def room_event(post: Post, seq: int, ts: int) -> RoomEvent:
    """What `post` is once numbered `seq` (at `ts`): a `Message`, or an `Update` (a verb)."""
    if post.verb:
        return Update(post.room, seq, post.sender, ts, post.verb, post.target, post.text, post.on)
    return Message(post.room, seq, post.sender, post.text, ts, post.action, post.target or None)


@dataclass(frozen=True, slots=True)
class Held:
    """A stored message as a verb on it needs it (`Broker.held`)."""

    message: Message
    """As it is now: its text edited or gone, its reactions."""
    sender_key: str
    """Its author's user key."""
    reacted: frozenset[str] = frozenset()
    """The reactions the asking user has given it."""


Sees = Callable[[str], bool]
"""Whether the searching user may read a room (`#room`)."""


@dataclass(slots=True)  # not frozen: made for every message, and a frozen init costs more
class PrivatePost:
    """A private message to number and store.

    `refusal` is why it may not be stored (the target is not online, the text is too long):
    a retry is still answered, since it is recognised first; anything else gets the refusal.
    `hidden`: the target ignores the sender; it is stored for the sender only (their history,
    their devices) and the target never gets it, by any way.
    """

    sender: str
    sender_key: str
    target: str
    target_key: str
    text: str
    action: bool
    client_id: str
    ts: int
    refusal: ChatError | None = None
    hidden: bool = False


@dataclass(slots=True)  # not frozen: made for every message, and a frozen init costs more
class Published:
    """What became of a `Post`: the stored message, and whether it is new.

    A retry (same sender and client id as a stored message) is not new: it
    carries the original message's seq and ts.
    """

    message: RoomEvent
    epoch: int
    new: bool


@dataclass(slots=True)  # not frozen: made for every message, and a frozen init costs more
class PublishedPrivate:
    """What became of a `PrivatePost`: the stored message, and whether it is new."""

    message: PrivateMessage
    new: bool


@dataclass(frozen=True, slots=True)
class ReadMarker:
    """How far one user has read one conversation.

    `conversation` is a room's name (`#room`) or `@` and the other party's name key (see
    `name_key`); `label` is what clients are shown (`#room`, `@Name`). `epoch` is the room's
    epoch the seq belongs to (0 for a private conversation, whose seq is a pid).
    """

    conversation: str
    label: str
    epoch: int
    seq: int


MAX_MARKERS = 1000
"""Read markers kept per user (the most recently moved)."""


@dataclass(frozen=True, slots=True)
class RoomClaim:
    """The room a `join` means (`Broker.claim_room`): its name, and whether it holds the
    comparison key of its name (a room whose look-alike had the key first does not)."""

    room: str
    keyed: bool = True
    new: bool = False
    """The claim made the room: nobody joined it or wrote in it before, anywhere."""


ClaimDone = Callable[["RoomClaim | Exception"], None]
ModerationDone = Callable[[Exception | None], None]

PublishDone = Callable[["Published | Exception"], None]
PrivateDone = Callable[["PublishedPrivate | Exception"], None]


# --- presence across servers -------------------------------------------------


@dataclass(eq=False)
class RemoteUser:
    """Someone connected to another server."""

    name: str
    key: str
    server: str
    rooms: dict[str, None] = field(default_factory=dict)
    """The rooms they are in, in the order they joined."""
    heard: int = 0
    """When news of them last came (a count of notices), so older news cannot undo newer."""
    devices: int = 1
    """Their sessions on that server."""
    away: str | None = None
    """Why they are away ("" for no reason), as that server has it; None: not away."""
    away_since: int = 0
    """When `away` changed (see `User.away_since`): the latest such change is the person's."""


@dataclass(frozen=True, slots=True)
class RemoteJoined:
    """A user on another server joined `room`.

    `changed`: they were in it on no other server before (news to the room; a user with
    sessions on several servers joins each of them).
    """

    name: str
    room: str
    key: str = ""
    changed: bool = True
    echo: bool = False
    """The other server only followed one of the user's sessions elsewhere (act on it no more)."""


@dataclass(frozen=True, slots=True)
class RemoteLeft:
    """A user on another server left `room` (`reason` as in `left`).

    `changed`: they are in it on no other server now.
    """

    name: str
    room: str
    reason: str
    key: str = ""
    changed: bool = True
    echo: bool = False
    """As in `RemoteJoined`."""


PresenceEvent = RemoteJoined | RemoteLeft


@dataclass(frozen=True, slots=True)
class RemoteAway:
    """The away state of a user on another server changed: `reason` ("" for none), or None
    (back), as of `since` (see `User.away_since`). `changed`: what this server showed of them
    (as a user of other servers only) is different now."""

    name: str
    key: str
    reason: str | None
    since: int
    changed: bool = True


@dataclass(frozen=True, slots=True)
class TypingEvent:
    """`name` (user key `key`) is typing: in room `room`, or (`room` "") in the private
    conversation with the user of `target_key`. Relayed once, never stored."""

    name: str
    key: str
    room: str = ""
    target_key: str = ""


@dataclass(frozen=True, slots=True)
class LocalUser:
    """A user of this server as the other servers see it."""

    key: str
    name: str
    rooms: tuple[str, ...]
    devices: int = 1
    """Their sessions on this server."""
    away: str | None = None
    """Why they are away ("" for no reason), or None."""
    away_since: int = 0
    """When `away` changed (see `User.away_since`)."""


class BrokerHandler(Protocol):
    """What the server does with what brokers and peers hand back."""

    def on_message(self, message: RoomEvent, epoch: int) -> None:
        """A room message (or a verb on one) is stored: deliver it to this server's members
        (calls come in seq order per room, without gaps)."""

    def on_private(self, message: PrivateMessage, sender_key: str, target_key: str) -> None:
        """A new private message is stored: deliver it to the target's sessions here and to
        the sender's (their other devices). `target_key` "": a hidden message (see
        `PrivatePost.hidden`), for the sender's sessions only."""

    def on_rules(self, rules: list[Rule]) -> None:
        """Every rule stored (see `tuichat.chat.rules`), as the broker starts, and again after
        it may have missed changes (a lost link to its store): the server starts over from
        them."""

    def on_moderation(self, event: ModEvent) -> None:
        """A moderation step is stored (`Broker.moderate`): take its rules and carry it out
        here (on every server, the one it came from included, in the order stored)."""

    def on_read(self, user_key: str, marker: ReadMarker) -> None:
        """A user's read marker moved on another server (as it is stored now)."""

    def on_room_reset(self, room: str, position: RoomPosition) -> None:
        """A room's history was lost or renumbered: its members must reload it."""

    def on_presence(self, event: PresenceEvent) -> None:
        """Someone on another server joined or left a room this server may have members in."""

    def on_away(self, event: RemoteAway) -> None:
        """Someone on another server is away now, or back (the person's, on every server)."""

    def on_typing(self, event: TypingEvent) -> None:
        """Someone is typing (relayed by `Broker.typing`, from this server or another): their
        room's members here, or the other party's sessions here, hear it."""

    def on_kick(self, user_key: str, reason: str) -> None:
        """Drop the user's sessions here: `replaced` (a keyless name's owner came back on
        another server) or `signed_out` (one of their devices signed the others out)."""

    def on_tokens(self, tokens: Mapping[str, str]) -> None:
        """Resume tokens (hashed), by user key, as the other servers have made them."""

    def on_identities(self, identities: Mapping[str, str]) -> None:
        """Registrations (key hashes), by name key, as the other servers have made them."""

    def known_owners(self) -> tuple[Mapping[str, str], Mapping[str, str]]:
        """The resume tokens (user key → hash) and registrations (name key → hash) known here."""

    def is_here(self, user_key: str) -> bool:
        """Whether the user is online on this server."""

    def local_users(self) -> Iterable[LocalUser]:
        """Everyone on this server (for peers that must say so again after an outage)."""


class Broker(ABC):
    """Numbers, de-duplicates, stores and hands back room and private messages."""

    @abstractmethod
    async def start(self, handler: BrokerHandler) -> None:
        """Connect to the store; from now on stored messages go to `handler`."""

    @abstractmethod
    async def stop(self) -> None:
        """Make everything accepted durable (its callbacks run), then let go of the store."""

    @abstractmethod
    def describe(self) -> str:
        """Where the history lives, for the log."""

    @abstractmethod
    def position(self, room: str) -> RoomPosition:
        """The room's position as this server knows it now (a new room gets its epoch here)."""

    @abstractmethod
    def follow(self, rooms: Iterable[str], ready: Callable[[Exception | None], None]) -> None:
        """This server has members in `rooms` now: hear their messages, and call `ready(None)`
        once `position()` of each is current (`ready(error)` if that cannot be done now)."""

    @abstractmethod
    def unfollow(self, room: str) -> None:
        """This server has no members in `room` any more."""

    @abstractmethod
    def publish(self, post: Post, done: PublishDone) -> None:
        """Number, store and hand back a room message.

        `done` gets the `Published` result (or an exception) first; then, for a new message,
        every server following the room gets `on_message` for it.
        """

    @abstractmethod
    def publish_private(self, post: PrivatePost, done: PrivateDone) -> None:
        """Number and store a private message (a retry is recognised by sender and client id).

        `done` gets the result once it is stored (a retry: the original message), or a
        `ChatError` (no such user) or another exception; then a new message goes to
        `on_private` on every server, this one included (right after `done`, in the same
        call). A target that is offline gets it from the store when it comes back.
        """

    @abstractmethod
    async def page(self, room: str, before: int, limit: int) -> tuple[RoomPosition, list[Message]]:
        """The room's position (seq 0: no history) and up to `limit` stored messages with
        seq < `before` (0: the newest), oldest first, each as it is now (edited, deleted, its
        reactions, a reply's `quote`); the verbs' seqs are left out."""

    @abstractmethod
    async def stored_position(self, room: str) -> RoomPosition:
        """The room's position as stored (seq 0: it has no history), wherever it is followed."""

    @abstractmethod
    async def replay(self, room: str, after: int, upto: int) -> list[RoomEvent]:
        """The stored messages and verbs of `room` with `after` < seq <= `upto`, oldest first
        (every seq once; messages as in `page`, verbs as they were made but for the text of
        an edit of a message deleted since, which is "")."""

    @abstractmethod
    async def held(self, room: str, seq: int, user_key: str) -> Held | None:
        """Message `seq` of `room` as stored now, for a verb by user `user_key` on it (None:
        there is no such message; a verb's seq is none)."""

    @abstractmethod
    async def search(self, query: SearchQuery, sees: Sees) -> tuple[list[SearchHit], str]:
        """Up to `query.limit` stored messages holding every word of the query, newest first,
        of the rooms the user `sees` and of their own private conversations (none they could
        not read), and where to go on from ("": nothing older)."""

    @abstractmethod
    async def privates(self, user_key: str, after: int, limit: int) -> list[PrivateMessage]:
        """Private messages to or from `user_key` with pid > `after`, oldest first."""

    @abstractmethod
    def mark_read(
        self, user_key: str, marker: ReadMarker, done: Callable[[ReadMarker | Exception], None]
    ) -> None:
        """Store a user's read marker, and tell the other servers (their `on_read`).

        A marker only moves forward within an epoch; one of another epoch replaces it. `done`
        gets the marker as stored (the later of the two), or an exception if it cannot be
        stored. The server that asked tells its own sessions; `on_read` is for the others.
        """

    @abstractmethod
    async def read_markers(self, user_key: str) -> list[ReadMarker]:
        """The user's read markers, the most recently moved first (at most `MAX_MARKERS`)."""

    @abstractmethod
    async def unread_privates(self, user_key: str, limit: int) -> list[PrivateMessage]:
        """The newest `limit` private messages sent to `user_key` by someone else after the
        user's read marker of that conversation, oldest first."""

    @abstractmethod
    async def conversation(
        self, user_key: str, other_key: str, before: int, limit: int
    ) -> list[PrivateMessage]:
        """The newest `limit` private messages between the two users with pid < `before`
        (0: the newest), oldest first."""

    @abstractmethod
    def last_private_id(self) -> int:
        """The highest private-message pid given out so far (as far as this server knows)."""

    @abstractmethod
    def claim_room(self, room: str, key: str, done: ClaimDone) -> None:
        """Find the room a `join` of `room` (canonical, with comparison key `key`) means, for
        every server, durably: `room` itself if it is a known room (one joined or stored
        before, anywhere), else the room that holds `key`, else `room`, which holds `key` from
        now on. A known room that does not hold `key` takes it if nobody has it.

        `done` gets a `RoomClaim` once the answer is durable (a new claim is stored), or an
        exception if the store cannot say or store it now (nothing is claimed then). Claims
        of one key are answered in the order they were made.
        """

    def unkeyed_rooms(self) -> frozenset[str]:
        """The known rooms that do not hold their comparison key (a room whose name looked
        like an older one's when the keys were made, see `claim_room`), once started."""
        return frozenset()

    @abstractmethod
    def moderate(self, event: ModEvent, done: ModerationDone) -> None:
        """Store the event's rules (a rule with a value of None is removed) and, if it is
        `logged`, an entry of the moderation log, at once and durably.

        `done(None)` once stored; then every server gets `on_moderation(event)` (this one
        right after `done`, in the same call). `done(error)` if it cannot be stored now
        (nothing of it is).
        """

    @abstractmethod
    async def mod_log(self, room: str | None, before: int, limit: int) -> list[ModEntry]:
        """The newest `limit` entries of the moderation log with id < `before` (0: the newest),
        of one room (`""`: the server's own) or of all (`None`), newest first."""

    @abstractmethod
    def typing(self, event: TypingEvent) -> None:
        """Relay `event` to every server that may hold its recipients, this one included (their
        `on_typing`): cheap and ephemeral, nothing stored; what cannot go out at once is
        dropped."""


class Peers(ABC):
    """The other servers of the chat: their users, and the names and tokens they make."""

    @abstractmethod
    def find(self, name: str) -> RemoteUser | None:
        """The user on another server whose name is `name` or looks like it."""

    @abstractmethod
    def names(self, room: str) -> list[str]:
        """Users on other servers in `room` (all of them for `""`), each once."""

    @abstractmethod
    def keys(self, room: str) -> Iterable[str]:
        """The user keys of the users on other servers in `room`, each once."""

    @abstractmethod
    def in_room(self, user_key: str, room: str) -> bool:
        """Whether the user is in `room` on another server."""

    @abstractmethod
    def rooms_of(self, user_key: str) -> list[str]:
        """The rooms the user is in on the other servers."""

    @abstractmethod
    def devices(self, user_key: str) -> int:
        """The user's sessions on the other servers."""

    @abstractmethod
    def servers_of(self, user_key: str) -> list[RemoteUser]:
        """The user as each other server that has sessions of theirs holds them."""

    @abstractmethod
    def counts(self) -> dict[str, int]:
        """Members on other servers, by room."""

    @abstractmethod
    def count(self, room: str) -> int:
        """Members of `room` on other servers."""

    @abstractmethod
    def logged_in(self, user: LocalUser) -> None:
        """A user came online here (in the rooms given)."""

    @abstractmethod
    def joined(self, user: LocalUser, room: str, *, echo: bool = False) -> None:
        """A user here joined `room` (`echo`: following their session on another server)."""

    @abstractmethod
    def parted(self, user: LocalUser, room: str, reason: str, *, echo: bool = False) -> None:
        """A user here left `room` (`echo`: following their session on another server)."""

    @abstractmethod
    def logged_out(self, user_key: str, name: str, reason: str) -> None:
        """A user here went offline."""

    @abstractmethod
    def sessions_changed(self, user: LocalUser) -> None:
        """A user here opened or closed a session (`user.devices` is how many are left)."""

    @abstractmethod
    def away_changed(self, user: LocalUser) -> None:
        """A user here is away now, or back (`user.away`, as of `user.away_since`): said to the
        other servers, and kept with this server's presence for those that start later."""

    @abstractmethod
    def away(self, user_key: str) -> tuple[str | None, int]:
        """The user's away state as the other servers have it: the reason ("" for none) or None,
        and since when (0: never set, or not on another server)."""

    @abstractmethod
    def away_users(self) -> dict[str, tuple[str, str]]:
        """The users on other servers who are away: user key → (name, reason)."""

    @abstractmethod
    def kick(self, user: RemoteUser, reason: str = "replaced") -> None:
        """Ask the server holding `user` to drop their sessions there (`reason` as in
        `on_kick`)."""

    @abstractmethod
    async def start(self, handler: BrokerHandler) -> None:
        """Load the stored tokens and registrations (through `handler`) and hear the others."""

    @abstractmethod
    async def stop(self) -> None:
        """Withdraw this server's users and stop listening."""

    @abstractmethod
    def save_token(self, user_key: str, token_hash: str) -> None:
        """Remember the resume token of a user's current session, for every server."""

    @abstractmethod
    def claim(
        self, name_keys: Iterable[str], name: str, owner: str, now: int,
        done: Callable[[bool | Exception], None], *, replacing: str | None = None,
    ) -> None:  # fmt: skip
        """Register `name` (both of its keys) to `owner`, atomically for every server.

        The keys must be free, or (with `replacing`) owned by `replacing`. `done(True)`
        once it is durably stored (no crash after it can lose it); `done(False)` if another
        owner got it first; `done(exception)` if the store refused it or could not write it
        (nothing is registered then).
        """

    @abstractmethod
    async def server_id(self) -> str:
        """The chat's identity, the same on every server of it (what a `hello` signs)."""
