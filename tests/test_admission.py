"""Admission as a plain object: connections per address and per network, new ones per network.

The time is whatever the test says it is; nothing here touches a socket.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tuichat.protocol import ErrorCode
from tuichat.server import ServerConfig
from tuichat.server.admission import REPORT_EVERY, WHOLE_SERVER, Admission, Refusal
from tuichat.server.cli import config_from_args, parse_args

ROOMY = ServerConfig(
    max_connections=1_000_000,
    max_connections_per_ip=1_000_000,
    max_connections_per_prefix=1_000_000,
    connection_burst=1_000_000,
)
"""No limit gets in the way unless a test lowers it."""


def admission(**limits: Any) -> Admission:
    return Admission(dataclasses.replace(ROOMY, **limits))


def refused(result: Refusal | None) -> tuple[ErrorCode, str]:
    assert result is not None, "admitted"
    return result.error.code, result.error.detail


def admit_all(gate: Admission, addresses: list[str], now: float = 0.0) -> list[Refusal | None]:
    return [gate.admit(address, now) for address in addresses]


# --- at once: per address, per network, in all --------------------------------------------------


def test_an_address_gets_its_allowance_and_its_neighbours_theirs() -> None:
    gate = admission(max_connections_per_ip=3)
    assert admit_all(gate, ["203.0.113.7"] * 3) == [None] * 3
    code, detail = refused(gate.admit("203.0.113.7", 0))
    assert code == ErrorCode.TOO_MANY_CONNECTIONS
    assert detail == "at most 3 connections from one address"
    assert gate.admit("203.0.113.8", 0) is None  # same network, another address
    gate.release("203.0.113.7")
    assert gate.admit("203.0.113.7", 0) is None
    assert gate.count("203.0.113.7") == (3, 4)


def test_a_network_is_an_ipv4_slash_24_by_default() -> None:
    gate = admission(max_connections_per_prefix=4)
    assert admit_all(gate, [f"198.51.100.{n}" for n in range(1, 5)]) == [None] * 4
    code, detail = refused(gate.admit("198.51.100.200", 0))
    assert code == ErrorCode.TOO_MANY_CONNECTIONS
    assert detail == "at most 4 connections from one network (198.51.100.0/24)"
    assert gate.admit("198.51.101.1", 0) is None  # the next /24 is another network
    gate.release("198.51.100.3")
    assert gate.admit("198.51.100.200", 0) is None


def test_a_network_is_an_ipv6_slash_64_by_default() -> None:
    gate = admission(max_connections_per_prefix=2)
    assert admit_all(gate, ["2001:db8:0:1::1", "2001:db8:0:1:ffff::9"]) == [None, None]
    _, detail = refused(gate.admit("2001:db8:0:1::abcd", 0))
    assert detail == "at most 2 connections from one network (2001:db8:0:1::/64)"
    assert gate.admit("2001:db8:0:2::1", 0) is None


def test_the_prefix_lengths_are_configurable() -> None:
    gate = admission(max_connections_per_prefix=2, ipv4_prefix=16, ipv6_prefix=48)
    assert admit_all(gate, ["10.1.2.3", "10.1.200.1"]) == [None, None]
    _, detail = refused(gate.admit("10.1.99.99", 0))
    assert detail.endswith("(10.1.0.0/16)")
    assert admit_all(gate, ["2001:db8:1:1::1", "2001:db8:1:2::1"]) == [None, None]
    _, detail = refused(gate.admit("2001:db8:1:ffff::1", 0))
    assert detail.endswith("(2001:db8:1::/48)")
    # /32 and /128 make every address its own network; /0 makes one network of all
    single = admission(max_connections_per_prefix=1, ipv4_prefix=32, ipv6_prefix=128)
    assert admit_all(single, ["10.0.0.1", "10.0.0.2", "::1", "::2"]) == [None] * 4
    one = admission(max_connections_per_prefix=1, ipv4_prefix=0)
    assert one.admit("1.2.3.4", 0) is None
    assert refused(one.admit("250.0.0.1", 0))[1].endswith("(0.0.0.0/0)")


def test_an_ipv4_client_of_a_dual_stack_listener_counts_as_its_ipv4_address() -> None:
    """Listening on `::`, IPv4 clients appear as `::ffff:a.b.c.d`: not all in one /64."""
    gate = admission(max_connections_per_ip=1, max_connections_per_prefix=2)
    assert gate.admit("::ffff:203.0.113.7", 0) is None
    assert refused(gate.admit("203.0.113.7", 0))[1] == "at most 1 connections from one address"
    assert gate.admit("::ffff:203.0.113.8", 0) is None
    assert refused(gate.admit("::ffff:203.0.113.9", 0))[1].endswith("(203.0.113.0/24)")
    assert gate.admit("::ffff:198.51.100.1", 0) is None  # another IPv4 network, not the same /64
    gate.release("203.0.113.7")
    assert gate.count("::ffff:203.0.113.7") == (0, 1)


def test_an_ipv6_scope_does_not_make_another_address() -> None:
    gate = admission(max_connections_per_ip=1)
    assert gate.admit("fe80::1%eth0", 0) is None
    assert refused(gate.admit("fe80::1%eth1", 0))[0] == ErrorCode.TOO_MANY_CONNECTIONS


def test_the_server_full_counts_everyone_and_comes_first() -> None:
    gate = admission(max_connections=3, max_connections_per_ip=1, exempt=("10.0.0.0/8",))
    assert admit_all(gate, ["10.0.0.1", "10.0.0.1", "192.0.2.1"]) == [None] * 3
    assert refused(gate.admit("192.0.2.1", 0)) == (
        ErrorCode.SERVER_FULL,
        "the server is full; try again later",
    )
    assert refused(gate.admit("10.0.0.1", 0))[0] == ErrorCode.SERVER_FULL  # exempt or not
    gate.release("10.0.0.1")
    assert gate.connections == 2
    assert gate.admit("10.0.0.2", 0) is None


def test_exempt_networks_have_no_limit_per_address_per_network_or_rate() -> None:
    gate = admission(
        max_connections_per_ip=1,
        max_connections_per_prefix=1,
        connection_burst=1,
        connections_per_second=0.001,
        exempt=("10.0.0.0/8", "2001:db8::/32", "192.0.2.7"),
    )
    exempt = ["10.1.2.3", "10.9.9.9", "2001:db8::1", "::ffff:10.1.2.3", "192.0.2.7"]
    assert admit_all(gate, exempt * 50) == [None] * 250
    assert gate.count("10.1.2.3") == (0, 0)  # not counted against anything but the total
    assert gate.admit("192.0.2.8", 0) is None  # its neighbour is not exempt
    assert gate.admit("192.0.2.9", 0) is not None
    for address in exempt * 50:
        gate.release(address)
    assert gate.connections == 1


def test_an_address_that_is_not_an_ip_is_its_own_network() -> None:
    gate = admission(max_connections_per_ip=1)
    assert gate.admit("?", 0) is None
    assert refused(gate.admit("?", 0))[0] == ErrorCode.TOO_MANY_CONNECTIONS
    gate.release("?")
    assert gate.count("?") == (0, 0)


# --- new connections per network over time ---------------------------------------------------


def test_a_burst_then_the_refill_rate() -> None:
    gate = admission(connection_burst=10, connections_per_second=5.0)
    for n in range(10):  # each closes at once: only the rate limits
        assert gate.admit(f"203.0.113.{n}", 0.0) is None
        gate.release(f"203.0.113.{n}")
    code, detail = refused(gate.admit("203.0.113.99", 0.0))
    assert code == ErrorCode.TOO_MANY_CONNECTIONS
    assert detail == (
        "too many new connections from one network (203.0.113.0/24); try again in 0.2 s"
    )
    assert gate.admit("198.51.100.1", 0.0) is None  # another network has its own bucket
    assert gate.admit("203.0.113.99", 0.19) is not None
    assert gate.admit("203.0.113.99", 0.2) is None
    # kept up for a minute, one attempt every 10 ms: at most the refill
    admitted = 0
    for step in range(1, 6001):
        now = 0.2 + step / 100
        if gate.admit("203.0.113.50", now) is None:
            admitted += 1
            gate.release("203.0.113.50")
    assert admitted == 300  # 5 per second for 60 s


def test_refused_attempts_take_no_token() -> None:
    """A crowd retrying after refusals gets in at the refill rate, not never."""
    gate = admission(connection_burst=2, connections_per_second=1.0)
    assert admit_all(gate, ["203.0.113.1", "203.0.113.2"]) == [None, None]
    for step in range(99):  # 99 refused attempts in the next 0.99 s
        assert gate.admit("203.0.113.3", step / 100) is not None
    assert gate.admit("203.0.113.3", 1.0) is None


def test_a_classroom_behind_one_nat_address_gets_in_with_the_defaults() -> None:
    """60 students press connect within a second; then the server restarts and the whole
    network's 200 connections (its limit) reconnect: 100 at once, the rest at 5 a second."""
    defaults = ServerConfig()
    gate = Admission(defaults)
    assert admit_all(gate, ["198.51.100.20"] * 60, now=0.5) == [None] * 60
    gate = Admission(defaults)  # the restart
    crowd = [f"198.51.100.{20 + n % 4}" for n in range(200)]  # 4 NAT addresses of one school
    waiting = list(crowd)
    now = 0.0
    while waiting and now < 60:
        waiting = [a for a in waiting if gate.admit(a, now) is not None]
        if now == 0.0:
            assert len(waiting) == 100  # the burst
        now += 1.0  # everyone retries every second
    assert not waiting
    assert now <= 21  # 100 more at 5 a second
    assert gate.count("198.51.100.20") == (50, 200)


def test_buckets_are_forgotten_once_they_have_refilled() -> None:
    gate = admission(connection_burst=10, connections_per_second=5.0)
    for n in range(10_000):  # 10,000 networks connect once each
        assert gate.admit(f"10.{n // 256}.{n % 256}.1", 0.0) is None
    assert gate.tracked == 10_000
    assert gate.admit("192.0.2.1", 0.19) is None  # not yet refilled: all are kept
    assert gate.tracked == 10_001
    assert gate.admit("192.0.2.1", 0.2) is None  # 1 token refilled, in 0.2 s
    assert gate.tracked == 1  # only the one that just took a token


# --- what is logged -----------------------------------------------------------------------------


def test_refusals_are_reported_once_per_network_every_ten_seconds() -> None:
    gate = admission(max_connections_per_ip=1, max_connections=3)
    assert gate.admit("203.0.113.1", 0) is None
    reports = [refusal.report for refusal in filter(None, admit_all(gate, ["203.0.113.1"] * 5))]
    assert reports == [1, 0, 0, 0, 0]
    assert admit_all(gate, ["198.51.100.1", "198.51.100.2"], 1.0) == [None, None]
    full = gate.admit("192.0.2.1", 2.0)
    assert full is not None and (full.network, full.report) == (WHOLE_SERVER, 1)
    gate.release("198.51.100.2")
    later = gate.admit("203.0.113.1", REPORT_EVERY)
    assert later is not None and (later.network, later.report) == ("203.0.113.1", 5)
    assert gate.admit("203.0.113.1", REPORT_EVERY + 1) is not None


def test_refusal_reports_are_forgotten_after_a_quiet_while() -> None:
    gate = admission(max_connections_per_ip=1)
    assert gate.admit("203.0.113.1", 0) is None
    for n in range(1000):  # a thousand addresses refused once each...
        assert gate.admit(f"10.0.{n // 250}.{n % 250}", 0) is None
        refusal = gate.admit(f"10.0.{n // 250}.{n % 250}", 0)
        assert refusal is not None and refusal.report == 1
    refusal = gate.admit("203.0.113.1", 3 * REPORT_EVERY)  # ...and forgotten
    assert refusal is not None and refusal.report == 1
    assert len(gate._reports) == 1


# --- configuration ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "limits, message",
    [
        ({"ipv4_prefix": 33}, "an IPv4 prefix is 0 to 32 bits long, not 33"),
        ({"ipv6_prefix": -1}, "an IPv6 prefix is 0 to 128 bits long, not -1"),
        ({"exempt": ("10.0.0.0/33",)}, "10.0.0.0/33"),
        ({"exempt": ("a school",)}, "a school"),
    ],
)
def test_a_wrong_setting_is_refused_when_the_server_is_made(
    limits: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        admission(**limits)


def test_exempt_networks_may_have_host_bits() -> None:
    gate = admission(max_connections_per_ip=1, exempt=("10.1.2.3/8",))
    assert admit_all(gate, ["10.200.0.1"] * 3) == [None] * 3


# --- whatever happens, the counts add up --------------------------------------------------------

ADDRESSES = st.one_of(
    st.integers(0, 40).map(lambda n: f"203.0.{n // 8}.{n % 8}"),
    st.integers(0, 20).map(lambda n: f"2001:db8:0:{n // 4}::{n % 4}"),
    st.integers(0, 5).map(lambda n: f"::ffff:203.0.{n // 3}.{n % 3}"),
    st.sampled_from(["?", "10.0.0.1", "10.0.0.2"]),
)


@settings(max_examples=200, deadline=None)
@given(
    steps=st.lists(st.tuples(st.booleans(), ADDRESSES, st.floats(0, 2)), max_size=300),
    per_ip=st.integers(1, 4),
    per_prefix=st.integers(1, 8),
    burst=st.integers(1, 10),
)
def test_limits_hold_and_nothing_is_left_counted(
    steps: list[tuple[bool, str, float]], per_ip: int, per_prefix: int, burst: int
) -> None:
    gate = admission(
        max_connections=30,
        max_connections_per_ip=per_ip,
        max_connections_per_prefix=per_prefix,
        connection_burst=burst,
        connections_per_second=3.0,
        exempt=("10.0.0.0/8",),
    )
    now = 0.0
    held: list[str] = []
    for connect, address, wait in steps:
        now += wait
        if connect or not held:
            if gate.admit(address, now) is None:
                held.append(address)
        else:
            gate.release(held.pop(0))
        assert gate.connections == len(held) <= 30
        for address in set(held):
            by_address, by_network = gate.count(address)
            assert by_address <= per_ip and by_network <= per_prefix
    for address in held:
        gate.release(address)
    assert gate.connections == 0
    assert not gate._per_address and not gate._per_network


# --- the command line ---------------------------------------------------------------------------


def test_the_flags_make_the_settings() -> None:
    args = parse_args(
        ["--max-connections-per-prefix", "50", "--ipv4-prefix", "16", "--ipv6-prefix", "56",
         "--connections-per-second", "0.5", "--connection-burst", "70",
         "--exempt", "10.1.2.3/8", "--exempt", "2001:db8::1", "--proxy-from", "192.0.2.0/28"]
    )  # fmt: skip
    config = config_from_args(args)
    assert config.max_connections_per_prefix == 50
    assert (config.ipv4_prefix, config.ipv6_prefix) == (16, 56)
    assert (config.connections_per_second, config.connection_burst) == (0.5, 70)
    assert config.exempt == ("10.0.0.0/8", "2001:db8::1/128")
    assert config.proxy_from == ("192.0.2.0/28",)
    defaults = config_from_args(parse_args([]))
    assert (defaults.exempt, defaults.proxy_from) == ((), ())
    assert defaults.max_connections_per_prefix == ServerConfig().max_connections_per_prefix


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--exempt", "a school"], "'a school' is not an address or network"),
        (["--proxy-from", "10.0.0.0/40"], "is not an address or network"),
        (["--ipv4-prefix", "33"], "33 is not a prefix length (0 to 32)"),
        (["--ipv6-prefix", "/64"], "'/64' is not a whole number"),
    ],
)
def test_a_wrong_flag_says_what_is_wrong(
    flags: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        parse_args(flags)
    assert message in capsys.readouterr().err
