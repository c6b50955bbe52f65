"""The app's languages: gettext catalogs of the "tuichat" domain, shipped in `tuichat/locale`.

`_` and `ngettext` translate into the language in use, looked up at each call, so a string
is translated where it is shown. Strings made at import time (class attributes, tables) are
marked with `N_`, which only marks them for extraction, and go through `_` where shown.
English is the language of the source: it needs no catalog. The app starts in English;
`set_language` changes the language for the whole process.

Catalogs are made with Babel (see the README's "Translations"):
`tuichat/locale/tuichat.pot` holds every message, `fa/LC_MESSAGES/tuichat.po` their
Persian, compiled to `tuichat.mo`, the file read here.
"""

from __future__ import annotations

import functools
import gettext
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from importlib.resources import files
from importlib.resources.abc import Traversable
from types import MappingProxyType
from typing import TYPE_CHECKING

from tuichat.app.bidi import FSI, LRI, PDI, has_rtl, without_isolates

if TYPE_CHECKING:
    from textual.binding import Binding
    from textual.dom import DOMNode

DOMAIN = "tuichat"
SOURCE = "en"
"""The language the messages are written in."""
LANGUAGES: Mapping[str, str] = MappingProxyType({"en": "English", "fa": "فارسی"})
"""The languages the app speaks, each by its code and its own name for itself."""
RIGHT_TO_LEFT = frozenset({"fa"})
ENVIRONMENT = ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG")
"""The variables that name the user's language, in the order gettext reads them."""

_language = SOURCE
_catalog: gettext.NullTranslations = gettext.NullTranslations()


def N_(message: str) -> str:
    """Mark `message` for extraction without translating it (it is translated where shown)."""
    return message


class Translated(str):
    """A message in the language in use. Its `format` isolates each value it fills in that
    holds right-to-left text (FSI … PDI, Unicode's bidi isolates), so that a Persian name in
    an English sentence, or an English one in a Persian sentence, never moves the words
    around it when the line is drawn."""

    __slots__ = ()

    def format(self, *args: object, **kwargs: object) -> str:
        return str.format(self, *map(isolated, args), **{k: isolated(v) for k, v in kwargs.items()})


class Piece(str):
    """A piece of a sentence in the language in use, its own values isolated already (`: spam`
    after "ali kicked bob"): a `Translated` message fills it in as it is, as part of itself."""

    __slots__ = ()


def isolated(value: object) -> object:
    """`value` as a `Translated` message fills it in: a string in an isolate of its own if
    it holds a right-to-left letter, or (in a right-to-left language) any letter at all;
    a `Piece`, and anything else, as it is."""
    if not isinstance(value, str) or not value or isinstance(value, Piece):
        return value
    if (not value.isascii() and has_rtl(value)) or (
        _language in RIGHT_TO_LEFT and any(c.isalpha() for c in value)
    ):
        return f"{FSI}{value}{PDI}"
    return value


def paragraphs(text: str) -> str:
    """The app's own words (lines of them) as the UI reads them: in a right-to-left language
    each line a paragraph that reads right to left (an RLM first), whatever word it starts
    with ("Enter …", a key's name, would make it read left to right)."""
    if not text or not is_rtl():
        return text
    return "\n".join(f"\u200f{line}" for line in text.split("\n"))


def token(text: str) -> str:
    """A token that reads left to right (`+1`, `v2`) as a `Translated` message fills it in: in
    a right-to-left language in an isolate of its own that reads left to right (LRI … PDI),
    which no letter in it would ask for, so that the sentence around it cannot turn it round
    (`1+`)."""
    return Piece(f"{LRI}{text}{PDI}") if is_rtl() else text


def plain(text: str) -> str:
    """`text` without the isolates `Translated.format` put in: for what is printed to a
    terminal as it is (the CLI's messages), not drawn by the app."""
    return without_isolates(text)


def for_terminal(message: str) -> str:
    """`message` in the language in use, as a plain `str` (its `format` puts in no isolates):
    for what is printed to a terminal as it is, like the CLI's help and errors."""
    return str(_(message))


def _(message: str) -> str:
    """`message` in the language in use."""
    if not message:
        return message  # (gettext gives the catalog's header for "")
    return Translated(_catalog.gettext(message))


def ngettext(singular: str, plural: str, n: int) -> str:
    """The form of `singular` / `plural` for `n` things, in the language in use."""
    return Translated(_catalog.ngettext(singular, plural, n))


def language() -> str:
    """The code of the language in use ("en" or "fa")."""
    return _language


def is_rtl() -> bool:
    """Whether the language in use is written right to left."""
    return _language in RIGHT_TO_LEFT


def catalog(lang: str) -> Traversable:
    """Where the package keeps the compiled catalog of `lang`."""
    return files("tuichat") / "locale" / lang / "LC_MESSAGES" / f"{DOMAIN}.mo"


@functools.cache
def _translations(lang: str) -> gettext.NullTranslations | None:
    """The catalog of `lang` (None if the package has none)."""
    if lang == SOURCE:
        return gettext.NullTranslations()
    try:
        with catalog(lang).open("rb") as file:
            return gettext.GNUTranslations(file)
    except OSError:
        return None


def code(name: str) -> str | None:
    """The language code in a locale name (`fa_IR.UTF-8` → "fa"), or None for "C" or
    "POSIX", which name no language."""
    base = name.partition(".")[0].partition("@")[0].replace("-", "_").partition("_")[0]
    base = base.strip().lower()
    return None if base in ("", "c", "posix") else base


def from_environment(environ: Mapping[str, str] | None = None) -> str:
    """The language the environment asks for, as gettext reads it: the first of `ENVIRONMENT`
    that is set, a colon-separated list of preferences, the first the app speaks wins (up to
    a "C", which means none); English if none."""
    env = os.environ if environ is None else environ
    wanted: Iterable[str] = ()
    for variable in ENVIRONMENT:
        if env.get(variable):
            wanted = env[variable].split(":")
            break
    for name in wanted:
        lang = code(name)
        if lang is None and name.strip():
            break  # "C": no language
        if lang is not None and lang in LANGUAGES and _translations(lang) is not None:
            return lang
    return SOURCE


def set_language(lang: str | None) -> str:
    """Speak `lang` ("en", "fa", or a locale name like "fa_IR.UTF-8") from now on; None: the
    environment's language (`from_environment`). A language the app does not speak is
    English. Returns the code of the language in use."""
    global _language, _catalog
    chosen = from_environment() if lang is None else code(lang) or SOURCE
    translations = _translations(chosen) if chosen in LANGUAGES else None
    if translations is None:
        chosen, translations = SOURCE, gettext.NullTranslations()
    _language, _catalog = chosen, translations
    return chosen


def translate_bindings(node: DOMNode, describe: Callable[[Binding], str] | None = None) -> None:
    """Show the descriptions of `node`'s key bindings (its BINDINGS, marked with `N_`) in the
    language in use; call it in the node's `__init__`. `describe` gives a binding's
    description in the language in use, if `_` of its description is not it.

    Textual copies a class's BINDINGS for each instance: the copy is translated.
    """
    said = describe or (lambda binding: _(binding.description))
    bindings = node._bindings  # (Textual keeps no public way to change a description)
    bindings.key_to_bindings = {
        key: [replace(binding, description=said(binding)) for binding in each]
        for key, each in bindings.key_to_bindings.items()
    }
