"""The composer: a text of one or more lines. Enter sends it; Shift+Enter, Alt+Enter and
Ctrl+J start a new line; Up and Down walk the history from the first and last line; Tab
completes names and rooms; Ctrl+O (or F4) edits the text in `$VISUAL`/`$EDITOR`."""

from __future__ import annotations

import contextlib
import os
import shlex
import subprocess
import tempfile
import time
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from rich.cells import get_character_cell_size
from rich.segment import Segment
from rich.style import Style
from textual import events, on
from textual.app import SuspendNotSupported
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.strip import Strip
from textual.widgets import TextArea
from textual.widgets.text_area import Location

from tuichat.app.bidi import ZWNJ, ZWNJ_MARK, Bidi, has_rtl, shift_space, turned_arrow
from tuichat.app.completion import Completions, completions
from tuichat.app.history import InputHistory
from tuichat.app.i18n import N_, _, translate_bindings
from tuichat.chat import ChatLimits
from tuichat.chat.names import clean_text

Candidates = Callable[[], tuple[Iterable[str], Iterable[str]]]
"""Returns the names and the rooms Tab may complete."""
EditorRunner = Callable[[Sequence[str]], int]
"""Runs an editor command (its last argument is the file) and returns its exit status."""

NEWLINE_KEYS = frozenset(
    {
        "shift+enter",  # kitty keyboard protocol (kitty, WezTerm, foot, Ghostty, iTerm2)
        "alt+enter",  # the same
        "ctrl+enter",  # the same
        "ctrl+j",  # a bare line feed: Ctrl+J everywhere, and what many terminals send for
        # Shift+Enter when told to
        "shift+\r",  # xterm's modifyOtherKeys (tmux with `extended-keys`): Shift+Enter
        "\r",  # ... Alt+Enter (Textual drops the alt)
        "ctrl+\r",  # ... Ctrl+Enter
    }
)
"""Keys that add a line break instead of sending. A classic Alt+Enter (ESC and CR in one
write) reaches Textual as a plain Enter and cannot be told apart; ESC then Enter arriving
apart (a slow link) is caught by `META_WINDOW`."""
META_WINDOW = 1.0
"""Seconds within which Escape then Enter count as Alt+Enter (a new line), as in readline."""
HISTORY_KEYS = frozenset({"up", "down"})
TYPED_FORMAT_CHARACTERS = {
    unicodedata.name(char).lower().replace(" ", "_").replace("-", "_"): char
    for char in (ZWNJ, "\u200d", "\u200e", "\u200f")
}
"""Invisible characters a keyboard types and the composer keeps (ZWNJ, ZWJ, LRM and RLM), by
the name of their key."""
LIMITS = ChatLimits()


def editor_command(environ: Mapping[str, str] = os.environ) -> list[str]:
    """The user's editor command: `$VISUAL`, else `$EDITOR`, else `vi` (split like a shell)."""
    for variable in ("VISUAL", "EDITOR"):
        value = environ.get(variable, "")
        try:
            words = shlex.split(value)
        except ValueError:  # unbalanced quotes: take it word by word
            words = value.split()
        if words:
            return words
    return ["vi"]


def run_in_terminal(command: Sequence[str]) -> int:
    """Run `command` in the foreground, with the terminal; return its exit status."""
    return subprocess.run(list(command), check=False).returncode


def normalize(text: str) -> str:
    """Return `text` with CRLF and CR turned into LF and other control characters (but tab)
    removed, as the server would store it."""
    return clean_text(text.replace("\r\n", "\n").replace("\r", "\n"))


@dataclass
class _Cycle:
    """Tab's progress through the candidates for one word."""

    found: Completions
    text: str
    """The text before the first Tab."""
    index: int
    """The candidate shown, or -1 while only the common prefix is filled in."""
    shown: tuple[str, int] = ("", 0)
    """The text and cursor after the last Tab: any other change ends the cycle."""


EDITING_ACTIONS = ("delete_", "cursor_", "undo", "redo", "select_")
"""Prefixes of the composer's actions that are run as their key arrives (`_editing_action`)."""


class ChatInput(TextArea, inherit_bindings=False):
    """The composer: a `TextArea` with shell-like history, completion and an external editor.

    Typed characters, Enter, the line-break keys, Tab and Up/Down are handled by the widget as
    they arrive, in order: keys that reach the app in one burst (`one⏎two⏎`) give one message
    per Enter, each with what was typed before it. A text over the server's limits
    (`max_lines` lines or `max_bytes` bytes of UTF-8) is shown with the `-over` class and a
    note on the border, and Enter refuses it.
    """

    DEFAULT_CSS = """
    ChatInput {
        height: auto;
        min-height: 3;
        max-height: 7;
        padding: 0 2;
        background: $surface;
        scrollbar-size-vertical: 1;
        border-subtitle-align: right;
        &:focus {
            background-tint: $foreground 5%;
        }
        & .text-area--placeholder {
            color: $text-disabled;
        }
        &.-over {
            border: tall $error;  /* an app rule for the border (`#input:focus`) wins */
            border-subtitle-color: $error;
        }
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        *(  # Page Up/Down stay the app's (they scroll the log), as they were with `Input`
            binding
            for binding in TextArea.BINDINGS
            if not (isinstance(binding, Binding) and binding.key in ("pageup", "pagedown"))
        ),
        Binding("ctrl+o,f4", "open_editor", N_("Edit in $EDITOR"), show=False, id="open_editor"),
    ]

    class Entered(Message):
        """The user pressed Enter on `line`, which may hold several lines (the composer is
        already empty again)."""

        def __init__(self, line: str) -> None:
            super().__init__()
            self.line = line

    class Escaped(Message):
        """The user pressed Escape to give up what is written (`escape_gives_up`)."""

    def __init__(
        self,
        candidates: Candidates,
        *,
        value: str = "",
        placeholder: str = "",
        editor_runner: EditorRunner = run_in_terminal,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
        disabled: bool = False,
    ) -> None:
        super().__init__(
            normalize(value),
            soft_wrap=True,
            show_line_numbers=False,
            highlight_cursor_line=False,
            placeholder=placeholder,
            name=name,
            id=id,
            classes=classes,
            disabled=disabled,
        )
        self.sent = InputHistory()
        """The texts sent, for Up and Down (`TextArea.history` is the undo history)."""
        self.max_lines = LIMITS.max_text_lines
        """Lines a message may have (the server's limit)."""
        self.max_bytes = LIMITS.max_text_bytes
        """Bytes of UTF-8 a message may have (the server's limit)."""
        self._candidates = candidates
        self._editor_runner = editor_runner
        self._cycle: _Cycle | None = None
        self._escaped_at: float | None = None
        self._bidi = Bidi()
        self._placeholder_text: str | None = None
        """The placeholder in logical order (it is shown as `bidi` draws it)."""
        self.escape_gives_up = False
        """Escape gives up what is written (a reply, an edit: `Escaped`), rather than start
        an Escape-then-Enter new line."""
        translate_bindings(self)

    def on_mount(self) -> None:
        if self.app.is_headless:
            self.cursor_blink = False  # nobody watches it blink; screenshots stay the same

    # --- drawing -------------------------------------------------------------

    def _render_line(self, y: int) -> Strip:
        """A row of the composer: the text stays logical (the cursor moves through it in the
        order it was typed), a row that holds right-to-left text or a half-space is drawn in
        visual order, right-aligned if it reads right to left, with the cursor and selection
        on the characters they belong to and each ZWNJ drawn as a thin mark."""
        located = self._row_section(y)
        if located is None:
            return super()._render_line(y)
        line_index, start, end, line = located
        bidi = self.bidi
        rtl = bidi.is_rtl(line)
        last = end == len(line)  # the row the cursor may rest at the end of
        section = line[start:end] + (" " if last else "")
        drawn = bidi.line(section, rtl, marks=True)
        theme = self._theme
        base = theme.base_style if theme and theme.base_style is not None else self.rich_style
        selection_style = theme.selection_style if theme else None
        cursor_style = theme.cursor_style if theme else None
        top, bottom = sorted(self.selection)
        cursor = self.selection.end
        draw_cursor = self._draw_cursor and cursor_style is not None
        mark_style = Style(dim=True)
        segments: list[Segment] = []
        for char, index in zip(drawn.text, drawn.order, strict=True):
            where = (line_index, start + index)
            style = Style()
            if char == ZWNJ_MARK and section[index] == ZWNJ:
                style += mark_style
            if selection_style is not None and top != bottom and top <= where < bottom:
                style += selection_style
            if draw_cursor and where == cursor:
                style += cursor_style
            segments.append(Segment(char, style))
        width = self.scrollable_content_region.size.width
        cells = sum(_char_cells(char) for char in drawn.text)
        if rtl and cells < width:
            segments.insert(0, Segment(" " * (width - cells)))
        strip = Strip(Segment.simplify(segments)).crop(0, width)
        return strip.extend_cell_length(width, theme.base_style if theme else None).apply_style(
            base
        )

    def get_target_document_location(self, event: events.MouseEvent) -> Location:
        """Where a click lands: on a row drawn in visual order, before the character drawn
        in the clicked cell."""
        y = event.y - self.gutter.top
        located = self._row_section(y)
        if located is None:
            return super().get_target_document_location(event)
        line_index, start, end, line = located
        rtl = self.bidi.is_rtl(line)
        last = end == len(line)
        drawn = self.bidi.line(line[start:end] + (" " if last else ""), rtl, marks=True)
        width = self.scrollable_content_region.size.width
        cells = sum(_char_cells(char) for char in drawn.text)
        x = event.x - self.gutter.left - (max(width - cells, 0) if rtl else 0)
        if not drawn.order:
            return (line_index, start)
        if x < 0 or x >= len(drawn.order):  # beside the text: its start or end, by direction
            at_end = (x < 0) == rtl
            return (line_index, end if at_end else start)
        return (line_index, min(start + drawn.order[x], len(line)))

    def _row_section(self, y: int) -> tuple[int, int, int, str] | None:
        """For a row that needs visual order: its line, where its part of that line starts
        and ends, and the line's text; None for rows drawn as they are."""
        if not self.bidi.active or (not self.text and self.placeholder):
            return None
        try:
            line_index, section = self.wrapped_document._offset_to_line_info[
                y + self.scroll_offset.y
            ]
        except IndexError:
            return None
        line = self.document.get_line(line_index)
        if not (ZWNJ in line or self.bidi.is_rtl(line) or has_rtl(line)):
            return None
        offsets = [0, *self.wrapped_document.get_offsets(line_index), len(line)]
        if "\t" in line:  # tabs need TextArea's own expansion; such a row stays logical
            return None
        return line_index, offsets[section], offsets[section + 1], line

    @property
    def bidi(self) -> Bidi:
        """How right-to-left text is drawn (the app's `--bidi` mode)."""
        return self._bidi

    @bidi.setter
    def bidi(self, bidi: Bidi) -> None:
        if self._placeholder_text is None:
            self._placeholder_text = str(self.placeholder)
        self.placeholder = bidi.display(self._placeholder_text)
        self._bidi = bidi
        self._line_cache.clear()
        self.refresh()

    # --- the text ----------------------------------------------------------

    @property
    def value(self) -> str:
        """The composer's text (its lines joined by `\\n`); setting it puts the cursor at
        its end."""
        return self.text

    @value.setter
    def value(self, text: str) -> None:
        self.load_text(normalize(text))
        self.move_cursor(self.document.end)
        self._keep_cursor_in_view()

    def insert_text_at_cursor(self, text: str) -> None:
        """Insert `text` where the cursor is (over the selection, if any)."""
        self.replace(normalize(text), *self.selection, maintain_selection_offset=False)
        self._keep_cursor_in_view()

    def message(self) -> str:
        """The text Enter would send: the composer's text without line breaks at its end."""
        return self.text.rstrip("\n")

    def problem(self, text: str | None = None) -> str | None:
        """Why `text` (the composer's message by default) cannot be sent, or None if it can."""
        payload = _payload(self.message() if text is None else text)
        if payload is None:
            return None
        lines = payload.count("\n") + 1
        if lines > self.max_lines:
            return _(
                "This message has {lines} lines, and a message may have at most "
                "{limit}: shorten it or send it in parts."
            ).format(lines=lines, limit=self.max_lines)
        size = len(payload.encode("utf-8", "surrogatepass"))
        if size > self.max_bytes:
            return _(
                "This message is {size} bytes long, and a message may be at most "
                "{limit} bytes (of UTF-8): shorten it or send it in parts."
            ).format(size=size, limit=self.max_bytes)
        return None

    @on(TextArea.Changed)
    def _show_limits(self) -> None:
        """Mark a text that is over the limits, and say by how much on the border."""
        payload = _payload(self.message()) or ""
        lines = payload.count("\n") + 1
        size = len(payload.encode("utf-8", "surrogatepass"))
        if lines > self.max_lines:
            note = _("{lines}/{limit} lines: too long to send").format(
                lines=lines, limit=self.max_lines
            )
        elif size > self.max_bytes:
            note = _("{size}/{limit} bytes: too long to send").format(
                size=size, limit=self.max_bytes
            )
        else:
            note = ""
        self.set_class(bool(note), "-over")
        self.border_subtitle = note

    # --- keys ----------------------------------------------------------------

    async def _on_key(self, event: events.Key) -> None:
        """Handle the keys that send, break lines, walk the history or complete at once, so
        that each acts on exactly the keys that came before it."""
        key = event.key
        escaped_at, self._escaped_at = self._escaped_at, None
        if key in ("tab", "shift+tab"):
            self._stop(event)
            self._complete(1 if key == "tab" else -1)
            return
        self._cycle = None  # any other key accepts the completion shown
        if key == "escape":
            if self.escape_gives_up:  # (then not the first half of an Alt+Enter)
                self.escape_gives_up = False
                self.post_message(self.Escaped())
            else:
                self._escaped_at = time.monotonic()
        elif key == "enter" and not (
            escaped_at is not None and time.monotonic() - escaped_at < META_WINDOW
        ):
            self._stop(event)
            self._submit()
            return
        if key in NEWLINE_KEYS or key == "enter":
            self._stop(event)
            self.replace("\n", *self.selection, maintain_selection_offset=False)
            return
        if key in HISTORY_KEYS:
            self._stop(event)
            self._up_or_down(key == "up")
            return
        action = self._editing_action(self._visual_key(key))
        if action is not None:  # (not after the keys behind it, as a binding would run)
            self._stop(event)
            await self.run_action(action)
            return
        typed = self._format_character(event)
        if typed is not None:  # (Textual drops characters that are not "printable")
            self._stop(event)
            if not self.read_only:
                self._replace_via_keyboard(typed, *self.selection)
            return
        await super()._on_key(event)

    def _visual_key(self, key: str) -> str:
        """On a line that reads right to left, Left moves towards its end and Right towards
        its start, as the arrows point on screen."""
        turned = turned_arrow(key)
        if turned == key or not self.bidi.is_rtl(self.document.get_line(self.selection.end[0])):
            return key
        return turned

    def _format_character(self, event: events.Key) -> str | None:
        """The invisible character a key types, if it types one: a zero-width non-joiner (the
        Persian half-space, which Persian layouts put on Shift+Space; here Shift+Space types
        it after a letter of an Arabic-script word), a joiner, or a direction mark."""
        typed = TYPED_FORMAT_CHARACTERS.get(event.key)
        if typed is not None:
            return typed
        if event.key == "shift+space":
            row, column = self.selection.end
            return shift_space(self.document.get_line(row)[:column][-1:])
        return None

    def _editing_action(self, key: str) -> str | None:
        """The composer's own action bound to `key` if it edits the text or moves the cursor:
        Backspace, ctrl+u, ctrl+w, the arrows… run the moment they arrive, so that in a burst
        of keys each acts on the text typed before it."""
        for binding in self._bindings.key_to_bindings.get(key, ()):
            if binding.action.startswith(EDITING_ACTIONS):
                return binding.action
        return None

    @staticmethod
    def _stop(event: events.Key) -> None:
        event.stop()
        event.prevent_default()

    async def _on_paste(self, event: events.Paste) -> None:
        """Insert the pasted text, every line of it (it is not sent)."""
        event.stop()
        event.prevent_default()
        self._cycle = None
        if self.read_only:
            return
        self.replace(normalize(event.text), *self.selection, maintain_selection_offset=False)
        self._keep_cursor_in_view()
        self.focus()

    def _keep_cursor_in_view(self) -> None:
        """Scroll to the cursor once the new text is laid out (an edit that moves it far)."""
        self.call_after_refresh(self.scroll_cursor_visible)

    def _submit(self) -> None:
        """Send the text and empty the composer, at once: keys after Enter start a new text."""
        text = self.message()
        if not text.strip():
            self.load_text("")  # nothing to send
            return
        problem = self.problem(text)
        if problem is not None:
            self.notify(problem, title=_("Not sent"), severity="error", markup=False)
            return
        self.load_text("")
        self.sent.add(text)
        self.post_message(self.Entered(text))

    async def action_submit(self) -> None:
        """Send the text, as Enter does."""
        self._submit()

    def remember(self, line: str) -> None:
        """Add a sent text to the history."""
        self.sent.add(line)

    # --- history -------------------------------------------------------------

    def _up_or_down(self, up: bool) -> None:
        """Walk the history from the first (Up) or last (Down) row; elsewhere move the cursor."""
        at, walk = self.cursor_location, self.selection.is_empty
        if up and walk and self.navigator.is_first_wrapped_line(at):
            self.action_history_previous()
        elif not up and walk and self.navigator.is_last_wrapped_line(at):
            self.action_history_next()
        elif up:
            self.action_cursor_up()
        else:
            self.action_cursor_down()

    def action_history_previous(self) -> None:
        """Show the text sent before the one shown, its first line's end at the cursor (so
        that Up again goes on back)."""
        text = self.sent.previous(self.text)
        if text is not None:
            self.load_text(text)
            self.move_cursor((0, len(self.document[0])))
            self._keep_cursor_in_view()

    def action_history_next(self) -> None:
        """Show the text sent after the one shown (the draft after the newest), the cursor
        at its end (so that Down again goes on forward)."""
        text = self.sent.next()
        if text is not None:
            self.value = text

    # --- completion ----------------------------------------------------------

    def _complete(self, step: int) -> None:
        """Complete the word before the cursor; Tab again shows the next candidate (`step`
        1) or the previous one (-1)."""
        text, cursor = self.text, _index(self.text, self.cursor_location)
        cycle = self._cycle
        if cycle is None or cycle.shown != (text, cursor) or not self.selection.is_empty:
            names, rooms = self._candidates()
            found = completions(text, cursor, names, rooms)
            if found is None or not self.selection.is_empty:
                self._cycle = None
                return
            cycle = self._cycle = _Cycle(found, text, -1)
            prefix = found.common_prefix()
            if len(found.candidates) > 1 and len(prefix) > len(found.word) and step > 0:
                # fill in what they share first, as a shell does; Tab again goes through them
                self._show(cycle, text[: found.start] + prefix + text[found.end :])
                return
        count = len(cycle.found.candidates)
        if cycle.index < 0:
            cycle.index = 0 if step > 0 else count - 1
        else:
            cycle.index = (cycle.index + step) % count
        new_text, new_cursor = cycle.found.apply(cycle.text, cycle.index)
        self._show(cycle, new_text, new_cursor)
        if count == 1:
            self._cycle = None  # nothing to cycle through

    def _show(self, cycle: _Cycle, text: str, cursor: int | None = None) -> None:
        """Put `text` in the composer with the cursor at `cursor` (after the word)."""
        if cursor is None:
            cursor = cycle.found.start + len(cycle.found.common_prefix())
        old = self.text
        start = _common_start(old, text)
        old_end, new_end = _common_end(old, text, start)
        self.replace(
            text[start:new_end],
            _location(old, start),
            _location(old, old_end),
            maintain_selection_offset=False,
        )
        self.move_cursor(_location(text, cursor))
        cycle.shown = (text, cursor)

    def action_complete(self) -> None:
        """Complete the word before the cursor (or show the next candidate)."""
        self._complete(1)

    # --- the external editor -------------------------------------------------

    def action_open_editor(self) -> None:
        """Edit the text in `$VISUAL`/`$EDITOR` (else `vi`), the app suspended meanwhile, and
        put the result back (it is not sent)."""
        command = editor_command()
        descriptor, name = tempfile.mkstemp(prefix="tuichat-", suffix=".txt")
        path = Path(name)
        try:
            with os.fdopen(descriptor, "w", encoding="utf-8") as file:
                file.write(self.text)
            try:
                with self._terminal_handed_over():
                    status = self._editor_runner([*command, str(path)])
            except SuspendNotSupported:
                self._editor_failed(_("an editor cannot run here: there is no terminal to give it"))
                return
            except OSError as exc:
                why = exc.strerror or str(exc)
                self._editor_failed(
                    _("cannot start the editor {editor} ({why}): set $VISUAL or $EDITOR").format(
                        editor=repr(command[0]), why=why
                    )
                )
                return
            if status != 0:
                self._editor_failed(
                    _("the editor exited with status {status}: text unchanged").format(
                        status=status
                    )
                )
                return
            edited = normalize(path.read_text(encoding="utf-8", errors="replace"))
        finally:
            path.unlink(missing_ok=True)
        edited = edited.removesuffix("\n")  # editors end the file with a line break
        if edited != self.text:
            self.replace(edited, (0, 0), self.document.end, maintain_selection_offset=False)
            self._keep_cursor_in_view()
        self.focus()

    @contextlib.contextmanager
    def _terminal_handed_over(self) -> Iterator[None]:
        """Give the terminal to another program for the `with` block (a headless app has none
        to give: the program runs without it)."""
        if self.app.is_headless:
            yield
        else:
            with self.app.suspend():
                yield

    def _editor_failed(self, why: str) -> None:
        self.notify(why, title=_("Editor"), severity="error", markup=False)


def _char_cells(char: str) -> int:
    return 1 if char.isascii() else get_character_cell_size(char)


def _payload(text: str) -> str | None:
    """The message text that sending `text` would ask the server to take (None for commands
    that carry none)."""
    from tuichat.app import commands as cmd  # (not at start: when the first text is written)

    command = cmd.parse_input(text)
    if isinstance(command, cmd.SayText | cmd.Action | cmd.PrivateText):
        return clean_text(command.text)
    return None


def _index(text: str, location: Location) -> int:
    """The index in `text` of a (row, column) location."""
    row, column = location
    start = 0
    for _row in range(row):
        start = text.index("\n", start) + 1
    return start + column


def _location(text: str, index: int) -> Location:
    """The (row, column) location of an index in `text`."""
    row = text.count("\n", 0, index)
    return row, index - (text.rfind("\n", 0, index) + 1)


def _common_start(a: str, b: str) -> int:
    """How many characters `a` and `b` share at their start."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def _common_end(a: str, b: str, start: int) -> tuple[int, int]:
    """Where the end `a` and `b` share (not reaching back past `start`) begins in each."""
    i, j = len(a), len(b)
    while i > start and j > start and a[i - 1] == b[j - 1]:
        i -= 1
        j -= 1
    return i, j
