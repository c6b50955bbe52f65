"""What Redis keeps, as the broker reads and writes it: messages in streams (an entry's id is
`<seq, pid or number>-0`), the moderation log, the rules, and moderation steps as published."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import msgpack

from tuichat.chat import verbs
from tuichat.chat.rules import ModEvent, Rule
from tuichat.protocol import Message, ModEntry, PrivateMessage, Quote, RoomEvent, Update

log = logging.getLogger("tuichat.server")


def number(entry_id: bytes | str) -> int:
    """The seq or pid a stream entry is stored under (its id is `<number>-0`)."""
    text = entry_id if isinstance(entry_id, str) else entry_id.decode()
    return int(text.split("-")[0])


@dataclass(frozen=True, slots=True)
class Kept:
    """What the room's hashes hold of one entry (see `scripts.POST`)."""

    text: bytes | None
    state: bytes | None = None
    reactions: bytes | None = None


def event_from_entry(
    room: str,
    entry_id: bytes | str,
    fields: dict[bytes, bytes],
    kept: Kept,
    quote: Quote | None = None,
) -> RoomEvent:
    """A room message (as it is now) or verb as read back from its stream and the room's
    hashes (an entry stored before texts moved to the hash keeps its own)."""
    seq = number(entry_id)
    raw = kept.text if kept.text is not None else fields.get(b"t", b"")
    text = raw.decode()
    sender, ts = fields[b"s"].decode(), int(fields[b"ts"])
    target = int(fields.get(b"g", b"0"))
    verb = fields.get(b"v")
    if verb is not None:
        on = fields.get(b"n", b"")
        return Update(room, seq, sender, ts, verb.decode(), target, text,
                      None if not on else on == b"1")  # fmt: skip
    state = kept.state
    given = msgpack.unpackb(kept.reactions) if kept.reactions else ()
    return Message(
        room, seq, sender, "" if state == b"d" else text, ts,
        fields[b"a"] == b"1" and state != b"d", target or None, quote,
        edited=state == b"e" or None, deleted=state == b"d" or None,
        reactions=verbs.gathered((r[0], r[2]) for r in given),
    )  # fmt: skip


def author_of(fields: dict[bytes, bytes]) -> str:
    """The user key of an entry's sender."""
    return fields[b"k"].decode()


def is_verb(fields: dict[bytes, bytes]) -> bool:
    return b"v" in fields


def private_from_entry(entry_id: bytes | str, fields: dict[bytes, bytes]) -> PrivateMessage:
    """A private message as read back from a user's stream."""
    return PrivateMessage(
        fields[b"f"].decode(),
        fields[b"to"].decode(),
        fields[b"t"].decode(),
        int(fields[b"ts"]),
        fields[b"a"] == b"1",
        pid=number(entry_id),
    )


def private_parties(fields: dict[bytes, bytes]) -> tuple[str, str]:
    """The sender's and the target's keys of a private message as read back from a stream."""
    return fields[b"fk"].decode(), fields[b"tk"].decode()


def hidden_from(fields: dict[bytes, bytes], user_key: str) -> bool:
    """Whether a private message read back from a conversation is hidden from `user_key` (its
    target ignores its sender: see `PrivatePost.hidden`)."""
    return fields.get(b"h") == b"1" and fields[b"tk"].decode() == user_key


def mod_entry_from_entry(entry_id: bytes | str, fields: dict[bytes, bytes]) -> ModEntry:
    """A moderation log entry as read back from its stream."""
    return ModEntry(
        number(entry_id),
        int(fields[b"ts"]),
        fields[b"room"].decode(),
        fields[b"action"].decode(),
        fields[b"name"].decode(),
        fields[b"by"].decode(),
        fields[b"reason"].decode(),
        int(fields[b"until"]),
    )


def rule_field(rule: Rule) -> str:
    """The field of the rules' hash that holds `rule`: its scope, kind and subject."""
    return json.dumps([rule.scope, rule.kind, rule.subject], ensure_ascii=False)


def rule_value(rule: Rule) -> str:
    """What the rules' hash holds for `rule` ("": nothing, it is removed)."""
    if rule.value is None:
        return ""
    return json.dumps(dict(rule.value), ensure_ascii=False, sort_keys=True)


def stored_rule(field: bytes | str, value: bytes | str) -> Rule | None:
    """The rule a field and value of the rules' hash (or of a published step) make (a value of
    "": removed), or None if they make none (written by a later version, or damaged)."""
    try:
        parts = json.loads(field)
        loaded = json.loads(value) if value else None
    except (ValueError, UnicodeDecodeError):
        parts = loaded = None
    if (
        isinstance(parts, list) and len(parts) == 3 and all(isinstance(p, str) for p in parts)
        and (loaded is None or _is_value(loaded))
    ):  # fmt: skip
        scope, kind, subject = parts
        return Rule(scope, kind, subject, loaded)
    log.warning("redis: a moderation rule cannot be read: %r = %r", field, value)
    return None


def _is_value(value: Any) -> bool:
    return isinstance(value, dict) and all(
        isinstance(k, str) and isinstance(v, str | int) and not isinstance(v, bool)
        for k, v in value.items()
    )


def event_payload(origin: str, event: ModEvent) -> bytes:
    """What a moderation step is published as (after its version), with the server it came
    from."""
    rules = [x for rule in event.rules for x in (rule_field(rule), rule_value(rule))]
    data: bytes = msgpack.packb(
        [origin, event.id, event.room, event.action, event.name, event.by, event.reason,
         event.until, event.ts, event.target_key, event.by_key, event.logged, rules]
    )  # fmt: skip
    return data


def published_event(data: bytes) -> tuple[int, str, ModEvent] | None:
    """The version, origin and step a publication of the moderation channel carries (None if
    it carries none: a later version may add fields after these)."""
    try:
        head, _, payload = data.partition(b":")
        version = int(head)
        (origin, event_id, room, action, name, by, reason, until, ts, target_key, by_key,
         logged, flat, *_) = msgpack.unpackb(payload)  # fmt: skip
        pairs = zip(flat[::2], flat[1::2], strict=True)
        rules = tuple(rule for f, v in pairs if (rule := stored_rule(f, v)) is not None)
        event = ModEvent(
            event_id, room, action, name, by, reason, int(until), int(ts), rules, target_key,
            by_key, bool(logged),
        )  # fmt: skip
    except (ValueError, TypeError):
        log.warning("redis: a moderation step cannot be read: %r", data[:200])
        return None
    return version, str(origin), event
