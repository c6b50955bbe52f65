"""Every limit and timeout of the server, hit by an abusive connection while others keep chatting.

Each test shows the documented error code (and whether it is fatal), and that a
well-behaved `ChatClient` on the same server sends and receives during the abuse
and after it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator
from typing import Any

import msgpack
import pytest

from tests.helpers import events_until, expect
from tests.raw import Raw, open_raw
from tests.server_process import start_server_process
from tuichat.bench.servers import resident_bytes
from tuichat.client import ChatClient, RequestFailed
from tuichat.protocol import (
    DEFAULT_MAX_FRAME,
    Ack,
    Codec,
    Error,
    Event,
    Left,
    MarkRead,
    Message,
    Ping,
    Pong,
    PrivateMessage,
    Send,
    encode_frame,
)
from tuichat.server import ChatServer, ServerConfig
from tuichat.server.config import RateLimits

HELLO_TIMEOUT = 0.5
FRAME_TIMEOUT = 0.5
TICK = min(HELLO_TIMEOUT, FRAME_TIMEOUT) / 4
"""How often the server checks its timeouts (a quarter of the shortest one)."""
SLACK = 0.75
"""How much later than its timeout a drop may come on a busy test machine."""

BASE = ServerConfig(
    host="127.0.0.1",
    port=0,
    server_name="limits",
    hello_timeout=HELLO_TIMEOUT,
    frame_timeout=FRAME_TIMEOUT,
    rate=RateLimits.unlimited(),
)


class Lab:
    """A server with small limits, the clients that chat on it and the raw connections."""

    def __init__(self) -> None:
        self.server: ChatServer | None = None
        self.clients: list[ChatClient] = []
        self.raws: list[Raw] = []

    async def start(self, **overrides: Any) -> ChatServer:
        self.server = ChatServer(dataclasses.replace(BASE, **overrides))
        await self.server.start()
        return self.server

    async def user(self, name: str) -> ChatClient:
        assert self.server is not None
        client = await ChatClient.connect(name, *self.server.address)
        self.clients.append(client)
        return client

    async def raw(self, source: str = "127.0.0.1") -> Raw:
        assert self.server is not None
        raw = await open_raw(*self.server.address, source=source)
        self.raws.append(raw)
        return raw

    async def close(self) -> None:
        for raw in self.raws:
            raw.writer.close()
        for client in self.clients:
            await client.abort()
        if self.server is not None:
            await self.server.stop()


@pytest.fixture
async def lab() -> AsyncIterator[Lab]:
    lab = Lab()
    yield lab
    await lab.close()


async def chats(sender: ChatClient, receiver: ChatClient, text: str) -> None:
    """`sender` posts to the lobby: it is acknowledged and `receiver` gets it."""
    ack = await sender.send("#lobby", text)
    message = await expect(receiver, Message, text=text)
    assert (message.sender, message.seq) == (sender.name, ack.seq)


async def fatal_end(raw: Raw) -> Error:
    """The connection ends with one fatal error, its last frame; return that error."""
    events = await raw.rest()
    assert events, "the server closed the connection without a word"
    last = events[-1]
    assert isinstance(last, Error) and last.fatal, events
    assert not [e for e in events[:-1] if isinstance(e, Error) and e.fatal], events
    return last


async def ali_and_bob(lab: Lab, **overrides: Any) -> tuple[ChatClient, ChatClient]:
    await lab.start(**overrides)
    return await lab.user("ali"), await lab.user("bob")


# --- frames ---------------------------------------------------------------------------------


async def test_an_oversized_frame_is_refused_from_its_header_alone(lab: Lab) -> None:
    ali, bob = await ali_and_bob(lab)
    raw = await lab.raw()
    raw.write((DEFAULT_MAX_FRAME + 1).to_bytes(4, "big"))  # the header only: no body follows
    await chats(bob, ali, "during")
    error = await fatal_end(raw)
    assert error.code == "frame_too_large"
    await chats(bob, ali, "after")
    # a frame of exactly the limit is fine (an unknown key pads it)
    fits = await lab.raw()
    bare = len(msgpack.packb({"type": "ping", "data": 7, "ref": 1, "pad": ""}))
    pad = "x" * (DEFAULT_MAX_FRAME - bare - 2)  # a str of 256+ bytes has a 2-byte longer head
    body = msgpack.packb({"type": "ping", "data": 7, "ref": 1, "pad": pad})
    assert len(body) == DEFAULT_MAX_FRAME
    fits.write(encode_frame(body))
    assert await fits.reply(1) == Pong(data=7, ref=1)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"\x91" * 60_000 + b"\xc0", id="60000-deep-array"),
        pytest.param(
            b"\x82\xa4type\xa4ping\xa1x"  # {"type": "ping", "x": {"x": {"x": ...}}}
            + b"\x81\xa1x" * 5000
            + b"\xc0",
            id="5000-deep-map-in-a-ping",
        ),
        pytest.param(b"\xdd\xff\xff\xff\xff", id="array-of-4G-items"),
        pytest.param(b"\xdf\xff\xff\xff\xff", id="map-of-4G-pairs"),
        pytest.param(b"\xdb\xff\xff\xff\xff" + b"x" * 100, id="str-of-4GB"),
        pytest.param(b"\xc6\x7f\xff\xff\xff" + b"x" * 100, id="bin-of-2GB"),
    ],
)
async def test_deep_or_huge_msgpack_is_a_bad_frame(lab: Lab, body: bytes) -> None:
    ali, bob = await ali_and_bob(lab)
    raw = await lab.raw()
    await raw.hello("mallory")
    started = asyncio.get_running_loop().time()
    raw.write(encode_frame(body))
    error = await fatal_end(raw)
    assert error.code == "bad_frame"
    assert asyncio.get_running_loop().time() - started < 2  # refused, not chewed on
    left = await expect(ali, Left, name="mallory")
    assert left.reason == "disconnect"
    await chats(bob, ali, "after")


WRONG_TYPES: list[tuple[Any, int | None]] = [
    ({"type": "send", "room": 5, "text": "hi", "ref": 1}, 1),
    ({"type": "send", "room": "#lobby", "text": b"hi", "ref": 2}, 2),  # bin for str
    ({"type": "send", "room": "#lobby", "text": "hi", "action": 1, "ref": 3}, 3),
    ({"type": "send", "room": "#lobby", "text": None, "ref": 4}, 4),
    ({"type": "send", "room": "#lobby", "ref": 5}, 5),  # required text missing
    ({"type": "join", "room": ["#dev"], "ref": 6}, 6),
    ({"type": "history", "room": "#lobby", "limit": 1.5, "ref": 7}, 7),
    ({"type": "send", "room": "#lobby", "text": "hi", "ref": "8"}, None),  # a str ref is no ref
    ({"type": 9, "ref": 9}, 9),
    ({"ref": 10}, 10),  # no type
    ([1, 2, 3], None),  # not a map
    ("send", None),
]


async def test_wrong_field_types_are_bad_messages_and_the_connection_stays(lab: Lab) -> None:
    ali, bob = await ali_and_bob(lab)
    raw = await lab.raw()
    await raw.hello("mallory")
    raw.send_map(*(value for value, _ in WRONG_TYPES))
    await chats(bob, ali, "during")
    for value, ref in WRONG_TYPES:
        error = await raw.next_error()
        assert (error.code, error.fatal, error.ref) == ("bad_message", False, ref), value
    # still connected, still welcome: a correct send is posted, and it is the only one
    raw.send(Send(room="#lobby", text="sorry, fixed my client", ref=11))
    ack = await raw.reply(11)
    assert isinstance(ack, Ack)
    seen = await events_until(ali, Message, text="sorry, fixed my client")
    assert [m.text for m in seen if isinstance(m, Message) and m.sender == "mallory"] == [
        "sorry, fixed my client"
    ]
    await chats(bob, ali, "after")


async def test_an_unknown_type_is_refused_and_the_connection_stays(lab: Lab) -> None:
    ali, bob = await ali_and_bob(lab)
    raw = await lab.raw()
    raw.send_map({"type": "shout", "ref": 1}, {"type": "welcome", "ref": 2})  # before hello too
    for ref in (1, 2):
        error = await raw.reply(ref)
        assert isinstance(error, Error)
        assert (error.code, error.fatal) == ("unknown_type", False)
    await raw.hello("mallory")
    raw.send_map({"type": "kick", "name": "ali", "ref": 3})
    error = await raw.reply(3)
    assert isinstance(error, Error) and (error.code, error.fatal) == ("unknown_type", False)
    await chats(bob, ali, "during")
    raw.send(Send(room="#lobby", text="hello all", ref=4))
    assert isinstance(await raw.reply(4), Ack)
    await expect(ali, Message, sender="mallory", text="hello all")
    await chats(bob, ali, "after")


# --- timeouts -------------------------------------------------------------------------------


@pytest.mark.parametrize("pings", [False, True], ids=["silent", "pings-but-no-hello"])
async def test_a_connection_without_hello_is_dropped_after_the_hello_timeout(
    lab: Lab, pings: bool
) -> None:
    ali, bob = await ali_and_bob(lab)
    loop = asyncio.get_running_loop()
    raw = await lab.raw()
    started = loop.time()
    if pings:
        raw.send(Ping(data=1, ref=1))
        assert await raw.reply(1) == Pong(data=1, ref=1)  # answered, yet not a hello
    await chats(bob, ali, "during")
    error = await fatal_end(raw)
    elapsed = loop.time() - started
    assert error.code == "hello_timeout"
    assert HELLO_TIMEOUT - 0.05 <= elapsed <= HELLO_TIMEOUT + TICK + SLACK, elapsed
    await chats(bob, ali, "after")


async def trickle(raw: Raw, data: bytes, every: float) -> None:
    """Write `data` one byte at a time, `every` seconds apart, as a slowloris does."""
    for byte in data:
        if raw.writer.is_closing():
            return
        raw.write(bytes([byte]))
        await asyncio.sleep(every)


@pytest.mark.parametrize("body", ["never", "trickled"])
async def test_a_frame_whose_body_does_not_arrive_is_dropped_after_the_frame_timeout(
    lab: Lab, body: str
) -> None:
    ali, bob = await ali_and_bob(lab, hello_timeout=30.0)
    loop = asyncio.get_running_loop()
    raw = await lab.raw()
    await raw.hello("loris")
    frame = encode_frame(Codec.encode(Send(room="#lobby", text="x" * 1000, ref=1)))
    started = loop.time()
    raw.write(frame[:4])  # the header promises 1000-odd bytes
    trickler = None
    if body == "trickled":
        trickler = asyncio.create_task(trickle(raw, frame[4:], every=0.05))
    await chats(bob, ali, "during")
    error = await fatal_end(raw)
    elapsed = loop.time() - started
    assert error.code == "frame_timeout"
    assert FRAME_TIMEOUT - 0.05 <= elapsed <= FRAME_TIMEOUT + TICK + SLACK, elapsed
    if trickler is not None:
        trickler.cancel()
    left = await expect(ali, Left, name="loris")
    assert left.reason == "disconnect"
    await chats(bob, ali, "after")


async def test_a_steady_stream_of_frames_split_across_reads_is_not_a_slowloris(lab: Lab) -> None:
    """Every read ends mid-frame (a busy client on a slow link), but frames keep completing."""
    ali, _ = await ali_and_bob(lab, hello_timeout=30.0)
    loop = asyncio.get_running_loop()
    raw = await lab.raw()
    await raw.hello("steady")
    started = loop.time()
    ref = 0
    carry = b""
    # every write completes the previous ping and starts the next one, 20 times a second
    while loop.time() - started < 3 * FRAME_TIMEOUT:
        ref += 1
        frame = encode_frame(Codec.encode(Ping(data=ref, ref=ref)))
        raw.write(carry + frame[:6])
        carry = frame[6:]
        if ref > 1:
            answer = await raw.reply(ref - 1)
            assert answer == Pong(data=ref - 1, ref=ref - 1), answer
        await asyncio.sleep(0.05)
    raw.write(carry)
    assert await raw.reply(ref) == Pong(data=ref, ref=ref)
    await chats(ali, ali, "after")


# --- connection limits ------------------------------------------------------------------------


async def test_a_full_server_refuses_new_connections_until_one_closes(lab: Lab) -> None:
    await lab.start(max_connections=3)
    ali = await lab.user("ali")
    first, second = await lab.raw(), await lab.raw()
    await first.hello("first")
    await second.hello("second")
    refused = await lab.raw()
    error = await fatal_end(refused)
    assert error.code == "server_full"
    await chats(ali, ali, "still here")
    first.writer.close()
    await expect(ali, Left, name="first")  # the server has counted it out
    again = await lab.raw()
    assert (await again.hello("third")).name == "third"
    assert (await fatal_end(await lab.raw())).code == "server_full"  # full again
    await chats(ali, ali, "and still here")
    assert await ali.who() == ("ali", "second", "third")


async def test_too_many_connections_from_one_address_are_refused(lab: Lab) -> None:
    await lab.start(max_connections_per_ip=2)
    ali = await lab.user("ali")  # from 127.0.0.1, as every connection below but the last
    first = await lab.raw()
    await first.hello("first")
    refused = await lab.raw()
    error = await fatal_end(refused)
    assert error.code == "too_many_connections"
    other = await lab.raw(source="127.0.0.2")  # another address has its own allowance
    assert (await other.hello("elsewhere")).name == "elsewhere"
    await chats(ali, ali, "still here")
    first.writer.close()
    await expect(ali, Left, name="first")
    again = await lab.raw()
    assert (await again.hello("again")).name == "again"
    assert (await fatal_end(await lab.raw())).code == "too_many_connections"
    await chats(ali, ali, "and still here")


# --- flood control --------------------------------------------------------------------------


async def test_a_burst_far_above_the_rate_gets_rate_limited_replies_never_silence(
    lab: Lab,
) -> None:
    ali, bob = await ali_and_bob(lab, rate=RateLimits())
    flooder = await lab.user("flooder")
    burst = 50  # the default burst is 30 requests (the hello took one)

    async def flood() -> list[Ack | BaseException]:
        return await asyncio.gather(
            *(flooder.send("#lobby", f"spam {i}") for i in range(burst)), return_exceptions=True
        )

    results, _ = await asyncio.gather(flood(), chats(bob, ali, "during"))
    acked = [r for r in results if isinstance(r, Ack)]
    refused = [r for r in results if not isinstance(r, Ack)]
    assert all(isinstance(r, RequestFailed) and r.code == "rate_limited" for r in refused), refused
    assert len(acked) >= 29 and refused, (len(acked), len(refused))
    # what was refused was not posted: the room got exactly the acknowledged messages
    await chats(bob, ali, "barrier")
    seen = await events_until(bob, Message, text="barrier")
    posted = [m.seq for m in seen if isinstance(m, Message) and m.sender == "flooder"]
    assert posted == sorted(a.seq for a in acked)
    await asyncio.sleep(0.3)  # the bucket refills at 10 requests a second
    await chats(flooder, bob, "sorry")
    await chats(bob, ali, "after")


async def test_text_above_the_byte_rate_gets_rate_limited_replies(lab: Lab) -> None:
    ali, bob = await ali_and_bob(lab, rate=RateLimits())
    flooder = await lab.user("flooder")
    text = "y" * 4000
    count = 24  # 96,000 bytes at once: the default byte burst is 64 KiB
    results = await asyncio.gather(
        *(flooder.send("#lobby", text) for _ in range(count)), return_exceptions=True
    )
    acked = [r for r in results if isinstance(r, Ack)]
    refused = [r for r in results if not isinstance(r, Ack)]
    assert all(isinstance(r, RequestFailed) and r.code == "rate_limited" for r in refused)
    assert len(acked) >= 65536 // 4000 and refused, (len(acked), len(refused))
    await chats(bob, ali, "after")


async def test_pasting_a_paragraph_is_not_refused(lab: Lab) -> None:
    ali, bob = await ali_and_bob(lab, rate=RateLimits())
    await chats(ali, bob, "let me paste the log")
    paragraph = "\n".join(f"{i:02} the quick brown fox jumps over" for i in range(100))
    assert len(paragraph.encode()) < 4096 and paragraph.count("\n") == 99
    for _ in range(3):  # pasted again, and again
        ack = await ali.send("#lobby", paragraph)
        message = await expect(bob, Message, seq=ack.seq)
        assert message.text == paragraph
    await chats(bob, ali, "thanks")


async def flood_with_pings(raw: Raw, count: int) -> list[Event]:
    raw.send(*(Ping(data=i, ref=i) for i in range(1, count + 1)))
    return await raw.rest()


async def test_persistent_flooding_ends_in_a_fatal_flood_error(lab: Lab) -> None:
    ali, bob = await ali_and_bob(lab, rate=RateLimits())
    raw = await lab.raw()
    await raw.hello("flooder")
    flooding = asyncio.create_task(flood_with_pings(raw, 200))
    await chats(bob, ali, "during")
    events = await flooding
    last = events[-1]
    assert isinstance(last, Error) and (last.code, last.fatal) == ("flood", True), last
    answers = [e for e in events[:-1] if isinstance(e, Pong | Error)]  # not the pushed events
    # every request up to the end was answered, in order: its pong or `rate_limited`
    assert [getattr(e, "ref", None) for e in answers] == list(range(1, len(answers) + 1))
    pongs = [e for e in answers if isinstance(e, Pong)]
    limited = [e for e in answers if isinstance(e, Error)]
    assert all((e.code, e.fatal) == ("rate_limited", False) for e in limited)
    assert len(pongs) >= 29 and len(limited) >= 30, (len(pongs), len(limited))
    left = await expect(ali, Left, name="flooder")
    assert left.reason == "disconnect"
    await chats(bob, ali, "after")


async def test_after_the_fatal_flood_error_the_rest_of_the_burst_is_ignored(
    lab: Lab, caplog: pytest.LogCaptureFixture
) -> None:
    """One log line for the drop, not one per request left in the read, nor writes after it."""
    ali, _ = await ali_and_bob(lab, rate=RateLimits())
    raw = await lab.raw()
    await raw.hello("flooder")
    with caplog.at_level(logging.INFO):
        events = await flood_with_pings(raw, 200)
        await expect(ali, Left, name="flooder")
    assert [(e.code, e.fatal) for e in events if isinstance(e, Error) and e.fatal] == [
        ("flood", True)
    ]
    closing = [r for r in caplog.records if "closing after protocol error" in r.getMessage()]
    send_failed = [r for r in caplog.records if "socket.send() raised" in r.getMessage()]
    assert (len(closing), len(send_failed)) == (1, 0)


# --- memory -------------------------------------------------------------------------------


async def test_message_ids_cannot_pile_up_in_the_servers_memory() -> None:
    """Ids are kept to recognise retries: 2,000 ids of 60 KB must not cost the server 120 MB.

    They are sent within the default flood limits per connection, which count text bytes, not
    id bytes (the limits per address would stop the spammers sooner: they are exempt here).
    """
    server = await start_server_process("--no-history", "--exempt", "127.0.0.0/8")

    async def read_log() -> None:  # as it comes, so that a full pipe never blocks the server
        assert server.process.stderr is not None
        while await server.process.stderr.readline():
            pass

    reading = asyncio.create_task(read_log())
    ali = await ChatClient.connect("ali", server.host, server.port)
    before = resident_bytes(server.process.pid)
    big_id = "i" * 60_000  # a frame holds up to 64 KiB
    per_connection = 29  # the burst of 30 requests, less the hello

    async def spam(number: int) -> None:
        raw = await open_raw(server.host, server.port)
        await raw.hello(f"spammer{number}")
        raw.send(
            *(
                Send(room="#lobby", text="x", id=f"{big_id}{i}", ref=i + 1)
                for i in range(per_connection)
            )
        )
        for i in range(per_connection):
            assert isinstance(await raw.reply(i + 1), Ack | Error)
        raw.writer.close()

    try:
        for first in range(0, 70, 10):  # 70 connections, 10 at a time: 2,030 sends
            await asyncio.gather(*(spam(n) for n in range(first, first + 10)))
        await chats(ali, ali, "still here")
        growth = resident_bytes(server.process.pid) - before
        assert growth < 32 * 1024 * 1024, f"the server grew by {growth / 2**20:.0f} MiB"
    finally:
        await ali.abort()
        server.process.kill()
        await server.process.wait()
        await reading


# --- text ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("x" * 4097, id="4097-bytes"),
        pytest.param("é" * 2049, id="2049-chars-4098-bytes"),
        pytest.param("line\n" * 100 + "line", id="101-lines"),
        pytest.param("\r\n" * 100 + "x", id="101-crlf-lines"),
    ],
)
async def test_an_over_long_message_is_refused_and_the_sender_stays(lab: Lab, text: str) -> None:
    ali, bob = await ali_and_bob(lab)
    with pytest.raises(RequestFailed) as refused:
        await ali.send("#lobby", text)
    assert refused.value.code == "text_too_long"
    with pytest.raises(RequestFailed) as refused:
        await ali.private("bob", text)
    assert refused.value.code == "text_too_long"
    await ali.send("#lobby", "the short version")
    seen = await events_until(bob, Message, text="the short version")
    assert not [e for e in seen if isinstance(e, PrivateMessage)]


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("é" * 2048, id="4096-bytes"),
        pytest.param("line\n" * 99 + "line", id="100-lines"),
    ],
)
async def test_a_message_at_the_limits_is_delivered(lab: Lab, text: str) -> None:
    ali, bob = await ali_and_bob(lab)
    await ali.send("#lobby", text)
    assert (await expect(bob, Message, sender="ali")).text == text


async def test_control_characters_are_removed_from_messages_but_newlines_and_tabs_kept(
    lab: Lab,
) -> None:
    ali, bob = await ali_and_bob(lab)
    sent = "bell\x07 esc\x1b[2J nul\x00 del\x7f c1\x85\x9b cr\r crlf\r\nlf\n\ttab\x1b]0;pwned\x07."
    kept = "bell esc[2J nul del c1 cr crlf\nlf\n\ttab]0;pwned."
    await ali.send("#lobby", sent)
    for member in (ali, bob):
        assert (await expect(member, Message, sender="ali")).text == kept
    await ali.private("bob", sent)
    assert (await expect(bob, PrivateMessage)).text == kept
    page = await bob.history("#lobby")
    assert [m.text for m in page.messages] == [kept]
    with pytest.raises(RequestFailed) as refused:
        await ali.send("#lobby", "\x00\x07\x1b\r")  # nothing left once cleaned
    assert refused.value.code == "empty_text"
    await chats(bob, ali, "after")


# --- names ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "first, second",
    [
        ("ali", "\uff41\uff4c\uff49"),  # fullwidth: NFKC-equal
        ("\uff41\uff4c\uff49", "ali"),
        ("fish", "\ufb01sh"),  # the fi ligature
        ("ali", "\u0430li"),  # Cyrillic a
        ("\u0430li", "ali"),
        ("bob", "b0b"),  # zero for o
        ("b0b", "BOB"),
        ("ali", "\u13aali"),  # Cherokee A, folded then mapped
        ("ali", "a1i"),  # one for l
        ("ali", "aIi"),  # capital I for l
        ("aIi", "ali"),
    ],
)
async def test_look_alike_and_nfkc_equal_names_are_taken(lab: Lab, first: str, second: str) -> None:
    server = await lab.start()
    owner = await lab.user(first)
    with pytest.raises(RequestFailed) as refused:
        await ChatClient.connect(second, *server.address)
    assert refused.value.code == "name_taken"
    other = await lab.user("carol")
    await chats(owner, other, "still me")


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("ali\u200b", id="zero-width-space"),
        pytest.param("a\u200dli", id="zero-width-joiner"),
        pytest.param("a\u200cli", id="zero-width-non-joiner"),
        pytest.param("a\u2060li", id="word-joiner"),
        pytest.param("ali\ufeff", id="bom"),
        pytest.param("a\u00adli", id="soft-hyphen"),
        pytest.param("\u202eila", id="right-to-left-override"),
        pytest.param("ali\u2066", id="left-to-right-isolate"),
        pytest.param("ali\u200f", id="right-to-left-mark"),
        pytest.param("ali\u061c", id="arabic-letter-mark"),
        pytest.param("ali\u180e", id="mongolian-vowel-separator"),
        pytest.param("ali\x1b[31m", id="escape"),
        pytest.param("ali\x7f", id="delete"),
        pytest.param("ali\x85", id="c1-next-line"),
        pytest.param("ali\t", id="tab"),
        pytest.param("ali\n", id="newline"),
        pytest.param("ali\u3164", id="hangul-filler"),  # a letter by category, but invisible
        pytest.param("a\uffa0li", id="halfwidth-hangul-filler"),
    ],
)
async def test_invisible_and_control_characters_in_names_are_refused(lab: Lab, name: str) -> None:
    server = await lab.start()
    ali = await lab.user("ali")
    with pytest.raises(RequestFailed) as refused:
        await ChatClient.connect(name, *server.address)
    assert refused.value.code == "invalid_name"
    assert await ali.who() == ("ali",)
    await chats(ali, ali, "still alone")


async def test_read_markers_past_the_rate_are_dropped_without_a_word(lab: Lab) -> None:
    """A marker nobody waits for (no ref) that the flood limits refuse is dropped silently, as
    a `pong` is: the next one counts, and no puzzling "slow down" reaches the user."""
    ali, bob = await ali_and_bob(lab, rate=RateLimits())
    raw = await lab.raw()
    await raw.hello("reader")
    raw.send(*(MarkRead(room="#lobby", seq=i) for i in range(40)))  # past the burst of 30
    raw.send(Ping(data=1, ref=1))
    frames: list[Event] = []
    while not (frames and getattr(frames[-1], "ref", None) == 1):  # the ping's answer: last
        frame = await raw.next()
        assert frame is not None, frames
        frames.append(frame)
    assert not [f for f in frames[:-1] if isinstance(f, Error)], frames  # (the ping's may be)
    await chats(bob, ali, "still fine")
