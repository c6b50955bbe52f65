"""How the terminal's keys are read: alt and a digit is alt+digit.

Textual reads ESC and a digit (what xterm, tmux, GNOME Terminal and most others send for
alt+1 … alt+9) as the character macOS types for Option and that digit (`¡` for 1, `™` for 2),
as WezTerm on macOS sends; then alt+1 … alt+9 would type symbols instead of switching
conversations. Reading them as alt+digit is what a chat needs: `read_alt_digits` does it
once, for the whole process. (Typing those symbols with Option on macOS sends the character
itself, which is still read as it is.)
"""

from __future__ import annotations

from textual._ansi_sequences import ANSI_SEQUENCES_KEYS


def read_alt_digits() -> None:
    """Make ESC and a digit read as alt and the digit (see the module)."""
    for digit in "0123456789":
        ANSI_SEQUENCES_KEYS.pop(f"\x1b{digit}", None)  # type: ignore[attr-defined]
