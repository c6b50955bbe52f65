"""The app's languages: every message has its Persian, the catalog shipped is the one
translated, `--lang` and the locale choose the language, and a Persian app speaks Persian
right to left."""

from __future__ import annotations

import io
import string
import tomllib
from collections.abc import Iterator
from fnmatch import fnmatch
from importlib.resources import files
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from rich.console import Console
from textual.app import App
from textual.content import Content
from textual.widgets import Static

from tests.app_support import connected, log_texts, make_app, until
from tuichat.app import commands as cmd
from tuichat.app import i18n
from tuichat.app.cli import config_from_args, main, parse_args
from tuichat.app.config import Config, ConfigError, load_config
from tuichat.app.i18n import _, is_rtl, language, ngettext, set_language
from tuichat.app.screens.help import HelpScreen
from tuichat.app.widgets.bidi_text import BidiText
from tuichat.app.widgets.sidebar import Sidebar
from tuichat.server import ChatServer

ROOT = Path(__file__).resolve().parent.parent
LOCALE = ROOT / "tuichat" / "locale"
PO = LOCALE / "fa" / "LC_MESSAGES" / "tuichat.po"
MO = LOCALE / "fa" / "LC_MESSAGES" / "tuichat.mo"
POT = LOCALE / "tuichat.pot"
KEYWORDS = {"_": None, "N_": None, "ngettext": (1, 2)}
"""As the README's `pybabel extract` finds them."""
ENVIRONMENT = ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG")


@pytest.fixture(autouse=True)
def english_after() -> Iterator[None]:
    """Each test leaves the process in English, as every other test expects it."""
    yield
    set_language("en")


@pytest.fixture
def no_locale(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """An environment that names no language; the test sets what it wants."""
    for variable in ENVIRONMENT:
        monkeypatch.delenv(variable, raising=False)
    return monkeypatch


def catalog(path: Path = PO) -> Catalog:
    with path.open("rb") as file:
        return read_po(file)


def source_messages() -> dict[str | tuple[str, str], list[str]]:
    """Every message of the app's source (widgets included), with where it is."""
    found: dict[str | tuple[str, str], list[str]] = {}
    app = ROOT / "tuichat" / "app"
    for filename, line, message, _comments, _context in extract_from_dir(
        app, method_map=[("**.py", "python")], keywords=KEYWORDS
    ):
        found.setdefault(message, []).append(f"{filename}:{line}")
    return found


def fields(text: str) -> set[str]:
    """The names of the `{fields}` of a format string."""
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


# --- the catalog --------------------------------------------------------------


def test_every_message_of_the_app_has_its_persian() -> None:
    persian, template = catalog(), catalog(POT)
    assert persian.plural_forms == "nplurals=2; plural=(n > 1);"
    problems = []
    for message, where in source_messages().items():
        msgid = message if isinstance(message, str) else message[0]
        entry = persian.get(msgid)
        if msgid not in template:
            problems.append(f"{where[0]}: {msgid!r} is not in tuichat.pot (run pybabel extract)")
        if entry is None:
            problems.append(f"{where[0]}: {msgid!r} has no Persian (run pybabel update)")
            continue
        forms = entry.string if isinstance(entry.string, tuple) else (entry.string,)
        if entry.fuzzy or not all(forms):
            problems.append(f"{where[0]}: {msgid!r} is fuzzy or not translated")
        if entry.id != message:
            problems.append(f"{where[0]}: {msgid!r} has other plural forms in the catalog")
    assert problems == []
    assert [entry.id for entry in persian if entry.id and entry.fuzzy] == []


def test_the_compiled_catalog_is_the_po_compiled_now() -> None:
    compiled = []
    for _time in range(2):
        out = io.BytesIO()
        write_mo(out, catalog())
        compiled.append(out.getvalue())
    assert compiled[0] == compiled[1]  # the same catalog compiles to the same bytes
    assert MO.read_bytes() == compiled[0], "run pybabel compile -D tuichat -d tuichat/locale"


def test_each_translation_keeps_the_placeholders_of_its_message() -> None:
    persian = catalog()
    wrong = []
    for entry in persian:
        if not entry.id:
            continue
        ids = entry.id if isinstance(entry.id, tuple) else (entry.id,)
        forms = entry.string if isinstance(entry.string, tuple) else (entry.string,)
        wanted = set().union(*(fields(text) for text in ids))
        wrong += [(ids[0], form) for form in forms if fields(form) != wanted]
    assert wrong == []
    assert [(entry.id, errors) for entry, errors in persian.check()] == []  # %-formats too


def test_the_persian_is_written_in_persian_letters() -> None:
    arabic_yeh, arabic_kaf = "\u064a", "\u0643"  # Persian has its own: ی and ک
    for entry in catalog():
        forms = entry.string if isinstance(entry.string, tuple) else (entry.string,)
        for form in forms:
            assert arabic_yeh not in form and arabic_kaf not in form, entry.id


def test_the_installed_package_finds_the_persian_catalog() -> None:
    shipped = files("tuichat") / "locale" / "fa" / "LC_MESSAGES" / "tuichat.mo"
    assert i18n.catalog("fa") == shipped
    assert shipped.read_bytes() == MO.read_bytes()
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
    packaged = pyproject["tool"]["setuptools"]["package-data"]["tuichat"]
    assert any(fnmatch("locale/fa/LC_MESSAGES/tuichat.mo", pattern) for pattern in packaged)
    assert set_language("fa") == "fa"
    assert _("Quit") == "خروج"


# --- choosing the language -------------------------------------------------------


def test_the_language_is_english_until_told_otherwise() -> None:
    assert (language(), is_rtl()) == ("en", False)
    assert _("Quit") == "Quit"
    assert _("") == ""  # (not the catalog's header)


def test_set_language_speaks_persian_and_back() -> None:
    assert set_language("fa") == "fa"
    assert (language(), is_rtl()) == ("fa", True)
    assert _("Quit") == "خروج"
    assert _("") == ""
    assert ngettext("{count} new message", "{count} new messages", 3) == "{count} پیام تازه"
    assert _("no such message") == "no such message"
    assert set_language("en") == "en"
    assert _("Quit") == "Quit"


@pytest.mark.parametrize(
    ("given", "spoken"),
    [("fa", "fa"), ("fa_IR.UTF-8", "fa"), ("FA", "fa"), ("en_GB", "en"), ("de", "en"), ("", "en")],
)
def test_an_unknown_language_is_english(given: str, spoken: str) -> None:
    assert set_language(given) == spoken


@pytest.mark.parametrize(
    ("environment", "spoken"),
    [
        ({}, "en"),
        ({"LANG": "fa_IR.UTF-8"}, "fa"),
        ({"LANG": "C.UTF-8"}, "en"),
        ({"LC_MESSAGES": "fa_IR", "LANG": "en_US.UTF-8"}, "fa"),
        ({"LC_ALL": "en_US.UTF-8", "LC_MESSAGES": "fa_IR"}, "en"),
        ({"LANGUAGE": "de:fa", "LANG": "en_US.UTF-8"}, "fa"),  # the first it speaks
        ({"LANGUAGE": "C:fa"}, "en"),  # "C" ends the list: no language
        ({"LANGUAGE": "", "LANG": "fa_IR.UTF-8"}, "fa"),  # (an empty variable is not set)
    ],
)
def test_none_is_the_language_of_the_environment(
    no_locale: pytest.MonkeyPatch, environment: dict[str, str], spoken: str
) -> None:
    for variable, value in environment.items():
        no_locale.setenv(variable, value)
    assert set_language(None) == spoken


def test_lang_in_the_settings_file(tmp_path: Path) -> None:
    file = tmp_path / "config.toml"
    file.write_text('lang = "fa"\ncalendar = "gregorian"\nbidi = "terminal"\n', "utf-8")
    config = load_config(file)
    assert (config.lang, config.calendar, config.bidi) == ("fa", "gregorian", "terminal")
    assert (Config().lang, Config().calendar, Config().bidi) == (None, None, None)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            'lang = "de"',
            'lang "de" is not a language tuichat speaks: use "en" (English) or "fa" (فارسی)',
        ),
        ("lang = 1", "lang must be text in quotes, not 1"),
        ('bidi = "of"', 'bidi must be "app", "terminal" or "off", not "of" (did you mean "off"?)'),
        ('calendar = "persian"', 'calendar must be "gregorian" or "jalali", not "persian"'),
    ],
)
def test_a_wrong_language_bidi_or_calendar_in_the_file(
    tmp_path: Path, line: str, message: str
) -> None:
    file = tmp_path / "config.toml"
    file.write_text(f'name = "ali"\n{line}\n', "utf-8")
    with pytest.raises(ConfigError) as raised:
        load_config(file)
    assert str(raised.value) == f"{file}, line 2: {message}"


def test_flags_win_over_the_file(tmp_path: Path) -> None:
    file = tmp_path / "config.toml"
    file.write_text('lang = "fa"\ncalendar = "jalali"\nbidi = "app"\n', "utf-8")
    flags = ["--config", str(file), "--lang", "en", "--calendar", "gregorian", "--bidi", "off"]
    config = config_from_args(parse_args(flags))
    assert (config.lang, config.calendar, config.bidi) == ("en", "gregorian", "off")
    kept = config_from_args(parse_args(["--config", str(file)]))
    assert (kept.lang, kept.calendar, kept.bidi) == ("fa", "jalali", "app")


def test_a_wrong_flag_says_what_it_may_be(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        parse_args(["--lang", "de"])
    assert done.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        'tuichat: error: argument --lang: "de" is not a language tuichat speaks:'
        ' use "en" (English) or "fa" (فارسی)'
    )
    with pytest.raises(SystemExit):
        parse_args(["--calendar", "julian"])
    assert capsys.readouterr().err.splitlines()[-1] == (
        'tuichat: error: argument --calendar: must be "gregorian" or "jalali", not "julian"'
    )


def test_help_is_in_the_language_of_lang(
    no_locale: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main(["--lang", "fa", "--help"])
    persian = capsys.readouterr().out
    assert persian.startswith("طرز استفاده: tuichat")
    assert "--calendar {gregorian,jalali}" in persian
    assert "نمایش نسخه\u0654 برنامه و خروج" in persian
    assert language() == "en"  # main leaves the language as it found it
    no_locale.setenv("LANG", "fa_IR.UTF-8")
    with pytest.raises(SystemExit):
        main(["--help"])
    assert capsys.readouterr().out == persian  # the locale's, when --lang is not given
    with pytest.raises(SystemExit):
        main(["--lang", "en", "--help"])
    english = capsys.readouterr().out
    assert english.startswith("usage: tuichat")
    for flag in (
        "--lang {en,fa}",
        "--bidi {app,terminal,off}",
        "show program's version number and exit",
    ):
        assert flag in english


def test_the_printed_settings_in_persian_load_back_to_the_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config-home"))
    assert main(["--lang", "fa", "--print-config"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("# تنظیمات tuichat.")
    assert '\n# lang = "fa"\n' in printed
    assert '\n# calendar = "jalali"\n' in printed
    assert '\n# bidi = "app"\n' in printed
    assert '\nconversation_3 = "alt+3"  # گفت\u200cوگوی 3\n' in printed
    file = tmp_path / "config.toml"
    file.write_text(printed, "utf-8")
    assert load_config(file) == Config()


def test_a_wrong_settings_file_is_told_in_the_language_of_lang(tmp_path: Path) -> None:
    file = tmp_path / "config.toml"
    file.write_text('[server]\nport = "abc"\n', "utf-8")
    set_language("fa")
    with pytest.raises(ConfigError) as raised:
        load_config(file)
    assert str(raised.value) == f'{file}، خط 2: server.port باید عددی صحیح باشد، نه "abc"'


def test_the_calendar_follows_the_language_unless_chosen() -> None:
    assert Config().effective_calendar() == "gregorian"
    assert Config().effective_calendar("fa") == "jalali"
    assert Config(calendar="gregorian").effective_calendar("fa") == "gregorian"
    set_language("fa")
    assert Config().effective_calendar() == "jalali"
    assert Config(calendar="gregorian").effective_calendar() == "gregorian"


# --- the app in Persian --------------------------------------------------------------


def help_text(app: App[object]) -> str:
    """Everything the screen on top holds in its `Static`s and `BidiText`s, as drawn (all of
    it, what is scrolled out of sight too)."""
    console = Console(width=200, file=io.StringIO(), record=True)
    for widget in app.screen.query("Static, BidiText"):
        if isinstance(widget, BidiText):
            console.print("\n".join(widget.lines(100)))
            continue
        assert isinstance(widget, Static)
        content = widget.content
        console.print(content.plain if isinstance(content, Content) else content)
    return console.export_text()


async def test_the_app_in_persian_speaks_persian_right_to_left(server: ChatServer) -> None:
    app = make_app(server.address, "ali", config=Config(name="ali", lang="fa"))
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: connected(app))
        assert app.has_class("-rtl")
        sidebar = app.query_one(Sidebar)
        assert sidebar.region.x == 0  # docked on the left
        await pilot.press(*"/users", "enter")
        await until(pilot, lambda: "1 نفر در #lobby: ali" in log_texts(app))
        await pilot.press(*"/help", "enter")
        await until(pilot, lambda: _(cmd.HELP) in log_texts(app))
        assert _(cmd.HELP).startswith("فرمان\u200cها: /msg نام متن")  # noqa: RUF001
        assert [title for title, *_rest in app.get_system_commands(app.screen)][:2] == [
            "پوسته",
            "خروج",
        ]
        await pilot.press("f1")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen))
        shown = help_text(app)
        drawn = app.bidi.display
        for text in ("کلیدها", "فرمان\u200cها", "خروج", "/join #اتاق", "ctrl+o یا f4"):  # noqa: RUF001
            assert drawn(text) in shown, text  # as drawn: joined, right to left
        heading = app.screen.query(".heading").first(BidiText)
        assert heading.lines(40)[0].startswith(" ") and heading.lines(40)[0].strip()


async def test_the_app_speaks_english_whatever_the_locale(
    server: ChatServer, no_locale: pytest.MonkeyPatch
) -> None:
    no_locale.setenv("LANG", "fa_IR.UTF-8")
    app = make_app(server.address, "ali")  # a Config of its own: lang None
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: connected(app))
        assert language() == "en" and not app.has_class("-rtl")
        sidebar = app.query_one(Sidebar)
        assert sidebar.region.right == app.size.width  # docked on the right
        await pilot.press(*"/users", "enter")
        await until(pilot, lambda: "1 in #lobby: ali" in log_texts(app))
        await pilot.press("f1")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen))
        shown = help_text(app)
        for text in ("Keys", "Commands", "Quit", "/join #ROOM", "ctrl+o or f4"):
            assert text in shown, text
        heading = app.screen.query(".heading").first(BidiText)
        assert heading.lines(40)[0] == "Keys"  # at the left
