"""Room fan-out: what a room hears in one event-loop pass, written once to each member.

A chat server's work is fan-out: one message in, a copy out to every member.
Writing each message to each member costs a system call per delivery. Instead,
the frames a room gets during one pass of the event loop are collected, joined
into one `bytes` at the end of the pass, and that same object is written to every
member: one write per member per pass, however many messages the pass carried.

Presence (`joined`, `left`) may wait a little longer: a batch that holds only
presence is written after a delay that grows with the room (10 µs a member, at
most a quarter of a second), so a storm of logins into a large room costs a
bounded number of writes per second instead of one write per member per login.
A message in the room writes the presence before it at once.

A frame may be kept from some members: those it is about (the typist of a typing notice,
the session that was answered already), and, for an ephemeral frame (typing), anyone with
a backlog (`Session.takes_ephemeral`): what a slow reader goes without first.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tuichat.chat import Room

if TYPE_CHECKING:
    from tuichat.server.session import Session

PRESENCE_DELAY_PER_MEMBER = 10e-6
"""Seconds presence may wait per member of its room."""
MAX_PRESENCE_DELAY = 0.25
"""The longest presence waits, in seconds."""


@dataclass(slots=True)
class _Batch:
    frames: list[bytes] = field(default_factory=list)
    joined_at: dict[Session, int] = field(default_factory=dict)
    """Members who joined after the batch began, and the first frame that is theirs."""
    due: bool = False
    """Written at the end of this pass (it holds more than presence)."""
    timer: asyncio.TimerHandle | None = None
    """Writes a presence-only batch when its delay is over."""
    skip: dict[int, frozenset[Session]] | None = None
    """Frames (by index) not for some sessions (made for the first such frame: a batch of
    messages costs nothing more)."""
    ephemeral: set[int] | None = None
    """Frames (by index) that a session with a backlog goes without."""


class Fanout:
    """Collects frames per room and writes them out at the end of the loop's pass."""

    def __init__(self) -> None:
        self._batches: dict[Room[Session], _Batch] = {}
        self._due: list[Room[Session]] = []

    def add(
        self,
        room: Room[Session],
        frame: bytes,
        presence: bool = False,
        *,
        skip: Collection[Session] = (),
        ephemeral: bool = False,
    ) -> None:
        """Queue `frame` for every member of `room` (as they are when it is written) but the
        sessions in `skip`; an `ephemeral` frame (which waits like presence) is not for those
        with a backlog either."""
        batch = self._batches.get(room)
        if batch is None:
            batch = self._batches[room] = _Batch()
        if skip:
            if batch.skip is None:
                batch.skip = {}
            batch.skip[len(batch.frames)] = frozenset(skip)
        if ephemeral:
            if batch.ephemeral is None:
                batch.ephemeral = set()
            batch.ephemeral.add(len(batch.frames))
            presence = True
        batch.frames.append(frame)
        if batch.due:
            return
        loop = asyncio.get_running_loop()
        if not presence:
            batch.due = True
            if batch.timer is not None:
                batch.timer.cancel()
            if not self._due:
                loop.call_soon(self.flush)
            self._due.append(room)
        elif batch.timer is None:
            delay = min(MAX_PRESENCE_DELAY, len(room.members) * PRESENCE_DELAY_PER_MEMBER)
            batch.timer = loop.call_later(delay, self.flush_room, room)

    def joined(self, room: Room[Session], session: Session) -> None:
        """`session` just joined `room`: frames queued before now are not for it."""
        batch = self._batches.get(room)
        if batch is not None:
            batch.joined_at[session] = len(batch.frames)

    def flush_room(self, room: Room[Session]) -> None:
        """Write what `room` has queued now (before its membership changes)."""
        batch = self._batches.pop(room, None)
        if batch is None:
            return
        if batch.timer is not None:
            batch.timer.cancel()
        self._write(room, batch)

    def flush(self) -> None:
        """Write the batches that are due, rooms in the order they became due."""
        due, self._due = self._due, []
        for room in due:
            self.flush_room(room)

    def flush_all(self) -> None:
        """Write everything queued, presence too (at shutdown)."""
        for room in list(self._batches):
            self.flush_room(room)
        self._due.clear()

    def _write(self, room: Room[Session], batch: _Batch) -> None:
        frames = batch.frames
        data = frames[0] if len(frames) == 1 else b"".join(frames)
        name = room.name
        late = batch.joined_at
        if batch.skip is not None or batch.ephemeral is not None:
            self._write_some(room, batch, data)
            return
        for session in room.handles():
            if late and session in late:
                own = b"".join(frames[late[session] :])
                if own:
                    session.write_frame(own, name)
            else:
                session.write_frame(data, name)

    @staticmethod
    def _write_some(room: Room[Session], batch: _Batch, data: bytes) -> None:
        """Write a batch with frames that are not for everyone: each member gets `data`, or
        the frames that are theirs."""
        frames, late = batch.frames, batch.joined_at
        skip, ephemeral = batch.skip or {}, batch.ephemeral or set()
        name = room.name
        skipped = frozenset().union(*skip.values())
        for session in room.handles():
            first = late.get(session, 0)
            slow = bool(ephemeral) and not session.takes_ephemeral(name)
            if not first and not slow and session not in skipped:
                session.write_frame(data, name)
                continue
            own = b"".join(
                frame
                for i, frame in enumerate(frames)
                if i >= first and not (slow and i in ephemeral) and session not in skip.get(i, ())
            )
            if own:
                session.write_frame(own, name)
