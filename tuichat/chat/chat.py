"""The chat itself as plain objects: users, rooms, membership and presence.

Nothing here does I/O or reads a clock. Every operation returns the messages to
deliver and to whom (`Delivery`); the server encodes each message once and
writes it to every recipient. Numbering and storing messages is the broker's
job (`tuichat.server.broker`); a room here only knows how far it has been
delivered.
"""

from __future__ import annotations

import bisect
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from tuichat.chat.errors import ChatError
from tuichat.chat.names import (
    MAX_AWAY_BYTES,
    check_name,
    check_reason,
    check_room,
    check_text,
    name_key,
    name_keys,
    room_key,
    sort_key,
)
from tuichat.protocol.errors import ErrorCode
from tuichat.protocol.messages import (
    Joined,
    Left,
    RoomEvent,
    RoomInfo,
    ServerMessage,
)

H = TypeVar("H")
"""Whatever the server uses to reach a user's connection."""

LOBBY = "#lobby"


@dataclass(frozen=True, slots=True)
class ChatLimits:
    """Per-user limits the chat enforces."""

    max_text_bytes: int = 4096
    max_rooms_per_user: int = 32
    max_text_lines: int = 100
    max_devices: int = 8
    """Sessions one user may have open at once (their devices)."""
    recent_ids_per_sender: int = 1024
    """Client ids of a sender's sends remembered per room (and for private messages): a retry
    of any of them is answered with the original, whoever else sends meanwhile."""
    max_away_bytes: int = MAX_AWAY_BYTES
    """The longest away reason (UTF-8 bytes, once cleaned)."""


@dataclass(eq=False, slots=True)
class User(Generic[H]):
    """A user who is online, with their sessions (one per device) and the rooms they are in.

    Rooms belong to the user, not to a session: every session of the user is in each.
    """

    name: str
    sessions: list[H]
    key: str = ""
    """The name's unique key (see `name_key`)."""
    rooms: dict[str, Room[H]] = field(default_factory=dict)
    away: str | None = None
    """Why the user is away ("" for no reason given), or None: they are not."""
    away_since: int = 0
    """When `away` last changed (ns since the Unix epoch, on the clock of the server it changed
    on; 0: never): of two versions of it, the later one holds."""

    def __post_init__(self) -> None:
        if not self.key:
            self.key = name_key(self.name)

    def add_session(self, handle: H) -> None:
        """Add a session (the limit is `Chat.check_session`'s)."""
        self.sessions.append(handle)
        self._changed()

    def replace_session(self, old: H, new: H) -> None:
        """Put `new` where the session `old` was (a device's new connection)."""
        self.sessions[self.sessions.index(old)] = new
        self._changed()

    def remove_session(self, handle: H) -> None:
        """Remove a session, if it is one of the user's."""
        with contextlib.suppress(ValueError):
            self.sessions.remove(handle)
            self._changed()

    def _changed(self) -> None:
        for room in self.rooms.values():
            room.changed()


@dataclass(eq=False, slots=True)
class Room(Generic[H]):
    """A room with members here, and its position: its epoch and the last seq delivered."""

    name: str
    epoch: int
    members: dict[str, User[H]] = field(default_factory=dict)
    delivered: int = 0
    key: str = ""
    """The room's comparison key (`room_key`) once it is known to hold it (see
    `Chat.hold_key`): a `join` of a look-alike name comes here. "" until then."""

    _handles: tuple[H, ...] | None = field(default=None, repr=False)
    """Every member's every session (`handles`), made again after a change."""
    _sort_keys: list[tuple[str, str]] = field(default_factory=list, repr=False)
    _names: list[str] = field(default_factory=list, repr=False)
    """The members' names in `sort_key` order (kept sorted as members come and go)."""

    def add(self, user: User[H]) -> None:
        """Make `user` a member."""
        self.members[user.key] = user
        self._handles = None
        position = bisect.bisect(self._sort_keys, (sort_key(user.name), user.name))
        self._sort_keys.insert(position, (sort_key(user.name), user.name))
        self._names.insert(position, user.name)

    def remove(self, user: User[H]) -> None:
        """Make `user` no longer a member."""
        if self.members.pop(user.key, None) is None:
            return
        self._handles = None
        position = bisect.bisect_left(self._sort_keys, (sort_key(user.name), user.name))
        del self._sort_keys[position], self._names[position]

    def handles(self) -> tuple[H, ...]:
        """Return the handles of every member's every session (kept between changes: a
        message to the room costs one step per session, whatever the members' devices)."""
        handles = self._handles
        if handles is None:
            members = self.members.values()
            handles = self._handles = tuple(h for user in members for h in user.sessions)
        return handles

    def changed(self) -> None:
        """A member's sessions changed (`User` says so)."""
        self._handles = None

    def names(self) -> tuple[str, ...]:
        """Return the members' names, sorted case-insensitively."""
        return tuple(self._names)

    def page(self, after: str = "", limit: int | None = None) -> list[str]:
        """The members' names that sort after `after` (all for ""), at most `limit`."""
        start = bisect.bisect(self._sort_keys, (sort_key(after), after)) if after else 0
        return self._names[start : None if limit is None else start + limit]


@dataclass(frozen=True, slots=True)
class Delivery(Generic[H]):
    """One message for every member of a room (as they are when it is delivered).

    `leaver` also gets it (every session of theirs): the member a `left` announcement is
    about, who is no longer in the room.
    """

    room: Room[H]
    message: ServerMessage
    leaver: User[H] | None = None

    @property
    def recipients(self) -> tuple[H, ...]:
        """Everyone who receives the message, were it delivered now."""
        extra = () if self.leaver is None else tuple(self.leaver.sessions)
        return self.room.handles() + extra


class Chat(Generic[H]):
    """Everyone online, every room with members, and the rules between them.

    `position(name)` says where a room that gets its first member stands: its
    epoch and the last seq stored (the broker knows).
    """

    def __init__(
        self,
        limits: ChatLimits | None = None,
        *,
        position: Callable[[str], tuple[int, int]] = lambda room: (1, 0),
    ) -> None:
        self.limits = limits or ChatLimits()
        self.users: dict[str, User[H]] = {}
        self.position = position
        self.rooms: dict[str, Room[H]] = {}
        self._open(LOBBY)
        self._taken: dict[str, User[H]] = {}
        """Both keys of every online name (see `name_keys`)."""
        self.away: dict[str, User[H]] = {}
        """The users online here who are away, by user key."""
        self._room_keys: dict[str, Room[H]] = {}
        """The rooms with members here that hold their comparison key (`room_key`), by it."""
        self.unkeyed: frozenset[str] = frozenset()
        """Rooms (anywhere) that do not hold their comparison key: a look-alike had it first
        (the broker says which). A join of one of these names is for that room itself."""

    # --- sessions --------------------------------------------------------

    def login(self, name: str, handle: H, now: int) -> tuple[User[H], list[Delivery[H]]]:
        """Bring `name` online in the lobby; raise `ChatError` if the name is invalid or taken."""
        name = check_name(name)
        keys = name_keys(name)
        if any(key in self._taken for key in keys):
            raise ChatError(ErrorCode.NAME_TAKEN, f"the name {name!r} is taken; pick another")
        user = User(name, [handle], keys[0])
        self.users[user.key] = user
        for key in keys:
            self._taken[key] = user
        _, deliveries = self.join(user, LOBBY, now)
        return user, deliveries

    def add_session(self, user: User[H], handle: H) -> None:
        """Open another session (device) of an online user; raise `ChatError` past the limit."""
        self.check_session(user.sessions)
        user.add_session(handle)

    def check_session(self, sessions: list[H], elsewhere: int = 0) -> None:
        """Raise `ChatError` if a user with `sessions` here (and `elsewhere` on other servers)
        may not open one more."""
        most = self.limits.max_devices
        if len(sessions) + elsewhere >= most:
            raise ChatError(
                ErrorCode.TOO_MANY_DEVICES,
                f"you are signed in on {most} devices already; sign one of them out first",
            )

    def remove_session(self, user: User[H], handle: H) -> bool:
        """Close one session of a user; return whether it was their last (they go offline
        with `logout` then)."""
        user.remove_session(handle)
        return not user.sessions

    def find(self, name: str) -> User[H] | None:
        """Return the online user whose name is `name` or looks like it."""
        for key in name_keys(name):
            user = self._taken.get(key)
            if user is not None:
                return user
        return None

    def logout(self, user: User[H], reason: str, now: int) -> list[Delivery[H]]:
        """Take `user` offline; every room they were in hears that they left."""
        if self.users.get(user.key) is not user:
            return []
        del self.users[user.key]
        self.away.pop(user.key, None)
        for key in name_keys(user.name):
            if self._taken.get(key) is user:
                del self._taken[key]
        deliveries = []
        for room in list(user.rooms.values()):
            self._remove_member(room, user)
            if room.members:
                deliveries.append(Delivery(room, Left(room.name, user.name, now, reason)))
        user.rooms.clear()
        return deliveries

    # --- away ------------------------------------------------------------

    def check_away(self, reason: str) -> str:
        """Return an away reason as it will be kept; raise `ChatError` if it is too long."""
        return check_reason(reason, self.limits.max_away_bytes)

    def set_away(self, user: User[H], reason: str | None, since: int) -> bool:
        """Make `user` away with `reason` (None: back) as of `since`, unless a later change is
        known already; return whether what others see changed (a new reason counts)."""
        if since <= user.away_since:
            return False
        changed = reason != user.away
        user.away, user.away_since = reason, since
        if reason is None:
            self.away.pop(user.key, None)
        elif self.users.get(user.key) is user:
            self.away[user.key] = user
        return changed

    # --- rooms -----------------------------------------------------------

    def join(self, user: User[H], room_name: str, now: int) -> tuple[Room[H], list[Delivery[H]]]:
        """Add `user` to a room (created if new); every member, the newcomer too, hears it."""
        key = self.check_join(user, room_name)
        room = self.rooms.get(key) or self._open(key)
        room.add(user)
        user.rooms[room.name] = room  # (the room's own string: not one more per member)
        return room, [Delivery(room, Joined(key, user.name, now))]

    def live_room(self, room_name: str) -> str | None:
        """Return the room with members here that a `join` of `room_name` means: the room of
        that name, or the one holding its comparison key (unless the name is a room of its own
        that does not hold it); None if neither has members here. Raise `invalid_room`."""
        name = check_room(room_name)
        if name in self.rooms:
            return name
        holder = self._room_keys.get(room_key(name))
        if holder is None or name in self.unkeyed:
            return None
        return holder.name

    def hold_key(self, room_name: str) -> None:
        """The room `room_name` (with members here) holds its comparison key: joins of names
        that look like it come to it (see `live_room`)."""
        room = self.rooms.get(room_name)
        if room is not None and not room.key:
            key = room_key(room.name)
            if key not in self._room_keys:
                room.key = key
                self._room_keys[key] = room

    def check_join(self, user: User[H], room_name: str) -> str:
        """Return the room `user` may join; raise `ChatError` if they may not."""
        key = check_room(room_name)
        if key in user.rooms:
            raise ChatError(ErrorCode.ALREADY_IN_ROOM, f"you are already in {key}")
        if len(user.rooms) >= self.limits.max_rooms_per_user:
            raise ChatError(
                ErrorCode.TOO_MANY_ROOMS,
                f"you can be in at most {self.limits.max_rooms_per_user} rooms",
            )
        return key

    def part(
        self, user: User[H], room_name: str, now: int, reason: str = "part"
    ) -> tuple[str, list[Delivery[H]]]:
        """Remove `user` from a room (named as they are in it, or by a look-alike of it); the
        members, the leaver too, hear it (`reason`: `part`, or `kick`/`ban` when a moderator
        took them out)."""
        room = self._membership(user, room_name)
        if room.name == LOBBY:
            raise ChatError(ErrorCode.CANNOT_LEAVE_LOBBY, f"everyone stays in {LOBBY}")
        self._remove_member(room, user)
        del user.rooms[room.name]
        return room.name, [Delivery(room, Left(room.name, user.name, now, reason), user)]

    def room_list(self) -> tuple[RoomInfo, ...]:
        """Return every room someone is in (and the lobby) with its member count, by name."""
        return tuple(
            RoomInfo(room.name, len(room.members))
            for room in sorted(self.rooms.values(), key=_by_name)
            if room.members or room.name == LOBBY
        )

    def who(self, room_name: str = "") -> tuple[str, ...]:
        """Return who is online in a room, or on the whole server for `""`."""
        if not room_name:
            return tuple(sorted((u.name for u in self.users.values()), key=sort_key))
        return self.room(room_name).names()

    def room(self, room_name: str) -> Room[H]:
        """Return a room with members here (or the lobby); raise `no_such_room` if none."""
        room = self.rooms.get(check_room(room_name))
        if room is None:
            raise no_such_room(room_name)
        return room

    # --- messages --------------------------------------------------------

    def check_post(self, user: User[H], room_name: str, text: str) -> tuple[Room[H], str]:
        """Return the room `user` may post `text` to, and the text as it will be stored."""
        return self._membership(user, room_name), self.clean_text(text)

    def clean_text(self, text: str) -> str:
        """Return `text` as it will be stored; raise `ChatError` if it is too long."""
        return check_text(text, self.limits.max_text_bytes, self.limits.max_text_lines)

    def delivered(self, message: RoomEvent) -> Delivery[H] | None:
        """Note that `message` is stored; return its delivery to the room's members here."""
        room = self.rooms.get(message.room)
        if room is None:
            return None
        room.delivered = max(room.delivered, message.seq)
        return Delivery(room, message)

    # --- internals -------------------------------------------------------

    def _membership(self, user: User[H], room_name: str) -> Room[H]:
        room = self.membership(user, room_name)
        if room is None:
            name = check_room(room_name)
            raise ChatError(ErrorCode.NOT_IN_ROOM, f"you are not in {name}; join it first")
        return room

    def membership(self, user: User[H], room_name: str) -> Room[H] | None:
        """Return the room of `user` that `room_name` names: by its name, or by a name that
        looks like it (None: they are in neither); raise `invalid_room`."""
        name = check_room(room_name)
        room = user.rooms.get(name)
        if room is None and name not in self.unkeyed and self._room_keys:
            holder = self._room_keys.get(room_key(name))
            if holder is not None and user.rooms.get(holder.name) is holder:
                return holder
        return room

    def _open(self, name: str) -> Room[H]:
        epoch, seq = self.position(name)
        room = self.rooms[name] = Room(name, epoch, delivered=seq)
        return room

    def _remove_member(self, room: Room[H], user: User[H]) -> None:
        room.remove(user)
        if not room.members and room.name != LOBBY:
            del self.rooms[room.name]  # the broker keeps its position
            if room.key and self._room_keys.get(room.key) is room:
                del self._room_keys[room.key]


def no_such_room(room_name: str) -> ChatError:
    """The refusal of a request about a room that does not exist."""
    return ChatError(ErrorCode.NO_SUCH_ROOM, f"there is no room {room_name}")


def _by_name(room: Room[H]) -> str:
    return room.name
