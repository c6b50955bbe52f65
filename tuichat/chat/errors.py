"""The exception the chat logic raises when a request cannot be carried out."""

from __future__ import annotations

from tuichat.protocol.errors import ErrorCode


class ChatError(Exception):
    """A request was refused; `code` is the protocol error code sent to the client."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
