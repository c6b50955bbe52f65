"""The settings file: what it sets, how flags win over it, and what a wrong one says."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import ClassVar

import pytest
from textual.app import App
from textual.binding import Binding, BindingType
from textual.dom import DOMNode
from textual.theme import BUILTIN_THEMES
from textual.widgets import TextArea

from tuichat import DEFAULT_PORT
from tuichat.app.app import ChatApp
from tuichat.app.cli import config_from_args, main, parse_args
from tuichat.app.config import (
    KEY_ACTIONS,
    Config,
    ConfigError,
    check_key,
    check_keys,
    default_path,
    load_config,
    login_name,
)
from tuichat.app.notify import Level
from tuichat.app.widgets.chat_input import ChatInput

FULL = """\
name = "ali"
autojoin = ["#Rust", "#persian"]
theme = "nord"
timestamps = "%H:%M:%S"
away_after = 5
typing = false

[server]
host = "chat.example.org"
port = 6000
tls = true
ca = "ca.pem"

[notify]
default = "all"
keywords = ["deploy", " release "]
bell = false
desktop = false

[notify.conversations]
"#Random" = "none"
"@Bob" = "mentions"

[keys]
next_unread = "alt+u"
open_editor = "ctrl+shift+e, F5"
"""


@pytest.fixture(autouse=True)
def config_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The user's config directory is an empty folder of the test's own."""
    home = tmp_path / "config-home"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home))
    return home


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, "utf-8")
    return path


def full_file(folder: Path) -> Path:
    write(folder / "ca.pem", "not read here")
    return write(folder / "config.toml", FULL)


def test_every_field_is_read_from_the_file(tmp_path: Path) -> None:
    config = load_config(full_file(tmp_path))

    assert config.name == "ali"
    assert config.autojoin == ("#rust", "#persian")
    assert config.theme == "nord"
    assert config.timestamps == "%H:%M:%S"
    assert config.away_after == 5
    assert config.typing is False
    assert config.server.host == "chat.example.org"
    assert config.server.port == 6000
    assert config.server.tls is True
    assert config.server.ca == tmp_path / "ca.pem"
    assert config.notify.default is Level.ALL
    assert config.notify.keywords == ("deploy", "release")
    assert config.notify.bell is False
    assert config.notify.desktop is False
    assert dict(config.notify.conversations) == {
        "#random": Level.NONE,
        "@bob": Level.MENTIONS,
    }
    assert config.keys["next_unread"] == "alt+u"
    assert config.keys["open_editor"] == "ctrl+shift+e,f5"
    assert config.keys["quit"] == "ctrl+q"  # what the file leaves keeps its default


def test_no_flags_use_the_default_file(config_home: Path) -> None:
    full_file(config_home / "tuichat")
    assert default_path() == config_home / "tuichat" / "config.toml"

    config = config_from_args(parse_args([]))

    assert config == load_config(default_path())
    assert (config.name, config.server.host, config.server.port) == (
        "ali",
        "chat.example.org",
        6000,
    )


def test_flags_win_over_the_file(tmp_path: Path) -> None:
    file = full_file(tmp_path)
    flags = ["--config", str(file), "--name", "bob", "--host", "10.0.0.7", "--port", "7000"]

    config = config_from_args(parse_args([*flags, "--no-tls"]))

    assert (config.name, config.server.host, config.server.port) == ("bob", "10.0.0.7", 7000)
    assert config.server.tls is False
    assert config.theme == "nord"  # no flag for it: the file's
    other_ca = write(tmp_path / "other.pem", "")
    assert config_from_args(parse_args([*flags, "--ca", str(other_ca)])).server.ca == other_ca


def test_ca_means_tls_unless_told_otherwise(tmp_path: Path) -> None:
    write(tmp_path / "ca.pem", "")
    file = write(tmp_path / "config.toml", '[server]\nca = "ca.pem"\n')
    assert load_config(file).server.tls is True
    assert config_from_args(parse_args(["--no-config", "--ca", "x.pem"])).server.tls is True
    off = write(tmp_path / "off.toml", '[server]\nca = "ca.pem"\ntls = false\n')
    assert load_config(off).server.tls is False


def test_no_config_ignores_the_file(config_home: Path) -> None:
    full_file(config_home / "tuichat")
    config = config_from_args(parse_args(["--no-config", "--port", "7000"]))
    assert config.name == login_name()
    assert config.server.port == 7000
    assert config.theme == Config().theme


def test_a_missing_default_file_gives_the_defaults(config_home: Path) -> None:
    assert not default_path().exists()
    config = config_from_args(parse_args([]))
    assert config == Config()
    assert (config.server.host, config.server.port, config.server.tls) == (
        "127.0.0.1",
        DEFAULT_PORT,
        False,
    )


def test_a_missing_config_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        config_from_args(parse_args(["--config", str(tmp_path / "nowhere.toml")]))


def test_keys_may_be_swapped(tmp_path: Path) -> None:
    file = write(
        tmp_path / "c.toml",
        '[keys]\nnext_conversation = "ctrl+p"\nprevious_conversation = "ctrl+n"\n',
    )
    keys = load_config(file).keys
    assert (keys["next_conversation"], keys["previous_conversation"]) == ("ctrl+p", "ctrl+n")


def test_key_names_are_written_as_textual_writes_them() -> None:
    assert check_key("Shift+Ctrl+Up") == "ctrl+shift+up"
    assert check_key("alt+A") == "alt+a"
    assert check_key("F12") == "f12"
    assert check_key("Q") == "Q"  # a capital letter is its own key
    assert check_keys("ctrl+o, F4") == "ctrl+o,f4"


def own_bindings(owner: type[DOMNode]) -> dict[str, str]:
    """Action → keys of the bindings `owner` declares itself (not those it takes from Textual)."""
    inherited = [*TextArea.BINDINGS] if issubclass(owner, TextArea) else []
    return {
        binding.action: binding.key
        for binding in owner.BINDINGS
        if isinstance(binding, Binding) and binding not in inherited
    }


def test_the_default_keys_are_the_apps() -> None:
    """Each action's default keys are those its class binds it to, and every binding has one."""
    bound = {
        (owner.__name__, action): keys
        for owner in (ChatApp, ChatInput)
        for action, keys in own_bindings(owner).items()
    }
    bound["ChatApp", "command_palette"] = ChatApp.COMMAND_PALETTE_BINDING
    assert {(a.owner, a.action): a.key for a in KEY_ACTIONS.values()} == bound


class Keyed(App[None]):
    """Two bindings with the ids of `KEY_ACTIONS`, as the chat's are to have."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("alt+a", "press('next_unread')", id="next_unread"),
        Binding("ctrl+n", "press('next_conversation')", id="next_conversation"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.pressed: list[str] = []

    def action_press(self, what: str) -> None:
        self.pressed.append(what)


async def test_the_keys_are_a_textual_keymap(tmp_path: Path) -> None:
    file = write(tmp_path / "c.toml", '[keys]\nnext_unread = "ctrl+u, f5"\n')
    app = Keyed()
    async with app.run_test() as pilot:
        app.set_keymap(dict(load_config(file).keys))
        await pilot.press("alt+a", "ctrl+u", "f5", "ctrl+n")
        await pilot.pause()
    assert app.pressed == ["next_unread", "next_unread", "next_conversation"]


def test_the_default_theme_is_textuals() -> None:
    assert Config().theme in BUILTIN_THEMES


def test_the_printed_example_loads_back_to_the_defaults(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--print-config"]) == 0
    printed = capsys.readouterr().out

    file = write(tmp_path / "config.toml", printed)
    assert load_config(file) == Config()
    for key in ["name", "autojoin", "theme", "timestamps", "away_after", "typing"]:
        assert f"\n{key} = " in printed or f"\n# {key} = " in printed, key
    for key in ["[server]", "host =", "port =", "tls =", "ca =", "[notify]", "default ="]:
        assert key in printed
    for key in ["keywords =", "bell =", "desktop =", "[notify.conversations]", "[keys]"]:
        assert key in printed
    for name, action in KEY_ACTIONS.items():
        assert f'\n{name} = "{action.key}"' in printed


def test_a_changed_printed_example_is_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["--print-config"])
    printed = capsys.readouterr().out.replace('# "#random" = "none"', '"#random" = "none"')
    file = write(tmp_path / "config.toml", printed.replace("port = 5555", "port = 6000"))
    config = load_config(file)
    assert config.server.port == 6000
    assert dict(config.notify.conversations) == {"#random": Level.NONE}


def error(tmp_path: Path, text: str) -> str:
    """The sentence a file holding `text` is refused with."""
    file = write(tmp_path / "config.toml", text)
    with pytest.raises(ConfigError) as caught:
        load_config(file)
    message = str(caught.value)
    assert message.startswith(f"{file}, line ")
    assert "\n" not in message
    return message.removeprefix(f"{file}, ")


def test_a_toml_syntax_error(tmp_path: Path) -> None:
    message = error(tmp_path, 'name = "ali"\ntheme = \n')
    assert message == "line 2, column 9: this is not valid TOML: invalid value"


def test_an_unknown_key_with_a_suggestion(tmp_path: Path) -> None:
    message = error(tmp_path, '[server]\nhost = "x"\nprot = 6000\n')
    assert message == 'line 3: unknown key "prot" in [server] (did you mean "port"?)'


def test_an_unknown_table_with_a_suggestion(tmp_path: Path) -> None:
    message = error(tmp_path, 'name = "ali"\n\n[notfy]\nbell = false\n')
    assert message == 'line 3: unknown key "notfy" (did you mean "notify"?)'


def test_a_value_of_the_wrong_type(tmp_path: Path) -> None:
    message = error(tmp_path, 'name = "ali"\n\n[server]\nport = "abc"\n')
    assert message == 'line 4: server.port must be a whole number, not "abc"'


def test_a_value_out_of_range(tmp_path: Path) -> None:
    message = error(tmp_path, "[server]\nport = 70000\n")
    assert message == "line 2: server.port must be a whole number from 1 to 65535, not 70000"


def test_a_bad_theme_name(tmp_path: Path) -> None:
    message = error(tmp_path, 'theme = "dracul"\n')
    assert (
        message
        == 'line 1: theme "dracul" is not one of Textual\'s themes (did you mean "dracula"?)'
    )


def test_a_bad_room_in_autojoin(tmp_path: Path) -> None:
    message = error(tmp_path, 'typing = true\nautojoin = [\n  "#rust",\n  "persian",\n]\n')
    assert message.startswith('line 2: autojoin has "persian", which is not a room: ')


def test_a_bad_notify_level(tmp_path: Path) -> None:
    message = error(tmp_path, '[notify]\nbell = true\ndefault = "mention"\n')
    assert message == (
        'line 3: notify.default must be "all", "mentions" or "none", not "mention"'
        ' (did you mean "mentions"?)'
    )


def test_a_bad_notify_level_for_one_conversation(tmp_path: Path) -> None:
    message = error(tmp_path, '[notify]\n\n[notify.conversations]\n"#random" = "some"\n')
    assert message.startswith('line 4: notify.conversations."#random" must be "all", ')


def test_a_conversation_that_is_neither_a_room_nor_a_person(tmp_path: Path) -> None:
    message = error(tmp_path, '[notify.conversations]\nrandom = "none"\n')
    assert message.startswith("line 2: notify.conversations.random is not a conversation")


def test_a_bad_key_binding(tmp_path: Path) -> None:
    message = error(tmp_path, '[keys]\nquit = "ctrl+q"\nnext_unread = "hyper+a"\n')
    assert message == (
        'line 3: keys.next_unread "hyper+a" is not a key:'
        ' "hyper" is not a modifier (they are ctrl, alt and shift)'
    )


def test_a_key_another_action_has(tmp_path: Path) -> None:
    message = error(tmp_path, '[keys]\nnext_unread = "alt+u,ctrl+n"\n')
    assert message == (
        'line 2: keys.next_unread "alt+u,ctrl+n" gives next_conversation\'s key "ctrl+n" too:'
        " give next_conversation another key"
    )


def test_an_unknown_action_in_keys(tmp_path: Path) -> None:
    message = error(tmp_path, '[keys]\nnext_unred = "alt+u"\n')
    assert message == 'line 2: unknown action "next_unred" in [keys] (did you mean "next_unread"?)'


def test_a_bad_timestamp_format(tmp_path: Path) -> None:
    message = error(tmp_path, 'timestamps = "%H:%Q"\n')
    assert message == (
        'line 1: timestamps "%H:%Q" is not a time format: %Q is not a strftime directive'
        " (like %H or %M)"
    )


def test_a_ca_file_that_is_not_there(tmp_path: Path) -> None:
    message = error(tmp_path, '[server]\nca = "missing.pem"\n')
    assert message == f"line 2: server.ca names no file: there is no {tmp_path / 'missing.pem'}"


def test_a_bad_value_in_a_dotted_key_or_inline_table(tmp_path: Path) -> None:
    message = error(tmp_path, 'name = "ali"\nnotify = { bell = 3 }\n')
    assert message == "line 2: notify.bell must be true or false, not 3"
    message = error(tmp_path, 'name = "ali"\nserver.port = "x"\n')
    assert message == 'line 2: server.port must be a whole number, not "x"'


def test_tuichat_with_a_bad_file_says_one_line_and_exits_2(tmp_path: Path) -> None:
    bad = write(tmp_path / "bad.toml", '[server]\nport = "abc"\n')
    # (in English whatever the machine's locale: tuichat speaks the locale's language)
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "config-home"), "LANGUAGE": "en"}
    done = subprocess.run(
        [sys.executable, "-m", "tuichat.app", "--config", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.splitlines() == [
        f'tuichat: {bad}, line 2: server.port must be a whole number, not "abc"'
    ]
