"""Unread and mention counts, kept without I/O from what a client sees."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tuichat.client.unread import (
    MAX_CONVERSATIONS,
    MAX_TRACKED,
    READ_INTERVAL,
    READ_SPREAD,
    Counts,
    Unread,
    conversation_key,
    fold,
    mentions,
    read_pause,
)

EPOCH = 7


def test_a_room_counts_from_its_position_before_any_message_is_seen() -> None:
    unread = Unread("ali")
    unread.marker("#dev", 10, EPOCH)
    unread.room("#dev", EPOCH, 14)
    assert unread.counts("#dev") == Counts(4, 0)
    unread.message("#dev", 15, "bob", "hi ali")  # a mention, and the room moves on
    assert unread.counts("#dev") == Counts(5, 1)


def test_own_messages_are_never_unread() -> None:
    unread = Unread("ali")
    unread.marker("#dev", 10, EPOCH)
    unread.room("#dev", EPOCH, 10)
    unread.message("#dev", 11, "ALI", "from my phone, mentioning ali")  # our name, any case
    unread.message("#dev", 12, "bob", "hello")
    assert unread.counts("#dev") == Counts(1, 0)
    unread.message("@bob", 40, "ali", "to bob")
    assert unread.counts("@bob") == Counts(0, 0)


def test_a_marker_clears_what_is_at_or_below_it_and_never_goes_back() -> None:
    unread = Unread("ali")
    unread.marker("#dev", 1, EPOCH)
    unread.room("#dev", EPOCH, 1)
    for seq in range(2, 7):
        unread.message("#dev", seq, "bob", f"ali {seq}")
    assert unread.counts("#dev") == Counts(5, 5)
    assert unread.marker("#dev", 4, EPOCH)  # another device read up to 4
    assert unread.counts("#dev") == Counts(2, 2)
    assert not unread.marker("#dev", 3, EPOCH)  # an older marker changes nothing
    assert unread.counts("#dev") == Counts(2, 2)
    assert unread.marker("#dev", 6)  # ours, in the room's epoch
    assert unread.counts("#dev") == Counts(0, 0)
    assert unread.read_up_to("#dev") == 6
    unread.message("#dev", 5, "bob", "ali, replayed")  # below the marker: read already
    assert unread.counts("#dev") == Counts(0, 0)


def test_a_room_without_a_marker_counts_as_read_where_it_was_first_seen() -> None:
    unread = Unread("ali")
    unread.room("#big", EPOCH, 5000)  # years of history are not news to a newcomer
    assert unread.counts("#big") == Counts(0, 0)
    unread.message("#big", 5001, "bob", "news")
    unread.room("#big", EPOCH, 5003)  # later positions count from there
    assert unread.counts("#big") == Counts(3, 0)


def test_a_new_epoch_numbers_anew() -> None:
    unread = Unread("ali")
    unread.marker("#dev", 90, EPOCH)
    unread.room("#dev", EPOCH, 100)
    unread.message("#dev", 100, "bob", "ali?")
    assert unread.counts("#dev") == Counts(10, 1)
    unread.room("#dev", EPOCH + 1, 3)  # reset: the old marker says nothing of this epoch
    assert unread.counts("#dev") == Counts(0, 0)
    unread.message("#dev", 4, "bob", "again")
    assert unread.counts("#dev") == Counts(1, 0)
    assert not unread.marker("#dev", 80, EPOCH)  # a late marker of the old epoch is no news
    assert unread.counts("#dev") == Counts(1, 0)


def test_private_conversations_count_the_messages_seen() -> None:
    unread = Unread("ali")
    unread.marker("@Bob", 100)  # pids are global: 200 is not the 100th after 100
    for pid in (150, 200, 200, 230):  # a repeat (live, then in the history) counts once
        unread.message("@bob", pid, "Bob", "hi")
    unread.message("@bob", 90, "bob", "old")  # below the marker
    assert unread.counts("@BOB") == Counts(3, 0)
    unread.marker("@bob", 200)
    assert unread.counts("@bob") == Counts(1, 0)
    unread.forget("@bob")
    assert unread.counts("@bob") == Counts(0, 0)


def test_conversations_have_one_key_whatever_the_spelling() -> None:
    # (\uff21 and on: full-width letters, which NFKC makes plain)
    assert (
        conversation_key("@Bob")
        == conversation_key("@bob")
        == conversation_key("@\uff22\uff2f\uff22")
    )
    assert conversation_key("#Dev") == "#dev"
    assert (
        conversation_key("#\uff44\uff45\uff56") != "#dev"
    )  # room names are only case-folded by the server
    assert fold("Strauß") == fold("STRAUSS") == "strauss"


def test_mentions_are_whole_words_after_nfkc_case_folding() -> None:
    assert mentions("hey ALI, look", "ali")
    assert mentions("@ali: done", "Ali")
    assert mentions("\uff48\uff49 \uff41\uff4c\uff49", "ali")  # full-width letters
    assert mentions("ask STRAUSS", "Strauß")
    assert not mentions("alibaba", "ali")
    assert not mentions("mali", "ali")
    assert not mentions("anything", "")


def test_next_unread_takes_mentions_first_then_private_then_rooms() -> None:
    unread = Unread("ali")
    order = ["#lobby", "#dev", "#ops", "@bob", "@carol"]
    for room in ("#lobby", "#dev", "#ops"):
        unread.marker(room, 1, EPOCH)
        unread.room(room, EPOCH, 1)
    assert unread.next_unread(order) is None
    unread.message("#dev", 2, "bob", "news")
    assert unread.next_unread(order) == "#dev"
    unread.message("@carol", 50, "carol", "psst")
    assert unread.next_unread(order) == "@carol"
    unread.message("#ops", 2, "bob", "ali: the disk")
    assert unread.next_unread(order) == "#ops"
    assert unread.next_unread(order, current="#ops") == "@carol"  # not where we are


def test_what_is_remembered_above_a_marker_is_bounded() -> None:
    unread = Unread("ali")
    for pid in range(1, MAX_TRACKED + 100):
        unread.message("@bob", pid, "bob", "ali!")
    assert unread.counts("@bob") == Counts(MAX_TRACKED, MAX_TRACKED)
    for n in range(MAX_CONVERSATIONS):  # markers of conversations we never see (a flood)
        unread.marker(f"@someone{n}", 1)
    unread.message("#lobby", 1, "carol", "hi")  # (the least recently told went: @bob)
    assert unread.counts("@bob") == Counts(0, 0)
    assert len(unread._conversations) == MAX_CONVERSATIONS


@st.composite
def room_histories(draw: st.DrawFn) -> tuple[int, list[tuple[int, str, bool]], list[object]]:
    """A room of `last` messages (each by us or bob, mentioning us or not), the initial marker,
    and a random order of things seen: messages (some twice, some never) and markers."""
    last = draw(st.integers(1, 40))
    messages = [
        (seq, draw(st.sampled_from(["ali", "bob"])), draw(st.booleans()))
        for seq in range(1, last + 1)
    ]
    start = draw(st.integers(1, last))
    seen: list[object] = draw(
        st.lists(st.one_of(st.sampled_from(messages), st.integers(1, last)), max_size=60)
    )
    return start, messages, seen


@given(room_histories())
def test_room_counts_match_a_model_whatever_is_seen_in_whatever_order(
    history: tuple[int, list[tuple[int, str, bool]], list[object]],
) -> None:
    start, messages, seen = history
    unread = Unread("ali")
    unread.marker("#r", start, EPOCH)
    unread.room("#r", EPOCH, len(messages))
    marker, shown = start, set()
    for thing in seen:
        if isinstance(thing, int):
            unread.marker("#r", thing, EPOCH)
            marker = max(marker, thing)
        else:
            seq, sender, mention = thing  # type: ignore[misc]
            unread.message("#r", seq, sender, "hi ali" if mention else "hi")
            shown.add(thing)
        above = [m for m in shown if m[0] > marker]
        own = sum(1 for m in above if m[1] == "ali")
        expected = Counts(
            len(messages) - marker - own, sum(1 for m in above if m[1] != "ali" and m[2])
        )
        assert unread.counts("#r") == expected
        assert 0 <= expected.mentions <= expected.unread


@given(st.lists(st.tuples(st.booleans(), st.integers(1, 10**9)), max_size=60))
def test_private_counts_match_a_model(seen: list[tuple[bool, int]]) -> None:
    """Messages (pid: by us when divisible by 3, a mention when even) and markers."""
    unread = Unread("ali")
    marker, shown = 0, set()
    for is_marker, number in seen:
        if is_marker:
            unread.marker("@bob", number)
            marker = max(marker, number)
        else:
            sender = "ali" if number % 3 == 0 else "bob"
            unread.message("@bob", number, sender, "ali?" if number % 2 == 0 else "hm")
            if number > marker and sender == "bob":
                shown.add(number)
        above = [pid for pid in shown if pid > marker]
        mentioned = sum(1 for pid in above if pid % 2 == 0)
        assert unread.counts("@bob") == Counts(len(above), mentioned)


def test_the_readers_of_a_busy_room_do_not_send_their_markers_in_step() -> None:
    # everyone sees a room's messages at the same moment; equal pauses would keep every
    # reader's marker in the same millisecond, every second, for as long as the room is busy
    pauses = [read_pause() for _ in range(1000)]
    low, high = READ_INTERVAL * (1 - READ_SPREAD), READ_INTERVAL * (1 + READ_SPREAD)
    assert all(low <= pause <= high for pause in pauses)
    assert abs(sum(pauses) / len(pauses) - READ_INTERVAL) < 0.05 * READ_INTERVAL
    tenths = {int((pause - low) / (high - low) * 10) for pause in pauses}
    assert len(tenths) >= 9  # spread over the whole range, not bunched
    assert read_pause(2.0, 0.0) == 2.0  # no spread: exactly the interval
