"""The secrets that own the user's names, kept in the user's config directory.

The first time a name is used, a secret is made for it and stored here; the
server keeps only its hash and refuses the name to anyone without it. To use a
name on another device, export its identity here and import it there.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

import platformdirs

PREFIX = "tuichat-identity"


class IdentityError(Exception):
    """An identity line that cannot be imported."""


def default_path() -> Path:
    """Where identities live unless told otherwise."""
    return Path(platformdirs.user_config_dir("tuichat")) / "identities.json"


class IdentityStore:
    """Name → secret, in a JSON file only its owner can read."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or default_path()

    def _load(self) -> dict[str, str]:
        try:
            data = json.loads(self.path.read_text("utf-8"))
        except FileNotFoundError:
            return {}
        return {str(k): str(v) for k, v in data.items()}

    def _save(self, identities: dict[str, str]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            json.dump(identities, file, indent=2, sort_keys=True)
        temporary.replace(self.path)

    def key_for(self, name: str) -> str:
        """Return the secret of `name`, making (and saving) one the first time."""
        identities = self._load()
        key = identities.get(name.casefold())
        if key is None:
            key = identities[name.casefold()] = secrets.token_urlsafe(32)
            self._save(identities)
        return key

    def export(self, name: str) -> str:
        """Return the line that carries `name`'s identity to another device."""
        return f"{PREFIX}:{name}:{self.key_for(name)}"

    def import_line(self, line: str) -> str:
        """Store the identity in a line made by `export`; return its name."""
        prefix, _, rest = line.strip().partition(":")
        name, _, key = rest.rpartition(":")
        if prefix != PREFIX or not name or len(key) < 32:
            raise IdentityError("not an identity line (it starts with 'tuichat-identity:')")
        identities = self._load()
        identities[name.casefold()] = key
        self._save(identities)
        return name
