"""Replies, reactions, edits and deletes as the app holds them: a log entry as the message it
shows and back, the message a command acts on, `s/old/new/` applied, and what the app says of
a reaction or of the message a reply answers. Plain functions of plain values (no Textual, no
I/O), each sentence in the language in use.

An entry of a room's log keeps what its message is now (its text, edited or deleted, its
reactions, the quote of the message it answers); `tuichat.chat.verbs.applied` changes it for
each `update`, the same function every holder of messages uses, so that a message reads the
same here as in a history page or a replay.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from tuichat.app.i18n import _
from tuichat.app.model import Kind, LogEntry
from tuichat.chat import verbs
from tuichat.client.unread import fold
from tuichat.protocol import Message, Quote, Reaction, Update

TARGETS = frozenset({Kind.MESSAGE, Kind.OWN, Kind.ACTION})
"""The kinds of entries a verb may act on (room messages: a private one has no verbs)."""
SELECTABLE = TARGETS | {Kind.PRIVATE_IN, Kind.PRIVATE_OUT}
"""The kinds of entries the selection in the log stops at."""
MAX_NAMES_SHOWN = 5
"""Names said of one reaction, the others counted ("ali, bob, carol and 4 more")."""
EMOJI_PRESENTATION = "\ufe0f"
"""The variation selector that asks for an emoji's colour form (❤️ is U+2764 U+FE0F)."""


def as_message(room: str, entry: LogEntry) -> Message:
    """The room message `entry` shows, as it is now."""
    return Message(
        room,
        entry.seq,
        entry.sender,
        entry.text,
        entry.ts,
        entry.kind is Kind.ACTION,
        reply=entry.reply or None,
        quote=entry.quote,
        edited=entry.edited or None,
        deleted=entry.deleted or None,
        reactions=entry.reactions or None,
    )


def take(entry: LogEntry, message: Message) -> None:
    """Make `entry` show `message` (what a verb made of the message it showed)."""
    entry.text = message.text
    entry.edited = bool(message.edited)
    entry.deleted = bool(message.deleted)
    entry.reactions = message.reactions or ()
    if message.deleted:
        entry.mention = False


def apply(room: str, entry: LogEntry, update: Update) -> bool:
    """Apply `update` to the message `entry` shows; return whether it changed."""
    before = as_message(room, entry)
    after = verbs.applied(before, update)
    if after == before:
        return False
    take(entry, after)
    return True


def quote(entry: LogEntry) -> Quote:
    """What a reply shows of the message `entry` shows."""
    if entry.deleted:
        return Quote(sender=entry.sender, text="", deleted=True)
    return Quote(sender=entry.sender, text=verbs.preview(entry.text))


def targetable(entry: LogEntry) -> bool:
    """Whether a verb may act on `entry`: a room message, shown, not deleted."""
    return entry.kind in TARGETS and bool(entry.seq) and not entry.hidden and not entry.deleted


def selectable(entry: LogEntry) -> bool:
    """Whether the selection in the log may stop at `entry`: a message, shown, not deleted."""
    return entry.kind in SELECTABLE and bool(entry.seq) and not entry.hidden and not entry.deleted


def own(entry: LogEntry, me: str) -> bool:
    """Whether `entry` is a message of the user's (`me`)."""
    return entry.kind is Kind.OWN or (
        entry.kind in (Kind.ACTION, Kind.PRIVATE_OUT) and fold(entry.sender) == fold(me)
    )


def latest(entries: Sequence[LogEntry], me: str, *, mine: bool | None = None) -> LogEntry | None:
    """The newest message of `entries` a verb may act on: the user's (`mine`), someone
    else's (`mine` false) or anyone's (None)."""
    for entry in reversed(entries):
        if targetable(entry) and (mine is None or own(entry, me) == mine):
            return entry
    return None


def find(entries: Sequence[LogEntry], seq: int) -> int:
    """Where the message numbered `seq` is in `entries` (-1: not there), looked for from the
    end."""
    for index in range(len(entries) - 1, -1, -1):
        entry = entries[index]
        if entry.seq == seq and entry.kind in SELECTABLE:
            return index
    return -1


def substituted(text: str, old: str, new: str, everywhere: bool) -> str | None:
    """`text` with `old` replaced by `new` (the first time, or `everywhere`); None if `old`
    is not in it."""
    if old not in text:
        return None
    return text.replace(old, new) if everywhere else text.replace(old, new, 1)


def may_delete(entry: LogEntry, me: str, *, owner: str, ops: Iterable[str], admin: bool) -> bool:
    """Whether the user (`me`) may delete `entry`: their own message, or any in a room they
    own (`owner`) or are an op of (`ops`), or anywhere as one of the server's admins."""
    if admin or own(entry, me):
        return True
    folded = fold(me)
    return fold(owner) == folded or any(fold(op) == folded for op in ops)


def drawn(reaction: str) -> str:
    """A reaction as the app draws it: without `EMOJI_PRESENTATION`, whose width terminals
    disagree on (Rich counts ❤️ as two cells, tmux as one; ❤ is one to both). The text as
    given stays what is matched, toggled and sent."""
    return reaction.replace(EMOJI_PRESENTATION, "") or reaction


def mine_first(reactions: Iterable[Reaction], me: str) -> list[tuple[Reaction, bool]]:
    """Each reaction, and whether the user (`me`) gave it."""
    folded = fold(me)
    return [(r, any(fold(name) == folded for name in r.names)) for r in reactions]


def who_reacted(reaction: Reaction) -> str:
    """Who gave `reaction`: "ali, bob and carol", or "ali, bob and 4 more"."""
    names = list(reaction.names[:MAX_NAMES_SHOWN])
    more = max(reaction.count - len(names), 0)
    if not names:
        return str(more)
    # TRANSLATORS: between the items of a list, as in: ali, bob and carol
    joined = _(", ").join(names[:-1] if not more else names)
    if more:
        return _("{names} and {count} more").format(names=joined, count=more)
    if len(names) == 1:
        return names[0]
    return _("{names} and {last}").format(names=joined, last=names[-1])


def reactions_line(reactions: Iterable[Reaction]) -> str:
    """The reactions of a message and who gave each: "👍 ali, bob · 🎉 carol"."""
    # TRANSLATORS: a reaction and who gave it, as in: 👍 ali, bob
    said = [
        _("{reaction} {names}").format(reaction=drawn(r.text), names=who_reacted(r))
        for r in reactions
    ]
    return " · ".join(said)


def selection_hint(entry: LogEntry, *, private: bool, confirming: bool) -> str:
    """What the lines under the log say while `entry` is selected: what its keys do (Enter
    only for a reply), who gave its reactions; or, `confirming`, the question a delete asks
    first (in a private conversation, that verbs are for rooms)."""
    if confirming:
        return _("Delete this message? y deletes it, any other key keeps it")
    if private:
        return _("↑ ↓ select · Esc: back (replies and reactions are for rooms)")
    if entry.deleted:
        return _("message deleted · ↑ ↓ select · Esc: back")
    if entry.reply:
        text = _("r reply · e edit · d delete · + react · Enter: what it answers · Esc: back")
    else:
        text = _("r reply · e edit · d delete · + react · Esc: back")
    if entry.reactions:
        text = f"{text}\n{reactions_line(entry.reactions)}"
    return text
