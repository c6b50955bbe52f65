"""Proving who owns a name: Ed25519 key pairs, and what a `hello` signs.

A server's `challenge` carries a fresh `nonce` and the server's `server_id`. A
client that owns a name signs `login_payload(server_id, nonce, name)` with the
name's private key and sends the public key and the signature in its `hello`.
The server stores only public keys, so nothing a server sees (a public key, a
signature over its own nonce) lets it log in as the user anywhere else.

Keys and signatures travel as unpadded base64url text (43 and 86 characters).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

PUBLIC_KEY_CHARS = 43
"""Length of a public key on the wire (32 bytes, base64url without padding)."""
SIGNATURE_CHARS = 86
"""Length of a signature on the wire (64 bytes, base64url without padding)."""
NONCE_BYTES = 24
CONTEXT = b"tuichat-login-v2"


def b64encode(data: bytes) -> str:
    """Unpadded base64url text of `data`."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64decode(text: str, size: int) -> bytes | None:
    """The `size` bytes that unpadded base64url `text` stands for, or None if it is not that."""
    if len(text) != (size * 4 + 2) // 3 or not text.isascii():
        return None
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None
    return data if len(data) == size and b64encode(data) == text else None


def new_nonce() -> str:
    """A fresh challenge nonce (24 random bytes, as base64url)."""
    return b64encode(secrets.token_bytes(NONCE_BYTES))


def new_server_id() -> str:
    """A new server identity (16 random bytes, as base64url)."""
    return b64encode(secrets.token_bytes(16))


def login_payload(server_id: str, nonce: str, name: str) -> bytes:
    """The bytes a `hello` signs: a context string, the server, its nonce and the name asked for.

    The fields are UTF-8, each followed by one NUL byte (none of them can contain NUL).
    """
    parts = (CONTEXT, server_id.encode(), nonce.encode(), name.encode("utf-8", "surrogatepass"))
    return b"".join(part + b"\x00" for part in parts)


def verify(public_key: str, signature: str, payload: bytes) -> bool:
    """Whether `signature` (base64url) is `public_key`'s (base64url) signature of `payload`."""
    raw_key = b64decode(public_key, 32)
    raw_signature = b64decode(signature, 64)
    if raw_key is None or raw_signature is None:
        return False
    try:
        Ed25519PublicKey.from_public_bytes(raw_key).verify(raw_signature, payload)
    except (InvalidSignature, ValueError):
        return False
    return True


def legacy_proof(secret: str, server_id: str, nonce: str, name: str, public_key: str) -> str:
    """Proof of a version-1 secret without revealing it: HMAC-SHA256, keyed with the SHA-256 of
    the secret (what version-1 servers stored), of the login payload followed by `public_key`."""
    key = hashlib.sha256(secret.encode()).digest()
    return _legacy_mac(key, server_id, nonce, name, public_key)


def check_legacy_proof(
    stored_hash: str, proof: str, server_id: str, nonce: str, name: str, public_key: str
) -> bool:
    """Whether `proof` proves the secret whose SHA-256 (hex) is `stored_hash` (constant time)."""
    try:
        key = bytes.fromhex(stored_hash)
    except ValueError:
        return False
    expected = _legacy_mac(key, server_id, nonce, name, public_key)
    return secrets.compare_digest(expected, proof)


def _legacy_mac(key: bytes, server_id: str, nonce: str, name: str, public_key: str) -> str:
    message = login_payload(server_id, nonce, name) + public_key.encode()
    return b64encode(hmac.digest(key, message, "sha256"))


class SigningKey:
    """The private key that owns a name, with its public half in wire form."""

    __slots__ = ("_key", "public")

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key
        self.public = b64encode(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))

    @classmethod
    def generate(cls) -> SigningKey:
        """A new random key."""
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_text(cls, text: str) -> SigningKey:
        """The key whose 32-byte seed is `text` (base64url, from `to_text`); ValueError if not."""
        seed = b64decode(text, 32)
        if seed is None:
            raise ValueError("not a private key (43 base64url characters)")
        return cls(Ed25519PrivateKey.from_private_bytes(seed))

    def to_text(self) -> str:
        """The private key's seed as base64url: whoever has it owns the name."""
        raw = self._key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        return b64encode(raw)

    def sign(self, payload: bytes) -> str:
        """The signature of `payload`, as base64url."""
        return b64encode(self._key.sign(payload))

    def sign_login(self, server_id: str, nonce: str, name: str) -> str:
        """The `signature` of a `hello` for `name` answering this server's challenge."""
        return self.sign(login_payload(server_id, nonce, name))
