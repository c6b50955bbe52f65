"""Length-prefixed frames: a 4-byte big-endian length, then that many bytes."""

from __future__ import annotations

import struct

from tuichat.protocol.errors import ErrorCode, ProtocolError

HEADER = struct.Struct(">I")
HEADER_SIZE = HEADER.size


def encode_frame(body: bytes) -> bytes:
    """Return `body` with its length prefix."""
    return HEADER.pack(len(body)) + body


class FrameDecoder:
    """Splits a byte stream into frame bodies, refusing oversized frames early.

    A frame whose announced length exceeds `max_frame` is rejected as soon as its
    4-byte header has arrived, before any of its body is buffered.
    """

    __slots__ = ("_buffer", "_failed", "max_frame")

    def __init__(self, max_frame: int) -> None:
        if max_frame < 1:
            raise ValueError("max_frame must be at least 1")
        self.max_frame = max_frame
        self._buffer: bytearray | None = None
        """The start of a frame still arriving (None between frames: an idle connection keeps
        no buffer)."""
        self._failed = False

    @property
    def pending(self) -> int:
        """How many bytes of an incomplete frame are buffered."""
        return 0 if self._buffer is None else len(self._buffer)

    def feed(self, data: bytes) -> list[bytes]:
        """Add bytes from the stream; return the bodies of the frames now complete."""
        if self._failed:
            raise ProtocolError(ErrorCode.BAD_FRAME, "decoder already failed")
        buffer = self._buffer
        if buffer is None:
            buffer = self._buffer = bytearray(data)
        else:
            buffer += data
        frames: list[bytes] = []
        pos = 0
        end = len(buffer)
        while end - pos >= HEADER_SIZE:
            (length,) = HEADER.unpack_from(buffer, pos)
            if length > self.max_frame:
                self._fail()
                raise ProtocolError(
                    ErrorCode.FRAME_TOO_LARGE,
                    f"frame of {length} bytes exceeds the limit of {self.max_frame}",
                )
            if length == 0:
                self._fail()
                raise ProtocolError(ErrorCode.BAD_FRAME, "empty frame")
            if end - pos - HEADER_SIZE < length:
                break
            start = pos + HEADER_SIZE
            frames.append(bytes(buffer[start : start + length]))
            pos = start + length
        if pos == end:
            self._buffer = None
        elif pos:
            del buffer[:pos]
        return frames

    def _fail(self) -> None:
        self._failed = True
        self._buffer = None
