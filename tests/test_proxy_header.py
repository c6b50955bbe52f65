"""The PROXY header parser without I/O: every valid form byte by byte, every malformed one
refused at the first byte that shows it, and fuzzing that finds nothing else."""

from __future__ import annotations

import ipaddress
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tuichat.server.proxy_header import (
    MAX_V2_BODY,
    V1_MAX,
    V2_FIXED,
    V2_SIGNATURE,
    ProxyHeader,
    ProxyHeaderError,
    ProxyHeaderParser,
    encode_v1,
    encode_v2,
)

TRAILING = b"\x00\x00\x00\x10the client's own bytes"


def byte_by_byte(data: bytes, parser: ProxyHeaderParser | None = None) -> ProxyHeader:
    """Feed `data` one byte at a time: None until its last byte, then the header."""
    parser = parser or ProxyHeaderParser()
    for index in range(len(data) - 1):
        assert parser.receive_data(data[index : index + 1]) is None, index
    header = parser.receive_data(data[-1:])
    assert header is not None
    assert parser.trailing == b""
    return header


def v2(command: int, protocol: int, body: bytes) -> bytes:
    return V2_SIGNATURE + bytes([command, protocol]) + len(body).to_bytes(2, "big") + body


IPV4_BODY = bytes([203, 0, 113, 7, 198, 51, 100, 1]) + (40000).to_bytes(2, "big") + b"\x15\xb3"
IPV6_BODY = (
    ipaddress.IPv6Address("2001:db8::7").packed
    + ipaddress.IPv6Address("2001:db8::1").packed
    + (40000).to_bytes(2, "big")
    + (5555).to_bytes(2, "big")
)

VALID: list[tuple[bytes, ProxyHeader]] = [
    (
        b"PROXY TCP4 203.0.113.7 198.51.100.1 40000 5555\r\n",
        ProxyHeader(1, ("203.0.113.7", 40000), ("198.51.100.1", 5555)),
    ),
    (
        b"PROXY TCP4 0.0.0.0 255.255.255.255 0 65535\r\n",
        ProxyHeader(1, ("0.0.0.0", 0), ("255.255.255.255", 65535)),
    ),
    (
        b"PROXY TCP6 2001:DB8:0:0:0:0:0:7 ::ffff:198.51.100.1 40000 5555\r\n",
        ProxyHeader(1, ("2001:db8::7", 40000), ("::ffff:c633:6401", 5555)),
    ),
    (
        b"PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
        b"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n",  # the longest TCP6: 104
        ProxyHeader(
            1,
            ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535),
            ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535),
        ),
    ),
    (b"PROXY UNKNOWN\r\n", ProxyHeader(1, None)),
    (
        b"PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
        b"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n",  # the longest of all: 107
        ProxyHeader(1, None),
    ),
    (b"PROXY UNKNOWN whatever, ignored\r\n", ProxyHeader(1, None)),
    (
        v2(0x21, 0x11, IPV4_BODY),
        ProxyHeader(2, ("203.0.113.7", 40000), ("198.51.100.1", 5555)),
    ),
    (
        v2(0x21, 0x21, IPV6_BODY + b"\x01\x00\x02h2" + b"\x04\x00\x00" + b"\xea\x00\x03vpc"),
        ProxyHeader(
            2,
            ("2001:db8::7", 40000),
            ("2001:db8::1", 5555),
            ((0x01, b"h2"), (0x04, b""), (0xEA, b"vpc")),
        ),
    ),
    (v2(0x20, 0x00, b""), ProxyHeader(2, None)),  # LOCAL: a health check
    (v2(0x20, 0x11, IPV4_BODY), ProxyHeader(2, None)),  # LOCAL ignores any address block
    (v2(0x20, 0xFF, b"junk"), ProxyHeader(2, None)),  # ...and the family
    (v2(0x21, 0x00, b""), ProxyHeader(2, None)),  # UNSPEC
    (v2(0x21, 0x12, IPV4_BODY), ProxyHeader(2, None)),  # UDP: the connection's own address
    (v2(0x21, 0x22, IPV6_BODY), ProxyHeader(2, None)),
    (v2(0x21, 0x31, b"/run/a.sock".ljust(216, b"\0")), ProxyHeader(2, None)),  # UNIX
    (v2(0x21, 0x10, b""), ProxyHeader(2, None)),  # IPv4 with an unspecified transport
    (v2(0x21, 0x11, IPV4_BODY + b"\x04" + (MAX_V2_BODY - 15).to_bytes(2, "big")
        + bytes(MAX_V2_BODY - 15)),
     ProxyHeader(2, ("203.0.113.7", 40000), ("198.51.100.1", 5555),
                 ((0x04, bytes(MAX_V2_BODY - 15)),))),  # the longest accepted
]  # fmt: skip


@pytest.mark.parametrize(("data", "expected"), VALID)
def test_a_valid_header_fed_one_byte_at_a_time(data: bytes, expected: ProxyHeader) -> None:
    assert byte_by_byte(data) == expected


@pytest.mark.parametrize(("data", "expected"), VALID)
def test_what_follows_the_header_is_left_for_the_client(data: bytes, expected: ProxyHeader) -> None:
    parser = ProxyHeaderParser()
    assert parser.receive_data(data + TRAILING) == expected
    assert parser.trailing == TRAILING
    assert parser.receive_data(b"more") == expected  # later bytes are the client's too
    assert parser.trailing == TRAILING + b"more"


def test_the_limits_are_the_specifications() -> None:
    assert len(VALID[5][0]) == V1_MAX == 107
    assert len(VALID[3][0]) == 104
    assert len(VALID[-1][0]) == V2_FIXED + MAX_V2_BODY


def test_an_empty_read_changes_nothing() -> None:
    parser = ProxyHeaderParser()
    assert parser.receive_data(b"") is None
    assert parser.receive_data(b"PROXY UNKNOWN\r") is None
    assert parser.receive_data(b"") is None
    assert parser.receive_data(b"\n") == ProxyHeader(1, None)


# --- malformed: refused at the first byte that shows it ---------------------------------------

LONG_UNKNOWN = b"PROXY UNKNOWN " + b"x" * (V1_MAX - 14)

MALFORMED: list[tuple[str, bytes, int]] = [
    # (what, the bytes, the index of the byte at which the error must come)
    ("http", b"GET / HTTP/1.1\r\n", 0),
    ("tls", b"\x16\x03\x01\x02\x00", 0),
    ("a tuichat frame", b"\x00\x00\x00\x10", 0),
    ("lowercase", b"proxy TCP4", 0),
    ("tab for space", b"PROXY\tTCP4", 5),
    ("no space", b"PROXYTCP4", 5),
    ("lowercase protocol", b"PROXY tcp4 ", 6),
    ("unknown protocol", b"PROXY TCP5 ", 9),
    ("UDP4", b"PROXY UDP4 ", 7),
    ("two spaces after PROXY", b"PROXY  TCP4", 6),
    ("UNKNOWN glued", b"PROXY UNKNOWNX\r\n", 13),
    ("letter in TCP4", b"PROXY TCP4 1.2.3.a", 17),
    ("colon in TCP4", b"PROXY TCP4 ::1 ::1 1 1\r\n", 11),
    ("scope in TCP6", b"PROXY TCP6 fe80::1%eth0 ::1 1 1\r\n", 18),
    ("non-ASCII", b"PROXY UNKNOWN \xff\r\n", 14),
    ("NUL", b"PROXY UNKNOWN \x00\r\n", 14),
    ("lone LF", b"PROXY TCP4 1.2.3.4\n", 18),
    ("LF to end", b"PROXY TCP4 1.2.3.4 1.2.3.4 1 1\n", 30),
    ("CR then not LF", b"PROXY TCP4 1.2.3.4\r1.2.3.4 1 1\r\n", 19),
    ("LF then CR", b"PROXY UNKNOWN\n\r", 13),
    ("no CRLF in 107", LONG_UNKNOWN + b"x", V1_MAX - 1),
    ("CR as byte 107", LONG_UNKNOWN[:-1] + b"\r\n", V1_MAX - 1),
    # only the whole line shows these
    ("PROXY alone", b"PROXY \r\n", 7),
    ("TCP4 alone", b"PROXY TCP4\r\n", 11),
    ("five fields", b"PROXY TCP4 1.2.3.4 1.2.3.4 1\r\n", 29),
    ("seven fields", b"PROXY TCP4 1.2.3.4 1.2.3.4 1 1 1\r\n", 33),
    ("space at the end", b"PROXY TCP4 1.2.3.4 1.2.3.4 1 1 \r\n", 32),
    ("two spaces", b"PROXY TCP4 1.2.3.4  1.2.3.4 1 1\r\n", 32),
    ("leading zero", b"PROXY TCP4 01.2.3.4 1.2.3.4 1 1\r\n", 32),
    ("octet past 255", b"PROXY TCP4 256.2.3.4 1.2.3.4 1 1\r\n", 33),
    ("three octets", b"PROXY TCP4 1.2.3 1.2.3.4 1 1\r\n", 29),
    ("IPv4 in TCP6", b"PROXY TCP6 1.2.3.4 1.2.3.4 1 1\r\n", 31),
    ("two double colons", b"PROXY TCP6 1::2::3 ::1 1 1\r\n", 27),
    ("port past 65535", b"PROXY TCP4 1.2.3.4 1.2.3.4 65536 1\r\n", 35),
    ("port with leading zero", b"PROXY TCP4 1.2.3.4 1.2.3.4 1 080\r\n", 33),
    ("empty port", b"PROXY TCP4 1.2.3.4 1.2.3.4  1\r\n", 30),
    ("port 000000", b"PROXY TCP4 1.2.3.4 1.2.3.4 000000 1\r\n", 36),
    # version 2
    ("signature, byte 1", b"\r\r", 1),
    ("signature, NUL", b"\r\n\r\n\x01", 4),
    ("signature, last byte", V2_SIGNATURE[:-1] + b"\r", 11),
    ("version 1 in binary", V2_SIGNATURE + b"\x11", 12),
    ("version 3", V2_SIGNATURE + b"\x31", 12),
    ("command 2", V2_SIGNATURE + b"\x22", 12),
    ("command 15", V2_SIGNATURE + b"\x2f", 12),
    ("family 4", V2_SIGNATURE + b"\x21\x41", 13),
    ("transport 3", V2_SIGNATURE + b"\x21\x13", 13),
    ("too long", V2_SIGNATURE + b"\x21\x11" + (MAX_V2_BODY + 1).to_bytes(2, "big"), 15),
    ("65535 bytes", V2_SIGNATURE + b"\x21\x11\xff\xff", 15),
    ("IPv4 block too short", v2(0x21, 0x11, IPV4_BODY[:11]), V2_FIXED + 10),
    ("IPv6 block too short", v2(0x21, 0x21, IPV6_BODY[:35]), V2_FIXED + 34),
    ("IPv6 block, IPv4 size", v2(0x21, 0x21, IPV4_BODY), V2_FIXED + 11),
    ("TLV cut in its length", v2(0x21, 0x11, IPV4_BODY + b"\x01\x00"), V2_FIXED + 13),
    ("TLV past the end", v2(0x21, 0x11, IPV4_BODY + b"\x01\x00\x05abc"), V2_FIXED + 17),
]


MALFORMED_CASES = [pytest.param(data, at, id=what) for what, data, at in MALFORMED]


@pytest.mark.parametrize(("data", "at"), MALFORMED_CASES)
def test_a_malformed_header_is_refused_at_the_first_byte_that_shows_it(
    data: bytes, at: int
) -> None:
    parser = ProxyHeaderParser()
    for index in range(at):
        assert parser.receive_data(data[index : index + 1]) is None, index
    with pytest.raises(ProxyHeaderError):
        parser.receive_data(data[at : at + 1])
    with pytest.raises(ProxyHeaderError):  # and everything after it
        parser.receive_data(b"PROXY UNKNOWN\r\n")


@pytest.mark.parametrize(("data", "at"), MALFORMED_CASES)
def test_a_malformed_header_is_refused_when_it_comes_at_once(data: bytes, at: int) -> None:
    with pytest.raises(ProxyHeaderError):
        ProxyHeaderParser().receive_data(data + TRAILING)


def test_a_large_declared_length_is_refused_before_any_of_it_is_held() -> None:
    parser = ProxyHeaderParser(max_body=64)
    header = V2_SIGNATURE + b"\x21\x11" + (65).to_bytes(2, "big")
    with pytest.raises(ProxyHeaderError, match="at most 80"):
        parser.receive_data(header)


# --- generated headers, and anything at all ------------------------------------------------------

IPV4 = st.ip_addresses(v=4).map(str)
IPV6 = st.ip_addresses(v=6).map(str)
PORTS = st.integers(0, 65535)
TLVS = st.lists(st.tuples(st.integers(0, 255), st.binary(max_size=300)), max_size=6).map(tuple)


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


@settings(max_examples=300, deadline=None)
@given(
    family=st.sampled_from([IPV4, IPV6]).flatmap(lambda a: st.tuples(a, a)),
    ports=st.tuples(PORTS, PORTS),
    version=st.sampled_from([1, 2]),
    tlvs=TLVS,
    trailing=st.binary(max_size=50),
    cuts=st.lists(st.integers(0, 5000), max_size=10),
)
def test_any_header_a_balancer_sends_is_read_however_it_is_split(
    family: tuple[str, str],
    ports: tuple[int, int],
    version: int,
    tlvs: tuple[tuple[int, bytes], ...],
    trailing: bytes,
    cuts: list[int],
) -> None:
    source, destination = (family[0], ports[0]), (family[1], ports[1])
    if version == 1:
        data, tlvs = encode_v1(source, destination), ()
    else:
        data = encode_v2(source, destination, tlvs)
    parser = ProxyHeaderParser()
    expected = ProxyHeader(version, source, destination, tlvs)
    fed = 0
    for chunk in chunked(data + trailing, cuts):
        fed += len(chunk)
        assert parser.receive_data(chunk) == (expected if fed >= len(data) else None)
    assert parser.trailing == trailing


VALID_STARTS = [d for d, _ in VALID] + [encode_v1(None), encode_v2(None)]


def mutated(data: bytes, at: int, value: int, cut: int) -> bytes:
    at %= len(data)
    return (data[:at] + bytes([value]) + data[at + 1 :])[: max(1, cut)]


@settings(max_examples=1000, deadline=None)
@given(
    data=st.one_of(
        st.binary(max_size=200),
        st.binary(max_size=40).map(lambda b: b"PROXY " + b),
        st.binary(max_size=40).map(lambda b: V2_SIGNATURE + b),
        st.builds(
            mutated,
            st.sampled_from(VALID_STARTS),
            st.integers(0, 10_000),
            st.integers(0, 255),
            st.integers(1, 10_000),
        ),
    ),
    cuts=st.lists(st.integers(0, 10_000), max_size=8),
)
def test_anything_at_all_is_a_header_more_needed_or_the_one_error(
    data: bytes, cuts: list[int]
) -> None:
    """Never another exception; never more held than a header can be; split or not, the same."""
    at_once = ProxyHeaderParser()
    try:
        whole: ProxyHeader | str | None = at_once.receive_data(data)
    except ProxyHeaderError:
        whole = "error"
    parser = ProxyHeaderParser()
    split: ProxyHeader | str | None = None
    fed = 0
    for chunk in chunked(data, cuts):
        try:
            split = parser.receive_data(chunk)
        except ProxyHeaderError:
            split = "error"
            break
        fed += len(chunk)
        if split is None:  # what waits is all header, so no more than the longest one
            assert fed <= max(V1_MAX - 1, V2_FIXED + MAX_V2_BODY - 1)
            if data[:1] == b"P":
                assert fed <= V1_MAX - 1
    assert split == whole
    if isinstance(whole, ProxyHeader):
        assert at_once.trailing == parser.trailing
        assert data.endswith(at_once.trailing)
