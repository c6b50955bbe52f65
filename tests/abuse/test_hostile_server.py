"""A hostile server cannot reach the terminal through the app, crash, freeze or fill it.

The real app connects to a fake server that sends escape sequences (OSC 52 for the clipboard,
OSC 0 for the window title, CSI, C1 controls), bidi overrides and Textual markup in every string
the app shows, values far past the protocol's limits and numbers out of range. The screen the
app draws is then read back, as its text and as the bytes a terminal would get.
"""

from __future__ import annotations

import re
import tracemalloc
from collections.abc import AsyncIterator

import pytest

from tests.app_support import FakeServer, log_texts, make_fake_app, rendered, send_line, until
from tuichat.app.app import ChatApp
from tuichat.app.model import MAX_LOG_CHARS, MAX_LOG_LINES
from tuichat.app.screens.prompt import PromptDialog
from tuichat.app.untrusted import MAX_NAME, MAX_USERS
from tuichat.app.widgets.bidi_text import BidiText
from tuichat.app.widgets.chat_input import ChatInput
from tuichat.app.widgets.chat_log import ChatLog
from tuichat.app.widgets.sidebar import Sidebar
from tuichat.protocol import (
    PROTOCOL_VERSION,
    Bye,
    Error,
    History,
    HistoryPage,
    Joined,
    Left,
    Message,
    Notice,
    PrivateMessage,
    RoomInfo,
    RoomList,
    RoomReset,
    Send,
    Welcome,
)

ESCAPES = (
    "\x1b]52;c;cHduZWQ=\x07"  # OSC 52: write the clipboard
    "\x1b]0;pwned\x07"  # OSC 0: set the window title
    "\x1b]8;;https://evil.invalid\x1b\\link\x1b]8;;\x1b\\"  # OSC 8 hyperlink, ST-terminated
    "\x1b[2J\x1b[H\x1b[31m"  # CSI: clear, home, red
    "\x1bP+q544e\x1b\\"  # DCS
    "\x9b1m\x9d0;c1 title\x9c\x85"  # C1: CSI, OSC, ST, NEL
    "\x00\x07\x08\r\x7f"  # NUL, BEL, BS, CR, DEL
    "\u202eevil\u202c\u2066iso\u2069\u202a\u202b\u202d\u2067\u2068"  # bidi controls
)
MARKUP = "[@click=app.quit]CLICK[/] [bold [/] [link=https://evil.invalid]y[/link] [/]"
EVIL = f"{ESCAPES}{MARKUP}"
BIG = 2**64 - 1
FORBIDDEN = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
"""What no text on the screen may hold (LF ends screen lines; tabs are drawn as spaces)."""
CSI = re.compile(r"\x1b\[[0-9;:?]*[A-Za-z]")
"""The only escape sequences the app itself writes: colours and cursor moves."""
SIZE = (120, 36)


def assert_screen_is_clean(text: str, raw: str) -> None:
    """The screen holds no control or bidi character, and the terminal gets only CSI sequences."""
    assert not FORBIDDEN.findall(text), sorted(set(FORBIDDEN.findall(text)))
    rest = CSI.sub("", raw)
    bad = FORBIDDEN.findall(rest.replace("\n", ""))
    assert not bad, f"the terminal would get {sorted(set(bad))!r}"
    assert "\x1b]" not in raw and "\x1bP" not in raw  # no OSC, no DCS


def evil_welcome(users: int = 50_000) -> Welcome:
    names = [f"!evil{ESCAPES}{MARKUP}", "!" + "n" * 10_000, *(f"u{i:06}" for i in range(users))]
    return Welcome(
        version=PROTOCOL_VERSION,
        server=f"srv{EVIL}" + "s" * 10_000,
        name="ali",
        rooms=("#lobby", f"#r{EVIL}", "#" + "r" * 5_000, *(f"#room{i}" for i in range(500))),
        users=("ali", *names),
        motd=f"motd {EVIL}\nline two",
        limits={"max_frame": BIG, f"k{EVIL}": 0},
    )


def evil_history(request: History) -> HistoryPage:
    old = [
        Message(request.room, seq, f"old{EVIL}", f"history {EVIL}", ts, action=seq % 2 == 0)
        for seq, ts in ((5, -(2**63)), (6, BIG), (7, 2**63 - 1), (8, 0))
    ]
    return HistoryPage(request.room, epoch=BIG, messages=tuple(old), complete=True)


@pytest.fixture
async def fake() -> AsyncIterator[FakeServer]:
    server = FakeServer(evil_welcome())
    server.on_history = evil_history
    await server.start()
    yield server
    await server.stop()


def still_running(app: ChatApp) -> bool:
    return app.is_running and app.return_code is None


async def test_a_hostile_server_reaches_neither_the_terminal_nor_the_markup_parser(
    fake: FakeServer,
) -> None:
    app = make_fake_app(fake)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await until(pilot, lambda: "#lobby" in app.rooms and app.rooms["#lobby"].pages_loaded > 0)
        fake.send(
            Message("#lobby", 20, "bob", "x" * 60_000, ts=-(2**63)),  # 60 KB without a space
            Message("#lobby", 21, f"bob{EVIL}", f"text {EVIL}", ts=BIG),
            Message("#lobby", BIG, "c" * 5_000, "🎉" * 20_000, ts=2**63 - 1, action=True),
            Message(f"#nowhere{EVIL}", 1, "bob", f"lost {EVIL}", ts=-1),
            PrivateMessage(f"eve{EVIL}", "ali", f"psst {EVIL}", ts=BIG, pid=BIG),
            PrivateMessage("ali", f"eve{EVIL}", f"sent {EVIL}", ts=-1),
            Joined("#lobby", f"joiner{EVIL}" + "j" * 10_000, ts=BIG),
            Left("#lobby", "u000001", ts=-1, reason=EVIL),
            Notice(f"notice {EVIL}"),
            Notice(f"room notice {EVIL}", room=f"#r{EVIL}"),
            Error(f"code{EVIL}", f"[/]{EVIL}"),
            RoomReset("#room1", epoch=BIG, seq=BIG),
            RoomList(tuple(RoomInfo(f"#x{i}{EVIL}", BIG) for i in range(5_000))),
            Message("#lobby", 22, "bob", f"last words {MARKUP}", ts=0),
        )
        fake.send_map(
            {"type": "message", "room": "#lobby", "seq": "1", "sender": 5, "text": None, "ts": 1.5},
            {"type": f"unknown{EVIL}", "text": EVIL},
        )
        fake.send(Message("#lobby", 23, "bob", "after the junk", ts=0))
        await until(pilot, lambda: "after the junk" in log_texts(app))
        assert still_running(app)

        text, raw = rendered(app)
        assert_screen_is_clean(text, raw)
        assert not FORBIDDEN.search(app.export_screenshot())
        assert "[@click=app.quit]CLICK[/]" in text  # markup is shown as typed
        assert "␛]52;c;cHduZWQ=␇" in text  # and escapes as harmless pictures
        status = text.splitlines()[0]
        assert "srv␛]52;c;" in status
        assert "● connected" in status  # a long server name leaves room for the rest

        # what the app keeps is cut to size, whatever the server sent
        assert len(app.rooms) <= 64
        assert all(len(room) <= MAX_NAME for room in app.rooms)
        assert len(app.rooms["#lobby"].members) <= MAX_USERS
        assert all(len(user) <= MAX_NAME for user in app.rooms["#lobby"].members)
        sidebar = app.query_one(Sidebar).text()
        assert "more" in sidebar

        # clicking the markup does nothing
        row = next(i for i, line in enumerate(text.splitlines()) if "CLICK" in line)
        await pilot.click(offset=(text.splitlines()[row].index("CLICK"), row))
        await pilot.pause()
        assert still_running(app)

        # the 60 KB line renders, in the middle too
        log = app.query_one(ChatLog)
        log.scroll_to(y=300, animate=False, immediate=True)
        await pilot.pause()
        text, raw = rendered(app)
        assert "x" * 60 in text
        assert_screen_is_clean(text, raw)

        # the composer still works
        await pilot.press("ctrl+end")
        app.query_one(ChatInput).focus()
        await send_line(pilot, "still here")
        await until(pilot, lambda: "still here" in log_texts(app))
        assert any(isinstance(e, Send) and e.text == "still here" for e in fake.received)

        # toasts are plain text too
        app.notify(f"toast {MARKUP}")
        await until(pilot, lambda: "toast [@click=app.quit]CLICK[/] [bold [/]" in rendered(app)[0])
        app.clear_notifications()

        # a goodbye in markup that would not parse, then the connection ends
        fake.send(Bye(reason=EVIL, message=f"[/]{EVIL}"))
        fake.hang_up()
        banner = app.query_one("#banner", BidiText)
        await until(pilot, lambda: banner.has_class("-visible"))
        await until(pilot, lambda: app.query_one("#status").state == "disconnected")  # type: ignore[attr-defined]
        await pilot.pause()
        text, raw = rendered(app)
        assert_screen_is_clean(text, raw)
        shown = str(banner.render()).replace("\n", " ")  # (its lines, as wrapped)
        assert shown.startswith("The server is going away: [/]␛]52;c;")
        assert "[@click=app.quit]CLICK[/]" in text
        row = next(i for i, line in enumerate(text.splitlines()) if "CLICK" in line)
        assert row < 5  # in the banner, under the status line
        await pilot.click(offset=(text.splitlines()[row].index("CLICK"), row))
        await pilot.pause()
        assert still_running(app)
    assert app.return_code is None  # nothing quit it; the test did


async def test_a_hostile_refusal_of_our_name_is_shown_as_plain_text() -> None:
    server = FakeServer(evil_welcome(users=0))
    server.on_hello = lambda hello: [
        Error("name_taken", f"refused {MARKUP} {ESCAPES}", ref=getattr(hello, "ref", None))
    ]
    await server.start()
    app = make_fake_app(server)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, PromptDialog))
        await pilot.pause()
        text, raw = rendered(app)
        assert_screen_is_clean(text, raw)
        assert "refused [@click=app.quit]CLICK[/] [bold [/]" in text
        assert "␛]52;c;cHduZWQ=␇" in text
        row = next(i for i, line in enumerate(text.splitlines()) if "CLICK" in line)
        await pilot.click(offset=(text.splitlines()[row].index("CLICK"), row))
        await pilot.pause()
        assert still_running(app)
        await pilot.press("escape")  # gives up: the app quits, saying why
    assert app.return_code == 1
    await server.stop()


async def test_a_flood_from_the_server_leaves_the_app_memory_bounded(fake: FakeServer) -> None:
    fake.welcome = evil_welcome(users=10)
    app = make_fake_app(fake)
    burst, bursts = 250, 12
    text = "y" * 4_000
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: "#lobby" in app.rooms and app.rooms["#lobby"].pages_loaded > 0)
        tracemalloc.start()
        try:
            baseline, _ = tracemalloc.get_traced_memory()
            tracemalloc.reset_peak()
            seq = 100
            for _ in range(bursts):
                fake.send(
                    *(
                        Message("#lobby", seq + i, "bob", f"{seq + i} {text}", 0)
                        for i in range(burst)
                    )
                )
                seq += burst
                last = f"{seq - 1} "
                await until(pilot, lambda last=last: log_texts(app)[-1][: len(last)] == last)  # type: ignore[misc]
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        entries = app.query_one(ChatLog).entries
        assert len(entries) <= MAX_LOG_LINES
        assert sum(len(e.text) for e in entries) <= MAX_LOG_CHARS
        assert entries[-1].text.startswith(f"{seq - 1} ")  # the newest are kept
        # 3,000 messages of 4 KB: 12 MB of text alone if all were kept (the peak was 20 MiB)
        growth = peak - baseline
        assert growth < 12 * 2**20, f"the app grew by {growth / 2**20:.1f} MiB"
        assert still_running(app)
