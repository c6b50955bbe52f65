"""`tuichat-bench`: run the benchmark and print a table (or JSON)."""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from tuichat.bench import servers
from tuichat.bench.run import Generator, fanout, idle
from tuichat.client.unread import READ_SPREAD


def _counts(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of whole numbers") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("give whole numbers of at least 1, like 200,1000")
    return values


def _idle_counts(text: str) -> list[int]:
    return [] if text.strip() in ("", "0") else _counts(text)


def _every(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError("give a number of seconds, or 0 for never")
    return value


def _spread(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError("give a fraction from 0 up to (not including) 1")
    return value


def _names(text: str) -> list[str]:
    names = [part for part in text.split(",") if part]
    unknown = [n for n in names if n not in servers.SERVERS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown server {', '.join(unknown)}; choose from {', '.join(servers.SERVERS)}"
        )
    return names


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="tuichat-bench",
        description="Room fan-out: N clients in one room, S of them sending M messages of ~100 "
        "bytes; deliveries/s, latency, server CPU per delivery and memory per connection, for "
        "tuichat and (when installed) Redis pub/sub and ngIRCd in the same run.",
    )
    parser.add_argument(
        "--clients",
        type=_counts,
        default=[200, 1000],
        metavar="N[,N...]",
        help="clients in the room, one scenario each (default 200,1000)",
    )
    parser.add_argument("--senders", type=int, default=10, help="clients that send (default 10)")
    parser.add_argument(
        "--messages", type=int, default=500, help="messages each sender sends per run (default 500)"
    )
    parser.add_argument(
        "--runs",
        type=int,
        default=3,
        help="flat-out and paced runs per scenario; the table shows medians (default 3)",
    )
    parser.add_argument(
        "--paced",
        type=float,
        default=200_000,
        metavar="DELIVERIES_PER_S",
        help="offered load of the paced run (default 200000)",
    )
    parser.add_argument(
        "--paced-seconds",
        type=float,
        default=5.0,
        help="about how long the paced run sends (default 5)",
    )
    parser.add_argument(
        "--idle",
        type=_idle_counts,
        default=[10_000],
        metavar="N[,N...]",
        help="at the end, time connecting N idle clients (until each is in the room) and "
        "measure the memory each costs, once per N on a fresh server; 0 skips (default 10000)",
    )
    parser.add_argument(
        "--idle-servers",
        type=_names,
        default=["tuichat"],
        metavar="NAMES",
        help="the servers `--idle` connects to, of the same names as --servers (default tuichat)",
    )
    parser.add_argument(
        "--servers",
        type=_names,
        default=list(DEFAULT_SERVERS),
        help=f"which servers, of {','.join(servers.SERVERS)} (default "
        f"{','.join(DEFAULT_SERVERS)}; a peer not installed is skipped)",
    )
    parser.add_argument(
        "--workers", type=int, default=2, help="load-generating processes (default 2)"
    )
    parser.add_argument(
        "--event-loop",
        default="auto",
        choices=["auto", "uvloop", "asyncio"],
        help="the tuichat server's event loop (default auto: uvloop if installed)",
    )
    parser.add_argument(
        "--baseline",
        metavar="PYTHON",
        help="also run each tuichat server chosen on this Python, which has another version of "
        "tuichat installed (shown as base:NAME, with the ratio to it): before/after in one run",
    )
    parser.add_argument(
        "--mark-read-every",
        type=_every,
        nargs="?",
        const=1.0,
        default=0.0,
        metavar="SECONDS",
        help="every tuichat client marks the room read about once every SECONDS while "
        "messages come in, as the app marks what it shows (1 if not given; default 0: never). "
        "Not on a baseline whose tuichat has no read markers",
    )
    parser.add_argument(
        "--mark-read-spread",
        type=_spread,
        default=READ_SPREAD,
        metavar="FRACTION",
        help="each pause between two markers is SECONDS times a random factor within FRACTION "
        f"of 1, as in the app (default {READ_SPREAD:g}); 0: every client marks in the same "
        "moment, each time (the worst case)",
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    return parser.parse_args(argv)  # fmt: skip


DEFAULT_SERVERS = ("tuichat", "redis", "ngircd")

PEER_NAMES = {"redis": "Redis pub/sub", "ngircd": "ngIRCd"}
"""How the table names the peers."""


def _installed(names: list[str], say: Callable[[str], None]) -> list[str]:
    """`names` less those not installed here (saying so)."""
    chosen = []
    for name in names:
        problem = servers.missing(name)
        if problem:
            say(f"{problem}: skipping {name}")
        else:
            chosen.append(name)
    return chosen


def raise_file_limit(wanted: int) -> int:
    """Allow `wanted` open files if we may (servers and workers inherit it); return the limit."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < wanted:
        try:  # only a privileged process may raise its hard limit
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, wanted))
            return wanted
        except (ValueError, OSError):
            pass
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard if hard != resource.RLIM_INFINITY else wanted


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)

    def say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    chosen = _installed(args.servers, say)
    idle_on = _installed(args.idle_servers, say) if args.idle else []
    # the server holds one file per client (a Redis sender: two)
    wanted = max([*args.clients, *args.idle]) + args.senders + 1000
    limit = raise_file_limit(wanted)
    if limit < wanted:
        say(f"the open-file limit is {limit}: too low; raise it (ulimit -n {wanted})")
        return 2
    marking: float = args.mark_read_every
    base_marking = marking
    if marking and args.baseline and not servers.knows_read_markers(args.baseline):
        say(f"the tuichat of {args.baseline} has no read markers: its runs send none")
        base_marking = 0
    results: dict[str, Any] = {
        "fanout": [],
        "idle": [],
        "started": time.time(),
        "mark_read_every": marking,
        "mark_read_spread": args.mark_read_spread,
    }
    generator = Generator(args.workers)
    try:
        for clients in args.clients:
            for name in _with_baseline(chosen, args.baseline):  # taking turns, noise hits all
                if name.startswith(BASE):
                    server = servers.start(name[len(BASE) :], args.event_loop, args.baseline)
                    server.name = name
                    every = base_marking
                else:
                    server = servers.start(name, args.event_loop)
                    every = marking
                try:
                    results["fanout"].append(
                        fanout(server, generator, clients, args.senders, args.messages,
                               args.runs, args.paced, args.paced_seconds, say, every,
                               args.mark_read_spread)
                    )  # fmt: skip
                finally:
                    server.stop()
        for clients in args.idle:
            for name in idle_on:
                server = servers.start(name, args.event_loop)
                try:
                    results["idle"].append(idle(server, generator, clients, say))
                finally:
                    server.stop()
    finally:
        generator.stop()
    results["comparisons"] = comparisons(results["fanout"])
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(table(results))
    lost = sum(
        r.get("flat_median", {}).get("lost", 0) + r.get("paced_median", {}).get("lost", 0)
        for r in results["fanout"]
    )
    return 1 if lost else 0


BASE = "base:"
"""The prefix of a server run on the `--baseline` Python."""


def _with_baseline(names: list[str], baseline: str | None) -> list[str]:
    """Each tuichat server followed by its baseline run, when there is a baseline."""
    if not baseline:
        return names
    return [n for name in names for n in (name, BASE + name) if n == name or "tuichat" in name]


def _marking(scenario: dict[str, Any]) -> str:
    every = scenario.get("mark_read_every")
    return f" with read markers every {every:g} s" if every else " without read markers"


def table(results: dict[str, Any]) -> str:
    """The results as a table, then tuichat's rate against each other server's (and each
    server's against its baseline), the paced latencies side by side, the idle connects."""
    head = (
        f"{'server':<18} {'N':>5} {'join s':>7} {'KiB/conn':>8} | {'flat deliv/s':>12} "
        f"{'p50 ms':>7} {'p99 ms':>7} {'ns/deliv':>8} {'srv cores':>9} {'gen cores':>9} | "
        f"{'paced p50':>9} {'p99 ms':>7} {'ns/deliv':>8} | {'lost':>4}"
    )
    lines = [head, "-" * len(head)]
    for r in results["fanout"]:
        if "flat_median" not in r:
            lines.append(f"{r['server']:<18} {r['clients']:>5}  failed to connect")
            continue
        flat, paced = r["flat_median"], r["paced_median"]
        lines.append(
            f"{r['server']:<18} {r['clients']:>5} {r['connect_s']:>7.2f} "
            f"{r['rss_per_client_bytes'] / 1024:>8.1f} | {flat['deliveries_per_s']:>12,} "
            f"{flat['latency_p50_ms']:>7} {flat['latency_p99_ms']:>7} "
            f"{flat['server_cpu_ns_per_delivery']:>8} {flat['server_cpu_cores']:>9} "
            f"{flat['generator_cpu_cores']:>9} | {paced['latency_p50_ms']:>9} "
            f"{paced['latency_p99_ms']:>7} {paced['server_cpu_ns_per_delivery']:>8} | "
            f"{flat['lost'] + paced['lost']:>4}"
        )
    lines += _baseline_lines(results)
    lines += _comparison_lines(comparisons(results["fanout"]))
    lines += [
        f"{r['server']} at N={r['clients']}: connections per server process "
        f"{' / '.join(map(str, r['connections_per_server']))}"
        for r in results["fanout"]
        if r.get("connections_per_server")
    ]
    for r in results["fanout"]:
        markers = r.get("read_markers")
        if markers:
            spread = results.get("mark_read_spread", 0)
            pauses = f" (each pause within {spread:g} of it)" if spread else " (all at once)"
            lines.append(
                f"{r['server']} at N={r['clients']}: read markers about every "
                f"{r['mark_read_every']:g} s{pauses} while messages came, "
                f"{markers['sent']:,} sent by {markers['clients']} clients; "
                f"the server holds {markers['stored']} of {markers['checked']} probes' last ones"
            )
        elif results.get("mark_read_every") and r["server"].startswith(BASE):
            lines.append(f"{r['server']} at N={r['clients']}: no read markers (it has none)")
    lines += [_idle_line(i) for i in results["idle"] or []]
    return "\n".join(lines)


def _baseline_lines(results: dict[str, Any]) -> list[str]:
    """Each server's rate over its baseline run's."""
    by_key = {(r["server"], r["clients"]): r for r in results["fanout"] if "flat_median" in r}
    lines = []
    for (name, clients), r in by_key.items():
        after = by_key.get((name[len(BASE) :], clients)) if name.startswith(BASE) else None
        if after:
            ratio = after["flat_median"]["deliveries_per_s"] / r["flat_median"]["deliveries_per_s"]
            versions = "this version against the baseline"
            if results.get("mark_read_every"):
                versions = f"this version{_marking(after)} against the baseline{_marking(r)}"
            lines.append(
                f"{name[len(BASE) :]} / {name} at N={clients}: {ratio:.2f}x the deliveries "
                f"per second ({versions})"
            )
    return lines


def _peer(name: str) -> str:
    return PEER_NAMES.get(name, name)


def comparisons(fanout: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per N: tuichat's flat-out deliveries/s over each other server's (when tuichat ran), and
    each server's paced p50 and p99 latency (ms), side by side. Baseline runs are left out."""
    found = []
    for clients in dict.fromkeys(r["clients"] for r in fanout):
        here = {
            r["server"]: r
            for r in sorted(fanout, key=lambda r: r["server"] != "tuichat")  # tuichat first
            if r["clients"] == clients and "flat_median" in r and not r["server"].startswith(BASE)
        }
        ours = here.get("tuichat")
        over = {
            name: round(_rate(ours) / _rate(r), 3)
            for name, r in here.items()
            if ours and name != "tuichat"
        }
        paced = {
            name: [r["paced_median"]["latency_p50_ms"], r["paced_median"]["latency_p99_ms"]]
            for name, r in here.items()
        }
        found.append({"clients": clients, "tuichat_over": over, "paced_p50_p99_ms": paced})
    return found


def _rate(scenario: dict[str, Any]) -> int:
    return max(int(scenario["flat_median"]["deliveries_per_s"]), 1)


def _comparison_lines(found: list[dict[str, Any]]) -> list[str]:
    lines = []
    for c in found:
        if c["tuichat_over"]:
            ratios = ", ".join(
                f"tuichat / {_peer(name)} {ratio:.2f}x" for name, ratio in c["tuichat_over"].items()
            )
            lines.append(f"N={c['clients']}: {ratios} the flat-out deliveries per second")
        if len(c["paced_p50_p99_ms"]) > 1:
            paced = ", ".join(
                f"{_peer(name)} {p50} / {p99}" for name, (p50, p99) in c["paced_p50_p99_ms"].items()
            )
            lines.append(f"N={c['clients']}: paced p50 / p99 ms: {paced}")
    return lines


def _idle_line(i: dict[str, Any]) -> str:
    spread = i.get("connections_per_server")
    per = f", per server process {' / '.join(map(str, spread))}" if spread else ""
    return (
        f"{i.get('what', 'connect+join')} of {i['clients']:,} idle clients on "
        f"{_peer(i['server'])}: {i['connect_s']:.2f} s, {i['rss_per_client_bytes'] / 1024:.2f} "
        f"KiB of server memory each ({i['failed']} failed{per})"
    )
