"""The app's state changed by the server's events, without a screen (`ChatState`)."""

from __future__ import annotations

from tuichat.app.model import MAX_LOG_LINES, Kind
from tuichat.app.state import ChatState
from tuichat.client import Disconnected, Reconnected, Reconnecting
from tuichat.protocol import (
    Bye,
    HistoryPage,
    Joined,
    Left,
    Message,
    Parted,
    Presence,
    PrivateMessage,
    PrivatePage,
    RoomReset,
    RoomState,
    Welcome,
)

NOW = 1_767_269_400_000


def welcome(rooms: tuple[str, ...] = ("#lobby",), users: tuple[str, ...] = ("ali",)) -> Welcome:
    return Welcome(version=2, server="s", name="ali", rooms=rooms, users=users, motd="hello")


def connected(rooms: tuple[str, ...] = ("#lobby",)) -> ChatState:
    state = ChatState("ali", lambda: NOW)
    state.system("#lobby", "connecting…")
    state.connected(welcome(rooms))
    state.take_changes()
    return state


def test_a_welcome_opens_its_rooms_and_keeps_the_lines_before_it() -> None:
    state = ChatState("Ali", lambda: NOW)
    state.system("#lobby", "connecting…")
    assert state.take_changes().grown == {""}  # the app's own log: no conversation yet
    state.connected(welcome(("#lobby", "#Rust")))
    changes = state.take_changes()
    assert list(state.rooms) == ["#lobby", "#rust"] and state.me == "ali"
    assert [e.text for e in state.rooms["#lobby"].entries] == ["connecting…", "hello"]
    assert changes.history == ["#lobby", "#rust"]  # each room's history is to be fetched
    assert state.connection == "connected"


def test_messages_go_to_their_room_once_and_mentions_notify() -> None:
    state = connected(("#lobby", "#rust"))
    state.apply(Message("#rust", 1, "bob", "hi ali", NOW))
    state.apply(Message("#rust", 1, "bob", "hi ali", NOW))  # again (a replay): shown once
    state.apply(Message("#rust", 2, "bob", "no mention", NOW))
    state.apply(Message("#rust", 3, "ali", "mine", NOW))
    changes = state.take_changes()
    entries = state.rooms["#rust"].entries
    assert [(e.kind, e.text, e.mention) for e in entries] == [
        (Kind.MESSAGE, "hi ali", True),
        (Kind.MESSAGE, "no mention", False),
        (Kind.OWN, "mine", False),
    ]
    assert changes.grown == {"#rust"}
    assert changes.notify == [("#rust", "bob", "hi ali")]
    assert state.unread.counts("#rust").unread == 2  # our own is never unread


def test_a_private_message_opens_its_conversation_and_notifies() -> None:
    state = connected()
    state.apply(PrivateMessage("Bob", "ali", "psst", NOW, pid=7))
    changes = state.take_changes()
    view = state.privates["@bob"]
    assert view.name == "@Bob" and [e.text for e in view.entries] == ["psst"]
    assert changes.history == ["@bob"] and changes.notify == [("@Bob", "Bob", "psst")]
    state.apply(PrivateMessage("ali", "bob", "from my other device", NOW, pid=8))
    assert state.privates["@bob"].entries[-1].kind is Kind.PRIVATE_OUT
    assert state.take_changes().notify == []  # ours: never a notification


def test_presence_lines_and_members() -> None:
    state = connected()
    state.apply(Joined("#lobby", "bob", NOW))
    state.apply(Left("#lobby", "bob", NOW, "disconnect"))
    assert [e.text for e in state.rooms["#lobby"].entries][-2:] == [
        "bob joined #lobby",
        "bob lost their connection",
    ]
    assert "bob" not in state.rooms["#lobby"].members


def test_another_device_joining_and_leaving_a_room() -> None:
    state = connected()
    state.apply(RoomState("#ops", ("ali", "bob"), seq=3, epoch=5))
    assert "#ops" in state.rooms and state.take_changes().history == ["#ops"]
    state.current = "#ops"
    state.apply(Parted("#ops"))
    changes = state.take_changes()
    assert "#ops" not in state.rooms
    assert changes.closed == ["#ops"] and changes.switch_to == "#lobby"


def test_a_reset_room_is_emptied_shown_again_and_reloaded() -> None:
    state = connected(("#lobby", "#rust"))
    state.apply(Message("#rust", 1, "bob", "old", NOW))
    state.take_changes()
    state.apply(RoomReset("#rust", 9, 0))
    changes = state.take_changes()
    assert [e.text for e in state.rooms["#rust"].entries] == [
        "#rust was reset on the server; reloading"
    ]
    assert changes.shown_again == {"#rust"} and changes.history == ["#rust"]


def test_the_connection_comes_and_goes() -> None:
    state = connected(("#lobby", "#rust"))
    state.apply(Reconnecting("reset by peer", 1, 0.1))
    assert state.banner == "Connection lost — reconnecting…" and state.connection == "reconnecting…"
    state.apply(Reconnected(welcome(("#lobby", "#go"))))  # another device left #rust, joined #go
    changes = state.take_changes()
    assert state.banner is None and list(state.rooms) == ["#lobby", "#go"]
    assert changes.closed == ["#rust"] and "#go" in changes.history and changes.reconnected
    state.apply(Bye(reason="shutdown", message="back soon"))
    state.apply(Disconnected("closed", clean=True))
    assert state.banner == "The server is going away: back soon"  # the server's words stay
    state.apply(Disconnected("reset", clean=False))
    assert state.banner == "Disconnected: reset"


def test_history_goes_before_what_is_shown_and_the_log_stays_bounded() -> None:
    state = connected(("#lobby",))
    view = state.rooms["#lobby"]
    state.apply(Message("#lobby", 60, "bob", "live", NOW))
    page = HistoryPage(
        "#lobby", 1, tuple(Message("#lobby", s, "bob", f"m{s}", NOW) for s in range(1, 61))
    )
    older, complete, start = state.history_entries(view, page)
    assert not complete  # (the page says so)
    assert [e.text for e in older] == [f"m{s}" for s in range(1, 60)]  # 60 is shown already
    added = state.prepend_history(view, older, True, start)
    texts = [e.text for e in view.entries]
    assert texts[0] == "start of the room" and texts[-1] == "live" and added == 61
    assert "── earlier messages above ──" in texts
    full = ChatState("ali", lambda: NOW)
    full.connected(welcome())
    lobby = full.rooms["#lobby"]
    many = HistoryPage(
        "#lobby", 1, tuple(Message("#lobby", s, "b", "x", NOW) for s in range(1, MAX_LOG_LINES + 9))
    )
    added = full.prepend_history(lobby, full.history_entries(lobby, many)[0], True, NOW)
    assert len(lobby.entries) <= MAX_LOG_LINES + 2 and not lobby.history_complete


def test_a_private_page_skips_what_came_live() -> None:
    state = connected()
    state.apply(PrivateMessage("bob", "ali", "live", NOW, pid=20))
    view = state.privates["@bob"]
    page = PrivatePage(
        "bob",
        (
            PrivateMessage("bob", "ali", "old", NOW, pid=5),
            PrivateMessage("ali", "bob", "my old", NOW, pid=6),
            PrivateMessage("bob", "ali", "live", NOW, pid=20),
        ),
        complete=True,
    )
    older, _, _ = state.history_entries(view, page)
    assert [(e.kind, e.sender, e.text) for e in older] == [
        (Kind.PRIVATE_IN, "bob", "old"),
        (Kind.PRIVATE_OUT, "bob", "my old"),
    ]


def test_a_room_too_large_to_name_everyone_shows_the_count_the_server_gives() -> None:
    state = ChatState("ali", lambda: NOW)
    crowd = Welcome(
        version=2, server="s", name="ali", rooms=("#lobby",), users=("ali", "bob"), members=5000
    )
    state.connected(crowd)
    assert state.rooms["#lobby"].count == 5000  # a first page of names, and how many in all
    state.apply(Presence("#lobby", NOW, 5003))  # a crowd came: a count, no names
    assert state.rooms["#lobby"].count == 5003
    assert state.rooms["#lobby"].members == {"ali", "bob"}
    state.apply(RoomState(room="#big", users=("ali",), members=250))
    assert state.rooms["#big"].count == 250
