"""One client's connection: an `asyncio.Protocol` that moves bytes to and from the server."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import sys
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, cast

from tuichat.chat import User
from tuichat.protocol import (
    AnyMessage,
    Bye,
    Challenge,
    Connection,
    Error,
    ErrorCode,
    History,
    MarkRead,
    Pong,
    PrivateHistory,
    ProtocolError,
    Role,
    SetAway,
    Typing,
    Welcome,
)
from tuichat.protocol.auth import new_nonce
from tuichat.server.limits import MAX_PAGE, TokenBucket
from tuichat.server.ownership import TokenLine

if TYPE_CHECKING:
    from tuichat.server.broker import ReadMarker
    from tuichat.server.server import ChatServer

log = logging.getLogger("tuichat.server")

HISTORY_PER_REQUEST = 100
"""A history page costs one request more for every this many messages asked for."""
BACKLOG = 64 * 1024
"""Bytes waiting for one client past which they count against the server-wide ceiling."""
TYPING_RATE, TYPING_BURST = 2.0, 16
"""Typing notices one connection may send per second, and at once: its own bucket, so that
typing never costs the connection's (or its user's, or its address's) requests."""
TYPING_PAUSE_AFTER = 256
"""Typing notices dropped over the bucket before the connection is not read for a second
(a client that types in a loop is slowed down, never disconnected)."""
TYPING_PAUSE = 1.0
TYPING_BACKLOG = 8 * 1024
"""Bytes waiting for one client past which it gets no typing notices (the first thing a slow
reader goes without)."""
NO_LINE = TokenLine(0)
"""The line of a session not welcomed yet (one for all of them)."""


@functools.cache
def _hard_limit(max_pending_write: int) -> int:
    """The most bytes that may wait for a client while a reply is paced (one `int` for all)."""
    return 4 * max_pending_write


class Session(asyncio.Protocol):
    """Feeds what the client sends into its `Connection`; writes what the server sends back.

    While a room's missed messages are being replayed to the client, live frames
    for that room are held back and written after the replay, in order.
    """

    __slots__ = (
        "_closed",
        "_draining",
        "_failed",
        "_hard_limit",
        "_held",
        "_held_bytes",
        "_lost",
        "_nonce",
        "_pacing",
        "_paging",
        "_port",
        "_requests",
        "_strikes",
        "_text_bytes",
        "_typing",
        "_typing_dropped",
        "_writable",
        "_written",
        "client",
        "close_reason",
        "conn",
        "greeting",
        "identity",
        "ip",
        "last_heard",
        "line",
        "marker_key",
        "markers",
        "opened_at",
        "owned",
        "partial_since",
        "ping_outstanding",
        "private_since",
        "server",
        "token_hash",
        "transport",
        "user",
    )
    # Slots, and what most connections never use made only when first needed (the buckets
    # of text, strikes and typing, the replay's held frames, the events and the lock): an
    # idle connection costs a few KiB of the server's memory, most of it the transport's.

    def __init__(self, server: ChatServer, client: tuple[str, int] | None = None) -> None:
        self.server = server
        self.client = client
        """The client's address and port from a balancer's PROXY header (None: the peer's)."""
        self.conn = Connection(Role.SERVER, max_frame=server.config.max_frame)
        self.user: User[Session] | None = None
        self.greeting = False
        """A `hello` is being carried out (its rooms followed, its name registered)."""
        self.token_hash = ""
        """The hash of the resume token this session was given (its device's, on a resume)."""
        self.markers: Sequence[ReadMarker] = ()
        """The user's read markers, read for this session's `welcome`."""
        self.line = NO_LINE
        """What this session's resume token carries (see `TokenLine`), once welcomed."""
        self.marker_key = ""
        """Whose read markers this session reads and moves: the user key, or for a name without
        a key the user key and the session's line (another holder of the name has others)."""
        self.owned = False
        """The session proved the name's key."""
        self.identity = ""
        """The key the session proved (`ed25519:<key>`; "" for a name without one): what bans,
        mutes, ignores and admins are matched by, whatever spelling of the name it chose."""
        self.private_since: int | None = None
        """Private messages with a pid above this are this session's to read (None: none)."""
        self._nonce = new_nonce()
        """The nonce of `challenge` ("" once welcomed: no `hello` can come any more)."""
        self.ip = "?"
        self._port: int | None = None
        self.transport: asyncio.Transport | None = None
        self.close_reason = "disconnect"
        loop = asyncio.get_running_loop()
        self.opened_at = self.last_heard = loop.time()
        self.partial_since: float | None = None
        self.ping_outstanding = False
        rate = server.config.rate
        self._requests = TokenBucket(rate.messages_per_second, rate.message_burst, self.opened_at)
        self._text_bytes: TokenBucket | None = None
        """Made when first needed, like `_strikes` and `_typing`: a bucket made full later is
        the same as one made full now and unused since."""
        self._strikes: TokenBucket | None = None
        self._typing: TokenBucket | None = None
        self._typing_dropped = 0
        self._held: dict[str, deque[bytes]] | None = None
        """Frames held back per room being replayed (None: no room is)."""
        self._held_bytes = 0
        self._written = 0
        """Bytes handed to the transport while pacing (less what it still holds: what was sent);
        0 between paced writes."""
        self._draining = False
        self._failed = False
        self._pacing = 0  # large replies in progress: wait for the client instead of dropping it
        self._writable: asyncio.Event | None = None
        """Set again when the client has read enough (None: nothing waits for it)."""
        self._hard_limit = _hard_limit(server.config.max_pending_write)
        self._paging: asyncio.Lock | None = None
        self._closed: asyncio.Event | None = None
        self._lost = False
        """`connection_lost` came."""

    @property
    def challenge(self) -> Challenge:
        """Sent first: a `hello` that owns its name signs it."""
        return Challenge(nonce=self._nonce, server_id=self.server.server_id)

    @property
    def peer(self) -> str:
        """The client's address and port, for the log ("?" before the connection is made)."""
        return self.ip if self._port is None else f"{self.ip}:{self._port}"

    @property
    def paging(self) -> asyncio.Lock:
        """Held while a page of a replay is read and written: one page in memory per client."""
        if self._paging is None:
            self._paging = asyncio.Lock()
        return self._paging

    @property
    def closed(self) -> asyncio.Event:
        """Set once the connection is lost."""
        if self._closed is None:
            self._closed = asyncio.Event()
            if self._lost:
                self._closed.set()
        return self._closed

    # --- asyncio.Protocol ------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        peer = self.client or transport.get_extra_info("peername")
        if isinstance(peer, tuple):  # (the address is shared by the connections from it)
            self.ip, self._port = sys.intern(str(peer[0])), int(peer[1])
        else:
            self.ip = str(peer)
        self.transport.set_write_buffer_limits(high=self.server.config.max_pending_write)
        refusal = self.server.admit(self)
        if refusal is not None:
            self.fail(refusal, quiet=True)  # the server logs refusals, a few at a time
            return
        self.server.sessions.add(self)
        self.send(self.challenge)

    def data_received(self, data: bytes) -> None:
        if self.conn.finished or self._draining or self._failed:
            return
        now = self.last_heard = asyncio.get_running_loop().time()
        self.ping_outstanding = False
        try:
            events = self.conn.receive_data(data)
        except ProtocolError as exc:
            self.fail(exc)
            return
        if not self.conn.partial_frame:
            self.partial_since = None
        elif events or self.partial_since is None:
            self.partial_since = now  # a frame completed, or one began: its body has time
        for event in events:
            if self._allowed(event, now):
                self.server.handle(self, event)
            if self.conn.finished or self._failed:
                break

    def _allowed(self, event: object, now: float) -> bool:
        """Whether the flood limits let this request through; refuse it (or drop us) if not.

        A `pong` takes a token of this connection's own requests bucket (another connection of
        the address or the user cannot make it fail); a `bye` ends the connection, unlimited.
        """
        if isinstance(event, Bye):
            return True
        if isinstance(event, Pong):
            return self._requests.take(1, now) or self._refuse(event, now)
        if isinstance(event, Typing):
            typing = self._typing
            if typing is None:
                typing = self._typing = TokenBucket(TYPING_RATE, TYPING_BURST, now)
            return typing.take(1, now) or self._typing_over()
        text = event.reason if isinstance(event, SetAway) else getattr(event, "text", None)
        cost = len(text.encode("utf-8", "surrogatepass")) if isinstance(text, str) else 0
        user_key = self.user.key if self.user is not None else None
        requests = 1
        if isinstance(event, History | PrivateHistory):
            requests += min(max(event.limit, 0), MAX_PAGE) // HISTORY_PER_REQUEST
        if (
            self._requests.take(requests, now)
            and (cost == 0 or self._text_bucket(now).take(cost, now))
            and self.server.flood.request(self.ip, user_key, requests, cost, now)
        ):
            return True
        return self._refuse(event, now)

    def _text_bucket(self, now: float) -> TokenBucket:
        bucket = self._text_bytes
        if bucket is None:
            rate = self.server.config.rate
            bucket = self._text_bytes = TokenBucket(rate.bytes_per_second, rate.byte_burst, now)
        return bucket

    def _typing_over(self) -> bool:
        """A typing notice over this connection's own bucket: dropped, unanswered and never a
        strike; past `TYPING_PAUSE_AFTER` of them the connection is not read for a moment.
        Returns False: the notice is not carried out."""
        self._typing_dropped += 1
        transport = self.transport
        if self._typing_dropped >= TYPING_PAUSE_AFTER and transport is not None:
            self._typing_dropped = 0
            transport.pause_reading()
            loop = asyncio.get_running_loop()
            loop.call_later(TYPING_PAUSE, self._resume_after_typing)
        return False

    def _resume_after_typing(self) -> None:
        transport = self.transport
        if transport is not None and not transport.is_closing() and not self.server.stopping:
            transport.resume_reading()

    def _refuse(self, event: object, now: float) -> bool:
        """Refuse a request with `rate_limited` (a `pong` silently) while strikes are left, then
        drop the connection with `flood`. Returns False: the request is not carried out."""
        strikes = self._strikes
        if strikes is None:
            strikes = self._strikes = TokenBucket(1.0, self.server.config.rate.strikes, now)
        if not strikes.take(1, now):
            self.fail(ProtocolError(ErrorCode.FLOOD, "too many requests refused; goodbye"))
            return False
        if isinstance(event, Pong):  # pongs are never answered, not even to refuse them
            return False
        if isinstance(event, MarkRead) and event.ref is None:
            return False  # nobody waits for it: the next one counts (and a refusal would puzzle)
        ref = getattr(event, "ref", None)
        self.send(
            Error(
                code=str(ErrorCode.RATE_LIMITED),
                message="slow down: you are sending faster than this server allows",
                ref=ref,
            )
        )
        return False

    def pause_writing(self) -> None:
        """More than the budget waits to be written: this client reads too slowly; drop it.

        While a large reply is being paced out (`paced_write`), wait for it instead.
        """
        if self._pacing:
            if self._writable is None:
                self._writable = asyncio.Event()
            self._writable.clear()
            return
        log.info("%s: reads too slowly, dropping (it can resume)", self.describe())
        self.abort("slow")

    @property
    def queued(self) -> int:
        """Bytes waiting for this client: written and not yet sent, or held behind a replay."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return 0
        return transport.get_write_buffer_size() + self._held_bytes

    def takes_ephemeral(self, room: str = "") -> bool:
        """Whether this client gets ephemeral frames (typing) now: little waits for it, and
        `room` (if given) is not being replayed to it."""
        held = self._held
        return self.queued <= TYPING_BACKLOG and not (room and held is not None and room in held)

    def resume_writing(self) -> None:
        writable, self._writable = self._writable, None
        if writable is not None:  # (a writer waiting on it holds it)
            writable.set()

    @property
    def _paused(self) -> bool:
        """More than the budget waits for the client (while pacing): wait before writing more."""
        return self._writable is not None and not self._writable.is_set()

    @contextlib.contextmanager
    def pacing(self) -> Iterator[None]:
        """Within it (a replay, between its pages too), a client past its budget is waited
        for, up to `_hard_limit`, instead of being dropped."""
        self._pacing += 1
        try:
            yield
        finally:
            self._pacing -= 1
            if not self._pacing:
                self._written = 0  # (counted only while pacing: see `_sent`)

    async def paced_write(self, frames: Iterable[bytes]) -> None:
        """Write many frames (a replay, a page), waiting whenever the client falls behind; a
        client that stops reading meanwhile is dropped (`_drained`)."""
        with self.pacing():
            for frame in frames:
                if not self.open:
                    return
                self._write(frame)
                if self._paused and not await self._drained():
                    return

    async def _drained(self) -> bool:
        """Wait until the client has read enough for more to be written; return whether it can be.

        A client that reads nothing for `heartbeat_timeout` while it is waited for is dropped as
        slow: its pings keep its heartbeat, yet what waits for it stays in memory.
        """
        stall = self.server.config.heartbeat_timeout
        while (writable := self._writable) is not None and not writable.is_set() and self.open:
            sent = self._sent
            try:
                async with asyncio.timeout(stall):
                    await writable.wait()
            except TimeoutError:
                if self.open and self._sent == sent:
                    log.info(
                        "%s: far behind and read nothing for %.0f s while catching up, "
                        "dropping (it can resume)", self.describe(), stall,
                    )  # fmt: skip
                    self.abort("slow")
        return self.open

    @property
    def _sent(self) -> int:
        """Bytes the transport has handed to the operating system since pacing began (only
        compared while pacing)."""
        transport = self.transport
        return self._written - (0 if transport is None else transport.get_write_buffer_size())

    def eof_received(self) -> bool | None:
        self.conn.receive_eof()
        return None  # let the transport close itself

    def connection_lost(self, exc: Exception | None) -> None:
        self.resume_writing()  # a paced writer waiting on us must not wait forever
        self.server.forget(self)
        self.server.logout(self, self.close_reason)
        self._lost = True
        if self._closed is not None:
            self._closed.set()

    # --- writing ---------------------------------------------------------

    @property
    def open(self) -> bool:
        """Whether frames can still be written to this client."""
        transport = self.transport
        return transport is not None and not transport.is_closing() and not self.conn.we_closed

    def send(self, message: AnyMessage) -> None:
        """Encode and write one message to this client alone."""
        if self.open:
            self._write(self.conn.send(message))
            if type(message) is Welcome:
                self._nonce = ""  # no `hello` is signed from now on

    def write_frame(self, frame: bytes, room: str = "") -> None:
        """Write an already encoded frame (a broadcast shared by many sessions); one for a room
        being replayed waits behind the replay (`hold`), counted as queued."""
        transport = self.transport
        if transport is None or transport.is_closing() or self.conn.we_closed:
            return
        if self._held is None:  # (a room's broadcast to most members: the least work)
            transport.write(frame)
            if self._pacing:
                self._written += len(frame)
            queued = transport.get_write_buffer_size()
            if queued > BACKLOG or queued > self._hard_limit:
                self._check(queued)
            return
        held = self._held.get(room) if room else None
        if held is None:
            self._write(frame)
            return
        held.append(frame)
        self._held_bytes += len(frame)
        self._check(self.queued)

    def _write(self, data: bytes) -> None:
        """Every byte queued for the client counts against its budget, replies too.

        Past the budget the transport calls `pause_writing` (the client is dropped); while a
        reply is paced out, up to `_hard_limit` may wait, frames held behind a replay included.
        """
        assert self.transport is not None
        self.transport.write(data)
        if self._pacing:
            self._written += len(data)
        self._check(self.queued)

    def _check(self, queued: int) -> None:
        """Drop a client with more than `_hard_limit` bytes waiting for it; one past `BACKLOG`
        counts against the server's ceiling on what waits for all clients together."""
        if queued > self._hard_limit:
            log.info("%s: far behind while catching up, dropping (it can resume)", self.describe())
            self.abort("slow")
        elif queued > BACKLOG:
            self.server.backlogged(self, queued)

    def hold(self, room: str) -> None:
        """Hold back live frames for `room` until `release(room)`."""
        if self._held is None:
            self._held = {}
        self._held.setdefault(room, deque())

    async def release(self, room: str) -> None:
        """Write the frames held back for `room`, paced, then write the next ones at once.

        Frames held while these are written join the end of the line, so the order stays.
        """
        held = self._held.get(room) if self._held is not None else None
        if held is None:
            return
        try:
            with self.pacing():
                while self.open:
                    if self._paused:
                        await self._drained()
                    elif held:
                        frame = held.popleft()
                        self._held_bytes -= len(frame)
                        self._write(frame)
                    else:
                        break
        finally:
            if self._held is not None:  # `held` was found empty just now: nothing overtakes
                self._held.pop(room, None)
                if not self._held:
                    self._held = None
            self._held_bytes -= sum(map(len, held))
            held.clear()

    def fail(self, exc: ProtocolError, *, quiet: bool = False) -> None:
        """Tell the client why, then close: the stream from it cannot be trusted."""
        self._failed = True
        if not quiet:
            log.info("%s: closing after protocol error: %s", self.describe(), exc)
        self.send(Error(code=str(exc.code), message=exc.detail, fatal=True, ref=exc.ref))
        self.close("disconnect")

    def finish(self, reason: str) -> None:
        """Send what is written, then end our side; read and discard until the client closes."""
        self.close_reason = reason
        self._draining = True
        transport = self.transport
        if transport is not None and not transport.is_closing():
            if transport.can_write_eof():  # TLS cannot half-close
                with contextlib.suppress(OSError):  # the peer may be gone already
                    transport.write_eof()
            transport.resume_reading()

    def close(self, reason: str) -> None:
        """Close the connection once what was written has been sent."""
        self.close_reason = reason
        if self.transport is not None:
            self.transport.close()

    def abort(self, reason: str) -> None:
        """Drop the connection at once, discarding what waits to be written."""
        self.close_reason = reason
        if self.transport is not None:
            self.transport.abort()

    def describe(self) -> str:
        """Return who this is, for the log."""
        return f"{self.user.name} ({self.peer})" if self.user else self.peer
