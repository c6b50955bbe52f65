"""The private keys that own the user's names, kept in the user's config directory.

The first time a name is used, an Ed25519 key pair is made for it and stored here;
the server keeps only the public key and refuses the name to anyone who cannot
sign with the private one. To use a name on another device, export its identity
here and import it there.

The file is JSON, readable by its owner only: `{"version": 2, "names": {name:
{"key": <private key>, "legacy": <protocol-1 secret, if the name had one>,
"servers": {server id: [addresses]}}}}`, names casefolded. `servers` pins each
chat the key signed in to to the addresses it was reached at: a server at another
address that presents the id of a known chat may be passing our sign-in on to it
(a relay), so the key does not sign for it unless told to (`--trust-address`).

A version-1 file (`{name: secret}`) is moved to this form the first time it is
read: each name gets a new key and keeps its old secret, which is sent only to a
server that asks for it, to move the name to the key.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs

from tuichat.app.i18n import _, plain
from tuichat.client import UntrustedServer
from tuichat.protocol.auth import SigningKey

PREFIX = "tuichat-identity"
MAX_PINNED = 64
"""Chats remembered per name, and addresses per chat (the oldest are forgotten first)."""
VERSION = 2


class IdentityError(Exception):
    """An identity line that cannot be imported."""

    def __init__(self, message: str) -> None:
        super().__init__(plain(message))  # (said on the terminal as it is)


@dataclass(frozen=True, slots=True)
class Identity:
    """What owns one name: its private key, and its protocol-1 secret if it had one."""

    key: SigningKey
    legacy: str | None = None


def default_path() -> Path:
    """Where identities live unless told otherwise."""
    return Path(platformdirs.user_config_dir("tuichat")) / "identities.json"


class IdentityStore:
    """Name → identity, in a JSON file only its owner can read."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or default_path()

    def _load(self) -> dict[str, dict[str, Any]]:
        try:
            data: Any = json.loads(self.path.read_text("utf-8"))
        except FileNotFoundError:
            return {}
        if not isinstance(data, dict):
            raise IdentityError(_("{path} is not an identity file").format(path=self.path))
        if data.get("version") == VERSION and isinstance(data.get("names"), dict):
            return {str(k): dict(v) for k, v in data["names"].items() if isinstance(v, dict)}
        names = {  # version 1: name → secret
            str(name): {"key": SigningKey.generate().to_text(), "legacy": str(secret)}
            for name, secret in data.items()
        }
        self._save(names)
        return names

    def _save(self, names: dict[str, dict[str, Any]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            json.dump({"version": VERSION, "names": names}, file, indent=2, sort_keys=True)
        temporary.replace(self.path)

    def identity_for(self, name: str) -> Identity:
        """Return the identity of `name`, making (and saving) a key the first time."""
        names = self._load()
        entry = names.get(name.casefold())
        if entry is None:
            entry = names[name.casefold()] = {"key": SigningKey.generate().to_text()}
            self._save(names)
        return Identity(SigningKey.from_text(entry["key"]), entry.get("legacy") or None)

    def key_for(self, name: str) -> SigningKey:
        """Return the private key of `name`, making (and saving) one the first time."""
        return self.identity_for(name).key

    def export(self, name: str) -> str:
        """Return the line that carries `name`'s identity to another device (keep it secret)."""
        identity = self.identity_for(name)
        return f"{PREFIX}:{VERSION}:{identity.key.to_text()}:{identity.legacy or ''}:{name}"

    def import_line(self, line: str) -> str:
        """Store the identity in a line made by `export`; return its name.

        Lines of version 1 (`tuichat-identity:<name>:<secret>`) are taken too: the
        name gets a new key and keeps the secret to move to it.
        """
        prefix, _colon, rest = line.strip().partition(":")
        version, _colon, fields = rest.partition(":")
        if prefix != PREFIX:
            raise IdentityError(_("not an identity line (it starts with 'tuichat-identity:')"))
        if version == str(VERSION):
            private, legacy, name = [*fields.split(":", 2), "", ""][:3]
            try:
                key = SigningKey.from_text(private)
            except ValueError:
                raise IdentityError(
                    _("the identity line is damaged (its key is not valid)")
                ) from None
            entry: dict[str, Any] = {"key": key.to_text()} | ({"legacy": legacy} if legacy else {})
        else:
            name, _colon, legacy = rest.rpartition(":")
            entry = {"key": SigningKey.generate().to_text(), "legacy": legacy}
            if len(legacy) < 32:
                raise IdentityError(_("not an identity line (it starts with 'tuichat-identity:')"))
        if not name:
            raise IdentityError(_("the identity line has no name"))
        names = self._load()
        names[name.casefold()] = entry
        self._save(names)
        return name

    def pins(self, name: str, address: str, *, trust_address: bool = False) -> NamePins:
        """The chats `name`'s key signed in to, for a connection to `address`."""
        return NamePins(self, name.casefold(), address, trust_address)


@dataclass(frozen=True, slots=True)
class NamePins:
    """`ServerPins` of one name, for a connection to one address (see the module docstring)."""

    store: IdentityStore
    name: str
    address: str
    trust_address: bool = False

    def check(self, server_id: str) -> None:
        """Refuse to sign for a chat that this name knows under other addresses only."""
        entry = self.store._load().get(self.name, {})
        known: list[str] = entry.get("servers", {}).get(server_id, [])
        if known and self.address not in known and not self.trust_address:
            raise UntrustedServer(
                _(
                    "{address} says it is the chat you use as {name} at {known}; it may be"
                    " passing your sign-in on to it, so {name}'s key was not used. Connect to"
                    " {known}, or if {address} is truly another address of that chat, start"
                    " tuichat with --trust-address"
                ).format(address=self.address, name=self.name, known=known[0])
            )

    def remember(self, server_id: str) -> None:
        """The key signed in to `server_id` at this address."""
        names = self.store._load()
        entry = names.get(self.name)
        if entry is None:
            return
        servers: dict[str, list[str]] = entry.setdefault("servers", {})
        known = servers.setdefault(server_id, [])
        if self.address not in known:
            known.append(self.address)
            del known[:-MAX_PINNED]  # a bound, whatever servers say
            for oldest in list(servers)[:-MAX_PINNED]:
                del servers[oldest]
            self.store._save(names)
