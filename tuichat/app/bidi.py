"""Right-to-left text on terminals that draw every row left to right.

Text stays in logical order everywhere (what is stored, sent, searched and copied); only what
is drawn is visual. For one line of logical text, `Bidi.line` returns what to draw, cell by
cell from the left: Arabic-script letters shaped to their joined presentation forms (one
character stays one cell), the line reordered by the Unicode bidirectional algorithm with the
direction of its paragraph, brackets mirrored where they read right to left, and combining
marks kept after the letter they sit on. `Line.order` maps each drawn character back to the
logical character it shows, so the composer can put its cursor and selection where they belong.

Each piece of a row (a time, a name, a message line) is reordered on its own, which isolates it:
no text can move the name/time gutter or run into the next name.

Modes (`--bidi`): `app` does all of the above; `terminal` and `off` draw logical text unchanged
(for terminals that reorder rows themselves, and for those who want no reordering at all).
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass
from typing import Any, Literal

Mode = Literal["app", "terminal", "off"]
MODES: tuple[Mode, ...] = ("app", "terminal", "off")

ZWNJ = "\u200c"
LRI, RLI, FSI, PDI = "\u2066", "\u2067", "\u2068", "\u2069"
_INITIATORS = frozenset((LRI, RLI, FSI))
_PLACEHOLDER = "\ufffc"
"""What an isolate is, to the text around it: a neutral (ON) character."""
ZWNJ_MARK = "\u00b7"
"""What the composer draws for a zero-width non-joiner while it is being edited."""

_RTL = re.compile(
    "[\u0590-\u08ff\u200f\ufb1d-\ufdff\ufe70-\ufefc\U00010800-\U00010fff\U0001e800-\U0001efff]"
)
"""Letters of the right-to-left scripts (Hebrew, Arabic, Syriac, Thaana, N'Ko, …), and the
right-to-left mark (RLM), which a message may start with to read right to left."""
_ARABIC = re.compile("[\u0600-\u06ff\u0750-\u077f\u08a0-\u08ff]")


@functools.cache
def _slow() -> re.Pattern[str]:
    """What the fast reordering gets wrong or does otherwise: brackets it does not mirror,
    combining marks it puts before their letter, isolates (a wrapped line may hold half of
    one) and embeddings (which it would obey, and keep). (The bidi libraries are imported
    the first time right-to-left text is drawn: most sessions start without any.)"""
    from bidi.mirror import MIRRORED

    return re.compile(
        "[" + re.escape("".join(MIRRORED)) + "\u0300-\u036f\u0610-\u061a\u064b-\u065f"
        "\u0670\u06d6-\u06ed\u08d3-\u08ff\u202a-\u202e\u2066-\u2069]"
    )


_ISOLATE_MARKS = re.compile("[\u2066-\u2069]")
_INVISIBLE = re.compile("[\u200b-\u200f\u2060-\u206f\ufeff]")
_IGNORED = frozenset({"LRE", "RLE", "LRO", "RLO", "PDF", "LRI", "RLI", "FSI", "PDI"})
"""Explicit embeddings and isolates: network text never has them; here they are ignored."""


@functools.cache
def _get_display() -> Any:
    """python-bidi's fast reordering (imported the first time it is needed)."""
    from bidi import get_display

    return get_display


@functools.cache
def _reshaper() -> Any:
    """arabic-reshaper, as the log needs it (made the first time Arabic script is drawn)."""
    import arabic_reshaper

    return arabic_reshaper.ArabicReshaper(
        configuration={
            "support_ligatures": False,  # lam-alef as one character: one cell for two
            "delete_harakat": False,
            "delete_tatweel": False,
            "shift_harakat_position": False,
            "support_zwj": True,
        }
    )


@dataclass(frozen=True, slots=True)
class Line:
    """One line as drawn: `text` from the left, each character showing logical `order[i]`."""

    text: str
    order: tuple[int, ...]
    rtl: bool


def shift_space(before: str) -> str:
    """What Shift+Space types after the character `before` (or "" at the start): a ZWNJ (the
    Persian half-space, which Persian layouts put on that key) after a letter of an
    Arabic-script word, else a space."""
    return ZWNJ if before and has_rtl(before) and before.isalpha() else " "


def turned_arrow(key: str) -> str:
    """`key` with its Left or Right turned round (`shift+left` → `shift+right`), for a line
    that reads right to left, where the arrows move as they point on screen; other keys as
    they are."""
    head, _, arrow = key.rpartition("+")
    if arrow not in ("left", "right"):
        return key
    turned = "right" if arrow == "left" else "left"
    return f"{head}+{turned}" if head else turned


def has_rtl(text: str) -> bool:
    """Whether `text` holds a letter of a right-to-left script."""
    return not text.isascii() and _RTL.search(text) is not None


def shape(text: str) -> str:
    """`text` with its Arabic-script letters in their joined forms, one character for one."""
    if text.isascii() or _ARABIC.search(text) is None:
        return text
    shaped: str = _reshaper().reshape(text)
    return shaped if len(shaped) == len(text) else text


class Bidi:
    """How text is drawn: the mode, and (for tests) upper-case Latin read as right-to-left."""

    def __init__(self, mode: Mode = "app", *, upper_is_rtl: bool = False) -> None:
        if mode not in MODES:
            raise ValueError(f"bidi mode is one of {', '.join(MODES)}, not {mode!r}")
        self.mode: Mode = mode
        self.upper_is_rtl = upper_is_rtl
        """The test alphabet: A-Z are right-to-left letters, so tests read without Persian."""

    @property
    def active(self) -> bool:
        """Whether the app reorders text itself."""
        return self.mode == "app"

    def _rtl_text(self, text: str) -> bool:
        if self.upper_is_rtl and any(c.isupper() for c in text):
            return True
        return has_rtl(text)

    def is_rtl(self, text: str) -> bool:
        """The paragraph direction of `text`: that of its first strong character (RTL only
        when the app reorders)."""
        if not self.active or not self._rtl_text(text):
            return False
        return first_strong_rtl(text, self.upper_is_rtl)

    def display(self, text: str, rtl: bool | None = None) -> str:
        """What to draw for one line of `text` (its direction `rtl`, or that of its first
        strong character)."""
        if not self.active:
            return text if self.mode == "terminal" else without_isolates(text)
        if rtl is None:
            rtl = self.is_rtl(text)
        if not rtl and not self._rtl_text(text):
            return strip_invisible(text)
        shaped = shape(text)
        if not self.upper_is_rtl and _slow().search(shaped) is None:
            fast: str = _get_display()(shaped, base_dir="R" if rtl else "L")
            return strip_invisible(fast)
        return _visible(*_reorder(shaped, rtl, self.upper_is_rtl))[0]

    def name(self, name: str, *, rtl_layout: bool = False) -> str:
        """A name, `#room` or `@name` as drawn on its own; in a left-to-right layout its sigil
        stays at its left, in a right-to-left one it goes where the name's direction puts it
        (at the right of a Persian name)."""
        if len(name) > 1 and name[0] in "#@" and not rtl_layout:
            return name[0] + self.display(name[1:])
        return self.display(name)

    def line(self, text: str, rtl: bool | None = None, *, marks: bool = False) -> Line:
        """`text` as drawn, with the logical index of each drawn character; `marks` draws each
        zero-width non-joiner as a thin `ZWNJ_MARK` (for the composer) instead of nothing."""
        if rtl is None:
            rtl = self.is_rtl(text)
        if not self.active or (not rtl and not self._rtl_text(text)):
            if marks and ZWNJ in text:
                text = text.replace(ZWNJ, ZWNJ_MARK)
            if self.mode == "terminal":  # (its own bidi may want the marks)
                return Line(text, tuple(range(len(text))), rtl)
            return Line(*_visible(text, tuple(range(len(text)))), rtl)
        shaped = shape(text)
        if marks:
            shaped = shaped.replace(ZWNJ, ZWNJ_MARK)
        drawn, order = _visible(*_reorder(shaped, rtl, self.upper_is_rtl))
        return Line(drawn, order, rtl)


def _visible(text: str, order: tuple[int, ...]) -> tuple[str, tuple[int, ...]]:
    """A drawn line without its zero-width format characters (direction marks, joiners), which
    a terminal might draw as something."""
    if text.isascii() or _INVISIBLE.search(text) is None:
        return text, order
    kept = [(c, i) for c, i in zip(text, order, strict=True) if _INVISIBLE.match(c) is None]
    return "".join(c for c, _ in kept), tuple(i for _, i in kept)


def first_strong_rtl(text: str, upper_is_rtl: bool = False) -> bool:
    """Whether the first strong character of `text` (outside isolates, rule P2) is
    right-to-left."""
    depth = 0
    for char in text:
        if char in _INITIATORS:
            depth += 1
        elif char == PDI:
            depth = max(depth - 1, 0)
        elif depth == 0:
            if upper_is_rtl and char.isupper():
                return True
            kind = unicodedata.bidirectional(char)
            if kind in ("R", "AL"):
                return True
            if kind == "L":
                return False
    return False


def _isolates(text: str) -> list[tuple[int, int]]:
    """The outermost isolates of `text`: where each initiator is, and where its PDI ends
    (the end of `text` for one never closed)."""
    spans: list[tuple[int, int]] = []
    depth = start = 0
    for index, char in enumerate(text):
        if char in _INITIATORS:
            if depth == 0:
                start = index
            depth += 1
        elif char == PDI and depth:
            depth -= 1
            if depth == 0:
                spans.append((start, index + 1))
    if depth:
        spans.append((start, len(text)))
    return spans


def _reorder(text: str, rtl: bool, upper_is_rtl: bool) -> tuple[str, tuple[int, ...]]:
    """The Unicode bidi algorithm over one line, keeping each character's logical index. An
    isolate (LRI/RLI/FSI … PDI) is ordered on its own, with its own direction, and stands
    in the text around it as one neutral character, as rule X5a and BD13 say."""
    spans = _isolates(text) if not text.isascii() else []
    if not spans:
        return _reorder_flat(text, rtl, upper_is_rtl)
    outer: list[str] = []
    where: list[int] = []  # for each character of `outer`: its index, or -1 - its isolate
    position = 0
    for number, (start, end) in enumerate(spans):
        outer.append(text[position:start])
        where.extend(range(position, start))
        outer.append(_PLACEHOLDER)
        where.append(-1 - number)
        position = end
    outer.append(text[position:])
    where.extend(range(position, len(text)))
    drawn, order = _reorder_flat("".join(outer), rtl, upper_is_rtl)
    chars: list[str] = []
    indexes: list[int] = []
    for char, index in zip(drawn, order, strict=True):
        at = where[index]
        if at >= 0:
            chars.append(char)
            indexes.append(at)
            continue
        start, end = spans[-1 - at]
        inner_end = end - 1 if text[end - 1] == PDI else end
        inner = text[start + 1 : inner_end]
        initiator = text[start]
        inner_rtl = initiator == RLI or (initiator == FSI and first_strong_rtl(inner, upper_is_rtl))
        inner_drawn, inner_order = _reorder(inner, inner_rtl, upper_is_rtl)
        chars.append(inner_drawn)
        indexes.extend(start + 1 + i for i in inner_order)
    return "".join(chars), tuple(indexes)


def _reorder_flat(text: str, rtl: bool, upper_is_rtl: bool) -> tuple[str, tuple[int, ...]]:
    """The Unicode bidi algorithm (rules P to L4) over one line without isolates, keeping
    each character's logical index: python-bidi's own steps, its storage carrying them."""
    from bidi import algorithm as uba

    storage: dict[str, Any] = uba.get_empty_storage()
    storage["base_level"] = 1 if rtl else 0
    storage["base_dir"] = "R" if rtl else "L"
    uba.get_embedding_levels(text, storage, upper_is_rtl)
    for index, char in enumerate(storage["chars"]):
        char["index"] = index
        if char["type"] in _IGNORED:
            char["type"] = char["orig"] = "BN"
    uba.explicit_embed_and_overrides(storage)  # (X9 drops invisible format characters)
    uba.resolve_weak_types(storage)
    uba.resolve_neutral_types(storage, False)
    uba.resolve_implicit_levels(storage, False)
    uba.reorder_resolved_levels(storage, False)
    uba.apply_mirroring(storage, False)
    chars: list[dict[str, Any]] = storage["chars"]
    _marks_after_letters(chars)
    return "".join(c["ch"] for c in chars), tuple(c["index"] for c in chars)


def _marks_after_letters(chars: list[dict[str, Any]]) -> None:
    """Put combining marks that reversal moved before their letter back after it (a terminal
    draws a mark on the cell before it)."""
    i = 0
    while i < len(chars):
        if chars[i]["orig"] != "NSM" or chars[i]["level"] % 2 == 0:
            i += 1
            continue
        start = i
        while i < len(chars) and chars[i]["orig"] == "NSM" and chars[i]["level"] % 2:
            i += 1
        if i < len(chars):  # the letter they belong to comes after them, reversed
            chars[start : i + 1] = [chars[i], *chars[start:i]]
        i += 1


def without_isolates(text: str) -> str:
    """`text` without bidi isolate marks (LRI, RLI, FSI, PDI)."""
    if text.isascii() or _ISOLATE_MARKS.search(text) is None:
        return text
    return _ISOLATE_MARKS.sub("", text)


def strip_invisible(text: str) -> str:
    """`text` without zero-width format characters (for a terminal that would draw them)."""
    return _INVISIBLE.sub("", text) if not text.isascii() else text
