"""The Unicode TR39 skeleton of a string: strings that look alike have the same skeleton.

The mapping comes from Unicode's confusables.txt as shipped by the
`confusable_homoglyphs` package, which stores each line `source → prototype`
in both directions. A source appears in exactly one line, so a character with a
single partner whose own partners are many is a source of that prototype; a
character with many partners is a prototype itself; two characters that only
have each other map to the smaller one. Each class of look-alikes thus gets
one representative, which is all that comparing skeletons needs.
"""

from __future__ import annotations

import functools
import json
import unicodedata
from importlib import resources


@functools.cache
def _prototypes() -> dict[str, str]:
    data = json.loads(
        resources.files("confusable_homoglyphs").joinpath("confusables.json").read_text("utf-8")
    )
    partners = {char: [entry["c"] for entry in entries] for char, entries in data.items()}
    mapping: dict[str, str] = {}
    for char, others in partners.items():
        if len(char) != 1 or len(others) != 1:
            continue  # a prototype (or a multi-character target): it stands for itself
        (other,) = others
        back = partners.get(other, [])
        if len(back) > 1:
            mapping[char] = other
        elif back == [char]:
            mapping[char] = min(char, other)
    return mapping


def skeleton(text: str) -> str:
    """Return the TR39 skeleton of `text` (NFD, each character to its prototype, NFD)."""
    prototypes = _prototypes()
    decomposed = unicodedata.normalize("NFD", text)
    mapped = "".join(prototypes.get(char, char) for char in decomposed)
    return unicodedata.normalize("NFD", mapped)
