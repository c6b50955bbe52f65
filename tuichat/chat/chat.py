"""The chat itself as plain objects: users, rooms, membership, presence and sequence numbers.

Nothing here does I/O or reads a clock. Every operation returns the messages to
deliver and to whom (`Delivery`); the server encodes each message once and
writes it to every recipient.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, TypeVar

from tuichat.chat.errors import ChatError
from tuichat.chat.names import check_name, check_room, check_text, name_key
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
class ChatLimits:
    """Per-user limits the chat enforces."""

    max_text_bytes: int = 4096
    max_rooms_per_user: int = 32


@dataclass(eq=False)
class User(Generic[H]):
    """A user who is online, with the rooms they are in."""

    name: str
    handle: H
    rooms: dict[str, Room[H]] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return name_key(self.name)


@dataclass(eq=False)
class Room(Generic[H]):
    """A room, its members, and the sequence number of its last message."""

    name: str
    members: dict[str, User[H]] = field(default_factory=dict)
    seq: int = 0

    def handles(self) -> tuple[H, ...]:
        """Return the handles of every member."""
        return tuple(user.handle for user in self.members.values())

    def names(self) -> tuple[str, ...]:
        """Return the members' names, sorted case-insensitively."""
        return tuple(sorted((u.name for u in self.members.values()), key=name_key))


@dataclass(frozen=True, slots=True)
class Delivery(Generic[H]):
    """One message and everyone who must receive it."""

    recipients: tuple[H, ...]
    message: ServerMessage


class Chat(Generic[H]):
    """Everyone online, every room, and the rules between them."""

    def __init__(self, limits: ChatLimits | None = None) -> None:
        self.limits = limits or ChatLimits()
        self.users: dict[str, User[H]] = {}
        self.rooms: dict[str, Room[H]] = {LOBBY: Room(LOBBY)}

    # --- sessions --------------------------------------------------------

    def login(self, name: str, handle: H, now: int) -> tuple[User[H], list[Delivery[H]]]:
        """Bring `name` online in the lobby; raise `ChatError` if the name is invalid or taken."""
        check_name(name)
        if name_key(name) in self.users:
            raise ChatError(ErrorCode.NAME_TAKEN, f"the name {name!r} is taken; pick another")
        user = User(name, handle)
        self.users[user.key] = user
        _, deliveries = self.join(user, LOBBY, now)
        return user, deliveries

    def logout(self, user: User[H], reason: str, now: int) -> list[Delivery[H]]:
        """Take `user` offline; every room they were in hears that they left."""
        if self.users.get(user.key) is not user:
            return []
        del self.users[user.key]
        deliveries = []
        for room in list(user.rooms.values()):
            self._remove_member(room, user)
            if room.members:
                deliveries.append(Delivery(room.handles(), Left(room.name, user.name, now, reason)))
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
            room = self.rooms[key] = Room(key)
        room.members[user.key] = user
        user.rooms[key] = room
        return room, [Delivery(room.handles(), Joined(key, user.name, now))]

    def part(self, user: User[H], room_name: str, now: int) -> tuple[str, list[Delivery[H]]]:
        """Remove `user` from a room; the members, the leaver too, hear it."""
        room = self._membership(user, room_name)
        if room.name == LOBBY:
            raise ChatError(ErrorCode.CANNOT_LEAVE_LOBBY, f"everyone stays in {LOBBY}")
        recipients = room.handles()
        self._remove_member(room, user)
        del user.rooms[room.name]
        return room.name, [Delivery(recipients, Left(room.name, user.name, now, "part"))]

    def room_list(self) -> tuple[RoomInfo, ...]:
        """Return every room with its member count, sorted by name."""
        return tuple(
            RoomInfo(room.name, len(room.members))
            for room in sorted(self.rooms.values(), key=_by_name)
        )

    def who(self, room_name: str = "") -> tuple[str, ...]:
        """Return who is online in a room, or on the whole server for `""`."""
        if not room_name:
            return tuple(sorted((u.name for u in self.users.values()), key=name_key))
        room = self.rooms.get(check_room(room_name))
        if room is None:
            raise ChatError(ErrorCode.NO_SUCH_ROOM, f"there is no room {room_name}")
        return room.names()

    # --- messages --------------------------------------------------------

    def post(
        self, user: User[H], room_name: str, text: str, action: bool, now: int
    ) -> tuple[Message, list[Delivery[H]]]:
        """Give a message the room's next sequence number and address it to every member."""
        room = self._membership(user, room_name)
        check_text(text, self.limits.max_text_bytes)
        room.seq += 1
        message = Message(room.name, room.seq, user.name, text, now, action)
        return message, [Delivery(room.handles(), message)]

    def private(
        self, user: User[H], to: str, text: str, action: bool, now: int
    ) -> tuple[PrivateMessage, User[H]]:
        """Return the private message for the target and the target; raise if they are offline."""
        target = self.users.get(name_key(to))
        if target is None:
            raise ChatError(ErrorCode.NO_SUCH_USER, f"{to!r} is not online")
        check_text(text, self.limits.max_text_bytes)
        return PrivateMessage(user.name, target.name, text, now, action), target

    # --- internals -------------------------------------------------------

    def _membership(self, user: User[H], room_name: str) -> Room[H]:
        key = check_room(room_name)
        room = user.rooms.get(key)
        if room is None:
            raise ChatError(ErrorCode.NOT_IN_ROOM, f"you are not in {key}; join it first")
        return room

    def _remove_member(self, room: Room[H], user: User[H]) -> None:
        room.members.pop(user.key, None)
        if not room.members and room.name != LOBBY:
            del self.rooms[room.name]


def _by_name(room: Room[H]) -> str:
    return room.name
