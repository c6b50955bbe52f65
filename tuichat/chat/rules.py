"""Who may do what, and who is kept out: rooms' owners, ops, topics, invitations, bans and
mutes; server-wide bans (of people and of address prefixes); the names each user ignores.

Plain objects, no I/O and no clock. Every change is a `Rule` (set, or removed with a value
of None) that the broker stores and hands back to every server in the order it was stored;
`Rules` is what they add up to, and answers questions that carry `now`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

SERVER = ""
"""The scope of what holds on the whole server (its bans)."""

OWNER = "owner"
TOPIC = "topic"
PRIVATE = "private"
OP = "op"
INVITE = "invite"
BAN = "ban"
MUTE = "mute"
BAN_NET = "ban_net"
IGNORE = "ignore"

Value = Mapping[str, str | int]

MAX_IGNORED = 500
"""Names one user may ignore."""


@dataclass(frozen=True, slots=True)
class Rule:
    """One stored fact: in `scope` (a room, `SERVER`, or `@` and a user key for what is the
    user's own), `kind` holds for `subject` (a user key, an address prefix, or "" for what a
    room has one of) with `value`; a value of None removes it."""

    scope: str
    kind: str
    subject: str
    value: Value | None


@dataclass(frozen=True, slots=True)
class ModEvent:
    """One moderation step as every server carries it out: what happened (`action`) to whom
    (`name`, user key `target_key`) in which room ("" for the server), by whom, and the rules
    it changes. `logged`: it goes in the moderation log (ignoring someone does not)."""

    id: str
    room: str
    action: str
    name: str
    by: str
    reason: str = ""
    until: int = 0
    ts: int = 0
    rules: tuple[Rule, ...] = ()
    target_key: str = ""
    by_key: str = ""
    logged: bool = True


@dataclass(frozen=True, slots=True)
class Sanction:
    """A ban or a mute: of whom (their name, and their key's owner if the name has one), by
    whom, why, and until when (ms since the epoch, 0: until undone)."""

    name: str
    owner: str = ""
    by: str = ""
    reason: str = ""
    until: int = 0
    ts: int = 0

    def holds(self, now: int) -> bool:
        """Whether it is still in force at `now`."""
        return not self.until or now < self.until

    @classmethod
    def of(cls, value: Value) -> Sanction:
        """The sanction a stored value describes."""
        return cls(
            str(value.get("name", "")),
            str(value.get("owner", "")),
            str(value.get("by", "")),
            str(value.get("reason", "")),
            int(value.get("until", 0)),
            int(value.get("ts", 0)),
        )

    def value(self) -> dict[str, str | int]:
        """The value that stores it."""
        return {
            "name": self.name,
            "owner": self.owner,
            "by": self.by,
            "reason": self.reason,
            "until": self.until,
            "ts": self.ts,
        }


@dataclass
class RoomRules:
    """What holds in one room (or, for `SERVER`, on the whole server: its bans)."""

    owner_key: str = ""
    owner: str = ""
    topic: str = ""
    topic_by: str = ""
    topic_ts: int = 0
    private: bool = False
    ops: dict[str, str] = field(default_factory=dict)
    """User key → name."""
    invited: dict[str, str] = field(default_factory=dict)
    """User key → name: who may join while the room is private."""
    bans: dict[str, Sanction] = field(default_factory=dict)
    """By user key."""
    mutes: dict[str, Sanction] = field(default_factory=dict)
    """By user key."""

    def is_op(self, key: str) -> bool:
        """Whether the user of `key` owns the room or is one of its ops."""
        return bool(key) and (key == self.owner_key or key in self.ops)

    def op_names(self) -> tuple[str, ...]:
        """The ops' names, sorted (the owner is not among them unless made one)."""
        return tuple(sorted(self.ops.values(), key=str.casefold))

    def sanction(
        self, kept: dict[str, Sanction], key: str, owner: str, now: int
    ) -> Sanction | None:
        """The sanction in `kept` that holds for the user (by key, or by their key's owner)."""
        found = kept.get(key)
        if found is not None and found.holds(now):
            return found
        if owner:
            for each in kept.values():
                if each.owner == owner and each.holds(now):
                    return each
        return None

    def empty(self) -> bool:
        """Whether nothing holds here (a room like any other)."""
        return not (
            self.owner_key or self.topic or self.private or self.ops or self.invited
            or self.bans or self.mutes
        )  # fmt: skip


class Rules:
    """Every rule there is, as the stored changes add up."""

    def __init__(self) -> None:
        self.rooms: dict[str, RoomRules] = {}
        self.server = RoomRules()
        self.networks: dict[str, tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, Sanction]]
        self.networks = {}
        """Server-wide bans of address prefixes, by the prefix as written."""
        self.ignores: dict[str, dict[str, str]] = {}
        """User key → the user keys they ignore → the name ignored."""
        self._ignored_owners: dict[str, dict[str, str]] = {}
        """User key → the user keys they ignore → the key that owns that name (if any)."""

    def load(self, rules: Iterable[Rule]) -> None:
        """Start again from `rules` (all there are, as stored)."""
        self.rooms.clear()
        self.server = RoomRules()
        self.networks.clear()
        self.ignores.clear()
        self._ignored_owners.clear()
        for rule in rules:
            self.apply(rule)

    def apply(self, rule: Rule) -> None:
        """Take one change (a rule of a kind this version does not know is passed over)."""
        if rule.scope.startswith("@"):
            if rule.kind == IGNORE:
                self._ignore(rule.scope[1:], rule.subject, rule.value)
            return
        if rule.kind == BAN_NET:
            self._ban_network(rule.subject, rule.value)
            return
        holder = self.server if rule.scope == SERVER else self.rooms.get(rule.scope)
        if holder is None:
            if rule.value is None:
                return
            holder = self.rooms[rule.scope] = RoomRules()
        _apply(holder, rule)
        if holder is not self.server and holder.empty():
            del self.rooms[rule.scope]

    def _ignore(self, user_key: str, subject: str, value: Value | None) -> None:
        ignored = self.ignores.setdefault(user_key, {})
        owners = self._ignored_owners.setdefault(user_key, {})
        if value is None:
            ignored.pop(subject, None)
            owners.pop(subject, None)
        else:
            ignored[subject] = str(value.get("name", subject))
            if value.get("owner"):
                owners[subject] = str(value["owner"])
        if not ignored:
            del self.ignores[user_key]
        if not owners:
            del self._ignored_owners[user_key]

    def _ban_network(self, prefix: str, value: Value | None) -> None:
        if value is None:
            self.networks.pop(prefix, None)
            return
        try:
            network = ipaddress.ip_network(prefix, strict=False)
        except ValueError:
            return
        self.networks[prefix] = (network, Sanction.of(value))

    # --- questions ---------------------------------------------------------

    def room(self, name: str) -> RoomRules:
        """What holds in room `name` (nothing special: a fresh `RoomRules`, not kept)."""
        return self.rooms.get(name) or RoomRules()

    def banned(self, room: str, key: str, owner: str, now: int) -> Sanction | None:
        """The ban that keeps the user out of `room` (`SERVER`: off the server), if any."""
        holder = self.server if room == SERVER else self.rooms.get(room)
        if holder is None or not holder.bans:
            return None
        return holder.sanction(holder.bans, key, owner, now)

    def network_ban(self, address: str, now: int) -> Sanction | None:
        """The server-wide ban of an address prefix that holds `address`, if any."""
        if not self.networks:
            return None
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return None
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped  # (`::ffff:203.0.113.5` is 203.0.113.5)
        for network, sanction in self.networks.values():
            if ip.version == network.version and ip in network and sanction.holds(now):
                return sanction
        return None

    def muted(self, room: str, key: str, owner: str, now: int) -> Sanction | None:
        """The mute that keeps the user from posting in `room`, if any."""
        holder = self.rooms.get(room)
        if holder is None or not holder.mutes:
            return None
        return holder.sanction(holder.mutes, key, owner, now)

    def is_op(self, room: str, key: str) -> bool:
        """Whether the user of `key` owns `room` or is one of its ops."""
        holder = self.rooms.get(room)
        return holder is not None and holder.is_op(key)

    def is_private(self, room: str) -> bool:
        """Whether `room` is invite-only."""
        holder = self.rooms.get(room)
        return holder is not None and holder.private

    def member(self, room: str, key: str) -> bool:
        """Whether the user of `key` may see and join `room` as far as its privacy goes (any
        room that is not private; a private one's invited, owner and ops)."""
        holder = self.rooms.get(room)
        if holder is None or not holder.private:
            return True
        return key in holder.invited or holder.is_op(key)

    def ignoring(self, user_key: str, other_key: str, other_owner: str = "") -> bool:
        """Whether the user of `user_key` ignores the user of `other_key` (or any name of the
        key `other_owner`, when an ignored name has it)."""
        ignored = self.ignores.get(user_key)
        if ignored is None:
            return False
        if other_key in ignored:
            return True
        owners = self._ignored_owners.get(user_key)
        return bool(other_owner) and owners is not None and other_owner in owners.values()

    def ignored(self, user_key: str) -> tuple[str, ...]:
        """The names the user ignores, sorted."""
        return tuple(sorted(self.ignores.get(user_key, {}).values(), key=str.casefold))


def _apply(holder: RoomRules, rule: Rule) -> None:
    value, subject = rule.value, rule.subject
    if rule.kind == OWNER:
        holder.owner_key = str(value.get("key", "")) if value else ""
        holder.owner = str(value.get("name", "")) if value else ""
    elif rule.kind == TOPIC:
        holder.topic = str(value.get("text", "")) if value else ""
        holder.topic_by = str(value.get("by", "")) if value else ""
        holder.topic_ts = int(value.get("ts", 0)) if value else 0
    elif rule.kind == PRIVATE:
        holder.private = value is not None
    elif rule.kind in (OP, INVITE):
        kept = holder.ops if rule.kind == OP else holder.invited
        if value is None:
            kept.pop(subject, None)
        else:
            kept[subject] = str(value.get("name", subject))
    elif rule.kind in (BAN, MUTE):
        sanctions = holder.bans if rule.kind == BAN else holder.mutes
        if value is None:
            sanctions.pop(subject, None)
        else:
            sanctions[subject] = Sanction.of(value)
