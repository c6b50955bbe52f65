"""The asyncio tuichat server."""

from tuichat.server.config import ServerConfig
from tuichat.server.server import ChatServer

__all__ = ["ChatServer", "ServerConfig"]
