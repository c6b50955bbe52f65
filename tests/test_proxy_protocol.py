"""Behind a load balancer: the PROXY header (v1 and v2), accepted only from the balancers named
with `--proxy-from`, before TLS. A real server process on each event loop; the test plays the
balancer from 127.9.0.1 and names the clients it relays.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import trustme

from tests.raw import Raw, open_raw
from tests.server_process import ServerProcess, start_server_process
from tuichat.app.cli import tls_context
from tuichat.client import ChatClient
from tuichat.protocol import Codec, Connection, Error, Event, Hello, Role, Welcome, encode_frame
from tuichat.server.proxy_header import encode_v1, encode_v2

BALANCER = "127.9.0.1"
HELLO_TIMEOUT = 0.5
"""Also the time a balancer has to send the header."""
SLACK = 0.75
"""How much later than its timeout a drop may come on a busy test machine."""
Start = Callable[..., Awaitable[ServerProcess]]


@pytest.fixture(params=["uvloop", "asyncio"])
async def start(request: pytest.FixtureRequest) -> AsyncIterator[Start]:
    """Start a server behind the balancer, on the event loop of the test's parameter."""
    started: list[ServerProcess] = []

    async def _start(*args: str) -> ServerProcess:
        server = await start_server_process(
            "--no-history", "--event-loop", request.param, "--proxy-from", BALANCER,
            "--hello-timeout", str(HELLO_TIMEOUT), *args,
        )  # fmt: skip
        started.append(server)
        return server

    yield _start
    for server in started:
        server.process.terminate()
        await server.process.wait()


async def relayed(server: ServerProcess, header: bytes, then: bytes = b"") -> Raw:
    """A connection from the balancer that begins with `header` (and `then`, in one write)."""
    raw = await open_raw(server.host, server.port, source=BALANCER)
    raw.write(header + then)
    return raw


def hello(name: str) -> bytes:
    return encode_frame(Codec.encode(Hello(name=name, ref=0)))


async def welcomed(raw: Raw) -> Welcome:
    reply = await raw.reply(0)
    assert isinstance(reply, Welcome), reply
    return reply


async def refused(raw: Raw) -> Error:
    events = await raw.rest()
    assert events and isinstance(events[-1], Error) and events[-1].fatal, events
    return events[-1]


@pytest.mark.parametrize(
    ("encode", "client", "other"),
    [(encode_v1, "203.0.113.7", "198.51.100.9"), (encode_v2, "2001:db8::7", "2001:db8:1::9")],
    ids=["v1", "v2"],
)
async def test_the_client_address_in_the_header_is_the_one_limited_and_logged(
    start: Start, encode: Callable[[tuple[str, int]], bytes], client: str, other: str
) -> None:
    server = await start("--max-connections-per-ip", "2")
    # header and hello in one write: the session must get every byte after the header
    first = await relayed(server, encode((client, 40001)), hello("first"))
    second = await relayed(server, encode((client, 40002)), hello("second"))
    for raw in (first, second):
        await welcomed(raw)
    await server.wait_for_log(f"first joined from {client}:40001".encode())
    await server.wait_for_log(f"second joined from {client}:40002".encode())
    third = await relayed(server, encode((client, 40003)), hello("third"))
    error = await refused(third)  # the client's third, though only the balancer's fourth...
    assert (error.code, error.message) == (
        "too_many_connections",
        "at most 2 connections from one address",
    )
    elsewhere = await relayed(server, encode((other, 40004)), hello("elsewhere"))
    await welcomed(elsewhere)  # ...and the balancer's fourth is someone else's first
    await server.wait_for_log(f"elsewhere joined from {other}:40004".encode())


@pytest.mark.parametrize("encode", [encode_v1, encode_v2], ids=["v1", "v2"])
async def test_a_header_that_arrives_in_pieces_is_read_whole(
    start: Start, encode: Callable[[tuple[str, int]], bytes]
) -> None:
    server = await start()
    header = encode(("203.0.113.7", 40000))
    raw = await open_raw(server.host, server.port, source=BALANCER)
    for at in range(0, len(header), 7):
        raw.write(header[at : at + 7])
        await raw.writer.drain()
        await asyncio.sleep(0.01)  # so that the server reads the pieces apart (nothing waits on it)
    raw.write(hello("pieces"))
    await welcomed(raw)
    await server.wait_for_log(b"pieces joined from 203.0.113.7:40000")


@pytest.mark.parametrize(
    "header", [encode_v2(None), encode_v1(None)], ids=["v2-local", "v1-unknown"]
)
async def test_a_health_check_is_the_balancers_own_connection(start: Start, header: bytes) -> None:
    server = await start()
    await welcomed(await relayed(server, header, hello("check")))
    await server.wait_for_log(f"check joined from {BALANCER}:".encode())


@pytest.mark.parametrize(
    "header",
    [encode_v1(("203.0.113.7", 40000)), encode_v2(("203.0.113.7", 40000))],
    ids=["v1", "v2"],
)
async def test_a_header_from_anyone_else_is_bad_input(start: Start, header: bytes) -> None:
    """A client cannot pose as another address: it is no balancer, so its bytes are frames."""
    server = await start()
    raw = await open_raw(server.host, server.port)  # 127.0.0.1
    raw.write(header + hello("spoofer"))
    error = await refused(raw)
    assert error.code == "frame_too_large"
    direct = await ChatClient.connect("direct", server.host, server.port)
    await server.wait_for_log(b"direct joined from 127.0.0.1:")
    await direct.close()


async def test_a_balancers_connection_without_a_header_is_closed(start: Start) -> None:
    server = await start()
    raw = await relayed(server, b"", hello("headless"))
    assert await raw.rest() == []  # closed without a word: it is the balancer's mistake
    await server.wait_for_log(b"does not begin with a PROXY header")
    loop = asyncio.get_running_loop()
    for beginning in (b"", encode_v2(("203.0.113.7", 1))[:20], b"PROXY TCP4 203.0."):
        started = loop.time()
        raw = await relayed(server, beginning)
        assert await raw.rest() == []
        elapsed = loop.time() - started
        assert HELLO_TIMEOUT - 0.05 <= elapsed <= HELLO_TIMEOUT + SLACK, (beginning, elapsed)
    await server.wait_for_log(b"no PROXY header in time")
    ali = await ChatClient.connect("ali", server.host, server.port)  # others are not held up
    await ali.close()


# --- TLS: the header comes first, in the clear ---------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def certificate(ca: trustme.CA, tmp_path: Path) -> tuple[str, str]:
    cert = ca.issue_cert("127.0.0.1")
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    return str(cert_file), str(key_file)


def hello_over_tls(
    address: tuple[str, int], header: bytes, context: ssl.SSLContext, name: str
) -> Event:
    """Play a balancer that sends the header and the client's TLS ClientHello in one segment,
    then the client's `hello`; return the server's answer to it."""
    with socket.create_connection(address, timeout=5, source_address=(BALANCER, 0)) as sock:
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = context.wrap_bio(incoming, outgoing, server_hostname=address[0])
        with contextlib.suppress(ssl.SSLWantReadError):
            tls.do_handshake()
        sock.sendall(header + outgoing.read())  # nothing of it may be read as the header's

        def pump() -> None:
            if outgoing.pending:
                sock.sendall(outgoing.read())
            data = sock.recv(65536)
            if not data:
                raise ConnectionError("the server closed the connection")
            incoming.write(data)

        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                pump()
        tls.write(hello(name))
        sock.sendall(outgoing.read())
        conn = Connection(Role.CLIENT)
        while True:
            try:
                data = tls.read(65536)
            except ssl.SSLWantReadError:
                pump()
                continue
            for event in conn.receive_data(data):
                if getattr(event, "ref", None) == 0:
                    return event


async def test_tls_behind_a_balancer_starts_right_after_the_header(
    start: Start, ca: trustme.CA, certificate: tuple[str, str], tmp_path: Path
) -> None:
    cert, key = certificate
    server = await start("--tls-cert", cert, "--tls-key", key)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    context = tls_context(str(ca_file))
    for encode, name in ((encode_v1, "one"), (encode_v2, "two")):
        header = encode(("203.0.113.7", 40000))
        answer = await asyncio.to_thread(
            hello_over_tls, (server.host, server.port), header, context, name
        )
        assert isinstance(answer, Welcome) and answer.name == name, answer
        await server.wait_for_log(f"{name} joined from 203.0.113.7:40000".encode())
    # a client that is no balancer speaks TLS at once, on the same port
    direct = await ChatClient.connect("direct", server.host, server.port, ssl_context=context)
    await server.wait_for_log(b"direct joined from 127.0.0.1:")
    await direct.close()
