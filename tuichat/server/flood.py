"""Flood limits that outlive a connection: per address, per identity, per sender and target.

"Per address" means per IPv4 address, or per IPv6 network (a host there has a /64 of its
own); names registered and rooms opened are counted per network (IPv4 /24, IPv6 /64 by
default) since they stay.

A connection's own buckets (in `Session`) start full, so reconnecting would reset
them. These buckets belong to the client's address and to the user, and are kept
after the connection ends: a bucket is forgotten only once it has filled up again
(then it is the same as a new one) or, past `MAX_KEYS` of a kind, the one used
least recently. Plain objects, told the time by their caller.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable

from tuichat.server.config import RateLimits
from tuichat.server.limits import TokenBucket

MAX_KEYS = 50_000
"""Buckets kept of each kind at most (a few MB)."""
SWEEP_EVERY = 1.0
"""Seconds between two sweeps for buckets that filled up again (a sweep reads them all)."""
UNLIMITED = 1e9
"""A burst this large means no limit: no buckets are kept."""
HOUR = 3600.0


class KeyedBuckets:
    """One token bucket per key, all with the same rate and burst, bounded in number."""

    def __init__(self, rate: float, burst: float, max_keys: int = MAX_KEYS) -> None:
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        self._buckets: OrderedDict[Hashable, TokenBucket] = OrderedDict()
        self._unlimited = burst >= UNLIMITED
        self._swept = float("-inf")

    def take(self, key: Hashable, cost: float, now: float) -> bool:
        """Take `cost` from `key`'s bucket if it has enough; return whether it did."""
        bucket = self._buckets.get(key)
        if bucket is None:
            if self._unlimited:
                return True
            if len(self._buckets) >= self.max_keys:
                self._make_room(now)
            bucket = self._buckets[key] = TokenBucket(self.rate, self.burst, now)
        else:
            self._buckets.move_to_end(key)
        return bucket.take(cost, now)

    def _make_room(self, now: float) -> None:
        """Before a new bucket: drop the buckets that filled up again (at most one sweep a
        second), else the least recently used one (its key starts afresh: the price of a
        bound)."""
        if now - self._swept >= SWEEP_EVERY:
            self._swept = now
            full = [k for k, b in self._buckets.items() if b.available(now) >= b.burst]
            for key in full:
                del self._buckets[key]
        while len(self._buckets) >= self.max_keys:
            self._buckets.popitem(last=False)

    def __len__(self) -> int:
        return len(self._buckets)


class FloodLimits:
    """Every limit that outlives a connection, with the addresses exempt from those per
    address."""

    def __init__(
        self,
        rate: RateLimits,
        *,
        exempt: Callable[[str], bool],
        source: Callable[[str], str],
        network: Callable[[str], str],
    ) -> None:
        share = rate.address_share
        self._exempt = exempt
        self._source = source
        self._network = network
        self.address_requests = KeyedBuckets(
            rate.messages_per_second * share, rate.message_burst * share
        )
        self.address_bytes = KeyedBuckets(rate.bytes_per_second * share, rate.byte_burst * share)
        self.user_requests = KeyedBuckets(rate.messages_per_second, rate.message_burst)
        self.user_bytes = KeyedBuckets(rate.bytes_per_second, rate.byte_burst)
        self.pairs = KeyedBuckets(rate.private_pair_per_second, rate.private_pair_burst)
        self.registrations = KeyedBuckets(
            rate.registrations_per_hour / HOUR, rate.registrations_per_hour
        )
        self.new_rooms = KeyedBuckets(rate.new_rooms_per_hour / HOUR, rate.new_rooms_per_hour)

    def request(
        self, address: str, user_key: str | None, cost: int, text_bytes: int, now: float
    ) -> bool:
        """Whether a request worth `cost` request tokens (with `text_bytes` of text) from
        `address`, by the user of `user_key` if welcomed, is within the limits of both."""
        if user_key is not None and not (
            self.user_requests.take(user_key, cost, now)
            and self.user_bytes.take(user_key, text_bytes, now)
        ):
            return False
        if self._exempt(address):
            return True
        source = self._source(address)
        return self.address_requests.take(source, cost, now) and self.address_bytes.take(
            source, text_bytes, now
        )

    def private(self, address: str, sender_key: str, target_key: str, now: float) -> bool:
        """Whether one more private message from this sender (and address) to this target is
        within the rate per sender and target."""
        if not self.pairs.take((sender_key, target_key), 1, now):
            return False
        source = self._source(address)
        return self._exempt(address) or self.pairs.take((source, target_key), 1, now)

    def registration(self, address: str, now: float) -> bool:
        """Whether the network of `address` may register one more name."""
        return self._exempt(address) or self.registrations.take(self._network(address), 1, now)

    def new_room(self, address: str, now: float) -> bool:
        """Whether the network of `address` may open one more room that nobody is in."""
        return self._exempt(address) or self.new_rooms.take(self._network(address), 1, now)
