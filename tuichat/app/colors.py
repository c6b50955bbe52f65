"""Colours: one for each name, the same across runs and machines, and the log's styles, all
taken from the app's theme so that every theme, light or dark, stays readable."""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass

from rich.style import Style
from textual.color import Color, ColorParseError

NAME_COLORS = (
    "#e06c75", "#98c379", "#e5c07b", "#61afef", "#c678dd", "#56b6c2",
    "#d19a66", "#be5046", "#7ec699", "#f08d49", "#b294bb", "#8abeb7",
)  # fmt: skip
LIGHT_DARKENING = 0.32
"""How much darker a name's colour is on a light theme (the palette is made for dark ones)."""


def name_color(name: str, dark: bool = True) -> str:
    """Return the colour for `name` (the same for the same name, whatever its case), made
    darker for a light theme."""
    color = NAME_COLORS[zlib.crc32(name.casefold().encode()) % len(NAME_COLORS)]
    return color if dark else Color.parse(color).darken(LIGHT_DARKENING).hex


@dataclass(frozen=True, slots=True)
class LogStyles:
    """How each part of a log line looks, from the theme's variables."""

    time: Style
    system: Style
    error: Style
    private: Style
    own_text: Style
    mention: Style
    history: Style
    new: Style
    date: Style
    dark: bool


def _color(variables: Mapping[str, str], *names: str) -> Color | None:
    for name in names:
        value = variables.get(name, "")
        try:
            return Color.parse(value)
        except ColorParseError:  # (e.g. "auto 60%": made relative to another colour)
            continue
    return None


def log_styles(variables: Mapping[str, str], dark: bool) -> LogStyles:
    """The log's styles for a theme (`App.theme_variables`, and whether it is dark)."""
    fg = _color(variables, "foreground") or Color.parse("#e0e0e0" if dark else "#1f1f1f")
    bg = _color(variables, "surface", "background") or Color.parse("#1e1e1e" if dark else "#d8d8d8")

    def style(color: Color | None, *, bold: bool = False, italic: bool = False) -> Style:
        rich = color.rich_color if color is not None else None
        return Style(color=rich, bold=bold or None, italic=italic or None)

    muted = fg.blend(bg, 0.45)
    warning = _color(variables, "text-warning", "warning")
    return LogStyles(
        time=style(muted),
        system=style(fg.blend(bg, 0.35), italic=True),
        error=style(_color(variables, "text-error", "error"), bold=True),
        private=style(_color(variables, "text-secondary", "secondary"), bold=True),
        own_text=style(fg.blend(bg, 0.15)),
        mention=Style(bgcolor=(_color(variables, "warning-muted") or bg).rich_color),
        history=style(fg.blend(bg, 0.3)),
        new=style(warning, bold=True),
        date=style(muted, bold=True),
        dark=dark,
    )
