"""The server's settings, in one typed object."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field

from tuichat import DEFAULT_PORT
from tuichat.chat import ChatLimits
from tuichat.protocol import DEFAULT_MAX_FRAME

DEFAULT_HOST = "127.0.0.1"


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Everything `ChatServer` needs to know before it starts."""

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    server_name: str = field(default_factory=socket.gethostname)
    motd: str = ""
    max_frame: int = DEFAULT_MAX_FRAME
    chat: ChatLimits = field(default_factory=ChatLimits)
    db: str | None = None
    """The SQLite history file; None keeps history in memory only."""
    heartbeat_interval: float = 10.0
    """Seconds of silence from a client after which the server pings it."""
    heartbeat_timeout: float = 30.0
    """Seconds of silence after which a client is dropped (and its leave announced)."""
