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
    search_index: bool = True
    """Index new messages of the SQLite history for search (off: a smaller file, and search
    finds only what was indexed before)."""
    member_list: int = 200
    """Names a member list (`welcome`, `room_state`, `user_list`) holds at most. In a room of
    more members a list is a first page (`who` gives the next), and presence is written as
    counts: a crowd of N costs O(N) bytes, not O(N²)."""
    heartbeat_interval: float = 10.0
    """Seconds of silence from a client after which the server pings it."""
    heartbeat_timeout: float = 30.0
    """Seconds of silence after which a client is dropped (and its leave announced)."""
    hello_timeout: float = 10.0
    """Seconds a new connection has to send its `hello`."""
    frame_timeout: float = 10.0
    """Seconds a frame's body has to arrive once its length has."""
    max_connections: int = 10_000
    max_connections_per_ip: int = 100
    rate: RateLimits = field(default_factory=lambda: RateLimits())
    tls_cert: str | None = None
    """PEM certificate chain; with `tls_key`, clients must speak TLS."""
    tls_key: str | None = None
    max_pending_write: int = 1024 * 1024
    """Bytes that may wait to be written to one client; a client that reads slower is dropped."""
    max_pending_total: int = 256 * 1024 * 1024
    """Bytes that may wait for all clients together; past it, those furthest behind are dropped."""
    redis_url: str | None = None
    """Share the chat with other servers through this Redis (`redis://host:port/db`)."""
    redis_cluster: bool = False
    """`redis_url` names a node of a Redis Cluster (the others are found from it)."""
    redis_history: int = 100_000
    """Messages kept per room (and per user's private messages) in Redis."""
    presence_ttl: float = 10.0
    """With Redis: seconds after which the users of a server that stopped refreshing are gone."""
    max_connections_per_prefix: int = 200
    """Connections from one network (an IPv4 /`ipv4_prefix`, an IPv6 /`ipv6_prefix`) at once."""
    ipv4_prefix: int = 24
    """Length of the IPv4 prefix that makes one network for the limits per network."""
    ipv6_prefix: int = 64
    """Length of the IPv6 prefix that makes one network for the limits per network."""
    connections_per_second: float = 5.0
    """New connections admitted per second from one network, kept up (a token bucket's refill)."""
    connection_burst: int = 100
    """New connections one network may open at once (the bucket's size): a classroom behind one
    NAT address connecting together."""
    exempt: tuple[str, ...] = ()
    """Addresses and networks (`10.0.0.0/8`, `2001:db8::/32`, `192.0.2.7`) that no limit per
    address or per network applies to (`max_connections` still does)."""
    admins: tuple[str, ...] = ()
    """The server's admins: registered names, or key owners (`ed25519:<key>`)."""
    admins_file: str | None = None
    """A file of more admins, one a line (see `tuichat.server.admins`), read again when it
    changes."""
    proxy_from: tuple[str, ...] = ()
    """Load balancers (addresses or networks) whose connections must begin with a PROXY header
    (v1 or v2, before TLS); the client address it names is the one limits and logs see."""
    reuse_port: bool = False
    """Listen with SO_REUSEPORT, so that several server processes on one broker share the port
    (the kernel spreads new connections over them)."""


@dataclass(frozen=True, slots=True)
class RateLimits:
    """Token buckets per connection: requests and text bytes, with room for bursts."""

    messages_per_second: float = 10.0
    message_burst: int = 30
    bytes_per_second: float = 16 * 1024
    byte_burst: int = 64 * 1024
    strikes: int = 30
    """Refused requests (refilled one per second) before the connection is dropped."""
    address_share: float = 5.0
    """The requests and text bytes of all connections from one address together may be this
    many times those of one connection (and one user's, on all devices, those of one)."""
    private_pair_per_second: float = 2.0
    """Private messages per second from one sender (and from one address) to one user."""
    private_pair_burst: int = 20
    registrations_per_hour: int = 20
    """Names one network (see `ipv4_prefix`, `ipv6_prefix`) may register per hour."""
    new_rooms_per_hour: int = 60
    """Rooms nobody was in that one network may open per hour (by joining or resuming)."""
    moderation_per_second: float = 1.0
    """Moderation requests per second from one user, on all devices (ignoring someone and
    reading the moderation log included)..."""
    moderation_burst: int = 10
    """...with this many at once."""
    searches_per_second: float = 1.0
    """Searches per second from one user, on all devices (a search reads the index)..."""
    search_burst: int = 10
    """...with this many at once."""

    @classmethod
    def unlimited(cls) -> RateLimits:
        """No flood control (for benchmarks and tests that send as fast as they can)."""
        return cls(
            1e12, 10**12, 1e12, 10**12, 10**12, 1.0, 1e12, 10**12, 10**12, 10**12, 1e12, 10**12,
            1e12, 10**12,
        )  # fmt: skip
