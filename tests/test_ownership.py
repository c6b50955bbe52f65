"""Ownership as a plain object: what a hello proves, and the resume tokens it keeps."""

from __future__ import annotations

import pytest

from tuichat.chat import ChatError
from tuichat.protocol import Challenge, Hello
from tuichat.protocol.auth import SigningKey, legacy_proof, new_nonce, new_server_id
from tuichat.server.ownership import (
    KEY_OWNER,
    Ownership,
    TokenLine,
    key_of,
    owner_of,
    token_hash,
)

KEYS = ("ali", "ali-skeleton")


def challenge() -> Challenge:
    return Challenge(nonce=new_nonce(), server_id=new_server_id())


def signed(key: SigningKey, said: Challenge, **fields: object) -> Hello:
    signature = key.sign_login(said.server_id, said.nonce, "ali")
    return Hello(name="ali", public_key=key.public, signature=signature, **fields)  # type: ignore[arg-type]


def test_tokens_of_the_users_seen_least_lately_are_forgotten_first() -> None:
    ownership = Ownership(max_tokens=3)
    tokens = {user: ownership.new_token(user, TokenLine(0))[0] for user in ("a", "b", "c")}
    tokens["a"] = ownership.new_token("a", TokenLine(0))[0]  # a signs in again: now the most recent
    tokens["d"] = ownership.new_token("d", TokenLine(0))[0]  # one too many: b goes
    assert [u for u in tokens if ownership.check_token(u, tokens[u])] == ["a", "c", "d"]
    assert len(ownership.tokens) == 3


def test_a_signature_proves_the_registered_key_for_this_challenge_only() -> None:
    ownership = Ownership()
    key = SigningKey.generate()
    here = challenge()
    first = ownership.check_owner(KEYS, signed(key, here), here, 41)
    assert not first.owned and first.register == f"{KEY_OWNER}{key.public}#41"  # a new name
    assert first.register is not None and key_of(first.register) == KEY_OWNER + key.public
    ownership.registered(KEYS, first.register)
    again = ownership.check_owner(KEYS, signed(key, here), here, 99)
    assert again.owned and again.since == 41  # private messages up to 41 were not theirs
    with pytest.raises(ChatError) as refused:
        ownership.check_owner(KEYS, signed(key, here), challenge(), 99)  # another connection
    assert refused.value.code == "bad_signature"
    with pytest.raises(ChatError) as taken:
        ownership.check_owner(KEYS, signed(SigningKey.generate(), here), here, 99)
    assert taken.value.code == "name_registered"


def test_a_version_1_owner_moves_to_a_key_with_its_secret() -> None:
    ownership = Ownership()
    ownership.load_identities(dict.fromkeys(KEYS, token_hash("old-secret-1234567")))
    assert set(ownership.identities.values()) == {owner_of(token_hash("old-secret-1234567"))}
    key, here = SigningKey.generate(), challenge()
    with pytest.raises(ChatError) as asked:
        ownership.check_owner(KEYS, signed(key, here), here, 0)
    assert asked.value.code == "key_upgrade_required"

    def proof(secret: str, said: Challenge) -> str:
        return legacy_proof(secret, said.server_id, said.nonce, "ali", key.public)

    good = signed(key, here, legacy_proof=proof("old-secret-1234567", here))
    moved = ownership.check_owner(KEYS, good, here, 0)
    assert moved.owned and moved.register == KEY_OWNER + key.public
    assert moved.replacing == "sha256:" + token_hash("old-secret-1234567")
    for wrong in (proof("another-secret-12345", here), proof("old-secret-1234567", challenge())):
        with pytest.raises(ChatError) as refused:  # another secret, or proved for elsewhere
            ownership.check_owner(KEYS, signed(key, here, legacy_proof=wrong), here, 0)
        assert refused.value.code == "name_registered"
