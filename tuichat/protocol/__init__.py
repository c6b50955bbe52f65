"""The sans-I/O core of the tuichat wire protocol (see PROTOCOL.md)."""

from tuichat.protocol.codec import Codec, InvalidMessage
from tuichat.protocol.connection import (
    DEFAULT_CLIENT_MAX_FRAME,
    DEFAULT_MAX_FRAME,
    Connection,
    Event,
    Role,
    State,
)
from tuichat.protocol.errors import FATAL_CODES, ErrorCode, LocalProtocolError, ProtocolError
from tuichat.protocol.framing import FrameDecoder, encode_frame
from tuichat.protocol.messages import *  # noqa: F403
from tuichat.protocol.messages import __all__ as _message_names

__all__ = [
    "DEFAULT_CLIENT_MAX_FRAME",
    "DEFAULT_MAX_FRAME",
    "FATAL_CODES",
    "Codec",
    "Connection",
    "ErrorCode",
    "Event",
    "FrameDecoder",
    "InvalidMessage",
    "LocalProtocolError",
    "ProtocolError",
    "Role",
    "State",
    "encode_frame",
    *_message_names,
]
