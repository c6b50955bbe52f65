"""Notifications: which conversations notify, and the terminal escape for a desktop one.

Each conversation has a level: `all` (every message from someone else), `mentions` (the
default: mentions of the user's name or keywords, and private messages) or `none`. What
notifies rings the bell once per batch, and writes a desktop notification: OSC 777
(`notify;title;body`, urxvt, foot, kitty, WezTerm, Ghostty, VTE terminals) followed by OSC 9
(iTerm2, Windows Terminal, ConEmu); a terminal ignores the one it does not know. Inside
tmux it is wrapped for tmux to pass on (with `set -g allow-passthrough on`).

Titles and bodies come from the network: every control character is removed, and `;`
(the field separator of OSC 777) replaced, so nothing in them can end the escape early.
"""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum

from tuichat.app.i18n import N_, _, ngettext
from tuichat.client.unread import conversation_key

JOINERS = "\u200c\u200d"
"""Zero-width non-joiner and joiner: format characters Persian spelling needs, kept."""
MAX_FIELD = 160
"""Characters of a notification's title or body kept (terminals show one line or two)."""


class Level(Enum):
    """What in a conversation notifies."""

    ALL = "all"
    MENTIONS = "mentions"
    NONE = "none"


LEVELS = tuple(level.value for level in Level)
MEANINGS = {
    Level.ALL: N_("every message"),
    Level.MENTIONS: N_("mentions and private messages"),
    Level.NONE: N_("nothing"),
}
"""What notifies at each level, as the app says it (in English: shown through `_`)."""


@dataclass
class NotifyRules:
    """The user's notification settings, changed by `/notify` (plain data, no I/O)."""

    default: Level = Level.MENTIONS
    levels: dict[str, Level] = field(default_factory=dict)
    """Conversation key (`conversation_key`) → its own level."""
    bell: bool = True
    desktop: bool = True

    @classmethod
    def from_settings(
        cls,
        default: str = "mentions",
        levels: Mapping[str, str] | None = None,
        *,
        bell: bool = True,
        desktop: bool = True,
    ) -> NotifyRules:
        """Rules from level names (`all`, `mentions`, `none`) as a config file gives them."""
        own = {conversation_key(c): Level(level) for c, level in (levels or {}).items()}
        return cls(Level(default), own, bell, desktop)

    def level(self, conversation: str) -> Level:
        """The level of `conversation` (`#room` or `@name`)."""
        return self.levels.get(conversation_key(conversation), self.default)

    def set_level(self, conversation: str, level: Level) -> None:
        """Give `conversation` its own level."""
        self.levels[conversation_key(conversation)] = level

    @property
    def some_all(self) -> bool:
        """Whether any conversation notifies of every message (else only mentions and private
        messages can: a plain room message needs no look at the rules)."""
        return self.default is Level.ALL or Level.ALL in self.levels.values()

    def wants(self, conversation: str, *, mention: bool) -> bool:
        """Whether a message from someone else in `conversation` notifies; a private message
        counts as a mention."""
        level = self.level(conversation)
        if level is Level.NONE:
            return False
        return level is Level.ALL or mention or conversation.startswith("@")


def clean_field(text: str) -> str:
    """`text` on one line, without control characters or `;`, at most `MAX_FIELD` long."""
    kept = []
    for char in " ".join(text.split()):
        category = unicodedata.category(char)
        if category in ("Cc", "Zl", "Zp") or (category == "Cf" and char not in JOINERS):
            continue  # controls, bidi and other format marks (not the joiners Persian needs)
        kept.append("," if char == ";" else char)
    cleaned = "".join(kept)
    return cleaned if len(cleaned) <= MAX_FIELD else cleaned[: MAX_FIELD - 1] + "…"


def desktop_escape(title: str, body: str, *, environ: Mapping[str, str] | None = None) -> str:
    """The escapes that ask the terminal for a desktop notification (see the module)."""
    title, body = clean_field(title), clean_field(body)
    escape = f"\x1b]777;notify;{title};{body}\x1b\\\x1b]9;{title}: {body}\x1b\\"
    if "TMUX" in (os.environ if environ is None else environ):
        # tmux passes on what is inside a DCS "tmux;" string, with each ESC doubled
        return "\x1bPtmux;" + escape.replace("\x1b", "\x1b\x1b") + "\x1b\\"
    return escape


def summary(items: Iterable[tuple[str, str, str]]) -> tuple[str, str] | None:
    """Title and body for a batch of (conversation, sender, text) that notify: the message
    itself when there is one, else how many and where."""
    batch = list(items)
    if not batch:
        return None
    if len(batch) == 1:
        conversation, sender, text = batch[0]
        if conversation.startswith("@"):
            return sender, text
        return _("{sender} in {room}").format(sender=sender, room=conversation), text
    places = list(dict.fromkeys(conversation for conversation, _sender, _text in batch))
    shown = _(", ").join(places[:3]) + (" …" if len(places) > 3 else "")
    count = len(batch)
    return ngettext("{count} new message", "{count} new messages", count).format(count=count), shown
