"""Unread and mention counts per conversation, kept from what a client sees (no I/O).

A conversation is a room (`#room`) or a private one (`@name`). `Unread` is told what
arrives: messages (a room's `seq`, a private message's `pid`), read markers (ours, and
those the user's other devices moved) and where a room is (its last `seq`, known before
its messages are). A room's seqs have no gaps, but not every seq is a message: a verb on a
message (a reaction, an edit, a delete: an `update`) takes a seq of its own. So a room's
unread count is its last seq minus its marker, less what among them is known not to be
unread: the user's own messages and the verbs. A verb is known by its `update` (live or
replayed: `verb`), or by the gap it leaves in a page of history, which holds every message
of its span but no verb (`page`); until then it counts, so a count can be high for a
moment (after a start, until the newest page of history is in), never low. Pids have gaps
anyway, so a private conversation counts the messages it saw. The user's own messages are
never unread, a marker moving to `seq` clears everything at or below it, and a room the
user has no marker in counts as read where it was first seen.
"""

from __future__ import annotations

import random
import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

from tuichat.chat.search import fold as fold

MAX_TRACKED = 10_000
"""Seqs remembered per conversation above its marker (own messages and verbs, mentions,
private messages); past it the oldest are forgotten, and the counts may come out a little
off."""
MAX_CONVERSATIONS = 4_096
"""Conversations kept; past it the one least recently told anything is forgotten."""
READ_INTERVAL = 1.0
"""Seconds, on average, between two read markers sent for one conversation."""
READ_SPREAD = 0.5
"""Each pause between markers is `READ_INTERVAL` times a random factor within this much of 1:
the readers of a busy room all see its messages at the same moment, and without it they
would all send their markers in the same millisecond, every second."""


def read_pause(interval: float = READ_INTERVAL, spread: float = READ_SPREAD) -> float:
    """Seconds to wait after sending a read marker before sending the next (see `READ_SPREAD`)."""
    return interval * random.uniform(1 - spread, 1 + spread)


def mentions(text: str, name: str) -> bool:
    """Whether `text` holds `name` as a whole word (both folded: `fold`)."""
    return _mentions(fold(text), fold(name))


def _mentions(folded_text: str, folded_name: str) -> bool:
    """Whether `folded_text` holds `folded_name` as a whole word (both `fold`ed)."""
    if not folded_name or folded_name not in folded_text:
        return False
    return re.search(rf"(?<!\w){re.escape(folded_name)}(?!\w)", folded_text) is not None


def conversation_key(conversation: str) -> str:
    """Return the key of a conversation (`#room` or `@name`), the same for every spelling of
    it: a private one's name is folded (`fold`), a room's name case-folded."""
    if conversation.startswith("@"):
        return "@" + fold(conversation[1:])
    return conversation.casefold()


def is_private(conversation: str) -> bool:
    """Whether `conversation` is a private one (`@name`)."""
    return conversation.startswith("@")


@dataclass(frozen=True, slots=True)
class Counts:
    """What waits to be read in one conversation."""

    unread: int = 0
    mentions: int = 0


@dataclass(slots=True)
class _Conversation:
    """What is known of one conversation."""

    private: bool
    epoch: int = 0  # a room's epoch (0: not known yet; always 0 for a private one)
    last: int = 0  # the newest seq (or pid) known
    read: int = 0  # the marker's seq (or pid) in `marker_epoch`
    marker_epoch: int = 0
    placed: bool = False  # a room's position in `epoch` was told (see `Unread.room`)
    uncounted: dict[int, None] = field(default_factory=dict)
    """A room's seqs above `read` that are not unread: own messages, verbs."""
    others: dict[int, None] = field(default_factory=dict)  # a private one's unread messages
    mentioned: dict[int, None] = field(default_factory=dict)  # mentions above `read`

    @property
    def marker(self) -> int:
        """Where the marker is in the room's epoch (0: nothing read in it). Epoch 0 is one
        not known yet, and matches any."""
        if self.private or self.marker_epoch in (0, self.epoch) or not self.epoch:
            return self.read
        return 0

    def counts(self) -> Counts:
        """What waits to be read."""
        if self.private:
            return Counts(len(self.others), len(self.mentioned))
        unread = max(self.last - self.marker - len(self.uncounted), len(self.mentioned), 0)
        return Counts(unread, len(self.mentioned))

    def clear_to(self, seq: int) -> None:
        """Forget the messages at or below `seq`: they are read."""
        for seqs in (self.uncounted, self.others, self.mentioned):
            if seqs:
                for old in [s for s in seqs if s <= seq]:
                    del seqs[old]


def _remember(seqs: dict[int, None], seq: int) -> None:
    seqs[seq] = None
    if len(seqs) > MAX_TRACKED:
        del seqs[next(iter(seqs))]


class Unread:
    """The unread and mention counts of every conversation, from what the client saw.

    Conversations are named `#room` or `@name` in any spelling (see `conversation_key`).
    `me` is the user's name: their messages are never unread, their name makes a mention, as
    does any of `keywords` (whole words, compared like names).
    """

    def __init__(self, me: str = "", keywords: Iterable[str] = ()) -> None:
        self._me = me
        self._folded_me = fold(me)
        self.keywords = tuple(keywords)
        self._conversations: dict[str, _Conversation] = {}

    @property
    def keywords(self) -> tuple[str, ...]:
        """Words that count as mentions of the user, besides their name."""
        return self._keywords

    @keywords.setter
    def keywords(self, words: Iterable[str]) -> None:
        self._keywords = tuple(w for w in words if w.strip())
        self._folded_keywords = tuple(fold(w.strip()) for w in self._keywords)

    @property
    def me(self) -> str:
        """The user's name."""
        return self._me

    @me.setter
    def me(self, name: str) -> None:
        self._me, self._folded_me = name, fold(name)

    def _get(self, conversation: str) -> _Conversation:
        """The conversation's state, made the most recently told (made if need be)."""
        key = conversation_key(conversation)
        conversations = self._conversations
        state = conversations.pop(key, None)
        if state is None:
            state = _Conversation(private=is_private(key))
            if len(conversations) >= MAX_CONVERSATIONS:
                del conversations[next(iter(conversations))]
        conversations[key] = state
        return state

    # --- what the client sees ---------------------------------------------

    def room(self, conversation: str, epoch: int, seq: int) -> None:
        """The room's newest message is `seq` in `epoch` (a welcome, a `room_state`, a
        reset). Another epoch numbers anew: what was known of the old one is forgotten. A
        room first seen with no marker (in its epoch) counts as read up to `seq`: what was
        said before the user came is history, not news (so tell the marker first)."""
        state = self._get(conversation)
        if state.private:
            return
        if state.epoch and epoch != state.epoch:
            state.last = 0
            state.uncounted.clear()
            state.mentioned.clear()
            state.placed = False
        state.epoch = epoch
        state.last = max(state.last, seq)
        if not state.placed:
            state.placed = True
            if not state.marker:
                state.read, state.marker_epoch = seq, epoch
                state.clear_to(seq)

    def message(
        self, conversation: str, seq: int, sender: str, text: str, *, to_me: bool = False
    ) -> bool:
        """A message was seen (live, replayed or from the history; again is no matter).
        Return whether it mentions the user (and is not theirs), read or not; `to_me`: it is
        a reply to the user's message, which counts as a mention."""
        state = self._get(conversation)
        own = fold(sender) == self._folded_me
        if own:
            mention = False
        elif to_me:
            mention = True
        else:  # the text folded once, for the name and every keyword
            folded = fold(text)
            mention = _mentions(folded, self._folded_me) or any(
                _mentions(folded, word) for word in self._folded_keywords
            )
        state.last = max(state.last, seq)
        if seq <= state.marker:
            return mention
        if own:
            if not state.private:
                _remember(state.uncounted, seq)
            return False
        if state.private:
            _remember(state.others, seq)
        if mention:
            _remember(state.mentioned, seq)
        return mention

    def verb(self, conversation: str, seq: int) -> None:
        """Seq `seq` of room `conversation` is a verb on a message (an `update`), not a
        message: never unread (seen live, replayed, again: no matter)."""
        state = self._get(conversation)
        if state.private:
            return
        state.last = max(state.last, seq)
        if seq > state.marker:
            _remember(state.uncounted, seq)

    def page(
        self, conversation: str, epoch: int, low: int, high: int, messages: Collection[int]
    ) -> None:
        """The messages of room `conversation` (in `epoch`) from seq `low` to `high` are
        those of `messages` (a page of its history, and what is held after it): every other
        seq between is a verb's (`high` past the room's last seq: up to it)."""
        state = self._get(conversation)
        if state.private or (epoch and state.epoch and epoch != state.epoch):
            return
        high = min(high, state.last)
        start = max(low, state.marker + 1, high - MAX_TRACKED + 1)
        for seq in range(start, high + 1):
            if seq not in messages:
                _remember(state.uncounted, seq)

    def marker(self, conversation: str, seq: int, epoch: int | None = None) -> bool:
        """The user read `conversation` up to `seq` (on this device or another); a room's
        marker is in `epoch` (None: the room's current one). Return whether it moved on."""
        state = self._get(conversation)
        if state.private:
            epoch = 0
        elif epoch is None:
            epoch = state.epoch
        elif epoch and state.epoch and epoch != state.epoch:
            return False  # a marker of another epoch says nothing of this one
        same_epoch = epoch == state.marker_epoch or not epoch or not state.marker_epoch
        if same_epoch and seq <= state.read:
            return False
        state.read, state.marker_epoch = seq, epoch or state.marker_epoch
        state.clear_to(seq)
        return True

    def forget(self, conversation: str) -> None:
        """The user left the conversation (or closed it)."""
        self._conversations.pop(conversation_key(conversation), None)

    # --- what the app shows ---------------------------------------------

    def counts(self, conversation: str) -> Counts:
        """What waits to be read in `conversation`."""
        state = self._conversations.get(conversation_key(conversation))
        return state.counts() if state is not None else Counts()

    def read_up_to(self, conversation: str) -> int:
        """The seq (a pid for `@name`) up to which `conversation` is read (0: none of it)."""
        state = self._conversations.get(conversation_key(conversation))
        return state.marker if state is not None else 0

    def next_unread(self, order: Iterable[str], current: str = "") -> str | None:
        """The conversation to read next, of those in `order` (the sidebar's) but `current`:
        the first with mentions, else the first private one with unread messages, else the
        first with unread messages; None when all are read."""
        best: tuple[int, str] | None = None
        current_key = conversation_key(current) if current else ""
        for conversation in order:
            key = conversation_key(conversation)
            if key == current_key:
                continue
            counts = self.counts(key)
            if counts.mentions:
                return conversation
            if counts.unread:
                rank = 1 if is_private(key) else 2
                if best is None or rank < best[0]:
                    best = (rank, conversation)
        return best[1] if best is not None else None
