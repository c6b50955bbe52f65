"""The visual order of right-to-left text: what is drawn never changes what is kept."""

from __future__ import annotations

import unicodedata

from bidi.mirror import MIRRORED
from hypothesis import given, settings
from hypothesis import strategies as st

from tuichat.app.bidi import ZWNJ, ZWNJ_MARK, Bidi, shape

APP = Bidi("app")
FAKE = Bidi("app", upper_is_rtl=True)

PERSIAN_LETTERS = "ابپتثجچحخدذرزژسشصضطظعغفقکگلمنوهی"
PERSIAN = st.text(alphabet=PERSIAN_LETTERS + " ", min_size=1, max_size=40)
MIXED = st.text(
    alphabet=PERSIAN_LETTERS + "abcXYZ 0123\u06f0\u06f1\u06f2\u06f3.,:;!?-/" + ZWNJ,
    min_size=1,
    max_size=60,
)
WITH_BRACKETS = st.text(alphabet=PERSIAN_LETTERS[:8] + "abc ()[]{}<>«»12", min_size=1, max_size=40)


def logical_again(text: str, line_text: str, order: tuple[int, ...]) -> str:
    """The logical text a drawn line shows, read back through its order (shapes and mirrored
    brackets undone)."""
    chars = [""] * len(text)
    for char, index in zip(line_text, order, strict=True):
        chars[index] = MIRRORED.get(char, char) if MIRRORED.get(char) == text[index] else char
    return unicodedata.normalize("NFKC", "".join(chars))


@settings(max_examples=300)
@given(MIXED)
def test_the_drawn_line_shows_every_character_of_the_logical_one_once(text: str) -> None:
    before = str(text)
    drawn = APP.line(text)
    assert text == before  # (the logical text is never touched)
    shown = {i for i in drawn.order}
    invisible = {i for i, c in enumerate(text) if c == ZWNJ}
    assert len(drawn.order) == len(shown)  # no character twice
    assert shown | invisible == set(range(len(text)))  # none lost but the invisible ones


@settings(max_examples=300)
@given(MIXED | WITH_BRACKETS)
def test_reading_the_drawn_line_back_gives_the_logical_text(text: str) -> None:
    text = text.replace(ZWNJ, "")
    drawn = APP.line(text)
    assert logical_again(text, drawn.text, drawn.order) == unicodedata.normalize("NFKC", text)


@settings(max_examples=200)
@given(st.text(alphabet="abcdefghij klmnop0123456789.,!?()[]-_/:", min_size=0, max_size=80))
def test_left_to_right_text_is_drawn_as_it_is(text: str) -> None:
    assert APP.display(text) == text
    assert APP.line(text).text == text
    assert not APP.is_rtl(text)


@settings(max_examples=500)
@given(
    MIXED | st.text(alphabet=PERSIAN_LETTERS[:6] + "ab 12%:/\u200e\u200f\u2068\u2069", max_size=30)
)
def test_the_fast_path_and_the_full_algorithm_agree(text: str) -> None:
    """Without brackets or combining marks, the fast reordering draws what the full one does."""
    for rtl in (None, True, False):
        fast = APP.display(text, rtl).replace(ZWNJ, "")
        assert fast == APP.line(text, rtl).text.replace(ZWNJ, "")


def test_brackets_are_mirrored_in_right_to_left_text() -> None:
    # logical: salam (donya); drawn: the parenthesised word at the left, reading "(donya)"
    assert APP.display("سلام (دنیا)") == "(ﺎﯿﻧﺩ) ﻡﺎﻠﺳ"
    assert APP.display("سلام [دنیا] {و} <من>") == "<ﻦﻣ> {ﻭ} [ﺎﯿﻧﺩ] ﻡﺎﻠﺳ"
    assert FAKE.display("SALAM (DONYA)") == "(AYNOD) MALAS"


def test_mixed_persian_english_digits_and_urls() -> None:
    line = "لینک https://example.com/a?b=1 را ببین، ۱۲۳ و 456 هم هست"
    drawn = APP.display(line)
    assert "https://example.com/a?b=1" in drawn  # a URL stays whole and left to right
    assert "۱۲۳" in drawn and "456" in drawn  # numbers read left to right
    assert drawn.endswith(shape("لینک")[::-1])  # the first word at the right edge
    # a left-to-right message with a Persian word in it: only the word is reversed
    assert APP.display("meet at کافه at 5") == "meet at " + shape("کافه")[::-1] + " at 5"
    assert FAKE.display("abc DEF ghi") == "abc FED ghi"
    assert FAKE.display("ABC def GHI 12") == "12 IHG def CBA"


def test_letters_are_joined_one_character_a_cell() -> None:
    text = "می‌خواهم"
    shaped = shape(text)
    assert len(shaped) == len(text)
    assert shaped != text and unicodedata.normalize("NFKC", shaped) == text
    assert shape("لا") != "\ufefb"  # no lam-alef ligature: two letters stay two cells


def test_combining_marks_stay_after_their_letter() -> None:
    drawn = APP.line("سلامٌ")
    marks = [i for i, c in enumerate(drawn.text) if unicodedata.category(c) == "Mn"]
    assert marks and all(i > 0 for i in marks)
    for i in marks:  # the mark follows the letter it was typed after
        assert drawn.order[i - 1] == drawn.order[i] - 1


def test_a_half_space_is_kept_and_shown_as_a_thin_mark_when_asked() -> None:
    text = "می‌خواهم"
    assert ZWNJ not in APP.display(text)  # the log: joined correctly, nothing drawn for it
    drawn = APP.line(text, marks=True)
    assert drawn.text.count(ZWNJ_MARK) == 1
    assert drawn.order[drawn.text.index(ZWNJ_MARK)] == text.index(ZWNJ)


def test_the_paragraph_direction_is_that_of_the_first_strong_character() -> None:
    assert APP.is_rtl("سلام hello")
    assert not APP.is_rtl("hello سلام")
    assert APP.is_rtl("123 سلام")
    assert not Bidi("off").is_rtl("سلام")
    assert FAKE.is_rtl("HELLO world")


def test_the_terminal_and_off_modes_draw_logical_text() -> None:
    for mode in ("terminal", "off"):
        bidi = Bidi(mode)  # type: ignore[arg-type]
        assert bidi.display("سلام (دنیا)") == "سلام (دنیا)"
        drawn = bidi.line("سلام")
        assert drawn.text == "سلام" and drawn.order == (0, 1, 2, 3)


def test_names_keep_their_sigil_at_the_start_of_the_layout() -> None:
    assert APP.name("#برنامه‌نویسی").startswith("#")
    assert APP.name("#برنامه‌نویسی", rtl_layout=True).endswith("#")
    assert APP.name("@ali") == "@ali" and APP.name("") == ""


@given(PERSIAN)
def test_persian_text_reads_from_the_right(text: str) -> None:
    drawn = APP.line(text)
    assert drawn.rtl == (text.strip() != "")
    if drawn.rtl:  # Persian alone reads from the right: the drawn line is the text reversed
        assert drawn.order == tuple(reversed(range(len(text))))
