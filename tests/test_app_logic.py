"""The app's plain parts: slash commands, completion, history, wrapping, mentions, colours."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rich.cells import cell_len

from tuichat.app import commands as cmd
from tuichat.app.colors import name_color
from tuichat.app.completion import COMMANDS, complete
from tuichat.app.history import InputHistory
from tuichat.app.wrap import wrap
from tuichat.client.unread import mentions


@pytest.mark.parametrize(
    "line, expected",
    [
        ("hello", cmd.SayText("hello")),
        ("//not a command", cmd.SayText("/not a command")),
        ("/msg bob hi there", cmd.PrivateText("bob", "hi there")),
        ("/MSG bob hi", cmd.PrivateText("bob", "hi")),
        ("/msg bob", cmd.ShowHelp("usage: /msg NAME TEXT")),
        ("/msg @bob hi", cmd.PrivateText("bob", "hi")),
        ("/msg #dev hi", cmd.ShowHelp("usage: /msg NAME TEXT")),
        ("/query bob", cmd.OpenPrivate("bob")),
        ("/query bob see you", cmd.PrivateText("bob", "see you")),
        ("/query", cmd.ShowHelp("usage: /query NAME [TEXT]")),
        ("/signout", cmd.SignOutOthers()),
        ("/part @bob", cmd.PartRoom("@bob")),
        ("/me waves", cmd.Action("waves")),
        ("/join #dev", cmd.JoinRoom("#dev")),
        ("/join dev", cmd.JoinRoom("#dev")),
        ("/join", cmd.ShowHelp("usage: /join #ROOM")),
        ("/part", cmd.PartRoom("")),
        ("/part #dev", cmd.PartRoom("#dev")),
        ("/users", cmd.ListUsers()),
        ("/help", cmd.ShowHelp()),
        ("/exit", cmd.Exit()),
        ("/quit", cmd.Exit()),
        ("/shrug", cmd.ShowHelp("unknown command /shrug")),
        ("   ", None),
    ],
)
def test_slash_commands(line: str, expected: cmd.Command | None) -> None:
    assert cmd.parse_input(line) == expected


@given(st.text(min_size=1).map(lambda s: "/" + s))
def test_a_slash_line_is_never_sent_as_text_unless_escaped(line: str) -> None:
    parsed = cmd.parse_input(line)
    if isinstance(parsed, cmd.SayText):
        assert line.startswith("//")


def test_completion_of_names_and_rooms() -> None:
    names = ["bob", "Bobby", "carol"]
    rooms = ["#lobby", "#dev"]
    assert complete("ca", 2, names, rooms) == ("carol: ", 7)
    assert complete("hi ca", 5, names, rooms) == ("hi carol ", 9)
    assert complete("bo", 2, names, rooms) == ("bob", 3)  # common prefix of bob, Bobby
    assert complete("bob", 3, names, rooms) is None  # ambiguous and nothing to add
    assert complete("see #d", 6, names, rooms) == ("see #dev ", 9)
    assert complete("zz", 2, names, rooms) is None
    assert complete("ca and more", 2, names, rooms) == ("carol:  and more", 7)


def test_history_walks_back_and_forth_and_keeps_the_draft() -> None:
    history = InputHistory()
    for line in ("one", "two", "two", "three"):
        history.add(line)
    assert history.previous("draft") == "three"
    assert history.previous("three") == "two"
    assert history.previous("two") == "one"
    assert history.previous("one") is None
    assert history.next() == "two"
    assert history.next() == "three"
    assert history.next() == "draft"
    assert history.next() is None


@given(
    st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp"))),
    st.integers(1, 80),
)
def test_wrapped_lines_fit_and_keep_every_character(text: str, width: int) -> None:
    lines = wrap(text, width)
    assert all(cell_len(line) <= width or len(line) == 1 for line in lines)
    assert "".join(lines).replace(" ", "") == text.replace(" ", "").replace("\t", "")


def test_a_code_block_keeps_its_shape_and_prose_around_it_wraps() -> None:
    text = (
        "look:\n```\nif x:\n    return some_function_with_a_long_name(x)\n```\nand the prose wraps"
    )
    assert wrap(text, 20) == [
        "look:",
        "```",
        "if x:",
        "    return some_fun…",  # cut at the edge, its indentation kept
        "```",
        "and the prose wraps",
    ]
    assert wrap("```not a block when alone on one line", 10)[0] == "```not a"


def test_wrap_breaks_at_spaces_and_keeps_newlines() -> None:
    assert wrap("aaa bbb ccc", 7) == ["aaa bbb", "ccc"]
    assert wrap("line one\nline two", 40) == ["line one", "line two"]
    assert wrap("你好世界", 4) == ["你好", "世界"]  # wide characters take two cells
    assert wrap("abcdefghij", 4) == ["abcd", "efgh", "ij"]


@pytest.mark.parametrize(
    "text, mentioned",
    [("hi ali", True), ("@ALI look", True), ("ali: hi", True), ("alibaba", False), ("kali", False)],
)
def test_mentions_are_whole_words(text: str, mentioned: bool) -> None:
    assert mentions(text, "ali") is mentioned


def test_name_colours_are_stable_and_ignore_case() -> None:
    assert name_color("ali") == name_color("ALI")
    assert len({name_color(n) for n in ("ali", "bob", "carol", "dave", "erin", "frank")}) > 1


def test_tab_completes_commands_at_the_start_and_each_is_one_the_app_knows() -> None:
    assert complete("/jo", 3, ["ali"], ["#lobby"]) == ("/join ", 6)
    assert complete("/si", 3, [], []) == ("/signout ", 9)
    assert complete("/zz", 3, [], []) is None
    assert complete("say /jo", 7, [], []) is None  # not at the start: a word like any other
    for command in COMMANDS:
        parsed = cmd.parse_input(f"{command} x")
        assert not (isinstance(parsed, cmd.ShowHelp) and "unknown" in parsed.problem), command
