"""Rate limiting as plain objects: a token bucket, told the time by its caller."""

from __future__ import annotations


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
