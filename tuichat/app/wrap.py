"""Word wrapping by terminal cells, so that wide characters (CJK, emoji) line up."""

from __future__ import annotations

from rich.cells import cell_len, chop_cells

TAB = "    "


def fits(text: str, width: int) -> bool:
    """Whether `text` is one line of at most `width` cells (the common, fast case)."""
    if "\n" in text or "\t" in text:
        return False
    if text.isascii():
        return len(text) <= width
    return cell_len(text) <= width


def wrap(text: str, width: int) -> list[str]:
    """Return `text` as lines of at most `width` cells, breaking at spaces when possible.

    Newlines in `text` are kept as line breaks; words longer than a line are split (a character
    wider than the whole line gets a line of its own). Takes time linear in the length of `text`.
    """
    width = max(width, 1)
    lines: list[str] = []
    for paragraph in text.replace("\t", TAB).split("\n"):
        if fits(paragraph, width):
            lines.append(paragraph)
            continue
        line = ""
        line_cells = 0
        for word in paragraph.split(" "):
            word_cells = cell_len(word)
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
                word_cells = cell_len(word)
            line, line_cells = word, word_cells
        lines.append(line)
    return lines


def _chop(word: str, width: int) -> list[str]:
    """Split `word` into pieces of at most `width` cells (at least one character each)."""
    return [piece for piece in chop_cells(word, width) if piece] or [word]
