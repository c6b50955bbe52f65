"""A colour for each name that stays the same across runs and machines."""

from __future__ import annotations

import zlib

NAME_COLORS = (
    "#e06c75", "#98c379", "#e5c07b", "#61afef", "#c678dd", "#56b6c2",
    "#d19a66", "#be5046", "#7ec699", "#f08d49", "#b294bb", "#8abeb7",
)  # fmt: skip


def name_color(name: str) -> str:
    """Return the colour for `name` (the same for the same name, whatever its case)."""
    return NAME_COLORS[zlib.crc32(name.casefold().encode()) % len(NAME_COLORS)]
