"""The rules for user names, room names and message text."""

from __future__ import annotations

import re
import unicodedata

from tuichat.chat.confusables import skeleton
from tuichat.chat.errors import ChatError
from tuichat.protocol.errors import ErrorCode

MAX_NAME_LENGTH = 24
MAX_ROOM_LENGTH = 32
NAME_PUNCTUATION = "_-."
INVISIBLE_LETTERS = frozenset("\u115f\u1160\u3164\uffa0")
"""Hangul fillers: letters by category, but they draw nothing."""
ROOM_PUNCTUATION = "_-"
ROOM_PREFIX = "#"


def _is_letter_or_digit(char: str) -> bool:
    return unicodedata.category(char)[0] == "L" or unicodedata.category(char) == "Nd"


def name_key(name: str) -> str:
    """Return the key under which `name` is known (the first of `name_keys`)."""
    return name_keys(name)[0]


def name_keys(name: str) -> tuple[str, str]:
    """Return the two keys of `name`; two names clash when any of their keys are equal.

    Names that differ only in case, in Unicode compatibility forms, or by
    look-alike characters (Cyrillic a, U+0430, for Latin a; "0" for "o"; capital
    I for l) share a key. Look-alikes depend on case (I looks like l, i does not),
    so one key folds case before mapping look-alikes and the other maps first.
    """
    normal = unicodedata.normalize("NFKC", name)
    return _fold_and_map(normal.casefold()), _fold_and_map(skeleton(normal))


def _fold_and_map(text: str) -> str:
    for _ in range(2):  # skeletons may be upper case ("0" → "O"): fold, and map again
        text = skeleton(text.casefold())
    return text.casefold()


def sort_key(name: str) -> str:
    """Return the key that sorts names for display (case-insensitively)."""
    return name.casefold()


def check_name(name: str) -> str:
    """Return the normalised (NFKC) form of `name`, or raise `ChatError(invalid_name)`.

    A name has 1 to 24 characters: letters and digits of any script, and `_ - .`;
    it starts with a letter or a digit. Control, format (bidi, zero-width) and
    space characters are not letters, so no name can hold them.
    """
    if len(name) > 4 * MAX_NAME_LENGTH:  # before any work on it (NFKC can shorten a little)
        raise ChatError(ErrorCode.INVALID_NAME, f"a name has at most {MAX_NAME_LENGTH} characters")
    name = unicodedata.normalize("NFKC", name)
    if not name:
        raise ChatError(ErrorCode.INVALID_NAME, "a name cannot be empty")
    if len(name) > MAX_NAME_LENGTH:
        raise ChatError(ErrorCode.INVALID_NAME, f"a name has at most {MAX_NAME_LENGTH} characters")
    if not _is_letter_or_digit(name[0]):
        raise ChatError(ErrorCode.INVALID_NAME, "a name starts with a letter or a digit")
    for char in name:
        if char in INVISIBLE_LETTERS or not (_is_letter_or_digit(char) or char in NAME_PUNCTUATION):
            raise ChatError(
                ErrorCode.INVALID_NAME,
                f"{char!r} is not allowed in a name (letters, digits and {NAME_PUNCTUATION} are)",
            )
    return name


def check_room(room: str) -> str:
    """Return the canonical (case-folded) form of a room name, or raise `ChatError(invalid_room)`.

    A room name, once case-folded, is `#` followed by 1 to 32 letters, digits, `_` or `-`.
    """
    if len(room) > 1 + MAX_ROOM_LENGTH:  # before any work on it (case folding only lengthens)
        raise ChatError(
            ErrorCode.INVALID_ROOM,
            f"a room name is '#' followed by 1 to {MAX_ROOM_LENGTH} letters, digits, _ or -",
        )
    room = room.casefold()
    body = room[1:]
    if not room.startswith(ROOM_PREFIX) or not body or len(body) > MAX_ROOM_LENGTH:
        raise ChatError(
            ErrorCode.INVALID_ROOM,
            f"a room name is '#' followed by 1 to {MAX_ROOM_LENGTH} letters, digits, _ or -",
        )
    for char in body:
        if not (_is_letter_or_digit(char) or char in ROOM_PUNCTUATION):
            raise ChatError(ErrorCode.INVALID_ROOM, f"{char!r} is not allowed in a room name")
    return room


C0_CONTROLS = bytes([*range(0x00, 0x09), *range(0x0B, 0x20), 0x7F])
"""The one-byte control characters but tab and newline, as UTF-8."""
C1_CONTROL = re.compile(rb"\xc2[\x80-\x9f]")
"""A control character of U+0080 to U+009F, as UTF-8."""


def clean_text(text: str) -> str:
    """Return `text` without control characters (newline and tab are kept; CRLF becomes LF).

    Cleaning works on the UTF-8 bytes, so it costs about as little as copying them.
    """
    if text.isprintable():
        return text
    data = text.replace("\r\n", "\n").encode("utf-8", "surrogatepass").translate(None, C0_CONTROLS)
    if b"\xc2" in data:
        data = C1_CONTROL.sub(b"", data)
    return data.decode("utf-8", "surrogatepass")


def check_text(text: str, max_bytes: int, max_lines: int = 100) -> str:
    """Return `text` cleaned of control characters, or raise `ChatError` (empty, too long)."""
    text = clean_text(text)
    if not text.strip():
        raise ChatError(ErrorCode.EMPTY_TEXT, "a message cannot be empty")
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise ChatError(
            ErrorCode.TEXT_TOO_LONG,
            f"a message has at most {max_bytes} bytes of UTF-8 (this one has {size})",
        )
    lines = text.count("\n") + 1
    if lines > max_lines:
        raise ChatError(
            ErrorCode.TEXT_TOO_LONG,
            f"a message has at most {max_lines} lines (this one has {lines})",
        )
    return text


MAX_AWAY_BYTES = 200
"""The longest away reason, in bytes of UTF-8 once cleaned."""
LINE_BREAKS = str.maketrans("\n\t", "  ")


def check_reason(text: str, max_bytes: int = MAX_AWAY_BYTES) -> str:
    """Return an away reason as it will be shown: one line, cleaned of control characters
    (newlines and tabs become spaces) and trimmed, maybe empty; raise `ChatError`
    (`text_too_long`) past `max_bytes` of UTF-8."""
    text = clean_text(text).translate(LINE_BREAKS).strip()
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise ChatError(
            ErrorCode.TEXT_TOO_LONG,
            f"an away reason has at most {max_bytes} bytes of UTF-8 (this one has {size})",
        )
    return text
