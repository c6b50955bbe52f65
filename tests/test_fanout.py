"""Room fan-out: one write per member per loop pass, exactly the frames each member should see."""

from __future__ import annotations

import asyncio
from typing import Any

from tuichat.chat import Room, User
from tuichat.protocol import SERVER_MESSAGE_TYPES, Codec, FrameDecoder, Joined, Left, Presence
from tuichat.server import fanout as fanout_module
from tuichat.server.fanout import Fanout


class Recorder:
    """Stands in for a session: remembers every write."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.writes: list[tuple[bytes, str]] = []

    def write_frame(self, frame: bytes, room: str = "") -> None:
        self.writes.append((frame, room))

    @property
    def data(self) -> bytes:
        return b"".join(frame for frame, _ in self.writes)


def room_with(*names: str) -> tuple[Room[Any], dict[str, Recorder]]:
    room: Room[Any] = Room("#dev", epoch=1)
    members = {}
    for name in names:
        members[name] = Recorder(name)
        room.add(User(name, [members[name]]))
    return room, members


async def next_pass() -> None:
    """Let the loop finish the current pass and run the one after it."""
    await asyncio.sleep(0)
    await asyncio.sleep(0)


async def test_every_frame_of_one_pass_reaches_each_member_in_one_write() -> None:
    room, members = room_with("ali", "bob", "carol")
    fanout = Fanout()
    for frame in (b"one;", b"two;", b"three;"):
        fanout.add(room, frame)
    assert all(m.writes == [] for m in members.values())  # nothing before the pass ends
    await next_pass()
    for member in members.values():
        assert member.writes == [(b"one;two;three;", "#dev")]
    shared = {id(m.writes[0][0]) for m in members.values()}
    assert len(shared) == 1  # the very same bytes object for everyone


async def test_a_member_who_joins_mid_pass_gets_only_what_came_after() -> None:
    room, members = room_with("ali")
    fanout = Fanout()
    fanout.add(room, b"before;")
    late = Recorder("bob")
    room.add(User("bob", [late]))
    fanout.joined(room, late)
    fanout.add(room, b"after;")
    await next_pass()
    assert members["ali"].data == b"before;after;"
    assert late.data == b"after;"


async def test_a_member_who_joins_after_the_last_frame_gets_nothing_of_the_batch() -> None:
    room, members = room_with("ali")
    fanout = Fanout()
    fanout.add(room, b"before;")
    late = Recorder("bob")
    room.add(User("bob", [late]))
    fanout.joined(room, late)
    await next_pass()
    assert members["ali"].data == b"before;"
    assert late.writes == []


async def test_flush_room_writes_at_once_so_a_leaver_gets_what_came_before_it_left() -> None:
    room, members = room_with("ali", "bob")
    fanout = Fanout()
    fanout.add(room, b"one;")
    fanout.flush_room(room)
    assert members["bob"].data == b"one;"
    room.remove(next(u for u in room.members.values() if u.name == "bob"))
    fanout.add(room, b"two;")
    await next_pass()
    assert members["ali"].data == b"one;two;"
    assert members["bob"].data == b"one;"


async def test_rooms_are_written_in_the_order_they_were_first_given_a_frame() -> None:
    first, _ = room_with()
    second, _ = room_with()
    both = Recorder("ali")
    first.add(User("ali", [both]))
    second.add(User("ali", [both]))
    second.name = "#second"
    fanout = Fanout()
    fanout.add(first, b"a;")
    fanout.add(second, b"b;")
    fanout.add(first, b"c;")
    await next_pass()
    assert both.writes == [(b"a;c;", "#dev"), (b"b;", "#second")]


async def test_presence_waits_a_little_in_a_large_room_and_a_message_takes_it_along(
    monkeypatch: Any,
) -> None:
    monkeypatch.setattr(fanout_module, "PRESENCE_DELAY_PER_MEMBER", 10.0)  # 20 s for 2 members
    monkeypatch.setattr(fanout_module, "MAX_PRESENCE_DELAY", 60.0)
    room, members = room_with("ali", "bob")
    fanout = Fanout()
    fanout.add(room, b"joined;", presence=True)
    fanout.add(room, b"left;", presence=True)
    await next_pass()
    assert members["ali"].writes == []  # presence alone waits for its timer
    fanout.add(room, b"message;")
    await next_pass()
    assert members["ali"].data == b"joined;left;message;"  # in order, in one write
    assert len(members["ali"].writes) == 1


async def test_presence_alone_is_written_when_its_delay_is_over(monkeypatch: Any) -> None:
    monkeypatch.setattr(fanout_module, "PRESENCE_DELAY_PER_MEMBER", 0.01)
    room, members = room_with("ali", "bob")
    fanout = Fanout()
    written = asyncio.Event()
    original = members["bob"].write_frame

    def record(frame: bytes, room_name: str = "") -> None:
        original(frame, room_name)
        written.set()

    members["bob"].write_frame = record  # type: ignore[method-assign]
    for _ in range(3):
        fanout.add(room, b"joined;", presence=True)
    async with asyncio.timeout(5):
        await written.wait()
    assert members["bob"].writes == [(b"joined;joined;joined;", "#dev")]


async def test_flush_all_writes_presence_that_is_still_waiting() -> None:
    room, members = room_with("ali")
    fanout = Fanout()
    fanout.add(room, b"joined;", presence=True)
    fanout.flush_all()
    assert members["ali"].data == b"joined;"


# --- presence of a crowd ------------------------------------------------------

CODEC = Codec(SERVER_MESSAGE_TYPES, 1 << 20)


def frames_of(data: bytes) -> list[Any]:
    """The messages in what a member was written."""
    decoder = FrameDecoder(1 << 20)
    return [CODEC.decode(body) for body in decoder.feed(data)]


async def test_a_crowd_coming_and_going_at_once_is_one_presence_frame() -> None:
    room, members = room_with("ali", "bob")
    fanout = Fanout(list_limit=10)
    for name in ("carol", "dan", "erin"):
        fanout.presence(room, Joined("#dev", name, 5))
    fanout.presence(room, Left("#dev", "dan", 6, "quit"))  # came and went: only its going
    fanout.presence(room, Left("#dev", "bob", 7, "timeout"))
    fanout.flush_all()
    (frame,) = frames_of(members["ali"].data)
    assert frame == Presence(
        "#dev", 7, 2, joined=("carol", "erin"), left=("dan", "bob"), reasons=("quit", "timeout")
    )
    assert len(members["ali"].writes) == 1


async def test_a_single_change_is_still_a_joined_or_a_left() -> None:
    room, members = room_with("ali")
    fanout = Fanout(list_limit=10)
    fanout.presence(room, Joined("#dev", "bob", 5))
    fanout.flush_all()
    assert frames_of(members["ali"].data) == [Joined("#dev", "bob", 5)]


async def test_presence_in_a_room_past_the_list_limit_names_nobody() -> None:
    room, members = room_with("ali", "bob", "carol", "dan")
    fanout = Fanout(list_limit=3)
    fanout.presence(room, Joined("#dev", "erin", 5))
    fanout.presence(room, Left("#dev", "bob", 6, "part"))
    fanout.flush_all()
    assert frames_of(members["carol"].data) == [Presence("#dev", 6, 4)]


async def test_a_member_who_joins_amid_a_crowd_gets_the_changes_after_its_joining() -> None:
    room, members = room_with("ali")
    fanout = Fanout(list_limit=10)
    fanout.presence(room, Joined("#dev", "bob", 5))
    fanout.presence(room, Joined("#dev", "carol", 5))
    late = Recorder("dan")
    room.add(User("dan", [late]))
    fanout.joined(room, late)
    fanout.presence(room, Joined("#dev", "dan", 6))
    fanout.presence(room, Joined("#dev", "erin", 7))
    fanout.flush_all()
    assert frames_of(members["ali"].data) == [
        Presence("#dev", 5, 2, joined=("bob", "carol")),
        Presence("#dev", 7, 2, joined=("dan", "erin")),
    ]
    assert frames_of(late.data) == [Presence("#dev", 7, 2, joined=("dan", "erin"))]


async def test_in_a_large_room_a_crowd_of_logins_is_one_count_for_everyone() -> None:
    room, members = room_with("ali", "bob", "carol")
    fanout = Fanout(list_limit=2)
    for name in ("dan", "erin", "finn"):
        newcomer = Recorder(name)
        room.add(User(name, [newcomer]))
        members[name] = newcomer
        fanout.joined(room, newcomer)
        fanout.presence(room, Joined("#dev", name, 5))
    fanout.flush_all()
    assert frames_of(members["ali"].data) == [Presence("#dev", 5, 6)]
    assert frames_of(members["finn"].data) == [Presence("#dev", 5, 6)]  # (a count is as true)


# --- a large room is written at most half the time ------------------------------


class SlowClock:
    """`time.monotonic` for the fan-out: each write to a member takes a millisecond."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


class SlowRecorder(Recorder):
    def __init__(self, name: str, clock: SlowClock) -> None:
        super().__init__(name)
        self.clock = clock
        self.wrote = asyncio.Event()

    def write_frame(self, frame: bytes, room: str = "") -> None:
        super().write_frame(frame, room)
        self.clock.now += 0.001
        self.wrote.set()


async def test_after_long_writes_a_room_waits_as_long_and_its_messages_share_a_write(
    monkeypatch: Any,
) -> None:
    clock = SlowClock()
    monkeypatch.setattr(fanout_module, "time", clock)
    room: Room[Any] = Room("#big", epoch=1)
    members = [SlowRecorder(name, clock) for name in ("ali", "bob", "carol")]
    for member in members:
        room.add(User(member.name, [member]))
    fanout = Fanout()
    fanout.add(room, b"one;")
    await next_pass()
    assert [m.data for m in members] == [b"one;"] * 3  # (written at once: 3 ms of writes)
    members[0].wrote.clear()
    fanout.add(room, b"two;")
    fanout.add(room, b"three;")
    await next_pass()
    assert members[0].data == b"one;"  # held: the room was written 3 ms ago, for 3 ms
    async with asyncio.timeout(5):
        await members[0].wrote.wait()
    assert [m.writes[1][0] for m in members] == [b"two;three;"] * 3  # one write, both


async def test_short_writes_never_hold_a_room() -> None:
    room, members = room_with("ali", "bob")
    fanout = Fanout()
    for frame in (b"one;", b"two;", b"three;"):
        fanout.add(room, frame)
        await next_pass()
    assert [frame for frame, _ in members["ali"].writes] == [b"one;", b"two;", b"three;"]
