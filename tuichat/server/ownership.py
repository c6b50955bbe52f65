"""Who owns a name: registrations to a key, and the resume token of each user's last session.

Only hashes are kept. A registered name (or a look-alike of it) is refused to
anyone without its key; a user's last token, or the name's key, proves that a
new connection is the same person as an old one (which it may then replace).
Storage and sharing between servers go through `Peers`.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping

from tuichat.chat import ChatError
from tuichat.protocol import ErrorCode, Hello

MIN_KEY, MAX_KEY = 16, 256
"""Length limits of a name's key (the reference client uses 43 characters: 32 random bytes)."""


def token_hash(secret: str) -> str:
    """Return what is stored of a resume token or a key."""
    return hashlib.sha256(secret.encode()).hexdigest()


def same(stored_hash: str, secret: str) -> bool:
    """Whether `secret` hashes to `stored_hash` (compared in constant time)."""
    return secrets.compare_digest(stored_hash, token_hash(secret))


class Ownership:
    """Registrations (name key → key hash) and resume tokens (user key → token hash)."""

    def __init__(self) -> None:
        self.tokens: dict[str, str] = {}
        self.identities: dict[str, str] = {}

    def load_tokens(self, tokens: Mapping[str, str]) -> None:
        """Add resume tokens (hashed) by user key."""
        self.tokens.update(tokens)

    def load_identities(self, identities: Mapping[str, str]) -> None:
        """Add registrations (key hashes) by name key."""
        self.identities.update(identities)

    def check_owner(self, keys: tuple[str, str], hello: Hello) -> None:
        """Refuse a registered name (or a look-alike of it) to anyone without its key."""
        if hello.key is not None and not MIN_KEY <= len(hello.key) <= MAX_KEY:
            raise ChatError(ErrorCode.BAD_MESSAGE, f"a key has {MIN_KEY} to {MAX_KEY} characters")
        owners = {self.identities[key] for key in keys if key in self.identities}
        if not owners:
            return
        if not hello.key or not all(same(owner, hello.key) for owner in owners):
            raise ChatError(
                ErrorCode.NAME_REGISTERED,
                f"{hello.name} is registered to another key; pick another name "
                "(or bring your identity to this device: tuichat --export-identity)",
            )

    def wants_registration(self, keys: tuple[str, str], hello: Hello) -> bool:
        """Whether `hello` brings a key for a name that nobody has registered yet."""
        return bool(hello.key) and not any(key in self.identities for key in keys)

    def registered(self, keys: tuple[str, str], key_hash: str) -> None:
        """The name's registration to `key_hash` is stored."""
        for key in keys:
            self.identities[key] = key_hash

    def check_token(self, user_key: str, token: str | None) -> bool:
        """Whether `token` is the user's last resume token."""
        stored = self.tokens.get(user_key)
        return bool(token) and stored is not None and same(stored, token or "")

    def proves_owner(self, user_key: str, hello: Hello) -> bool:
        """Whether `hello` carries the name's key or the user's last resume token."""
        owner = self.identities.get(user_key)
        same_key = bool(hello.key) and owner is not None and same(owner, hello.key or "")
        return same_key or self.check_token(user_key, hello.token)

    def new_token(self, user_key: str) -> tuple[str, str]:
        """Make a user's next resume token; return it and its hash (now the one that counts)."""
        token = secrets.token_urlsafe(18)
        self.tokens[user_key] = token_hash(token)
        return token, self.tokens[user_key]
