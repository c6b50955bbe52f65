"""How the log looks: date lines between days, and colours that follow the theme."""

from __future__ import annotations

import time
from datetime import UTC

from rich.color import Color as RichColor
from textual import events
from textual.app import App, ComposeResult
from textual.color import Color

from tests.app_support import connected, make_app, sidebar_users, until
from tests.conftest import Connect
from tuichat.app.colors import contrast, name_color, readable
from tuichat.app.model import Kind, LogEntry
from tuichat.app.screens.help import HelpScreen
from tuichat.app.screens.prompt import PromptDialog
from tuichat.app.widgets.chat_input import ChatInput
from tuichat.app.widgets.chat_log import ChatLog
from tuichat.app.widgets.sidebar import Sidebar
from tuichat.app.widgets.status_bar import StatusBar
from tuichat.server import ChatServer

DAY = 86_400_000
MON = 1_767_571_200_000  # Monday 5 January 2026 00:00 UTC


class LogApp(App[None]):
    def compose(self) -> ComposeResult:
        yield ChatLog(tz=UTC)


def said(ts: int, text: str, sender: str = "bob") -> LogEntry:
    return LogEntry(Kind.MESSAGE, ts, sender, text)


def shown(log: ChatLog) -> list[str]:
    """Every line of the log as text, top to bottom (scrolling through all of it)."""
    lines = []
    for top in range(0, log.virtual_size.height, log.size.height):
        log.scroll_to(y=top, animate=False, immediate=True)
        for row in range(min(log.size.height, log.virtual_size.height - top)):
            lines.append(log.render_line(row).text.rstrip())
    return lines


async def test_a_date_line_stands_above_the_first_message_and_each_new_day() -> None:
    app = LogApp()
    async with app.run_test(size=(80, 10)) as pilot:
        log = app.query_one(ChatLog)
        entries = [
            said(MON + 9 * 3_600_000, "morning"),
            said(MON + 23 * 3_600_000 + 59 * 60_000, "late"),
            said(MON + DAY + 60_000, "just after midnight"),
            said(MON + 3 * DAY, "thursday"),
        ]
        log.show(entries)
        await pilot.pause()
        lines = shown(log)
        dates = [line.strip("─ ") for line in lines if line.startswith("──")]
        assert dates == [
            "Monday 5 January 2026",
            "Tuesday 6 January 2026",
            "Thursday 8 January 2026",
        ]
        tuesday = next(i for i, line in enumerate(lines) if "Tuesday" in line)
        assert "just after midnight" in lines[tuesday + 1]
        # a new day arriving live gets its line too; the same day does not
        entries.append(said(MON + 3 * DAY + 60_000, "still thursday"))
        entries.append(said(MON + 4 * DAY, "friday"))
        log.entries_added()
        await pilot.pause()
        dates = [line.strip("─ ") for line in shown(log) if line.startswith("──")]
        assert dates[-1] == "Friday 9 January 2026"
        assert len(dates) == 4


async def test_trimming_the_oldest_keeps_the_layout_whole() -> None:
    app = LogApp()
    async with app.run_test(size=(80, 10)) as pilot:
        log = app.query_one(ChatLog)
        entries = [said(MON + i * 3_600_000, f"hour {i}") for i in range(60)]  # 2.5 days
        log.show(entries)
        await pilot.pause()
        for trimmed in (1, 5, 7, 30):  # into the middle of a day, and to its start
            del entries[:trimmed]
            entries.append(said(entries[-1].ts + 3_600_000, "more"))
            log.entries_added(trimmed)
            incremental = (list(log._starts), bytes(log._dated), log._total)
            log._relayout()
            assert (list(log._starts), bytes(log._dated), log._total) == incremental
            assert shown(log)[0].startswith("──")  # the first entry has its date line


async def test_switching_theme_recolours_every_line() -> None:
    app = LogApp()
    async with app.run_test(size=(80, 10)) as pilot:
        log = app.query_one(ChatLog)
        log.show([said(MON, "hello", "ali"), LogEntry(Kind.ERROR, MON, "", "oops")])
        await pilot.pause()

        def colours() -> tuple[RichColor | None, RichColor | None]:
            name = next(s for s in log.render_line(1) if s.text.startswith("ali"))
            error = next(s for s in log.render_line(2) if s.text == "oops")
            assert name.style is not None and error.style is not None
            return name.style.color, error.style.color

        dark_name, dark_error = colours()
        app.theme = "textual-light"
        await pilot.pause()
        light_name, light_error = colours()
        assert (light_name, light_error) != (dark_name, dark_error)
        styles = log.styles_now  # the light theme's own colours, made readable on it
        error = readable(
            Color.parse(app.theme_variables["text-error"]), styles.background, styles.text
        )
        assert light_error == error.rich_color
        name = readable(Color.parse(name_color("ali", dark=False)), styles.background, styles.text)
        assert light_name == name.rich_color


def test_name_colours_on_a_light_theme_are_darker_and_as_stable() -> None:
    for name in ("ali", "Bob", "سارا"):
        dark, light = Color.parse(name_color(name)), Color.parse(name_color(name, dark=False))
        assert light.brightness < dark.brightness
        assert name_color(name.upper(), dark=False) == name_color(name, dark=False)


async def test_a_narrow_terminal_folds_the_sidebar_and_f2_brings_it_back(
    server: ChatServer,
) -> None:
    app = make_app(server.address, "ali")
    async with app.run_test(size=(60, 20)) as pilot:
        await until(pilot, lambda: connected(app))
        sidebar = app.query_one(Sidebar)
        assert not sidebar.display or sidebar.has_class("-collapsed")
        assert "F2" in app.query_one(StatusBar).render().plain
        await pilot.press("f2")
        await until(pilot, lambda: sidebar.region.width > 0)
        assert "ali" in sidebar.text()
        await pilot.resize_terminal(120, 30)  # wide: shown, as wide terminals start
        await pilot.pause()
        assert not sidebar.has_class("-collapsed")
        await pilot.press("f2")  # hidden by choice, wide too
        await pilot.pause()
        assert sidebar.has_class("-collapsed")
        assert app.focused is app.query_one(ChatInput)  # the keys never took the focus


async def test_the_sidebar_keeps_its_rooms_when_many_are_online(
    server: ChatServer, connect: Connect
) -> None:
    app = make_app(server.address, "ali")
    async with app.run_test(size=(100, 24)) as pilot:
        await until(pilot, lambda: connected(app))
        for i in range(40):
            await connect(f"user{i:02d}")
        await until(pilot, lambda: len(sidebar_users(app)) == 41)
        conversations = app.query_one("#sidebar-conversations")
        members = app.query_one("#sidebar-members")
        assert conversations.region.height >= 2  # "Rooms" and the lobby, on screen
        assert members.region.y >= conversations.region.bottom
        assert members.max_scroll_y > 0  # the rest of the members scroll


async def test_f1_shows_every_key_and_command(server: ChatServer) -> None:
    app = make_app(server.address, "ali")
    async with app.run_test(size=(100, 40)) as pilot:
        await until(pilot, lambda: connected(app))
        await pilot.press("f1")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen))
        shown = app.export_screenshot()  # what is on the screen
        for key in ("alt+a", "ctrl+n", "f2", "ctrl+k", "/notify", "/away", "ctrl+j"):
            assert key in shown, key
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, HelpScreen))
        await pilot.press("f1")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen))
        await pilot.press("f1")  # F1 again closes it, as the screen says
        await until(pilot, lambda: not isinstance(app.screen, HelpScreen))


async def test_the_name_dialog_shows_its_whole_reason_on_a_small_terminal() -> None:
    reason = (
        "ali (or a name that looks like it) is registered to another key; pick another name, "
        "or bring its identity here: run tuichat --export-identity ali on the device that has it"
    )

    class DialogApp(App[None]):
        def on_mount(self) -> None:
            self.push_screen(PromptDialog("The name ali is taken", problem=reason))

    for size in ((40, 12), (80, 24)):
        app = DialogApp()
        async with app.run_test(size=size) as pilot:
            await until(pilot, lambda app=app: isinstance(app.screen, PromptDialog))  # type: ignore[misc]
            await pilot.pause()
            box = app.screen.query_one("#problem").region
            answer = app.screen.query_one("#answer").region
            screen = app.screen.region
            assert screen.contains_region(box) and screen.contains_region(answer), size
            assert box.height * box.width >= len(reason)  # room for all of it, wrapped


def test_alt_and_a_digit_from_the_terminal_is_read_as_alt_digit() -> None:
    from textual._xterm_parser import XTermParser

    import tuichat.app.app  # noqa: F401  (the app makes it so)

    parser = XTermParser()
    keys = [event.key for event in parser.feed("\x1b1") if isinstance(event, events.Key)]
    deadline = time.monotonic() + 5
    while not keys and time.monotonic() < deadline:  # the parser's own clock says "no more"
        keys += [event.key for event in parser.tick() if isinstance(event, events.Key)]
    assert keys == ["alt+1"]  # (Textual alone reads it as ¡: inverted_exclamation_mark)


async def test_every_shipped_theme_draws_and_its_text_stands_out(server: ChatServer) -> None:
    app = make_app(server.address, "ali")
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: connected(app))
        log = app.query_one(ChatLog)
        log.entries.extend(
            [said(MON, "live words", "bob"), LogEntry(Kind.SYSTEM, MON, "", "bob joined")]
        )
        log.entries.append(LogEntry(Kind.MESSAGE, MON, "carol", "old words", history=True))
        log.entries_added()
        for theme in sorted(app.available_themes):
            app.theme = theme
            await pilot.pause()
            app.query_one(StatusBar).render()  # (an ANSI theme's colours are names: no crash)
            app.query_one(Sidebar).text()
            lines = [log.render_line(row) for row in range(log.size.height)]
            assert any("live words" in line.text for line in lines), theme
            styles = log.styles_now
            if app.current_theme.name.startswith("ansi"):
                continue  # the terminal's own palette: its colours are the terminal's
            # as readable as the theme's own text, or WCAG's 4.5 (3 for hints) if it is more
            best = contrast(styles.text, styles.background)
            for part in ("system", "history", "own_text", "error", "private"):
                color = getattr(styles, part).color
                assert color is not None
                ratio = contrast(Color.from_rich_color(color), styles.background)
                assert ratio >= min(4.5, best) - 0.01, (theme, part, ratio)
            for history in (False, True):
                name = styles.name("carol", history=history).color
                assert name is not None
                ratio = contrast(Color.from_rich_color(name), styles.background)
                assert ratio >= min(3.0 if history else 4.5, best) - 0.01, (theme, history, ratio)


async def test_clicking_around_never_takes_the_keys_from_the_composer(
    server: ChatServer,
) -> None:
    app = make_app(server.address, "ali")
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: connected(app))
        composer = app.query_one(ChatInput)
        for place in ("#log", "#sidebar", "#status"):
            await pilot.click(place)
            await pilot.press(*"hi")
            assert app.focused is composer, place
        assert composer.value == "hihihi"
