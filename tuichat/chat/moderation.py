"""What a moderation request means, and whether its asker may make it: plain functions from a
request, who asks and whom it is about, to the `ModEvent` every server carries out.

The server finds the people (online, registered, or neither) and checks what needs the
network (whether someone is in a room on another server); everything else is decided here.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from tuichat.chat.errors import ChatError
from tuichat.chat.rules import (
    BAN,
    BAN_NET,
    IGNORE,
    INVITE,
    MAX_IGNORED,
    MUTE,
    OP,
    OWNER,
    PRIVATE,
    SERVER,
    TOPIC,
    Rule,
    Rules,
    Sanction,
)
from tuichat.protocol.errors import ErrorCode

LOBBY = "#lobby"
MAX_REASON_BYTES = 300
"""The longest reason a moderator may give (UTF-8 bytes, once cleaned)."""
MAX_TOPIC_BYTES = 500
"""The longest topic (UTF-8 bytes, once cleaned)."""
MAX_DURATION = 10 * 365 * 24 * 3600
"""The longest ban or mute, in seconds (longer is until undone)."""
PRUNED = 100
"""Bans (or mutes) that have run out forgotten by each new one."""
MAX_ENTRIES = 10_000
"""Ops, invitations, bans and mutes kept per room (each), and bans for the server."""
SERVER_WIDE = frozenset({"kick", "ban", "unban"})
"""What an admin's request in the lobby does to the whole server."""
OWNER_ACTIONS = frozenset({"op", "deop"})
"""What only a room's owner may do (and admins)."""


@dataclass(frozen=True, slots=True)
class Person:
    """Someone a request comes from or is about: their name as shown, their user key, and the
    key that owns their name ("" for a name without one)."""

    name: str
    key: str
    owner: str = ""
    admin: bool = False


def network(text: str) -> str | None:
    """The address prefix `text` names (`203.0.113.0/24`, `2001:db8::/48`, `192.0.2.7/32`),
    written the one way it is stored; None if it is none (a prefix has a `/`, which no name
    has: `1.2.3.4` is a name)."""
    if "/" not in text:
        return None
    try:
        return str(ipaddress.ip_network(text.strip(), strict=False))
    except ValueError:
        return None


def check_role(rules: Rules, room: str, actor: Person, action: str) -> None:
    """Raise `ChatError` unless `actor` may do `action` in `room` (an admin may do anything;
    the lobby's kick, ban and unban are the admins' alone: they act on the whole server)."""
    if actor.admin:
        return
    if room == LOBBY and action in SERVER_WIDE:
        raise ChatError(
            ErrorCode.NOT_ADMIN, f"only the server's admins can {action} people from {LOBBY}"
        )
    held = rules.room(room)
    if action in OWNER_ACTIONS and actor.key != held.owner_key:
        raise ChatError(ErrorCode.NOT_OP, f"only the owner of {room} can make and unmake ops")
    if not held.is_op(actor.key):
        raise ChatError(ErrorCode.NOT_OP, f"only the owner and ops of {room} can do that")


def check_target(
    rules: Rules, room: str, actor: Person, target: Person, *, undoing: bool = False
) -> None:
    """Raise `ChatError` if `target` is beyond `actor`'s reach: themself, an admin, the room's
    owner (but for an admin), another op (but for the owner or an admin). `undoing` (an unban,
    an unmute, a deop, an uninvitation): only themself is out of reach (a banned or muted op
    cannot lift their own sanction)."""
    if target.key == actor.key:
        raise ChatError(ErrorCode.CANNOT_MODERATE, "you cannot do that to yourself")
    if undoing:
        return
    if target.admin:
        raise ChatError(ErrorCode.CANNOT_MODERATE, f"{target.name} is one of the server's admins")
    held = rules.room(room)
    if actor.admin:
        return
    if target.key == held.owner_key:
        raise ChatError(ErrorCode.CANNOT_MODERATE, f"{target.name} owns {room}")
    if target.key in held.ops and actor.key != held.owner_key:
        raise ChatError(
            ErrorCode.CANNOT_MODERATE, f"{target.name} is an op of {room}: ask its owner"
        )


def until(now: int, duration: int) -> int:
    """When a ban or mute of `duration` seconds given at `now` (ms) ends (0: until undone)."""
    if duration < 0:
        raise ChatError(ErrorCode.BAD_MESSAGE, "a duration cannot be negative")
    if not duration or duration > MAX_DURATION:
        return 0
    return now + duration * 1000


def moderation_rules(
    rules: Rules,
    room: str,
    action: str,
    actor: Person,
    target: Person,
    reason: str,
    ends: int,
    now: int,
) -> tuple[Rule, ...]:
    """The rules `action` on `target` in `room` (`SERVER` for the server) changes (a ban or a
    mute also forgets up to `PRUNED` of the room's that have run out)."""
    _check_room_for_more(rules, room, action, target, now)
    who = {"name": target.name, "by": actor.name}
    sanction = Sanction(target.name, target.owner, actor.name, reason, ends, now).value()
    if action in ("deop", "uninvite"):
        held = rules.room(room)
        if target.key not in (held.ops if action == "deop" else held.invited):
            what = "an op of" if action == "deop" else "invited to"
            raise ChatError(ErrorCode.NO_SUCH_USER, f"{target.name} is not {what} {room}")
    if action in ("op", "deop"):
        return (Rule(room, OP, target.key, who if action == "op" else None),)
    if action in ("invite", "uninvite"):
        return (Rule(room, INVITE, target.key, who if action == "invite" else None),)
    if action == "ban":
        if room == SERVER:
            return (Rule(SERVER, BAN, target.key, sanction), *_over(rules, room, BAN, now))
        return (  # out, no longer invited, and no longer an op
            Rule(room, BAN, target.key, sanction),
            Rule(room, INVITE, target.key, None),
            Rule(room, OP, target.key, None),
            *_over(rules, room, BAN, now),
        )
    if action == "mute":
        return (Rule(room, MUTE, target.key, sanction), *_over(rules, room, MUTE, now))
    if action in ("unban", "unmute"):
        holder = rules.server if room == SERVER else rules.room(room)
        kept = holder.bans if action == "unban" else holder.mutes
        kind = BAN if action == "unban" else MUTE
        keys = {key for key, s in kept.items() if key == target.key or (
            target.owner and s.owner == target.owner)}  # fmt: skip
        if not keys:
            what = "banned" if action == "unban" else "muted"
            where = "on this server" if room == SERVER else f"in {room}"
            raise ChatError(ErrorCode.NO_SUCH_USER, f"{target.name} is not {what} {where}")
        return tuple(Rule(room, kind, key, None) for key in sorted(keys))
    return ()  # kick: nothing stays


def _over(rules: Rules, room: str, kind: str, now: int) -> tuple[Rule, ...]:
    """Rules that forget up to `PRUNED` of a room's bans (or mutes) that have run out."""
    holder = rules.server if room == SERVER else rules.room(room)
    kept = holder.bans if kind == BAN else holder.mutes
    over = [key for key, sanction in kept.items() if not sanction.holds(now)][:PRUNED]
    return tuple(Rule(room, kind, key, None) for key in over)


def _check_room_for_more(rules: Rules, room: str, action: str, target: Person, now: int) -> None:
    """Refuse one more op, invitation, ban or mute past `MAX_ENTRIES` in one room (bans and
    mutes that have run out do not count)."""
    holder = rules.server if room == SERVER else rules.room(room)
    kept: dict[str, dict[str, str] | dict[str, Sanction]] = {
        "op": holder.ops, "invite": holder.invited, "ban": holder.bans, "mute": holder.mutes,
    }  # fmt: skip
    entries = kept.get(action)
    if entries is None or target.key in entries or len(entries) < MAX_ENTRIES:
        return
    if action in ("ban", "mute"):
        held = [s for s in entries.values() if isinstance(s, Sanction) and s.holds(now)]
        if len(held) < MAX_ENTRIES:
            return
    where = "the server" if room == SERVER else room
    raise ChatError(
        ErrorCode.LIMIT_REACHED, f"{where} has {MAX_ENTRIES} of those already: undo some first"
    )


def network_rules(
    rules: Rules, action: str, prefix: str, actor: Person, reason: str, ends: int, now: int
) -> tuple[Rule, ...]:
    """The rules a server-wide ban (or unban) of an address prefix changes."""
    if action == "ban":
        return (Rule(SERVER, BAN_NET, prefix, Sanction(prefix, "", actor.name, reason, ends, now)
                     .value()),)  # fmt: skip
    if prefix not in rules.networks:
        raise ChatError(ErrorCode.NO_SUCH_USER, f"{prefix} is not banned")
    return (Rule(SERVER, BAN_NET, prefix, None),)


def owner_rule(room: str, creator: Person) -> Rule:
    """The rule that makes `creator` the owner of `room`."""
    return Rule(room, OWNER, "", {"key": creator.key, "name": creator.name})


def topic_rule(room: str, topic: str, actor: Person, now: int) -> Rule:
    """The rule that sets the topic of `room` ("": clears it)."""
    value: dict[str, str | int] = {"text": topic, "by": actor.name, "ts": now}
    return Rule(room, TOPIC, "", value if topic else None)


def private_rules(
    room: str, private: bool, actor: Person, members: dict[str, str], now: int
) -> tuple[Rule, ...]:
    """The rules that make `room` private (its registered `members`, key → name, invited) or
    open again."""
    if not private:
        return (Rule(room, PRIVATE, "", None),)
    invited = tuple(
        Rule(room, INVITE, key, {"name": name, "by": actor.name})
        for key, name in sorted(members.items())
    )
    return (Rule(room, PRIVATE, "", {"by": actor.name, "ts": now}), *invited)


def ignore_rule(rules: Rules, user: Person, target: Person, ignore: bool) -> Rule:
    """The rule that has `user` ignore `target` (or no longer)."""
    if target.key == user.key:
        raise ChatError(ErrorCode.CANNOT_MODERATE, "you cannot ignore yourself")
    if ignore and len(rules.ignores.get(user.key, ())) >= MAX_IGNORED:
        raise ChatError(
            ErrorCode.LIMIT_REACHED, f"you can ignore at most {MAX_IGNORED} people; unignore some"
        )
    value: dict[str, str | int] = {"name": target.name, "owner": target.owner}
    return Rule("@" + user.key, IGNORE, target.key, value if ignore else None)


def describe_until(ends: int, now: int) -> str:
    """`for 2 hours`-like words for how long a ban or mute still holds ("" for ever)."""
    if not ends:
        return ""
    left = max(0, -(-(ends - now) // 1000))  # (whole seconds, rounded up)
    for size, unit in ((86400, "day"), (3600, "hour"), (60, "minute")):
        if left >= size:
            count = round(left / size)
            return f" for {count} more {unit}{'s' if count != 1 else ''}"
    return f" for {left} more second{'s' if left != 1 else ''}"


def sanction_sentence(what: str, where: str, sanction: Sanction, now: int) -> str:
    """The sentence a banned or muted user gets when refused."""
    why = f": {sanction.reason}" if sanction.reason else ""
    by = f" by {sanction.by}" if sanction.by else ""
    return f"you are {what} {where}{by}{describe_until(sanction.until, now)}{why}"
