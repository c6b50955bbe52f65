"""Accepting connections when load balancers in front of the server speak the PROXY protocol.

asyncio's own server reads (and starts TLS) as soon as it accepts a connection, but a balancer's
connection begins with a PROXY header, and not a byte after it may be read before TLS starts.
So this listener accepts by itself: from a balancer it reads exactly the header off the socket
(it peeks, then takes only the header's bytes), then hands the socket to the loop
(`connect_accepted_socket`, with TLS when configured) and to a new session, which sees the client
address the header named. Other connections are handed over at once, as asyncio's server would.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections.abc import Callable
from typing import Any

from tuichat.server.admission import Networks, parse_address
from tuichat.server.proxy_header import (
    MAX_V2_BODY,
    V2_FIXED,
    ProxyHeader,
    ProxyHeaderError,
    ProxyHeaderParser,
)

log = logging.getLogger("tuichat.server")

PEEK = V2_FIXED + MAX_V2_BODY
"""The most bytes looked at, at once, for a header (the longest header accepted)."""
ACCEPT_RETRY = 1.0
"""Seconds to wait before accepting again when the system refuses (out of file descriptors)."""

SessionFactory = Callable[[tuple[str, int] | None], asyncio.Protocol]
"""Makes the protocol of one connection, given the client address a PROXY header named."""


async def read_proxy_header(sock: socket.socket) -> ProxyHeader:
    """Read a PROXY header off a non-blocking `sock`, and not a byte past it.

    Raises `ProxyHeaderError` (also when the connection ends first) or `OSError`.
    """
    loop = asyncio.get_running_loop()
    parser = ProxyHeaderParser()
    while True:
        try:
            data = sock.recv(PEEK, socket.MSG_PEEK)
        except BlockingIOError:  # wait for more; a byte before the header's end is the header's
            data = await loop.sock_recv(sock, 1)
            if not data:
                raise ProxyHeaderError("the connection ended before its PROXY header") from None
            if (header := parser.receive_data(data)) is not None:
                return header
            continue
        if not data:
            raise ProxyHeaderError("the connection ended before its PROXY header")
        header = parser.receive_data(data)
        _discard(sock, len(data) - len(parser.trailing))
        if header is not None:
            return header


def _discard(sock: socket.socket, count: int) -> None:
    """Take `count` bytes that were peeked at off `sock`."""
    while count > 0:
        taken = len(sock.recv(count))
        if not taken:
            raise ProxyHeaderError("the connection ended inside its PROXY header")
        count -= taken


class ProxyListener:
    """Listening sockets whose connections from `balancers` begin with a PROXY header.

    Like an `asyncio.Server` as the chat server uses one: `sockets`, `close`, `wait_closed`.
    """

    def __init__(
        self,
        sockets: tuple[socket.socket, ...],
        balancers: Networks,
        session: SessionFactory,
        *,
        tls: ssl.SSLContext | None,
        timeout: float,
    ) -> None:
        self.sockets = sockets
        self.balancers = balancers
        self.timeout = timeout
        """Seconds a balancer has to send the header (and a client to finish the TLS handshake)."""
        self._session = session
        self._tls = tls
        self._accepting: list[asyncio.Task[None]] = []
        self._arriving: set[asyncio.Task[None]] = set()

    @classmethod
    async def open(
        cls,
        host: str | None,
        port: int,
        balancers: Networks,
        session: SessionFactory,
        *,
        tls: ssl.SSLContext | None,
        timeout: float,
        backlog: int,
        reuse_port: bool = False,
    ) -> ProxyListener:
        """Listen on every address of `host` (all of them for None or ""), and start accepting."""
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
        sockets: list[socket.socket] = []
        try:
            for family, kind, proto, _, address in dict.fromkeys(infos):
                sock = socket.socket(family, kind, proto)
                sockets.append(sock)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if reuse_port:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.bind(address)
                sock.listen(backlog)
                sock.setblocking(False)
        except OSError:
            for sock in sockets:
                sock.close()
            raise
        listener = cls(tuple(sockets), balancers, session, tls=tls, timeout=timeout)
        listener._accepting = [loop.create_task(listener._accept(s)) for s in sockets]
        return listener

    def close(self) -> None:
        """Stop accepting; connections not handed to a session yet are closed."""
        for task in (*self._accepting, *self._arriving):
            task.cancel()
        for sock in self.sockets:
            sock.close()

    async def wait_closed(self) -> None:
        """Wait until nothing is being accepted any more."""
        await asyncio.gather(*self._accepting, *self._arriving, return_exceptions=True)

    async def _accept(self, listening: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                sock, peer = await loop.sock_accept(listening)
            except (ConnectionAbortedError, InterruptedError):
                continue
            except OSError as exc:  # out of file descriptors or memory, as asyncio's server does
                log.warning("cannot accept connections (%s); trying again in %.0f s",
                            exc.strerror or exc, ACCEPT_RETRY)  # fmt: skip
                await asyncio.sleep(ACCEPT_RETRY)
                continue
            task = loop.create_task(self._arrive(sock, peer))
            self._arriving.add(task)
            task.add_done_callback(self._arriving.discard)

    async def _arrive(self, sock: socket.socket, peer: Any) -> None:
        """Read the header of a balancer's connection, then hand the socket to a session."""
        loop = asyncio.get_running_loop()
        host, port = str(peer[0]), int(peer[1])
        handed = False
        try:
            sock.setblocking(False)
            client = None
            ip = parse_address(host)
            if ip is not None and ip in self.balancers:
                async with asyncio.timeout(self.timeout):
                    header = await read_proxy_header(sock)
                client = header.source
            handshake = self.timeout if self._tls is not None else None
            handed = True  # from here on the transport closes the socket, even on failure
            await loop.connect_accepted_socket(
                lambda: self._session(client), sock, ssl=self._tls, ssl_handshake_timeout=handshake
            )
        except ProxyHeaderError as exc:
            log.info("%s:%d: closing a balancer's connection: %s", host, port, exc)
        except TimeoutError:
            what = "TLS handshake" if handed else "PROXY header"
            log.info("%s:%d: closing a connection: no %s in time", host, port, what)
        except OSError as exc:  # reset, or a failed TLS handshake
            log.debug("%s:%d: connection failed: %s", host, port, exc)
        except Exception:
            log.exception("%s:%d: cannot take the connection", host, port)
        finally:
            if not handed:
                sock.close()
