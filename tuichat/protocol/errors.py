"""Error codes of the wire protocol and the exceptions of the sans-I/O core."""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    """Every `code` an `error` frame can carry (see PROTOCOL.md, "Errors")."""

    # Fatal: the server closes the connection after sending these.
    BAD_FRAME = "bad_frame"
    FRAME_TOO_LARGE = "frame_too_large"
    UNSUPPORTED_VERSION = "unsupported_version"
    SERVER_FULL = "server_full"
    TOO_MANY_CONNECTIONS = "too_many_connections"
    HELLO_TIMEOUT = "hello_timeout"
    FRAME_TIMEOUT = "frame_timeout"
    FLOOD = "flood"
    # The connection stays open after these.
    BAD_MESSAGE = "bad_message"
    UNKNOWN_TYPE = "unknown_type"
    HELLO_REQUIRED = "hello_required"
    ALREADY_WELCOMED = "already_welcomed"
    INVALID_NAME = "invalid_name"
    NAME_TAKEN = "name_taken"
    INVALID_ROOM = "invalid_room"
    NOT_IN_ROOM = "not_in_room"
    ALREADY_IN_ROOM = "already_in_room"
    CANNOT_LEAVE_LOBBY = "cannot_leave_lobby"
    TOO_MANY_ROOMS = "too_many_rooms"
    TOO_MANY_DEVICES = "too_many_devices"
    NO_SUCH_USER = "no_such_user"
    RATE_LIMITED = "rate_limited"
    NAME_REGISTERED = "name_registered"
    BAD_SIGNATURE = "bad_signature"
    KEY_UPGRADE_REQUIRED = "key_upgrade_required"
    NO_SUCH_ROOM = "no_such_room"
    EMPTY_TEXT = "empty_text"
    TEXT_TOO_LONG = "text_too_long"
    UNAVAILABLE = "unavailable"
    NOT_OP = "not_op"
    NOT_ADMIN = "not_admin"
    CANNOT_MODERATE = "cannot_moderate"
    NOT_REGISTERED = "not_registered"
    BANNED = "banned"
    MUTED = "muted"
    PRIVATE_ROOM = "private_room"
    LIMIT_REACHED = "limit_reached"
    NO_SUCH_MESSAGE = "no_such_message"
    NOT_AUTHOR = "not_author"
    INVALID_REACTION = "invalid_reaction"
    INVALID_SEARCH = "invalid_search"


FATAL_CODES = frozenset(
    {
        ErrorCode.BAD_FRAME,
        ErrorCode.FRAME_TOO_LARGE,
        ErrorCode.UNSUPPORTED_VERSION,
        ErrorCode.SERVER_FULL,
        ErrorCode.TOO_MANY_CONNECTIONS,
        ErrorCode.HELLO_TIMEOUT,
        ErrorCode.FRAME_TIMEOUT,
        ErrorCode.FLOOD,
    }
)


class ProtocolError(Exception):
    """The peer broke the protocol so badly that the connection must close.

    This is the only exception that `Connection.receive_data` and the frame
    decoder raise; after it, the connection accepts no more data.
    """

    def __init__(self, code: ErrorCode, detail: str, ref: int | None = None) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail
        self.ref = ref  # the `ref` of the message that caused it, when there was one


class LocalProtocolError(Exception):
    """Our own side tried something the protocol forbids (a bug in the caller)."""
