"""Room fan-out: what a room hears in one event-loop iteration, written once to each member.

A chat server's work is fan-out: one message in, a copy out to every member.
Writing each message to each member costs a system call per delivery. Instead,
the frames a room gets during one pass of the event loop are collected, joined
into one `bytes` at the end of the pass, and that same object is written to every
member: one write per member per pass, however many messages the pass carried.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tuichat.chat import Room

if TYPE_CHECKING:
    from tuichat.server.session import Session


@dataclass(slots=True)
class _Batch:
    frames: list[bytes] = field(default_factory=list)
    joined_at: dict[Session, int] = field(default_factory=dict)
    """Members who joined after the batch began, and the first frame that is theirs."""


class Fanout:
    """Collects frames per room and writes them out at the end of the loop's pass."""

    def __init__(self) -> None:
        self._batches: dict[Room[Session], _Batch] = {}
        self.flushes = 0
        """Batches written so far (each is one write per member)."""

    def add(self, room: Room[Session], frame: bytes) -> None:
        """Queue `frame` for every member of `room` (as they are when it is written)."""
        batch = self._batches.get(room)
        if batch is None:
            if not self._batches:
                asyncio.get_running_loop().call_soon(self.flush)
            batch = self._batches[room] = _Batch()
        batch.frames.append(frame)

    def joined(self, room: Room[Session], session: Session) -> None:
        """`session` just joined `room`: frames queued before now are not for it."""
        batch = self._batches.get(room)
        if batch is not None:
            batch.joined_at[session] = len(batch.frames)

    def flush_room(self, room: Room[Session]) -> None:
        """Write what `room` has queued now (before its membership changes)."""
        batch = self._batches.pop(room, None)
        if batch is not None:
            self._write(room, batch)

    def flush(self) -> None:
        """Write every room's queued frames, rooms in the order they were first queued."""
        batches, self._batches = self._batches, {}
        for room, batch in batches.items():
            self._write(room, batch)

    def _write(self, room: Room[Session], batch: _Batch) -> None:
        self.flushes += 1
        frames = batch.frames
        data = frames[0] if len(frames) == 1 else b"".join(frames)
        name = room.name
        late = batch.joined_at
        for user in room.members.values():
            session = user.handle
            if late and session in late:
                own = b"".join(frames[late[session] :])
                if own:
                    session.write_frame(own, name)
            else:
                session.write_frame(data, name)
