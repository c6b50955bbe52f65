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
from tuichat.app import i18n
from tuichat.app.dates import CALENDARS
from tuichat.app.i18n import N_, _, plain
from tuichat.app.notify import LEVELS, Level, NotifyRules
from tuichat.chat.errors import ChatError
from tuichat.chat.names import check_name, check_room
from tuichat.client.unread import conversation_key

DEFAULT_HOST = "127.0.0.1"
DEFAULT_THEME = "textual-dark"
"""Textual's own default theme."""
BIDI_MODES = ("app", "terminal", "off")
"""How right-to-left text is drawn: reordered by the app, by the terminal, or not at all."""


class ConfigError(Exception):
    """A settings file that cannot be used; the message says where and why, in one sentence."""

    def __init__(self, message: str, *, line: int | None = None, column: int | None = None) -> None:
        super().__init__(plain(message))  # (said on the terminal as it is)
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
    """What it does, in English (marked for translation: shown through `_`)."""
    owner: str
    """The class whose BINDINGS hold it."""
    number: int = 0
    """The `n` of a description with one (alt+1 … alt+9)."""

    def describe(self) -> str:
        """What it does, in the language in use."""
        text = _(self.description)
        return text.format(n=self.number) if self.number else text


def _actions() -> Iterator[tuple[str, KeyAction]]:
    app = "ChatApp"
    yield "quit", KeyAction("ctrl+q", "exit_chat", N_("Quit"), app)
    yield "help", KeyAction("f1", "show_help", N_("Show every key and command"), app)
    yield "sidebar", KeyAction("f2", "toggle_sidebar", N_("Show or hide the sidebar"), app)
    yield (
        "command_palette",
        KeyAction("ctrl+k", "command_palette", N_("Open the command palette"), app),
    )
    yield (
        "jump_to_end",
        KeyAction("ctrl+end", "jump_to_end", N_("Jump to the newest message"), app),
    )
    yield "page_up", KeyAction("pageup", "page_log(-1)", N_("Scroll the log a page up"), app)
    yield "page_down", KeyAction("pagedown", "page_log(1)", N_("Scroll the log a page down"), app)
    yield (
        "next_unread",
        KeyAction("alt+a", "next_unread", N_("Go to the next unread conversation"), app),
    )
    yield (
        "next_conversation",
        KeyAction("ctrl+n", "cycle(1)", N_("Go to the next conversation"), app),
    )
    yield (
        "previous_conversation",
        KeyAction("ctrl+p", "cycle(-1)", N_("Go to the previous conversation"), app),
    )
    yield (
        "select_message",
        KeyAction(
            "alt+up", "select_message", N_("Select a message to reply, react, edit or delete"), app
        ),
    )
    yield "search", KeyAction("ctrl+f", "search", N_("Search messages"), app)
    for n in range(1, 10):
        yield (
            f"conversation_{n}",
            KeyAction(f"alt+{n}", f"switch_to({n})", N_("Conversation {n}"), app, n),
        )
    yield (
        "open_editor",
        KeyAction("ctrl+o,f4", "open_editor", N_("Edit the message in $EDITOR"), "ChatInput"),
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
        raise ValueError(_("it is empty"))
    *modifiers, name = text.lower().split("+")
    if not name:
        raise ValueError(_("a key comes after the modifiers, as in ctrl+n"))
    for modifier in modifiers:
        if modifier not in MODIFIERS:
            raise ValueError(
                _('"{modifier}" is not a modifier (they are ctrl, alt and shift)').format(
                    modifier=modifier
                )
            )
    if len(set(modifiers)) < len(modifiers):
        raise ValueError(_("it names a modifier twice"))
    if len(name) == 1 and name.isascii() and name.isalnum():
        name = text[-1] if not modifiers else name  # a lone capital letter is shift and that letter
    elif name not in NAMED_KEYS:
        named = sorted(NAMED_KEYS - {f"f{n}" for n in range(1, 25)})
        raise ValueError(
            _(
                '"{name}" is not a key name (keys are letters, digits, f1 to f24, and {named})'
            ).format(name=name, named=", ".join(named))
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
        raise _Invalid(_("must be text in quotes, not {value}").format(value=_show(value)))
    return value


def _flag(value: object, where: Path = Path()) -> bool:
    if not isinstance(value, bool):
        raise _Invalid(_("must be true or false, not {value}").format(value=_show(value)))
    return value


def _whole(low: int, high: int | None, *, minutes: bool = False) -> _Parse:
    """A whole number from `low` to `high` (None: no limit), of minutes if `minutes`."""

    def parse(value: object, where: Path) -> int:
        if not isinstance(value, int) or isinstance(value, bool):
            if minutes:
                wrong = _("must be a whole number of minutes, not {value}")
            else:
                wrong = _("must be a whole number, not {value}")
            raise _Invalid(wrong.format(value=_show(value)))
        if value < low or (high is not None and value > high):
            if high is not None:
                wrong = _("must be a whole number from {low} to {high}, not {value}")
            elif minutes:
                wrong = _("must be a whole number of minutes ({low} or more), not {value}")
            else:
                wrong = _("must be a whole number ({low} or more), not {value}")
            raise _Invalid(wrong.format(low=low, high=high, value=value))
        return value

    return parse


def _texts(value: object) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise _Invalid(
            _('must be a list of texts in quotes, like ["one", "two"], not {value}').format(
                value=_show(value)
            )
        )
    return value


def _table(value: object) -> dict[str, object]:
    if not isinstance(value, dict):
        raise _Invalid(_("must be a table, not {value}").format(value=_show(value)))
    return value


def _suggest(word: str, known: Iterable[str]) -> str:
    """Return ` (did you mean "x"?)` for the known word closest to `word`, or ""."""
    close = difflib.get_close_matches(word, list(known), n=1)
    return _(' (did you mean "{word}"?)').format(word=close[0]) if close else ""


def _either(items: Iterable[str]) -> str:
    """`a, b or c`."""
    *some, last = items
    if not some:
        return last
    # TRANSLATORS: the end of a list of choices, as in: "all", "mentions" or "none"
    return _("{some} or {last}").format(some=_(", ").join(some), last=last)


def _one_of(values: Iterable[str]) -> str:
    """`"a", "b" or "c"`: the values a setting may have."""
    return _either(f'"{value}"' for value in values)


def _belongs(cls: type, key: str) -> str:
    """Return ` (it goes under [server])` when `key` is a setting of one of `cls`'s tables."""
    for each in fields(cls):
        section = each.metadata.get("table")
        if section is not None and key in {inner.name for inner in fields(section)}:
            return _(" (it goes under [{table}])").format(table=each.name)
    return ""


def _name(value: object, where: Path) -> str:
    try:
        return check_name(_text(value))
    except ChatError as exc:
        raise _Invalid(
            _("{value} is not a name anyone can have: {reason}").format(
                value=_show(value), reason=exc.message
            )
        ) from None


def _host(value: object, where: Path) -> str:
    host = _text(value).strip()
    if not host or any(char.isspace() for char in host):
        raise _Invalid(
            _("must be a host name or an address, not {value}").format(value=_show(value))
        )
    return host


def _file(value: object, where: Path) -> Path:
    path = where / Path(_text(value)).expanduser()
    if not path.is_file():
        raise _Invalid(_("names no file: there is no {path}").format(path=path))
    return path


def _rooms(value: object, where: Path) -> tuple[str, ...]:
    rooms: dict[str, None] = {}
    for room in _texts(value):
        try:
            rooms[check_room(room)] = None
        except ChatError as exc:
            raise _Invalid(
                _("has {room}, which is not a room: {reason}").format(
                    room=_show(room), reason=exc.message
                )
            ) from None
    return tuple(rooms)


def _theme(value: object, where: Path) -> str:
    from textual.theme import BUILTIN_THEMES  # only when the file names a theme: textual is slow

    theme = _text(value)
    if theme not in BUILTIN_THEMES:
        hint = _suggest(theme, BUILTIN_THEMES) or _(" (they are {themes})").format(
            themes=", ".join(sorted(BUILTIN_THEMES))
        )
        raise _Invalid(
            _("{value} is not one of Textual's themes{hint}").format(value=_show(value), hint=hint)
        )
    return theme


def _lang(value: object, where: Path) -> str:
    lang = _text(value)
    if lang not in i18n.LANGUAGES:
        raise _Invalid(unknown_language(lang))
    return lang


def unknown_language(lang: str) -> str:
    """Why `lang` cannot be the app's language: it speaks only those of `i18n.LANGUAGES`."""
    spoken = _either(f'"{code}" ({name})' for code, name in i18n.LANGUAGES.items())
    return _('"{lang}" is not a language tuichat speaks: use {languages}').format(
        lang=lang, languages=spoken
    )


def not_one_of(value: object, choices: tuple[str, ...]) -> str:
    """Why `value` is not a setting that must be one of `choices` (a sentence without a
    subject): `must be "app", "terminal" or "off", not "of" (did you mean "off"?)`."""
    return _("must be {choices}, not {value}{hint}").format(
        choices=_one_of(choices), value=_show(value), hint=_suggest(str(value), choices)
    )


def _choice(choices: tuple[str, ...]) -> _Parse:
    """One of `choices`, as text."""

    def parse(value: object, where: Path) -> str:
        if not isinstance(value, str) or value not in choices:
            raise _Invalid(not_one_of(value, choices))
        return value

    return parse


_DIRECTIVE = re.compile(r"%[-_0^#]?\d*[EO]?(.)|%$", re.DOTALL)
_SAMPLE_TIME = datetime(2001, 2, 3, 4, 5, 6)


def _time_format(value: object, where: Path) -> str:
    """A strftime format whose every directive means something ("" shows no time)."""
    text = _text(value)

    def bad(why: str) -> _Invalid:
        return _Invalid(
            _("{value} is not a time format: {reason}").format(value=_show(value), reason=why)
        )

    for match in _DIRECTIVE.finditer(text):
        directive = match[0]
        if directive == "%":
            raise bad(_("it ends with a lone % (write %% for a percent sign)"))
        if directive == "%%":
            continue
        try:
            out = _SAMPLE_TIME.strftime(directive)
        except ValueError:
            out = "%"
        if "%" in out:  # the C library left it as it was: it knows no such directive
            raise bad(
                _("{directive} is not a strftime directive (like %H or %M)").format(
                    directive=directive
                )
            )
    try:
        sample = _SAMPLE_TIME.strftime(text)
    except ValueError as exc:
        raise bad(str(exc)) from None
    if not sample.isprintable():
        raise bad(_("it must fit on one line"))
    return text


def _level(value: object, where: Path = Path()) -> Level:
    return Level(_choice(LEVELS)(value, where))


def _conversation(text: str) -> str:
    """Return the `conversation_key` of `#room` or `@name`; raise `_Invalid` if it is neither."""
    try:
        if text.startswith("@"):
            return conversation_key("@" + check_name(text[1:]))
        if text.startswith("#"):
            return check_room(text)
    except ChatError as exc:
        raise _Invalid(_("is not a conversation: {reason}").format(reason=exc.message)) from None
    raise _Invalid(_("is not a conversation: write a room as #room and a person as @name"))


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
        raise _Invalid(_("cannot hold an empty word"))
    return words


def _keys(value: object, where: Path) -> Mapping[str, str]:
    keys = {name: action.key for name, action in KEY_ACTIONS.items()}
    given = _table(value)
    for name, key in given.items():
        if name not in KEY_ACTIONS:
            hint = _suggest(name, KEY_ACTIONS) or _(" (tuichat --print-config lists them)")
            raise _Invalid(
                _('unknown action "{name}" in [keys]{hint}').format(name=name, hint=hint),
                at=(name,),
                subject=False,
            )
        if not isinstance(key, str):
            raise _Invalid(
                _('must be a key in quotes, like "alt+a", not {value}').format(value=_show(key)),
                at=(name,),
            )
        try:
            keys[name] = check_keys(key)
        except ValueError as exc:
            raise _Invalid(
                _("{value} is not a key: {reason}").format(value=_show(key), reason=exc),
                at=(name,),
            ) from None
    for name in given:
        mine = keys[name].split(",")
        if len(set(mine)) < len(mine):
            raise _Invalid(
                _("{value} names a key twice").format(value=_show(given[name])), at=(name,)
            )
        for other, theirs in keys.items():
            shared = [key for key in mine if key in theirs.split(",")]
            if other != name and shared:
                raise _Invalid(
                    _('{value} gives {other}\'s key "{key}" too: give {other} another key').format(
                        value=_show(given[name]), other=other, key=shared[0]
                    ),
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

    host: str = field(
        default=DEFAULT_HOST, metadata=_about(N_("The server's name or address."), _host)
    )
    port: int = field(
        default=DEFAULT_PORT, metadata=_about(N_("The server's port."), _whole(1, 65535))
    )
    tls: bool = field(
        default=False,
        metadata=_about(
            N_(
                "Connect with TLS, verifying the server's certificate (on when `ca` is given,"
                " unless this says false)."
            ),
            _flag,
        ),
    )
    ca: Path | None = field(
        default=None,
        metadata=_about(
            N_(
                "Trust the CA certificates in this PEM file (relative to this file's folder)"
                " instead of the system's."
            ),
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
            N_(
                'What notifies you in a conversation: "all" (every message), "mentions" (your'
                ' name, a keyword, and private messages) or "none".'
            ),
            _level,
        ),
    )
    keywords: tuple[str, ...] = field(
        default=(),
        metadata=_about(
            N_(
                'Words that count as mentions of you besides your name, like ["release", "deploy"].'
            ),
            _keywords,
        ),
    )
    bell: bool = field(default=True, metadata=_about(N_("Ring the terminal's bell."), _flag))
    desktop: bool = field(
        default=True,
        metadata=_about(
            N_(
                "Ask the terminal for a desktop notification (OSC 777, or OSC 9 where that is"
                " what it speaks)."
            ),
            _flag,
        ),
    )
    conversations: Mapping[str, Level] = field(
        default_factory=lambda: MappingProxyType({}),
        metadata=_about(
            N_(
                "The level of one conversation instead of `default`: a room (#room) or a person"
                " (@name)."
            ),
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

    The app applies `theme`, `timestamps`, `autojoin`, `away_after`, `typing`, `notify`,
    `keys` (a keymap of `KEY_ACTIONS` names) and `lang`; `cli.py` uses `name` and `server` to
    connect. `lang`, `calendar` and `bidi` are None when not chosen: then `cli.py` takes the
    language from the environment (the app, given None, speaks English), the calendar follows
    the language (`effective_calendar`), and the app draws right-to-left text its own way.
    """

    name: str = field(
        default_factory=login_name,
        metadata=_about(N_("Your name in the chat (by default, your login name)."), _name, None),
    )
    autojoin: tuple[str, ...] = field(
        default=(),
        metadata=_about(
            N_('Rooms to join after connecting, besides the lobby, like ["#rust", "#persian"].'),
            _rooms,
        ),
    )
    """Case-folded room names, each once."""
    theme: str = field(
        default=DEFAULT_THEME,
        metadata=_about(
            N_("The colours: one of Textual's themes, like nord, gruvbox or textual-light."),
            _theme,
        ),
    )
    timestamps: str = field(
        default="%H:%M",
        metadata=_about(
            N_('How times are shown in the log, as a strftime format ("" shows none).'),
            _time_format,
        ),
    )
    away_after: int = field(
        default=10,
        metadata=_about(
            N_("Minutes without a key pressed after which you are shown as away (0: never)."),
            _whole(0, None, minutes=True),
        ),
    )
    typing: bool = field(
        default=True,
        metadata=_about(N_("Tell others when you are typing, and show when they are."), _flag),
    )
    lang: str | None = field(
        default=None,
        metadata=_about(
            N_(
                'The language of the app: "en" (English) or "fa" (Persian, laid out right to'
                " left). By default, the language of your locale (LANGUAGE, LC_ALL, LC_MESSAGES"
                " or LANG), else English."
            ),
            _lang,
            example="fa",
        ),
    )
    """A code of `i18n.LANGUAGES`; None: not chosen."""
    calendar: str | None = field(
        default=None,
        metadata=_about(
            N_(
                'The calendar of the dates in the log: "gregorian" or "jalali" (the Solar Hijri'
                " calendar). By default, jalali when the app speaks Persian, else gregorian."
            ),
            _choice(CALENDARS),
            example="jalali",
        ),
    )
    """One of `CALENDARS`; None: not chosen (see `effective_calendar`)."""
    bidi: str | None = field(
        default=None,
        metadata=_about(
            N_(
                'How right-to-left text (Persian, Arabic, Hebrew) is drawn: "app" (tuichat'
                ' reorders it), "terminal" (your terminal does) or "off" (as it is stored).'
                " By default, tuichat chooses."
            ),
            _choice(BIDI_MODES),
            example="app",
        ),
    )
    """One of `BIDI_MODES`; None: not chosen."""
    server: ServerSettings = field(
        default_factory=ServerSettings,
        metadata=_section(ServerSettings, N_("The server to connect to.")),
    )
    notify: NotifySettings = field(
        default_factory=NotifySettings, metadata=_section(NotifySettings, N_("Notifications."))
    )
    keys: Mapping[str, str] = field(
        default_factory=_default_keys,
        metadata=_about(
            N_(
                "Keys for commands: ctrl, alt and shift join a key with +, as in ctrl+shift+up;"
                ' commas separate the keys of one command, as in "ctrl+o,f4".'
            ),
            _keys,
        ),
    )
    """Every name of `KEY_ACTIONS` → its key, as Textual names it (an `App.set_keymap` map)."""

    def effective_calendar(self, lang: str | None = None) -> str:
        """The calendar the log's dates are in: `calendar` if chosen, else "jalali" when the
        app speaks Persian (`lang`, by default the language in use), else "gregorian"."""
        if self.calendar is not None:
            return self.calendar
        return "jalali" if (lang or i18n.language()) == "fa" else "gregorian"


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
        raise ConfigError(_("{file}: there is no such file").format(file=file)) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            _("{file}: it is not UTF-8 text (byte {byte})").format(file=file, byte=exc.start)
        ) from None
    except OSError as exc:
        raise ConfigError(
            _("{file}: it cannot be read: {reason}").format(file=file, reason=exc.strerror or exc)
        ) from None
    return parse_config(text, file)


_AT = re.compile(r"(.*) \(at line (\d+), column (\d+)\)$", re.DOTALL)


def parse_config(text: str, file: Path) -> Config:
    """Return the settings in `text`, the contents of `file`; raise `ConfigError` if it is wrong."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        line, column = None, None
        if (found := _AT.match(message)) is not None:
            message, line, column = found[1], int(found[2]), int(found[3])
        message = message.removesuffix(" (at end of document)")
        reason = message[:1].lower() + message[1:]  # (tomllib's words: in English)
        where = _place(file, line, column)
        raise ConfigError(
            _("{place}: this is not valid TOML: {reason}").format(place=where, reason=reason),
            line=line,
            column=column,
        ) from None
    try:
        config = _build(Config, data, (), file.parent)
    except _Invalid as exc:
        line = line_of(text, exc.at)
        problem = exc.reason
        if exc.subject:
            # TRANSLATORS: a setting (like server.port), then what is wrong with its value
            problem = _("{key} {problem}").format(key=_dotted(exc.at), problem=problem)
        where = _place(file, line)
        raise ConfigError(f"{where}: {problem}", line=line) from None
    assert isinstance(config, Config)
    return config


def _place(file: Path, line: int | None, column: int | None = None) -> str:
    """Where in the settings file: `file, line 2, column 9`, or less if less is known."""
    if line is None:
        return str(file)
    if column is None:
        return _("{file}, line {line}").format(file=file, line=line)
    return _("{file}, line {line}, column {column}").format(file=file, line=line, column=column)


def _build(cls: type, table: dict[str, Any], path: tuple[str, ...], where: Path) -> object:
    """An instance of the settings dataclass `cls` from its `table`, at `path` in the file."""
    known = {each.name: each for each in fields(cls)}
    values: dict[str, object] = {}
    for key, value in table.items():
        try:
            setting = known.get(key)
            if setting is None:
                hint = _belongs(cls, key) or _suggest(key, known)
                if path:
                    unknown = _('unknown key "{key}" in [{table}]{hint}').format(
                        key=key, table=_dotted(path), hint=hint
                    )
                else:
                    unknown = _('unknown key "{key}"{hint}').format(key=key, hint=hint)
                raise _Invalid(unknown, subject=False)
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
        lines += ["", *_comment(_(each.metadata["doc"]))]
        if example is MISSING:
            lines.append(f"{_dotted((each.name,))} = {_toml(value)}")
        else:
            lines.append(
                f"# {_dotted((each.name,))} = {_toml(value if example is None else example)}"
            )
    for each, header in later:
        value = getattr(defaults, each.name)
        lines += ["", *_comment(_(each.metadata["doc"])), f"[{header}]"]
        if "table" in each.metadata:
            lines += _example_lines(each.metadata["table"], (*path, each.name), value)
        elif each.name == "keys" and cls is Config:
            for name, action in KEY_ACTIONS.items():
                lines.append(f"{name} = {_toml(value[name])}  # {action.describe()}")
        else:
            example = each.metadata["example"]
            lines += [f"# {_dotted((k,))} = {_toml(v)}" for k, v in dict(example).items()]
    return lines


def example() -> str:
    """A settings file with every key at its default, each explained in a comment."""
    about = _(
        "tuichat's settings. Every key is shown at its default: change what you like and\n"
        "delete the rest. Flags on the command line win over this file.\n"
        "tuichat reads {path} (or the file given with --config)."
    ).format(path=default_path())
    head = [f"# {line}" for line in about.splitlines()]
    return "\n".join([*head, *_example_lines(Config, (), Config())]) + "\n"
