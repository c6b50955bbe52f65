"""Notifications: the rules per conversation, the escape asked of the terminal, and the app
writing it for a mention or a private message but not for a muted conversation."""

from __future__ import annotations

import pytest

from tests.app_support import connected, log_texts, make_app, until
from tests.conftest import Connect
from tuichat.app.app import ChatApp
from tuichat.app.notify import Level, NotifyRules, clean_field, desktop_escape, summary
from tuichat.server import ChatServer


def test_levels_per_conversation_with_private_messages_counting_as_mentions() -> None:
    rules = NotifyRules.from_settings("mentions", {"#Random": "none", "#ops": "all"})
    assert rules.wants("#lobby", mention=True)
    assert not rules.wants("#lobby", mention=False)
    assert rules.wants("@bob", mention=False)  # a private message is for us alone
    assert not rules.wants("#random", mention=True)  # muted, whatever the spelling
    assert rules.wants("#OPS", mention=False)
    rules.set_level("@bob", Level.NONE)
    assert not rules.wants("@Bob", mention=False)
    with pytest.raises(ValueError):
        NotifyRules.from_settings("loud")


@pytest.mark.parametrize(
    "hostile",
    [
        "hi\x07\x1b]0;pwned\x07",  # a bell, and an escape that would retitle the terminal
        "a\x1b\\b;c\x9c\x9b2J",  # the string terminator, OSC 777's separator, C1 controls
        "rtl\u202ebidi\u2066 line\u2028sep\nnewline",
    ],
)
def test_nothing_from_the_network_can_end_the_escape_early(hostile: str) -> None:
    escape = desktop_escape(hostile, hostile, environ={})
    # exactly two escapes, each ended where we end it: ESC only at their edges
    assert escape.count("\x1b") == 4
    assert escape.startswith("\x1b]777;notify;") and escape.endswith("\x1b\\")
    title = escape.removeprefix("\x1b]777;notify;").split(";")[0]
    assert title == clean_field(hostile)
    assert not any(ord(c) < 32 or 0x7F <= ord(c) < 0xA0 for c in title)
    assert "\x07" not in escape and "\u202e" not in escape and "\u2028" not in escape
    assert escape.count(";") == 4  # 777;notify;TITLE;BODY and 9;TEXT: none inside the fields


def test_persian_keeps_its_zero_width_non_joiner() -> None:
    assert clean_field("می\u200cخواهم") == "می\u200cخواهم"  # noqa: RUF001


def test_inside_tmux_the_escape_is_wrapped_for_it_to_pass_on() -> None:
    plain = desktop_escape("ali in #rust", "hello", environ={})
    wrapped = desktop_escape("ali in #rust", "hello", environ={"TMUX": "/tmp/tmux-0/default"})
    assert wrapped == "\x1bPtmux;" + plain.replace("\x1b", "\x1b\x1b") + "\x1b\\"


def test_a_batch_is_one_notification() -> None:
    assert summary([("#rust", "ali", "ping")]) == ("ali in #rust", "ping")
    assert summary([("@ali", "ali", "psst")]) == ("ali", "psst")
    assert summary([("#a", "x", "1"), ("#b", "y", "2"), ("#a", "z", "3")]) == (
        "3 new messages",
        "#a, #b",
    )
    assert summary([]) is None
    assert clean_field("x" * 500).endswith("…") and len(clean_field("x" * 500)) == 160


def capture(app: ChatApp) -> list[str]:
    """What the app writes to its terminal driver from now on."""
    written: list[str] = []
    driver = app._driver
    assert driver is not None
    driver.write = written.append  # type: ignore[method-assign]
    return written


async def test_a_mention_writes_the_notification_and_a_muted_room_does_not(
    server: ChatServer, connect: Connect
) -> None:
    app = make_app(server.address, "ali")
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: connected(app))
        bells: list[None] = []
        app.bell = lambda: bells.append(None)  # type: ignore[method-assign]
        written = capture(app)
        bob = await connect("bob")
        await bob.send("#lobby", "no mention here")
        await bob.send("#lobby", "ali: lunch?\x1b]0;pwned\x07")
        await until(pilot, lambda: any("lunch" in t for t in log_texts(app)))
        notes = [w for w in written if w.startswith("\x1b]777;")]
        assert len(notes) == 1 and len(bells) == 1
        assert notes[0].startswith("\x1b]777;notify;bob in #lobby;ali: lunch?]0,pwned")
        assert "\x07" not in notes[0]

        await bob.private("ali", "psst")  # a private message notifies too
        await until(pilot, lambda: len([w for w in written if "psst" in w]) == 1)

        await pilot.press(*"/notify none", "enter")  # the lobby muted
        await until(
            pilot, lambda: any("notifications for #lobby: none" in t for t in log_texts(app))
        )
        before = len(written)
        await bob.send("#lobby", "ali, are you there?")
        await until(pilot, lambda: "ali, are you there?" in log_texts(app))
        await bob.private("ali", "still here")  # its own level: not muted
        await until(pilot, lambda: any("still here" in w for w in written[before:]))
        assert not any("are you there" in w for w in written)
        assert len(bells) == 3


async def test_keywords_count_as_mentions(server: ChatServer, connect: Connect) -> None:
    app = make_app(server.address, "ali")
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: connected(app))
        app.unread.keywords = ("deploy",)
        written = capture(app)
        bob = await connect("bob")
        await bob.send("#lobby", "the DEPLOY is done")
        await bob.send("#lobby", "redeployed nothing")  # a whole word only
        await until(pilot, lambda: "redeployed nothing" in log_texts(app))
        notes = [w for w in written if w.startswith("\x1b]777;")]
        assert len(notes) == 1 and "the DEPLOY is done" in notes[0]
