"""Token buckets by key: bounded in number, and never dropping the key just used."""

from __future__ import annotations

from tuichat.server.limits import KeyedBuckets


def test_a_full_table_still_limits_a_new_key() -> None:
    buckets = KeyedBuckets(rate=1 / 3600, burst=2, max_keys=100)
    for n in range(100):  # a table full of buckets that will not refill for an hour
        assert buckets.take(f"old{n}", 1, now=0.0)
    taken = [buckets.take("new", 1, now=1.0) for _ in range(5)]
    assert taken == [True, True, False, False, False]
    assert len(buckets) == 100  # the least recently used went, not the new key


def test_buckets_that_filled_up_again_are_forgotten() -> None:
    buckets = KeyedBuckets(rate=1.0, burst=10)
    for n in range(1000):
        buckets.take(n, 1, now=0.0)
    assert len(buckets) == 1000
    assert buckets.take("later", 1, now=60.0)
    assert len(buckets) == 1  # only the one that just took a token
    assert buckets.wait("later", 10, now=60.0) == 1.0


def test_taking_nothing_or_without_a_limit_keeps_nothing() -> None:
    assert KeyedBuckets(rate=1.0, burst=1).take("a", 0, now=0.0)
    unlimited = KeyedBuckets(rate=1e12, burst=1e12)
    assert all(unlimited.take(n, 1, now=0.0) for n in range(100))
    assert len(unlimited) == 0
