"""What a client keeps to resume a session: a plain object beside the socket code (no I/O).

`Resume` is told what arrives — the `welcome`, rooms joined and left, resets, messages and
private messages — and says what the next `hello` carries to pick up where the last
connection stopped (PROTOCOL.md §8): the position delivered in each room, the last private
message seen and the welcome's token. It also says which messages are new: a resumed room
replays from its position, so anything at or below it was delivered already, and a private
message seen once (by its `pid`) is not delivered again.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from tuichat.protocol import Position, RoomEvent, Welcome

SEEN_PRIVATES = 4096
"""Private message ids remembered, to deliver each once across reconnections."""


@dataclass(frozen=True, slots=True)
class ResumeFields:
    """What a `hello` carries to resume (all None on a first sign-in)."""

    positions: tuple[Position, ...] | None = None
    private_after: int | None = None
    token: str | None = None


class Resume:
    """The positions, last private message and token of a session (see the module)."""

    def __init__(self) -> None:
        self.positions: dict[str, Position] = {}
        """The last position delivered in each room we are in."""
        self.welcomed = False
        """A welcome came: the next hello resumes."""
        self.private_after = 0
        """The newest private message id seen."""
        self.token: str | None = None
        self._private_seen: deque[int] = deque(maxlen=SEEN_PRIVATES)

    def hello(self) -> ResumeFields:
        """What the next `hello` carries."""
        if not self.welcomed:
            return ResumeFields()
        return ResumeFields(tuple(self.positions.values()), self.private_after, self.token)

    def welcome(self, welcome: Welcome) -> None:
        """A `welcome`, first or resumed: its token, and the rooms as the server has them
        (those left on another device meanwhile are gone; a room of another epoch starts
        at the welcome's position)."""
        if not self.welcomed:
            self.private_after = welcome.private_seq
        self.welcomed = True
        self.token = welcome.token or None
        for room in [r for r in self.positions if r not in welcome.rooms]:
            del self.positions[room]
        for position in welcome.positions:
            known = self.positions.get(position.room)
            if known is None or known.epoch != position.epoch:
                self.positions[position.room] = position

    def room(self, room: str, epoch: int, seq: int) -> None:
        """We are in `room`, which is at `seq` of `epoch` (a `room_state`, a reset)."""
        self.positions[room] = Position(room, epoch, seq)

    def left(self, room: str) -> None:
        """We are not in `room` any more."""
        self.positions.pop(room, None)

    def message(self, message: RoomEvent) -> bool:
        """Whether `message` is new in its room (not one delivered already); if so, the room's
        position moves to it."""
        position = self.positions.get(message.room)
        if position is None:
            return True
        if message.seq <= position.seq:
            return False
        self.positions[message.room] = Position(message.room, position.epoch, message.seq)
        return True

    def private(self, pid: int) -> bool:
        """Whether the private message `pid` is new (0: one without an id, always new)."""
        if not pid:
            return True
        if pid in self._private_seen:
            return False
        self._private_seen.append(pid)
        self.private_after = max(self.private_after, pid)
        return True
