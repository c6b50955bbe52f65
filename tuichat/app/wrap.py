"""Word wrapping by terminal cells, so that wide characters (CJK, emoji) line up."""

from __future__ import annotations

import re

from rich.cells import cell_len, chop_cells, load_cell_table  # type: ignore[attr-defined]

TAB = "    "
FIRST_WIDE = "\u1100"
"""No character below it takes two cells."""
_ABOVE = re.compile(f"[{FIRST_WIDE}-\U0010ffff]")
INVISIBLE = ("\u200c", "\u200e", "\u200f", "\u2066", "\u2067", "\u2068", "\u2069")
"""Zero-width characters above `FIRST_WIDE` that Persian text holds: the half-space (ZWNJ),
direction marks and isolates."""
_MARKS = re.compile(
    "["
    + "".join(
        f"{re.escape(chr(start))}-{re.escape(chr(end))}"
        for start, end, width in load_cell_table("auto").widths
        if width == 0 and start > 0 and end < 0x1100
    )
    + "]"
)
"""The zero-width characters below `FIRST_WIDE` (combining marks), as Rich's table has them."""


def fits(text: str, width: int) -> bool:
    """Whether `text` is one line of at most `width` cells (the common, fast case)."""
    if "\n" in text or "\t" in text:
        return False
    if text.isascii():
        return len(text) <= width
    return cells(text) <= width


def cells(text: str) -> int:
    """The cells `text` takes, as `rich.cells.cell_len` counts them, found without a lookup
    per character when `text` has no wide character and no combining mark (most Persian,
    Arabic, Hebrew and Latin text)."""
    if text.isascii():
        return len(text) if text.isprintable() else cell_len(text)
    narrow = text
    for invisible in INVISIBLE:
        if invisible in narrow:
            narrow = narrow.replace(invisible, "")
    if narrow.isprintable() and _ABOVE.search(narrow) is None and _MARKS.search(narrow) is None:
        return len(narrow)
    return cell_len(text)


def wrap(text: str, width: int, paragraphs: list[int] | None = None) -> list[str]:
    """Return `text` as lines of at most `width` cells, breaking at spaces when possible.

    Newlines in `text` are kept as line breaks; words longer than a line are split (a character
    wider than the whole line gets a line of its own). The lines of a code block (between two
    lines that start with ```) are not wrapped but cut at the edge, ending in `…`, so that
    code keeps its shape. Takes time linear in the length of `text`. With `paragraphs`, the
    number of the paragraph (line of `text`) each line comes from is appended to it.
    """
    width = max(width, 1)
    lines: list[str] = []
    fenced = False  # within a ``` block: code, cut at the edge rather than wrapped
    parts = text.replace("\t", TAB).split("\n")
    blocks = len(parts) > 1  # (a block takes lines of its own: one line is prose)
    counted = 0  # lines whose paragraph is in `paragraphs`
    for number, paragraph in enumerate(parts):
        if paragraphs is not None and counted < len(lines):  # those of the one before
            paragraphs.extend([number - 1] * (len(lines) - counted))
            counted = len(lines)
        fence = blocks and paragraph.lstrip().startswith("```")
        if fits(paragraph, width):
            lines.append(paragraph)
            fenced ^= fence
            continue
        if fenced or fence:
            fenced ^= fence
            lines.append(_cut(paragraph, width))
            continue
        line = ""
        line_cells = 0
        for word in paragraph.split(" "):
            word_cells = cells(word)
            needed = word_cells if not line else line_cells + 1 + word_cells
            if needed <= width:
                line = word if not line else f"{line} {word}"
                line_cells = needed
                continue
            if line:
                lines.append(line)
            if word_cells > width:
                *heads, word = _chop(word, width)
                lines.extend(heads)
                word_cells = cells(word)
            line, line_cells = word, word_cells
        lines.append(line)
    if paragraphs is not None:
        paragraphs.extend([len(parts) - 1] * (len(lines) - counted))
    return lines


def _cut(line: str, width: int) -> str:
    """`line` cut to `width` cells, its last cell `…` when something was cut."""
    return chop_cells(line, max(width - 1, 1))[0] + "…" if width > 1 else "…"


def _chop(word: str, width: int) -> list[str]:
    """Split `word` into pieces of at most `width` cells (at least one character each)."""
    return [piece for piece in chop_cells(word, width) if piece] or [word]
