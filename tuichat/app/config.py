"""The app's settings file, `config.toml` in the user's config directory.

`load_config` reads it into a `Config` (built-in defaults for what it leaves out);
`example` writes a commented file with every key at its default. Every problem in
the file is a `ConfigError` whose message is one sentence naming the file, the
line and what is wrong. Command-line flags win over the file (see `cli.py`).
"""

from __future__ import annotations

import difflib
import getpass
import json
import re
import textwrap
import tomllib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import MISSING, Field, dataclass, field, fields
from datetime import datetime
from enum import Enum
from pathlib import Path
from types import MappingProxyType
from typing import Any

import platformdirs

from tuichat import DEFAULT_PORT
from tuichat.app.notify import LEVELS, Level, NotifyRules
from tuichat.chat.errors import ChatError
from tuichat.chat.names import check_name, check_room
from tuichat.client.unread import conversation_key

DEFAULT_HOST = "127.0.0.1"
DEFAULT_THEME = "textual-dark"
"""Textual's own default theme."""


class ConfigError(Exception):
    """A settings file that cannot be used; the message says where and why, in one sentence."""

    def __init__(self, message: str, *, line: int | None = None, column: int | None = None) -> None:
        super().__init__(message)
        self.line = line
        """Where in the file, when known (from 1)."""
        self.column = column


@dataclass(frozen=True, slots=True)
class KeyAction:
    """A command whose key `[keys]` can change."""

    key: str
    """Its keys unless the file gives others (several are separated by commas)."""
    action: str
    """The Textual action it runs."""
    description: str
    owner: str
    """The class whose BINDINGS hold it."""


def _actions() -> Iterator[tuple[str, KeyAction]]:
    app = "ChatApp"
    yield "quit", KeyAction("ctrl+q", "exit_chat", "Quit", app)
    yield "help", KeyAction("f1", "show_help", "Show every key and command", app)
    yield "sidebar", KeyAction("f2", "toggle_sidebar", "Show or hide the sidebar", app)
    yield "command_palette", KeyAction("ctrl+k", "command_palette", "Open the command palette", app)
    yield "jump_to_end", KeyAction("ctrl+end", "jump_to_end", "Jump to the newest message", app)
    yield "page_up", KeyAction("pageup", "page_log(-1)", "Scroll the log a page up", app)
    yield "page_down", KeyAction("pagedown", "page_log(1)", "Scroll the log a page down", app)
    yield (
        "next_unread",
        KeyAction("alt+a", "next_unread", "Go to the next unread conversation", app),
    )
    yield "next_conversation", KeyAction("ctrl+n", "cycle(1)", "Go to the next conversation", app)
    yield (
        "previous_conversation",
        KeyAction("ctrl+p", "cycle(-1)", "Go to the previous conversation", app),
    )
    for n in range(1, 10):
        yield (
            f"conversation_{n}",
            KeyAction(f"alt+{n}", f"switch_to({n})", f"Conversation {n}", app),
        )
    yield (
        "open_editor",
        KeyAction("ctrl+o,f4", "open_editor", "Edit the message in $EDITOR", "ChatInput"),
    )


KEY_ACTIONS: Mapping[str, KeyAction] = MappingProxyType(dict(_actions()))
"""The names `[keys]` knows, with their default keys (those of the BINDINGS in the app)."""

MODIFIERS = ("alt", "ctrl", "shift")
"""In the order Textual writes them in a key's name (`ctrl+shift+up`)."""
NAMED_KEYS = frozenset(
    {
        *("up", "down", "left", "right", "home", "end", "pageup", "pagedown"),
        *("insert", "delete", "backspace", "tab", "enter", "escape", "space"),
        *(f"f{n}" for n in range(1, 25)),
    }
)


def check_keys(text: str) -> str:
    """Return the keys of a comma-separated list (`ctrl+o,f4`) as `check_key` names them."""
    return ",".join(check_key(key.strip()) for key in text.split(","))


def check_key(text: str) -> str:
    """Return the key `text` names, as Textual names it; raise ValueError saying what is wrong.

    A key is a letter, a digit, a function key (f1 to f24) or a named key (`pageup`, `tab`, ...),
    after any of the modifiers ctrl, alt and shift, joined by `+`: `alt+a`, `ctrl+shift+up`.
    """
    if not text:
        raise ValueError("it is empty")
    *modifiers, name = text.lower().split("+")
    if not name:
        raise ValueError("a key comes after the modifiers, as in ctrl+n")
    for modifier in modifiers:
        if modifier not in MODIFIERS:
            raise ValueError(f'"{modifier}" is not a modifier (they are ctrl, alt and shift)')
    if len(set(modifiers)) < len(modifiers):
        raise ValueError("it names a modifier twice")
    if len(name) == 1 and name.isascii() and name.isalnum():
        name = text[-1] if not modifiers else name  # a lone capital letter is shift and that letter
    elif name not in NAMED_KEYS:
        raise ValueError(
            f'"{name}" is not a key name (keys are letters, digits, f1 to f24, and '
            f"{', '.join(sorted(NAMED_KEYS - {f'f{n}' for n in range(1, 25)}))})"
        )
    return "+".join([*sorted(modifiers), name])


class _Invalid(Exception):
    """A value the file cannot have: `reason` says why, `at` is where below the current table.

    With `subject`, the key's dotted name goes before `reason` ("server.port must be ...").
    """

    def __init__(self, reason: str, *, at: tuple[str, ...] = (), subject: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.at = at
        self.subject = subject


_Parse = Callable[[object, Path], Any]
"""Turns a value read from the file into the setting's value, or raises `_Invalid`.

The second argument is the folder of the file, for paths given relative to it.
"""


def _show(value: object) -> str:
    """Return `value` as it would be written in TOML (for error messages)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a table"
    return str(value)


def _text(value: object, where: Path = Path()) -> str:
    if not isinstance(value, str):
        raise _Invalid(f"must be text in quotes, not {_show(value)}")
    return value


def _flag(value: object, where: Path = Path()) -> bool:
    if not isinstance(value, bool):
        raise _Invalid(f"must be true or false, not {_show(value)}")
    return value


def _whole(low: int, high: int | None, unit: str = "") -> _Parse:
    limits = f"from {low} to {high}" if high is not None else f"({low} or more)"

    def parse(value: object, where: Path) -> int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise _Invalid(f"must be a whole number{unit}, not {_show(value)}")
        if value < low or (high is not None and value > high):
            raise _Invalid(f"must be a whole number{unit} {limits}, not {value}")
        return value

    return parse


def _texts(value: object) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise _Invalid(
            f'must be a list of texts in quotes, like ["one", "two"], not {_show(value)}'
        )
    return value


def _table(value: object) -> dict[str, object]:
    if not isinstance(value, dict):
        raise _Invalid(f"must be a table, not {_show(value)}")
    return value


def _suggest(word: str, known: Iterable[str]) -> str:
    """Return ` (did you mean "x"?)` for the known word closest to `word`, or ""."""
    close = difflib.get_close_matches(word, list(known), n=1)
    return f' (did you mean "{close[0]}"?)' if close else ""


def _belongs(cls: type, key: str) -> str:
    """Return ` (it goes under [server])` when `key` is a setting of one of `cls`'s tables."""
    for each in fields(cls):
        section = each.metadata.get("table")
        if section is not None and key in {inner.name for inner in fields(section)}:
            return f" (it goes under [{each.name}])"
    return ""


def _name(value: object, where: Path) -> str:
    try:
        return check_name(_text(value))
    except ChatError as exc:
        raise _Invalid(f"{_show(value)} is not a name anyone can have: {exc.message}") from None


def _host(value: object, where: Path) -> str:
    host = _text(value).strip()
    if not host or any(char.isspace() for char in host):
        raise _Invalid(f"must be a host name or an address, not {_show(value)}")
    return host


def _file(value: object, where: Path) -> Path:
    path = where / Path(_text(value)).expanduser()
    if not path.is_file():
        raise _Invalid(f"names no file: there is no {path}")
    return path


def _rooms(value: object, where: Path) -> tuple[str, ...]:
    rooms: dict[str, None] = {}
    for room in _texts(value):
        try:
            rooms[check_room(room)] = None
        except ChatError as exc:
            raise _Invalid(f"has {_show(room)}, which is not a room: {exc.message}") from None
    return tuple(rooms)


def _theme(value: object, where: Path) -> str:
    from textual.theme import BUILTIN_THEMES  # only when the file names a theme: textual is slow

    theme = _text(value)
    if theme not in BUILTIN_THEMES:
        hint = _suggest(theme, BUILTIN_THEMES) or f" (they are {', '.join(sorted(BUILTIN_THEMES))})"
        raise _Invalid(f"{_show(value)} is not one of Textual's themes{hint}")
    return theme


_DIRECTIVE = re.compile(r"%[-_0^#]?\d*[EO]?(.)|%$", re.DOTALL)
_SAMPLE_TIME = datetime(2001, 2, 3, 4, 5, 6)


def _time_format(value: object, where: Path) -> str:
    """A strftime format whose every directive means something ("" shows no time)."""
    text = _text(value)
    bad = f"{_show(value)} is not a time format"
    for match in _DIRECTIVE.finditer(text):
        directive = match[0]
        if directive == "%":
            raise _Invalid(f"{bad}: it ends with a lone % (write %% for a percent sign)")
        if directive == "%%":
            continue
        try:
            out = _SAMPLE_TIME.strftime(directive)
        except ValueError:
            out = "%"
        if "%" in out:  # the C library left it as it was: it knows no such directive
            raise _Invalid(f"{bad}: {directive} is not a strftime directive (like %H or %M)")
    try:
        sample = _SAMPLE_TIME.strftime(text)
    except ValueError as exc:
        raise _Invalid(f"{bad}: {exc}") from None
    if not sample.isprintable():
        raise _Invalid(f"{bad}: it must fit on one line")
    return text


def _level(value: object, where: Path = Path()) -> Level:
    if not isinstance(value, str) or value not in LEVELS:
        expected = ", ".join(f'"{level}"' for level in LEVELS[:-1]) + f' or "{LEVELS[-1]}"'
        raise _Invalid(f"must be {expected}, not {_show(value)}{_suggest(str(value), LEVELS)}")
    return Level(value)


def _conversation(text: str) -> str:
    """Return the `conversation_key` of `#room` or `@name`; raise `_Invalid` if it is neither."""
    try:
        if text.startswith("@"):
            return conversation_key("@" + check_name(text[1:]))
        if text.startswith("#"):
            return check_room(text)
    except ChatError as exc:
        raise _Invalid(f"is not a conversation: {exc.message}") from None
    raise _Invalid("is not a conversation: write a room as #room and a person as @name")


def _conversations(value: object, where: Path) -> Mapping[str, Level]:
    levels: dict[str, Level] = {}
    for conversation, level in _table(value).items():
        try:
            levels[_conversation(conversation)] = _level(level)
        except _Invalid as exc:
            exc.at = (conversation, *exc.at)
            raise
    return MappingProxyType(levels)


def _keywords(value: object, where: Path) -> tuple[str, ...]:
    words = tuple(word.strip() for word in _texts(value))
    if "" in words:
        raise _Invalid("cannot hold an empty word")
    return words


def _keys(value: object, where: Path) -> Mapping[str, str]:
    keys = {name: action.key for name, action in KEY_ACTIONS.items()}
    given = _table(value)
    for name, key in given.items():
        if name not in KEY_ACTIONS:
            hint = _suggest(name, KEY_ACTIONS) or " (tuichat --print-config lists them)"
            raise _Invalid(f'unknown action "{name}" in [keys]{hint}', at=(name,), subject=False)
        if not isinstance(key, str):
            raise _Invalid(f'must be a key in quotes, like "alt+a", not {_show(key)}', at=(name,))
        try:
            keys[name] = check_keys(key)
        except ValueError as exc:
            raise _Invalid(f"{_show(key)} is not a key: {exc}", at=(name,)) from None
    for name in given:
        mine = keys[name].split(",")
        if len(set(mine)) < len(mine):
            raise _Invalid(f"{_show(given[name])} names a key twice", at=(name,))
        for other, theirs in keys.items():
            shared = [key for key in mine if key in theirs.split(",")]
            if other != name and shared:
                raise _Invalid(
                    f'{_show(given[name])} gives {other}\'s key "{shared[0]}" too:'
                    f" give {other} another key",
                    at=(name,),
                )
    return MappingProxyType(keys)


def _about(doc: str, parse: _Parse, example: object = MISSING) -> dict[str, object]:
    """The metadata of a field read from the file with `parse`; `doc` explains it in `example()`.

    With `example`, `example()` shows the key commented out, with that value (None: its default).
    """
    return {"doc": doc, "parse": parse, "example": example}


def _section(cls: type, doc: str) -> dict[str, object]:
    """The metadata of a field that is a table of its own (`[server]`): the dataclass `cls`."""
    return {"doc": doc, "table": cls}


def login_name() -> str:
    """The user's login name, the default name in the chat ("guest" if it cannot be found)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "guest"


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """Which server to connect to, and how."""

    host: str = field(default=DEFAULT_HOST, metadata=_about("The server's name or address.", _host))
    port: int = field(default=DEFAULT_PORT, metadata=_about("The server's port.", _whole(1, 65535)))
    tls: bool = field(
        default=False,
        metadata=_about(
            "Connect with TLS, verifying the server's certificate (on when `ca` is given,"
            " unless this says false).",
            _flag,
        ),
    )
    ca: Path | None = field(
        default=None,
        metadata=_about(
            "Trust the CA certificates in this PEM file (relative to this file's folder)"
            " instead of the system's.",
            _file,
            example="ca.pem",
        ),
    )


@dataclass(frozen=True, slots=True)
class NotifySettings:
    """What rings the bell or shows a desktop notification."""

    default: Level = field(
        default=Level.MENTIONS,
        metadata=_about(
            'What notifies you in a conversation: "all" (every message), "mentions" (your'
            ' name, a keyword, and private messages) or "none".',
            _level,
        ),
    )
    keywords: tuple[str, ...] = field(
        default=(),
        metadata=_about(
            'Words that count as mentions of you besides your name, like ["release", "deploy"].',
            _keywords,
        ),
    )
    bell: bool = field(default=True, metadata=_about("Ring the terminal's bell.", _flag))
    desktop: bool = field(
        default=True,
        metadata=_about(
            "Ask the terminal for a desktop notification (OSC 777, or OSC 9 where that is what"
            " it speaks).",
            _flag,
        ),
    )
    conversations: Mapping[str, Level] = field(
        default_factory=lambda: MappingProxyType({}),
        metadata=_about(
            "The level of one conversation instead of `default`: a room (#room) or a person"
            " (@name).",
            _conversations,
            example={"#random": "none", "@ali": "all"},
        ),
    )
    """By `conversation_key` (`#room` case-folded, `@name` folded)."""

    def rules(self) -> NotifyRules:
        """These settings as the app's `NotifyRules` (a new object: `/notify` changes it)."""
        return NotifyRules(self.default, dict(self.conversations), self.bell, self.desktop)


def _default_keys() -> Mapping[str, str]:
    return MappingProxyType({name: action.key for name, action in KEY_ACTIONS.items()})


@dataclass(frozen=True, slots=True)
class Config:
    """Everything the app is told by its settings file and its flags.

    The app applies `theme`, `timestamps`, `autojoin`, `away_after`, `typing`, `notify` and
    `keys` (a keymap of `KEY_ACTIONS` names); `cli.py` uses `name` and `server` to connect.
    """

    name: str = field(
        default_factory=login_name,
        metadata=_about("Your name in the chat (by default, your login name).", _name, None),
    )
    autojoin: tuple[str, ...] = field(
        default=(),
        metadata=_about(
            'Rooms to join after connecting, besides the lobby, like ["#rust", "#persian"].',
            _rooms,
        ),
    )
    """Case-folded room names, each once."""
    theme: str = field(
        default=DEFAULT_THEME,
        metadata=_about(
            "The colours: one of Textual's themes, like nord, gruvbox or textual-light.", _theme
        ),
    )
    timestamps: str = field(
        default="%H:%M",
        metadata=_about(
            'How times are shown in the log, as a strftime format ("" shows none).', _time_format
        ),
    )
    away_after: int = field(
        default=10,
        metadata=_about(
            "Minutes without a key pressed after which you are shown as away (0: never).",
            _whole(0, None, " of minutes"),
        ),
    )
    typing: bool = field(
        default=True,
        metadata=_about("Tell others when you are typing, and show when they are.", _flag),
    )
    server: ServerSettings = field(
        default_factory=ServerSettings,
        metadata=_section(ServerSettings, "The server to connect to."),
    )
    notify: NotifySettings = field(
        default_factory=NotifySettings, metadata=_section(NotifySettings, "Notifications.")
    )
    keys: Mapping[str, str] = field(
        default_factory=_default_keys,
        metadata=_about(
            "Keys for commands: ctrl, alt and shift join a key with +, as in ctrl+shift+up;"
            ' commas separate the keys of one command, as in "ctrl+o,f4".',
            _keys,
        ),
    )
    """Every name of `KEY_ACTIONS` → its key, as Textual names it (an `App.set_keymap` map)."""


def default_path() -> Path:
    """Where the settings file lives unless told otherwise."""
    return Path(platformdirs.user_config_dir("tuichat")) / "config.toml"


def load_config(path: Path | None = None) -> Config:
    """Return the settings in `path` (by default `default_path()`, which need not exist).

    Raises `ConfigError` if the file cannot be read or holds something it cannot.
    """
    file = path or default_path()
    try:
        text = file.read_bytes().decode("utf-8")
    except FileNotFoundError:
        if path is None:
            return Config()
        raise ConfigError(f"{file}: there is no such file") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{file}: it is not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise ConfigError(f"{file}: it cannot be read: {exc.strerror or exc}") from None
    return parse_config(text, file)


_AT = re.compile(r"(.*) \(at line (\d+), column (\d+)\)$", re.DOTALL)


def parse_config(text: str, file: Path) -> Config:
    """Return the settings in `text`, the contents of `file`; raise `ConfigError` if it is wrong."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        place, line, column = "", None, None
        if (found := _AT.match(message)) is not None:
            message, line, column = found[1], int(found[2]), int(found[3])
            place = f", line {line}, column {column}"
        message = message.removesuffix(" (at end of document)")
        reason = message[:1].lower() + message[1:]
        raise ConfigError(
            f"{file}{place}: this is not valid TOML: {reason}", line=line, column=column
        ) from None
    try:
        config = _build(Config, data, (), file.parent)
    except _Invalid as exc:
        line = line_of(text, exc.at)
        subject = f"{_dotted(exc.at)} " if exc.subject else ""
        place = f", line {line}" if line is not None else ""
        raise ConfigError(f"{file}{place}: {subject}{exc.reason}", line=line) from None
    assert isinstance(config, Config)
    return config


def _build(cls: type, table: dict[str, Any], path: tuple[str, ...], where: Path) -> object:
    """An instance of the settings dataclass `cls` from its `table`, at `path` in the file."""
    known = {each.name: each for each in fields(cls)}
    values: dict[str, object] = {}
    for key, value in table.items():
        try:
            setting = known.get(key)
            if setting is None:
                inside = f" in [{_dotted(path)}]" if path else ""
                hint = _belongs(cls, key) or _suggest(key, known)
                raise _Invalid(f'unknown key "{key}"{inside}{hint}', subject=False)
            if (section := setting.metadata.get("table")) is not None:
                values[key] = _build(section, _table(value), (*path, key), where)
            else:
                values[key] = setting.metadata["parse"](value, where)
        except _Invalid as exc:
            exc.at = (key, *exc.at)
            raise
    if cls is ServerSettings and "ca" in values and "tls" not in values:
        values["tls"] = True
    return cls(**values)


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_KEY_PART = r"""(?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|'[^']*')"""
_DOTTED_KEY = rf"{_KEY_PART}(?:\s*\.\s*{_KEY_PART})*"
_HEADER = re.compile(rf"\s*\[\[?\s*({_DOTTED_KEY})\s*\]")
_ASSIGNMENT = re.compile(rf"\s*({_DOTTED_KEY})\s*=")


def _key_parts(dotted: str) -> tuple[str, ...]:
    parts = []
    for part in re.findall(_KEY_PART, dotted):
        if part.startswith('"'):
            try:
                part = json.loads(part)
            except ValueError:  # a TOML escape JSON lacks (\U0001f600): compare it as written
                part = part[1:-1]
        elif part.startswith("'"):
            part = part[1:-1]
        parts.append(part)
    return tuple(parts)


def _dotted(path: tuple[str, ...]) -> str:
    """The dotted TOML name of a key (`server.port`, `notify.conversations."#random"`)."""
    return ".".join(
        p if _BARE_KEY.fullmatch(p) else json.dumps(p, ensure_ascii=False) for p in path
    )


def line_of(text: str, path: tuple[str, ...]) -> int | None:
    """Return the line of `text` (from 1) where the key at `path` is given, or None.

    Looks for the table header `[a.b]` when `path` is a table, else for `key =` (or a
    dotted `b.key =`) under the header of its table; if the key is not written as
    such (a value in an inline table, say), the line of the nearest enclosing key.
    Lines are read one by one without parsing TOML, so a line inside a multi-line
    string that looks like `key = ...` may be taken for a key.
    """
    for end in range(len(path), 0, -1):
        table: tuple[str, ...] = ()
        for number, line in enumerate(text.splitlines(), 1):
            if (header := _HEADER.match(line)) is not None:
                table = _key_parts(header[1])
                if table == path[:end]:
                    return number
            elif (assignment := _ASSIGNMENT.match(line)) is not None and (
                (*table, *_key_parts(assignment[1])) == path[:end]
            ):
                return number
    return None


def _toml(value: object) -> str:
    """`value` (text, a number, true/false, a list of texts, an Enum of text) written as TOML."""
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(_toml(item) for item in value) + "]"
    return str(value)


def _comment(doc: str) -> list[str]:
    return textwrap.wrap(doc, width=98, initial_indent="# ", subsequent_indent="# ")


def _example_lines(cls: type, path: tuple[str, ...], defaults: object) -> list[str]:
    lines: list[str] = []
    later: list[tuple[Field[Any], str]] = []
    for each in fields(cls):
        value = getattr(defaults, each.name)
        if "table" in each.metadata or isinstance(value, Mapping):
            later.append((each, _dotted((*path, each.name))))
            continue
        example = each.metadata["example"]
        lines += ["", *_comment(each.metadata["doc"])]
        if example is MISSING:
            lines.append(f"{_dotted((each.name,))} = {_toml(value)}")
        else:
            lines.append(
                f"# {_dotted((each.name,))} = {_toml(value if example is None else example)}"
            )
    for each, header in later:
        value = getattr(defaults, each.name)
        lines += ["", *_comment(each.metadata["doc"]), f"[{header}]"]
        if "table" in each.metadata:
            lines += _example_lines(each.metadata["table"], (*path, each.name), value)
        elif each.name == "keys" and cls is Config:
            for name, action in KEY_ACTIONS.items():
                lines.append(f"{name} = {_toml(value[name])}  # {action.description}")
        else:
            example = each.metadata["example"]
            lines += [f"# {_dotted((k,))} = {_toml(v)}" for k, v in dict(example).items()]
    return lines


def example() -> str:
    """A settings file with every key at its default, each explained in a comment."""
    head = [
        "# tuichat's settings. Every key is shown at its default: change what you like and",
        "# delete the rest. Flags on the command line win over this file.",
        f"# tuichat reads {default_path()} (or the file given with --config).",
    ]
    return "\n".join([*head, *_example_lines(Config, (), Config())]) + "\n"
