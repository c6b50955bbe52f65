"""The chat itself as plain objects: users, rooms, membership, presence and sequence numbers.

Nothing here does I/O or reads a clock. Every operation returns the messages to
deliver and to whom (`Delivery`); the server encodes each message once and
writes it to every recipient.
"""

from __future__ import annotations

import bisect
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from tuichat.chat.errors import ChatError
from tuichat.chat.names import check_name, check_room, check_text, name_key, name_keys, sort_key
from tuichat.protocol.errors import ErrorCode
from tuichat.protocol.messages import (
    Joined,
    Left,
    Message,
    PrivateMessage,
    RoomInfo,
    ServerMessage,
)

H = TypeVar("H")
"""Whatever the server uses to reach a user's connection."""

LOBBY = "#lobby"


@dataclass(frozen=True, slots=True)
class RoomRecord:
    """A room as stored: its epoch, its last sequence number, its recent client ids."""

    epoch: int
    seq: int
    recent_ids: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)
    """(sender key, client id) → (seq, ts), for the newest messages that had an id."""


@dataclass(frozen=True, slots=True)
class ChatLimits:
    """Per-user limits the chat enforces."""

    max_text_bytes: int = 4096
    max_rooms_per_user: int = 32
    max_text_lines: int = 100
    recent_ids_per_room: int = 4096


@dataclass(eq=False)
class User(Generic[H]):
    """A user who is online, with the rooms they are in."""

    name: str
    handle: H
    key: str = ""
    """The name's unique key (see `name_key`)."""
    rooms: dict[str, Room[H]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.key:
            self.key = name_key(self.name)


@dataclass(eq=False)
class Room(Generic[H]):
    """A room, its members, and its position: epoch, last seq given out, last seq delivered.

    A message gets its `seq` when posted and is delivered (acknowledged and fanned
    out) once durable; `delivered` trails `seq` by the messages still being stored.
    """

    name: str
    epoch: int
    members: dict[str, User[H]] = field(default_factory=dict)
    seq: int = 0
    delivered: int = 0
    recent_ids: OrderedDict[tuple[str, str], tuple[int, int]] = field(default_factory=OrderedDict)
    """(sender key, client id) → (seq, ts) of recent messages, to recognise retried sends."""

    _sort_keys: list[tuple[str, str]] = field(default_factory=list, repr=False)
    _names: list[str] = field(default_factory=list, repr=False)
    """The members' names in `sort_key` order (kept sorted as members come and go)."""

    def add(self, user: User[H]) -> None:
        """Make `user` a member."""
        self.members[user.key] = user
        position = bisect.bisect(self._sort_keys, (sort_key(user.name), user.name))
        self._sort_keys.insert(position, (sort_key(user.name), user.name))
        self._names.insert(position, user.name)

    def remove(self, user: User[H]) -> None:
        """Make `user` no longer a member."""
        if self.members.pop(user.key, None) is None:
            return
        position = bisect.bisect_left(self._sort_keys, (sort_key(user.name), user.name))
        del self._sort_keys[position], self._names[position]

    def handles(self) -> tuple[H, ...]:
        """Return the handles of every member."""
        return tuple(user.handle for user in self.members.values())

    def names(self) -> tuple[str, ...]:
        """Return the members' names, sorted case-insensitively."""
        return tuple(self._names)


@dataclass(frozen=True, slots=True)
class Delivery(Generic[H]):
    """One message for every member of a room (as they are when it is delivered).

    `leaver` also gets it: the member a `left` announcement is about, who is no
    longer in the room.
    """

    room: Room[H]
    message: ServerMessage
    leaver: H | None = None

    @property
    def recipients(self) -> tuple[H, ...]:
        """Everyone who receives the message, were it delivered now."""
        extra = () if self.leaver is None else (self.leaver,)
        return self.room.handles() + extra


class Chat(Generic[H]):
    """Everyone online, every room, and the rules between them.

    `rooms` are the positions loaded from storage; `new_epoch(name)` makes the epoch
    of a room that has no history yet.
    """

    def __init__(
        self,
        limits: ChatLimits | None = None,
        *,
        rooms: Mapping[str, RoomRecord] | None = None,
        last_private_id: int = 0,
        new_epoch: Callable[[str], int] = lambda room: 1,
    ) -> None:
        self.limits = limits or ChatLimits()
        self.users: dict[str, User[H]] = {}
        self.new_epoch = new_epoch
        self.rooms: dict[str, Room[H]] = {}
        for name, record in (rooms or {}).items():
            room: Room[H] = Room(name, record.epoch, seq=record.seq, delivered=record.seq)
            room.recent_ids.update(record.recent_ids)
            self.rooms[name] = room
        if LOBBY not in self.rooms:
            self.rooms[LOBBY] = Room(LOBBY, new_epoch(LOBBY))
        self.last_private_id = last_private_id
        self._recent_privates: OrderedDict[tuple[str, str], PrivateMessage] = OrderedDict()
        self._taken: dict[str, User[H]] = {}
        """Both keys of every online name (see `name_keys`)."""

    # --- sessions --------------------------------------------------------

    def login(self, name: str, handle: H, now: int) -> tuple[User[H], list[Delivery[H]]]:
        """Bring `name` online in the lobby; raise `ChatError` if the name is invalid or taken."""
        name = check_name(name)
        keys = name_keys(name)
        if any(key in self._taken for key in keys):
            raise ChatError(ErrorCode.NAME_TAKEN, f"the name {name!r} is taken; pick another")
        user = User(name, handle, keys[0])
        self.users[user.key] = user
        for key in keys:
            self._taken[key] = user
        _, deliveries = self.join(user, LOBBY, now)
        return user, deliveries

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

    # --- rooms -----------------------------------------------------------

    def join(self, user: User[H], room_name: str, now: int) -> tuple[Room[H], list[Delivery[H]]]:
        """Add `user` to a room (created if new); every member, the newcomer too, hears it."""
        key = check_room(room_name)
        if key in user.rooms:
            raise ChatError(ErrorCode.ALREADY_IN_ROOM, f"you are already in {key}")
        if len(user.rooms) >= self.limits.max_rooms_per_user:
            raise ChatError(
                ErrorCode.TOO_MANY_ROOMS,
                f"you can be in at most {self.limits.max_rooms_per_user} rooms",
            )
        room = self.rooms.get(key)
        if room is None:
            room = self.rooms[key] = Room(key, self.new_epoch(key))
        room.add(user)
        user.rooms[key] = room
        return room, [Delivery(room, Joined(key, user.name, now))]

    def part(self, user: User[H], room_name: str, now: int) -> tuple[str, list[Delivery[H]]]:
        """Remove `user` from a room; the members, the leaver too, hear it."""
        room = self._membership(user, room_name)
        if room.name == LOBBY:
            raise ChatError(ErrorCode.CANNOT_LEAVE_LOBBY, f"everyone stays in {LOBBY}")
        self._remove_member(room, user)
        del user.rooms[room.name]
        return room.name, [Delivery(room, Left(room.name, user.name, now, "part"), user.handle)]

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
        """Return an existing room (with members or history); raise `no_such_room` if none."""
        room = self.rooms.get(check_room(room_name))
        if room is None or not (room.members or room.seq or room.name == LOBBY):
            raise ChatError(ErrorCode.NO_SUCH_ROOM, f"there is no room {room_name}")
        return room

    # --- messages --------------------------------------------------------

    def post(
        self, user: User[H], room_name: str, text: str, action: bool, client_id: str, now: int
    ) -> tuple[Message, bool]:
        """Give a message the room's next sequence number; return it and whether it is new.

        A retried send (same sender and client id as a recent message) is not new:
        it gets the original message's position back.
        """
        room, text = self.check_post(user, room_name, text)
        if client_id:
            earlier = room.recent_ids.get((user.key, client_id))
            if earlier is not None:
                seq, ts = earlier
                return Message(room.name, seq, user.name, text, ts, action), False
        room.seq += 1
        message = Message(room.name, room.seq, user.name, text, now, action)
        if client_id:
            room.recent_ids[(user.key, client_id)] = (room.seq, now)
            if len(room.recent_ids) > self.limits.recent_ids_per_room:
                room.recent_ids.popitem(last=False)
        return message, True

    def check_post(self, user: User[H], room_name: str, text: str) -> tuple[Room[H], str]:
        """Return the room `user` may post `text` to, and the text as it will be stored."""
        return self._membership(user, room_name), self.clean_text(text)

    def clean_text(self, text: str) -> str:
        """Return `text` as it will be stored; raise `ChatError` if it is too long."""
        return check_text(text, self.limits.max_text_bytes, self.limits.max_text_lines)

    def delivered(self, message: Message) -> Delivery[H]:
        """Note that `message` is durable; return its delivery to the room's members now."""
        room = self.rooms[message.room]
        room.delivered = message.seq
        return Delivery(room, message)

    def private(
        self, user: User[H], to: str, text: str, action: bool, client_id: str, now: int
    ) -> tuple[PrivateMessage, User[H] | None]:
        """Number a private message; return it and its online target.

        A retried send (same sender and client id as a recent private message)
        returns the original message and no target: it is not delivered again.
        Raises `no_such_user` if the target is offline.
        """
        if client_id:
            earlier = self._recent_privates.get((user.key, client_id))
            if earlier is not None:
                return earlier, None
        target = self.find(to)
        if target is None:
            raise ChatError(ErrorCode.NO_SUCH_USER, f"{to!r} is not online")
        text = self.clean_text(text)
        self.last_private_id += 1
        pid = self.last_private_id
        message = PrivateMessage(user.name, target.name, text, now, action, pid=pid)
        if client_id:
            self._recent_privates[(user.key, client_id)] = message
            if len(self._recent_privates) > self.limits.recent_ids_per_room:
                self._recent_privates.popitem(last=False)
        return message, target

    # --- internals -------------------------------------------------------

    def _membership(self, user: User[H], room_name: str) -> Room[H]:
        key = check_room(room_name)
        room = user.rooms.get(key)
        if room is None:
            raise ChatError(ErrorCode.NOT_IN_ROOM, f"you are not in {key}; join it first")
        return room

    def _remove_member(self, room: Room[H], user: User[H]) -> None:
        room.remove(user)
        if not room.members and not room.seq and room.name != LOBBY:
            del self.rooms[room.name]  # nothing to remember: joining and leaving costs nothing


def _by_name(room: Room[H]) -> str:
    return room.name
