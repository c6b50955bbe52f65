"""Who is away and who is typing where, as a client sees it (no I/O; told the time).

`Status` is told what arrives: a `welcome` and member lists (who is away among them),
`away` frames, `is_typing` frames, messages and leaves. It answers the app: who is away and
why, and who is typing in a conversation (`#room`, or `@name` for a private one). A typing
notice is shown for `TYPING_SHOWN_FOR` seconds unless it is renewed, and until that
person's message in the conversation arrives; someone who goes offline is neither away nor
typing any more. `TypingThrottle` says when to tell the others again that we are typing.

Names and conversations are compared as the server compares them for display (`fold`,
`conversation_key`), and given back as the server spelled them: raw text from the network,
which an app cleans before it shows it (or it keeps a `Status` of its own, fed with the
events it has cleaned). What is kept is bounded, whatever a server sends.

How an app uses it, with a `ChatClient` (which keeps `client.status` current):

- who is away: `client.status.away` (name → reason), `client.status.away_reason(name)`;
  an `Away` event in the stream says that it changed;
- "bob is typing…": `client.status.typing_in("#dev")` (or `"@bob"`), to look at again on
  each `IsTyping`, `Message`, `PrivateMessage` and `Left` event and at
  `client.status.next_change()` (on the client's clock), when a notice runs out;
- tell the others: `client.typing(conversation)` on every keystroke (it paces itself, and sends
  nothing while `client.send_typing` is off); `await client.set_away("lunch")`, and
  `await client.set_away(None)` to be back.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from tuichat.client.unread import conversation_key, fold

TYPING_SHOWN_FOR = 6.0
"""Seconds a typing notice is shown unless another renews it (or the typist's message ends
it)."""
TYPING_RENEW = 4.0
"""Seconds between two typing notices we send for one conversation: more than the server's
3 s between two it relays, less than `TYPING_SHOWN_FOR`, so that steady typing shows
steadily."""
MAX_TYPING = 64
"""People shown typing in one conversation at most (the most recent)."""
MAX_TYPING_CONVERSATIONS = 1024
"""Conversations with someone typing kept at most (those told of least recently go first)."""
MAX_AWAY = 10_000
"""People known to be away kept at most (a server sends no more than its users)."""
MAX_REASON = 512
"""Characters kept of an away reason (the server allows 200 bytes)."""

Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class Typist:
    """Someone typing in a conversation, shown until `until` (on the status's clock)."""

    name: str
    until: float


def away_pairs(names: Sequence[str], reasons: Sequence[str]) -> list[tuple[str, str]]:
    """The (name, reason) pairs of a member list's `away` and `away_reasons` (a reason that is
    missing is "")."""
    return list(itertools.zip_longest(names, reasons[: len(names)], fillvalue=""))


class Status:
    """Who is away (and why) and who is typing where, kept from what the client receives."""

    def __init__(self, clock: Clock = time.monotonic, shown_for: float = TYPING_SHOWN_FOR) -> None:
        self._clock = clock
        self._shown_for = shown_for
        self._away: dict[str, tuple[str, str]] = {}
        """fold(name) → (name, reason)."""
        self._typing: dict[str, dict[str, Typist]] = {}
        """conversation key → fold(name) → who types there, the least recently renewed first."""

    # --- what arrives --------------------------------------------------------

    def reset(self, away: Iterable[tuple[str, str]]) -> None:
        """A `welcome`: these (name, reason) are away and nobody else is; nobody is typing."""
        self._away = {}
        for name, reason in away:
            self._keep_away(name, reason)
        self._typing.clear()

    def listed(self, users: Iterable[str], away: Iterable[tuple[str, str]]) -> None:
        """A member list (`room_state`, `user_list`): of `users`, those in `away` are away, the
        others are not."""
        reasons = {fold(name): (name, reason) for name, reason in away}
        for name in users:
            found = reasons.get(fold(name))
            if found is None:
                self._away.pop(fold(name), None)
            else:
                self._keep_away(*found)

    def away_changed(self, name: str, away: bool, reason: str = "") -> bool:
        """An `away` frame: `name` is away with `reason`, or back; return whether it changed."""
        key = fold(name)
        before = self._away.get(key)
        if away:
            self._keep_away(name, reason)
        else:
            self._away.pop(key, None)
        return self._away.get(key) != before

    def offline(self, name: str) -> None:
        """`name` went offline (left the lobby): neither away nor typing any more."""
        key = fold(name)
        self._away.pop(key, None)
        for conversation in list(self._typing):
            self._drop(conversation, key)

    def typing(self, name: str, conversation: str) -> None:
        """An `is_typing` frame: `name` types in `conversation` (`#room` or `@name`)."""
        where = conversation_key(conversation)
        typists = self._typing.pop(where, {})
        self._typing[where] = typists  # the most recently told last
        key = fold(name)
        typists.pop(key, None)
        typists[key] = Typist(name, self._clock() + self._shown_for)
        while len(typists) > MAX_TYPING:
            del typists[next(iter(typists))]
        while len(self._typing) > MAX_TYPING_CONVERSATIONS:
            del self._typing[next(iter(self._typing))]

    def stopped(self, name: str, conversation: str) -> None:
        """`name` is not typing in `conversation` any more (their message came, or they left)."""
        self._drop(conversation_key(conversation), fold(name))

    # --- what the app reads ----------------------------------------------------

    @property
    def away(self) -> dict[str, str]:
        """Everyone known to be away: name → reason ("" for none given)."""
        return dict(self._away.values())

    def away_reason(self, name: str) -> str | None:
        """Why `name` is away ("" for no reason given), or None if they are not."""
        found = self._away.get(fold(name))
        return None if found is None else found[1]

    def typing_in(self, conversation: str) -> tuple[str, ...]:
        """Who is typing in `conversation` now, the least recently renewed first."""
        key = conversation_key(conversation)
        typists = self._typing.get(key)
        if not typists:
            return ()
        now = self._clock()
        for gone in [k for k, t in typists.items() if t.until <= now]:
            del typists[gone]
        if not typists:
            del self._typing[key]
        return tuple(t.name for t in typists.values())

    @property
    def anyone_typing(self) -> bool:
        """Whether any typing notice is kept (a message then may have to end one)."""
        return bool(self._typing)

    def typing_everywhere(self) -> dict[str, tuple[str, ...]]:
        """Who is typing now in every conversation where someone is (by conversation key)."""
        return {key: names for key in list(self._typing) if (names := self.typing_in(key))}

    def next_change(self) -> float | None:
        """When (on the clock) the next typing notice runs out by itself, if any is shown: the
        moment to look at `typing_in` again."""
        untils = [t.until for typists in self._typing.values() for t in typists.values()]
        return min(untils, default=None)

    # --- internals -----------------------------------------------------------

    def _keep_away(self, name: str, reason: str) -> None:
        key = fold(name)
        self._away.pop(key, None)
        self._away[key] = (name, reason[:MAX_REASON])
        while len(self._away) > MAX_AWAY:
            del self._away[next(iter(self._away))]

    def _drop(self, conversation: str, key: str) -> None:
        typists = self._typing.get(conversation)
        if typists is not None and typists.pop(key, None) is not None and not typists:
            del self._typing[conversation]


class TypingThrottle:
    """When to tell the others that we are typing: at most once every `every` seconds per
    conversation, and at once after our own message there (the others stopped showing it)."""

    def __init__(self, clock: Clock = time.monotonic, every: float = TYPING_RENEW) -> None:
        self._clock = clock
        self._every = every
        self._sent: dict[str, float] = {}
        """conversation key → when we last said so."""

    def allow(self, conversation: str) -> bool:
        """Whether to send a typing notice for `conversation` now (if so, it counts as sent)."""
        now = self._clock()
        key = conversation_key(conversation)
        last = self._sent.get(key)
        if last is not None and now - last < self._every:
            return False
        for old in [k for k, t in self._sent.items() if now - t >= self._every]:
            del self._sent[old]
        self._sent[key] = now
        return True

    def message_sent(self, conversation: str) -> None:
        """We sent a message to `conversation`: the next keystroke there says so again."""
        self._sent.pop(conversation_key(conversation), None)
