"""Moderation in the app: the commands (`/topic`, `/private`, `/invite`, `/kick`, `/ban`,
`/mute`, `/op`, `/ignore`, `/modlog`...) parsed, sent and answered; the room's header with its
topic; the lines for what moderators did (one each, never two); what the person acted on sees;
the owner and ops in the member list; messages of ignored people hidden with a count.

The state is tested without a screen (`ChatState`), the app with Pilot against a real server in
the test's loop, and what it looks like with SVG snapshots at 80x24 (the server on a thread of
its own, its clock frozen)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest
from textual.command import CommandPalette
from textual.pilot import Pilot

from tests.app_support import (
    FIXED_MS,
    FakeServer,
    connected,
    log_texts,
    make_app,
    make_fake_app,
    rendered,
    shown_texts,
    sidebar_users,
    until,
)
from tests.helpers import expect
from tests.test_app_snapshots import ServerThread
from tuichat.app import commands as cmd
from tuichat.app.app import ChatApp
from tuichat.app.bidi import Bidi
from tuichat.app.config import Config
from tuichat.app.i18n import _, plain, set_language
from tuichat.app.model import Kind
from tuichat.app.moderation import duration_words, moderation_line, refusal, when
from tuichat.app.state import ChatState
from tuichat.app.untrusted import clean
from tuichat.app.widgets.bidi_text import BidiText
from tuichat.app.widgets.chat_input import ChatInput
from tuichat.app.widgets.chat_log import ChatLog
from tuichat.app.widgets.sidebar import Sidebar
from tuichat.client import ChatClient, SigningKey
from tuichat.protocol import (
    Bye,
    HistoryPage,
    Ignored,
    Joined,
    Left,
    Message,
    ModEntry,
    Moderated,
    ModLogPage,
    Parted,
    RoomDetails,
    RoomState,
    Welcome,
)
from tuichat.server import ChatServer, ServerConfig
from tuichat.server.config import RateLimits

NOW = FIXED_MS  # 2026-01-01 12:10 UTC
HOUR_MS = 3_600_000
SIZE = (80, 24)


@pytest.fixture(autouse=True)
def english_after() -> Iterator[None]:
    """Each test leaves the process in English."""
    yield
    set_language("en")


# --- the commands, parsed -------------------------------------------------------------


NOT_A_DURATION = (
    "{word} is not a duration: say 90s, 10m, 2h, 7d, 1w or 1h30m (at most ten years), or none "
    "for until undone"
)


@pytest.mark.parametrize(
    "line, expected",
    [
        ("/topic", cmd.SetTopic()),
        ("/topic  Deploys   and reviews ", cmd.SetTopic("Deploys and reviews")),
        ("/topic -", cmd.SetTopic("")),
        ("/private", cmd.SetPrivate()),
        ("/private ON", cmd.SetPrivate(True)),
        ("/private off", cmd.SetPrivate(False)),
        ("/private maybe", cmd.ShowHelp("usage: /private [on|off]")),
        ("/invite bob", cmd.Moderate("invite", "bob")),
        ("/invite @bob", cmd.Moderate("invite", "bob")),
        ("/invite bob now", cmd.ShowHelp("usage: /invite NAME")),
        ("/invite", cmd.ShowHelp("usage: /invite NAME")),
        ("/kick bob", cmd.Moderate("kick", "bob")),
        ("/kick bob  spam and   more spam", cmd.Moderate("kick", "bob", "spam and more spam")),
        ("/kick bob spam 2h", cmd.Moderate("kick", "bob", "spam 2h")),  # no duration for a kick
        ("/kick #dev", cmd.ShowHelp("usage: /kick NAME [REASON]")),
        ("/ban bob", cmd.Moderate("ban", "bob")),
        ("/ban bob 2h", cmd.Moderate("ban", "bob", "", 7_200)),
        ("/ban bob spam, again 10m", cmd.Moderate("ban", "bob", "spam, again", 600)),
        ("/ban bob flooding the room 7d", cmd.Moderate("ban", "bob", "flooding the room", 604_800)),
        ("/ban bob 1W", cmd.Moderate("ban", "bob", "", 604_800)),
        ("/ban bob spam 0m", NOT_A_DURATION.format(word="0m")),  # a typo: never for ever
        ("/ban bob x 90s", cmd.Moderate("ban", "bob", "x", 90)),
        ("/ban bob x 1h30m", cmd.Moderate("ban", "bob", "x", 5_400)),
        ("/ban bob x 1y", NOT_A_DURATION.format(word="1y")),
        ("/ban bob x 30", NOT_A_DURATION.format(word="30")),
        ("/ban bob spam again", cmd.Moderate("ban", "bob", "spam again")),
        (
            "/ban 203.0.113.0/24 a bad network",
            cmd.Moderate("ban", "203.0.113.0/24", "a bad network"),
        ),
        ("/ban", cmd.ShowHelp("usage: /ban NAME [REASON] [DURATION: 10m, 2h, 7d, 1w]")),
        ("/unban bob", cmd.Moderate("unban", "bob")),
        ("/mute bob shouting 30m", cmd.Moderate("mute", "bob", "shouting", 1_800)),
        ("/mute bob ۲h", cmd.Moderate("mute", "bob", "", 7_200)),  # Persian digits
        ("/unmute bob", cmd.Moderate("unmute", "bob")),
        ("/op bob", cmd.Moderate("op", "bob")),
        ("/deop bob", cmd.Moderate("deop", "bob")),
        ("/uninvite bob", cmd.Moderate("uninvite", "bob")),
        ("/ignore", cmd.Ignore()),
        ("/ignore bob", cmd.Ignore("bob")),
        ("/ignore bob carol", cmd.ShowHelp("usage: /ignore [NAME]")),
        ("/unignore @bob", cmd.Ignore("bob", ignore=False)),
        ("/unignore", cmd.ShowHelp("usage: /unignore NAME")),
        ("/modlog", cmd.ShowModLog()),
        ("/modlog #dev", cmd.ShowModLog("#dev")),
        ("/modlog dev", cmd.ShowModLog("#dev")),
        ("/modlog all", cmd.ShowModLog(everything=True)),
        ("/modlog #dev #ops", cmd.ShowHelp("usage: /modlog [#ROOM|all]")),
    ],
)
def test_moderation_commands(line: str, expected: cmd.Command | str) -> None:
    if isinstance(expected, str):  # a refusal of what is not a duration
        expected = cmd.ShowHelp(expected)
    assert cmd.parse_input(line) == expected


@pytest.mark.parametrize(
    "word, seconds",
    [
        ("10m", 600),
        ("2h", 7_200),
        ("7d", 604_800),
        ("1w", 604_800),
        ("90M", 5_400),
        ("90s", 90),
        ("1h30m", 5_400),
        ("1d12h", 129_600),
    ],
)
def test_durations(word: str, seconds: int) -> None:
    assert cmd.parse_duration(word) == seconds


@pytest.mark.parametrize("word", ["0m", "2", "h", "2y", "1.5h", "9999999w", "-1h", "2 h", "1h0"])
def test_what_is_not_a_duration(word: str) -> None:
    assert cmd.parse_duration(word) is None


# --- what the app says ----------------------------------------------------------------


def test_durations_and_times_as_said() -> None:
    assert duration_words(7_200) == "2 hours"
    assert duration_words(600) == "10 minutes"
    assert duration_words(5_400) == "90 minutes"
    assert duration_words(86_400) == "1 day"
    assert duration_words(14 * 86_400) == "2 weeks"
    assert duration_words(59) == "1 minute"
    assert when(NOW + HOUR_MS, NOW, UTC) == "13:10"
    assert when(NOW + 30 * 86_400_000, NOW, UTC) == "31 January 2026 12:10"
    set_language("fa")
    assert plain(duration_words(7_200)) == "۲ ساعت"
    assert plain(when(NOW + HOUR_MS, NOW, UTC)) == "۱۳:۱۰"  # noqa: RUF001


def test_moderation_sentences() -> None:
    def said(action: str, **kwargs: Any) -> str:
        kwargs.setdefault("now", NOW)
        kwargs.setdefault("tz", UTC)
        return plain(moderation_line(action, "bob", "ali", "#dev", **kwargs))

    assert said("kick", reason="spam") == "ali kicked bob from #dev: spam"
    assert said("kick") == "ali kicked bob from #dev"
    until = NOW + 2 * HOUR_MS
    banned = said("ban", reason="spam", until=until, ts=NOW)
    assert banned == "ali banned bob from #dev until 14:10 (2 hours): spam"
    assert said("ban") == "ali banned bob from #dev"
    assert said("op") == "ali made bob an op of #dev"
    assert said("deop") == "ali removed bob from the ops of #dev"
    assert said("invite") == "ali invited bob to #dev"
    assert said("mute", until=until, ts=NOW) == "ali muted bob in #dev until 14:10 (2 hours)"
    assert said("unmute") == "ali unmuted bob in #dev"
    assert said("kick", reason="spam", you=True) == (
        "ali removed you from #dev: spam — you can /join it again"
    )
    assert said("ban", reason="spam", until=until, ts=NOW, you=True) == (
        "ali banned you from #dev until 14:10 (2 hours): spam — you cannot join it again until then"
    )
    assert said("ban", you=True) == "ali banned you from #dev — you cannot join it again"
    assert said("mute", reason="shouting", you=True) == (
        "ali muted you in #dev: shouting: you can read but not post"
    )
    assert said("invite", you=True) == "ali invited you to #dev — /join #dev"
    server = plain(moderation_line("ban", "bob", "root", "", reason="spam", now=NOW))
    assert server == "root banned bob from the server: spam"
    assert plain(moderation_line("frobnicate", "bob", "ali", "#dev")) == (
        "ali: frobnicate bob in #dev"
    )  # an action this version does not know
    assert plain(moderation_line("topic", "", "ali", "#dev", reason="Deploys")) == (
        "ali set the topic of #dev: Deploys"
    )
    assert plain(moderation_line("topic", "", "ali", "#dev")) == "ali cleared the topic of #dev"


def test_refusals_are_said_in_the_apps_words() -> None:
    def said(code: str, message: str = "the server's words", **kwargs: str) -> str:
        return plain(refusal(code, message, **kwargs))

    assert said("not_op", room="#dev", action="kick") == (
        "only the owner or an op of #dev can do that"
    )
    assert said("not_op", room="#dev", action="op") == (
        "only the owner of #dev (or an admin) can make someone an op"
    )
    assert said("not_op", action="modlog") == (
        "only an admin of the server can read the whole moderation log"
    )
    assert said("not_admin") == "only an admin of the server can do that"
    assert said("cannot_moderate", name="carol").startswith("you cannot do that to carol:")
    assert said("private_room", room="#secret") == (
        "#secret is private: you need an invitation to join it"
    )
    assert said("banned", "banned until 14:10: spam", room="#dev") == (
        "banned until 14:10: spam"  # (in English the server's words say all of it, once)
    )
    assert said("no_such_user", "bob is not in #dev", name="bob", room="#dev", action="kick") == (
        "bob is not in #dev"
    )
    assert said("rate_limited", "slow down", action="kick").startswith("too many requests")
    assert said("rate_limited", "slow down: 2 a second") == "slow down: 2 a second"  # a message
    assert said("invalid_name", "names are 1 to 24 letters") == "names are 1 to 24 letters"
    set_language("fa")
    assert said("not_admin") != "only an admin of the server can do that"  # translated


# --- the state: what each event does --------------------------------------------------


def welcome(**fields: Any) -> Welcome:
    defaults: dict[str, Any] = {
        "version": 2,
        "server": "s",
        "name": "ali",
        "rooms": ("#lobby", "#dev"),
        "users": ("ali", "bob", "carol"),
    }
    return Welcome(**(defaults | fields))


def chat_state(**fields: Any) -> ChatState:
    state = ChatState("ali", lambda: NOW, tz=UTC)
    state.connected(welcome(**fields))
    state.apply(
        RoomState("#dev", ("ali", "bob", "carol"), seq=0, epoch=1, owner="ali", ops=("carol",))
    )
    state.current = "#dev"
    state.take_changes()
    return state


def texts(state: ChatState, key: str = "#dev") -> list[str]:
    view = state.conversation(key)
    assert view is not None
    return [plain(e.text) for e in view.entries if not e.hidden]


def test_a_moderation_told_twice_makes_one_line_and_its_left_none() -> None:
    state = chat_state()
    kicked = Moderated("#dev", "kick", "bob", "ali", "spam", 0, NOW)
    state.moderated(kicked)  # our request's answer
    state.apply(kicked)  # the room's copy (another server's, say)
    state.apply(Left("#dev", "bob", NOW, "kick"))
    assert texts(state) == ["ali kicked bob from #dev: spam"]
    assert "bob" not in state.rooms["#dev"].members
    state.apply(Left("#dev", "carol", NOW, "part"))  # an ordinary leave still says so
    assert texts(state)[-1] == "carol left #dev"


def test_ops_follow_op_and_deop_and_room_details() -> None:
    state = chat_state()
    view = state.rooms["#dev"]
    assert (view.role("ALI"), view.role("carol"), view.role("bob")) == ("owner", "op", "")
    state.apply(Moderated("#dev", "op", "bob", "ali", ts=NOW))
    assert view.role("bob") == "op"
    state.apply(Moderated("#dev", "deop", "Carol", "ali", ts=NOW + 1))
    assert view.ops == ("bob",)
    state.apply(RoomDetails("#dev", owner="ali", ops=("bob", "dave"), change="ops", by="ali"))
    assert view.ops == ("bob", "dave")
    assert texts(state) == ["ali made bob an op of #dev", "ali removed Carol from the ops of #dev"]


def test_a_server_wide_ban_is_told_in_the_lobby_and_where_they_were() -> None:
    state = chat_state()
    state.apply(Moderated("", "ban", "bob", "root", "spam", 0, NOW))
    state.apply(Left("#lobby", "bob", NOW, "ban"))
    state.apply(Left("#dev", "bob", NOW, "ban"))
    assert texts(state, "#lobby")[-1] == "root banned bob from the server: spam"
    assert texts(state) == ["bob was banned from the server"]
    assert "bob" not in state.rooms["#dev"].members


def test_the_kicked_user_is_told_and_the_room_closes() -> None:
    state = chat_state()
    state.apply(Moderated("#dev", "kick", "ali", "carol", "spam", 0, NOW))
    state.apply(Left("#dev", "ali", NOW, "kick"))
    state.apply(Parted("#dev"))
    changes = state.take_changes()
    assert "#dev" not in state.rooms and changes.closed == ["#dev"]
    assert changes.switch_to == "#lobby"
    assert texts(state, "#lobby")[-1] == (
        "carol removed you from #dev: spam — you can /join it again"
    )
    assert not any("another device" in text for text in texts(state, "#lobby"))


def test_a_ban_invitation_and_mute_of_the_user() -> None:
    state = chat_state(rooms=("#lobby", "#dev", "#ops"))
    state.apply(RoomState("#ops", ("ali",), seq=0, epoch=2))
    state.current = "#ops"
    state.apply(Moderated("#dev", "ban", "ali", "carol", "spam", NOW + 2 * HOUR_MS, NOW))
    assert "#dev" not in state.rooms
    assert texts(state, "#ops")[-1] == (
        "carol banned you from #dev until 14:10 (2 hours): spam — you cannot join it again "
        "until then"
    )
    state.apply(Moderated("#secret", "invite", "ali", "dave", "", 0, NOW))
    assert texts(state, "#ops")[-1] == "dave invited you to #secret — /join #secret"
    state.apply(Moderated("#ops", "mute", "ali", "dave", "", 0, NOW))
    assert texts(state, "#ops")[-1] == "dave muted you in #ops: you can read but not post"


def test_topic_and_private_changes_say_so_once() -> None:
    state = chat_state()
    assert state.header() == ""  # no topic, not private: no header
    state.apply(RoomDetails("#dev", topic="Deploys", topic_by="carol", topic_ts=NOW))
    assert texts(state) == []  # told after a welcome: nothing changed before our eyes
    assert plain(state.header()) == "#dev · Deploys"
    details = RoomDetails(
        "#dev", topic="Reviews", topic_by="carol", topic_ts=NOW, change="topic", by="carol"
    )
    state.apply(details)
    state.room_details(details, asked="topic")  # (the same change again: no line)
    state.apply(RoomDetails("#dev", topic="Reviews", private=True, change="private", by="ali"))
    assert plain(state.header()) == "#dev · private · Reviews"
    state.apply(RoomDetails("#dev", private=True, change="topic", by="ali"))
    assert plain(state.header()) == "#dev · private: only those invited can join"
    assert texts(state) == [
        "carol set the topic of #dev: Reviews",
        "#dev is private now: only those invited can join it (ali)",
        "ali cleared the topic of #dev",
    ]
    state.current = "#lobby"
    assert state.header() == ""  # the room on screen has neither


def test_the_answer_to_our_own_topic_says_it_was_us() -> None:
    state = chat_state()
    state.room_details(RoomDetails("#dev", topic="Deploys", topic_by="ali"), asked="topic")
    assert texts(state) == ["ali set the topic of #dev: Deploys"]


def test_messages_of_ignored_people_are_hidden_and_counted_on_one_line() -> None:
    state = chat_state(ignored=("BOB",))
    for seq, sender in enumerate(("bob", "carol", "bob", "bob"), 1):
        state.apply(Message("#dev", seq, sender, f"message {seq}", NOW))
    view = state.rooms["#dev"]
    shown = [(e.kind, plain(e.text)) for e in view.entries if not e.hidden]
    assert shown == [
        (Kind.MESSAGE, "message 2"),
        (Kind.SYSTEM, "3 messages from ignored people hidden"),
    ]
    assert sum(e.hidden for e in view.entries) == 3
    assert state.unread.counts("#dev").unread == 1  # carol's: theirs are never unread
    changes = state.take_changes()
    assert changes.relayout == {"#dev": 1}  # the count line moved from under bob's first
    state.apply(Ignored(names=()))  # another device stopped ignoring bob: shown again
    assert texts(state) == ["message 1", "message 2", "message 3", "message 4"]
    assert state.take_changes().shown_again == {"#dev"}
    state.set_ignored(("carol",))
    assert texts(state) == [
        "message 1",
        "message 3",
        "message 4",
        "1 message from ignored people hidden",
    ]


def test_history_of_ignored_people_is_hidden_too() -> None:
    state = chat_state(ignored=("bob",))
    view = state.rooms["#dev"]
    page = HistoryPage(
        "#dev",
        1,
        (
            Message("#dev", 1, "bob", "old one", NOW),
            Message("#dev", 2, "carol", "old two", NOW),
        ),
        complete=True,
    )
    older, complete, start = state.history_entries(view, page)
    state.prepend_history(view, older, complete, start)
    assert texts(state) == [
        "start of the room",
        "old two",
        "── earlier messages above ──",
        "1 message from ignored people hidden",
    ]


def test_a_server_wide_ban_ends_the_session_with_its_sentence() -> None:
    state = chat_state()
    state.apply(Bye("banned", "root banned you from the server: spam"))
    assert state.banner is not None
    assert plain(state.banner) == "Banned from the server: root banned you from the server: spam"
    assert (
        texts(state)[-1] == "root banned you from the server: spam; this device will not reconnect"
    )
    state = chat_state()
    state.apply(Bye("kicked"))
    assert state.banner is not None and plain(state.banner) == (
        "Removed from the server: an admin disconnected you"
    )


def test_mod_log_lines_newest_last() -> None:
    state = chat_state()
    page = ModLogPage(
        (
            ModEntry(3, NOW, "#dev", "ban", "bob", "carol", "spam", NOW + 2 * HOUR_MS),
            ModEntry(2, NOW - 86_400_000, "#dev", "kick", "bob", "carol", "spam"),
            ModEntry(1, NOW - 86_400_000, "#dev", "create", "ali", "ali"),
        ),
        more=True,
    )
    state.mod_log("#dev", "#dev", page)
    assert texts(state) == [
        "moderation log of #dev:",
        "(older entries are not shown)",
        "31 December 2025 12:10 — ali created #dev",
        "31 December 2025 12:10 — carol kicked bob from #dev: spam",
        "12:10 — carol banned bob from #dev until 14:10 (2 hours): spam",
    ]
    state.mod_log("#dev", "#dev", ModLogPage(()))
    assert texts(state)[-1] == "nothing in the moderation log of #dev"


def test_what_the_server_says_of_moderation_is_made_safe() -> None:
    hostile = Moderated(
        "#dev", "kick", "bob\x1b[2J", "ali\n[bold]", "spam\x1b]52;c;aGk=\x07", 2**62, NOW
    )
    cleaned = clean(hostile)
    assert "\x1b" not in cleaned.name + cleaned.by + cleaned.reason
    assert "\n" not in cleaned.by
    assert cleaned.until <= 253_402_128_000_000  # a time the app can show
    details = clean(RoomDetails("#dev", topic="a\x1b[31mred\u202etopic", ops=("x\x07",)))
    assert details.topic == "a␛[31mredtopic" and details.ops == ("x␇",)
    names = clean(Ignored(("bob\x1b",)))
    assert names.names == ("bob␛",)


# --- the app against a real server ----------------------------------------------------


Keyed = Callable[..., Awaitable[ChatClient]]


@pytest.fixture
async def keyed(server: ChatServer) -> AsyncIterator[Keyed]:
    """Connect clients whose names are registered to their keys (an op must have one), to
    `server` (or to the server `on`); they are dropped after the test, once its apps are
    closed."""
    made: list[ChatClient] = []

    async def connect(
        name: str, key: SigningKey | None = None, on: ChatServer | None = None
    ) -> ChatClient:
        host, port = (on or server).address
        client = await ChatClient.connect(name, host, port, key=key or SigningKey.generate())
        made.append(client)
        return client

    yield connect
    for client in made:
        await client.abort()


def header(app: Any) -> str:
    """What the room's header says ("" while it is hidden)."""
    widget = app.query_one("#header", BidiText)
    return plain(widget.text) if widget.has_class("-visible") else ""


def errors(app: Any) -> list[str]:
    return [plain(e.text) for e in app.query_one(ChatLog).entries if e.kind is Kind.ERROR]


async def owner_in(pilot: Pilot[Any], room: str) -> None:
    """The app's user makes `room` (and owns it, their name being registered)."""
    app = pilot.app
    assert isinstance(app, ChatApp)
    await until(pilot, lambda: connected(app))
    await typed(pilot, f"/join {room}")
    await until(pilot, lambda: app.current_room == room and connected(app))
    await until(pilot, lambda: app.conversation(room).owner == app.my_name)


async def typed(pilot: Pilot[Any], line: str) -> None:
    """Send `line` from the composer as if typed (set at once: these tests are not about
    typing)."""
    pilot.app.query_one(ChatInput).value = line
    await pilot.press("enter")


async def test_topic_and_private_from_the_owners_app(server: ChatServer, keyed: Keyed) -> None:
    app = make_app(server.address, "ali", key=SigningKey.generate())
    async with app.run_test(size=(100, 30)) as pilot:
        await owner_in(pilot, "#dev")
        bob = await keyed("bob")
        await bob.join("#dev")
        assert header(app) == ""  # no topic, not private: no header at all
        await typed(pilot, "/topic Deploys on   Thursdays")
        await until(
            pilot, lambda: "ali set the topic of #dev: Deploys on Thursdays" in log_texts(app)
        )
        assert header(app) == "#dev · Deploys on Thursdays"
        told = await expect(bob, RoomDetails, change="topic")
        assert (told.topic, told.by) == ("Deploys on Thursdays", "ali")
        await typed(pilot, "/topic")
        await until(pilot, lambda: log_texts(app)[-1].startswith("topic of #dev: Deploys"))
        assert "(set by ali, " in log_texts(app)[-1]
        await typed(pilot, "/private on")
        await until(pilot, lambda: header(app) == "#dev · private · Deploys on Thursdays")
        said = "#dev is private now: only those invited can join it (ali)"
        assert log_texts(app).count(said) == 1
        assert (await expect(bob, RoomDetails, change="private")).private
        await typed(pilot, "/private")
        await until(
            pilot, lambda: log_texts(app)[-1] == "#dev is private: only those invited can join it"
        )
        await typed(pilot, "/topic -")
        await until(pilot, lambda: "ali cleared the topic of #dev" in log_texts(app))
        assert header(app) == "#dev · private: only those invited can join"
        await typed(pilot, "/private off")
        await until(pilot, lambda: "#dev is open to everyone now (ali)" in log_texts(app))
        assert header(app) == ""
        await pilot.press("alt+1")  # the lobby: its own header (none)
        await until(pilot, lambda: app.current_room == "#lobby")
        await typed(pilot, "/topic hello")
        await until(pilot, lambda: bool(errors(app)))  # (only an admin sets the lobby's)


async def test_kick_ban_mute_and_ops_from_the_owners_app(server: ChatServer, keyed: Keyed) -> None:
    app = make_app(server.address, "ali", key=SigningKey.generate())
    async with app.run_test(size=(100, 30)) as pilot:
        await owner_in(pilot, "#dev")
        bob, carol = await keyed("bob"), await keyed("carol")
        await bob.join("#dev")
        await carol.join("#dev")
        await until(pilot, lambda: sidebar_users(app) == ("ali", "bob", "carol"))
        members = app.query_one(Sidebar)

        await typed(pilot, "/op carol")
        await until(pilot, lambda: "ali made carol an op of #dev" in log_texts(app))
        await until(pilot, lambda: "● @carol" in members.text() and "◉ ~ali" in members.text())
        assert (await expect(bob, Moderated, action="op")).name == "carol"
        await typed(pilot, "/deop carol")
        await until(pilot, lambda: "ali removed carol from the ops of #dev" in log_texts(app))
        await until(pilot, lambda: "@carol" not in members.text())

        await typed(pilot, "/mute bob shouting 30m")
        said = "ali muted bob in #dev until {} (30 minutes): shouting"
        await until(
            pilot, lambda: any(t.endswith("(30 minutes): shouting") for t in log_texts(app))
        )
        muted = await expect(bob, Moderated, action="mute")
        assert muted.until - muted.ts == 30 * 60_000 and muted.reason == "shouting"
        shown = when(muted.until, app.state.clock(), UTC)
        assert said.format(shown) in log_texts(app)
        with pytest.raises(Exception, match="muted"):
            await bob.send("#dev", "LOUD")
        await typed(pilot, "/unmute bob")
        await until(pilot, lambda: "ali unmuted bob in #dev" in log_texts(app))

        await typed(pilot, "/kick bob spam, again")
        await until(pilot, lambda: sidebar_users(app) == ("ali", "carol"))
        await expect(bob, Parted, room="#dev")
        await until(pilot, lambda: "ali kicked bob from #dev: spam, again" in log_texts(app))
        assert not any(t.startswith("bob left") for t in log_texts(app))  # one line, not two
        assert log_texts(app).count("ali kicked bob from #dev: spam, again") == 1

        await bob.join("#dev")  # a kick keeps the door open
        await until(pilot, lambda: "bob" in sidebar_users(app))
        await typed(pilot, "/ban bob flooding the room 2h")
        await until(pilot, lambda: sidebar_users(app) == ("ali", "carol"))
        banned = await expect(bob, Moderated, action="ban")
        assert banned.until - banned.ts == 2 * HOUR_MS and banned.reason == "flooding the room"
        ends = when(banned.until, NOW, UTC)
        line = f"ali banned bob from #dev until {ends} (2 hours): flooding the room"
        await until(pilot, lambda: line in log_texts(app))
        with pytest.raises(Exception, match="banned"):
            await bob.join("#dev")
        await typed(pilot, "/unban bob")
        await until(pilot, lambda: "ali lifted the ban on bob in #dev" in log_texts(app))
        await bob.join("#dev")
        await until(pilot, lambda: "bob" in sidebar_users(app))

        await typed(pilot, "/modlog")
        await until(pilot, lambda: "moderation log of #dev:" in log_texts(app))
        await until(pilot, lambda: log_texts(app)[-1].endswith("ali lifted the ban on bob in #dev"))
        log = log_texts(app)
        start = log.index("moderation log of #dev:")
        entries = [t.split(" — ", 1)[1] for t in log[start + 1 :]]
        assert entries[0] == "ali created #dev"  # the oldest first, the newest last
        assert "ali kicked bob from #dev: spam, again" in entries
        assert entries.index("ali made carol an op of #dev") < entries.index(
            "ali kicked bob from #dev: spam, again"
        )


async def test_an_invitation_to_a_private_room(server: ChatServer, keyed: Keyed) -> None:
    app = make_app(server.address, "ali", key=SigningKey.generate())
    async with app.run_test(size=(100, 30)) as pilot:
        await owner_in(pilot, "#secret")
        bob, carol = await keyed("bob"), await keyed("carol")
        await typed(pilot, "/private on")
        await until(pilot, lambda: header(app).startswith("#secret · private"))
        with pytest.raises(Exception, match="private"):
            await carol.join("#secret")
        await typed(pilot, "/invite bob")
        await until(pilot, lambda: "ali invited bob to #secret" in log_texts(app))
        invited = await expect(bob, Moderated, action="invite")
        assert (invited.room, invited.by) == ("#secret", "ali")
        state = await bob.join("#secret")
        assert state.private and state.owner == "ali"
        await until(pilot, lambda: "bob" in sidebar_users(app))


async def test_refusals_are_told_in_a_sentence(server: ChatServer, keyed: Keyed) -> None:
    ali = await keyed("ali")
    await ali.join("#dev")  # ali owns it
    app = make_app(server.address, "bob", key=SigningKey.generate())
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: connected(app))
        await typed(pilot, "/join #dev")
        await until(pilot, lambda: app.current_room == "#dev")
        await typed(pilot, "/kick ali")
        await until(pilot, lambda: "only the owner or an op of #dev can do that" in errors(app))
        await typed(pilot, "/topic mine now")
        await until(
            pilot, lambda: errors(app).count("only the owner or an op of #dev can do that") == 2
        )
        await typed(pilot, "/op bob")
        await until(pilot, lambda: any("make someone an op" in e for e in errors(app)))
        await typed(pilot, "/modlog")
        await until(
            pilot,
            lambda: "only the owner or an op of #dev can read its moderation log" in errors(app),
        )
        await typed(pilot, "/ban ali for ten years")  # a reason, and no duration
        await until(
            pilot, lambda: errors(app).count("only the owner or an op of #dev can do that") == 3
        )
        await typed(pilot, "/query ali")
        await until(pilot, lambda: app.current_room == "@ali")
        await typed(pilot, "/kick ali")
        await until(
            pilot, lambda: "/kick works in a room, not in a private conversation" in errors(app)
        )
        await typed(pilot, "/modlog")
        await until(
            pilot, lambda: "/modlog works in a room, or name one: /modlog #ROOM" in errors(app)
        )
        await typed(pilot, "/ignore bob")  # ourselves
        await until(pilot, lambda: "you cannot ignore yourself" in errors(app))


async def test_the_kicked_and_banned_users_view(server: ChatServer, keyed: Keyed) -> None:
    ali = await keyed("ali")
    await ali.join("#dev")
    app = make_app(server.address, "bob", key=SigningKey.generate())
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: connected(app))
        await typed(pilot, "/join #dev")
        await until(pilot, lambda: app.current_room == "#dev" and connected(app))
        await ali.moderate("#dev", "kick", "bob", "spam")
        said = "ali removed you from #dev: spam — you can /join it again"
        await until(pilot, lambda: said in log_texts(app))
        assert app.current_room == "#lobby" and "#dev" not in app.rooms
        assert not any("another device" in t for t in log_texts(app))
        await typed(pilot, "/join #dev")  # the door is open again
        await until(pilot, lambda: app.current_room == "#dev" and connected(app))
        await ali.moderate("#dev", "ban", "bob", "again", 7_200)
        await until(pilot, lambda: "#dev" not in app.rooms)
        banned = next(t for t in log_texts(app) if t.startswith("ali banned you from #dev until"))
        assert banned.endswith("(2 hours): again — you cannot join it again until then")
        await typed(pilot, "/join #dev")
        await until(
            pilot, lambda: any(e.startswith("you are banned from #dev") for e in errors(app))
        )
        refused = next(e for e in errors(app) if e.startswith("you are banned from #dev"))
        assert refused.startswith("you are banned from #dev by ali")  # who, for how long, why
        assert "#dev" not in app.rooms
        await ali.moderate("#dev", "mute", "bob", "", 0)  # not in it: still told
        await until(
            pilot, lambda: "ali muted you in #dev: you can read but not post" in log_texts(app)
        )


async def test_ignored_peoples_messages_are_hidden_with_a_count(
    server: ChatServer, keyed: Keyed
) -> None:
    key = SigningKey.generate()
    app = make_app(server.address, "ali", key=key)
    said = ("one", "two", "three", "carol here")
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: connected(app))
        bob, carol = await keyed("bob"), await keyed("carol")
        other_device = await keyed("ali", key)
        await typed(pilot, "/ignore BOB")
        await until(
            pilot, lambda: any(t.startswith("you ignore BOB now") for t in shown_texts(app))
        )
        assert (await expect(other_device, Ignored)).names == ("bob",)  # on every device
        for text in ("one", "two"):
            await bob.send("#lobby", text)
        await carol.send("#lobby", "carol here")
        await bob.send("#lobby", "three", action=True)
        await until(pilot, lambda: "3 messages from ignored people hidden" in shown_texts(app))
        assert [t for t in shown_texts(app) if t in said] == ["carol here"]
        assert [t for t in log_texts(app) if t in said] == list(said[:2] + said[3:] + said[2:3])
        assert shown_texts(app)[-1] == "3 messages from ignored people hidden"  # moved down
        assert sum("ignored people" in t for t in shown_texts(app)) == 1  # one line, not three
        rows = [app.query_one(ChatLog).render_line(y).text for y in range(26)]
        assert not any(word in row for row in rows for word in ("one", "two", "three"))
        counted = [row for row in rows if "ignored people hidden" in row]  # (as drawn, too)
        assert len(counted) == 1 and "3 messages" in counted[0]
        assert app.unread.counts("#lobby").unread <= 1  # (carol's at most)
        await typed(pilot, "/ignore")
        await until(pilot, lambda: "you ignore: bob" in shown_texts(app))
        await bob.private("ali", "psst")  # the server keeps it from us
        await typed(pilot, "/unignore bob")
        await until(pilot, lambda: "you no longer ignore bob" in shown_texts(app))
        assert [t for t in shown_texts(app) if t in said] == ["one", "two", "carol here", "three"]
        assert not any("ignored people hidden" in t for t in shown_texts(app))
        assert "@bob" not in app.privates


async def test_ignoring_on_another_device_hides_here_too(server: ChatServer, keyed: Keyed) -> None:
    key = SigningKey.generate()
    app = make_app(server.address, "ali", key=key)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: connected(app))
        bob = await keyed("bob")
        await bob.send("#lobby", "before")
        await until(pilot, lambda: "before" in shown_texts(app))
        other_device = await keyed("ali", key)
        await other_device.ignore("bob")
        await until(pilot, lambda: "before" not in shown_texts(app))
        assert "1 message from ignored people hidden" in shown_texts(app)


async def test_a_server_wide_ban_ends_the_session_for_good(keyed: Keyed) -> None:
    root_key = SigningKey.generate()
    config = ServerConfig(host="127.0.0.1", port=0, rate=RateLimits.unlimited(), admins=("root",))
    server = ChatServer(config)
    await server.start()
    try:
        root = await keyed("root", root_key, on=server)
        bob_key = SigningKey.generate()
        app = make_app(server.address, "bob", key=bob_key, reconnect=True)
        async with app.run_test(size=(100, 30)) as pilot:
            await until(pilot, lambda: connected(app))
            await root.moderate("#lobby", "ban", "bob", "spam")
            await until(pilot, lambda: app.state.connection == "disconnected")
            banner = plain(app.query_one("#banner", BidiText).text)
            assert banner.startswith("Banned from the server: ")
            assert any(e.endswith("; this device will not reconnect") for e in errors(app))
            assert app.state.connection == "disconnected"  # and it stays so
        restarted = make_app(server.address, "bob", key=bob_key)  # started again: refused
        async with restarted.run_test(size=(100, 30)) as pilot:
            await until(pilot, lambda: bool(restarted._exit_renderables))
            [message] = [str(m) for m in restarted._exit_renderables]
            assert message.startswith("tuichat: the server refused us: ")
    finally:
        await server.stop()


# --- what it looks like ----------------------------------------------------------------


@pytest.fixture
def chat(tmp_path: Path) -> Iterator[ServerThread]:
    server = ServerThread(db=str(tmp_path / "history.sqlite3"))
    yield server
    server.stop()


def keyed_on(chat: ServerThread, name: str) -> ChatClient:
    """A client of the server thread whose name is registered to its key."""
    client = chat.run(ChatClient.connect(name, *chat.server.address, key=SigningKey.generate()))
    chat.clients[f"{name} (keyed)"] = client
    return client


async def a_moderated_room(pilot: Pilot[Any], chat: ServerThread, topic: str) -> None:
    """Ali makes #dev, gives it `topic`, makes it private (bob and carol in it), and carol
    an op."""
    app = pilot.app
    assert isinstance(app, ChatApp)
    await owner_in(pilot, "#dev")
    bob, carol = keyed_on(chat, "bob"), keyed_on(chat, "carol")
    for client in (bob, carol):
        chat.run(client.join("#dev"))
    await until(pilot, lambda: sidebar_users(app) == ("ali", "bob", "carol"))
    await typed(pilot, f"/topic {topic}")
    await until(pilot, lambda: header(app).endswith(topic))
    await typed(pilot, "/private on")
    await until(pilot, lambda: app.conversation("#dev").invite_only)
    await typed(pilot, "/op carol")
    await until(pilot, lambda: "carol" in app.query_one(Sidebar).ops)
    chat.run(bob.send("#dev", "the deploy went out, all green"))
    await until(pilot, lambda: "the deploy went out, all green" in shown_texts(app))


def test_a_room_header_with_its_topic(snap_compare: Any, chat: ServerThread) -> None:
    app = make_app(chat.server.address, "ali", key=SigningKey.generate())

    async def run_before(pilot: Pilot[Any]) -> None:
        await a_moderated_room(pilot, chat, "Deploys on Thursdays: ask in #ops before merging")

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_a_persian_topic_in_the_persian_ui(snap_compare: Any, chat: ServerThread) -> None:
    config = Config(name="ali", lang="fa")
    app = make_app(chat.server.address, "ali", key=SigningKey.generate(), config=config)

    async def run_before(pilot: Pilot[Any]) -> None:
        await a_moderated_room(pilot, chat, "استقرار پنج‌شنبه‌ها (بعد از بازبینی) برای v2.1")  # noqa: RUF001

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_the_kicked_users_view(snap_compare: Any, chat: ServerThread) -> None:
    ali = keyed_on(chat, "ali")
    chat.run(ali.join("#dev"))
    app = make_app(chat.server.address, "bob", key=SigningKey.generate())

    async def run_before(pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: connected(app))
        await typed(pilot, "/join #dev")
        await until(pilot, lambda: app.current_room == "#dev" and connected(app))
        chat.run(ali.send("#dev", "bob, please stop pasting logs here"))
        await until(pilot, lambda: "bob, please stop pasting logs here" in shown_texts(app))
        chat.run(ali.moderate("#dev", "kick", "bob", "log spam"))
        await until(pilot, lambda: "#dev" not in app.rooms and app.current_room == "#lobby")
        await until(pilot, lambda: any(t.startswith("ali removed you") for t in shown_texts(app)))

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_the_palette_lists_the_moderation_commands(snap_compare: Any, chat: ServerThread) -> None:
    app = make_app(chat.server.address, "ali", key=SigningKey.generate())

    async def run_before(pilot: Pilot[Any]) -> None:
        await owner_in(pilot, "#dev")
        await pilot.press("ctrl+k", *"ban")
        await until(pilot, lambda: isinstance(app.screen, CommandPalette))
        await until(pilot, lambda: app.screen.query_one("CommandList").option_count == 2)  # type: ignore[attr-defined]

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


async def test_a_palette_entry_asks_and_runs_its_command(server: ChatServer, keyed: Keyed) -> None:
    app = make_app(server.address, "ali", key=SigningKey.generate())
    async with app.run_test(size=(100, 30)) as pilot:
        await owner_in(pilot, "#dev")
        bob = await keyed("bob")
        await bob.join("#dev")
        await until(pilot, lambda: "bob" in sidebar_users(app))
        await pilot.press("ctrl+k", *"kick")
        await until(pilot, lambda: isinstance(app.screen, CommandPalette))
        await until(pilot, lambda: app.screen.query_one("CommandList").option_count >= 1)  # type: ignore[attr-defined]
        await pilot.press("enter")
        await until(pilot, lambda: bool(app.screen.query("#answer")))
        await pilot.press(*"bob go away", "enter")
        await until(pilot, lambda: "ali kicked bob from #dev: go away" in shown_texts(app))
        await pilot.press("ctrl+k", *"topic")
        await until(pilot, lambda: isinstance(app.screen, CommandPalette))
        await until(pilot, lambda: app.screen.query_one("CommandList").option_count >= 1)  # type: ignore[attr-defined]
        await pilot.press("enter")
        await until(pilot, lambda: bool(app.screen.query("#answer")))
        await pilot.press(*"Reviews", "enter")
        await until(pilot, lambda: header(app) == "#dev · Reviews")


async def test_a_hostile_topic_is_shown_as_plain_text() -> None:
    fake = FakeServer(Welcome(version=2, server="fake", name="ali", rooms=("#lobby",), users=()))
    await fake.start()
    app = make_fake_app(fake)
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            await until(pilot, lambda: connected(app))
            topic = "[@click=app.quit]click[/] \x1b]0;pwned\x07 \u202eevil [bold"
            fake.send(RoomDetails("#lobby", topic=topic, topic_by="x\x1b[2J", private=True))
            await until(pilot, lambda: header(app) != "")
            shown = header(app)
            assert "[@click=app.quit]click[/]" in shown and "[bold" in shown
            assert "\x1b" not in shown and "\u202e" not in shown and "␛]0;pwned␇" in shown
            text, drawn = rendered(app)
            assert "[@click=app.quit]click[/]" in text
            assert "\x1b]0;pwned" not in drawn  # no title change reaches the terminal
            assert app.is_running  # nothing in it was taken as an action
    finally:
        await fake.stop()


def test_a_server_wide_step_is_over_once_they_are_back() -> None:
    state = chat_state()
    state.apply(Moderated("", "kick", "eve", "root", "", 0, NOW))
    state.apply(Left("#lobby", "eve", NOW, "kick"))
    state.apply(Joined("#lobby", "eve", NOW + 1))  # back online
    state.apply(Joined("#dev", "eve", NOW + 2))
    state.apply(Moderated("#dev", "kick", "eve", "ali", "", 0, NOW + 3))
    state.apply(Left("#dev", "eve", NOW + 3, "kick"))
    assert texts(state)[-1] == "ali kicked eve from #dev"  # one line, no "…from the server"
    assert not any("from the server" in text for text in texts(state))


def test_an_uninvited_member_of_a_private_room_is_told_and_the_room_closes() -> None:
    state = chat_state()
    state.apply(RoomDetails("#dev", private=True, change="private", by="carol"))
    state.apply(Moderated("#dev", "uninvite", "ali", "carol", "", 0, NOW))
    state.apply(Left("#dev", "ali", NOW, "kick"))
    state.apply(Parted("#dev"))
    assert "#dev" not in state.rooms
    assert texts(state, "#lobby")[-1] == "carol withdrew your invitation to #dev"
    assert not any("another device" in text for text in texts(state, "#lobby"))


def test_a_reason_reads_after_its_verb_in_persian() -> None:
    """The colon and the reason follow the verb in the sentence itself: only the reason is an
    isolate (an isolate around ": reason" took the colon's direction from nothing, and drew it
    on the wrong side of the verb)."""
    set_language("fa")
    try:
        line = moderation_line("kick", "sara", "ali", "#dev", reason="اسپم نفرست", you=True)
    finally:
        set_language("en")
    assert "کرد: \u2068اسپم نفرست\u2069 —" in line  # noqa: RUF001


def test_the_header_reads_right_to_left_in_the_persian_ui_whatever_its_topic() -> None:
    set_language("fa")
    try:
        text = _("{room} · {topic}").format(room="#dev", topic="Sprint planning")
        header = BidiText(max_lines=2)
        header.bidi = Bidi("app")
        header.update(f"\u200f{text}")  # as the app puts it up in a right-to-left UI
        (row,) = header.lines(40)
    finally:
        set_language("en")
    assert row.rstrip().endswith("Sprint planning · #dev")  # the room at the right: read first
    assert row.startswith(" ")  # right-aligned
