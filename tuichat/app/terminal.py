"""Which terminal the app runs in, and who reorders right-to-left text there.

Most terminals draw every row left to right as written (kitty, Alacritty, WezTerm, Windows
Terminal, iTerm2, xterm, and xterm.js in browsers and editors): the app must reorder. VTE
(GNOME Terminal, Tilix, …) reorders whole rows itself unless told `CSI 8 l` (explicit mode),
which the app sends while it runs and undoes (`CSI 8 h`) when it ends. Konsole, mlterm and
macOS Terminal reorder each row and cannot be told not to: there the app writes logical text.
When the terminal is not known (or hides behind tmux or screen), the first run in a
right-to-left language asks which of two lines reads correctly, and remembers the answer for
that terminal program.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from tuichat.app.bidi import MODES, Mode

EXPLICIT = "\x1b[8l"
"""BDSM reset: the terminal draws cells as written (the app reorders)."""
IMPLICIT = "\x1b[8h"
"""BDSM set: the terminal reorders again (its default), written at exit."""

REORDERING = frozenset({"konsole", "mlterm", "apple_terminal"})
"""Terminals that reorder every row themselves, whatever they are told."""
DRAWING_AS_WRITTEN = frozenset(
    {"kitty", "alacritty", "wezterm", "windows-terminal", "iterm.app", "xterm", "vscode", "vte",
     "ghostty", "foot", "contour", "rio", "linux"}
)  # fmt: skip
"""Terminals that draw rows as written (VTE: once told `CSI 8 l`)."""


def terminal_program(environ: Mapping[str, str]) -> str:
    """A name for the terminal program the app runs in ("" if nothing tells)."""
    if environ.get("TMUX") or environ.get("STY"):
        return "tmux" if environ.get("TMUX") else "screen"  # the terminal outside is hidden
    for variable, name in (
        ("KONSOLE_VERSION", "konsole"),
        ("MLTERM", "mlterm"),
        ("KITTY_WINDOW_ID", "kitty"),
        ("ALACRITTY_WINDOW_ID", "alacritty"),
        ("ALACRITTY_SOCKET", "alacritty"),
        ("WEZTERM_EXECUTABLE", "wezterm"),
        ("WT_SESSION", "windows-terminal"),
        ("GHOSTTY_RESOURCES_DIR", "ghostty"),
        ("VTE_VERSION", "vte"),
        ("XTERM_VERSION", "xterm"),
    ):
        if environ.get(variable):
            return name
    program = environ.get("TERM_PROGRAM", "").strip().lower()
    if program:
        return program
    return environ.get("TERM", "").strip().lower()  # (most say "xterm-256color": unknown)


@dataclass(frozen=True, slots=True)
class Decision:
    """The bidi mode to start in, whether to ask the user first, and for which terminal."""

    mode: Mode
    ask: bool
    terminal: str


def decide(
    configured: str | None,
    environ: Mapping[str, str],
    remembered: Mapping[str, str],
    *,
    rtl_ui: bool,
) -> Decision:
    """The mode: as configured (`--bidi`, config.toml); else as answered before in this
    terminal; else by what the terminal is known to do; else `app`, asking first when the UI
    is right-to-left (its user reads such text from the first screen)."""
    terminal = terminal_program(environ)
    if configured in MODES:
        return Decision(configured, False, terminal)
    answer = remembered.get(terminal)
    if answer in MODES:
        return Decision(answer, False, terminal)
    if terminal in REORDERING:
        return Decision("terminal", True, terminal)
    if terminal in DRAWING_AS_WRITTEN:
        return Decision("app", False, terminal)
    return Decision("app", rtl_ui, terminal)


def answers_path() -> Path:
    """Where the answers of the first-run check are kept, per terminal program."""
    return Path(platformdirs.user_data_dir("tuichat")) / "terminals.json"


def load_answers(path: Path) -> dict[str, str]:
    """The modes chosen before, by terminal program (none if the file is missing or bad)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items() if isinstance(k, str) and v in MODES}


def save_answer(path: Path, terminal: str, mode: Mode) -> None:
    """Remember `mode` for `terminal` (quietly: the check is asked again if it cannot)."""
    answers = load_answers(path)
    answers[terminal] = mode
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(answers, indent=1, sort_keys=True), encoding="utf-8")
        os.replace(temporary, path)
