"""Accepting connections by ourselves: the PROXY protocol of load balancers, and running out of
file descriptors.

asyncio's own server reads (and starts TLS) as soon as it accepts a connection, but a balancer's
connection begins with a PROXY header, and not a byte after it may be read before TLS starts.
So this listener accepts by itself: from a balancer it reads exactly the header off the socket
(it peeks, then takes only the header's bytes), then hands the socket to the loop
(`connect_accepted_socket`, with TLS when configured) and to a new session, which sees the client
address the header named. Other connections are handed over at once, as asyncio's server would.

Out of file descriptors (`EMFILE`, or `ENFILE` for the whole system), neither event loop says so
plainly: asyncio logs "socket.accept() out of system resource" with a traceback every second
and leaves the connections waiting in the backlog; uvloop (libuv) accepts and closes them at
once, saying nothing at all. This listener logs, at most every `REPORT_EVERY` seconds, that the
server is out of file descriptors, how many connections it holds and the open-file limit, and
once it can accept again, that it has recovered. Meanwhile, like libuv, it keeps one file in
reserve to accept the connections waiting with: each is told `server_full` (unless it speaks
TLS) and closed, so that its client hears why and tries again later rather than wait in the
backlog for a server that cannot take it. Without the reserve it stops accepting for
`ACCEPT_RETRY`. The connections it holds are served all along.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import resource
import socket
import ssl
from collections.abc import Callable
from typing import Any

from tuichat.protocol import Codec, Error, ErrorCode, encode_frame
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
"""Seconds to wait before accepting again when the system refuses (out of memory, or out of
file descriptors with no file in reserve)."""
ACCEPT_BATCH = 1024
"""Connections accepted at most in one turn of the event loop (then the others run)."""
REPORT_EVERY = 5.0
"""Seconds between two log lines about being unable to accept connections."""
OUT_OF_FILES = (errno.EMFILE, errno.ENFILE)
OUT_OF_RESOURCES = (*OUT_OF_FILES, errno.ENOBUFS, errno.ENOMEM)
"""What `accept` fails with when the server cannot take any connection now; others are the
connection's own (Linux hands its pending network errors to `accept`): it is skipped."""
SERVER_FULL = encode_frame(
    Codec.encode(
        Error(
            code=str(ErrorCode.SERVER_FULL),
            message="the server cannot take more connections now; try again later",
            fatal=True,
        )
    )
)
"""What a connection accepted with the reserve file is told before it is closed."""

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


class Shortage:
    """Says that connections cannot be accepted (at most every `REPORT_EVERY` seconds, with how
    many were turned away meanwhile), and once one is accepted again, that it is over."""

    def __init__(self, connections: Callable[[], int] | None = None) -> None:
        self.connections = connections
        """How many connections the server holds (None: not said)."""
        self.since: float | None = None
        """When connections could not be accepted any more (None: they can)."""
        self.turned_away = 0
        """Connections told `server_full` since the last line about it."""
        self.turned_away_in_all = 0
        self._reported = float("-inf")

    def failed(self, exc: OSError, now: float, *, waiting: bool) -> None:
        """An accept failed with `exc`; `waiting`: new connections are left in the backlog
        (else they are turned away)."""
        if self.since is None:
            self.since = now
        if now - self._reported < REPORT_EVERY:
            return
        self._reported = now
        count, self.turned_away = self.turned_away, 0
        if exc.errno not in OUT_OF_FILES:
            log.error("cannot accept connections (%s); trying again in %.0f s",
                      exc.strerror or exc, ACCEPT_RETRY)  # fmt: skip
            return
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        which = (
            f"the system's table of open files is full (ENFILE: fs.file-max); this process's "
            f"open-file limit is {soft}"
            if exc.errno == errno.ENFILE
            else f"the open-file limit (ulimit -n) is {soft} (hard limit {hard})"
        )
        fate = (
            f"new connections wait (trying again every {ACCEPT_RETRY:.0f} s)"
            if waiting
            else "new connections are told the server is full and closed"
            + (f" ({count} since the last such line)" if count else "")
        )
        log.error(
            "OUT OF FILE DESCRIPTORS: cannot accept new connections: %s; holding %s; %s; the "
            "connections already open are served. Raise the limit (ulimit -n, or LimitNOFILE= "
            "for systemd) or lower --max-connections",
            which, self._holding(), fate,
        )  # fmt: skip

    def turn_away(self) -> None:
        """A connection was told `server_full` and closed."""
        self.turned_away += 1
        self.turned_away_in_all += 1

    def accepted(self, now: float) -> None:
        """A connection was accepted after a while when none could be: say it is over."""
        assert self.since is not None
        log.warning(
            "accepting connections again: holding %s; none could be accepted for %.1f s "
            "(connections turned away meanwhile: %d)", self._holding(), now - self.since,
            self.turned_away_in_all,
        )  # fmt: skip
        self.since = None
        self.turned_away = self.turned_away_in_all = 0
        self._reported = float("-inf")

    def _holding(self) -> str:
        held = "" if self.connections is None else f"{self.connections()} connections, "
        return f"{held}{_open_files()} open files"


def _open_files() -> str:
    """How many files this process has open ("?" if it cannot tell)."""
    try:
        return str(len(os.listdir("/proc/self/fd")) - 1)  # (less the one listing them)
    except OSError:
        return "?"


def _reserve() -> int | None:
    """A file held in reserve, to be closed when out of file descriptors (None: none left)."""
    try:
        return os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None


class Listener:
    """Listening sockets that accept by themselves; connections from `balancers` begin with a
    PROXY header. Out of file descriptors, it says so (see the module) and keeps serving.

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
        connections: Callable[[], int] | None = None,
    ) -> None:
        self.sockets = sockets
        self.balancers = balancers
        self.timeout = timeout
        """Seconds a balancer has to send the header (and a client to finish the TLS handshake)."""
        self.shortage = Shortage(connections)
        self._session = session
        self._tls = tls
        self._arriving: set[asyncio.Task[None]] = set()
        self._paused: dict[socket.socket, asyncio.TimerHandle] = {}
        self._reserve: int | None = None
        self._closed = False

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
        connections: Callable[[], int] | None = None,
    ) -> Listener:
        """Listen on every address of `host` (all of them for None or ""), and start accepting.

        `connections`: how many connections the server holds (for the log when out of files).
        """
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
        listener = cls(
            tuple(sockets), balancers, session, tls=tls, timeout=timeout, connections=connections
        )
        listener._reserve = _reserve()
        for sock in sockets:
            loop.add_reader(sock.fileno(), listener._readable, sock)
        return listener

    def close(self) -> None:
        """Stop accepting; connections not handed to a session yet are closed."""
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        for sock in self.sockets:
            paused = self._paused.pop(sock, None)
            if paused is None:
                loop.remove_reader(sock.fileno())
            else:
                paused.cancel()
        for task in self._arriving:
            task.cancel()
        for sock in self.sockets:
            sock.close()
        if self._reserve is not None:
            os.close(self._reserve)
            self._reserve = None

    async def wait_closed(self) -> None:
        """Wait until nothing is being accepted any more."""
        await asyncio.gather(*self._arriving, return_exceptions=True)

    def _readable(self, listening: socket.socket) -> None:
        """Accept what waits on `listening` (up to `ACCEPT_BATCH`; the loop calls again)."""
        loop = asyncio.get_running_loop()
        for _ in range(ACCEPT_BATCH):
            try:
                sock, peer = listening.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno not in OUT_OF_RESOURCES:  # that connection failed (aborted, say)
                    continue
                self._cannot_accept(listening, exc)  # out of file descriptors or memory
                return
            if self.shortage.since is not None:
                self.shortage.accepted(loop.time())
            task = loop.create_task(self._arrive(sock, peer))
            self._arriving.add(task)
            task.add_done_callback(self._arriving.discard)

    def _cannot_accept(self, listening: socket.socket, exc: OSError) -> None:
        """Say so (now and then); turn away what waits, or stop accepting for a while."""
        loop = asyncio.get_running_loop()
        reserve = self._reserve
        if exc.errno in OUT_OF_FILES and reserve is not None:
            os.close(reserve)  # one file to accept with (and to count the open ones with)
            self._reserve = None
            used = self._turn_away(listening)
            self.shortage.failed(exc, loop.time(), waiting=False)
            self._reserve = _reserve()
            if used and self._reserve is not None:
                return  # what waited was told and closed; the loop calls again for more
        else:
            self.shortage.failed(exc, loop.time(), waiting=True)
        loop.remove_reader(listening.fileno())  # the loop would call again at once
        self._paused[listening] = loop.call_later(ACCEPT_RETRY, self._resume, listening)

    def _turn_away(self, listening: socket.socket) -> bool:
        """Accept what waits, one file at a time, to tell it `server_full` and close it; return
        whether the file could be used (another thread may have taken it)."""
        for _ in range(ACCEPT_BATCH):
            try:
                sock, _ = listening.accept()
            except (BlockingIOError, InterruptedError):
                return True
            except OSError as exc:
                if exc.errno not in OUT_OF_RESOURCES:
                    continue
                return False
            with sock, contextlib.suppress(OSError):
                sock.setblocking(False)
                with contextlib.suppress(BlockingIOError):
                    sock.recv(4096)  # a `hello` unread would make the close a reset
                if self._tls is None:
                    sock.send(SERVER_FULL)
                sock.shutdown(socket.SHUT_WR)
            self.shortage.turn_away()
        return True

    def _resume(self, listening: socket.socket) -> None:
        del self._paused[listening]
        if not self._closed:
            if self._reserve is None:
                self._reserve = _reserve()
            asyncio.get_running_loop().add_reader(listening.fileno(), self._readable, listening)

    async def _arrive(self, sock: socket.socket, peer: Any) -> None:
        """Read the header of a balancer's connection, then hand the socket to a session."""
        loop = asyncio.get_running_loop()
        host, port = str(peer[0]), int(peer[1])
        handed = False
        try:
            sock.setblocking(False)
            client = None
            if self.balancers and (ip := parse_address(host)) is not None and ip in self.balancers:
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


ProxyListener = Listener
"""The name the server knew this listener by (when it took only balancers' connections)."""
