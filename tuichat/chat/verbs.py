"""The verbs on a message (react, edit, delete) and replies: their rules and their effect.

Plain functions, no I/O: the server checks a verb with them before it is numbered, and
every holder of messages (the memory store, the client's log) applies an `Update` with
`applied`, so that a message reads the same wherever it is kept.
"""

from __future__ import annotations

import dataclasses
import unicodedata
from collections.abc import Iterable

from tuichat.chat.errors import ChatError
from tuichat.protocol import MAX_REACTION_NAMES, ErrorCode, Message, Quote, Reaction, Update

MAX_REACTION_CHARS = 16
"""Characters a reaction may have (an emoji with its modifiers, or a short word)."""
MAX_REACTION_BYTES = 64
"""UTF-8 bytes a reaction may have."""
MAX_REACTIONS = 20
"""Different reactions one message may carry."""
JOINERS = frozenset("\u200c\u200d")
"""The invisible characters a reaction may hold: the joiners of emoji sequences and words."""
PREVIEW_CHARS = 80
"""Characters of a reply's preview of the message it answers."""


def check_reaction(text: str) -> str:
    """Return the reaction as it is stored (NFC, trimmed); raise `invalid_reaction`."""
    reaction = unicodedata.normalize("NFC", text.strip())
    if not reaction:
        raise ChatError(ErrorCode.INVALID_REACTION, "a reaction cannot be empty")
    if len(reaction) > MAX_REACTION_CHARS or len(reaction.encode()) > MAX_REACTION_BYTES:
        raise ChatError(
            ErrorCode.INVALID_REACTION,
            f"a reaction is at most {MAX_REACTION_CHARS} characters (an emoji or a short word)",
        )
    if any(unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in reaction):
        raise ChatError(ErrorCode.INVALID_REACTION, "a reaction is one line of text")
    if any(unicodedata.category(c) == "Cf" and c not in JOINERS for c in reaction) or not any(
        unicodedata.category(c)[0] in "LNPS" for c in reaction
    ):  # (nothing to see, or marks that turn the text around it)
        raise ChatError(ErrorCode.INVALID_REACTION, "a reaction must be something one can see")
    return reaction


def preview(text: str) -> str:
    """A one-line preview of `text`: its first line, cut to `PREVIEW_CHARS` characters."""
    line = text.split("\n", 1)[0].strip()
    if len(line) > PREVIEW_CHARS or "\n" in text:
        return line[: PREVIEW_CHARS - 1].rstrip() + "…"
    return line


def quote_of(original: Message) -> Quote:
    """What a reply shows of `original`."""
    if original.deleted:
        return Quote(sender=original.sender, text="", deleted=True)
    return Quote(sender=original.sender, text=preview(original.text))


def refuse_edit(original: Message | None, seq: int, by_author: bool) -> None:
    """Raise why message `seq` may not be edited (`original` None: there is none)."""
    _check_target(original, seq)
    if not by_author:
        raise ChatError(ErrorCode.NOT_AUTHOR, "only its author can edit a message")


def refuse_delete(original: Message | None, seq: int, allowed: bool) -> None:
    """Raise why message `seq` may not be deleted (`allowed`: its author, an op, an admin)."""
    _check_target(original, seq)
    if not allowed:
        raise ChatError(
            ErrorCode.NOT_AUTHOR,
            "only its author, the room's owner and ops and the server's admins can delete a "
            "message",
        )


def refuse_reaction(original: Message | None, seq: int, reaction: str, given: bool) -> None:
    """Raise why `reaction` may not go under message `seq` (`given`: ours, to take back)."""
    _check_target(original, seq)
    assert original is not None
    texts = {r.text for r in original.reactions or ()}
    if not given and reaction not in texts and len(texts) >= MAX_REACTIONS:
        raise ChatError(
            ErrorCode.LIMIT_REACHED, f"a message can carry {MAX_REACTIONS} different reactions"
        )


def _check_target(original: Message | None, seq: int) -> None:
    if original is None:
        raise ChatError(ErrorCode.NO_SUCH_MESSAGE, f"there is no message {seq} here")
    if original.deleted:
        raise ChatError(ErrorCode.NO_SUCH_MESSAGE, f"message {seq} was deleted")


def applied(message: Message, update: Update) -> Message:
    """`message` as it is after `update` (one on it; an update of a deleted message changes
    nothing). Applying an update twice, or replaying updates in order over a message that
    already shows them, gives the same message."""
    if message.deleted or update.target != message.seq:
        return message
    if update.verb == "delete":
        return dataclasses.replace(
            message, text="", deleted=True, edited=None, reactions=None, action=False
        )
    if update.verb == "edit":
        return dataclasses.replace(message, text=update.text, edited=True)
    if update.verb == "react":
        reactions = reacted(message.reactions or (), update.text, update.sender, bool(update.on))
        return dataclasses.replace(message, reactions=reactions)
    return message


def reacted(
    reactions: tuple[Reaction, ...], text: str, name: str, on: bool
) -> tuple[Reaction, ...] | None:
    """`reactions` with `name`'s reaction `text` given (`on`) or taken back (None: none left).

    A reaction's names are the first `MAX_REACTION_NAMES`; past them only its count is
    known, so taking back one not among them lowers the count alone.
    """
    result: list[Reaction] = []
    found = False
    for reaction in reactions:
        if reaction.text != text:
            result.append(reaction)
            continue
        found = True
        named = name in reaction.names
        if on and not named:
            names = reaction.names
            if len(names) < MAX_REACTION_NAMES:
                names = (*names, name)
            result.append(Reaction(text, reaction.count + 1, names))
        elif not on and (named or reaction.count > len(reaction.names)):
            if reaction.count > 1:
                names = tuple(n for n in reaction.names if n != name)
                result.append(Reaction(text, reaction.count - 1, names))
        else:
            result.append(reaction)
    if on and not found:
        result.append(Reaction(text, 1, (name,)))
    return tuple(result) or None


def gathered(given: Iterable[tuple[str, str]]) -> tuple[Reaction, ...] | None:
    """The reactions of a message from who gave what, `(text, name)` in the order given."""
    names: dict[str, list[str]] = {}
    for text, name in given:
        names.setdefault(text, []).append(name)
    if not names:
        return None
    return tuple(
        Reaction(text, len(who), tuple(who[:MAX_REACTION_NAMES])) for text, who in names.items()
    )
