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
    quote: Style
    """A reply's preview of the message it answers."""
    mark: Style
    """What the log says of a message besides its text: "(edited)", "message deleted"."""
    reaction: Style
    reaction_mine: Style
    """A reaction the user gave too."""
    selected: Style
    """The message selected in the log (its background)."""
    dark: bool
    text: Color
    """The theme's text colour (what names are made readable toward)."""
    background: Color
    """The log's background."""

    def name(self, name: str, *, history: bool = False) -> Style:
        """The style of a sender's name: their colour, made readable on the background (and
        fainter, though still readable, in history)."""
        color = Color.parse(name_color(name, self.dark))
        if history:
            color = color.blend(self.background, 0.35)
        shown = readable(color, self.background, self.text, 3.0 if history else 4.5)
        return Style(color=shown.rich_color, bold=not history)


def contrast(a: Color, b: Color) -> float:
    """The WCAG contrast ratio of two colours (1 to 21)."""

    def luminance(color: Color) -> float:
        def channel(value: int) -> float:
            c = value / 255
            return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

        return 0.2126 * channel(color.r) + 0.7152 * channel(color.g) + 0.0722 * channel(color.b)

    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def readable(color: Color, background: Color, toward: Color, minimum: float = 4.5) -> Color:
    """`color`, moved toward `toward` (the text colour) as little as makes it stand out from
    `background` by `minimum` (WCAG: 4.5 for text, 3 for what is only a hint). A colour of
    the terminal's own palette (an ANSI theme) is the terminal's to choose: kept."""
    if color.ansi is not None or background.ansi is not None:
        return color
    for step in range(11):
        moved = color.blend(toward, step / 10)
        if contrast(moved, background) >= minimum:
            return moved
    return toward


def theme_color(variables: Mapping[str, str], *names: str) -> Color | None:
    """The first of the theme's variables `names` that is a colour (`App.theme_variables`)."""
    for name in names:
        value = variables.get(name, "")
        try:
            return Color.parse(value)
        except ColorParseError:  # (e.g. "auto 60%": made relative to another colour)
            continue
    return None


def log_styles(variables: Mapping[str, str], dark: bool) -> LogStyles:
    """The log's styles for a theme (`App.theme_variables`, and whether it is dark)."""
    fg = theme_color(variables, "foreground") or Color.parse("#e0e0e0" if dark else "#1f1f1f")
    bg = theme_color(variables, "surface", "background") or Color.parse(
        "#1e1e1e" if dark else "#d8d8d8"
    )

    def style(
        color: Color | None, minimum: float = 4.5, *, bold: bool = False, italic: bool = False
    ) -> Style:
        shown = None if color is None else readable(color, bg, fg, minimum).rich_color
        return Style(color=shown, bold=bold or None, italic=italic or None)

    muted = fg.blend(bg, 0.45)
    warning = theme_color(variables, "text-warning", "warning")
    selected = theme_color(variables, "primary-muted", "boost")
    return LogStyles(
        time=style(muted, 3.0),
        system=style(fg.blend(bg, 0.35), italic=True),
        error=style(theme_color(variables, "text-error", "error"), bold=True),
        private=style(theme_color(variables, "text-secondary", "secondary"), bold=True),
        own_text=style(fg.blend(bg, 0.15)),
        mention=Style(bgcolor=(theme_color(variables, "warning-muted") or bg).rich_color),
        history=style(fg.blend(bg, 0.3)),
        new=style(warning, 3.0, bold=True),
        date=style(muted, 3.0, bold=True),
        quote=style(fg.blend(bg, 0.4), 3.0),
        mark=style(fg.blend(bg, 0.4), 3.0, italic=True),
        reaction=style(fg.blend(bg, 0.2)),
        reaction_mine=style(theme_color(variables, "text-accent", "accent"), bold=True),
        selected=Style(bgcolor=(selected or bg).rich_color),
        dark=dark,
        text=fg,
        background=bg,
    )
