"""A paragraph of plain text that may be right to left: wrapped in logical order at the
widget's width, then each line drawn in visual order (right-aligned if it reads right to left),
so that a wrapped Persian sentence starts on its first line, at the right."""

from __future__ import annotations

from rich.cells import cell_len, chop_cells
from rich.text import Text
from textual.geometry import Size
from textual.widget import Widget

from tuichat.app.bidi import Bidi
from tuichat.app.wrap import wrap


class BidiText(Widget):
    """Plain text (nothing in it is markup), drawn as `bidi` says."""

    DEFAULT_CSS = """
    BidiText {
        width: 1fr;
        height: auto;
    }
    """

    def __init__(
        self,
        text: str = "",
        *,
        bidi: Bidi | None = None,
        max_lines: int = 0,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        """`max_lines`: the lines shown at most (0: all), the last cut with `…` if need be."""
        super().__init__(id=id, classes=classes)
        self._text = text
        self._bidi = bidi or Bidi()
        self._max_lines = max_lines

    @property
    def bidi(self) -> Bidi:
        """How right-to-left text is drawn."""
        return self._bidi

    @bidi.setter
    def bidi(self, bidi: Bidi) -> None:
        self._bidi = bidi
        self.refresh(layout=True)

    @property
    def text(self) -> str:
        """The text shown (logical)."""
        return self._text

    def update(self, text: str) -> None:
        """Show `text` instead."""
        if text != self._text:
            self._text = text
            self.refresh(layout=True)

    def lines(self, width: int) -> list[str]:
        """The text's lines at `width` cells, each as drawn (padded to be right-aligned when
        the paragraph reads right to left)."""
        bidi = self.bidi
        logical: list[tuple[str, bool]] = []
        for paragraph in self._text.split("\n"):
            rtl = bidi.is_rtl(paragraph)
            logical += ((line, rtl) for line in wrap(paragraph, max(width, 1)))
        most = self._max_lines
        if most and len(logical) > most:  # cut in logical order: the ellipsis at its end
            line, rtl = logical[most - 1]
            logical[most - 1] = (chop_cells(line, max(width - 1, 1))[0].rstrip() + "…", rtl)
            del logical[most:]
        shown: list[str] = []
        for line, rtl in logical:
            drawn = bidi.display(line, rtl)
            if rtl:
                drawn = " " * max(width - cell_len(drawn), 0) + drawn
            shown.append(drawn)
        return shown

    def get_content_width(self, container: Size, viewport: Size) -> int:
        return max((cell_len(line) for line in self._text.split("\n")), default=0)

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return len(self.lines(width)) if self._text else 0

    def render(self) -> Text:
        return Text("\n".join(self.lines(self.content_size.width)), no_wrap=True)
