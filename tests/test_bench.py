"""`tuichat-bench` end to end, small: every delivery counted, figures present, nothing lost;
read markers sent and held by the server."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from typing import Any

import pytest

from tuichat.bench.cli import table
from tuichat.bench.servers import ngircd_binary
from tuichat.client.unread import READ_SPREAD

CLIENTS, SENDERS, MESSAGES, RUNS, IDLE = 30, 3, 40, 2, 300
MARK_EVERY = 0.05


def run_bench(*servers: str, extra: tuple[str, ...] = ()) -> dict[str, Any]:
    command = [
        sys.executable, "-m", "tuichat.bench", "--json",
        "--clients", str(CLIENTS), "--senders", str(SENDERS), "--messages", str(MESSAGES),
        "--runs", str(RUNS), "--paced", "20000", "--paced-seconds", "0.5",
        "--idle", str(IDLE), "--servers", ",".join(servers), *extra,
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
    idle = result["idle"]
    assert isinstance(idle, dict)
    assert idle["clients"] == IDLE and idle["failed"] == 0
    assert 0 < idle["rss_per_client_bytes"] < 64 * 1024


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")
def test_the_benchmark_drives_two_servers_sharing_one_redis() -> None:
    result = run_bench("tuichat-redis2")
    (scenario,) = result["fanout"]
    check_scenario(scenario, per_message=CLIENTS)


@pytest.mark.skipif(ngircd_binary() is None, reason="ngircd is not installed")
def test_the_benchmark_drives_ngircd_with_the_same_workload() -> None:
    result = run_bench("ngircd")
    (scenario,) = result["fanout"]
    check_scenario(scenario, per_message=CLIENTS - 1)  # IRC does not echo to the sender
