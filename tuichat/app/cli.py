"""`tuichat`: open the full-screen chat."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
from collections.abc import Sequence

from tuichat import DEFAULT_PORT, __version__
from tuichat.client import ChatClient


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Return the parsed command line."""
    parser = argparse.ArgumentParser(prog="tuichat", description="Open a tuichat chat.")
    parser.add_argument("--host", default="127.0.0.1", help="server address (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"server port (default {DEFAULT_PORT})"
    )
    parser.add_argument("--name", default=_default_name(), help="your name (default: your login)")
    parser.add_argument("--version", action="version", version=f"tuichat {__version__}")
    return parser.parse_args(argv)


def _default_name() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "guest"


async def _reachable(host: str, port: int) -> str | None:
    """Return why the server cannot be reached, or None if it can."""
    try:
        async with asyncio.timeout(10):
            _, writer = await asyncio.open_connection(host, port)
    except (OSError, TimeoutError) as exc:
        if isinstance(exc, OSError) and exc.errno:
            return os.strerror(exc.errno)
        return str(exc) or "timed out"
    writer.close()
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `tuichat`; returns the exit status."""
    args = parse_args(argv)
    problem = asyncio.run(_reachable(args.host, args.port))
    if problem is not None:
        print(
            f"tuichat: cannot reach a server at {args.host}:{args.port}: {problem}", file=sys.stderr
        )
        return 1
    from tuichat.app.app import ChatApp

    async def connector(name: str) -> ChatClient:
        return await ChatClient.connect(name, args.host, args.port, reconnect=True)

    app = ChatApp(connector, args.name, server_label=f"{args.host}:{args.port}")
    app.run()
    return app.return_code or 0


if __name__ == "__main__":
    sys.exit(main())
