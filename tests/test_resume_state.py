"""What a client keeps to resume a session (`Resume`), without a socket."""

from __future__ import annotations

from tuichat.client.resume import Resume, ResumeFields
from tuichat.protocol import Message, Position, Welcome


def welcome(rooms: tuple[str, ...], positions: tuple[Position, ...], token: str = "t1") -> Welcome:
    return Welcome(
        version=2, server="s", name="ali", rooms=rooms, users=("ali",), positions=positions,
        token=token, private_seq=40,
    )  # fmt: skip


def said(room: str, seq: int) -> Message:
    return Message(room, seq, "bob", f"m{seq}", 0)


def test_a_first_hello_resumes_nothing_and_the_next_carries_where_we_were() -> None:
    resume = Resume()
    assert resume.hello() == ResumeFields()
    resume.welcome(welcome(("#lobby", "#dev"), (Position("#lobby", 7, 3), Position("#dev", 9, 0))))
    assert resume.message(said("#dev", 1)) and resume.message(said("#dev", 2))
    assert resume.private(41)
    fields = resume.hello()
    assert fields.token == "t1" and fields.private_after == 41
    assert fields.positions == (Position("#lobby", 7, 3), Position("#dev", 9, 2))


def test_what_was_delivered_is_not_delivered_again() -> None:
    resume = Resume()
    resume.welcome(welcome(("#lobby",), (Position("#lobby", 7, 3),)))
    assert not resume.message(said("#lobby", 3))  # the replay starts after our position
    assert resume.message(said("#lobby", 4)) and not resume.message(said("#lobby", 4))
    assert resume.private(5) and not resume.private(5)  # a private message: once
    assert resume.private(0) and resume.private(0)  # (without an id: nothing to tell apart)
    assert resume.message(said("#elsewhere", 1))  # a room we have no position in


def test_rooms_come_and_go_with_the_server_and_another_epoch_starts_afresh() -> None:
    resume = Resume()
    resume.welcome(welcome(("#lobby", "#dev"), (Position("#lobby", 7, 3), Position("#dev", 9, 5))))
    resume.room("#ops", 11, 0)
    resume.left("#dev")
    assert set(resume.positions) == {"#lobby", "#ops"}
    resume.message(said("#lobby", 8))
    # back after a drop: #ops was left on another device, the lobby was reset (epoch 8)
    resume.welcome(welcome(("#lobby",), (Position("#lobby", 8, 0),), token="t2"))
    assert resume.positions == {"#lobby": Position("#lobby", 8, 0)}
    assert resume.hello().token == "t2" and resume.private_after == 40  # (the first welcome's)
