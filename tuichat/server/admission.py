"""Who may connect: connections at once per address and per network, new connections per network.

A plain object told the time by its caller, like `TokenBucket`: the server asks `admit` when a
connection arrives and calls `release` when an admitted one ends. A network is an address's
prefix (IPv4 /24 and IPv6 /64 by default): an attacker with many addresses usually has them
in few networks, while a classroom behind one NAT address is one address of one network.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from tuichat.protocol import ErrorCode, ProtocolError
from tuichat.server.config import ServerConfig
from tuichat.server.limits import KeyedBuckets

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

REPORT_EVERY = 10.0
"""Seconds between two log lines about refusals of the same network."""
WHOLE_SERVER = "*"
"""The network of a refusal that is no network's fault (the server is full)."""


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a connection is refused, and whether to log it now."""

    error: ProtocolError
    """The fatal error the connection gets before it is closed."""
    network: str
    """The network (`203.0.113.0/24`) the refusal counts against, or `WHOLE_SERVER`."""
    report: int
    """0: stay quiet; else the refusals from `network` since its last log line, this one too."""


def parse_network(text: str) -> IPNetwork:
    """Return the network `text` names (`10.0.0.0/8`, `192.0.2.7`); raise `ValueError` if none.

    Host bits are dropped: `10.1.2.3/8` is `10.0.0.0/8`.
    """
    return ipaddress.ip_network(text.strip(), strict=False)


def parse_address(text: str) -> IPAddress | None:
    """Return the IP address in `text`, an IPv4-mapped IPv6 address as IPv4; None if not one."""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address.scope_id is not None:
            return ipaddress.IPv6Address(int(address))
    return address


class Networks:
    """A list of networks, for asking whether an address is in one of them."""

    def __init__(self, networks: tuple[str, ...]) -> None:
        self.networks = tuple(parse_network(n) for n in networks)

    def __contains__(self, address: object) -> bool:
        return any(address in network for network in self.networks)

    def __bool__(self) -> bool:
        return bool(self.networks)


class Admission:
    """Counts connections in and out, and refuses those over a limit.

    In this order: the server's `max_connections` (exempt addresses too), then, for an address
    not exempt, `max_connections_per_ip` for the address, `max_connections_per_prefix` for its
    network, and the network's token bucket of new connections. Only an admitted connection
    takes a token, so clients that retry after a refusal do not keep their network locked out.
    """

    def __init__(self, config: ServerConfig) -> None:
        if not 0 <= config.ipv4_prefix <= 32:
            raise ValueError(f"an IPv4 prefix is 0 to 32 bits long, not {config.ipv4_prefix}")
        if not 0 <= config.ipv6_prefix <= 128:
            raise ValueError(f"an IPv6 prefix is 0 to 128 bits long, not {config.ipv6_prefix}")
        self.config = config
        self.exempt = Networks(config.exempt)
        """Addresses that no limit per address or per network applies to."""
        self.balancers = Networks(config.proxy_from)
        """Load balancers whose connections begin with a PROXY header naming the client."""
        self.connections = 0
        """Connections admitted and not yet released."""
        self._per_address: dict[str, int] = {}
        self._per_network: dict[str, int] = {}
        self._buckets = KeyedBuckets(config.connections_per_second, config.connection_burst)
        """New connections per network (those that connected lately and are not full)."""
        self._reports: dict[str, tuple[float, int]] = {}
        """Per network refused lately: when its last log line was, refusals since (oldest first)."""

    def admit(self, address: str, now: float) -> Refusal | None:
        """Count a new connection from `address` in (and return None), or say why it is refused."""
        config = self.config
        if self.connections >= config.max_connections:
            return self._refuse(
                ErrorCode.SERVER_FULL, "the server is full; try again later", WHOLE_SERVER, now
            )
        ip = parse_address(address)
        if ip is not None and ip in self.exempt:
            self.connections += 1
            return None
        key = address if ip is None else str(ip)
        if self._per_address.get(key, 0) >= config.max_connections_per_ip:
            return self._refuse(
                ErrorCode.TOO_MANY_CONNECTIONS,
                f"at most {config.max_connections_per_ip} connections from one address",
                key,
                now,
            )
        network = key if ip is None else self.network(ip)
        if self._per_network.get(network, 0) >= config.max_connections_per_prefix:
            return self._refuse(
                ErrorCode.TOO_MANY_CONNECTIONS,
                f"at most {config.max_connections_per_prefix} connections from one network "
                f"({network})",
                network,
                now,
            )
        if not self._buckets.take(network, 1, now):
            wait = min(self._buckets.wait(network, 1, now), 60.0)
            return self._refuse(
                ErrorCode.TOO_MANY_CONNECTIONS,
                f"too many new connections from one network ({network}); "
                f"try again in {max(wait, 0.1):.1f} s",
                network,
                now,
            )
        self.connections += 1
        self._per_address[key] = self._per_address.get(key, 0) + 1
        self._per_network[network] = self._per_network.get(network, 0) + 1
        return None

    def release(self, address: str) -> None:
        """A connection that `admit` let in from `address` ended: count it out."""
        self.connections -= 1
        ip = parse_address(address)
        if ip is not None and ip in self.exempt:
            return
        key = address if ip is None else str(ip)
        _decrement(self._per_address, key)
        _decrement(self._per_network, key if ip is None else self.network(ip))

    def network(self, ip: IPAddress) -> str:
        """Return the network `ip` counts against, as text (`203.0.113.0/24`)."""
        if isinstance(ip, ipaddress.IPv4Address):
            bits, width = self.config.ipv4_prefix, 32
        else:
            bits, width = self.config.ipv6_prefix, 128
        host_bits = width - bits
        return str(ipaddress.ip_network((int(ip) >> host_bits << host_bits, bits)))

    def count(self, address: str) -> tuple[int, int]:
        """Return the connections counted from `address` and from its network."""
        ip = parse_address(address)
        key = address if ip is None else str(ip)
        network = key if ip is None else self.network(ip)
        return self._per_address.get(key, 0), self._per_network.get(network, 0)

    @property
    def tracked(self) -> int:
        """Networks with a token bucket kept (those that connected lately and are not full)."""
        return len(self._buckets)

    def _refuse(self, code: ErrorCode, detail: str, network: str, now: float) -> Refusal:
        """A refusal, logged at most once per network every `REPORT_EVERY` seconds."""
        while self._reports:  # forget networks that were quiet for long
            oldest, (reported, _) = next(iter(self._reports.items()))
            if now - reported < 2 * REPORT_EVERY:
                break
            del self._reports[oldest]
        reported, count = self._reports.pop(network, (float("-inf"), 0))
        count += 1
        if now - reported >= REPORT_EVERY:
            self._reports[network] = (now, 0)
            return Refusal(ProtocolError(code, detail), network, count)
        self._reports[network] = (reported, count)
        return Refusal(ProtocolError(code, detail), network, 0)


def _decrement(counts: dict[str, int], key: str) -> None:
    left = counts.get(key, 1) - 1
    if left > 0:
        counts[key] = left
    else:
        counts.pop(key, None)
