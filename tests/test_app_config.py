"""The app does what its settings file says: theme, times, rooms to join, keys, notifications."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest

from tests.app_support import connected, log_texts, make_app, send_line, until
from tests.conftest import Connect
from tuichat.app.config import Config, ConfigError, NotifySettings, load_config
from tuichat.app.model import Kind
from tuichat.app.notify import Level
from tuichat.app.widgets.chat_input import ChatInput
from tuichat.app.widgets.chat_log import ChatLog
from tuichat.server import ChatServer


async def test_the_theme_times_and_rooms_of_the_settings_file(
    server: ChatServer, connect: Connect
) -> None:
    config = Config(
        name="ali", theme="solarized-light", timestamps="%H:%M:%S", autojoin=("#rust", "#ops")
    )
    app = make_app(server.address, "ali", config=config)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: connected(app))
        assert app.theme == "solarized-light"
        await until(pilot, lambda: {"#rust", "#ops"} <= set(app.rooms))
        assert app.current_room == "#lobby"  # joined, not switched to
        bob = await connect("bob")
        await bob.send("#lobby", "what time is it")
        await until(pilot, lambda: "what time is it" in log_texts(app))
        log = app.query_one(ChatLog)
        line = next(
            log.render_line(row).text
            for row in range(log.size.height)
            if "what time is it" in log.render_line(row).text
        )
        assert re.match(r"\d\d:\d\d:\d\d bob what time is it", line)  # with seconds


async def test_no_times_when_the_format_is_empty(server: ChatServer, connect: Connect) -> None:
    app = make_app(server.address, "ali", config=Config(name="ali", timestamps=""))
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: connected(app))
        bob = await connect("bob")
        await bob.send("#lobby", "timeless")
        await until(pilot, lambda: "timeless" in log_texts(app))
        log = app.query_one(ChatLog)
        rows = [log.render_line(row).text for row in range(log.size.height)]
        assert any(row.startswith("bob timeless") for row in rows)


async def test_keys_of_the_settings_file_replace_the_defaults(
    server: ChatServer, connect: Connect
) -> None:
    keys = dict(Config().keys, next_unread="alt+u")
    app = make_app(server.address, "ali", config=Config(name="ali", keys=keys))
    bob = await connect("bob")
    await bob.join("#other")
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: connected(app))
        await send_line(pilot, "/join #other")
        await until(pilot, lambda: app.current_room == "#other")
        await pilot.press("alt+1")
        await until(pilot, lambda: app.current_room == "#lobby")
        await bob.send("#other", "over here")
        await until(pilot, lambda: app.unread.counts("#other").unread == 1)
        await pilot.press("alt+a")  # no longer bound
        await pilot.pause()
        assert app.current_room == "#lobby"
        await pilot.press("alt+u")
        await until(pilot, lambda: app.current_room == "#other")


async def test_notification_levels_and_keywords_of_the_settings_file(
    server: ChatServer, connect: Connect
) -> None:
    notify = NotifySettings(keywords=("standup",), conversations={"#lobby": Level.ALL})
    app = make_app(server.address, "ali", config=replace(Config(name="ali"), notify=notify))
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: connected(app))
        assert app.notify_rules.level("#lobby") is Level.ALL
        assert app.unread.keywords == ("standup",)


async def test_a_refused_request_is_told_in_the_log_in_the_servers_words(
    server: ChatServer,
) -> None:
    app = make_app(server.address, "ali")
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: connected(app))
        app.query_one(ChatInput).value = "/join #" + "x" * 80  # too long a room name
        await pilot.press("enter")
        await until(
            pilot,
            lambda: any(e.kind is Kind.ERROR for e in app.query_one(ChatLog).entries),
        )
        error = next(e for e in app.query_one(ChatLog).entries if e.kind is Kind.ERROR)
        assert "room" in error.text.lower()
        assert app.current_room == "#lobby"  # and the app carries on where it was


def test_the_settings_file_in_the_readme_is_a_good_one(tmp_path: Path) -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    example = re.search(r"```toml\n(.*?)```", readme, re.DOTALL)
    assert example is not None
    file = tmp_path / "config.toml"
    file.write_text(example.group(1))
    config = load_config(file)
    assert config.autojoin == ("#rust", "#persian") and config.notify.keywords


def test_a_setting_outside_its_table_is_told_where_it_goes(tmp_path: Path) -> None:
    file = tmp_path / "config.toml"
    file.write_text('name = "ali"\nport = 5599\n')
    with pytest.raises(ConfigError) as raised:
        load_config(file)
    assert str(raised.value).endswith('line 2: unknown key "port" (it goes under [server])')
