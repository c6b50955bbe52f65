"""Rate limiting as plain objects told the time by their caller: a token bucket, token buckets
by key, and the size of the largest page (what a history request is priced by)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable

MAX_PAGE = 500
"""Most messages in one `history_page` (or one page of a replay)."""


class TokenBucket:
    """Holds up to `burst` tokens, refilled at `rate` per second."""

    __slots__ = ("_last", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._last = now

    def take(self, cost: float, now: float) -> bool:
        """Take `cost` tokens if there are enough at time `now`; return whether it did."""
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if cost > self._tokens:
            return False
        self._tokens -= cost
        return True

    def available(self, now: float) -> float:
        """Return how many tokens the bucket holds at time `now` (without taking any)."""
        return min(self.burst, self._tokens + (now - self._last) * self.rate)


MAX_KEYS = 50_000
"""Buckets kept of each kind at most (a few MB)."""
UNLIMITED = 1e9
"""A burst this large means no limit: no buckets are kept."""


class KeyedBuckets:
    """One token bucket per key, all with the same rate and burst, bounded in number.

    Buckets are kept least recently used first. After each use, those at the front that
    have filled up again are dropped (a full bucket is the same as a new one), and past
    `max_keys` the least recently used go too (their keys start afresh: the price of a
    bound). The bucket just used is never dropped unless it is full.
    """

    def __init__(self, rate: float, burst: float, max_keys: int = MAX_KEYS) -> None:
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        self._buckets: OrderedDict[Hashable, TokenBucket] = OrderedDict()
        self._unlimited = burst >= UNLIMITED

    def take(self, key: Hashable, cost: float, now: float) -> bool:
        """Take `cost` from `key`'s bucket if it has enough; return whether it did."""
        if cost <= 0 or self._unlimited:
            return True  # any bucket, a new one too, has nothing to take
        bucket = self._buckets.pop(key, None)
        if bucket is None:
            bucket = TokenBucket(self.rate, self.burst, now)
        taken = bucket.take(cost, now)
        self._buckets[key] = bucket  # now the most recently used
        self._forget(now)
        return taken

    def wait(self, key: Hashable, cost: float, now: float) -> float:
        """Seconds until `key`'s bucket holds `cost` (0 if it does now)."""
        bucket = self._buckets.get(key)
        if bucket is None or self._unlimited:
            return 0.0
        missing = cost - bucket.available(now)
        return 0.0 if missing <= 0 else missing / bucket.rate if bucket.rate > 0 else float("inf")

    def refill(self, key: Hashable) -> None:
        """Give `key` a full bucket again (the next take starts afresh)."""
        self._buckets.pop(key, None)

    def _forget(self, now: float) -> None:
        buckets = self._buckets
        while buckets:
            key, oldest = next(iter(buckets.items()))
            if len(buckets) <= self.max_keys and oldest.available(now) < oldest.burst:
                return
            del buckets[key]

    def __len__(self) -> int:
        return len(self._buckets)
