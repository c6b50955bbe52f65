"""Ownership as a plain object: what a hello proves, and the resume tokens it keeps."""

from __future__ import annotations

import pytest

from tuichat.chat import ChatError
from tuichat.protocol import Challenge, Hello
from tuichat.protocol.auth import SigningKey, new_nonce, new_server_id
from tuichat.server.ownership import KEY_OWNER, Ownership, owner_of, token_hash

KEYS = ("ali", "ali-skeleton")


def challenge() -> Challenge:
    return Challenge(nonce=new_nonce(), server_id=new_server_id())


def signed(key: SigningKey, said: Challenge, **fields: object) -> Hello:
    signature = key.sign_login(said.server_id, said.nonce, "ali")
    return Hello(name="ali", public_key=key.public, signature=signature, **fields)  # type: ignore[arg-type]


def test_tokens_of_the_users_seen_least_lately_are_forgotten_first() -> None:
    ownership = Ownership(max_tokens=3)
    tokens = {user: ownership.new_token(user)[0] for user in ("a", "b", "c")}
    tokens["a"] = ownership.new_token("a")[0]  # a signs in again: now the most recent
    tokens["d"] = ownership.new_token("d")[0]  # one too many: b goes
    assert [u for u in tokens if ownership.check_token(u, tokens[u])] == ["a", "c", "d"]
    assert len(ownership.tokens) == 3


def test_a_signature_proves_the_registered_key_for_this_challenge_only() -> None:
    ownership = Ownership()
    key = SigningKey.generate()
    here = challenge()
    first = ownership.check_owner(KEYS, signed(key, here), here)
    assert (first.owned, first.register) == (False, KEY_OWNER + key.public)  # a new name
    ownership.registered(KEYS, KEY_OWNER + key.public)
    assert ownership.check_owner(KEYS, signed(key, here), here).owned
    with pytest.raises(ChatError) as refused:
        ownership.check_owner(KEYS, signed(key, here), challenge())  # another connection
    assert refused.value.code == "bad_signature"
    with pytest.raises(ChatError) as taken:
        ownership.check_owner(KEYS, signed(SigningKey.generate(), here), here)
    assert taken.value.code == "name_registered"


def test_a_version_1_owner_moves_to_a_key_with_its_secret() -> None:
    ownership = Ownership()
    ownership.load_identities(dict.fromkeys(KEYS, token_hash("old-secret-1234567")))
    assert set(ownership.identities.values()) == {owner_of(token_hash("old-secret-1234567"))}
    key, here = SigningKey.generate(), challenge()
    with pytest.raises(ChatError) as asked:
        ownership.check_owner(KEYS, signed(key, here), here)
    assert asked.value.code == "key_upgrade_required"
    moved = ownership.check_owner(KEYS, signed(key, here, legacy_key="old-secret-1234567"), here)
    assert moved.owned and moved.register == KEY_OWNER + key.public
    assert moved.replacing == "sha256:" + token_hash("old-secret-1234567")
    with pytest.raises(ChatError) as wrong:
        ownership.check_owner(KEYS, signed(key, here, legacy_key="x" * 20), here)
    assert wrong.value.code == "name_registered"
