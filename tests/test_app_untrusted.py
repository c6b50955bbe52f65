"""The app's one boundary for server data: plain text of bounded size, numbers in range."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from textual.fuzzy import Matcher

from tests.app_support import FIXED_MS, FakeServer, make_fake_app, until
from tuichat.app import untrusted
from tuichat.app.palette import highlight
from tuichat.app.widgets.sidebar import Sidebar
from tuichat.client import Disconnected, Reconnected
from tuichat.protocol import (
    PROTOCOL_VERSION,
    HistoryPage,
    Message,
    Position,
    PrivateMessage,
    RoomInfo,
    RoomList,
    Welcome,
)

UNSAFE = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u2028\u2029\ud800-\udfff]"
)
"""What no cleaned text holds (multi-line text keeps LF and tab)."""
BIG = 2**64 - 1


@pytest.mark.parametrize(
    "raw, shown",
    [
        ("hi \x1b]52;c;cHduZWQ=\x07", "hi ␛]52;c;cHduZWQ=␇"),  # OSC 52: the clipboard
        ("\x1b]0;title\x1b\\", "␛]0;title␛\\"),  # OSC 0: the window title, ST-terminated
        ("\x1b[2J\x1b[31mred", "␛[2J␛[31mred"),  # CSI
        ("\x9b31m\x9d0;t\x9c\x85", "\ufffd31m\ufffd0;t\ufffd\ufffd"),  # C1 controls
        ("nul\x00 del\x7f bs\x08", "nul␀ del␡ bs␈"),
        ("a\r\nb\rc", "a\nb␍c"),  # CR LF is a line break, a lone CR is shown
        ("a\u2028b", "a\nb"),
        ("one\n\ttwo", "one\n\ttwo"),  # multi-line text keeps its lines and tabs
        ("\u202eevil\u202c \u2066iso\u2069 \u202a\u202b\u202d\u2067\u2068", "evil iso "),  # bidi
        ("שלום\u200f \u200e \u061c", "שלום\u200f \u200e \u061c"),  # LRM, RLM, ALM stay
        ("[@click=app.quit]x[/] [bold", "[@click=app.quit]x[/] [bold"),  # markup is just text
        ("lone \ud800 surrogate", "lone \ufffd surrogate"),
        ("سلام 你好 🎉 e\u0301 \u200b\u200d", "سلام 你好 🎉 e\u0301 \u200b\u200d"),
    ],
)
def test_text_shows_controls_as_pictures_and_drops_bidi_overrides(raw: str, shown: str) -> None:
    assert untrusted.text(raw) == shown


def test_a_line_turns_line_breaks_and_tabs_into_spaces() -> None:
    assert untrusted.line("a\nb\tc\r\nd\u2029e\x1b") == "a b c  d e␛"


def test_long_values_are_cut_with_an_ellipsis() -> None:
    assert untrusted.name("n" * 10_000) == "n" * (untrusted.MAX_NAME - 1) + "…"
    assert len(untrusted.line("l" * 10_000)) == untrusted.MAX_LINE
    assert len(untrusted.text("t" * 10**6)) == untrusted.MAX_TEXT
    assert untrusted.text("t" * untrusted.MAX_TEXT) == "t" * untrusted.MAX_TEXT


def test_safe_text_is_returned_as_it_is() -> None:
    safe = "hello — wörld 你好"
    assert untrusted.text(safe) is safe
    assert untrusted.line(safe) is safe


@given(st.text())
def test_no_cleaned_text_holds_a_control_or_bidi_character(raw: str) -> None:
    text = untrusted.text(raw)
    line = untrusted.line(raw)
    assert not UNSAFE.search(text)
    assert not UNSAFE.search(line) and "\n" not in line and "\t" not in line
    assert len(text) <= untrusted.MAX_TEXT and len(line) <= untrusted.MAX_LINE
    assert untrusted.text(text) == text and untrusted.line(line) == line  # idempotent


@given(st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cf", "Cs", "Zl", "Zp"))))
def test_text_without_controls_is_unchanged(raw: str) -> None:
    assert untrusted.text(raw) == raw


@given(st.integers(min_value=-(2**63), max_value=BIG))
def test_every_wire_timestamp_becomes_one_a_calendar_can_show(ts: int) -> None:
    clamped = untrusted.timestamp(ts)
    assert 0 <= clamped <= untrusted.MAX_TS
    for tz in (UTC, timezone(timedelta(hours=14)), timezone(timedelta(hours=-12)), None):
        datetime.fromtimestamp(clamped // 1000, tz)  # does not raise


def test_numbers_are_clamped() -> None:
    assert untrusted.number(-5) == 0
    assert untrusted.number(BIG) == untrusted.MAX_INT
    assert untrusted.number(42) == 42


def test_clean_makes_every_field_of_an_event_safe() -> None:
    welcome = Welcome(
        version=PROTOCOL_VERSION,
        server="srv\x1b]0;t\x07" + "s" * 1000,
        name="ali\u202e",
        rooms=("#lobby", "#\x1b[2J", *(f"#r{i}" for i in range(1000))),
        users=tuple(f"u{i}\x9b" for i in range(untrusted.MAX_USERS + 5)),
        motd="motd\x1b\nline two",
        limits={"max_frame": BIG, "k\x07": -1},
        positions=tuple(Position(f"#r{i}", BIG, -1) for i in range(1000)),
    )
    clean = untrusted.clean(welcome)
    assert clean.server == "srv␛]0;t␇" + "s" * (untrusted.MAX_NAME - 10) + "…"
    assert clean.name == "ali"
    assert clean.rooms[:2] == ("#lobby", "#␛[2J") and len(clean.rooms) == untrusted.MAX_ROOMS
    assert len(clean.users) == untrusted.MAX_USERS and clean.users[0] == "u0\ufffd"
    assert clean.motd == "motd␛\nline two"
    assert clean.limits == {"max_frame": untrusted.MAX_INT, "k␇": 0}
    assert clean.positions[0] == Position("#r0", untrusted.MAX_INT, 0)
    assert len(clean.positions) == untrusted.MAX_ROOMS


def test_clean_cuts_a_history_page_to_its_newest_messages() -> None:
    messages = tuple(Message("#a", i, "bob", f"m{i}", ts=-i) for i in range(1000))
    page = untrusted.clean(HistoryPage("#a", 1, messages))
    assert [m.seq for m in page.messages] == list(range(500, 1000))
    assert all(m.ts == 0 for m in page.messages)


def test_clean_reaches_into_nested_and_client_events() -> None:
    rooms = untrusted.clean(RoomList((RoomInfo("#a\x1b", BIG),)))
    assert rooms.rooms == (RoomInfo("#a␛", untrusted.MAX_INT),)
    assert untrusted.clean(Disconnected("bye\x1b[2J", clean=True)).reason == "bye␛[2J"
    welcome = Welcome(PROTOCOL_VERSION, "s", "n\x07", ("#lobby",), ())
    assert untrusted.clean(Reconnected(welcome)).welcome.name == "n␇"


def test_a_safe_event_is_returned_as_it_is() -> None:
    message = Message("#lobby", 5, "bob", "hello", 1_767_269_400_000)
    assert untrusted.clean(message) is message


def test_the_palette_highlights_names_as_plain_text() -> None:
    name = "Private message [@click=app.quit]x[/] [bold"
    matcher = Matcher("click")
    content = highlight(matcher, name)
    assert content.plain == name  # not parsed: every bracket is still there
    assert content.spans and all(span.style == matcher.match_style for span in content.spans)


async def test_conversation_names_from_the_server_are_plain_text_in_the_sidebar() -> None:
    welcome = Welcome(PROTOCOL_VERSION, "fake", "ali", ("#lobby",), ("ali",))
    fake = FakeServer(welcome)
    await fake.start()
    app = make_fake_app(fake)
    sender = "[b]x[/b]\x1b[2J"
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.rooms.get("#lobby") is not None)
        fake.send(PrivateMessage(sender, "ali", "hi [bold", FIXED_MS, pid=5))
        shown = "@[b]x[/b]␛[2J"
        await until(pilot, lambda: shown in [c.name for c in app.query_one(Sidebar).conversations])
        assert shown in app.query_one(Sidebar).text()  # as it came, not as markup
        assert app.is_running
    await fake.stop()
