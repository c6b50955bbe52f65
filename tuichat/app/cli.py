"""`tuichat`: open the full-screen chat."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import ssl
import sys
from collections.abc import Sequence
from pathlib import Path

from tuichat import DEFAULT_PORT, __version__
from tuichat.app.identity import IdentityError, IdentityStore, default_path
from tuichat.client import ChatClient


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Return the parsed command line."""
    parser = argparse.ArgumentParser(prog="tuichat", description="Open a tuichat chat.")
    parser.add_argument("--host", default="127.0.0.1", help="server address (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"server port (default {DEFAULT_PORT})"
    )
    parser.add_argument("--name", default=_default_name(), help="your name (default: your login)")
    parser.add_argument(
        "--tls", action="store_true", help="connect with TLS, verifying the server's certificate"
    )
    parser.add_argument(
        "--ca", metavar="FILE", help="trust the CA certificates in FILE (PEM) for --tls"
    )
    parser.add_argument(
        "--export-identity",
        metavar="NAME",
        help="print the line that lets another device use NAME, then exit",
    )
    parser.add_argument(
        "--import-identity",
        metavar="LINE",
        help="store an identity line made by --export-identity on another device, then exit"
        " ('-' reads it from standard input, out of the shell's history)",
    )
    parser.add_argument(
        "--trust-address",
        action="store_true",
        help="sign in even if this server claims to be a chat you know at another address",
    )
    parser.add_argument(
        "--identities", type=Path, default=None, help=f"identity file (default {default_path()})"
    )
    parser.add_argument("--version", action="version", version=f"tuichat {__version__}")
    return parser.parse_args(argv)


def tls_context(ca: str | None) -> ssl.SSLContext:
    """A client TLS context that verifies the server (against `ca`, or the system's CAs)."""
    return ssl.create_default_context(cafile=ca)


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
    identities = IdentityStore(args.identities)
    if args.export_identity:
        print(identities.export(args.export_identity))
        print("tuichat: keep this line secret: whoever has it owns the name", file=sys.stderr)
        return 0
    if args.import_identity:
        line = sys.stdin.readline() if args.import_identity == "-" else args.import_identity
        try:
            name = identities.import_line(line)
        except IdentityError as exc:
            print(f"tuichat: {exc}", file=sys.stderr)
            return 1
        print(f"tuichat: this device can now use the name {name}")
        return 0
    problem = asyncio.run(_reachable(args.host, args.port))
    if problem is not None:
        print(
            f"tuichat: cannot reach a server at {args.host}:{args.port}: {problem}", file=sys.stderr
        )
        return 1
    from tuichat.app.app import ChatApp

    tls = tls_context(args.ca) if args.tls or args.ca else None

    address = f"{args.host.lower()}:{args.port}"

    async def connector(name: str) -> ChatClient:
        identity = identities.identity_for(name)
        return await ChatClient.connect(
            name,
            args.host,
            args.port,
            ssl_context=tls,
            reconnect=True,
            key=identity.key,
            legacy_key=identity.legacy,
            pins=identities.pins(name, address, trust_address=args.trust_address),
        )

    app = ChatApp(connector, args.name, server_label=f"{args.host}:{args.port}")
    app.run()
    return app.return_code or 0


if __name__ == "__main__":
    sys.exit(main())
