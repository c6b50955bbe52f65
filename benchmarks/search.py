"""Search over stored history: latency over a million messages, and what the index costs.

1. Search latency. Builds an SQLite history of 1,000,000 room messages through the real
   store (`SQLiteHistory.append`, big batches, synchronous=OFF; no client ids), in 50
   rooms from 200 senders: chat text of 5 to 20 words (about 10 on average), English or
   Persian (some of it with Arabic letter forms and ZWNJs, some with words of the other
   language), drawn from a vocabulary of about 4,000 words with a Zipf-like distribution.
   Then runs a fixed, seeded set of searches the way a server does (`SQLiteHistory.search`,
   every room seen, 20 hits): rare words, common words, two-word queries, Persian queries,
   a room filter and a sender filter, each query several times, after one pass that warms
   the cache (not counted). Reported: the median and p95 of the set and of each kind, over
   3 runs (the median of the runs' figures). Two kinds outside the set show the limits: a
   word no message has, and one- or two-letter prefixes. Then a handful of the same
   searches go through a real `tuichat-server --db <that db>` from a `ChatClient`: the
   end-to-end median.

   The built file is kept at `--db` (with a `.json` beside it that says what it holds) and
   reused by a later run with the same `--messages --rooms --people --seed`; without `--db`
   it is built in a temporary folder and removed at the end.

2. What the index costs when storing: acknowledged messages per second through a
   `tuichat-server` subprocess with SQLite history (synchronous=FULL), index on and
   `--no-search-index`, interleaved, under the load of benchmarks/history.py (S senders, W
   sends in flight each, M messages each; the texts are the chat text above, not one long
   word), and the store's own rate (one append per message through `SQLiteHistory`).

    python benchmarks/search.py                                  # all of it, about 3 minutes
    python benchmarks/search.py --db /tmp/search-bench.sqlite3   # keeps the built history
    python benchmarks/search.py --db /tmp/search-bench.sqlite3 --skip-writes
    python benchmarks/search.py --skip-search                    # the write cost alone
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from itertools import accumulate, pairwise
from pathlib import Path

from tuichat.chat.names import ZWNJ, check_name, check_room, name_key
from tuichat.chat.search import SearchQuery, fold, query_words
from tuichat.client import ChatClient
from tuichat.protocol import Message
from tuichat.server.history import SQLiteHistory, StoredMessage
from tuichat.server.history.search_index import SHARD_ROWS
from tuichat.server.history.sqlite import connect

LAYOUT = 2
"""What a built history looks like; a kept one of another layout is built anew."""
SEARCHER = "searcher"
BATCH = 20_000
"""Records per append while building."""
IN_FLIGHT = 2
"""Appends the build keeps queued (the next batch is made while the writer stores one)."""
START_TS = 1_735_689_600_000  # 2025-01-01 00:00 UTC, in ms

# --- the text ------------------------------------------------------------------------------


def split(text: str) -> list[str]:
    return text.split()


ENGLISH = split("""
the i to a you and it is that of in for on we this be have just not with do at but so my
can it's what if are was me all like get they will or your there about out up one no
yes ok know think how now going go good time when see from would yeah here then some
well also more need thanks lol right really people today work new want because any day
make back still did got sure maybe hey hi please sorry actually something thing way
only use them very much tomorrow even after first look let great nice cool too never
again already always where why who which could should these other than over into two
our us his her she he their last next week year month morning night tonight yesterday
weekend home office team meeting call later soon fine pretty probably idea question
answer problem help working test build release branch merge review commit deploy bug
fix server client database query index search message chat room user password login
network cache memory disk latency benchmark performance python code docs issue ticket
coffee lunch dinner game movie music book weather rain snow cold hot train bus car bike
phone laptop screen keyboard window file folder change update version error crash log
config feature design plan schedule project customer support email link page site
happy busy tired late early long short big small old fast slow easy hard wrong weird
funny awesome bad thank love hope feel try ask tell say show read write send start stop
open close run find keep leave move play pay buy sell eat drink sleep wait watch learn
teach remember forget miss meet join share talk agree guess mean seem turn bring hold
city country street shop market school university class teacher student family friend
mother father brother sister kid child name world life health doctor money price store
water tea bread food party trip travel flight hotel ticket picture photo video news
story history future minute hour second number point part place case fact group problem
""")

PERSIAN = split("""
و در به از که این را با است برای آن یک تا هم من تو ما شما او آنها نه آره خوب خیلی
چه چرا کجا کی چطور امروز فردا دیروز الان بعد قبل اینجا آنجا سلام ممنون مرسی لطفا
باشه حتما شاید فکر کار کتاب خانه دوست وقت روز شب سال ماه هفته ساعت دقیقه آب غذا
نان چای قهوه شهر تهران ایران کشور زبان فارسی انگلیسی مدرسه دانشگاه درس استاد
دانشجو برنامه نرم‌افزار کامپیوتر اینترنت پیام گروه جلسه پروژه مشکل سوال جواب خبر
عکس فیلم موسیقی بازی ورزش فوتبال هوا باران برف آفتاب گرم سرد بزرگ کوچک جدید قدیمی
زیبا سخت آسان مهم درست غلط بهتر بیشتر کمتر همه هیچ چیز کس آدم مردم بچه مادر پدر
برادر خواهر خانواده زندگی دنیا راه ماشین خیابان مغازه پول قیمت خرید فروش بازار
شرکت اداره دفتر میز صندلی پنجره دیوار رنگ سفید سیاه قرمز سبز آبی زرد می‌خواهم
می‌روم می‌آیم می‌دانم می‌کنم می‌گویم می‌بینم می‌شود نمی‌دانم نمی‌شود رفتم آمدم گفتم
دیدم کردم خواندم نوشتم خوردم خریدم برویم بیا برو بگو ببین بنویس درباره همین همان
چون اگر ولی اما پس یا هر خود دیگر باید نباید می‌توانم داشتم هست نیست بودم شدم
کنید کنیم دارم داری دارد دارند بود بودند شده شد کرد کردند گفت گفتند آمد رفت
سرور کاربر رمز شبکه جستجو نسخه خطا تست انتشار بررسی ایده کلاس معلم شاگرد دکتر
سلامتی مسافرت سفر هتل بلیت پرواز تصویر ویدیو داستان تاریخ آینده شماره قسمت جا
واقعا دقیقا تقریبا اصلا معمولا همیشه هرگز هنوز دوباره زود دیر آرام سریع خسته
خوشحال ناراحت عالی بد جالب عجیب خنده دار عزیز جان آقا خانم دوستان بچه‌ها همکار
""")  # noqa: RUF001

ENGLISH_SUFFIXES = ("s", "ed", "ing", "er")
PERSIAN_SUFFIXES = ("ها", ZWNJ + "ها", ZWNJ + "های", "ی", "م", "ت", "ش", "مان", "تان", "شان")  # noqa: RUF001
ENGLISH_SYLLABLES = split("ka ro mi ne ta lo vi sa du re po li fa no ze be mo ri tu ga")
ENGLISH_ENDINGS = split("n r l s t x m k")
PERSIAN_SYLLABLES = split("با را نو سی مه دا کو لی فر زن تا پا گل شا ری مو نی بو سا")
PERSIAN_ENDINGS = split("ن ر ل س ت د م ک ش")

ROOMS = [
    *split("""
general random dev ops design support news music games movies books food travel sports
python rust go frontend backend mobile infra security data ml releases bugs reviews
help jobs offtopic tehran isfahan shiraz tabriz mashhad persian english study math
physics chemistry art photos pets fitness cooking coffee
"""),
    *split("گفتگو برنامه-نویسی کتاب فیلم موسیقی سفر"),
]

FIRST_NAMES = [
    *split("""
sara ali maryam reza nima neda amir zahra omid leila arash shirin kaveh parisa babak
mina dariush roya farhad nasrin alex sam maria john anna mike emma david lisa tom kate
chris julia mark laura paul nina peter eva
"""),
    *split("مریم علی رضا سارا نیما زهرا امید لیلا آرش شیرین"),
]


def zipf_weights(
    count: int, exponent: float = 1.05, shift: float = 2.7, knee: int = 0
) -> list[float]:
    """Cumulative Zipf-Mandelbrot weights of ranks 1..count; past rank `knee` (if given) they
    fall faster (by (knee / rank)^4), so that the tail of a vocabulary is rare: in a million
    messages its last words occur a dozen times, its 1,000th some 800 times."""
    return list(
        accumulate(
            (1 / (rank + shift) ** exponent) * (knee / rank if 0 < knee < rank else 1) ** 4
            for rank in range(1, count + 1)
        )
    )


def made_words(syllables: list[str], endings: list[str], rng: random.Random) -> Iterator[str]:
    """Made-up words (names, jargon: the long tail of a chat's vocabulary)."""
    while True:
        word = "".join(rng.choice(syllables) for _ in range(rng.randint(2, 3)))
        yield word + rng.choice(endings) if rng.random() < 0.5 else word


def language(base: list[str], suffixes: tuple[str, ...], made: Iterator[str],
             size: int, rng: random.Random) -> list[str]:  # fmt: skip
    """A vocabulary by rank: the base words, then forms of them, then made-up words."""
    words = list(dict.fromkeys(base))
    seen = set(words)
    forms = [  # of the words past the commonest (the, and, to: no forms of them)
        w + s for w in words[60:] for s in suffixes if len(w) > 2 and rng.random() < 0.45
    ]
    rng.shuffle(forms)
    for word in forms:
        if word not in seen and len(words) < size * 0.6:
            seen.add(word)
            words.append(word)
    while len(words) < size:
        word = next(made)
        if word not in seen:
            seen.add(word)
            words.append(word)
    return words


@dataclass(frozen=True, slots=True)
class Vocabulary:
    english: list[str]
    persian: list[str]
    english_weights: list[float]
    persian_weights: list[float]

    @classmethod
    def make(cls, seed: int) -> Vocabulary:
        rng = random.Random(seed)
        english = language(
            ENGLISH, ENGLISH_SUFFIXES, made_words(ENGLISH_SYLLABLES, ENGLISH_ENDINGS, rng),
            2200, rng,
        )  # fmt: skip
        persian = language(
            PERSIAN, PERSIAN_SUFFIXES, made_words(PERSIAN_SYLLABLES, PERSIAN_ENDINGS, rng),
            1800, rng,
        )  # fmt: skip
        return cls(english, persian, zipf_weights(len(english), knee=1000),
                   zipf_weights(len(persian), knee=800))  # fmt: skip


ARABIC_FORMS = str.maketrans({"ی": "ي", "ک": "ك"})
PERSIAN_DIGITS = str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹")


class Texts:
    """Chat text: a message is English (55%) or Persian, 5 to 20 words, Zipf-like."""

    def __init__(self, vocabulary: Vocabulary, rng: random.Random) -> None:
        self.v = vocabulary
        self.rng = rng
        self.counts: dict[str, int] = {}
        """Occurrences of each word (as written in the vocabulary) in what was made."""

    def __call__(self) -> str:
        rng, v = self.rng, self.v
        persian = rng.random() >= 0.55
        words, weights = (
            (v.persian, v.persian_weights) if persian else (v.english, v.english_weights)
        )
        length = 5 + min(15, int(rng.expovariate(0.22)))
        chosen = rng.choices(words, cum_weights=weights, k=length)
        if rng.random() < 0.15:  # a word or two of the other language
            other, other_weights = (
                (v.english, v.english_weights) if persian else (v.persian, v.persian_weights)
            )
            for word in rng.choices(other, cum_weights=other_weights, k=rng.randint(1, 2)):
                chosen.insert(rng.randrange(len(chosen) + 1), word)
        counts = self.counts
        for word in chosen:
            counts[word] = counts.get(word, 0) + 1
        if rng.random() < 0.05:
            number = str(rng.randint(1, 2000))
            chosen.append(number.translate(PERSIAN_DIGITS) if persian else number)
        text = " ".join(chosen)
        ending = rng.random()
        if ending < 0.15:
            text += "؟" if persian else "?"
        elif ending < 0.25:
            text += "!"
        elif not persian and ending < 0.35:
            text = text[0].upper() + text[1:] + "."
        if persian and rng.random() < 0.05:  # typed on an Arabic keyboard
            text = text.translate(ARABIC_FORMS)
        return text


@dataclass(frozen=True, slots=True)
class Layout:
    """What a built history holds."""

    messages: int
    rooms: int
    people: int
    seed: int

    def room_names(self) -> list[str]:
        names = [f"#{ROOMS[i % len(ROOMS)]}{'' if i < len(ROOMS) else i // len(ROOMS)}"
                 for i in range(self.rooms)]  # fmt: skip
        assert all(check_room(name) == name for name in names)
        return names

    def people_names(self) -> list[str]:
        names = [f"{FIRST_NAMES[i % len(FIRST_NAMES)]}{i // len(FIRST_NAMES) or ''}"
                 for i in range(self.people)]  # fmt: skip
        assert all(check_name(name) == name for name in names)
        assert len({name_key(name) for name in names}) == len(names)
        return names


# --- building ------------------------------------------------------------------------------


def sidecar(db: Path) -> Path:
    return db.with_name(db.name + ".json")


def kept_counts(db: Path, layout: Layout) -> dict[str, int] | None:
    """The word counts of a history built before with this layout (None: there is none)."""
    try:
        meta = json.loads(sidecar(db).read_text())
    except (OSError, ValueError):
        return None
    if meta.get("layout") != LAYOUT or meta.get("params") != vars_of(layout) or not db.exists():
        return None
    counts: dict[str, int] = meta["counts"]
    return counts


def vars_of(layout: Layout) -> dict[str, int]:
    return {
        "messages": layout.messages, "rooms": layout.rooms,
        "people": layout.people, "seed": layout.seed,
    }  # fmt: skip


async def build(db: Path, layout: Layout) -> dict[str, int]:
    """Store `layout.messages` room messages through `SQLiteHistory.append`; return how often
    each word occurs."""
    rng = random.Random(layout.seed)
    texts = Texts(Vocabulary.make(layout.seed), rng)
    rooms, people = layout.room_names(), layout.people_names()
    keys = [name_key(name) for name in people]
    room_weights = zipf_weights(len(rooms), 0.9, 1.0)
    people_weights = zipf_weights(len(people), 0.8, 3.0)
    seqs = dict.fromkeys(rooms, 0)
    building = db.with_name(db.name + ".building")
    for stale in (building, Path(f"{building}-wal"), Path(f"{building}-shm")):
        stale.unlink(missing_ok=True)
    store = SQLiteHistory(building, synchronous="OFF")
    loop = asyncio.get_running_loop()
    pending: list[asyncio.Future[None]] = []
    ts = START_TS
    made = 0
    while made < layout.messages:
        records = []
        for _ in range(min(BATCH, layout.messages - made)):
            room = rng.choices(rooms, cum_weights=room_weights)[0]
            person = rng.choices(range(len(people)), cum_weights=people_weights)[0]
            seqs[room] += 1
            ts += rng.randint(0, 60_000)
            message = Message(room, seqs[room], people[person], texts(), ts, rng.random() < 0.02)
            records.append(StoredMessage(message, 1, keys[person], ""))
        made += len(records)
        done: asyncio.Future[None] = loop.create_future()

        def failed(error: Exception, done: asyncio.Future[None] = done) -> None:
            done.set_exception(error)

        def durable(done: asyncio.Future[None] = done) -> None:
            done.set_result(None)

        store.append(records, durable, failed)
        pending.append(done)
        if len(pending) >= IN_FLIGHT:
            await pending.pop(0)
        if made % 100_000 < BATCH:
            print(f"  built {made:,} messages", file=sys.stderr)
    await asyncio.gather(*pending)
    await store.close()
    building.rename(db)
    sidecar(db).write_text(json.dumps({"layout": LAYOUT, "params": vars_of(layout),
                                       "counts": texts.counts}))  # fmt: skip
    return texts.counts


def size_of(db: Path) -> int:
    return sum(p.stat().st_size for p in (db, Path(f"{db}-wal")) if p.exists())


def index_size(db: Path) -> int | None:
    """Bytes of the file that the search index takes (its shards and `found`; None: SQLite
    was built without `dbstat`)."""
    conn = connect(db)  # as the store opens it (another process may not share the file)
    try:
        rows = conn.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name").fetchall()
    except sqlite3.Error:
        return None
    finally:
        conn.close()
    return int(sum(size for name, size in rows if name.startswith("search_") or name == "found"))


# --- the searches --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Query:
    kind: str
    text: str
    room: str = ""
    sender: str = ""

    def store_query(self) -> SearchQuery:
        sender_key = name_key(self.sender) if self.sender else ""
        return SearchQuery(query_words(self.text), name_key(SEARCHER), self.room, "",
                           sender_key, "", 20)  # fmt: skip

    def label(self) -> str:
        where = f" in {self.room}" if self.room else f" from {self.sender}" if self.sender else ""
        return f"{self.text!r}{where}"


KINDS = ("rare", "common", "two words", "persian", "room", "sender")
"""The kinds of the set the target is about."""
EXTRA_KINDS = ("absent", "short prefix")
"""Outside the set: the limits (every shard read; a prefix many words begin)."""


def queries(vocabulary: Vocabulary, counts: dict[str, int], layout: Layout,
            per_kind: int) -> list[Query]:  # fmt: skip
    """A fixed set of searches (seeded), `per_kind` of each kind."""
    rng = random.Random(layout.seed + 1)
    rooms, people = layout.room_names(), layout.people_names()
    words = vocabulary.english + vocabulary.persian
    present = [w for w in words if counts.get(w, 0) > 0]

    def pick(among: list[str], n: int) -> list[str]:
        return rng.sample(among, min(n, len(among)))

    # a rare word that begins no other, folded (else its search finds more than its count)
    folded = sorted({fold(w) for w in words})
    begins = {w for w, after in pairwise(folded) if after.startswith(w)}
    rare = [w for w in present if 5 <= counts[w] <= 200 and fold(w) not in begins]
    by_count = sorted(present, key=lambda w: -counts[w])
    common = by_count[:100]
    middle = by_count[100:1000]
    persian = [w for w in vocabulary.persian if counts.get(w, 0) >= 20]
    made: list[Query] = [Query("rare", w) for w in pick(rare, per_kind)]
    made += [Query("common", w) for w in pick(common, per_kind)]
    pairs = zip(pick(common, per_kind), pick(middle, per_kind), strict=True)
    made += [Query("two words", f"{a} {b}") for a, b in pairs]
    persian_queries = pick(persian, per_kind)
    for i, word in enumerate(persian_queries):  # some typed with Arabic letters, some two words
        if i % 4 == 1:
            word = word.translate(ARABIC_FORMS)
        elif i % 4 == 2:
            word = f"{word} {rng.choice(persian[:200])}"
        made.append(Query("persian", word))
    made += [Query("room", w, room=rng.choice(rooms)) for w in pick(middle, per_kind)]
    made += [Query("sender", w, sender=rng.choice(people)) for w in pick(common, per_kind)]
    made += [Query("absent", w) for w in ("zzqxv", "qwxyzk", "خخخظظ", "kubernetes")]
    made += [Query("short prefix", w) for w in ("t", "m", "ب", "پر", "re", "co")]
    return made


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


@dataclass(slots=True)
class Figures:
    """Latencies (ms) of one run, by query."""

    by_query: dict[Query, list[float]]

    def of(self, kinds: tuple[str, ...]) -> list[float]:
        return [ms for query, each in self.by_query.items() if query.kind in kinds for ms in each]


async def timed(
    set_of: list[Query], repeats: int, search: Callable[[Query], Awaitable[int]]
) -> tuple[Figures, dict[Query, int]]:
    """Run each query `repeats` times (the whole set once, then again); return latencies and
    the hits each query found."""
    figures = Figures({query: [] for query in set_of})
    hits: dict[Query, int] = {}
    for _ in range(repeats):
        for query in set_of:
            started = time.perf_counter()
            hits[query] = await search(query)
            figures.by_query[query].append((time.perf_counter() - started) * 1000)
    return figures, hits


async def search_store(
    db: Path, set_of: list[Query], runs: int, repeats: int
) -> tuple[list[Figures], dict[Query, int]]:
    """Search through `SQLiteHistory.search`, as a server does; one warming pass first."""
    store = SQLiteHistory(db)
    prepared = {query: query.store_query() for query in set_of}

    async def search(query: Query) -> int:
        hits, _ = await store.search(prepared[query], lambda room: True)
        return len(hits)

    try:
        _, hits = await timed(set_of, 1, search)
        results = []
        for run in range(runs):
            with Others() as others:
                figures, _ = await timed(set_of, repeats, search)
            results.append(figures)
            every = figures.of(KINDS)
            print(f"  run {run + 1}: median {statistics.median(every):.1f} ms,"
                  f" p95 {percentile(every, 0.95):.1f} ms{others}", file=sys.stderr)  # fmt: skip
    finally:
        await store.close()
    return results, hits


async def start_server(extra: list[str]) -> tuple[asyncio.subprocess.Process, int]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tuichat.server", "--port", "0", "--log-level", "INFO", *extra,
        "--messages-per-second", "1e12", "--message-burst", "1000000000",
        "--text-bytes-per-second", "1e12", "--text-byte-burst", "1000000000000",
        "--searches-per-second", "1e12", "--search-burst", "1000000000",
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stderr is not None
    while True:
        line = await process.stderr.readline()
        if match := re.search(rb"listening on [\d.]+:(\d+)", line):
            break
        if not line:
            raise RuntimeError("the server did not start")
    stderr = process.stderr

    async def drain() -> None:  # a full pipe would stop the server's logging, and it
        while await stderr.readline():
            pass

    asyncio.get_running_loop().create_task(drain())
    return process, int(match.group(1))


async def stop(server: asyncio.subprocess.Process) -> None:
    server.terminate()
    await server.wait()


async def search_server(db: Path, set_of: list[Query], repeats: int) -> list[float]:
    """Search through a real server from a `ChatClient`; return the latencies (ms)."""
    server, port = await start_server(["--db", str(db)])
    try:
        client = await ChatClient.connect(SEARCHER, "127.0.0.1", port)

        async def search(query: Query) -> int:
            found = await client.search(query.text, room=query.room, sender=query.sender,
                                        limit=20)  # fmt: skip
            return len(found.hits)

        await timed(set_of, 1, search)
        figures, _ = await timed(set_of, repeats, search)
        await client.close()
    finally:
        await stop(server)
    return figures.of(KINDS)


# --- what the index costs ------------------------------------------------------------------


async def send_all(port: int, texts: list[list[str]], window: int) -> float:
    """Send `texts[i]` from client i with `window` sends in flight each; return seconds."""
    clients = [await ChatClient.connect(f"sender{i}", "127.0.0.1", port) for i in range(len(texts))]

    async def run(client: ChatClient, mine: list[str]) -> None:
        limit = asyncio.Semaphore(window)

        async def one(text: str) -> None:
            async with limit:
                await client.send("#lobby", text)

        await asyncio.gather(*(one(text) for text in mine))

    started = time.perf_counter()
    await asyncio.gather(*(run(c, mine) for c, mine in zip(clients, texts, strict=True)))
    elapsed = time.perf_counter() - started
    for client in clients:
        await client.close()
    return elapsed


async def server_rate(indexed: bool, texts: list[list[str]], window: int) -> float:
    """Acknowledged messages per second through a server with SQLite history."""
    with tempfile.TemporaryDirectory() as tmp:
        extra = ["--db", str(Path(tmp) / "h.sqlite3")]
        server, port = await start_server(extra if indexed else [*extra, "--no-search-index"])
        try:
            seconds = await send_all(port, texts, window)
        finally:
            await stop(server)
    return sum(map(len, texts)) / seconds


async def store_rate(indexed: bool, texts: list[str]) -> float:
    """Durable appends per second of `SQLiteHistory` alone, one append per message."""
    with tempfile.TemporaryDirectory() as tmp:
        store = SQLiteHistory(Path(tmp) / "h.sqlite3", search_index=indexed)
        done = asyncio.Event()
        remaining = len(texts)

        def durable() -> None:
            nonlocal remaining
            remaining -= 1
            if not remaining:
                done.set()

        started = time.perf_counter()
        for i, text in enumerate(texts):
            message = Message("#lobby", i + 1, "bench", text, START_TS + i, False)
            store.append([StoredMessage(message, 1, "bench", f"id{i}")], durable)
            if i % 1000 == 999:
                await asyncio.sleep(0)  # let callbacks run, as the server's loop would
        await done.wait()
        elapsed = time.perf_counter() - started
        await store.close()
    return len(texts) / elapsed


def interleaved(runs: int, measure: Callable[[bool], float], what: str) -> dict[bool, list[float]]:
    results: dict[bool, list[float]] = {True: [], False: []}
    for run in range(runs):
        for indexed in (True, False):  # alternate, so that noise hits both alike
            with Others() as others:
                results[indexed].append(measure(indexed))
            state = "index on " if indexed else "index off"
            print(f"  run {run + 1} {state}: {results[indexed][-1]:,.0f} {what}{others}",
                  file=sys.stderr)  # fmt: skip
    return results


class Others:
    """How much CPU other processes took meanwhile (Linux: /proc/stat), to tell a noisy run:
    this process's time and that of its children it waited for are left out."""

    def __enter__(self) -> Others:
        self.started, self.busy, self.own = time.perf_counter(), busy(), own()
        return self

    def __exit__(self, *_: object) -> None:
        elapsed = time.perf_counter() - self.started
        after = busy()
        self.share = (
            None
            if after is None or self.busy is None
            else max(0.0, (after - self.busy) - (own() - self.own)) / elapsed
        )

    def __str__(self) -> str:
        return "" if self.share is None else f" (others: {self.share:.0%} of a core)"


def busy() -> float | None:
    """CPU seconds the machine has spent busy, all cores (None: not known here)."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def own() -> float:
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


# --- the report ----------------------------------------------------------------------------


def row(cells: list[str], widths: list[int]) -> str:
    return "  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                     for i, (c, w) in enumerate(zip(cells, widths, strict=True)))  # fmt: skip


def print_table(rows: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for i, cells in enumerate(rows):
        print(row(cells, widths))
        if i == 0:
            print(row(["-" * w for w in widths], widths))


def median_of(results: list[Figures], kinds: tuple[str, ...],
              stat: Callable[[list[float]], float]) -> float:  # fmt: skip
    return statistics.median(stat(figures.of(kinds)) for figures in results)


def report_search(results: list[Figures], hits: dict[Query, int], end_to_end: list[float],
                  runs: int) -> None:  # fmt: skip
    def p95(values: list[float]) -> float:
        return percentile(values, 0.95)

    print(f"\nSearch latency, SQLiteHistory.search, limit 20 (ms; median of {runs} runs' figures)")
    rows = [["queries", "searches/run", "median", "p95", "mean hits"]]
    for label, kinds in [("the set", KINDS), *((k, (k,)) for k in KINDS),
                         *((f"({k})", (k,)) for k in EXTRA_KINDS)]:  # fmt: skip
        of_kinds = [q for q in hits if q.kind in kinds]
        if not of_kinds:
            continue
        mean_hits = statistics.mean(hits[q] for q in of_kinds)
        rows.append([label, str(len(results[0].of(kinds))),
                     f"{median_of(results, kinds, statistics.median):.1f}",
                     f"{median_of(results, kinds, p95):.1f}", f"{mean_hits:.1f}"])  # fmt: skip
    rows.append(["end to end (server)", str(len(end_to_end)),
                 f"{statistics.median(end_to_end):.1f}", f"{p95(end_to_end):.1f}", ""])  # fmt: skip
    print_table(rows)
    each = {query: statistics.median(ms for figures in results for ms in figures.by_query[query])
            for query in hits}  # fmt: skip
    print("\nThe slowest searches (median ms of all their repeats):")
    for query in sorted(each, key=lambda q: -each[q])[:8]:
        print(f"  {each[query]:7.1f}  {query.kind:<12} {query.label()}  ({hits[query]} hits)")


def report_writes(server: dict[bool, list[float]], store: dict[bool, list[float]] | None,
                  runs: int) -> None:  # fmt: skip
    print(f"\nWhat the index costs when storing (median of {runs} runs, interleaved)")
    rows = [["acknowledged messages/s", "index on", "index off", "on / off"]]
    for label, results in (("tuichat-server, SQLite", server), ("SQLiteHistory alone", store)):
        if results is None:
            continue
        on, off = statistics.median(results[True]), statistics.median(results[False])
        rows.append([label, f"{on:,.0f}", f"{off:,.0f}", f"{on / off:.0%}"])
    print_table(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", type=Path, help="where to keep the built history (reused)")
    parser.add_argument("--messages", type=int, default=1_000_000, help="to build")
    parser.add_argument("--rooms", type=int, default=50)
    parser.add_argument("--people", type=int, default=200, help="senders of the built history")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--per-kind", type=int, default=8, help="queries of each kind")
    parser.add_argument("--repeats", type=int, default=5, help="times each query runs per run")
    parser.add_argument("--server-queries", type=int, default=2, help="of each kind, end to end")
    parser.add_argument("--runs", type=int, default=3, help="report the median of this many")
    parser.add_argument("--senders", type=int, default=4, help="writing: clients sending")
    parser.add_argument("--send", type=int, default=5000, help="writing: messages per sender")
    parser.add_argument("--window", type=int, default=64, help="writing: sends in flight each")
    parser.add_argument("--store-messages", type=int, default=100_000,
                        help="writing: appends to the store alone (0: none)")  # fmt: skip
    parser.add_argument("--skip-search", action="store_true")
    parser.add_argument("--skip-writes", action="store_true")
    args = parser.parse_args()
    layout = Layout(args.messages, args.rooms, args.people, args.seed)
    vocabulary = Vocabulary.make(args.seed)

    if not args.skip_writes:  # first: the build's writes must not slow these fsyncs
        texts = Texts(vocabulary, random.Random(args.seed + 2))
        load = [[texts() for _ in range(args.send)] for _ in range(args.senders)]
        print(f"writing through tuichat-server: {args.senders} senders x {args.send}, "
              f"window {args.window}", file=sys.stderr)  # fmt: skip
        server = interleaved(
            args.runs, lambda on: asyncio.run(server_rate(on, load, args.window)), "messages/s"
        )
        store = None
        if args.store_messages:
            alone = [texts() for _ in range(args.store_messages)]
            print(f"appending to SQLiteHistory alone: {len(alone):,}", file=sys.stderr)
            store = interleaved(
                args.runs, lambda on: asyncio.run(store_rate(on, alone)), "appends/s"
            )

    if not args.skip_search:
        with tempfile.TemporaryDirectory() as tmp:
            db = args.db or Path(tmp) / "history.sqlite3"
            counts = kept_counts(db, layout)
            build_seconds = None
            if counts is None:
                if db.exists():
                    sys.exit(f"{db} exists but was not built by this benchmark with these"
                             " parameters: remove it (and its .json), or give another"
                             " --db")  # fmt: skip
                print(f"building {layout.messages:,} messages in {db}", file=sys.stderr)
                started = time.perf_counter()
                counts = asyncio.run(build(db, layout))
                build_seconds = time.perf_counter() - started
                os.sync()  # the build's pages on disk before anything is timed
            set_of = queries(vocabulary, counts, layout, args.per_kind)
            print(f"searching: {len(set_of)} queries x {args.repeats}, {args.runs} runs",
                  file=sys.stderr)  # fmt: skip
            results, hits = asyncio.run(search_store(db, set_of, args.runs, args.repeats))
            few = [q for kind in KINDS for q in [q for q in set_of if q.kind == kind]
                   [: args.server_queries]]  # fmt: skip
            print(f"searching through tuichat-server: {len(few)} queries x {args.repeats}",
                  file=sys.stderr)  # fmt: skip
            end_to_end = asyncio.run(search_server(db, few, args.repeats))
            shards = args.messages // SHARD_ROWS + 1  # (sids count from 1)
            built = (f"built in {build_seconds:.0f} s" if build_seconds is not None
                     else "kept from an earlier run")  # fmt: skip
            indexed = index_size(db)
            of_it = "" if indexed is None else f" ({indexed / 1e6:,.0f} MB of it the index)"
            print(f"\nHistory: {layout.messages:,} messages, {layout.rooms} rooms, "
                  f"{layout.people} senders, {size_of(db) / 1e6:,.0f} MB{of_it}, {shards} index "
                  f"shards; {built}")  # fmt: skip
            report_search(results, hits, end_to_end, args.runs)

    if not args.skip_writes:
        report_writes(server, store, args.runs)
    print("\nReproduce: " + " ".join(["python", "benchmarks/search.py", *sys.argv[1:]]))


if __name__ == "__main__":
    main()
