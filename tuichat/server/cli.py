"""`tuichat-server`: run a chat server from the command line."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import socket
import sqlite3
import ssl
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import platformdirs

from tuichat import DEFAULT_PORT, __version__
from tuichat.chat import ChatLimits
from tuichat.server import admins
from tuichat.server.admins import default_admins_path
from tuichat.server.admission import parse_network
from tuichat.server.broker import BrokerRefused
from tuichat.server.config import DEFAULT_HOST, RateLimits, ServerConfig
from tuichat.server.history import HistoryRefused
from tuichat.server.server import ChatServer

log = logging.getLogger("tuichat.server")


def positive_int(text: str) -> int:
    """Parse a command-line value that must be a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is too small (the least is 1)")
    return value


def positive_float(text: str) -> float:
    """Parse a command-line value that must be a number above 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{value} must be above 0")
    return value


def prefix_length(longest: int) -> Callable[[str], int]:
    """Return a parser of a network prefix length: a whole number from 0 to `longest`."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not 0 <= value <= longest:
            raise argparse.ArgumentTypeError(f"{value} is not a prefix length (0 to {longest})")
        return value

    return parse


def network(text: str) -> str:
    """Parse an address or a network in CIDR form (`10.0.0.0/8`, `2001:db8::/32`, `192.0.2.7`)."""
    try:
        return str(parse_network(text))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an address or network (e.g. 10.0.0.0/8, 2001:db8::/32)"
        ) from None


def default_db_path() -> Path:
    """Where the history lives unless `--db` says otherwise."""
    return Path(platformdirs.user_data_dir("tuichat")) / "history.sqlite3"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Return the parsed command line."""
    defaults = ChatLimits()
    parser = argparse.ArgumentParser(
        prog="tuichat-server",
        description="Run a tuichat server. Clients connect with: tuichat --host HOST --name NAME",
    )
    parser.add_argument(
        "--host",
        default=DEFAULT_HOST,
        help=f"address to listen on (default {DEFAULT_HOST}; 0.0.0.0 to accept other machines)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help=f"TCP port (default {DEFAULT_PORT}; 0 picks a free one)",
    )
    parser.add_argument(
        "--name",
        default=socket.gethostname(),
        help="server name shown to clients (default: host name)",
    )
    parser.add_argument(
        "--admins",
        metavar="FILE",
        default=str(default_admins_path()),
        help="the server's admins, a name or ed25519:<key> a line, read again when it changes "
        "(default %(default)s; edit it with: tuichat-server admin add NAME)",
    )
    parser.add_argument("--tls-cert", metavar="FILE", help="PEM certificate chain: serve TLS")
    parser.add_argument("--tls-key", metavar="FILE", help="PEM private key of --tls-cert")
    parser.add_argument("--motd", default="", help="welcome line sent to every user who connects")
    history = parser.add_mutually_exclusive_group()
    history.add_argument(
        "--db",
        default=str(default_db_path()),
        help=f"SQLite file for the history (default {default_db_path()})",
    )
    history.add_argument(
        "--redis",
        metavar="URL",
        help="share rooms, presence and history with other servers through this Redis "
        "(redis://HOST:PORT/DB; needs pip install 'tuichat[redis]')",
    )
    parser.add_argument(
        "--redis-cluster",
        action="store_true",
        help="the --redis URL names a node of a Redis Cluster (the others are found from it)",
    )
    history.add_argument(
        "--no-history",
        action="store_true",
        help="keep only the last 1,000 messages of each room, in memory",
    )
    parser.add_argument(
        "--no-search-index",
        action="store_true",
        help="do not index new messages for search (a smaller history file; search then "
        "finds only what was indexed before)",
    )
    config = ServerConfig()
    rate = config.rate
    limits: list[tuple[str, Any, Any, str]] = [
        ("--max-frame", positive_int, config.max_frame,
         "largest frame accepted from a client, in bytes"),
        ("--max-text-bytes", positive_int, defaults.max_text_bytes,
         "longest message text, in UTF-8 bytes"),
        ("--max-text-lines", positive_int, defaults.max_text_lines, "lines in one message"),
        ("--max-rooms-per-user", positive_int, defaults.max_rooms_per_user,
         "rooms one user may be in at once"),
        ("--max-devices", positive_int, defaults.max_devices,
         "sessions (devices) one user with a key may have open at once"),
        ("--member-list", positive_int, config.member_list,
         "names a member list holds at most; in a room of more members, lists are pages and "
         "presence says how many, not who"),
        ("--heartbeat-interval", positive_float, config.heartbeat_interval,
         "seconds of silence after which a client is pinged"),
        ("--heartbeat-timeout", positive_float, config.heartbeat_timeout,
         "seconds of silence after which a client is dropped"),
        ("--hello-timeout", positive_float, config.hello_timeout,
         "seconds a new connection has to say hello"),
        ("--frame-timeout", positive_float, config.frame_timeout,
         "seconds a frame's body has to arrive once its length has"),
        ("--max-connections", positive_int, config.max_connections, "connections in all"),
        ("--max-connections-per-ip", positive_int, config.max_connections_per_ip,
         "connections from one address"),
        ("--max-connections-per-prefix", positive_int, config.max_connections_per_prefix,
         "connections from one network (an address's --ipv4-prefix or --ipv6-prefix)"),
        ("--ipv4-prefix", prefix_length(32), config.ipv4_prefix,
         "bits of an IPv4 address that name its network, for the limits per network"),
        ("--ipv6-prefix", prefix_length(128), config.ipv6_prefix,
         "bits of an IPv6 address that name its network, for the limits per network"),
        ("--connections-per-second", positive_float, config.connections_per_second,
         "new connections per second one network may keep up"),
        ("--connection-burst", positive_int, config.connection_burst,
         "new connections one network may open at once"),
        ("--messages-per-second", positive_float, rate.messages_per_second,
         "requests per second one connection may keep up"),
        ("--message-burst", positive_int, rate.message_burst,
         "requests one connection may send at once"),
        ("--text-bytes-per-second", positive_float, rate.bytes_per_second,
         "message text bytes per second one connection may keep up"),
        ("--text-byte-burst", positive_int, rate.byte_burst,
         "message text bytes one connection may send at once"),
        ("--flood-strikes", positive_int, rate.strikes,
         "refused requests (one forgiven per second) before a connection is dropped"),
        ("--address-share", positive_float, rate.address_share,
         "all connections of one address may send this many times what one connection may"),
        ("--private-messages-per-second", positive_float, rate.private_pair_per_second,
         "private messages per second from one sender (and one address) to one user"),
        ("--private-message-burst", positive_int, rate.private_pair_burst,
         "private messages from one sender to one user at once"),
        ("--registrations-per-hour", positive_int, rate.registrations_per_hour,
         "names one network may register per hour"),
        ("--new-rooms-per-hour", positive_int, rate.new_rooms_per_hour,
         "rooms nobody is in that one network may open per hour"),
        ("--moderation-per-second", positive_float, rate.moderation_per_second,
         "moderation requests per second from one user (kick, ban, topic, ignore, ...)"),
        ("--moderation-burst", positive_int, rate.moderation_burst,
         "moderation requests one user may make at once"),
        ("--searches-per-second", positive_float, rate.searches_per_second,
         "searches per second from one user"),
        ("--search-burst", positive_int, rate.search_burst,
         "searches one user may make at once"),
        ("--max-pending-write", positive_int, config.max_pending_write,
         "bytes that may wait to be written to one client before it is dropped as too slow"),
        ("--max-pending-total", positive_int, config.max_pending_total,
         "bytes that may wait for all clients together; past it the furthest behind are dropped"),
        ("--redis-history", positive_int, config.redis_history,
         "with --redis: messages kept per room in Redis"),
        ("--presence-ttl", positive_float, config.presence_ttl,
         "with --redis: seconds until the users of a server that died are shown as gone"),
    ]  # fmt: skip
    for flag, kind, default, meaning in limits:
        parser.add_argument(flag, type=kind, default=default, help=f"{meaning} (default {default})")
    parser.add_argument(
        "--exempt",
        action="append",
        type=network,
        default=[],
        metavar="NETWORK",
        help="an address or network (10.0.0.0/8) that no limit per address or per network "
        "applies to; repeat for more",
    )
    parser.add_argument(
        "--proxy-from",
        action="append",
        type=network,
        default=[],
        metavar="NETWORK",
        help="a load balancer's address or network: its connections must begin with a PROXY "
        "header (v1 or v2, before TLS), and the client address in it is the one limited and "
        "logged; repeat for more",
    )
    parser.add_argument(
        "--reuse-port",
        action="store_true",
        help="listen with SO_REUSEPORT: several server processes on one Redis share the port "
        "and the kernel spreads new connections over them (one process per core)",
    )
    parser.add_argument(
        "--event-loop",
        default="auto",
        choices=["auto", "uvloop", "asyncio"],
        help="auto: uvloop when it is installed (pip install 'tuichat[fast]'), else asyncio's own",
    )
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    parser.add_argument("--version", action="version", version=f"tuichat-server {__version__}")
    return parser.parse_args(argv)


def config_from_args(args: argparse.Namespace) -> ServerConfig:
    """Return the server configuration the command line asks for."""
    return ServerConfig(
        host=args.host,
        port=args.port,
        server_name=args.name,
        motd=args.motd,
        max_frame=args.max_frame,
        chat=ChatLimits(
            max_text_bytes=args.max_text_bytes,
            max_rooms_per_user=args.max_rooms_per_user,
            max_text_lines=args.max_text_lines,
            max_devices=args.max_devices,
        ),
        db=None if args.no_history or args.redis else args.db,
        search_index=not args.no_search_index,
        redis_url=args.redis,
        redis_cluster=args.redis_cluster,
        redis_history=args.redis_history,
        presence_ttl=args.presence_ttl,
        member_list=args.member_list,
        heartbeat_interval=args.heartbeat_interval,
        heartbeat_timeout=max(args.heartbeat_timeout, args.heartbeat_interval),
        hello_timeout=args.hello_timeout,
        frame_timeout=args.frame_timeout,
        max_connections=args.max_connections,
        max_connections_per_ip=args.max_connections_per_ip,
        max_connections_per_prefix=args.max_connections_per_prefix,
        ipv4_prefix=args.ipv4_prefix,
        ipv6_prefix=args.ipv6_prefix,
        connections_per_second=args.connections_per_second,
        connection_burst=args.connection_burst,
        exempt=tuple(args.exempt),
        proxy_from=tuple(args.proxy_from),
        reuse_port=args.reuse_port,
        rate=RateLimits(
            messages_per_second=args.messages_per_second,
            message_burst=args.message_burst,
            bytes_per_second=args.text_bytes_per_second,
            byte_burst=args.text_byte_burst,
            strikes=args.flood_strikes,
            address_share=args.address_share,
            private_pair_per_second=args.private_messages_per_second,
            private_pair_burst=args.private_message_burst,
            registrations_per_hour=args.registrations_per_hour,
            new_rooms_per_hour=args.new_rooms_per_hour,
            moderation_per_second=args.moderation_per_second,
            moderation_burst=args.moderation_burst,
            searches_per_second=args.searches_per_second,
            search_burst=args.search_burst,
        ),
        max_pending_write=args.max_pending_write,
        max_pending_total=args.max_pending_total,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        admins_file=args.admins,
    )


async def serve(config: ServerConfig) -> None:
    """Run the server until SIGINT or SIGTERM, then say goodbye to every client."""
    server = ChatServer(config)
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down: telling %d client(s)", len(server.sessions))
    await server.stop()


def loop_factory(choice: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """Return how to make the event loop `--event-loop` asks for (None: asyncio's own)."""
    if choice == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise
        return None
    return uvloop.new_event_loop


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `tuichat-server`; returns the exit status."""
    arguments = sys.argv[1:] if argv is None else list(argv)
    if arguments[:1] == ["admin"]:
        return admins.main(arguments[1:])
    args = parse_args(arguments)
    if bool(args.tls_cert) != bool(args.tls_key):
        print("tuichat-server: --tls-cert and --tls-key go together", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=args.log_level,
        format="%(asctime)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    try:
        factory = loop_factory(args.event_loop)
    except ImportError:
        print(
            "tuichat-server: uvloop is not installed: pip install 'tuichat[fast]'",
            file=sys.stderr,
        )
        return 2
    log.info("event loop: %s", "uvloop" if factory else "asyncio")
    try:
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(serve(config_from_args(args)))
    except OSError as exc:
        log.error("cannot listen on %s:%d: %s", args.host, args.port, exc.strerror or exc)
        return 1
    except (sqlite3.Error, HistoryRefused) as exc:
        log.error("cannot open the history %s: %s", args.db, exc)
        return 1
    except ssl.SSLError as exc:
        log.error("cannot use the TLS certificate %s: %s", args.tls_cert, exc)
        return 1
    except BrokerRefused as exc:
        log.error("cannot start on %s: %s", args.redis, exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
