"""tuichat: a full-screen terminal chat with a msgpack wire protocol."""

__version__ = "0.1.0"

DEFAULT_PORT = 5555
"""The TCP port the server listens on and the client connects to by default."""
