"""The app's bounds: wrapping takes time linear in a line's length; each room's log is bounded."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC

import pytest
from textual.app import App, ComposeResult

from tests.app_support import FIXED_MS, FakeServer, log_texts, make_fake_app, until
from tuichat.app.model import (
    MAX_LOG_CHARS,
    MAX_LOG_LINES,
    TRIM_TO,
    Kind,
    LogEntry,
    RoomView,
)
from tuichat.app.widgets.chat_log import ChatLog
from tuichat.app.wrap import wrap
from tuichat.protocol import PROTOCOL_VERSION, History, HistoryPage, Message, Welcome

LONG = 60_000
"""Bytes of the long line: a client frame holds 64 KiB."""
SHORT = LONG // 10


def best_of(runs: int, work: Callable[[], object]) -> float:
    """The shortest of `runs` timings of `work()`, in seconds."""
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        work()
        timings.append(time.perf_counter() - started)
    return min(timings)


@pytest.mark.parametrize("char", ["x", "你", "é"])
def test_wrapping_a_line_without_spaces_takes_time_linear_in_its_length(char: str) -> None:
    length = LONG // len(char.encode())
    long, short = char * length, char * (length // 10)
    assert "".join(wrap(long, 80)) == long
    t_long = best_of(3, lambda: wrap(long, 80))
    t_short = best_of(3, lambda: wrap(short, 80))
    assert t_long < 0.25, f"{t_long:.2f} s to wrap {LONG} bytes"  # it took 0.3 to 1.1 s
    assert t_long < 30 * t_short + 0.005, (t_short, t_long)  # ten times the text: ~ten times


class LogApp(App[None]):
    def compose(self) -> ComposeResult:
        yield ChatLog(tz=UTC)


@pytest.mark.parametrize("char", ["x", "你"])
async def test_a_60_kb_line_without_spaces_renders_quickly_top_middle_and_bottom(
    char: str,
) -> None:
    app = LogApp()
    async with app.run_test(size=(120, 40)) as pilot:
        log = app.query_one(ChatLog)
        await pilot.pause()

        def show(text: str) -> None:
            log.show([LogEntry(Kind.MESSAGE, FIXED_MS, "bob", text)])
            for y in (0, log.virtual_size.height // 2, log.max_scroll_y):
                log.scroll_to(y=y, animate=False, immediate=True)
                for row in range(log.size.height):
                    log.render_line(row)

        length = LONG // len(char.encode())
        t_short = best_of(2, lambda: show(char * (length // 10)))
        t_long = best_of(2, lambda: show(char * length))
        assert log.virtual_size.height > 300  # it was laid out, over hundreds of lines
        assert t_long < 1.0, f"{t_long:.2f} s to lay out and draw {LONG} bytes"  # it took 20 s
        assert t_long < 30 * t_short + 0.02, (t_short, t_long)


def entry(seq: int, text: str = "") -> LogEntry:
    return LogEntry(Kind.MESSAGE, FIXED_MS, "bob", text or f"m{seq}", seq=seq)


def test_a_room_keeps_its_newest_entries_and_forgets_the_older_seqs() -> None:
    view = RoomView("#lobby", history_complete=True)
    view.entries = [entry(seq) for seq in range(1, MAX_LOG_LINES + 2)]
    view.seqs = {e.seq for e in view.entries}
    assert view.trim() == MAX_LOG_LINES + 1 - TRIM_TO
    assert len(view.entries) == TRIM_TO
    assert view.entries[-1].seq == MAX_LOG_LINES + 1
    assert view.oldest_seq == view.entries[0].seq  # paging goes on from the oldest kept
    assert not view.history_complete
    assert view.trim() == 0


def test_a_room_keeps_a_bounded_amount_of_text() -> None:
    view = RoomView("#lobby")
    view.entries = [entry(seq, "t" * 100_000) for seq in range(1, 41)]
    view.trim()
    assert sum(len(e.text) for e in view.entries) <= MAX_LOG_CHARS
    assert view.entries[-1].seq == 40
    huge = RoomView("#lobby", entries=[entry(1, "t" * (MAX_LOG_CHARS + 1))])
    assert huge.trim() == 0  # the newest entry always stays


def test_members_are_capped_and_kept_sorted() -> None:
    from tuichat.app.untrusted import MAX_USERS

    view = RoomView("#lobby")
    view.add_members(f"u{i}" for i in range(MAX_USERS + 100))
    assert len(view.members) == MAX_USERS
    view.add_members(["Zed", "alice"])
    view.remove_member("u0")
    names = view.sorted_members()
    assert names == tuple(sorted(names, key=str.casefold)) and "u0" not in names


@pytest.fixture
async def fake() -> AsyncIterator[FakeServer]:
    welcome = Welcome(PROTOCOL_VERSION, "fake", "ali", ("#lobby",), ("ali", "bob"))
    server = FakeServer(welcome)
    await server.start()
    yield server
    await server.stop()


async def test_the_log_keeps_at_most_max_log_lines_and_pages_older_ones_back(
    fake: FakeServer,
) -> None:
    def history(request: History) -> HistoryPage:
        if request.before == 0:  # on joining: nothing yet
            return HistoryPage(request.room, 1, (), complete=True)
        first = max(request.before - request.limit, 1)
        older = tuple(
            Message(request.room, s, "bob", f"m{s}", FIXED_MS) for s in range(first, request.before)
        )
        return HistoryPage(request.room, 1, older, complete=first == 1)

    fake.on_history = history
    app = make_fake_app(fake)
    sent = MAX_LOG_LINES + 600
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: "#lobby" in app.rooms and app.rooms["#lobby"].pages_loaded > 0)
        for start in range(1, sent + 1, 1000):
            last = min(start + 999, sent)
            fake.send(
                *(Message("#lobby", s, "bob", f"m{s}", FIXED_MS) for s in range(start, last + 1))
            )
            await until(pilot, lambda last=last: log_texts(app)[-1:] == [f"m{last}"])  # type: ignore[misc]
        log = app.query_one(ChatLog)
        view = app.rooms["#lobby"]
        assert log.entries is view.entries
        assert len(view.entries) <= MAX_LOG_LINES
        oldest = view.oldest_seq
        assert oldest > 1 and not view.history_complete
        texts = log_texts(app)
        assert texts == [f"m{s}" for s in range(oldest, sent + 1)]  # the newest, in order
        assert log.virtual_size.height == len(texts) + 1  # after each trim (and a date line)
        log.scroll_to(y=0, animate=False)  # at the top, the page before the oldest comes in
        await until(pilot, lambda: view.oldest_seq < oldest)
        messages = [e.text for e in view.entries if e.kind is Kind.MESSAGE]
        assert messages == [f"m{s}" for s in range(view.oldest_seq, sent + 1)]
        assert len(view.entries) <= MAX_LOG_LINES
        requests = [e for e in fake.received if isinstance(e, History)]
        assert requests[-1].before == oldest
