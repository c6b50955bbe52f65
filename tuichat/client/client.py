"""An asyncio client for tuichat servers: requests as coroutines, everything else as events."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import secrets
import ssl
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from tuichat import DEFAULT_PORT
from tuichat.protocol import (
    SERVER_MESSAGE_TYPES,
    Ack,
    AnyMessage,
    Bye,
    Connection,
    Error,
    Event,
    Hello,
    Join,
    ListRooms,
    Part,
    Parted,
    Ping,
    Pong,
    Private,
    PrivateMessage,
    ProtocolError,
    Role,
    RoomInfo,
    RoomList,
    RoomState,
    Send,
    ServerMessage,
    UserList,
    Welcome,
    Who,
)

READ_SIZE = 256 * 1024
T = TypeVar("T")


class ClientError(Exception):
    """Base class of the errors this library raises."""


class RequestFailed(ClientError):
    """The server answered a request with an `error`; `code` says why (see PROTOCOL.md)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{message} ({code})")
        self.code = code
        self.message = message


class ConnectionClosed(ClientError):
    """The connection ended before the server answered."""


@dataclass(frozen=True, slots=True)
class Disconnected:
    """The last event of every client: the connection is gone, and why."""

    reason: str
    clean: bool


ClientEvent = ServerMessage | Disconnected


class ChatClient:
    """A connected, welcomed tuichat session. Create it with `ChatClient.connect`.

    Requests (`send`, `private`, `join`, ...) return the server's reply or raise
    `RequestFailed`. Everything the server pushes (messages, joins, leaves,
    notices, errors not tied to a request, the server's `bye`) arrives through
    `async for event in client`, which ends after a `Disconnected` event.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._conn = Connection(Role.CLIENT)
        self._events: asyncio.Queue[ClientEvent] = asyncio.Queue()
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._next_ref = 0
        self._closed = False
        self._reader_task = asyncio.get_running_loop().create_task(
            self._read_loop(), name="tuichat-read"
        )
        self.welcome: Welcome | None = None

    # --- connecting ------------------------------------------------------

    @classmethod
    async def connect(
        cls,
        name: str,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        *,
        ssl_context: ssl.SSLContext | None = None,
        timeout: float = 10.0,
        client_name: str = "tuichat",
    ) -> ChatClient:
        """Connect, say hello as `name` and return the welcomed client.

        Raises `OSError` if the server cannot be reached, `RequestFailed` if it
        refuses the name (codes `invalid_name`, `name_taken`), and `TimeoutError`.
        """
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, port, ssl=ssl_context)
            client = cls(reader, writer)
            try:
                welcome = await client._request(Hello(name=name, client=client_name), Welcome)
            except BaseException:
                await client.abort()
                raise
        client.welcome = welcome
        return client

    @property
    def name(self) -> str:
        """Our name as the server spells it."""
        assert self.welcome is not None
        return self.welcome.name

    @property
    def connected(self) -> bool:
        """Whether the connection is still up."""
        return not self._closed

    # --- requests --------------------------------------------------------

    async def send(self, room: str, text: str, *, action: bool = False, id: str = "") -> Ack:
        """Post to a room; return the acknowledgement with the message's sequence number."""
        return await self._request(
            Send(room=room, text=text, action=action, id=id or new_message_id()), Ack
        )

    async def private(self, to: str, text: str, *, action: bool = False) -> PrivateMessage:
        """Send a private message; return the server's copy of it."""
        return await self._request(
            Private(to=to, text=text, action=action, id=new_message_id()), PrivateMessage
        )

    async def join(self, room: str) -> RoomState:
        """Join (or create) a room; return who is in it."""
        return await self._request(Join(room=room), RoomState)

    async def part(self, room: str) -> None:
        """Leave a room."""
        await self._request(Part(room=room), Parted)

    async def list_rooms(self) -> tuple[RoomInfo, ...]:
        """Return every room with its member count."""
        return (await self._request(ListRooms(), RoomList)).rooms

    async def who(self, room: str = "") -> tuple[str, ...]:
        """Return who is online in `room`, or on the whole server."""
        return (await self._request(Who(room=room), UserList)).users

    async def ping(self) -> float:
        """Return the round-trip time to the server, in seconds."""
        started = time.perf_counter()
        await self._request(Ping(data=0), Pong)
        return time.perf_counter() - started

    async def close(self, timeout: float = 5.0) -> None:
        """Say goodbye, wait for the server to close, then close our end."""
        if not self._closed:
            with contextlib.suppress(OSError, ClientError, TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._request(Bye(), Bye)
                    await self._reader_task
        await self.abort()

    async def abort(self) -> None:
        """Drop the connection at once, without a goodbye."""
        self._writer.close()
        with contextlib.suppress(OSError):
            await self._writer.wait_closed()
        self._reader_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader_task
        self._finish("closed by us", clean=True)

    async def __aenter__(self) -> ChatClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # --- events ----------------------------------------------------------

    async def next_event(self) -> ClientEvent:
        """Return the next event (after `Disconnected`, keep returning it)."""
        event = await self._events.get()
        if isinstance(event, Disconnected):
            self._events.put_nowait(event)
        return event

    async def next_events(self, limit: int = 4096) -> list[ClientEvent]:
        """Wait for at least one event; return it with those already waiting (up to `limit`)."""
        batch = [await self.next_event()]
        queue = self._events
        while len(batch) < limit and not queue.empty() and not isinstance(batch[-1], Disconnected):
            batch.append(queue.get_nowait())
        if isinstance(batch[-1], Disconnected) and queue.empty():
            queue.put_nowait(batch[-1])
        return batch

    async def __aiter__(self) -> AsyncIterator[ClientEvent]:
        while True:
            event = await self.next_event()
            yield event
            if isinstance(event, Disconnected):
                return

    # --- internals -------------------------------------------------------

    async def _request(self, message: AnyMessage, reply_type: type[T]) -> T:
        if self._closed:
            raise ConnectionClosed("the connection is closed")
        self._next_ref += 1
        ref = self._next_ref
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[ref] = future
        try:
            self._writer.write(self._conn.send(_with_ref(message, ref)))
            await self._writer.drain()
            reply = await future
        finally:
            self._pending.pop(ref, None)
        if not isinstance(reply, reply_type):
            raise ClientError(f"expected {reply_type.__name__}, got {type(reply).__name__}")
        return reply

    async def _read_loop(self) -> None:
        reason, clean = "the server closed the connection", False
        try:
            while True:
                data = await self._reader.read(READ_SIZE)
                if not data:
                    self._conn.receive_eof()
                    break
                for event in self._conn.receive_data(data):
                    if isinstance(event, Bye):
                        reason, clean = event.message or event.reason, True
                    self._dispatch(event)
        except ProtocolError as exc:
            reason = f"protocol error from the server: {exc}"
        except OSError as exc:
            reason = f"connection lost: {exc.strerror or exc}"
        finally:
            self._finish(reason, clean)

    def _dispatch(self, event: Event) -> None:
        if not isinstance(event, SERVER_MESSAGE_TYPES):
            return  # InvalidMessage: a newer server's message type we do not know
        if isinstance(event, Ping):
            self._writer.write(self._conn.send(Pong(data=event.data, ref=event.ref)))
            return
        ref = getattr(event, "ref", None)
        future = self._pending.get(ref) if ref is not None else None
        if future is not None and not future.done():
            if isinstance(event, Error):
                future.set_exception(RequestFailed(event.code, event.message))
            else:
                future.set_result(event)
            if not isinstance(event, PrivateMessage):
                return
        self._events.put_nowait(event)

    def _finish(self, reason: str, clean: bool) -> None:
        if self._closed:
            return
        self._closed = True
        for future in self._pending.values():
            if not future.done():
                future.set_exception(ConnectionClosed(reason))
        self._events.put_nowait(Disconnected(reason, clean))


def _with_ref(message: AnyMessage, ref: int) -> AnyMessage:
    with_ref: AnyMessage = dataclasses.replace(cast(Any, message), ref=ref)
    return with_ref


def new_message_id() -> str:
    """Return a fresh client-made message id."""
    return secrets.token_hex(8)
