"""Support for app tests: apps wired to a real server (or to a fake one that says whatever a
test tells it to), with a fixed clock and time zone; what the screen shows, as text."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import io
import itertools
from collections.abc import Callable
from datetime import UTC
from typing import Any

import msgpack
from rich.console import Console
from textual.app import App
from textual.pilot import Pilot

from tuichat.app.app import ChatApp
from tuichat.app.bidi import Bidi, Mode
from tuichat.app.config import Config
from tuichat.app.i18n import plain
from tuichat.app.widgets.chat_input import ChatInput
from tuichat.app.widgets.chat_log import ChatLog
from tuichat.app.widgets.sidebar import Sidebar
from tuichat.client import Backoff, ChatClient, SigningKey
from tuichat.protocol import (
    Ack,
    AnyMessage,
    Bye,
    Challenge,
    Codec,
    Connection,
    Error,
    Event,
    Hello,
    History,
    HistoryPage,
    Join,
    Message,
    Ping,
    Pong,
    PrivateHistory,
    PrivatePage,
    Role,
    RoomState,
    Send,
    Welcome,
    encode_frame,
)

FIXED_MS = 1_767_269_400_000  # 2026-01-01 12:10 UTC
TIMEOUT = 10.0


def fixed_clock() -> int:
    return FIXED_MS


def make_app(
    address: tuple[str, int],
    name: str,
    *,
    reconnect: bool = False,
    key: SigningKey | None = None,
    config: Config | None = None,
    bidi: Bidi | None = None,
    ask_bidi: bool = False,
    bidi_answered: Callable[[Mode], None] | None = None,
) -> ChatApp:
    """An app for `name` connected to the server at `address`, with time frozen. With `key`
    it signs in with it, as the real app does with the key of its identity file (so another
    client with the same key is another device of the same person); with `config`, the
    settings file's choices; with `bidi`, its way of drawing right-to-left text."""
    host, port = address

    async def connector(user: str) -> ChatClient:
        return await ChatClient.connect(
            user, host, port, reconnect=reconnect, backoff=Backoff(first=0.05, cap=0.2), key=key
        )

    return ChatApp(
        connector,
        name,
        server_label=host,
        tz=UTC,
        ping_interval=None,
        clock=fixed_clock,
        config=config,
        bidi=bidi,
        ask_bidi=ask_bidi,
        bidi_answered=bidi_answered,
    )


async def until(
    pilot: Pilot[object], condition: Callable[[], bool], timeout: float = TIMEOUT
) -> None:
    """Let the app run until `condition()` holds; fail after `timeout` seconds."""
    async with asyncio.timeout(timeout):
        while not condition():
            await pilot.pause()
            await asyncio.sleep(0)


async def send_line(pilot: Pilot[Any], line: str) -> None:
    """Send `line` from the composer, as if typed and sent with Enter (set at once: for tests
    that are not about typing)."""
    pilot.app.query_one(ChatInput).value = line
    await pilot.press("enter")


def log_texts(app: ChatApp) -> list[str]:
    """The texts of the log entries shown (without the invisible isolates the app puts around
    names and rooms in its own sentences)."""
    return [plain(entry.text) for entry in app.query_one(ChatLog).entries]


def shown_texts(app: ChatApp) -> list[str]:
    """The texts of the log entries on screen: `log_texts` less the hidden ones (messages of
    people the user ignores)."""
    return [plain(entry.text) for entry in app.query_one(ChatLog).entries if not entry.hidden]


def sidebar_users(app: ChatApp) -> tuple[str, ...]:
    return app.query_one(Sidebar).users


def sidebar_counts(app: ChatApp) -> dict[str, tuple[int, int]]:
    """What the sidebar shows of each conversation: its unread count and its mentions."""
    return {c.name: (c.unread, c.mentions) for c in app.query_one(Sidebar).conversations}


def connected(app: ChatApp) -> bool:
    """Connected, and the first page of history of every conversation is in."""
    return (
        app.client is not None
        and app.client.connected
        and bool(app.rooms)
        and all(view.pages_loaded for view in (*app.rooms.values(), *app.privates.values()))
    )


def rendered(app: App[Any]) -> tuple[str, str]:
    """What the terminal gets for the whole screen: its text, and the bytes written to draw it
    (escape sequences for colours and cursor moves included)."""
    width, height = app.size
    out = io.StringIO()
    console = Console(
        width=width,
        height=height,
        file=out,
        force_terminal=True,
        color_system="truecolor",
        record=True,
        legacy_windows=False,
        safe_box=False,
    )
    screen = app.screen
    update = screen._compositor.render_update(full=True, screen_stack=app._background_screens)
    console.print(update)
    return console.export_text(styles=False), out.getvalue()


Answer = Callable[[Event], list[AnyMessage]]


class FakeServer:
    """A server that speaks the wire protocol but says what the test makes it say.

    It welcomes the first `hello` with `welcome` (or answers it as `on_hello` says), answers
    `history`, `private_history`, `send`, `join` and `ping` plausibly, and `send()` pushes any
    frame, whatever its values. Frames are encoded as they are, never checked: that is the
    point.
    """

    def __init__(self, welcome: Welcome) -> None:
        self.welcome = welcome
        self.on_hello: Answer | None = None
        self.on_history: Callable[[History], HistoryPage] = lambda h: HistoryPage(
            room=h.room, epoch=1, messages=(), complete=True
        )
        self.received: list[Event] = []
        """What the app sent, decoded."""
        self.address: tuple[str, int] = ("127.0.0.1", 0)
        self._server: asyncio.Server | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._seq = itertools.count(1_000_000)

    async def start(self) -> tuple[str, int]:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.address = self._server.sockets[0].getsockname()[:2]
        return self.address

    async def stop(self) -> None:
        if self._writer is not None:
            self._writer.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def send(self, *messages: AnyMessage) -> None:
        """Push frames to the app."""
        assert self._writer is not None, "the app is not connected"
        self._writer.write(b"".join(encode_frame(Codec.encode(m)) for m in messages))

    def send_map(self, *values: Any) -> None:
        """Push msgpack values of our own making."""
        assert self._writer is not None, "the app is not connected"
        self._writer.write(b"".join(encode_frame(msgpack.packb(v)) for v in values))

    async def drain(self) -> None:
        assert self._writer is not None
        await self._writer.drain()

    def hang_up(self) -> None:
        """Close the connection."""
        if self._writer is not None:
            self._writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writer = writer
        conn = Connection(Role.SERVER)
        writer.write(encode_frame(Codec.encode(Challenge(nonce="n" * 32, server_id="fake"))))
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                for event in conn.receive_data(data):
                    self.received.append(event)
                    for answer in self._answer(event):
                        if isinstance(answer, Welcome):
                            writer.write(conn.send(answer))  # the session is open
                        else:
                            writer.write(encode_frame(Codec.encode(answer)))
                    if isinstance(event, Bye):
                        writer.close()
                        return

    def _answer(self, event: Event) -> list[AnyMessage]:
        ref = getattr(event, "ref", None)
        if isinstance(event, Hello):
            if self.on_hello is not None:
                return self.on_hello(event)
            return [dataclasses.replace(self.welcome, ref=ref)]
        if isinstance(event, History):
            page = self.on_history(event)
            return [HistoryPage(page.room, page.epoch, page.messages, page.complete, ref=ref)]
        if isinstance(event, PrivateHistory):
            return [PrivatePage(event.name, (), complete=True, ref=ref)]
        if isinstance(event, Send):
            seq, ts = next(self._seq), FIXED_MS
            message = Message(event.room, seq, self.welcome.name, event.text, ts, event.action)
            return [Ack(event.room, seq, ts, event.id, ref=ref), message]
        if isinstance(event, Join):
            return [RoomState(event.room, (self.welcome.name,), ref=ref)]
        if isinstance(event, Ping):
            return [Pong(event.data, ref=ref)]
        if isinstance(event, Bye):
            return [Bye(ref=ref)]
        if ref is not None:
            return [Error("unknown_type", "not here", ref=ref)]
        return []


def make_fake_app(server: FakeServer, name: str = "ali") -> ChatApp:
    """An app for `name` connected to a fake server, with time frozen."""
    return make_app(server.address, name)
