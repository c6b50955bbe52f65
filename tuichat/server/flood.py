"""Flood limits that outlive a connection: per address, per identity, per sender and target.

"Per address" means per IPv4 address, or per IPv6 network (a host there has a /64 of its
own); names registered and rooms opened are counted per network (IPv4 /24, IPv6 /64 by
default) since they stay.

A connection's own buckets (in `Session`) start full, so reconnecting would reset
them. These buckets belong to the client's address and to the user, and are kept
after the connection ends: a bucket is forgotten only once it has filled up again
(then it is the same as a new one) or, past `limits.MAX_KEYS` of a kind, the one
used least recently. Plain objects, told the time by their caller.
"""

from __future__ import annotations

from collections.abc import Callable

from tuichat.server.config import RateLimits
from tuichat.server.limits import KeyedBuckets

HOUR = 3600.0


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
