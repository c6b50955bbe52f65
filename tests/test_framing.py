"""FrameDecoder and encode_frame: length-prefixed frames over a byte stream."""

from __future__ import annotations

from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tuichat.protocol.errors import ErrorCode, ProtocolError
from tuichat.protocol.framing import HEADER_SIZE, FrameDecoder, encode_frame

FAST = settings(max_examples=300, deadline=None)

MAX = 1024

bodies = st.lists(st.binary(min_size=1, max_size=300), min_size=1, max_size=8)


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    """Cut `data` at the given offsets (any order, duplicates and out-of-range allowed)."""
    points = sorted({min(max(c, 0), len(data)) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in pairwise(points)]


def feed_all(decoder: FrameDecoder, chunks: list[bytes]) -> list[bytes]:
    frames: list[bytes] = []
    for chunk in chunks:
        frames += decoder.feed(chunk)
    return frames


# --- encoding ----------------------------------------------------------------


def test_encode_frame_prefixes_the_body_with_its_big_endian_length() -> None:
    assert encode_frame(b"abc") == b"\x00\x00\x00\x03abc"
    assert encode_frame(b"x" * 300) == b"\x00\x00\x01\x2c" + b"x" * 300


# --- decoding whole and partial frames ----------------------------------------


def test_decoder_returns_every_complete_frame_in_order() -> None:
    decoder = FrameDecoder(MAX)
    assert decoder.feed(encode_frame(b"one") + encode_frame(b"two")) == [b"one", b"two"]
    assert decoder.pending == 0


def test_decoder_buffers_an_incomplete_frame_until_it_is_complete() -> None:
    decoder = FrameDecoder(MAX)
    data = encode_frame(b"hello")
    assert decoder.feed(data[:2]) == []
    assert decoder.pending == 2
    assert decoder.feed(data[2:6]) == []
    assert decoder.pending == 6
    assert decoder.feed(data[6:] + data[:1]) == [b"hello"]
    assert decoder.pending == 1


def test_decoder_accepts_a_frame_of_exactly_max_frame_bytes() -> None:
    decoder = FrameDecoder(MAX)
    assert decoder.feed(encode_frame(b"m" * MAX)) == [b"m" * MAX]


@pytest.mark.parametrize("max_frame", [0, -1])
def test_decoder_requires_a_positive_max_frame(max_frame: int) -> None:
    with pytest.raises(ValueError):
        FrameDecoder(max_frame)


def test_empty_frame_is_bad_frame() -> None:
    decoder = FrameDecoder(MAX)
    with pytest.raises(ProtocolError) as info:
        decoder.feed(b"\x00\x00\x00\x00")
    assert info.value.code is ErrorCode.BAD_FRAME
    assert decoder.pending == 0


# --- oversized frames -----------------------------------------------------------


def test_oversized_frame_is_rejected_on_the_fourth_header_byte() -> None:
    decoder = FrameDecoder(MAX)
    header = (MAX + 1).to_bytes(HEADER_SIZE, "big")
    for i in range(HEADER_SIZE - 1):
        assert decoder.feed(header[i : i + 1]) == []
        assert decoder.pending == i + 1
    with pytest.raises(ProtocolError) as info:
        decoder.feed(header[-1:])
    assert info.value.code is ErrorCode.FRAME_TOO_LARGE
    assert decoder.pending == 0


def test_oversized_frame_is_rejected_without_buffering_the_body_sent_with_it() -> None:
    decoder = FrameDecoder(MAX)
    assert decoder.feed(encode_frame(b"ok")) == [b"ok"]
    with pytest.raises(ProtocolError) as info:
        decoder.feed(encode_frame(b"b" * (MAX + 1))[: HEADER_SIZE + 10])
    assert info.value.code is ErrorCode.FRAME_TOO_LARGE
    assert decoder.pending == 0


@FAST
@given(
    max_frame=st.integers(1, 2**32 - 2),
    excess=st.integers(1, 2**32 - 1),
    body=st.binary(max_size=50),
)
def test_any_length_above_max_frame_is_rejected_from_the_header_alone(
    max_frame: int, excess: int, body: bytes
) -> None:
    length = min(max_frame + excess, 2**32 - 1)
    decoder = FrameDecoder(max_frame)
    with pytest.raises(ProtocolError) as info:
        decoder.feed(length.to_bytes(HEADER_SIZE, "big") + body)
    assert info.value.code is ErrorCode.FRAME_TOO_LARGE
    assert decoder.pending == 0


# --- after a failure -------------------------------------------------------------


@pytest.mark.parametrize(
    "bad", [b"\x00\x00\x00\x00", (MAX + 1).to_bytes(4, "big")], ids=["empty", "oversized"]
)
@pytest.mark.parametrize("more", [b"", encode_frame(b"ok")], ids=["no-bytes", "valid-frame"])
def test_decoder_refuses_everything_after_a_failure(bad: bytes, more: bytes) -> None:
    decoder = FrameDecoder(MAX)
    with pytest.raises(ProtocolError):
        decoder.feed(bad)
    with pytest.raises(ProtocolError) as info:
        decoder.feed(more)
    assert info.value.code is ErrorCode.BAD_FRAME
    assert decoder.pending == 0


# --- chunking ----------------------------------------------------------------------


@FAST
@given(frames=bodies, cuts=st.lists(st.integers(0, 3000), max_size=20))
def test_any_chunking_of_a_stream_yields_the_same_frames(
    frames: list[bytes], cuts: list[int]
) -> None:
    stream = b"".join(encode_frame(f) for f in frames)
    decoder = FrameDecoder(MAX)
    assert feed_all(decoder, split(stream, cuts)) == frames
    assert decoder.pending == 0


@FAST
@given(frames=bodies)
def test_feeding_one_byte_at_a_time_yields_the_same_frames(frames: list[bytes]) -> None:
    stream = b"".join(encode_frame(f) for f in frames)
    decoder = FrameDecoder(MAX)
    got = feed_all(decoder, [stream[i : i + 1] for i in range(len(stream))])
    assert got == frames
    assert decoder.pending == 0


@FAST
@given(frames=bodies, data=st.data())
def test_a_truncated_stream_yields_the_complete_frames_and_buffers_the_rest(
    frames: list[bytes], data: st.DataObject
) -> None:
    stream = b"".join(encode_frame(f) for f in frames)
    cut = data.draw(st.integers(0, len(stream)))
    decoder = FrameDecoder(MAX)
    got = decoder.feed(stream[:cut])
    assert got == frames[: len(got)]
    consumed = sum(HEADER_SIZE + len(f) for f in got)
    assert decoder.pending == cut - consumed
    if len(got) < len(frames):
        assert decoder.pending < HEADER_SIZE + len(frames[len(got)])


# --- arbitrary bytes -----------------------------------------------------------------


@FAST
@given(
    max_frame=st.integers(1, 300),
    chunks=st.lists(
        st.binary(max_size=40) | st.binary(min_size=1, max_size=40).map(encode_frame),
        max_size=10,
    ),
)
def test_arbitrary_bytes_yield_frames_or_a_framing_protocol_error(
    max_frame: int, chunks: list[bytes]
) -> None:
    decoder = FrameDecoder(max_frame)
    for chunk in chunks:
        try:
            frames = decoder.feed(chunk)
        except ProtocolError as exc:
            assert exc.code in {ErrorCode.BAD_FRAME, ErrorCode.FRAME_TOO_LARGE}
            assert decoder.pending == 0
            with pytest.raises(ProtocolError):
                decoder.feed(b"\x00\x00\x00\x01x")
            return
        assert all(type(f) is bytes and 1 <= len(f) <= max_frame for f in frames)
