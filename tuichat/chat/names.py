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

ZWNJ = "\u200c"
"""The zero-width non-joiner (the Persian half-space): allowed between two letters that would
otherwise join (IDNA2008's CONTEXTJ rule), ignored when names are compared."""
TATWEEL = "\u0640"
"""The Arabic tatweel (kashida), which only stretches the joint between two letters."""
HARAKAT = frozenset(chr(c) for c in (*range(0x064B, 0x0660), 0x0670))
"""The Arabic combining marks (vowel signs, shadda, sukun, hamza and madda above and below, the
superscript alef), allowed in a name after an Arabic letter."""
MAX_HARAKAT = 2
"""Harakat in a row after one letter (a shadda and a vowel)."""
ARABIC_BLOCKS = ((0x0600, 0x06FF), (0x0750, 0x077F), (0x0870, 0x089F), (0x08A0, 0x08FF))
"""Arabic, Arabic Supplement, Arabic Extended-B and Extended-A."""
_SPECIAL = frozenset({ZWNJ, TATWEEL, *HARAKAT})

_JOINING_RANGES: tuple[tuple[int, int, str], ...] = (
    # The Joining_Type of the Arabic blocks (ArabicShaping.txt of the Unicode Character Database,
    # version 14.0, which `unicodedata` follows): D joins on both sides, R on the right only, C
    # causes joining (tatweel). Not listed here: U (non-joining), and T (transparent) for the
    # marks and format characters (categories Mn, Me and Cf), as the file's header says.
    (0x0620, 0x0620, "D"), (0x0622, 0x0625, "R"), (0x0626, 0x0626, "D"), (0x0627, 0x0627, "R"),
    (0x0628, 0x0628, "D"), (0x0629, 0x0629, "R"), (0x062A, 0x062E, "D"), (0x062F, 0x0632, "R"),
    (0x0633, 0x063F, "D"), (0x0640, 0x0640, "C"), (0x0641, 0x0647, "D"), (0x0648, 0x0648, "R"),
    (0x0649, 0x064A, "D"), (0x066E, 0x066F, "D"), (0x0671, 0x0673, "R"), (0x0675, 0x0677, "R"),
    (0x0678, 0x0687, "D"), (0x0688, 0x0699, "R"), (0x069A, 0x06BF, "D"), (0x06C0, 0x06C0, "R"),
    (0x06C1, 0x06C2, "D"), (0x06C3, 0x06CB, "R"), (0x06CC, 0x06CC, "D"), (0x06CD, 0x06CD, "R"),
    (0x06CE, 0x06CE, "D"), (0x06CF, 0x06CF, "R"), (0x06D0, 0x06D1, "D"), (0x06D2, 0x06D3, "R"),
    (0x06D5, 0x06D5, "R"), (0x06EE, 0x06EF, "R"), (0x06FA, 0x06FC, "D"), (0x06FF, 0x06FF, "D"),
    (0x0750, 0x0758, "D"), (0x0759, 0x075B, "R"), (0x075C, 0x076A, "D"), (0x076B, 0x076C, "R"),
    (0x076D, 0x0770, "D"), (0x0771, 0x0771, "R"), (0x0772, 0x0772, "D"), (0x0773, 0x0774, "R"),
    (0x0775, 0x0777, "D"), (0x0778, 0x0779, "R"), (0x077A, 0x077F, "D"), (0x0870, 0x0882, "R"),
    (0x0883, 0x0885, "C"), (0x0886, 0x0886, "D"), (0x0889, 0x088D, "D"), (0x088E, 0x088E, "R"),
    (0x08A0, 0x08A9, "D"), (0x08AA, 0x08AC, "R"), (0x08AE, 0x08AE, "R"), (0x08AF, 0x08B0, "D"),
    (0x08B1, 0x08B2, "R"), (0x08B3, 0x08B8, "D"), (0x08B9, 0x08B9, "R"), (0x08BA, 0x08C8, "D"),
    # format characters the file lists as U (the concatenation marks) and the two joiners
    (0x0600, 0x0605, "U"), (0x06DD, 0x06DD, "U"), (0x0890, 0x0891, "U"), (0x08E2, 0x08E2, "U"),
    (0x200C, 0x200C, "U"), (0x200D, 0x200D, "C"),
)  # fmt: skip
_JOINING = {chr(c): kind for first, last, kind in _JOINING_RANGES for c in range(first, last + 1)}


def joining_type(char: str) -> str:
    """The Unicode Joining_Type of `char` as far as names need it: `D`, `R`, `L`, `C`, `T` or
    `U` (the Arabic blocks are listed; elsewhere only marks and format characters join: T)."""
    kind = _JOINING.get(char)
    if kind is not None:
        return kind
    return "T" if unicodedata.category(char) in ("Mn", "Me", "Cf") else "U"


def _is_letter_or_digit(char: str) -> bool:
    return unicodedata.category(char)[0] == "L" or unicodedata.category(char) == "Nd"


def is_arabic_letter(char: str) -> bool:
    """Whether `char` is a letter of the Arabic blocks (the tatweel is not one)."""
    code = ord(char)
    return (
        char != TATWEEL
        and unicodedata.category(char)[0] == "L"
        and any(first <= code <= last for first, last in ARABIC_BLOCKS)
    )


# --- comparison -------------------------------------------------------------------------

_DIGITS = {c: str(c - 0x0660) for c in range(0x0660, 0x066A)} | {
    c: str(c - 0x06F0) for c in range(0x06F0, 0x06FA)
}
"""Arabic-Indic and Persian (Extended Arabic-Indic) digits, as ASCII digits."""
_LETTERS = {
    0x064A: "\u06cc",  # ARABIC LETTER YEH -> FARSI YEH (the same letter, dotted or not at the end)
    0x0649: "\u06cc",  # ALEF MAKSURA -> FARSI YEH (identical at the end of a word)
    0x0643: "\u06a9",  # ARABIC LETTER KAF -> KEHEH (identical at the start and in the middle)
    0x06D5: "\u0647",  # AE -> HEH (identical at the end, where heh stands alone; so ۀ, AE with
    #                     hamza, compares like heh with a hamza above, as Persian types the ezafe)
    0x06BE: "\u0647",  # HEH DOACHASHMEE -> HEH (identical at the start and in the middle)
}
"""Persian and Arabic letters that look the same (in some position in a word) and are one
letter to a Persian reader. Not folded: TEH MARBUTA (its two dots show), HEH GOAL (its own shape
in every position), and the letters with a hamza or madda (those marks are part of the letter)."""
_IGNORED = {ord(ZWNJ): None, ord(TATWEEL): None, 0x200E: None, 0x200F: None} | {
    ord(c): None for c in HARAKAT if c not in "\u0653\u0654\u0655"
}
"""What comparison ignores: the ZWNJ, the tatweel, the harakat but the madda and hamza (which
Unicode composes into letters: آ, أ, إ, ؤ, ئ are other letters than ا, و, ی), and the
left-to-right and right-to-left marks that the look-alike data puts around some Arabic digits."""  # noqa: RUF001
FOLD = str.maketrans({**_IGNORED, **_LETTERS, **_DIGITS})
"""Persian and Arabic folding for comparison (`str.translate`): what is ignored goes, look-alike
letters become one, Arabic-Indic and Persian digits become ASCII digits. Mentions fold text with
it too (`tuichat.chat.search.fold`)."""
_FOLD_LETTERS = str.maketrans({**_IGNORED, **_LETTERS})
"""`FOLD` without the digits: the look-alike key keeps what the digits look like (the Persian
zero is a dot)."""


def name_key(name: str) -> str:
    """Return the key under which `name` is known (the first of `name_keys`)."""
    return name_keys(name)[0]


def name_keys(name: str) -> tuple[str, str]:
    """Return the two keys of `name`; two names clash when any of their keys are equal.

    Names that differ only in case, in Unicode compatibility forms, by look-alike characters
    (Cyrillic a, U+0430, for Latin a; "0" for "o"; capital I for l), by Persian and Arabic
    forms of one letter or digit (`FOLD`) or by what comparison ignores (a ZWNJ, a tatweel,
    harakat) share a key. Look-alikes depend on case (I looks like l, i does not), so one key
    folds case before mapping look-alikes and the other maps first; the first one folds
    Arabic-Indic and Persian digits to ASCII (`ali1` and `ali` with a Persian or an Arabic-Indic
    one clash), the other maps them to what they look like (the Persian zero, U+06F0, is a
    dot).
    """
    normal = unicodedata.normalize("NFKC", name)
    if normal.isascii():  # (nothing to fold: most names)
        return _fold_and_map(normal.casefold()), _fold_and_map(skeleton(normal))
    normal = normal.translate(_FOLD_LETTERS)
    return _fold_and_map(normal.translate(FOLD).casefold()), _fold_and_map(skeleton(normal))


def rekey(key: str) -> str:
    """The first key (`name_keys`) of a name whose key was `key` before Persian and Arabic
    folding: for keys stored without their name (a Redis registration). Exact but for the
    Persian digits whose look-alikes were a dot, o, v and ʌ (zero, five, seven, eight), which
    keep their old key. A key with nothing to fold is itself."""
    folded = key.translate(FOLD)
    return key if folded == key else _fold_and_map(folded)


def _fold_and_map(text: str) -> str:
    for _ in range(2):  # skeletons may be upper case ("0" → "O"): fold, and map again
        text = skeleton(text.casefold())
        if not text.isascii():
            text = text.translate(FOLD)
    return text.casefold()


def room_key(room: str) -> str:
    """Return the key of a room name (`#` and the first `name_keys` of the rest): rooms whose
    names look alike share it, and a `join` of one goes to the room that has it."""
    return ROOM_PREFIX + name_keys(room[1:])[0]


def sort_key(name: str) -> str:
    """Return the key that sorts names for display (case-insensitively)."""
    return name.casefold()


# --- the rules --------------------------------------------------------------------------


def check_name(name: str) -> str:
    """Return the normalised (NFKC) form of `name`, or raise `ChatError(invalid_name)`.

    A name has 1 to 24 characters: letters and digits of any script, and `_ - .`;
    it starts with a letter or a digit. Control, format (bidi, zero-width) and
    space characters are not letters, so no name can hold them, but for the ZWNJ between
    two letters that would otherwise join (`check_arabic`). Arabic letters may carry
    harakat, and a tatweel may stretch the joint between two of them.
    """
    if len(name) > 4 * MAX_NAME_LENGTH:  # before any work on it (NFKC can shorten a little)
        raise ChatError(ErrorCode.INVALID_NAME, f"a name has at most {MAX_NAME_LENGTH} characters")
    name = unicodedata.normalize("NFKC", name)
    if not name:
        raise ChatError(ErrorCode.INVALID_NAME, "a name cannot be empty")
    if len(name) > MAX_NAME_LENGTH:
        raise ChatError(ErrorCode.INVALID_NAME, f"a name has at most {MAX_NAME_LENGTH} characters")
    special = not name.isascii() and not _SPECIAL.isdisjoint(name)
    if special:
        check_arabic(name, ErrorCode.INVALID_NAME, "a name")
    if not _is_letter_or_digit(name[0]):
        raise ChatError(ErrorCode.INVALID_NAME, "a name starts with a letter or a digit")
    for char in name:
        if special and char in _SPECIAL:
            continue  # (checked above)
        if char in INVISIBLE_LETTERS or not (_is_letter_or_digit(char) or char in NAME_PUNCTUATION):
            raise ChatError(
                ErrorCode.INVALID_NAME,
                f"{char!r} is not allowed in a name (letters, digits and {NAME_PUNCTUATION} are)",
            )
    return name


def check_arabic(
    text: str, code: ErrorCode, what: str, *, marks: bool = True, tatweel: bool = True
) -> None:
    """Raise `ChatError(code)` unless every ZWNJ, tatweel and haraka of `text` (a name, or a
    room name without its `#`) stands where it may. `what` names the text in the message.

    - A ZWNJ stands between two characters, not next to another ZWNJ, and by IDNA2008's
      CONTEXTJ rule (RFC 5892, A.1): after a virama, or between a letter that joins on its
      left (joining type L or D) and one that joins on its right (R or D), with only
      transparent characters (T: harakat) between them and it.
    - With `tatweel`: a tatweel stands between two Arabic letters (harakat may follow the
      first). Without, it is a letter like any other (as in room names).
    - With `marks`: harakat follow an Arabic letter, at most `MAX_HARAKAT` in a row. Without,
      they are refused.
    """
    last = len(text) - 1
    for index, char in enumerate(text):
        if char == ZWNJ:
            if index in (0, last):
                raise ChatError(
                    code, f"{what} cannot start or end with a zero-width non-joiner (U+200C)"
                )
            if text[index + 1] == ZWNJ:
                raise ChatError(code, f"{what} cannot have two zero-width non-joiners in a row")
            if not _zwnj_allowed(text, index):
                raise ChatError(
                    code,
                    f"a zero-width non-joiner (U+200C) in {what} may only stand between two "
                    "letters that would join without it",
                )
        elif char == TATWEEL and tatweel:
            before = index - 1
            while before >= 0 and text[before] in HARAKAT:
                before -= 1
            if (
                before < 0
                or index == last
                or not is_arabic_letter(text[before])
                or not is_arabic_letter(text[index + 1])
            ):
                raise ChatError(
                    code, f"a tatweel (U+0640) in {what} may only stand between two Arabic letters"
                )
        elif char in HARAKAT:
            if not marks:
                raise ChatError(
                    code,
                    f"{what} cannot have harakat (Arabic vowel marks such as {char!r}); "
                    "write it without them",
                )
            run = 1
            while index - run >= 0 and text[index - run] in HARAKAT:
                run += 1
            if run > MAX_HARAKAT:
                raise ChatError(code, f"{what} has at most {MAX_HARAKAT} harakat in a row")
            if index - run < 0 or not is_arabic_letter(text[index - run]):
                raise ChatError(
                    code, f"harakat (such as {char!r}) in {what} may only follow an Arabic letter"
                )


def _zwnj_allowed(text: str, index: int) -> bool:
    """RFC 5892, Appendix A.1: whether the ZWNJ at `index` of `text` is in a joining context."""
    if unicodedata.combining(text[index - 1]) == VIRAMA:
        return True
    before = index - 1
    while before >= 0 and joining_type(text[before]) == "T":
        before -= 1
    if before < 0 or joining_type(text[before]) not in ("L", "D"):
        return False
    after = index + 1
    while after < len(text) and joining_type(text[after]) == "T":
        after += 1
    return after < len(text) and joining_type(text[after]) in ("R", "D")


VIRAMA = 9
"""The canonical combining class of a virama."""


def check_room(room: str) -> str:
    """Return the canonical (case-folded) form of a room name, or raise `ChatError(invalid_room)`.

    A room name, once case-folded, is `#` followed by 1 to 32 letters, digits, `_` or `-`, and
    ZWNJs where a name may have them (`check_arabic`); harakat (and every other combining
    mark) are refused, a tatweel is a letter.
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
    if not body.isascii() and (ZWNJ in body or not HARAKAT.isdisjoint(body)):
        check_arabic(body, ErrorCode.INVALID_ROOM, "a room name", marks=False, tatweel=False)
    for char in body:
        if char != ZWNJ and not (_is_letter_or_digit(char) or char in ROOM_PUNCTUATION):
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


def check_reason(text: str, max_bytes: int = MAX_AWAY_BYTES, what: str = "an away reason") -> str:
    """Return an away reason (a topic, a moderator's reason: `what`) as it will be shown: one
    line, cleaned of control characters (newlines and tabs become spaces) and trimmed, maybe
    empty; raise `ChatError` (`text_too_long`) past `max_bytes` of UTF-8."""
    text = clean_text(text).translate(LINE_BREAKS).strip()
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise ChatError(
            ErrorCode.TEXT_TOO_LONG,
            f"{what} has at most {max_bytes} bytes of UTF-8 (this one has {size})",
        )
    return text
