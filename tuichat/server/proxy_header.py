"""The PROXY protocol header (versions 1 and 2) a load balancer puts before a client's bytes.

Without I/O: feed what the connection sent to `ProxyHeaderParser.receive_data`; it returns None
until the header is complete, then the `ProxyHeader`, and keeps what followed it in `trailing`.
A byte that cannot belong to a valid header raises `ProxyHeaderError` at once (the only exception
that leaves the parser), and the parser then refuses everything. It never holds more than a
header's worth: 107 bytes for version 1, 16 plus `max_body` for version 2.

The format is HAProxy's `doc/proxy-protocol.txt` (2020/03/05). TLVs are split and handed over,
not interpreted; the CRC32C TLV is not verified (the specification asks that of receivers that
support it). Only TCP over IPv4 or IPv6 names a client: LOCAL (a balancer's health check), v1
UNKNOWN, and the other families (UNSPEC, UDP, UNIX) mean "use the connection's own address",
their address block ignored, as the specification allows.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass

V1_PREFIX = b"PROXY "
V1_MAX = 107
"""Longest version 1 header, its CRLF included."""
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V2_FIXED = 16
"""The signature, the version and command, the family and transport, the length."""
MAX_V2_BODY = 4096
"""Most bytes after a version 2 header's fixed part that we accept: addresses and TLVs (the
format allows 65,535; balancers send a few hundred at most)."""

_LOCAL, _PROXY = 0x0, 0x1
_TCP4, _TCP6 = 0x11, 0x21
_V1_PROTOCOLS = (b"TCP4 ", b"TCP6 ", b"UNKNOWN ")
"""What follows `PROXY ` (`UNKNOWN` may also end the line)."""
_V1_CHARS = {
    b"TCP4 ": frozenset(b"0123456789. "),
    b"TCP6 ": frozenset(b"0123456789abcdefABCDEF:. "),
}
"""What may follow `PROXY TCP4 ` and `PROXY TCP6 ` up to the CRLF."""
_PRINTABLE = frozenset(range(0x20, 0x7F))


class ProxyHeaderError(Exception):
    """What was received is not a valid PROXY header: the connection must be closed."""


@dataclass(frozen=True, slots=True)
class ProxyHeader:
    """A complete header: who the client is, or None when the balancer speaks for itself."""

    version: int
    """1 (text) or 2 (binary)."""
    source: tuple[str, int] | None
    """The client's address and port; None for LOCAL, UNKNOWN and families other than TCP over
    IPv4 or IPv6: then the connection's own address is the one to use."""
    destination: tuple[str, int] | None = None
    """The address and port the client connected to (on the balancer)."""
    tlvs: tuple[tuple[int, bytes], ...] = ()
    """Version 2's type-length-value extensions, in order, as (type, value)."""


class ProxyHeaderParser:
    """Reads one PROXY header from the start of a connection."""

    def __init__(self, max_body: int = MAX_V2_BODY) -> None:
        self.max_body = max_body
        self.header: ProxyHeader | None = None
        self.trailing = b""
        """What came after the header: the client's own bytes."""
        self._buffer = b""
        self._error: str | None = None

    def receive_data(self, data: bytes) -> ProxyHeader | None:
        """Take bytes from the connection; return the header once it is complete, else None.

        Raises `ProxyHeaderError` as soon as the bytes cannot begin a valid header, and again
        on every later call.
        """
        if self._error is not None:
            raise ProxyHeaderError(self._error)
        if self.header is not None:
            self.trailing += data
            return self.header
        try:
            return self._receive(data)
        except ProxyHeaderError as exc:
            self._error = str(exc)
            self._buffer = b""
            raise

    def _receive(self, data: bytes) -> ProxyHeader | None:
        first = (self._buffer or data)[:1]
        parse: Callable[[bytes], tuple[ProxyHeader | None, int]]
        if not first:
            return None
        if first == V1_PREFIX[:1]:
            cap, parse = V1_MAX, self._v1
        elif first == V2_SIGNATURE[:1]:
            cap, parse = V2_FIXED + self.max_body, self._v2
        else:
            raise ProxyHeaderError("the connection does not begin with a PROXY header")
        room = cap - len(self._buffer)
        buffer = self._buffer + data[:room]
        header, used = parse(buffer)
        if header is None:  # all of `buffer` belongs to the header, which is not longer than `cap`
            self._buffer = buffer
            return None
        self._buffer = b""
        self.header = header
        self.trailing = buffer[used:] + data[room:]
        return header

    # --- version 1 ---------------------------------------------------------------------------

    def _v1(self, buffer: bytes) -> tuple[ProxyHeader | None, int]:
        end = buffer.find(b"\r\n", 0, V1_MAX)
        if end >= 0:
            _check_v1_start(buffer[:end])
            return _parse_v1(buffer[:end]), end + 2
        line = buffer.removesuffix(b"\r")  # its LF may come next
        if b"\r" in line or b"\n" in line:
            raise ProxyHeaderError("a version 1 PROXY header has a CR or LF before its CRLF")
        _check_v1_start(line)
        if len(buffer) >= V1_MAX:
            raise ProxyHeaderError(f"no CRLF in the first {V1_MAX} bytes of a PROXY header")
        return None, 0

    # --- version 2 ---------------------------------------------------------------------------

    def _v2(self, buffer: bytes) -> tuple[ProxyHeader | None, int]:
        if not V2_SIGNATURE.startswith(buffer[: len(V2_SIGNATURE)]):
            raise ProxyHeaderError("the connection does not begin with a PROXY header")
        if len(buffer) > 12:
            version, command = buffer[12] >> 4, buffer[12] & 0xF
            if version != 2:
                raise ProxyHeaderError(f"PROXY header version {version} (only 1 and 2 exist)")
            if command not in (_LOCAL, _PROXY):
                raise ProxyHeaderError(f"unknown PROXY command {command}")
            if len(buffer) > 13 and command == _PROXY:  # LOCAL ignores the family
                family, transport = buffer[13] >> 4, buffer[13] & 0xF
                if family > 3 or transport > 2:
                    raise ProxyHeaderError(f"unknown PROXY family and transport {buffer[13]:#04x}")
        if len(buffer) < V2_FIXED:
            return None, 0
        length = int.from_bytes(buffer[14:16], "big")
        if length > self.max_body:
            raise ProxyHeaderError(
                f"a PROXY header of {V2_FIXED + length} bytes (at most {V2_FIXED + self.max_body})"
            )
        if len(buffer) < V2_FIXED + length:
            return None, 0
        return _parse_v2(buffer[: V2_FIXED + length]), V2_FIXED + length


def _check_v1_start(line: bytes) -> None:
    """Refuse a version 1 line (no CR or LF in it) as soon as it cannot begin a valid one."""
    if not V1_PREFIX.startswith(line[: len(V1_PREFIX)]):
        raise ProxyHeaderError("the connection does not begin with a PROXY header")
    if not _PRINTABLE.issuperset(line):
        raise ProxyHeaderError("a version 1 PROXY header holds a byte that is not printable ASCII")
    protocol = line[len(V1_PREFIX) : len(V1_PREFIX) + 8]
    if not any(known.startswith(protocol) or protocol.startswith(known) for known in _V1_PROTOCOLS):
        raise ProxyHeaderError("a version 1 PROXY header names no known protocol")
    allowed = _V1_CHARS.get(protocol[:5])
    if allowed is not None and not allowed.issuperset(line[len(V1_PREFIX) + 5 :]):
        raise ProxyHeaderError(f"a character that is in no {protocol[:4].decode()} address")


def _parse_v1(line: bytes) -> ProxyHeader:
    """Parse a whole version 1 line (without its CRLF)."""
    if line == b"PROXY UNKNOWN" or line.startswith(b"PROXY UNKNOWN "):
        return ProxyHeader(1, None)  # whatever follows UNKNOWN is ignored
    fields = line.split(b" ")
    if len(fields) != 6:
        raise ProxyHeaderError("a version 1 PROXY header has 6 fields, one space apart")
    _, protocol, source, destination, source_port, destination_port = fields
    kind = ipaddress.IPv4Address if protocol == b"TCP4" else ipaddress.IPv6Address
    return ProxyHeader(
        1,
        (_v1_address(kind, source), _v1_port(source_port)),
        (_v1_address(kind, destination), _v1_port(destination_port)),
    )


def _v1_address(kind: type[ipaddress.IPv4Address | ipaddress.IPv6Address], text: bytes) -> str:
    try:
        return str(kind(text.decode("ascii")))  # an IPv4 part with a leading zero is refused
    except ValueError:
        raise ProxyHeaderError(f"{text!r} is not an {kind.__name__[:4]} address") from None


def _v1_port(text: bytes) -> int:
    if not text.isdigit() or len(text) > 5 or (text.startswith(b"0") and text != b"0"):
        raise ProxyHeaderError(f"{text!r} is not a port (0 to 65535, no leading zeros)")
    port = int(text)
    if port > 65535:
        raise ProxyHeaderError(f"{port} is not a port (0 to 65535)")
    return port


def _parse_v2(header: bytes) -> ProxyHeader:
    """Parse a whole version 2 header (the fixed 16 bytes, the addresses, the TLVs)."""
    command, protocol = header[12] & 0xF, header[13]
    body = header[V2_FIXED:]
    if command == _LOCAL or protocol not in (_TCP4, _TCP6):
        return ProxyHeader(2, None)  # the connection's own address; the address block ignored
    size = 12 if protocol == _TCP4 else 36
    if len(body) < size:
        raise ProxyHeaderError(f"{len(body)} bytes cannot hold the addresses ({size} bytes)")
    half = (size - 4) // 2
    kind = ipaddress.IPv4Address if protocol == _TCP4 else ipaddress.IPv6Address
    source = str(kind(body[:half])), int.from_bytes(body[size - 4 : size - 2], "big")
    destination = str(kind(body[half : 2 * half])), int.from_bytes(body[size - 2 : size], "big")
    return ProxyHeader(2, source, destination, _tlvs(body[size:]))


def _tlvs(data: bytes) -> tuple[tuple[int, bytes], ...]:
    """Split TLVs, which must fill `data` exactly."""
    found = []
    at = 0
    while at < len(data):
        if len(data) - at < 3:
            raise ProxyHeaderError("a PROXY header ends inside a TLV's type and length")
        end = at + 3 + int.from_bytes(data[at + 1 : at + 3], "big")
        if end > len(data):
            raise ProxyHeaderError("a TLV runs past the end of the PROXY header")
        found.append((data[at], data[at + 3 : end]))
        at = end
    return tuple(found)


# --- what a balancer sends (for tests and tools) ---------------------------------------------


def encode_v1(source: tuple[str, int] | None, destination: tuple[str, int] | None = None) -> bytes:
    """Return a version 1 header for a TCP connection from `source` (None: `UNKNOWN`)."""
    if source is None:
        return b"PROXY UNKNOWN\r\n"
    destination = destination or (_unspecified(source[0]), 0)
    protocol = "TCP4" if ipaddress.ip_address(source[0]).version == 4 else "TCP6"
    line = f"PROXY {protocol} {source[0]} {destination[0]} {source[1]} {destination[1]}\r\n"
    return line.encode("ascii")


def encode_v2(
    source: tuple[str, int] | None,
    destination: tuple[str, int] | None = None,
    tlvs: tuple[tuple[int, bytes], ...] = (),
) -> bytes:
    """Return a version 2 header for a TCP connection from `source` (None: `LOCAL`)."""
    extensions = b"".join(bytes([kind]) + len(v).to_bytes(2, "big") + v for kind, v in tlvs)
    if source is None:
        body = extensions
        command, protocol = 0x20, 0x00
    else:
        destination = destination or (_unspecified(source[0]), 0)
        src, dst = ipaddress.ip_address(source[0]), ipaddress.ip_address(destination[0])
        ports = source[1].to_bytes(2, "big") + destination[1].to_bytes(2, "big")
        body = src.packed + dst.packed + ports + extensions
        command, protocol = 0x21, _TCP4 if src.version == 4 else _TCP6
    return V2_SIGNATURE + bytes([command, protocol]) + len(body).to_bytes(2, "big") + body


def _unspecified(address: str) -> str:
    return "0.0.0.0" if ipaddress.ip_address(address).version == 4 else "::"
