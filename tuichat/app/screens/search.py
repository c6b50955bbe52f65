"""The search panel (ctrl+f, `/search`): a query, and the messages found, newest first.

The panel is a view: it asks for results with `SearchScreen.Wanted` (the app searches, and
hands them back with `shown` or `failed`), and dismisses with the hit chosen (None: closed);
a hit in a room the user is not in is chosen only once they said yes to joining it. What it
showed when it closed (`found`) is what it shows when opened again.

Keys: Enter in the query searches, the first hit highlighted (the focus stays in the query);
↓ goes to the hits (to the one highlighted), ↑ from the first back to the query; a character
typed on the hits goes on to the end of the query; Enter on a hit goes to it.
Each hit is two rows: where and when it was said and by whom, then its text with the words
found highlighted, cut around the first of them. What comes from the server is drawn as
plain `Content` (never markup), each row in visual order: a right-to-left text reordered and
right-aligned, and in a right-to-left UI the first row mirrored.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import tzinfo

from rich.cells import cell_len, chop_cells
from textual import on
from textual.app import ComposeResult
from textual.await_complete import AwaitComplete
from textual.binding import Binding
from textual.containers import Vertical
from textual.content import Content
from textual.events import Key
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Input, OptionList
from textual.widgets.option_list import Option

from tuichat.app.bidi import Bidi
from tuichat.app.colors import name_color
from tuichat.app.dates import local_digits
from tuichat.app.i18n import N_, _, ngettext, paragraphs, translate_bindings
from tuichat.app.moderation import when
from tuichat.app.screens.confirm import ConfirmDialog
from tuichat.app.widgets.bidi_input import BidiInput
from tuichat.app.widgets.bidi_text import BidiText
from tuichat.chat.search import spans
from tuichat.protocol import SearchHit, SearchResults

MORE = "more"
"""The id of the option that asks for older hits."""
CONTEXT = 12
"""Characters kept before the first word found, when the text is cut to show it."""
FOUND_STYLE = "bold reverse"
"""How the words found stand out in a hit's text."""


@dataclass(frozen=True, slots=True)
class Found:
    """What the panel showed when it closed: the query as typed, and the hits of the last
    search (its query, its folded words, where its next page starts, the hit highlighted)."""

    typed: str
    query: str
    words: tuple[str, ...]
    hits: tuple[SearchHit, ...]
    next: str
    highlighted: int | None


def said(text: str) -> str:
    """The app's own words as the panel shows them: in a right-to-left language, a paragraph
    that reads right to left (RLM), whatever word it starts with (`paragraphs`)."""
    return paragraphs(text)


def excerpt(text: str, words: tuple[str, ...], width: int) -> tuple[str, list[tuple[int, int]]]:
    """`text` on one line, cut to `width` cells around the first word found (`…` where it
    is cut), and where the words found are in it."""
    flat = " ".join(text.split())
    found = spans(flat, words)
    start = max(found[0][0] - CONTEXT, 0) if found else 0
    if start and cell_len(flat) <= width:
        start = 0
    head = "…" if start else ""
    shown = head + flat[start:]
    shift = len(head) - start
    if cell_len(shown) > width:
        shown = chop_cells(shown, max(width - 1, 1))[0] + "…"
    kept = [(max(a + shift, 0), min(b + shift, len(shown))) for a, b in found]
    return shown, [(a, b) for a, b in kept if a < b]


def hit_prompt(
    hit: SearchHit,
    words: tuple[str, ...],
    width: int,
    *,
    bidi: Bidi,
    rtl_layout: bool,
    now: int,
    tz: tzinfo | None,
    calendar: str,
    dark: bool = True,
) -> Content:
    """A hit as the panel shows it: `#room · 12:10 · bob`, then its text."""
    pieces = [
        (bidi.name(hit.room, rtl_layout=rtl_layout), "bold"),
        (bidi.display(when(hit.ts, now, tz, calendar), rtl_layout or None), "dim"),
        (bidi.display(hit.sender), f"bold {name_color(hit.sender, dark)}"),
    ]
    if rtl_layout:
        pieces.reverse()
    parts: list[str | tuple[str, str]] = []
    for text, style in pieces:
        if parts:
            parts.append((" · ", "dim"))
        parts.append((text, style))
    meta = Content.assemble(*parts)
    if rtl_layout:
        meta = Content(" " * max(width - meta.cell_length, 0)) + meta
    logical = f"* {hit.text}" if hit.action else hit.text
    text, found = excerpt(logical, words, width)
    rtl = bidi.is_rtl(text)
    line = bidi.line(text, rtl)
    marked = [any(a <= index < b for a, b in found) for index in line.order]
    body = Content.assemble(*_runs(line.text, marked))
    if rtl:
        body = Content(" " * max(width - body.cell_length, 0)) + body
    return Content("\n").join([meta, body])


def _runs(text: str, marked: Sequence[bool]) -> list[str | tuple[str, str]]:
    """`text` in runs of characters marked or not (the marked ones in `FOUND_STYLE`)."""
    runs: list[str | tuple[str, str]] = []
    start = 0
    for index in range(1, len(text) + 1):
        if index == len(text) or marked[index] != marked[start]:
            piece = text[start:index]
            runs.append((piece, FOUND_STYLE) if marked[start] else piece)
            start = index
    return runs


class SearchScreen(ModalScreen["SearchHit | None"]):
    """Asks what to look for and lists what was found; Enter on a hit dismisses with it, the
    last row asks for older hits, Escape closes."""

    DEFAULT_CSS = """
    SearchScreen {
        align: center middle;
    }
    SearchScreen > Vertical {
        width: 96%;
        max-width: 120;
        height: 90%;
        border: thick $primary;
        background: $surface;
        padding: 0 1;
    }
    SearchScreen .title {
        text-style: bold;
    }
    SearchScreen #search-status, SearchScreen .hint {
        color: $text-muted;
    }
    SearchScreen #search-hits {
        height: 1fr;
        border: none;
        padding: 0;
        scrollbar-gutter: stable;
    }
    SearchScreen #search-query {
        border: tall $primary-background;
    }
    """

    BINDINGS = [Binding("escape", "close", N_("Close"))]

    class Wanted(Message):
        """Hits of `query` are wanted: the newest, or (`before`) those after the page
        that ended there."""

        def __init__(self, screen: SearchScreen, query: str, before: str = "") -> None:
            super().__init__()
            self.screen = screen
            self.query = query
            self.before = before

    def __init__(
        self,
        query: str = "",
        *,
        previous: Found | None = None,
        joined: Callable[[str], bool] | None = None,
        bidi: Bidi | None = None,
        rtl_layout: bool = False,
        clock: Callable[[], int],
        tz: tzinfo | None = None,
        calendar: str = "gregorian",
    ) -> None:
        """`query`: what to look for at once ("": ask, or show `previous` again, the panel
        as it was when it last closed, its query selected); `joined` says whether the user is
        in a room (a hit in one they are not in asks first; None: never asks); `clock` gives
        the time (ms since the epoch) the hits' times are said from."""
        super().__init__()
        translate_bindings(self)
        self._bidi = bidi or Bidi()
        self._rtl_layout = rtl_layout
        self._clock = clock
        self._tz = tz
        self._calendar = calendar
        self._query = query
        """The query the hits shown are of."""
        self._words: tuple[str, ...] = ()
        self._hits: list[SearchHit] = []
        self._next = ""
        self._loading = False
        self._joined = joined
        self._again = previous if not query.strip() else None
        """What the panel showed when it last closed, shown again."""
        self._typed = self._again.typed if self._again is not None else query
        self.found: Found | None = None
        """What the panel showed when it closed (None: still open), to show again when it
        opens next."""

    def compose(self) -> ComposeResult:
        bidi = self._bidi
        with Vertical():
            yield BidiText(said(_("Search messages")), bidi=bidi, classes="title")
            yield BidiInput(
                value=self._typed,
                placeholder=_("words, and from:NAME or in:#ROOM"),
                bidi=bidi,
                select_on_focus=False,  # (a character typed on the hits goes on to the end)
                id="search-query",
            )
            yield BidiText("", bidi=bidi, id="search-status")
            yield OptionList(id="search-hits")
            hint = _("Enter searches · ↓ to the results, Enter goes to one · Escape closes")
            yield BidiText(said(hint), bidi=bidi, classes="hint")

    def on_mount(self) -> None:
        query = self.query_one("#search-query", BidiInput)
        query.focus()
        again = self._again
        if again is not None:
            query.select_all()  # (typing replaces it)
            self._query, self._words, self._next = again.query, again.words, again.next
            self._hits = list(again.hits)
            if self._hits:
                self._said_found()
                self._show_hits()
                if again.highlighted is not None:
                    hits = self.query_one("#search-hits", OptionList)
                    hits.highlighted = min(again.highlighted, hits.option_count - 1)
        elif self._query.strip():
            self.ask(self._query)

    def _found(self) -> Found:
        """What the panel shows now."""
        typed = self.query_one("#search-query", BidiInput).value
        highlighted = self.query_one("#search-hits", OptionList).highlighted
        hits = tuple(self._hits)
        return Found(typed, self._query, self._words, hits, self._next, highlighted)

    def dismiss(self, result: SearchHit | None = None) -> AwaitComplete:
        """Close on `result`, keeping what the panel showed (`found`)."""
        self.found = self._found()
        return super().dismiss(result)

    @property
    def hits(self) -> list[SearchHit]:
        """The hits shown, newest first."""
        return self._hits

    def ask(self, query: str, before: str = "") -> None:
        """Ask the app for the hits of `query` (after `before`)."""
        self._loading = True
        if not before:
            self._query = query
        self._status(_("searching…"))
        self.post_message(self.Wanted(self, query, before))

    # --- what the app hands back ------------------------------------------

    def shown(self, query: str, words: tuple[str, ...], results: SearchResults, more: bool) -> None:
        """The hits of `query` (its folded `words`), newest first: a page after those shown
        (`more`), or the first."""
        if query != self._query or not self.is_attached:
            return  # (an answer to a query typed over since, or to a panel closed)
        self._loading = False
        self._words = words
        if more:
            self._hits.extend(results.hits)
        else:
            self._hits = list(results.hits)
        self._next = results.next if results.hits else ""  # (an empty page ends it)
        self._show_hits(keep=more)
        self._said_found()
        if self._hits and not more:  # (the focus stays where it is: ↓ goes to this one)
            self.query_one("#search-hits", OptionList).highlighted = 0

    def _said_found(self) -> None:
        """Say how many hits are shown (and whether more are below)."""
        count = len(self._hits)
        if not count:
            self._status(_("nothing found"))
            return
        said = ngettext("{count} message found", "{count} messages found", count)
        shown = said.format(count=local_digits(str(count)))
        if self._next:
            shown = _("{found}; more below").format(found=shown)
        self._status(shown)

    def failed(self, query: str, problem: str) -> None:
        """Searching for `query` failed: say why."""
        if query == self._query and self.is_attached:
            self._loading = False
            self._status(problem)

    # --- drawing ---------------------------------------------------------

    def _status(self, text: str) -> None:
        self.query_one("#search-status", BidiText).update(said(text))

    def _show_hits(self, *, keep: bool = False) -> None:
        hits = self.query_one("#search-hits", OptionList)
        highlighted = hits.highlighted if keep else None
        width = hits.scrollable_content_region.width  # (its scrollbar's gutter kept apart)
        if width < 10:
            width = max(self.app.size.width - 10, 10)
        now = self._clock()
        dark = self.app.current_theme.dark
        options: list[Option] = []
        for number, hit in enumerate(self._hits):
            prompt = hit_prompt(
                hit, self._words, width, bidi=self._bidi, rtl_layout=self._rtl_layout,
                now=now, tz=self._tz, calendar=self._calendar, dark=dark,
            )  # fmt: skip
            options.append(Option(prompt, id=str(number)))
        if self._next:
            more = self._bidi.display(_("older messages…"))
            if self._rtl_layout:
                more = " " * max(width - cell_len(more), 0) + more
            options.append(Option(Content(more), id=MORE))
        hits.clear_options()
        hits.add_options(options)
        if highlighted is not None and options:
            hits.highlighted = min(highlighted, len(options) - 1)

    def on_resize(self) -> None:
        if self._hits:
            self._show_hits(keep=True)

    # --- keys ----------------------------------------------------------------

    @on(Input.Submitted, "#search-query")
    def _submitted(self, event: Input.Submitted) -> None:
        if event.value.strip():
            self.ask(event.value.strip())

    @on(OptionList.OptionSelected, "#search-hits")
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        if event.option.id == MORE:
            self._more()
        elif event.option.id is not None:
            self._go_to(self._hits[int(event.option.id)])

    def _go_to(self, hit: SearchHit) -> None:
        """Dismiss with `hit`; if it is in a room the user is not in, once they said yes to
        joining it (Escape: back to the hits)."""
        joined = self._joined
        if hit.room.startswith("@") or joined is None or joined(hit.room):
            self.dismiss(hit)
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.dismiss(hit)

        question = _("You are not in {room}: join it to see the message?")
        hint = _("Enter joins, Escape stays")
        dialog = ConfirmDialog(question.format(room=hit.room), hint, bidi=self._bidi)
        self.app.push_screen(dialog, answered)

    @on(OptionList.OptionHighlighted, "#search-hits")
    def _highlighted(self, event: OptionList.OptionHighlighted) -> None:
        if event.option.id == MORE:
            self._more()  # (older hits come on demand: when the list reaches its end)

    def _more(self) -> None:
        if self._next and not self._loading:
            self.ask(self._query, self._next)

    def on_key(self, event: Key) -> None:
        """Down goes from the query to the hits (to the one highlighted: the first after a
        search), Up from the first hit back to the query; a character typed on the hits goes
        on to the end of the query."""
        hits = self.query_one("#search-hits", OptionList)
        query = self.query_one("#search-query", BidiInput)
        if event.key == "down" and query.has_focus and hits.option_count:
            event.stop()
            if hits.highlighted is None:
                hits.highlighted = 0
            hits.focus()
        elif event.key == "up" and hits.has_focus and not hits.highlighted:
            event.stop()
            query.focus()
        elif hits.has_focus and event.is_printable and not event.key.startswith(("alt+", "ctrl+")):
            event.stop()
            assert event.character is not None
            query.cursor_position = len(query.value)
            query.insert_text_at_cursor(event.character)
            query.focus()

    def action_close(self) -> None:
        self.dismiss(None)
