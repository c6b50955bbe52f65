"""benchmarks/search.py, small: the history it builds is the real store's (each room's seqs
dense from 1, every message indexed), it reports every figure, and a second run keeps the
built file."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).parent.parent / "benchmarks" / "search.py"
SMALL = ("--messages", "3000", "--per-kind", "2", "--repeats", "1", "--runs", "1",
         "--server-queries", "1")  # fmt: skip


def run(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(BENCH), *SMALL, *args], capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_the_search_benchmark_builds_a_real_history_and_keeps_it(tmp_path: Path) -> None:
    db = tmp_path / "history.sqlite3"
    out = run("--db", str(db), "--senders", "2", "--send", "50", "--store-messages", "200")
    assert "3,000 messages, 50 rooms, 200 senders" in out and "built in" in out
    for label in ("the set", "rare", "two words", "persian", "sender", "end to end (server)",
                  "tuichat-server, SQLite", "SQLiteHistory alone"):  # fmt: skip
        assert label in out
    conn = sqlite3.connect(db)
    rooms = conn.execute("SELECT COUNT(*), MIN(seq), MAX(seq) FROM messages GROUP BY room")
    assert all(low == 1 and high == count for count, low, high in rooms)
    stored = conn.execute("SELECT COUNT(*), COUNT(DISTINCT sid) FROM messages").fetchone()
    assert stored == (3000, 3000)
    assert conn.execute("SELECT COUNT(*) FROM found").fetchone() == (3000,)
    conn.close()

    again = run("--db", str(db), "--skip-writes")
    assert "kept from an earlier run" in again and "tuichat-server, SQLite" not in again
