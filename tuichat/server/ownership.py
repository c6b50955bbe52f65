"""Who owns a name: registrations to a public key, and the resume token of each user's last session.

A registered name (or a look-alike of it) is refused to anyone who cannot sign
this connection's challenge with the name's key (see `tuichat.protocol.auth`).
Only public keys are stored, as owners `ed25519:<key>`. Names registered by
protocol version 1 are owned by `sha256:<hash of a secret>`; such a name moves to
a key pair the first time its owner proves both. A user's last resume token (its
hash) proves that a new connection is the same session as an old one. Storage and
sharing between servers go through `Peers`.
"""

from __future__ import annotations

import hashlib
import secrets
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass

from tuichat.chat import ChatError
from tuichat.protocol import Challenge, ErrorCode, Hello
from tuichat.protocol.auth import (
    PUBLIC_KEY_CHARS,
    SIGNATURE_CHARS,
    check_legacy_proof,
    login_payload,
    verify,
)

MAX_TOKENS = 100_000
"""Resume tokens kept at most: those of the users who signed in least recently go first (they
can still sign in, and their key still proves them; only a resume without a key needs one)."""
PROOF_CHARS = 43
"""Length of a `legacy_proof` (an HMAC-SHA256, base64url)."""
KEY_OWNER, LEGACY_OWNER = "ed25519:", "sha256:"
SINCE = "#"
"""Between a key owner and the last private message id when the name was registered: the
owner's key does not open private messages from before (they were someone else's)."""


def token_hash(secret: str) -> str:
    """Return what is stored of a resume token or a version-1 secret."""
    return hashlib.sha256(secret.encode()).hexdigest()


def same(stored_hash: str, secret: str) -> bool:
    """Whether `secret` hashes to `stored_hash` (compared in constant time)."""
    return secrets.compare_digest(stored_hash, token_hash(secret))


def owner_of(stored: str) -> str:
    """A stored owner in its current form (version 1 stored a bare hash)."""
    return stored if stored.startswith((KEY_OWNER, LEGACY_OWNER)) else LEGACY_OWNER + stored


def key_of(owner: str) -> str:
    """The owner without its registration mark: `ed25519:<key>` or `sha256:<hash>`."""
    return owner.partition(SINCE)[0]


def since_of(owner: str) -> int:
    """The last private message id when `owner` registered the name (0 if not marked)."""
    mark = owner.partition(SINCE)[2]
    return int(mark) if mark.isdigit() else 0


@dataclass(frozen=True, slots=True)
class TokenLine:
    """What a resume token carries from the session that took the name afresh, down the line
    of sessions that resumed it: private messages up to `since` were someone else's, and the
    read markers of `lineage` are this line's (`""`: the name's key owner's)."""

    since: int
    lineage: str = ""


def new_lineage() -> str:
    """A line of sessions of a name without a key, taken afresh."""
    return secrets.token_urlsafe(9)


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a `hello` proved about its name."""

    owned: bool = False
    """It proved the name's registered owner (so it may replace the owner's sessions and
    read the owner's private history)."""
    since: int = 0
    """With `owned`: private messages up to this id are not the owner's (see `SINCE`)."""
    register: str | None = None
    """Register the name to this owner (a new name, or a version-1 name moving to its key)."""
    replacing: str | None = None
    """The owner that `register` replaces (None: the name must still be free)."""


class Ownership:
    """Registrations (name key → owner) and resume tokens (user key → token hash)."""

    def __init__(self, max_tokens: int = MAX_TOKENS) -> None:
        self.tokens: OrderedDict[str, str] = OrderedDict()
        """User key → hash of the last token, the least recently renewed first."""
        self.identities: dict[str, str] = {}
        self._max_tokens = max_tokens

    def load_tokens(self, tokens: Mapping[str, str]) -> None:
        """Add resume tokens (hashed) by user key."""
        for user_key, hashed in tokens.items():
            self._keep_token(user_key, hashed)

    def _keep_token(self, user_key: str, hashed: str) -> None:
        self.tokens[user_key] = hashed
        self.tokens.move_to_end(user_key)
        while len(self.tokens) > self._max_tokens:
            self.tokens.popitem(last=False)

    def load_identities(self, identities: Mapping[str, str]) -> None:
        """Add registrations (owners) by name key."""
        self.identities.update((key, owner_of(owner)) for key, owner in identities.items())

    def check_owner(
        self, keys: tuple[str, str], hello: Hello, challenge: Challenge, last_private: int
    ) -> Verdict:
        """Refuse a registered name (or a look-alike of it) to anyone who cannot prove its key.

        `last_private`: the last private message id now (a new registration is marked with it).
        """
        signed = _signed_key(hello, challenge)
        stored = {self.identities[key] for key in keys if key in self.identities}
        if not stored:
            return Verdict(register=None if signed is None else f"{signed}{SINCE}{last_private}")
        owners = {key_of(owner) for owner in stored}
        if signed is not None and owners == {signed}:
            return Verdict(owned=True, since=max(since_of(owner) for owner in stored))
        (legacy,) = owners if len(owners) == 1 else ("",)
        if signed is not None and legacy.startswith(LEGACY_OWNER):
            if hello.legacy_proof is None:
                raise ChatError(
                    ErrorCode.KEY_UPGRADE_REQUIRED,
                    f"{hello.name} is registered to a version-1 secret; prove it once with "
                    "legacy_proof, with your key, to move the name to your key",
                )
            if check_legacy_proof(
                legacy.removeprefix(LEGACY_OWNER), hello.legacy_proof,
                challenge.server_id, challenge.nonce, hello.name, hello.public_key or "",
            ):  # fmt: skip
                return Verdict(owned=True, register=signed, replacing=legacy)
        raise ChatError(
            ErrorCode.NAME_REGISTERED,
            f"{hello.name} (or a name that looks like it) is registered to another key; pick "
            f"another name, or bring its identity here: run tuichat --export-identity "
            f"{hello.name} on the device that has it, then tuichat --import-identity - here",
        )

    def registered(self, keys: tuple[str, str], owner: str) -> None:
        """The name's registration to `owner` is stored (an owner registering again, from a
        second device at once, keeps its first mark)."""
        for key in keys:
            current = self.identities.get(key)
            if current is None or key_of(current) != key_of(owner):
                self.identities[key] = owner

    def check_token(self, user_key: str, token: str | None) -> bool:
        """Whether `token` is the user's last resume token."""
        return self.token_line(user_key, token) is not None

    def token_line(self, user_key: str, token: str | None) -> TokenLine | None:
        """What the user's last resume token carries, if `token` is it (None: it is not)."""
        stored = self.tokens.get(user_key)
        if not token or stored is None:
            return None
        hashed, _, line = stored.partition(SINCE)
        if not same(hashed, token):
            return None
        since, _, lineage = line.partition(SINCE)
        return TokenLine(int(since) if since.isdigit() else 0, lineage)

    def new_token(self, user_key: str, line: TokenLine) -> tuple[str, str]:
        """Make a user's next resume token, carrying `line`; return it and what is stored of it
        (now the one that counts)."""
        token = secrets.token_urlsafe(18)
        self._keep_token(user_key, f"{token_hash(token)}{SINCE}{line.since}{SINCE}{line.lineage}")
        return token, self.tokens[user_key]


def _signed_key(hello: Hello, challenge: Challenge) -> str | None:
    """The owner `hello` proves (its public key, if it signed this challenge), after the checks."""
    if hello.legacy_proof is not None and len(hello.legacy_proof) != PROOF_CHARS:
        raise ChatError(ErrorCode.BAD_MESSAGE, f"a legacy_proof has {PROOF_CHARS} characters")
    if hello.public_key is None:
        if hello.signature is not None or hello.legacy_proof is not None:
            raise ChatError(ErrorCode.BAD_MESSAGE, "signature and legacy_proof need a public_key")
        return None
    if len(hello.public_key) != PUBLIC_KEY_CHARS or len(hello.signature or "") != SIGNATURE_CHARS:
        raise ChatError(
            ErrorCode.BAD_MESSAGE,
            f"a public_key has {PUBLIC_KEY_CHARS} characters and its signature {SIGNATURE_CHARS}",
        )
    payload = login_payload(challenge.server_id, challenge.nonce, hello.name)
    if not verify(hello.public_key, hello.signature or "", payload):
        raise ChatError(
            ErrorCode.BAD_SIGNATURE,
            "the signature is not public_key's signature of this connection's challenge",
        )
    return KEY_OWNER + hello.public_key
