"""Search over stored text: the folding both sides share, the words of a query, and tags.

Text is found by its words, each folded the way names are compared (`fold`: NFKC, case,
the Persian and Arabic look-alikes, the ZWNJ, tatweel and harakat, Persian and Arabic-Indic
digits), so that "كتاب" finds "کتاب" and "می‌روم" finds "میروم". A query's words are
prefixes: "کتاب" finds "کتابها" too. Words are runs of letters and digits (what SQLite's
unicode61 tokenizer keeps), so the index and a query split text the same way.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from dataclasses import dataclass

from tuichat.chat.errors import ChatError
from tuichat.chat.names import FOLD, ZWNJ
from tuichat.protocol import ErrorCode, SearchHit

MAX_WORDS = 8
"""Words a query may hold."""
MAX_QUERY_CHARS = 200
"""Characters a query may have."""
MAX_RESULTS = 100
"""Hits one `search` may ask for."""

_FOLDED = {
    chr(code): "" if to is None else str(to) for code, to in FOLD.items() if chr(code) != ZWNJ
}
"""What `FOLD` does to each character it changes (but the ZWNJ, which goes first)."""
_FOLDABLE = re.compile("[" + "".join(_FOLDED) + "]")


def fold(text: str) -> str:
    """Return `text` NFKC-normalised and case-folded, with the Persian and Arabic folding of
    names (`tuichat.chat.names.FOLD`: the ZWNJ, tatweel and harakat go, Arabic yeh and alef
    maksura become Farsi yeh, Arabic kaf keheh, the Arabic-Indic and Persian digits ASCII
    ones): how names are compared (without their look-alikes), and how text is searched."""
    if text.isascii():
        return text.lower()
    text = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())
    if ZWNJ in text:  # (the one most Persian text has: by far the cheapest to take out alone)
        text = text.replace(ZWNJ, "")
    if _FOLDABLE.search(text) is None:  # (`str.translate` looks up every character)
        return text
    return _FOLDABLE.sub(_fold_one, text)


def _fold_one(match: re.Match[str]) -> str:
    return _FOLDED[match.group()]


def _word_char(char: str) -> bool:
    return unicodedata.category(char)[0] in "LN" or unicodedata.category(char) == "Co"


def words_of(folded: str) -> list[str]:
    """The words of folded text: runs of letters and digits."""
    found: list[str] = []
    word: list[str] = []
    for char in folded:
        if char.isascii():
            if char.isalnum():
                word.append(char)
                continue
        elif _word_char(char):
            word.append(char)
            continue
        if word:
            found.append("".join(word))
            word = []
    if word:
        found.append("".join(word))
    return found


def query_words(text: str) -> tuple[str, ...]:
    """The folded words of a query, each once; raise `invalid_search` if it has none or
    too many."""
    if len(text) > MAX_QUERY_CHARS:
        raise ChatError(
            ErrorCode.INVALID_SEARCH, f"a search is at most {MAX_QUERY_CHARS} characters"
        )
    words = tuple(dict.fromkeys(words_of(fold(text))))
    if not words:
        raise ChatError(ErrorCode.INVALID_SEARCH, "say what to search for: one word at least")
    if len(words) > MAX_WORDS:
        raise ChatError(ErrorCode.INVALID_SEARCH, f"a search has at most {MAX_WORDS} words")
    return words


def holds(text: str, words: tuple[str, ...]) -> bool:
    """Whether every one of the (folded) `words` begins a word of `text`."""
    found = words_of(fold(text))
    return all(any(w.startswith(word) for w in found) for word in words)


def spans(text: str, words: tuple[str, ...]) -> list[tuple[int, int]]:
    """Where in `text` (character offsets) the words begun by one of `words` are, in order:
    what a results list highlights."""
    result = []
    start = -1
    for index, char in enumerate((*text, " ")):
        if _word_char(char) and char != "_":
            if start < 0:
                start = index
            continue
        if start >= 0:
            folded = "".join(words_of(fold(text[start:index])))
            if any(folded.startswith(word) for word in words):
                result.append((start, index))
            start = -1
    return result


def tag(kind: str, value: str) -> str:
    """A hidden word of the index that stands for a room (`r`), a sender (`s`) or a party of
    a private conversation (`p`): letters and digits only, never typed by anyone."""
    return kind + hashlib.blake2b(value.encode(), digest_size=8).hexdigest()


ROOM_TAG = "room"
"""The hidden word every room message has (private messages have their parties' instead)."""


@dataclass(frozen=True, slots=True)
class SearchQuery:
    """A search as a store runs it (see `Broker.search`)."""

    words: tuple[str, ...]
    """Folded words, each a prefix."""
    user_key: str
    """Who searches: their private conversations are searched too."""
    room: str = ""
    """One room ("#name"), or "" for all."""
    with_key: str = ""
    """One private conversation: the other party's user key (`room` is then "")."""
    sender_key: str = ""
    """Messages of one sender only ("": anyone's)."""
    before: str = ""
    """Where the page before ended (a store's own cursor); "" from the newest."""
    limit: int = 20
    private_since: int = 0
    """Private messages with a pid up to this are not the user's (an earlier holder of the
    name had them: see `private_history`)."""


def newest_first(hit: SearchHit) -> tuple[int, str, int]:
    """How hits are ordered where there is no index (newest first: sort with `reverse`)."""
    return (hit.ts, hit.room, hit.seq)


def cursor_after(hit: SearchHit) -> str:
    """The `next` of a page that ended with `hit` (see `newest_first`)."""
    return json.dumps([hit.ts, hit.room, hit.seq], ensure_ascii=False)


def older_than(cursor: str) -> tuple[int, str, int] | None:
    """What `cursor_after` said (None: from the newest, or a cursor not of this kind)."""
    try:
        ts, room, seq = json.loads(cursor)
    except (ValueError, TypeError):
        return None
    if type(ts) is not int or type(room) is not str or type(seq) is not int:
        return None
    return (ts, room, seq)
