"""`tuichat`: open the full-screen chat."""

from __future__ import annotations

import argparse
import asyncio
import os
import ssl
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from tuichat import DEFAULT_PORT, __version__
from tuichat.app import config as settings
from tuichat.app.config import Config, ConfigError
from tuichat.app.identity import IdentityError, IdentityStore, default_path
from tuichat.client import ChatClient


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Return the parsed command line."""
    parser = argparse.ArgumentParser(
        prog="tuichat",
        description="Open a tuichat chat. Flags win over the settings file, which wins over"
        " the built-in defaults.",
    )
    # Defaults are None ("not given"), so that the settings file fills what the flags leave.
    parser.add_argument("--host", help=f"server address (default {settings.DEFAULT_HOST})")
    parser.add_argument("--port", type=int, help=f"server port (default {DEFAULT_PORT})")
    parser.add_argument("--name", help="your name (default: your login)")
    parser.add_argument(
        "--tls",
        action=argparse.BooleanOptionalAction,
        help="connect with TLS, verifying the server's certificate (--no-tls: without)",
    )
    parser.add_argument(
        "--ca", metavar="FILE", help="trust the CA certificates in FILE (PEM); implies --tls"
    )
    files = parser.add_mutually_exclusive_group()
    files.add_argument(
        "--config",
        metavar="FILE",
        type=Path,
        help=f"read the settings from FILE (default {settings.default_path()})",
    )
    files.add_argument(
        "--no-config", action="store_true", help="ignore the settings file: flags and defaults"
    )
    parser.add_argument(
        "--print-config",
        action="store_true",
        help="print a settings file with every setting at its default, then exit",
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


def config_from_args(args: argparse.Namespace) -> Config:
    """Return the settings: each flag given, else the settings file's, else the default.

    Raises `ConfigError` if the file is wrong, or if `--config` names a file that is not there.
    """
    config = Config() if args.no_config else settings.load_config(args.config)
    server = config.server
    tls = server.tls if args.tls is None else args.tls
    if args.ca is not None and args.tls is None:
        tls = True  # --ca alone means TLS, as before there was a settings file
    return replace(
        config,
        name=config.name if args.name is None else args.name,
        server=replace(
            server,
            host=server.host if args.host is None else args.host,
            port=server.port if args.port is None else args.port,
            tls=tls,
            ca=server.ca if args.ca is None else Path(args.ca),
        ),
    )


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
    if args.print_config:
        print(settings.example(), end="")
        return 0
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
    try:
        config = config_from_args(args)
    except ConfigError as exc:
        print(f"tuichat: {exc}", file=sys.stderr)
        return 2
    host, port = config.server.host, config.server.port
    problem = asyncio.run(_reachable(host, port))
    if problem is not None:
        print(f"tuichat: cannot reach a server at {host}:{port}: {problem}", file=sys.stderr)
        return 1
    from tuichat.app.app import ChatApp

    ca = config.server.ca
    tls = tls_context(None if ca is None else str(ca)) if config.server.tls else None

    address = f"{host.lower()}:{port}"

    async def connector(name: str) -> ChatClient:
        identity = identities.identity_for(name)
        return await ChatClient.connect(
            name,
            host,
            port,
            ssl_context=tls,
            reconnect=True,
            key=identity.key,
            legacy_key=identity.legacy,
            pins=identities.pins(name, address, trust_address=args.trust_address),
        )

    app = ChatApp(connector, config.name, server_label=f"{host}:{port}", config=config)
    app.run()
    return app.return_code or 0


if __name__ == "__main__":
    sys.exit(main())
