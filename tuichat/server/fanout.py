"""Room fan-out: what a room hears in one event-loop pass, written once to each member.

A chat server's work is fan-out: one message in, a copy out to every member.
Writing each message to each member costs a system call per delivery. Instead,
the frames a room gets during one pass of the event loop are collected, joined
into one `bytes` at the end of the pass, and that same object is written to every
member: one write per member per pass, however many messages the pass carried.

Presence (`joined`, `left`) may wait a little longer: a batch that holds only
presence is written after a delay that grows with the room (0.1 ms a member, at
most a second), so a storm of logins into a large room costs a
bounded number of writes per second instead of one write per member per login.
A message in the room writes the presence before it at once. Presence changes in a
row are written as one frame: a single change as its `joined` or `left`, several as
one `presence` naming who came and who went; in a room of more than the member-list
limit, a `presence` that names nobody and says how many are in the room (a crowd of N
then costs O(N) bytes, not O(N²)).

A large room is written at most half the time: after writes that took t, the room's next batch
waits until t has passed since they ended (`WRITE_SHARE`). At a steady load that would keep the
server writing almost all the time (a message every few milliseconds to a thousand members, one
write each), messages then share writes, and the time the server saves is latency saved: the
wait costs at most t, the queue behind a busy server costs many times that.

A frame may be kept from some members: those it is about (the typist of a typing notice,
the session that was answered already), and, for an ephemeral frame (typing), anyone with
a backlog (`Session.takes_ephemeral`): what a slow reader goes without first.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tuichat.chat import Room
from tuichat.protocol import Codec, Joined, Left, Presence, encode_frame

if TYPE_CHECKING:
    from tuichat.server.session import Session

PRESENCE_DELAY_PER_MEMBER = 100e-6
"""Seconds presence may wait per member of its room."""
MIN_PRESENCE_DELAY = 0.001
"""Presence that would wait less is written at the end of the pass, like a message."""
MAX_PRESENCE_DELAY = 1.0
"""The longest presence waits, in seconds."""
WRITE_SHARE = 0.5
"""The share of the time that writing one room may take (see the module's docstring)."""
MIN_HOLD = 0.0005
"""Seconds of writes below which a room's next batch is not held."""
COUNT_DELAY_PER_MEMBER = 500e-6
"""Seconds presence may wait per member in a room too large to name its comers and goers."""
MAX_COUNT_DELAY = 5.0
"""The longest a new member count waits, in seconds."""


@dataclass(slots=True)
class _Group:
    """Presence changes in a row, written as one frame."""

    changes: list[Joined | Left]


@dataclass(slots=True)
class _Batch:
    frames: list[bytes | _Group] = field(default_factory=list)
    group: _Group | None = None
    """The last of `frames`, while presence may still join it."""
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

    def __init__(
        self, members: Callable[[Room[Session]], int] | None = None, list_limit: int = 200
    ) -> None:
        """`members`: how many are in a room (on every server); `list_limit`: in a room of
        more, presence names nobody."""
        self._batches: dict[Room[Session], _Batch] = {}
        self._due: list[Room[Session]] = []
        self._members = members or (lambda room: len(room.members))
        self._list_limit = list_limit
        self._held: dict[Room[Session], float] = {}
        """Rooms whose next batch waits, and until when (`time.monotonic`)."""

    def presence(self, room: Room[Session], change: Joined | Left) -> None:
        """Queue a presence change for every member of `room`: with the changes before it
        in a row, one frame."""
        batch = self._batches.get(room)
        if batch is None:
            batch = self._batches[room] = _Batch()
        if batch.group is not None:
            batch.group.changes.append(change)
            return  # (its batch is waiting already)
        batch.group = _Group([change])
        batch.frames.append(batch.group)
        self._wait(room, batch, presence=True)

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
        batch.group = None
        self._wait(room, batch, presence)

    def _wait(self, room: Room[Session], batch: _Batch, presence: bool) -> None:
        """Have `batch` written at the end of this pass, or (presence only) after its delay."""
        if batch.due:
            return
        loop = asyncio.get_running_loop()
        if not presence:
            batch.due = True
            if batch.timer is not None:
                batch.timer.cancel()
                batch.timer = None
            held = self._held.get(room)
            if held is not None:
                wait = held - time.monotonic()
                if wait > 0:
                    batch.timer = loop.call_later(wait, self.flush_room, room)
                    return
                del self._held[room]
            if not self._due:
                loop.call_soon(self.flush)
            self._due.append(room)
        elif batch.timer is None:
            members = len(room.members)
            if members > self._list_limit:  # counts, not names: they may wait longer
                delay = min(MAX_COUNT_DELAY, members * COUNT_DELAY_PER_MEMBER)
            else:
                delay = min(MAX_PRESENCE_DELAY, members * PRESENCE_DELAY_PER_MEMBER)
            if delay < MIN_PRESENCE_DELAY:  # a small room: at the end of the pass, in turn
                self._wait(room, batch, presence=False)
                return
            batch.timer = loop.call_later(delay, self.flush_room, room)

    def joined(self, room: Room[Session], session: Session) -> None:
        """`session` just joined `room`: frames queued before now are not for it."""
        batch = self._batches.get(room)
        if batch is None:
            return
        if batch.group is not None and self._members(room) > self._list_limit:
            # a count is as true for them: the frame stays one (a crowd's logins, one frame)
            batch.joined_at[session] = len(batch.frames) - 1
        else:
            batch.joined_at[session] = len(batch.frames)
            batch.group = None  # (what comes later is theirs; what came before is not)

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

    def _encode(self, room: Room[Session], group: _Group) -> bytes:
        """One frame for presence changes in a row."""
        changes = group.changes
        count = self._members(room)
        message: Joined | Left | Presence
        if count > self._list_limit:
            message = Presence(room.name, changes[-1].ts, count)
        elif len(changes) == 1:
            message = changes[0]
        else:  # each name as its last change left it
            last: dict[str, Joined | Left] = {}
            for change in changes:
                last.pop(change.name, None)
                last[change.name] = change
            joined = tuple(name for name, change in last.items() if isinstance(change, Joined))
            left = [change for change in last.values() if isinstance(change, Left)]
            message = Presence(
                room.name, changes[-1].ts, count, joined,
                tuple(change.name for change in left), tuple(change.reason for change in left),
            )  # fmt: skip
        return encode_frame(Codec.encode(message))

    def _write(self, room: Room[Session], batch: _Batch) -> None:
        started = time.monotonic()
        self._write_batch(room, batch)
        ended = time.monotonic()
        spent = ended - started
        if spent >= MIN_HOLD:
            if len(self._held) > 16:  # (those no longer held: rooms may be gone meanwhile)
                self._held = {r: t for r, t in self._held.items() if t > ended}
            self._held[room] = ended + spent * (1 / WRITE_SHARE - 1)
        else:
            self._held.pop(room, None)

    def _write_batch(self, room: Room[Session], batch: _Batch) -> None:
        frames = [
            frame if isinstance(frame, bytes) else self._encode(room, frame)
            for frame in batch.frames
        ]
        data = frames[0] if len(frames) == 1 else b"".join(frames)
        name = room.name
        late = batch.joined_at
        if batch.skip is not None or batch.ephemeral is not None:
            self._write_some(room, batch, frames, data)
            return
        for session in room.handles():
            if late and session in late:
                own = b"".join(frames[late[session] :])
                if own:
                    session.write_frame(own, name)
            else:
                session.write_frame(data, name)

    @staticmethod
    def _write_some(room: Room[Session], batch: _Batch, frames: list[bytes], data: bytes) -> None:
        """Write a batch with frames that are not for everyone: each member gets `data` (all
        `frames`), or the frames that are theirs."""
        late = batch.joined_at
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
