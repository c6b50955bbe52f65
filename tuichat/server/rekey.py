"""Comparison keys made anew (Persian and Arabic folding): what moves where in a store.

Names are stored under their comparison keys (`tuichat.chat.names.name_keys`): the
registrations, and everything kept per user (resume tokens, read markers, private
messages and the senders of room messages). When the keys change, a store moves each
of them to the new key of its name. Two entries that were apart may now have one key:

- Registrations: the earliest keeps the name (all of its keys); the other loses it, and
  the log says so, naming both. Two registrations of one owner (one public key) are no
  clash.
- What is kept per user: under a key that a registration holds now, only its owner's
  own entries stay (those under the old keys of their registrations); of entries without
  a registration, the one already under the key stays, else the most recently active.
  The others are kept apart, under a key no name can have (`STRANDED` and the old key), so
  that nobody reads someone else's private messages or resumes someone else's session.

`plan` decides; the stores carry it out (`tuichat.server.history.sqlite`, and the Redis
broker's start).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from tuichat.server.ownership import key_of

log = logging.getLogger("tuichat.server")

STRANDED = "\x01"
"""Before the old key of what is kept apart: no name's key holds a control character."""


@dataclass(slots=True)
class Registration:
    """A name registered to an owner, as stored: its keys then and now."""

    name: str
    """Its spelling (a key where the store keeps no names), for the log."""
    owner: str
    old_keys: list[str]
    new_keys: tuple[str, ...]
    order: tuple[int, str]
    """Earliest first: when it was registered, then anything that tells two apart."""


@dataclass(slots=True)
class Plan:
    """What moves where."""

    identities: dict[str, Registration] = field(default_factory=dict)
    """New key → the registration that holds it."""
    losers: list[tuple[Registration, Registration]] = field(default_factory=list)
    """Registrations that lose their name, each with the earlier one it looks like now."""
    moves: dict[str, str] = field(default_factory=dict)
    """Old user key → the key its entries are kept under now (only those that change)."""


def plan(
    registrations: Iterable[Registration],
    user_keys: Mapping[str, str],
    *,
    recent: Callable[[str], int] = lambda key: 0,
    names: Mapping[str, str] | None = None,
) -> Plan:
    """Decide what moves where (see the module docstring).

    `user_keys`: every old user key that has something kept (and the old keys of the
    registrations), each with its new key. `recent(old key)`: how recently that user was
    active (higher is later), to choose between two without a registration. `names`: a
    spelling of each old key, for the log.
    """
    result = Plan()
    spelled = names or {}
    owners: dict[str, set[str]] = {}
    """Each owner's old keys (the keys of its registrations before)."""
    lost: set[str] = set()
    """The old keys of the registrations that lost their name."""
    for registration in sorted(registrations, key=lambda r: r.order):
        owner = key_of(registration.owner)
        rival = next(
            (
                held
                for key in registration.new_keys
                if (held := result.identities.get(key)) is not None and key_of(held.owner) != owner
            ),
            None,
        )
        if rival is not None:
            result.losers.append((registration, rival))
            lost.update(registration.old_keys)
            log.warning(
                "%s loses its registration: it now looks like %s, registered earlier to "
                "another key (the comparison of names folds Persian and Arabic letters)",
                registration.name,
                rival.name,
            )
            continue
        owners.setdefault(owner, set()).update(registration.old_keys)
        for key in registration.new_keys:
            result.identities.setdefault(key, registration)
    groups: dict[str, list[str]] = {}
    for old, new in user_keys.items():
        groups.setdefault(new, []).append(old)
    for new, olds in groups.items():
        if olds == [new] and new not in lost:
            continue  # nothing changes here
        holder = result.identities.get(new)
        if holder is not None:
            mine = owners.get(key_of(holder.owner), set())
            kept = [old for old in olds if old in mine]
        elif new in olds and new not in lost:
            kept = [new]
        else:  # (what a lost registration kept is kept apart)
            free = sorted(old for old in olds if old not in lost)
            kept = [max(free, key=recent)] if free else []
        for old in olds:
            if old in kept:
                if old != new:
                    result.moves[old] = new
                continue
            result.moves[old] = STRANDED + old
            if old in lost:
                continue  # (said above)
            if old != new:
                log.warning(
                    "%s and %s now compare alike; what was kept for %s (its read markers, "
                    "private messages and resume token) is kept apart",
                    spelled.get(old, old),
                    holder.name
                    if holder is not None
                    else spelled.get(kept[0], kept[0])
                    if kept
                    else new,
                    spelled.get(old, old),
                )
            else:
                log.warning(
                    "%s is registered now (it looks like a registered name); what was kept "
                    "for %s without a key is kept apart",
                    spelled.get(old, old),
                    spelled.get(old, old),
                )
    return result


def split_user_key(user_key: str) -> tuple[str, str]:
    """A stored user key (a read marker's: `key` or `key#lineage`) as its name key and the rest
    (`#lineage`, or "")."""
    key, mark, rest = user_key.partition("#")
    return key, mark + rest
