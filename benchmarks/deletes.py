"""What a delete costs the SQLite history: the time from a delete's append to its being durable.

A delete takes the text out of the file before it is acknowledged: the row is overwritten,
its words leave the search index and the index's shard is merged anew (FTS5 `optimize`),
then the WAL is truncated. The merge is what costs, and it grows with the shard, so this
fills whole shards with messages of a given size and times deletes of random ones (median
and slowest of `--deletes`), for chat-sized and for the longest messages.

    python benchmarks/deletes.py
    python benchmarks/deletes.py --sizes 100 4000 --deletes 20
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from pathlib import Path

from tuichat.protocol import Message, Update
from tuichat.server.history import SQLiteHistory, StoredMessage
from tuichat.server.history.search_index import SHARD_ROWS


async def stored(store: SQLiteHistory, records: list[StoredMessage]) -> None:
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    store.append(records, lambda: done.set_result(None), done.set_exception)
    await done


async def measure(size: int, deletes: int, folder: Path, rng: random.Random) -> list[float]:
    """Seconds each of `deletes` deletes took, in a history of two full shards of `size`-byte
    messages."""
    store = SQLiteHistory(folder / f"deletes-{size}.sqlite3")
    words = [f"word{n}" for n in range(5000)]
    count = 2 * SHARD_ROWS
    batch: list[StoredMessage] = []
    for seq in range(1, count + 1):
        text = ""
        while len(text) < size:
            text += rng.choice(words) + " "
        batch.append(StoredMessage(Message("#dev", seq, "ali", text[:size], seq), 1, "ali", ""))
        if len(batch) == 5000:
            await stored(store, batch)
            batch = []
    await stored(store, batch)
    took = []
    for n in range(deletes):
        target = rng.randrange(1, count + 1)
        verb = Update("#dev", count + n + 1, "ali", 0, "delete", target)
        started = time.perf_counter()
        await stored(store, [StoredMessage(verb, 1, "ali", "")])
        took.append(time.perf_counter() - started)
    await store.close()
    return took


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 2000])
    parser.add_argument("--deletes", type=int, default=15)
    args = parser.parse_args()
    rng = random.Random(1)
    print(f"shards of {SHARD_ROWS:,} messages; {args.deletes} deletes each")
    with tempfile.TemporaryDirectory() as folder:
        for size in args.sizes:
            took = await measure(size, args.deletes, Path(folder), rng)
            median, most = statistics.median(took) * 1000, max(took) * 1000
            print(f"messages of {size:>5} bytes: a delete takes {median:6.1f} ms (median), "
                  f"{most:6.1f} ms at most")  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main())
