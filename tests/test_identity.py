"""Names that belong to their owner: a secret per name, kept on the user's device."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import expect
from tuichat.app.identity import IdentityError, IdentityStore
from tuichat.client import ChatClient, Disconnected, RequestFailed
from tuichat.server import ChatServer, ServerConfig


@pytest.fixture
async def server(tmp_path: Path):  # type: ignore[no-untyped-def]
    srv = ChatServer(ServerConfig(port=0, db=str(tmp_path / "h.sqlite3")))
    await srv.start()
    yield srv
    await srv.stop()


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
    with pytest.raises(RequestFailed) as refused:
        await ChatClient.connect("ali", *second.address)
    assert refused.value.code == "name_registered"
    await second.stop()


async def test_an_identity_moved_to_a_second_device_works(
    server: ChatServer, tmp_path: Path
) -> None:
    laptop = IdentityStore(tmp_path / "laptop" / "identities.json")
    phone = IdentityStore(tmp_path / "phone" / "identities.json")
    on_laptop = await ChatClient.connect("ali", *server.address, key=laptop.key_for("ali"))
    line = laptop.export("ali")
    assert phone.import_line(line) == "ali"
    # the phone takes over, even while the laptop's session is still open
    on_phone = await ChatClient.connect("ali", *server.address, key=phone.key_for("ali"))
    assert on_phone.name == "ali"
    await expect(on_laptop, Disconnected)
    await on_phone.close()
    with pytest.raises(IdentityError):
        phone.import_line("ali:not-an-identity")


async def test_names_without_a_key_can_still_be_used(server: ChatServer) -> None:
    guest = await ChatClient.connect("guest", *server.address)
    await guest.close()
    again = await ChatClient.connect("guest", *server.address)  # nobody owns it
    await again.close()


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
    assert exported.returncode == 0 and exported.stdout.startswith("tuichat-identity:ali:")
    line = exported.stdout.strip()
    imported = tuichat("--identities", str(tmp_path / "b.json"), "--import-identity", line)
    assert imported.returncode == 0 and "ali" in imported.stdout
    assert IdentityStore(tmp_path / "b.json").key_for("ali") == line.rsplit(":", 1)[1]
    bad = tuichat("--identities", str(tmp_path / "b.json"), "--import-identity", "nonsense")
    assert bad.returncode == 1 and "not an identity line" in bad.stderr
