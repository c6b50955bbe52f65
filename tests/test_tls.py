"""TLS with real certificates made on the fly: verified round trips, unverified refusals."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trustme

from tests.helpers import expect
from tuichat.app.cli import tls_context
from tuichat.client import ChatClient, ConnectionClosed
from tuichat.protocol import Message
from tuichat.server import ChatServer, ServerConfig


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
async def tls_server(ca: trustme.CA, tmp_path: Path) -> AsyncIterator[ChatServer]:
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    server = ChatServer(
        ServerConfig(host="127.0.0.1", port=0, tls_cert=str(cert_file), tls_key=str(key_file))
    )
    await server.start()
    yield server
    await server.stop()


def trusting(ca: trustme.CA, tmp_path: Path) -> ssl.SSLContext:
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    return tls_context(str(ca_file))  # what `tuichat --tls --ca FILE` uses


async def test_a_verified_tls_round_trip(
    tls_server: ChatServer, ca: trustme.CA, tmp_path: Path
) -> None:
    context = trusting(ca, tmp_path)
    ali = await ChatClient.connect("ali", *tls_server.address, ssl_context=context)
    bob = await ChatClient.connect("bob", "localhost", tls_server.address[1], ssl_context=context)
    await ali.send("#lobby", "over TLS")
    received = await expect(bob, Message)
    assert received.text == "over TLS"
    await ali.close()
    await bob.close()


async def test_a_certificate_the_client_does_not_trust_is_refused(tls_server: ChatServer) -> None:
    system_only = tls_context(None)  # `tuichat --tls` without --ca: the system's CAs
    with pytest.raises(ssl.SSLCertVerificationError):
        await ChatClient.connect("ali", *tls_server.address, ssl_context=system_only)


async def test_a_certificate_for_another_host_is_refused(ca: trustme.CA, tmp_path: Path) -> None:
    cert = ca.issue_cert("chat.example.org")
    cert_file, key_file = tmp_path / "other.pem", tmp_path / "other-key.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    server = ChatServer(
        ServerConfig(host="127.0.0.1", port=0, tls_cert=str(cert_file), tls_key=str(key_file))
    )
    await server.start()
    with pytest.raises(ssl.SSLCertVerificationError):
        await ChatClient.connect("ali", *server.address, ssl_context=trusting(ca, tmp_path))
    await server.stop()


async def test_a_plain_client_cannot_talk_to_a_tls_server(tls_server: ChatServer) -> None:
    with pytest.raises((ConnectionClosed, OSError, TimeoutError)):
        await ChatClient.connect("ali", *tls_server.address, timeout=3)


async def test_a_tls_server_says_goodbye_to_everyone_and_exits_0_on_sigterm(
    ca: trustme.CA, tmp_path: Path
) -> None:
    import signal

    from tests.server_process import start_server_process
    from tuichat.client import Disconnected
    from tuichat.protocol import Bye

    cert = ca.issue_cert("127.0.0.1")
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    server = await start_server_process(
        "--no-history", "--tls-cert", str(cert_file), "--tls-key", str(key_file)
    )
    context = trusting(ca, tmp_path)
    clients = [
        await ChatClient.connect(name, server.host, server.port, ssl_context=context)
        for name in ("ali", "bob")
    ]
    server.process.send_signal(signal.SIGTERM)
    for client in clients:
        assert (await expect(client, Bye)).reason == "shutdown"
        await expect(client, Disconnected)
    async with asyncio.timeout(20):
        assert await server.process.wait() == 0
