"""Names that belong to their owner: an Ed25519 key pair per name, kept on the user's device.

The server stores public keys only and asks each connection to sign a fresh
challenge, so what one server sees of a key (the public key, signatures of its
own nonces) is of no use on another. Version-1 registrations (a hashed secret)
move to a key the first time their owner proves both.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.helpers import events_until, expect, until
from tests.raw import Raw, open_raw
from tuichat.app.identity import IdentityError, IdentityStore
from tuichat.chat.names import name_keys
from tuichat.client import (
    ChatClient,
    ClientError,
    Disconnected,
    Reconnecting,
    RequestFailed,
    SigningKey,
    UntrustedServer,
)
from tuichat.protocol import (
    Challenge,
    Codec,
    Connection,
    Error,
    Hello,
    Message,
    PrivateMessage,
    Role,
    Welcome,
    encode_frame,
)
from tuichat.server import ChatServer, ServerConfig
from tuichat.server.history.sqlite import MIGRATIONS


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[ChatServer]:
    srv = ChatServer(ServerConfig(port=0, db=str(tmp_path / "h.sqlite3")))
    await srv.start()
    yield srv
    await srv.stop()


async def answer(raw: Raw, hello: Hello) -> Welcome | Error:
    """Send `hello` (with ref 1); return the server's answer."""
    raw.send(dataclasses.replace(hello, ref=1))
    reply = await raw.reply(1)
    assert isinstance(reply, Welcome | Error), reply
    return reply


async def test_a_registered_name_is_refused_to_anyone_without_its_key(
    server: ChatServer, tmp_path: Path
) -> None:
    owner = IdentityStore(tmp_path / "owner.json")
    ali = await ChatClient.connect("ali", *server.address, key=owner.key_for("ali"))
    await ali.close()
    thief = IdentityStore(tmp_path / "thief.json")
    for name, key in [
        ("ali", thief.key_for("ali")),
        ("ali", None),
        ("ALI", thief.key_for("ALI")),
        ("\u0430li", None),  # a Cyrillic a: looks the same
        ("aIi", thief.key_for("aIi")),  # a capital I for the l
    ]:
        with pytest.raises(RequestFailed) as refused:
            await ChatClient.connect(name, *server.address, key=key)
        assert refused.value.code == "name_registered"
        assert "registered to another key" in refused.value.message
    again = await ChatClient.connect("ali", *server.address, key=owner.key_for("ali"))
    assert again.name == "ali"
    await again.close()


async def test_a_name_stays_registered_across_a_server_restart(tmp_path: Path) -> None:
    config = ServerConfig(port=0, db=str(tmp_path / "h.sqlite3"))
    first = ChatServer(config)
    await first.start()
    key = IdentityStore(tmp_path / "ali.json").key_for("ali")
    await (await ChatClient.connect("ali", *first.address, key=key)).close()
    await first.stop()
    second = ChatServer(config)
    await second.start()
    assert second.server_id == first.server_id  # what hellos sign stays the same
    with pytest.raises(RequestFailed) as refused:
        await ChatClient.connect("ali", *second.address)
    assert refused.value.code == "name_registered"
    await (await ChatClient.connect("ali", *second.address, key=key)).close()
    await second.stop()


@contextlib.asynccontextmanager
async def malicious_server(
    relay_to: tuple[str, int],
) -> AsyncIterator[tuple[tuple[str, int], list[Hello]]]:
    """A server that keeps every hello it is sent, and gives each visitor the live challenge of
    a new connection of its own to the real server at `relay_to` (so that a signature it gets
    would be good there)."""
    hellos: list[Hello] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        relay = await open_raw(*relay_to)
        writer.write(encode_frame(Codec.encode(await relay.challenged())))
        conn = Connection(Role.SERVER)
        while not hellos and (data := await reader.read(65536)):
            hellos.extend(e for e in conn.receive_data(data) if isinstance(e, Hello))
        writer.close()
        relay.writer.close()

    listener = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield listener.sockets[0].getsockname()[:2], hellos
    finally:
        listener.close()


async def test_what_another_server_saw_of_a_key_cannot_take_the_name(
    server: ChatServer, tmp_path: Path
) -> None:
    key = IdentityStore(tmp_path / "ali.json").key_for("ali")
    ali = await ChatClient.connect("ali", *server.address, key=key)
    # the user visits another server, which keeps what it is sent
    async with malicious_server(server.address) as (address, hellos):
        with pytest.raises((ClientError, OSError)):
            await ChatClient.connect("ali", *address, key=key, timeout=2)
    [seen] = hellos
    assert seen.public_key == key.public and seen.signature
    for hello in (
        seen,  # replayed as it was
        dataclasses.replace(seen, name="ALI"),
        dataclasses.replace(seen, private_after=0),  # and asking for ali's private history
    ):
        thief = await open_raw(*server.address)
        refused = await answer(thief, hello)
        assert isinstance(refused, Error) and refused.code == "bad_signature", refused
        thief.writer.close()
    await ali.send("#lobby", "still mine")  # never dropped
    assert ali.connected
    await ali.close()


async def test_a_server_passing_on_the_real_servers_challenge_gets_no_signature(
    server: ChatServer, tmp_path: Path
) -> None:
    store = IdentityStore(tmp_path / "ali.json")
    real = f"127.0.0.1:{server.address[1]}"
    ali = await ChatClient.connect(
        "ali", *server.address, key=store.key_for("ali"), pins=store.pins("ali", real)
    )
    async with malicious_server(server.address) as (address, hellos):
        elsewhere = f"127.0.0.1:{address[1]}"
        with pytest.raises(UntrustedServer, match=f"says it is the chat you use as ali at {real}"):
            await ChatClient.connect(
                "ali", *address, key=store.key_for("ali"), pins=store.pins("ali", elsewhere)
            )
        assert not hellos  # not even a hello: the key signed nothing
    await ali.send("#lobby", "still mine")
    assert ali.connected
    # another address of the same chat is used once the user says so, and remembered
    await ali.close()
    pins = store.pins("ali", "localhost:" + str(server.address[1]), trust_address=True)
    await (await ChatClient.connect("ali", *server.address, key=ali_key(store), pins=pins)).close()
    pins = store.pins("ali", "localhost:" + str(server.address[1]))
    await (await ChatClient.connect("ali", *server.address, key=ali_key(store), pins=pins)).close()


def ali_key(store: IdentityStore) -> SigningKey:
    return store.key_for("ali")


async def test_private_history_goes_only_to_a_session_that_proved_the_name(
    server: ChatServer, tmp_path: Path
) -> None:
    laptop = IdentityStore(tmp_path / "laptop.json")
    ali = await ChatClient.connect("ali", *server.address, key=laptop.key_for("ali"))
    carol = await ChatClient.connect("carol", *server.address)  # no key: anyone's name
    bob = await ChatClient.connect("bob", *server.address)
    await bob.private("ali", "psst, ali")
    await bob.private("carol", "psst, carol")
    await expect(ali, PrivateMessage)
    await expect(carol, PrivateMessage)
    await ali.close()
    await carol.close()
    # the next user of the free keyless name gets no private history
    other = await open_raw(*server.address)
    welcome = await answer(other, Hello(name="carol", private_after=0))
    assert isinstance(welcome, Welcome)
    await bob.private("carol", "to the new carol")
    first = await other.next()
    while not isinstance(first, PrivateMessage):
        first = await other.next()
    assert first.text == "to the new carol"
    # the owner's key on a new device reads ali's private history
    phone = IdentityStore(tmp_path / "phone.json")
    phone.import_line(laptop.export("ali"))
    device = await open_raw(*server.address)
    hello = await device.signed_hello("ali", phone.key_for("ali"), private_after=0)
    assert isinstance(await answer(device, hello), Welcome)
    replayed = await device.next()
    while not isinstance(replayed, PrivateMessage):
        replayed = await device.next()
    assert (replayed.sender, replayed.text) == ("bob", "psst, ali")
    await bob.close()


def version_2_database(path: Path, name: str, secret: str) -> None:
    """A database as the previous release left it, with `name` registered to `secret`."""
    conn = sqlite3.connect(path)
    for migration in MIGRATIONS[:2]:
        conn.executescript(migration)
    hashed = hashlib.sha256(secret.encode()).hexdigest()
    for key in dict.fromkeys(name_keys(name)):  # both keys, once each
        conn.execute("INSERT INTO identities VALUES (?, ?, ?, 0)", (key, name, hashed))
    conn.execute("PRAGMA user_version = 2")
    conn.commit()
    conn.close()


async def test_names_of_an_old_database_move_to_their_owners_keys(tmp_path: Path) -> None:
    secret = "s3cret-of-version-1-" + "x" * 23
    db = tmp_path / "old.sqlite3"
    version_2_database(db, "ali", secret)
    old_file = tmp_path / "identities.json"
    old_file.write_text(json.dumps({"ali": secret}))  # the previous client's file
    config = ServerConfig(port=0, db=str(db))
    server = ChatServer(config)
    await server.start()
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA user_version").fetchone() == (len(MIGRATIONS),)
    assert {o for (o,) in conn.execute("SELECT owner FROM identities")} == {
        "sha256:" + hashlib.sha256(secret.encode()).hexdigest()
    }
    thief_key = SigningKey.generate()
    for legacy, code in ((None, "key_upgrade_required"), ("w" * 43, "name_registered")):
        with pytest.raises(RequestFailed) as refused:
            await ChatClient.connect("ali", *server.address, key=thief_key, legacy_key=legacy)
        assert refused.value.code == code
    identity = IdentityStore(old_file).identity_for("ali")  # the file moves to keys
    assert identity.legacy == secret
    assert json.loads(old_file.read_text())["version"] == 2
    ali = await ChatClient.connect(
        "ali", *server.address, key=identity.key, legacy_key=identity.legacy
    )
    await ali.close()
    # the secret no longer owns the name; the key does, across a restart
    with pytest.raises(RequestFailed) as refused:
        await ChatClient.connect("ali", *server.address, key=thief_key, legacy_key=secret)
    assert refused.value.code == "name_registered"
    await server.stop()
    assert {o for (o,) in conn.execute("SELECT owner FROM identities")} == {
        "ed25519:" + identity.key.public
    }
    conn.close()
    server = ChatServer(config)
    await server.start()
    await (await ChatClient.connect("ali", *server.address, key=identity.key)).close()
    await server.stop()


async def test_an_identity_moved_to_a_second_device_works(
    server: ChatServer, tmp_path: Path
) -> None:
    laptop = IdentityStore(tmp_path / "laptop" / "identities.json")
    phone = IdentityStore(tmp_path / "phone" / "identities.json")
    on_laptop = await ChatClient.connect("ali", *server.address, key=laptop.key_for("ali"))
    line = laptop.export("ali")
    assert phone.import_line(line) == "ali"
    assert phone.key_for("ali").public == laptop.key_for("ali").public
    # the phone signs in beside the laptop, whose session stays open
    on_phone = await ChatClient.connect("ali", *server.address, key=phone.key_for("ali"))
    assert on_phone.welcome is not None and on_phone.welcome.devices == 2
    await on_phone.send("#lobby", "from the phone")
    await expect(on_laptop, Message, text="from the phone")
    assert on_laptop.connected
    await on_phone.close()
    await on_laptop.close()
    for damaged in ("ali:not-an-identity", line.replace(line.split(":")[2], "x" * 43)):
        with pytest.raises(IdentityError):
            phone.import_line(damaged)


async def test_names_without_a_key_can_still_be_used(server: ChatServer) -> None:
    guest = await ChatClient.connect("guest", *server.address)
    await guest.close()
    again = await ChatClient.connect("guest", *server.address)  # nobody owns it
    await again.close()


async def test_hellos_with_malformed_keys_are_refused_clearly(server: ChatServer) -> None:
    raw = await open_raw(*server.address)
    good = await raw.signed_hello("ali", SigningKey.generate())
    for hello, code in (
        (dataclasses.replace(good, public_key="k" * 42), "bad_message"),
        (dataclasses.replace(good, signature=None), "bad_message"),
        (Hello(name="ali", signature=good.signature), "bad_message"),
        (dataclasses.replace(good, legacy_proof="short"), "bad_message"),
        (dataclasses.replace(good, public_key="!" * 43), "bad_signature"),
        (dataclasses.replace(good, name="bob"), "bad_signature"),  # signed for another name
    ):
        refused = await answer(raw, hello)
        assert isinstance(refused, Error) and refused.code == code, (hello, refused)
    assert isinstance(await answer(raw, good), Welcome)


def test_the_identity_file_is_private(tmp_path: Path) -> None:
    store = IdentityStore(tmp_path / "identities.json")
    store.key_for("ali")
    assert (tmp_path / "identities.json").stat().st_mode & 0o077 == 0


def test_identities_move_with_the_command_line(tmp_path: Path) -> None:
    def tuichat(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "tuichat.app", *args],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip

    exported = tuichat("--identities", str(tmp_path / "a.json"), "--export-identity", "ali")
    assert exported.returncode == 0 and exported.stdout.startswith("tuichat-identity:2:")
    line = exported.stdout.strip()
    imported = tuichat("--identities", str(tmp_path / "b.json"), "--import-identity", line)
    assert imported.returncode == 0 and "ali" in imported.stdout
    a, b = (IdentityStore(tmp_path / f).key_for("ali") for f in ("a.json", "b.json"))
    assert a.public == b.public
    bad = tuichat("--identities", str(tmp_path / "b.json"), "--import-identity", "nonsense")
    assert bad.returncode == 1 and "not an identity line" in bad.stderr


async def test_a_key_that_takes_a_free_name_does_not_open_its_old_private_messages(
    server: ChatServer,
) -> None:
    carol = await ChatClient.connect("carol", *server.address)  # no key: anyone's name
    bob = await ChatClient.connect("bob", *server.address)
    await bob.private("carol", "for the first carol")
    await expect(carol, PrivateMessage)
    await carol.close()
    mallory = SigningKey.generate()
    first = await open_raw(*server.address)  # registers the free name to mallory's key
    assert isinstance(await answer(first, await first.signed_hello("carol", mallory)), Welcome)
    first.writer.close()
    await until(bob.who, ("bob",))
    second = await ChatClient.connect("carol", *server.address, key=mallory)
    await bob.private("carol", "for mallory")
    await expect(second, PrivateMessage, text="for mallory")
    await second.close()
    await until(bob.who, ("bob",))
    again = await open_raw(*server.address)
    hello = await again.signed_hello("carol", mallory, private_after=0)
    assert isinstance(await answer(again, hello), Welcome)
    texts: list[str] = []
    while "for mallory" not in texts:  # what came after the registration is mallory's
        event = await again.next()
        if isinstance(event, PrivateMessage):
            texts.append(event.text)
    assert texts == ["for mallory"]  # the replay is oldest first: nothing older came
    await bob.close()


async def test_a_server_that_asks_for_the_version_1_secret_gets_only_a_proof_of_it(
    tmp_path: Path,
) -> None:
    secret = "s3cret-of-version-1-" + "y" * 23
    db = tmp_path / "old.sqlite3"
    version_2_database(db, "ali", secret)
    server = ChatServer(ServerConfig(port=0, db=str(db)))
    await server.start()
    seen = bytearray()
    hellos: list[Hello] = []

    async def asks(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        relay = await open_raw(*server.address)  # the real server's live challenge
        writer.write(encode_frame(Codec.encode(await relay.challenged())))
        conn = Connection(Role.SERVER)
        while len(hellos) < 2 and (data := await reader.read(65536)):
            seen.extend(data)
            for event in conn.receive_data(data):
                if isinstance(event, Hello):
                    hellos.append(event)
                    ask = Error(code="key_upgrade_required", message="prove it", ref=event.ref)
                    writer.write(encode_frame(Codec.encode(ask)))
        writer.close()

    listener = await asyncio.start_server(asks, "127.0.0.1", 0)
    victim = SigningKey.generate()
    with pytest.raises(ClientError):
        await ChatClient.connect(
            "ali", *listener.sockets[0].getsockname()[:2], key=victim, legacy_key=secret
        )
    listener.close()
    assert secret.encode() not in seen  # never sent
    proof = hellos[-1].legacy_proof
    assert proof is not None
    thief = await open_raw(*server.address)  # the proof, with the thief's own key
    stolen = await thief.signed_hello("ali", SigningKey.generate(), legacy_proof=proof)
    refused = await answer(thief, stolen)
    assert isinstance(refused, Error) and refused.code == "name_registered"
    ali = await ChatClient.connect("ali", *server.address, key=victim, legacy_key=secret)
    await ali.close()  # the owner moves the name to the key as usual
    await server.stop()


async def test_a_malformed_challenge_is_not_signed(tmp_path: Path) -> None:
    async def odd(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(
            encode_frame(Codec.encode(Challenge(nonce="\x1b]52;c;x\x07", server_id="s" * 9999)))
        )
        await reader.read()

    listener = await asyncio.start_server(odd, "127.0.0.1", 0)
    store = IdentityStore(tmp_path / "ali.json")
    with pytest.raises(UntrustedServer, match="malformed challenge"):
        await ChatClient.connect(
            "ali", *listener.sockets[0].getsockname()[:2], key=store.key_for("ali"),
            pins=store.pins("ali", "odd:1"),
        )  # fmt: skip
    assert "servers" not in json.loads((tmp_path / "ali.json").read_text())["names"]["ali"]
    listener.close()


async def test_two_devices_of_one_owner_do_not_take_the_name_from_each_other(
    server: ChatServer, tmp_path: Path
) -> None:
    key = IdentityStore(tmp_path / "ali.json").key_for("ali")
    laptop = await ChatClient.connect("ali", *server.address, key=key, reconnect=True)
    phone = await ChatClient.connect("ali", *server.address, key=key, reconnect=True)
    await phone.send("#lobby", "the phone is here")
    await laptop.send("#lobby", "so is the laptop")
    for device in (laptop, phone):
        events = await events_until(device, Message, text="so is the laptop")
        assert not [e for e in events if isinstance(e, Reconnecting | Disconnected)]
        assert device.connected
    await phone.close()
    await laptop.close()


def test_an_identity_line_can_come_from_standard_input(tmp_path: Path) -> None:
    line = IdentityStore(tmp_path / "a.json").export("ali")
    imported = subprocess.run(
        [sys.executable, "-m", "tuichat.app", "--identities", str(tmp_path / "b.json"),
         "--import-identity", "-"],
        input=line + "\n", capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert imported.returncode == 0 and "ali" in imported.stdout
    assert IdentityStore(tmp_path / "b.json").key_for("ali").public == (
        IdentityStore(tmp_path / "a.json").key_for("ali").public
    )
