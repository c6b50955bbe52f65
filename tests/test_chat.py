"""The chat logic as plain objects: no sockets, no loop, no clock."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tuichat.chat import LOBBY, Chat, ChatError, ChatLimits
from tuichat.chat.names import check_name, check_room, clean_text
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


def test_a_user_may_be_in_a_limited_number_of_rooms() -> None:
    chat: Chat[str] = Chat(ChatLimits(max_rooms_per_user=3))
    ali, _ = chat.login("ali", "h", NOW)
    chat.join(ali, "#a", NOW)
    chat.join(ali, "#b", NOW)
    with pytest.raises(ChatError) as refused:
        chat.join(ali, "#c", NOW)
    assert refused.value.code == "too_many_rooms"


def test_a_delivered_message_reaches_the_members_of_its_room_only() -> None:
    chat: Chat[str] = Chat()
    ali, _ = chat.login("ali", "h-ali", NOW)
    chat.login("bob", "h-bob", NOW)
    chat.join(ali, "#dev", NOW)
    delivery = chat.delivered(Message("#dev", 2, "ali", "two", NOW, False))
    assert delivery is not None and delivery.recipients == ("h-ali",)
    assert chat.rooms["#dev"].delivered == 2
    assert chat.delivered(Message("#nobody", 1, "ali", "x", NOW)) is None


def test_a_new_room_starts_where_the_broker_says_and_is_forgotten_when_empty() -> None:
    chat: Chat[str] = Chat(position=lambda room: (77, 41) if room == "#dev" else (5, 0))
    ali, _ = chat.login("ali", "h", NOW)
    room, _ = chat.join(ali, "#dev", NOW)
    assert (room.epoch, room.delivered) == (77, 41)
    assert chat.rooms[LOBBY].epoch == 5
    chat.part(ali, "#dev", NOW)
    assert list(chat.rooms) == [LOBBY] and [i.room for i in chat.room_list()] == [LOBBY]


@given(st.text(alphabet=st.characters(codec=None, min_codepoint=0, max_codepoint=0x10FFFF)))
def test_cleaning_removes_exactly_the_control_characters_but_tab_and_newline(text: str) -> None:
    expected = "".join(
        char
        for char in text.replace("\r\n", "\n")
        if char in "\n\t" or unicodedata.category(char) != "Cc"
    )
    assert clean_text(text) == expected


def test_names_and_rooms_far_too_long_are_refused_before_any_work() -> None:
    with pytest.raises(ChatError) as name:
        check_name("\u0430" * 60_000)  # would need look-alike keys for every character
    assert name.value.code == "invalid_name"
    with pytest.raises(ChatError) as room:
        check_room("#" + "Ä" * 60_000)
    assert room.value.code == "invalid_room"
    assert check_name("ali") == "ali" and check_room("#Dev") == "#dev"
