"""What the server sends, made safe to keep and show: plain text of bounded size, numbers in range.

Every value from the network passes through this module once, where it enters the app's state
(`clean` for server events and replies, `line` for the words of an error). From there on the app
treats it as plain text: widgets draw it with `Content`, `Text` or `Segment` objects, never as
markup, so `[@click=app.quit]` or an unclosed `[bold` is shown as typed.

What cleaning does to text:

- Control characters never reach the terminal. C0 controls (U+0000-U+001F) and DEL become their
  visible Unicode pictures (ESC shows as ␛, BEL as ␇), C1 controls (U+0080-U+009F) and lone
  surrogates become U+FFFD. So an escape sequence (CSI, OSC 52 for the clipboard, OSC 0 for the
  window title, DCS, ...) arrives on screen as harmless characters. Multi-line text keeps its
  line feeds and tabs; one-line values turn them (and U+2028/U+2029) into spaces.
- Bidirectional embeddings, overrides and isolates (U+202A-U+202E, U+2066-U+2069) are removed:
  each opens a run that could reorder what follows it on the screen, past the end of the value
  it came in. The implicit marks U+200E (LRM), U+200F (RLM) and U+061C (ALM) are kept: they open
  nothing and Persian, Arabic and Hebrew writing needs them.
- Lengths are cut to a limit (with `…` at the end), long before anything else looks at them.

Numbers are clamped into the range the app can use (`timestamp`, `number`), and lists are cut to a
length, so an absurd value from a hostile server is shown as a wrong value, never a crash.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from functools import partial
from itertools import islice
from typing import Any, TypeVar

from tuichat.protocol import Quote, Reaction

T = TypeVar("T")

MAX_NAME = 64
"""Code points kept of a user, room or server name (the protocol allows 24 and 33 for the first
two)."""
MAX_LINE = 512
"""Code points kept of a one-line value: the server name, an error, a reason, a goodbye."""
MAX_TEXT = 65_536
"""Code points kept of a message, notice or message of the day (a client sends 64 KiB at most)."""
MAX_USERS = 10_000
"""Names kept of one user list (`welcome.users`, `room_state.users`)."""
MAX_ROOMS = 64
"""Rooms kept of one room list (`welcome.rooms`, positions); the protocol's default is 32 a user."""
MAX_PAGE = 500
"""Messages kept of one history page (the protocol's largest page); the newest are kept."""
MAX_MARKERS = 1_000
"""Read markers kept of one list (`welcome.read`; the server keeps as many per user)."""
MAX_MAP = 64
"""Entries kept of a map such as `welcome.limits`."""
MAX_INT = 2**63 - 1
"""The largest count or sequence number kept."""
MAX_TS = 253_402_128_000_000
"""The latest time shown, in ms since the Unix epoch: 9999-12-30 00:00 UTC, a day short of the end
of `datetime`'s range so that no time zone pushes it over."""

ELLIPSIS = "…"
_BIDI_CONTROLS = "\u202a-\u202e\u2066-\u2069"
_UNSAFE_TEXT = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f{_BIDI_CONTROLS}\u2028\u2029\ud800-\udfff]")
_UNSAFE_LINE = re.compile(f"[\x00-\x1f\x7f-\x9f{_BIDI_CONTROLS}\u2028\u2029\ud800-\udfff]")
_SPACES = {"\t", "\n", "\x0b", "\x0c", "\r", "\u2028", "\u2029"}

NAME_FIELDS = frozenset({"sender", "name", "to", "room", "server", "by", "owner", "topic_by"})
"""Fields that hold a user, room or server name."""
TIME_FIELDS = frozenset({"ts", "until", "topic_ts"})
"""Fields that hold a time (ms since the Unix epoch)."""
TEXT_FIELDS = frozenset({"text", "motd"})
"""Fields that hold multi-line text."""
LIST_LIMITS = {
    "users": MAX_USERS,
    "rooms": MAX_ROOMS,
    "positions": MAX_ROOMS,
    "read": MAX_MARKERS,
    "messages": MAX_PAGE,
    "entries": MAX_PAGE,
    "hits": MAX_PAGE,
    "reactions": MAX_MAP,
}
"""How many items of each list field are kept (any other list: `MAX_USERS`)."""
ONE_LINE_TEXT = {Reaction: MAX_NAME, Quote: MAX_LINE}
"""Values whose `text` is one line (a reaction, a reply's preview of what it answers), and the
code points kept of it."""
ITEM_FIELDS = {
    "users": "name", "rooms": "room", "away": "name", "ops": "name", "names": "name",
    "ignored": "name",
}  # fmt: skip
"""What the strings of a list field hold."""


def _replace_text(match: re.Match[str]) -> str:
    char = match.group()
    return "\n" if char in "\u2028\u2029" else _picture(ord(char))


def _replace_line(match: re.Match[str]) -> str:
    char = match.group()
    return " " if char in _SPACES else _picture(ord(char))


def _picture(code: int) -> str:
    if code < 0x20:
        return chr(0x2400 + code)  # ␀ … ␟
    if code == 0x7F:
        return "\u2421"  # ␡
    if 0x202A <= code <= 0x202E or 0x2066 <= code <= 0x2069:
        return ""
    return "\ufffd"


def _cut(value: str, limit: int) -> str:
    return value if len(value) <= limit else value[: limit - 1] + ELLIPSIS


def text(value: str, limit: int = MAX_TEXT) -> str:
    """Return `value` as multi-line plain text of at most `limit` code points (see the module)."""
    value = _cut(value, limit)
    if _UNSAFE_TEXT.search(value) is None:
        return value
    return _UNSAFE_TEXT.sub(_replace_text, value.replace("\r\n", "\n"))


def line(value: str, limit: int = MAX_LINE) -> str:
    """Return `value` as one line of plain text of at most `limit` code points (see the module)."""
    value = _cut(value, limit)
    if _UNSAFE_LINE.search(value) is None:
        return value
    return _UNSAFE_LINE.sub(_replace_line, value)


def name(value: str) -> str:
    """Return a user or room name as one line of at most `MAX_NAME` code points."""
    return line(value, MAX_NAME)


def number(value: int, low: int = 0, high: int = MAX_INT) -> int:
    """Return `value` clamped to `low`…`high`."""
    return low if value < low else high if value > high else value


def timestamp(value: int) -> int:
    """Return a `ts` clamped to the times the app can show (the Unix epoch to `MAX_TS`)."""
    return number(value, 0, MAX_TS)


def clean(value: T) -> T:
    """Return a copy of a server event or reply whose every field is safe (see the module).

    Strings are cleaned by what their field holds (names, text, or one line), times (`ts`,
    `until`, `topic_ts`) are clamped to `timestamp`, other integers to `number`, and lists
    and maps are cut to a length.
    """
    cleaned: T = _clean(value, "")
    return cleaned


def _string_cleaner(field: str) -> Callable[[str], str]:
    """How a string held by `field` is cleaned (see `_clean`)."""
    if field in NAME_FIELDS:
        return name
    if field in TEXT_FIELDS:
        return text
    return line


_PLANS: dict[type, tuple[tuple[str, Callable[[str], str], bool], ...]] = {}
"""By dataclass: each field's name, how a string in it is cleaned, whether it holds a time
(worked out once per class: a flood of messages cleans each with no lookups)."""


def _plan(kind: type) -> tuple[tuple[str, Callable[[str], str], bool], ...]:
    plan = _PLANS.get(kind)
    if plan is None:
        one_line = ONE_LINE_TEXT.get(kind, 0)
        plan = _PLANS[kind] = tuple(
            (
                f.name,
                partial(line, limit=one_line)
                if one_line and f.name == "text"
                else _string_cleaner(f.name),
                f.name in TIME_FIELDS,
            )
            for f in dataclasses.fields(kind)
        )
    return plan


def _clean(value: Any, field: str) -> Any:
    kind = type(value)
    if kind is str:
        return _string_cleaner(field)(value)
    if kind is bool or value is None or kind is float:
        return value
    if kind is int:
        return timestamp(value) if field in TIME_FIELDS else number(value)
    if kind is tuple:
        limit = LIST_LIMITS.get(field, MAX_USERS)
        items = value[-limit:] if field == "messages" else value[:limit]
        item_field = ITEM_FIELDS.get(field, "")
        return tuple(_clean(item, item_field) for item in items)
    if kind is dict:
        return {line(str(k)): _clean(v, "") for k, v in islice(value.items(), MAX_MAP)}
    if kind in _PLANS or (dataclasses.is_dataclass(value) and not isinstance(value, type)):
        changes = {}
        for each, clean_string, is_time in _plan(kind):
            old = getattr(value, each)
            held = type(old)
            new: Any
            if held is str:
                new = clean_string(old)
            elif old is None or held is bool:
                continue
            elif held is int:
                new = (
                    (0 if old < 0 else MAX_TS if old > MAX_TS else old)
                    if is_time
                    else (0 if old < 0 else MAX_INT if old > MAX_INT else old)
                )
            else:
                new = _clean(old, each)
            if new is not old:
                changes[each] = new
        return dataclasses.replace(value, **changes) if changes else value
    return value  # nothing else comes from the network
