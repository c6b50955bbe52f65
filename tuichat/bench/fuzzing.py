"""Deterministic fuzz inputs for a live server: random bytes, random msgpack, broken frames.

Every input is made from a `random.Random` alone, so a seed gives the same bytes each
time. `fuzz_input` makes the inputs of the bounded fuzz in the test suite; the
benchmark `benchmarks/fuzz.py` adds `hostile_input` (well-formed but costly or
unusual requests) and `ender_input` (inputs that end the byte stream).
"""

from __future__ import annotations

import random
import string
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgpack

from tuichat.protocol import (
    DEFAULT_MAX_FRAME,
    AnyMessage,
    Bye,
    Codec,
    History,
    Join,
    ListRooms,
    Part,
    Ping,
    Pong,
    Position,
    Private,
    Send,
    Who,
    encode_frame,
)
from tuichat.protocol.codec import to_wire
from tuichat.protocol.messages import PROTOCOL_VERSION, Hello

NAMES = ["ali", "watch", "fuzz", "ALI", "a" * 24, "a" * 25, "", "\u0430li", "x\u200by", "-", "李雷"]
ROOMS = [*["#lobby"] * 6, *["#fuzz"] * 3, "#FUZZ", "#", "lobby", "#a b", "#" + "r" * 33, "#ünï", ""]
KEYS = ["type", "ref", "room", "text", "name", "to", "id", "data", "action", "before", "limit"]


# --- the inputs of the bounded fuzz ---------------------------------------------------------


def random_text(rng: random.Random, most: int = 40) -> str:
    alphabet = string.printable + "\x00\x07\x1b\x7f\x85\u200b\u202eé李😀\ufeff"
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, most)))


def random_int(rng: random.Random) -> int:
    return rng.choice(
        [0, 1, -1, rng.randint(-100, 100), 2**31, 2**53, 2**63 - 1, -(2**63), 2**64 - 1]
    )


def random_value(rng: random.Random, depth: int = 0) -> Any:
    """Any msgpack value: scalars of every kind, arrays, maps; rarely an ext or a non-str key."""
    kinds = ["nil", "bool", "int", "float", "str", "bin"]
    if depth < 3:
        kinds += ["array", "map", "map"]
    kind = "ext" if rng.random() < 0.01 else rng.choice(kinds)
    if kind == "nil":
        return None
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "int":
        return random_int(rng)
    if kind == "float":
        return rng.choice([0.0, -1.5, 1e300, float("nan"), float("inf")])
    if kind == "str":
        return random_text(rng)
    if kind == "bin":
        return rng.randbytes(rng.randint(0, 20))
    if kind == "ext":
        return msgpack.ExtType(rng.randint(0, 127), rng.randbytes(rng.randint(0, 8)))
    if kind == "array":
        return [random_value(rng, depth + 1) for _ in range(rng.randint(0, 5))]
    pairs: dict[Any, Any] = {}
    for _ in range(rng.randint(0, 5)):
        key: Any = rng.choice(KEYS) if rng.random() < 0.97 else rng.choice([1, None, b"type"])
        pairs[key] = random_value(rng, depth + 1)
    if depth == 0 and rng.random() < 0.7:
        pairs["type"] = rng.choice([*MESSAGE_MAKERS, "welcome", "message", "nope", ""])
    return pairs


def valid_message(rng: random.Random) -> AnyMessage:
    """A well-formed client message with plausible (and some implausible) values."""
    kind = rng.choice(list(MESSAGE_MAKERS))
    return MESSAGE_MAKERS[kind](rng)


VERSIONS = [PROTOCOL_VERSION] * 3 + [PROTOCOL_VERSION + 1, 0]
"""The `version` of a random `hello`: mostly the one the server speaks."""

MESSAGE_MAKERS: dict[str, Callable[[random.Random], AnyMessage]] = {
    "hello": lambda rng: Hello(
        name=rng.choice(NAMES),
        version=rng.choice(VERSIONS),
        client=random_text(rng),
        positions=rng.choice(
            [None, (), (Position(rng.choice(ROOMS), random_int(rng), random_int(rng)),)]
        ),
        private_after=rng.choice([None, random_int(rng)]),
        token=rng.choice([None, "", random_text(rng)]),
        ref=random_int(rng),
    ),
    "send": lambda rng: Send(
        room=rng.choice(ROOMS),
        text=random_text(rng, 200),
        action=rng.random() < 0.2,
        id=rng.choice(["", random_text(rng, 10)]),
        ref=random_int(rng),
    ),
    "private": lambda rng: Private(
        to=rng.choice(NAMES), text=random_text(rng), id=random_text(rng, 8), ref=random_int(rng)
    ),
    "join": lambda rng: Join(room=rng.choice(ROOMS), ref=random_int(rng)),
    "part": lambda rng: Part(room=rng.choice(ROOMS), ref=random_int(rng)),
    "list_rooms": lambda rng: ListRooms(ref=random_int(rng)),
    "history": lambda rng: History(
        room=rng.choice(ROOMS), before=random_int(rng), limit=random_int(rng), ref=random_int(rng)
    ),
    "who": lambda rng: Who(room=rng.choice(ROOMS), ref=random_int(rng)),
    "ping": lambda rng: Ping(data=random_int(rng), ref=random_int(rng)),
    "pong": lambda rng: Pong(data=random_int(rng)),
    "bye": lambda rng: Bye(ref=random_int(rng)),
}


def retyped(rng: random.Random) -> bytes:
    """A valid message with a field given another type, removed, or added."""
    wire = to_wire(valid_message(rng))
    action = rng.choice(["retype", "retype", "remove", "add", "retype-type"])
    key = rng.choice(sorted(wire))
    if action == "retype":
        wire[key] = random_value(rng, 2)
    elif action == "remove":
        del wire[key]
    elif action == "add":
        wire[random_text(rng, 8)] = random_value(rng, 1)
    else:
        wire["type"] = random_value(rng, 2)
    try:
        return bytes(msgpack.packb(wire))
    except (TypeError, ValueError):  # a key msgpack cannot write: send the message as it was
        return bytes(msgpack.packb(to_wire(valid_message(rng))))


def flipped(rng: random.Random, data: bytes) -> bytes:
    buffer = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        bit = rng.randrange(len(buffer) * 8)
        buffer[bit // 8] ^= 1 << (bit % 8)
    return bytes(buffer)


SOFT = ["valid", "valid", "msgpack", "retyped", "retyped", "retyped"]
"""Well-framed inputs that a server should mostly answer with a reply or a non-fatal error."""
HARD = ["bytes", "random-body", "bit-flip", "bit-flip-header", "truncated-body",
        "truncated-frame", "length"]  # fmt: skip
"""Inputs that mostly break the byte stream: the server can only say why and close."""


def fuzz_input(rng: random.Random, kind: str) -> bytes:
    body = Codec.encode(valid_message(rng))
    if kind == "valid":
        return encode_frame(body)
    if kind == "msgpack":
        return encode_frame(msgpack.packb(random_value(rng)))
    if kind == "retyped":
        return encode_frame(retyped(rng))
    if kind == "bytes":
        return rng.randbytes(rng.randint(1, 64))
    if kind == "random-body":
        return encode_frame(rng.randbytes(rng.randint(1, 128)))
    if kind == "bit-flip":
        return encode_frame(flipped(rng, body))
    if kind == "bit-flip-header":
        return flipped(rng, encode_frame(body)[:4]) + body
    if kind == "truncated-body":
        return encode_frame(body[: rng.randrange(1, len(body))])
    if kind == "truncated-frame":
        return encode_frame(body)[: rng.randrange(1, len(body) + 4)]
    assert kind == "length"
    length = rng.choice(
        [0, 1, len(body) - 1, len(body) + 1, len(body) + rng.randint(2, 500),
         DEFAULT_MAX_FRAME, DEFAULT_MAX_FRAME + 1, 2**32 - 1, rng.randrange(2**32)]
    )  # fmt: skip
    return length.to_bytes(4, "big") + body


# --- msgpack written by hand: every valid encoding, and broken ones -------------------------


def wide_pack(value: Any, rng: random.Random) -> bytes:
    """`value` as msgpack, each item in a randomly chosen valid encoding, not only the smallest.

    Maps may be given as a list of pairs, so that a key can appear twice.
    """
    if value is None:
        return b"\xc0"
    if value is True or value is False:
        return b"\xc3" if value else b"\xc2"
    if isinstance(value, int):
        return rng.choice(_int_encodings(value))
    if isinstance(value, float):
        return b"\xcb" + struct.pack(">d", value)
    if isinstance(value, msgpack.ExtType):
        return _sized(rng, len(value.data), None, 0, (0xC7, 0xC8, 0xC9)) + (
            struct.pack(">b", value.code) + bytes(value.data)
        )
    if isinstance(value, str):
        data = value.encode("utf-8", "surrogatepass")
        return _sized(rng, len(data), 0xA0, 31, (0xD9, 0xDA, 0xDB)) + data
    if isinstance(value, bytes):
        return _sized(rng, len(value), None, 0, (0xC4, 0xC5, 0xC6)) + value
    if isinstance(value, list | tuple):
        head = _sized(rng, len(value), 0x90, 15, (None, 0xDC, 0xDD))
        return head + b"".join(wide_pack(item, rng) for item in value)
    if isinstance(value, dict):
        value = list(value.items())
    if isinstance(value, Pairs):
        value = value.pairs
    assert isinstance(value, list), value
    head = _sized(rng, len(value), 0x80, 15, (None, 0xDE, 0xDF))
    return head + b"".join(wide_pack(k, rng) + wide_pack(v, rng) for k, v in value)


@dataclass
class Pairs:
    """A msgpack map written as these pairs, in this order (repeated keys included)."""

    pairs: list[tuple[Any, Any]] = field(default_factory=list)


_INTS = [
    (0xCC, ">B", 0, 2**8 - 1), (0xCD, ">H", 0, 2**16 - 1), (0xCE, ">I", 0, 2**32 - 1),
    (0xCF, ">Q", 0, 2**64 - 1), (0xD0, ">b", -(2**7), 2**7 - 1), (0xD1, ">h", -(2**15), 2**15 - 1),
    (0xD2, ">i", -(2**31), 2**31 - 1), (0xD3, ">q", -(2**63), 2**63 - 1),
]  # fmt: skip


def _int_encodings(value: int) -> list[bytes]:
    found = [bytes([code]) + struct.pack(fmt, value) for code, fmt, lo, hi in _INTS
             if lo <= value <= hi]  # fmt: skip
    if 0 <= value < 128 or -32 <= value < 0:
        found.append(struct.pack(">b" if value < 0 else ">B", value))
    return found


def _sized(
    rng: random.Random, size: int, fix: int | None, fix_max: int, codes: tuple[int | None, ...]
) -> bytes:
    """A header for `size` items or bytes: the fix form if it fits, or 8, 16 or 32 bits."""
    choices: list[bytes] = []
    if fix is not None and size <= fix_max:
        choices.append(bytes([fix | size]))
    widths = ((">B", 2**8 - 1), (">H", 2**16 - 1), (">I", 2**32 - 1))
    for code, (fmt, most) in zip(codes, widths, strict=True):
        if code is not None and size <= most:
            choices.append(bytes([code]) + struct.pack(fmt, size))
    return rng.choice(choices)


# --- well-formed but hostile requests (benchmarks/fuzz.py) ----------------------------------


@dataclass
class Scene:
    """What a visit knows when its inputs are made: who it is, who else may be around."""

    number: int
    """The visit's number; its own names and rooms are made from it."""
    name: str
    """The name it said hello with ("" if it sent no hello of its own)."""
    peers: Sequence[str]
    """Names that may be online now (visits just before this one, and the watcher)."""
    positions: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Rooms seen by earlier visits: their (epoch, last seq), for resumes that replay.
    Only a generator of its own reads them, so the rest of the inputs does not depend on them."""


HOT_ROOMS = [f"#hot{i}" for i in range(48)]
"""Rooms shared by many visits: their joins, leaves and messages reach every member."""
HOSTILE = ["history", "rooms", "private", "big-text", "big-frame", "nesting", "width",
           "resume", "hello", "lookup", "encoding", "duplicate-keys"]  # fmt: skip
"""Well-framed, mostly well-typed requests that are costly, extreme or unusual."""

_WIDE_INTS = [0, -1, 1, 500, 501, 10**6, 2**31, 2**63 - 1, 2**64 - 1, -(2**63)]


def _frame(message: AnyMessage) -> bytes:
    return encode_frame(Codec.encode(message))


def _packed(wire: Any) -> bytes:
    return encode_frame(bytes(msgpack.packb(wire)))


def _ref(rng: random.Random) -> int | None:
    return None if rng.random() < 0.1 else random_int(rng)


def _big_text(rng: random.Random) -> str:
    """A text at, just over, or far over the limits, or one that cleaning empties."""
    makers: list[Callable[[], str]] = [
        lambda: "x" * 4096,
        lambda: "x" * 4097,
        lambda: "é" * 2048,  # 4096 UTF-8 bytes
        lambda: "😀" * 1025,  # 4100 UTF-8 bytes
        lambda: "\n".join("a" * 100),
        lambda: "\n".join("a" * 101),
        lambda: "\r\n".join("a" * 101),  # CR LF becomes LF: 101 lines
        lambda: "\x00\x1b\x7f\x85" * 1000,  # nothing left once cleaned
        lambda: " \t\u3000\u2028\u00a0" * 300,  # only whitespace
        lambda: "\x1b[31mred\x1b[0m " * 300,
        lambda: "\u202e\u200b" * 1000,
        lambda: random_text(rng, 4000),
        lambda: "y" * rng.randint(4097, 65000),
    ]
    return rng.choice(makers)()


def hostile_input(rng: random.Random, kind: str, scene: Scene) -> list[bytes]:
    """One hostile request, or a run of them, as frames."""
    ref = _ref(rng)
    if kind == "history":  # the largest pages, of the rooms with the most messages
        return [
            _frame(
                History(
                    room=rng.choice(["#lobby", "#lobby", "#fuzz", rng.choice(HOT_ROOMS), "#nope"]),
                    before=rng.choice([0, 0, -1, 1, 2, rng.randint(1, 50_000), *_WIDE_INTS]),
                    limit=rng.choice([500, 500, 501, 50, 1, 0, *_WIDE_INTS]),
                    ref=_ref(rng),
                )
            )
            for _ in range(rng.randint(1, 6))
        ]
    if kind == "rooms":  # join many rooms (past the limit), talk in a few, leave some
        rooms = rng.sample(HOT_ROOMS, rng.randint(0, 20))
        rooms += [f"#v{scene.number}x{i}" for i in range(rng.randint(0, 24))]
        rng.shuffle(rooms)
        frames = [
            _frame(Join(room=rng.choice([room, room.upper()]), ref=_ref(rng))) for room in rooms
        ]
        for room in rng.sample(rooms, min(len(rooms), rng.randint(0, 4))):
            frames.append(_frame(Send(room=room, text=random_text(rng, 80) or "hi", ref=_ref(rng))))
        frames += [_frame(Who(room=room, ref=_ref(rng))) for room in rooms[: rng.randint(0, 3)]]
        frames += [_frame(Part(room=room, ref=_ref(rng))) for room in rooms if rng.random() < 0.5]
        return frames or [_frame(ListRooms(ref=ref))]
    if kind == "private":  # to nobody, to oneself, to whoever may be online, retried
        targets = [f"nobody{rng.randrange(10**9)}", scene.name or "fuzz", "watch", "WATCH",
                   "w\u0430tch", "", "n" * 25, "n" * 300, "#lobby", *scene.peers[-8:]]  # fmt: skip
        message_id = rng.choice(
            ["", f"{scene.number:x}", "same-id-for-everyone", "i" * 64, "i" * 65]
        )
        return [
            _frame(
                Private(
                    to=rng.choice(targets),
                    text=rng.choice([random_text(rng, 100) or ".", _big_text(rng)]),
                    action=rng.random() < 0.1,
                    id=message_id,
                    ref=_ref(rng),
                )
            )
            for _ in range(rng.randint(1, 4))
        ]
    if kind == "big-text":
        room = rng.choice(["#lobby", "#lobby", rng.choice(HOT_ROOMS), "#fuzz"])
        message_id = rng.choice(["", f"b{scene.number}", "same-id-for-everyone"])
        return [_frame(Send(room=room, text=_big_text(rng), id=message_id, ref=ref))]
    if kind == "big-frame":  # a body of exactly the largest size accepted
        size = DEFAULT_MAX_FRAME - rng.choice([0, 0, 1, 100])
        return [encode_frame(_padded({"type": "ping", "data": 7, "ref": ref}, size))]
    if kind == "nesting":  # arrays or maps nested deep inside a field (within msgpack's limits)
        depth = rng.choice([10, 100, 500, 1000, rng.randint(1, 1000)])
        inner = (b"\x91" if rng.random() < 0.5 else b"\x81\xa1k") * depth + b"\xc0"
        key = rng.choice(["x", "data", "room", "positions", "ref"])
        body = b"\x83\xa4type" + wide_pack(rng.choice(["ping", "who", "hello"]), rng)
        body += wide_pack("name", rng) + wide_pack("nest", rng) + wide_pack(key, rng) + inner
        return [encode_frame(body)]
    if kind == "width":  # very many keys, or a very long array, in one frame
        count = rng.randint(1000, 6000)
        if rng.random() < 0.5:
            wire: dict[str, Any] = {f"k{i}": i for i in range(count)}
            wire.update(type=rng.choice(["who", "ping", "list_rooms"]), ref=ref)
            return [_packed(wire)]
        key = rng.choice(["x", "positions", "data", "rooms"])
        return [_packed({"type": rng.choice(["hello", "ping"]), "name": "w", key: [None] * count})]
    if kind == "resume":  # a hello that resumes many rooms, some far back (a long replay)
        known = random.Random(rng.random())  # what is known varies: keep it off `rng`
        positions = []
        for room, (epoch, seq) in known.sample(sorted(scene.positions.items()),
                                               min(4, len(scene.positions))):  # fmt: skip
            back = known.choice([0, 1, known.randint(0, 300), known.randint(0, 3000), 10_000])
            positions.append(Position(room, epoch, max(0, seq - back)))
        positions += [
            Position(rng.choice([*HOT_ROOMS, *ROOMS]), random_int(rng), random_int(rng))
            for _ in range(rng.choice([0, 1, 40, 500, 1200]))
        ]
        known.shuffle(positions)
        hello = Hello(
            name=f"rz{scene.number}",
            positions=tuple(positions),
            private_after=rng.choice([None, 0, 1, random_int(rng)]),
            token=rng.choice([None, "", random_text(rng, 30), "A" * 24]),
            ref=ref,
        )
        return [_frame(hello)]
    if kind == "hello":  # a second hello, a taken name, a key (registering), unknown fields
        wire = to_wire(Hello(name=rng.choice([scene.name or "fuzz", *NAMES, *scene.peers[-4:]])))
        if rng.random() < 0.5:
            wire["key"] = rng.choice(["k" * 15, "k" * 16, "k" * 257, random_text(rng, 100)])
        if rng.random() < 0.3:
            wire["public_key"] = rng.choice(["", "p" * 43, random_text(rng, 60)])
            wire["signature"] = rng.choice(["", "s" * 86, random_text(rng, 100)])
        if rng.random() < 0.3:
            wire["version"] = rng.choice(VERSIONS)
        wire["ref"] = ref
        wire = {key: value for key, value in wire.items() if value is not None}
        return [_packed(wire)]
    if kind == "lookup":
        frames = []
        for _ in range(rng.randint(1, 8)):
            lookups: list[AnyMessage] = [
                ListRooms(ref=_ref(rng)),
                Who(ref=_ref(rng)),
                Who(room=rng.choice([*HOT_ROOMS, "#lobby", f"#v{scene.number}x0"])),
                Ping(data=random_int(rng), ref=_ref(rng)),
            ]
            frames.append(_frame(rng.choice(lookups)))
        return frames
    if kind == "encoding":  # a valid message written in wider encodings than needed
        wire = to_wire(valid_message(rng))
        return [encode_frame(wide_pack(wire, rng))]
    assert kind == "duplicate-keys", kind
    wire = to_wire(valid_message(rng))
    pairs: list[tuple[Any, Any]] = list(wire.items())
    for _ in range(rng.randint(1, 3)):
        key = rng.choice([*wire, "type", "ref"])
        pairs.insert(rng.randint(0, len(pairs)), (key, random_value(rng, 2)))
    if rng.random() < 0.3:
        pairs.insert(rng.randint(0, len(pairs)), (b"type", "ping"))  # a bin key: tolerated
    return [encode_frame(wide_pack(Pairs(pairs), rng))]


def _padded(wire: dict[str, Any], size: int) -> bytes:
    """`wire` with a "pad" key whose string (a str16) makes the body exactly `size` bytes."""
    pad = size - (len(msgpack.packb({**wire, "pad": ""})) - 1) - 3
    assert 2**8 <= pad < 2**16, (size, pad)
    body: bytes = msgpack.packb({**wire, "pad": "p" * pad})
    assert len(body) == size, (len(body), size)
    return body


# --- inputs that end the byte stream --------------------------------------------------------

ENDERS = ["zero-length", "too-large", "bad-utf8", "ext", "int-key", "nil-key", "trailing",
          "two-values", "deep", "huge-header", "after-bye", "truncated-str"]  # fmt: skip
"""Inputs after which a server must say why (a fatal `error`, or the `bye`) and close."""


def ender_input(rng: random.Random, kind: str) -> bytes:
    """An input that the server must answer with a fatal error (or, for `after-bye`, `bye`)."""
    wire = to_wire(valid_message(rng))
    if kind == "zero-length":
        return b"\x00\x00\x00\x00" + rng.choice([b"", b"\x80", rng.randbytes(8)])
    if kind == "too-large":
        length = rng.choice([DEFAULT_MAX_FRAME + 1, DEFAULT_MAX_FRAME + 2, 2**31, 2**32 - 1])
        return length.to_bytes(4, "big") + rng.randbytes(rng.randint(0, 64))
    if kind == "bad-utf8":
        bad = rng.choice([b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xe2\x82", b"\xf4\x90\x80\x80"])
        text = b"ok " + bad + b" ok"
        head = b"\xa4text" + bytes([0xA0 | len(text)]) + text
        where = rng.choice(["value", "key"])
        if where == "key":
            head = bytes([0xA0 | len(text)]) + text + b"\x01"
        return encode_frame(b"\x83\xa4type\xa4send\xa4room\xa6#lobby" + head)
    if kind == "ext":
        ext = rng.choice([b"\xd4\x01\x00", b"\xd6\xff\x00\x00\x00\x01", b"\xc7\x00\x05",
                          b"\xd7\xff" + bytes(8)])  # fmt: skip
        return encode_frame(b"\x83\xa4type\xa4ping\xa4data\x01\xa1x" + ext)
    if kind in ("int-key", "nil-key"):
        key = b"\x01" if kind == "int-key" else rng.choice([b"\xc0", b"\xc3", b"\xcb" + bytes(8)])
        nested = rng.random() < 0.5
        inner = b"\x81" + key + b"\x01"
        body = b"\x82\xa4type\xa4ping" + (b"\xa1x" + inner if nested else key + b"\x02")
        return encode_frame(body)
    if kind == "trailing":
        return encode_frame(bytes(msgpack.packb(wire)) + rng.choice([b"\x00", b"\xc0", b"\x90"]))
    if kind == "two-values":
        return encode_frame(bytes(msgpack.packb(wire)) * 2)
    if kind == "deep":  # nesting far beyond what msgpack decodes
        depth = rng.choice([1025, 2000, 20_000, 60_000])
        return encode_frame(b"\x81\xa4type" + b"\x91" * depth + b"\xc0")
    if kind == "huge-header":  # a container or string announcing far more than the body holds
        header = rng.choice([b"\xdd\xff\xff\xff\xff", b"\xdf\xff\xff\xff\xff",
                             b"\xdb\x7f\xff\xff\xff", b"\xc6\xff\xff\xff\xff",
                             b"\xdc\xff\xff", b"\xde\xff\xff"])  # fmt: skip
        return encode_frame(
            b"\x82\xa4type\xa4ping\xa1x" + header + rng.randbytes(rng.randint(0, 16))
        )
    if kind == "after-bye":  # frames behind the bye in the same write
        return _frame(Bye(ref=random_int(rng))) + b"".join(
            fuzz_input(rng, "valid") for _ in range(rng.randint(1, 5))
        )
    assert kind == "truncated-str", kind
    return encode_frame(b"\x82\xa4type\xa4ping\xa4data\xda\x10\x00abc")
