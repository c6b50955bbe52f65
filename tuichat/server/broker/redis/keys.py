"""Redis key and channel names, with hash tags so that one room lives in one cluster slot.

Everything of a room (its seq, its stream, its epoch, its retry ids and its
channel) carries the tag `{r:<room>}`, so a Lua script can touch all of it on one
node of a Redis Cluster. What belongs to the whole chat (private messages,
presence, names, tokens, moderation) carries `{g}` and lives in one slot.
"""

from __future__ import annotations

PREFIX = "tuichat:"
GLOBAL = PREFIX + "{g}:"

GENERATION = GLOBAL + "generation"
"""A random marker: gone means Redis lost its data."""
SETTINGS = GLOBAL + "settings"
"""Settings every server must share (the history kept per room)."""
SERVER_ID = GLOBAL + "server-id"
"""The chat's identity, which every `hello` that owns its name signs."""
PID = GLOBAL + "pid"
TOKENS = GLOBAL + "tokens"
IDENTITIES = GLOBAL + "identities"
SERVERS = GLOBAL + "servers"
PRIVATES = GLOBAL + "privates"
"""The channel of new private messages."""
PRESENCE = GLOBAL + "presence"
"""The channel of presence, tokens and registrations."""
READS = GLOBAL + "reads"
"""The channel of read markers as they are stored."""
TYPING = GLOBAL + "typing"
"""The channel of typing in private conversations (nothing is stored for it)."""
ROOM_KEYS = GLOBAL + "room-keys"
"""Comparison key of a room name → the room that holds it (see `Broker.claim_room`)."""
UNKEYED_ROOMS = GLOBAL + "unkeyed-rooms"
"""The rooms that do not hold their comparison key (an older look-alike holds it)."""
RULES = GLOBAL + "rules"
"""Every moderation rule (`tuichat.chat.rules.Rule`): its scope, kind and subject (a JSON
array) → its value (JSON)."""
RULES_VERSION = GLOBAL + "rules-version"
"""Counts the moderation steps stored: each step's version (see `feeds.ModerationFeed`)."""
MOD_LOG = GLOBAL + "mod-log"
"""The stream of the whole moderation log (an entry's id is `<its number>-0`); each entry is in
its room's stream too (`mod_log_key`)."""
MOD_LOG_ID = GLOBAL + "mod-log-id"
"""The number of the last moderation log entry."""
MODERATION = GLOBAL + "moderation"
"""The channel of moderation steps as they are stored."""
SCHEMA = GLOBAL + "schema"
"""The version of what Redis holds (absent: 1, before names were folded for Persian)."""
MIGRATING = GLOBAL + "migrating"
"""Held (SET NX, expiring) by the server bringing Redis to `SCHEMA` now."""
MIGRATION_PLAN = GLOBAL + "migration-plan"
"""What the migration under way moves where (kept until it is done)."""
MIGRATION_DONE = GLOBAL + "migration-done"
"""The steps of the migration under way that are done."""


def room_key(room: str, part: str) -> str:
    """The key of one part of a room (`seq`, `log`, `epoch`; `messages` and `typing`: its
    channels)."""
    return f"{PREFIX}{{r:{room}}}:{part}"


def retry_key(room: str, sender_key: str, client_id: str) -> str:
    """Where a room message's (sender, client id) is remembered."""
    return room_key(room, f"id:{sender_key}:{client_id}")


def private_log(user_key: str) -> str:
    """The stream of the private messages to and from a user."""
    return f"{GLOBAL}private:{user_key}"


def conversation_log(user_key: str, other_key: str) -> str:
    """The stream of the private messages between two users (the same key either way)."""
    first, second = sorted((user_key, other_key))
    return f"{GLOBAL}conversation:{len(first)}:{first}:{second}"  # a key may hold a `:`


def reads_key(user_key: str) -> str:
    """The hash of a user's read markers: conversation → (label, epoch, seq, moved at)."""
    return f"{GLOBAL}reads:{user_key}"


def read_order(user_key: str) -> str:
    """The sorted set of a user's conversations with a read marker, by when it moved."""
    return f"{GLOBAL}read-order:{user_key}"


def private_retry_key(sender_key: str, client_id: str) -> str:
    """Where a private message's (sender, client id) is remembered."""
    return f"{GLOBAL}private-id:{sender_key}:{client_id}"


def moderation_retry_key(event_id: str) -> str:
    """Where a moderation step's id is remembered (a step sent again is not stored twice)."""
    return f"{GLOBAL}mod-id:{event_id}"


def mod_log_key(room: str) -> str:
    """The stream of one room's entries of the moderation log (`""`: the server's own), under
    the same ids as in `MOD_LOG`."""
    return f"{MOD_LOG}:{room}"


def presence_key(server: str) -> str:
    """The hash of one server's users (it expires unless the server refreshes it)."""
    return f"{GLOBAL}server:{server}"
