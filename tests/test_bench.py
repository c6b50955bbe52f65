"""`tuichat-bench` end to end, small: every delivery counted, figures present, nothing lost;
read markers sent and held by the server; Redis pub/sub as a peer; the table's ratios."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from typing import Any

import pytest

from tuichat.bench.cli import table
from tuichat.bench.load import RedisLoad, Worker, message_text, resp_command, resp_value
from tuichat.bench.servers import ngircd_binary
from tuichat.client.unread import READ_SPREAD

CLIENTS, SENDERS, MESSAGES, RUNS, IDLE = 30, 3, 40, 2, 300
MARK_EVERY = 0.05
NO_REDIS = pytest.mark.skipif(
    shutil.which("redis-server") is None, reason="redis-server is not installed"
)


def run_bench(*servers: str, extra: tuple[str, ...] = (), idle: int = IDLE) -> dict[str, Any]:
    command = [
        sys.executable, "-m", "tuichat.bench", "--json",
        "--clients", str(CLIENTS), "--senders", str(SENDERS), "--messages", str(MESSAGES),
        "--runs", str(RUNS), "--paced", "20000", "--paced-seconds", "0.5",
        "--idle", str(idle), "--servers", ",".join(servers), *extra,
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "connecting" in done.stderr  # progress goes to stderr, the JSON alone to stdout
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def check_scenario(scenario: dict[str, Any], per_message: int) -> None:
    flat = scenario["flat"]
    assert isinstance(flat, list) and len(flat) == RUNS
    paced = scenario["paced"]
    assert isinstance(paced, list) and len(paced) == RUNS
    for phase in [*flat, *paced]:
        assert phase["lost"] == 0
        assert phase["duplicates_or_gaps"] == 0
        assert phase["dropped"] == []
        assert phase["latency_samples"] > 0
        assert 0 < phase["latency_p50_ms"] <= phase["latency_p99_ms"]
        assert phase["server_cpu_ns_per_delivery"] > 0
    for phase in flat:
        assert phase["deliveries"] == SENDERS * MESSAGES * per_message
    for phase in paced:
        assert phase["deliveries"] == SENDERS * scenario["paced_messages_per_sender"] * per_message
    assert scenario["connect_failed"] == 0


def test_the_benchmark_counts_every_delivery_with_and_without_history() -> None:
    # read markers on: every client marks what it has read, the server keeps the markers
    # (in SQLite, and in memory without history) and no delivery goes missing for them
    result = run_bench("tuichat", "tuichat-nohistory", extra=("--mark-read-every", str(MARK_EVERY)))
    assert result["mark_read_every"] == MARK_EVERY
    scenarios = {s["server"]: s for s in result["fanout"]}
    assert set(scenarios) == {"tuichat", "tuichat-nohistory"}
    for scenario in scenarios.values():
        check_scenario(scenario, per_message=CLIENTS)  # tuichat echoes to the sender too
        assert scenario["mark_read_every"] == MARK_EVERY
        markers = scenario["read_markers"]
        received = RUNS * SENDERS * (MESSAGES + scenario["paced_messages_per_sender"])
        assert markers["clients"] == CLIENTS  # every one marked, at most once a read
        assert CLIENTS <= markers["sent"] <= CLIENTS * received
        assert markers["checked"] == 2 and markers["stored"] == 2  # the probes' last markers
    assert result["mark_read_spread"] == READ_SPREAD  # paced as the app paces them
    assert (
        "tuichat at N=30: read markers about every 0.05 s (each pause within 0.5 of it) while "
        "messages came" in table(result)
    )
    (idle,) = result["idle"]  # on tuichat alone, unless told
    assert idle["server"] == "tuichat" and idle["what"] == "connect+join"
    assert idle["clients"] == IDLE and idle["failed"] == 0
    assert 0 < idle["rss_per_client_bytes"] < 64 * 1024


@NO_REDIS
def test_the_benchmark_drives_two_servers_sharing_one_redis() -> None:
    result = run_bench("tuichat-redis2", idle=0)
    (scenario,) = result["fanout"]
    check_scenario(scenario, per_message=CLIENTS)
    first, second = scenario["connections_per_server"]  # its two ports taken in turn
    assert first + second == CLIENTS and abs(first - second) <= 2


@NO_REDIS
def test_two_servers_sharing_one_port_both_take_clients() -> None:
    # SO_REUSEPORT: every client connects to the one port, the kernel spreads them
    result = run_bench("tuichat-reuseport", idle=0)
    (scenario,) = result["fanout"]
    check_scenario(scenario, per_message=CLIENTS)
    spread = scenario["connections_per_server"]
    assert len(spread) == 2 and sum(spread) == CLIENTS and min(spread) > 0


@NO_REDIS
def test_the_benchmark_drives_redis_pub_sub_with_the_same_workload() -> None:
    result = run_bench("redis", extra=("--idle-servers", "redis"))
    (scenario,) = result["fanout"]
    check_scenario(scenario, per_message=CLIENTS)  # the sender's own subscriber hears it too
    (idle,) = result["idle"]
    assert idle["server"] == "redis" and idle["what"] == "connect+subscribe"
    assert idle["clients"] == IDLE and idle["failed"] == 0
    assert "connect+subscribe of 300 idle clients on Redis pub/sub" in table(result)


@pytest.mark.skipif(ngircd_binary() is None, reason="ngircd is not installed")
def test_the_benchmark_drives_ngircd_with_the_same_workload() -> None:
    result = run_bench("ngircd")
    (scenario,) = result["fanout"]
    check_scenario(scenario, per_message=CLIENTS - 1)  # IRC does not echo to the sender


def push(text: str) -> bytes:
    """A pubsub message push of channel "room", as Redis writes it."""
    return b"*3\r\n$7\r\nmessage\r\n$4\r\nroom\r\n$%d\r\n%s\r\n" % (len(text), text.encode())


def test_resp_values_are_parsed_whole_or_not_at_all() -> None:
    reply = b"*3\r\n$9\r\nsubscribe\r\n$4\r\nroom\r\n:1\r\n"
    assert resp_value(reply, 0) == ([b"subscribe", b"room", 1], len(reply))
    assert all(resp_value(reply[:cut], 0) is None for cut in range(len(reply)))
    assert resp_value(b"-ERR no\r\n", 0) == ("error: b'ERR no'", 9)
    assert resp_command(b"PUBLISH", b"room", b"hi") == (
        b"*3\r\n$7\r\nPUBLISH\r\n$4\r\nroom\r\n$2\r\nhi\r\n"
    )
    assert push("x").startswith(RedisLoad.tag)


def test_a_redis_probe_counts_pushes_split_anywhere_and_finds_gaps() -> None:
    async def heard(numbers: list[int], chunk: int) -> tuple[int, int, int]:
        worker = Worker()
        probe, counter = (
            RedisLoad(worker, name, probe=p) for name, p in (("p", True), ("c", False))
        )
        data = b"*3\r\n$9\r\nsubscribe\r\n$4\r\nroom\r\n:1\r\n"
        data += b"".join(push(message_text(sender, n)) for n in numbers for sender in (1, 2))
        for connection in (probe, counter):
            connection.expect(2 * len(numbers))
            for at in range(0, len(data), chunk):
                connection.data_received(data[at : at + chunk])
        assert probe.ready.done() and counter.ready.done()
        assert len(probe.tally.latencies) == probe.tally.count
        return probe.tally.count, probe.tally.gaps, counter.tally.count

    for chunk in (1, 7, 1000):
        assert asyncio.run(heard([0, 1, 2, 0, 1], chunk)) == (10, 0, 10)  # two phases
        assert asyncio.run(heard([0, 1, 3, 4], chunk)) == (8, 2, 8)  # 2 lost, per sender


def test_the_table_sets_tuichat_against_each_peer_side_by_side() -> None:
    def scenario(server: str, rate: int, p50: float, p99: float) -> dict[str, Any]:
        flat = {"deliveries_per_s": rate, "latency_p50_ms": 1.0, "latency_p99_ms": 2.0,
                "server_cpu_ns_per_delivery": 100, "server_cpu_cores": 0.5,
                "generator_cpu_cores": 1.0, "lost": 0}  # fmt: skip
        paced = {**flat, "latency_p50_ms": p50, "latency_p99_ms": p99}
        return {"server": server, "clients": 1000, "connect_s": 1.0, "rss_per_client_bytes": 4096,
                "flat_median": flat, "paced_median": paced}  # fmt: skip

    fanout = [
        scenario("redis", 4_000_000, 1.1, 3.0),
        scenario("tuichat", 5_000_000, 8.0, 18.8),
        scenario("ngircd", 2_500_000, 7.4, 19.6),
    ]
    shown = table({"fanout": fanout, "idle": []})
    assert (
        "N=1000: tuichat / Redis pub/sub 1.25x, tuichat / ngIRCd 2.00x the flat-out deliveries "
        "per second" in shown
    )
    assert (
        "N=1000: paced p50 / p99 ms: tuichat 8.0 / 18.8, Redis pub/sub 1.1 / 3.0, ngIRCd " in shown
    )
