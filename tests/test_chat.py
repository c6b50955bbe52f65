"""The chat logic as plain objects: no sockets, no loop, no clock."""

from __future__ import annotations

import pytest

from tuichat.chat import LOBBY, Chat, ChatError, ChatLimits, RoomRecord
from tuichat.protocol import Joined, Left, Message

NOW = 1_700_000_000_000


def test_login_puts_the_user_in_the_lobby_and_announces_them_to_everyone_there() -> None:
    chat: Chat[str] = Chat()
    chat.login("ali", "h-ali", NOW)
    bob, deliveries = chat.login("bob", "h-bob", NOW + 1)
    assert list(bob.rooms) == [LOBBY]
    (delivery,) = deliveries
    assert delivery.message == Joined(LOBBY, "bob", NOW + 1)
    assert sorted(delivery.recipients) == ["h-ali", "h-bob"]


def test_names_are_unique_case_insensitively() -> None:
    chat: Chat[str] = Chat()
    chat.login("Ali", "h1", NOW)
    with pytest.raises(ChatError) as taken:
        chat.login("aLI", "h2", NOW)
    assert taken.value.code == "name_taken"


def test_posting_numbers_messages_per_room_and_addresses_every_member() -> None:
    chat: Chat[str] = Chat()
    ali, _ = chat.login("ali", "h-ali", NOW)
    bob, _ = chat.login("bob", "h-bob", NOW)
    chat.join(ali, "#dev", NOW)
    first, _ = chat.post(ali, "#dev", "one", False, "", NOW)
    second, _ = chat.post(ali, "#dev", "two", False, "", NOW)
    lobby, _ = chat.post(bob, LOBBY, "hi", False, "", NOW)
    assert (first.seq, second.seq, lobby.seq) == (1, 2, 1)
    delivery = chat.delivered(second)
    assert delivery.recipients == ("h-ali",)
    assert delivery.message == Message("#dev", 2, "ali", "two", NOW, False)
    assert chat.rooms["#dev"].delivered == 2


def test_a_retried_send_gets_its_original_position_and_no_new_number() -> None:
    chat: Chat[str] = Chat()
    ali, _ = chat.login("ali", "h-ali", NOW)
    bob, _ = chat.login("bob", "h-bob", NOW)
    first, new = chat.post(ali, LOBBY, "hello", False, "id-1", NOW)
    assert new and first.seq == 1
    again, new = chat.post(ali, LOBBY, "hello", False, "id-1", NOW + 5)
    assert not new and (again.seq, again.ts) == (1, NOW)
    other, new = chat.post(bob, LOBBY, "hello", False, "id-1", NOW)  # ids are per sender
    assert new and other.seq == 2


def test_rooms_continue_from_their_stored_position() -> None:
    stored = {"#dev": RoomRecord(epoch=77, seq=41, recent_ids={("ali", "x"): (41, NOW)})}
    chat: Chat[str] = Chat(rooms=stored, new_epoch=lambda room: 5)
    ali, _ = chat.login("ali", "h", NOW)
    room, _ = chat.join(ali, "#dev", NOW)
    assert (room.epoch, room.delivered) == (77, 41)
    assert chat.post(ali, "#dev", "next", False, "", NOW)[0].seq == 42
    assert chat.post(ali, "#dev", "retry", False, "x", NOW)[1] is False
    assert chat.rooms[LOBBY].epoch == 5  # a room without history gets a new epoch


def test_logout_tells_every_room_the_user_was_in_and_frees_the_name() -> None:
    chat: Chat[str] = Chat()
    ali, _ = chat.login("ali", "h-ali", NOW)
    bob, _ = chat.login("bob", "h-bob", NOW)
    chat.join(ali, "#dev", NOW)
    chat.join(bob, "#dev", NOW)
    deliveries = chat.logout(bob, "disconnect", NOW)
    assert sorted((d.message.room, d.recipients) for d in deliveries) == [  # type: ignore[union-attr]
        ("#dev", ("h-ali",)),
        (LOBBY, ("h-ali",)),
    ]
    assert all(isinstance(d.message, Left) and d.message.reason == "disconnect" for d in deliveries)
    chat.login("BOB", "h-bob2", NOW)  # the name is free again
    assert (
        chat.logout(bob, "disconnect", NOW) == []
    )  # a second logout of the old session is a no-op


def test_an_empty_room_is_not_listed_but_keeps_its_position() -> None:
    chat: Chat[str] = Chat()
    ali, _ = chat.login("ali", "h", NOW)
    chat.join(ali, "#tmp", NOW)
    chat.post(ali, "#tmp", "one", False, "", NOW)
    chat.part(ali, "#tmp", NOW)
    assert [info.room for info in chat.room_list()] == [LOBBY]
    chat.join(ali, "#tmp", NOW)
    assert chat.post(ali, "#tmp", "two", False, "", NOW)[0].seq == 2


def test_a_user_may_be_in_a_limited_number_of_rooms() -> None:
    chat: Chat[str] = Chat(ChatLimits(max_rooms_per_user=3))
    ali, _ = chat.login("ali", "h", NOW)
    chat.join(ali, "#a", NOW)
    chat.join(ali, "#b", NOW)
    with pytest.raises(ChatError) as refused:
        chat.join(ali, "#c", NOW)
    assert refused.value.code == "too_many_rooms"


def test_a_private_message_is_addressed_to_the_target_only() -> None:
    chat: Chat[str] = Chat()
    ali, _ = chat.login("ali", "h-ali", NOW)
    chat.login("Bob", "h-bob", NOW)
    message, target = chat.private(ali, "bob", "psst", False, "p1", NOW)
    assert target is not None and target.handle == "h-bob"
    assert (message.sender, message.to, message.text, message.pid) == ("ali", "Bob", "psst", 1)
    again, nobody = chat.private(ali, "bob", "psst", False, "p1", NOW)
    assert (again, nobody) == (message, None)  # a retry is not delivered twice
