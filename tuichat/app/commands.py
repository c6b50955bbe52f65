"""Slash commands typed in the input line, parsed without touching the network.

The commands and their arguments (`/join`, `all|mentions|none`) are the same in every
language; what is said about them is translated.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tuichat.app.i18n import N_, _

HELP = N_(
    "commands: /msg NAME TEXT · /query NAME · /me ACTION · /join #ROOM · /part [#ROOM] · "
    "/users · /away [REASON] · /back · /notify [all|mentions|none] · "
    "/bidi [app|terminal|off|check] · "
    "/signout (your other devices) · /help · "
    "/exit (or /quit) · "
    "keys: alt+a next unread · alt+1…9, ctrl+n / ctrl+p switch · ctrl+k command palette"
)
"""What `/help` says in the log, in English (marked for translation: shown through `_`)."""
MODERATION_HELP = N_(
    "in a room: /topic [TEXT|-] · /private [on|off] · /invite NAME · /uninvite NAME · "
    "/kick NAME [REASON] · /ban NAME [REASON] [DURATION] · /unban NAME · "
    "/mute NAME [REASON] [DURATION] · /unmute NAME · /op NAME · /deop NAME · "
    "/modlog [#ROOM|all] · everywhere: /ignore [NAME] · /unignore NAME · "
    "a duration is seconds, minutes, hours, days or weeks: 90s, 10m, 2h, 7d, 1w, 1h30m"
)
"""What `/help` says of moderation, after `HELP`."""
VERBS_HELP = N_(
    "messages of a room: /reply [TEXT] (to the latest of someone else) · /react EMOJI (to the "
    "latest; again takes it back) · /edit [TEXT] · s/old/new/ (your latest; s/old/new/g: "
    "every one) · /delete · /search WORDS [from:NAME] [in:#ROOM] · "
    "keys: alt+up select a message (r reply, e edit, d delete, + react) · ctrl+f search"
)
"""What `/help` says of replies, reactions, edits, deletes and search, after the others."""

CLEAR_TOPIC = "-"
"""What `/topic` takes to clear the topic."""
MODERATE = ("invite", "uninvite", "kick", "ban", "unban", "mute", "unmute", "op", "deop")
"""The commands that act on someone in the current room (each a `moderate` request)."""
WITH_REASON = frozenset({"kick", "ban", "mute"})
"""Those that take a reason after the name."""
WITH_DURATION = frozenset({"ban", "mute"})
"""Those that take a duration at the end."""
UNITS = {"s": 1, "m": 60, "h": 3_600, "d": 86_400, "w": 604_800}
"""The units of a duration (`90s`, `10m`, `2h`, `7d`, `1w`, or several: `1h30m`), in seconds."""
MAX_DURATION = 3_650 * 86_400
"""The longest duration taken (ten years); longer is as good as until undone."""
_DURATION = re.compile(r"(?:\d{1,7}[smhdw])+", re.IGNORECASE)
_DURATION_PART = re.compile(r"(\d{1,7})([smhdw])", re.IGNORECASE)
_NUMBER_FIRST = re.compile(r"\d+\w*")
"""A word that meant to be a duration (`90x`, `30`, `0m`), whether it is one or not."""
_SUBSTITUTE = re.compile(r"s/((?:[^/\\]|\\.)+)/((?:[^/\\]|\\.)*)/(g?)", re.DOTALL)
"""`s/old/new/` or `s/old/new/g` (a slash in either as `\\/`, a backslash as `\\`)."""
_UNESCAPE = re.compile(r"\\([/\\])")


@dataclass(frozen=True, slots=True)
class SayText:
    """Plain text for the current room."""

    text: str


@dataclass(frozen=True, slots=True)
class PrivateText:
    """`/msg NAME TEXT`: open the private conversation with NAME and send TEXT there."""

    to: str
    text: str


@dataclass(frozen=True, slots=True)
class OpenPrivate:
    """`/query NAME`: open the private conversation with NAME."""

    name: str


@dataclass(frozen=True, slots=True)
class Action:
    """`/me ACTION`."""

    text: str


@dataclass(frozen=True, slots=True)
class JoinRoom:
    """`/join #ROOM`."""

    room: str


@dataclass(frozen=True, slots=True)
class PartRoom:
    """`/part [#ROOM]` (or `@NAME`, which closes that private conversation); an empty room
    means the current conversation."""

    room: str = ""


@dataclass(frozen=True, slots=True)
class ListUsers:
    """`/users`."""


@dataclass(frozen=True, slots=True)
class SignOutOthers:
    """`/signout`: sign out the user's other devices."""


@dataclass(frozen=True, slots=True)
class SetAway:
    """`/away [REASON]`, or `/back` (`reason` None)."""

    reason: str | None = ""


@dataclass(frozen=True, slots=True)
class SetNotify:
    """`/notify [all|mentions|none]`: what in the current conversation notifies (no level:
    show it)."""

    level: str = ""


@dataclass(frozen=True, slots=True)
class SetBidi:
    """`/bidi [app|terminal|off|check]`: who reorders right-to-left text (no mode: show it;
    `check`: ask which line reads correctly)."""

    mode: str = ""


@dataclass(frozen=True, slots=True)
class SetTopic:
    """`/topic [TEXT]`: set the current room's topic ("" clears it: `/topic -`); None (no
    text): show it."""

    topic: str | None = None


@dataclass(frozen=True, slots=True)
class SetPrivate:
    """`/private [on|off]`: make the current room invite-only, or open again; None (no
    word): say which it is."""

    private: bool | None = None


@dataclass(frozen=True, slots=True)
class Moderate:
    """`/kick NAME [REASON]`, `/ban NAME [REASON] [DURATION]`, `/op NAME`... (see `MODERATE`):
    act on NAME in the current room. `duration` in seconds, 0: until undone."""

    action: str
    name: str
    reason: str = ""
    duration: int = 0


@dataclass(frozen=True, slots=True)
class Ignore:
    """`/ignore NAME` or `/unignore NAME` (`ignore` false); `/ignore` alone (no name): say who
    is ignored."""

    name: str = ""
    ignore: bool = True


@dataclass(frozen=True, slots=True)
class ShowModLog:
    """`/modlog [#ROOM|all]`: the moderation log of ROOM ("": the current room's), or of the
    whole server (`everything`, for an admin)."""

    room: str = ""
    everything: bool = False


@dataclass(frozen=True, slots=True)
class Reply:
    """`/reply [TEXT]`: answer the latest message of someone else in the current room ("":
    start the answer in the composer)."""

    text: str = ""


@dataclass(frozen=True, slots=True)
class React:
    """`/react TEXT`: give the reaction TEXT to the latest message of the current room (or
    take it back)."""

    text: str


@dataclass(frozen=True, slots=True)
class Edit:
    """`/edit [TEXT]`: replace the text of the user's latest message in the current room
    ("": edit it in the composer)."""

    text: str = ""


@dataclass(frozen=True, slots=True)
class Substitute:
    """`s/old/new/` (`everywhere`: `s/old/new/g`): edit the user's latest message in the
    current room, `old` replaced by `new`."""

    old: str
    new: str
    everywhere: bool = False


@dataclass(frozen=True, slots=True)
class Delete:
    """`/delete`: delete the user's latest message in the current room."""


@dataclass(frozen=True, slots=True)
class SearchFor:
    """`/search WORDS [from:NAME] [in:#ROOM]`: find messages holding every word (each the
    start of a word), from NAME, in ROOM (or a private conversation, `@NAME`); no words:
    open the search."""

    words: str = ""
    sender: str = ""
    room: str = ""


@dataclass(frozen=True, slots=True)
class ShowHelp:
    """`/help`, or what a mistyped command gets (with `problem` saying why)."""

    problem: str = ""


@dataclass(frozen=True, slots=True)
class Exit:
    """`/exit` or `/quit`."""


Command = (
    SayText
    | PrivateText
    | OpenPrivate
    | Action
    | JoinRoom
    | PartRoom
    | ListUsers
    | SignOutOthers
    | SetNotify
    | SetAway
    | SetBidi
    | SetTopic
    | SetPrivate
    | Moderate
    | Ignore
    | ShowModLog
    | Reply
    | React
    | Edit
    | Substitute
    | Delete
    | SearchFor
    | ShowHelp
    | Exit
)


def _word(text: str) -> tuple[str, str]:
    """The first word of `text` and what follows it (a message may start on the next line)."""
    parts = text.split(maxsplit=1)
    return (parts[0], parts[1]) if len(parts) == 2 else (parts[0] if parts else "", "")


def parse_duration(word: str) -> int | None:
    """The seconds a duration such as `10m`, `2h`, `7d` or `1w` stands for (None: `word` is
    not one, or is nothing or more than `MAX_DURATION`)."""
    if _DURATION.fullmatch(word) is None:
        return None
    seconds = sum(int(n) * UNITS[unit.lower()] for n, unit in _DURATION_PART.findall(word))
    return seconds if 0 < seconds <= MAX_DURATION else None


def _moderation(action: str, rest: str) -> Command:
    """`/ACTION NAME [REASON] [DURATION]` (what follows the name as `MODERATE` allows)."""
    name, more = _word(rest)
    name, more = name.removeprefix("@"), " ".join(more.split())
    duration = 0
    if action in WITH_DURATION and more:
        words = more.rsplit(" ", 1)
        seconds = parse_duration(words[-1])
        if seconds is not None:
            duration, more = seconds, words[0] if len(words) == 2 else ""
        elif _NUMBER_FIRST.fullmatch(words[-1]):  # meant as one: never a ban for ever by a typo
            said = _("{word} is not a duration: say 90s, 10m, 2h, 7d, 1w or 1h30m (at most ten "
                     "years), or none for until undone")  # fmt: skip
            return ShowHelp(said.format(word=words[-1]))
    if not name or name.startswith("#") or (more and action not in WITH_REASON):
        if action in WITH_DURATION:
            usage = _("usage: /{command} NAME [REASON] [DURATION: 10m, 2h, 7d, 1w]")
        elif action in WITH_REASON:
            usage = _("usage: /{command} NAME [REASON]")
        else:
            usage = _("usage: /{command} NAME")
        return ShowHelp(usage.format(command=action))
    return Moderate(action, name, more, duration)


def parse_search(text: str) -> SearchFor:
    """What a search says: its words, and `from:NAME` and `in:#ROOM` (or `in:@NAME`) among
    them."""
    words: list[str] = []
    sender = room = ""
    for word in text.split():
        lowered = word.lower()
        if lowered.startswith("from:") and len(word) > 5:
            sender = word[5:].removeprefix("@")
        elif lowered.startswith("in:") and len(word) > 3:
            room = word[3:] if word[3] in "#@" else f"#{word[3:]}"
        else:
            words.append(word)
    return SearchFor(" ".join(words), sender, room)


def parse_substitution(line: str) -> Substitute | None:
    """`s/old/new/` or `s/old/new/g` as a `Substitute` (None: `line` is not one)."""
    match = _SUBSTITUTE.fullmatch(line)
    if match is None:
        return None
    old, new, flags = match.groups()
    return Substitute(_UNESCAPE.sub(r"\1", old), _UNESCAPE.sub(r"\1", new), flags == "g")


def parse_input(line: str) -> Command | None:
    """Return what a line typed by the user asks for (None for a blank line).

    A line starting with `/` is a command; `//text` sends `/text` literally. An
    unknown or malformed command becomes `ShowHelp`, never text.
    """
    if not line.strip():
        return None
    if not line.startswith("/"):
        substitution = parse_substitution(line) if line.startswith("s/") else None
        return substitution or SayText(line)
    if line.startswith("//"):
        return SayText(line[1:])
    name, rest = _word(line[1:])
    name = name.lower()
    rest = rest.strip()
    if name in ("msg", "m", "query"):
        to, text = _word(rest)
        to, text = to.removeprefix("@"), text.strip()
        if not to or to.startswith("#") or (name != "query" and not text):
            return ShowHelp(
                _("usage: /query NAME [TEXT]") if name == "query" else _("usage: /msg NAME TEXT")
            )
        return PrivateText(to, text) if text else OpenPrivate(to)
    if name == "me":
        return Action(rest) if rest else ShowHelp(_("usage: /me ACTION"))
    if name in ("join", "j"):
        if not rest or " " in rest:
            return ShowHelp(_("usage: /join #ROOM"))
        return JoinRoom(rest if rest.startswith("#") else f"#{rest}")
    if name in ("part", "leave"):
        if rest and not rest.startswith(("#", "@")):
            rest = f"#{rest}"
        return PartRoom(rest)
    if name in ("users", "who", "names"):
        return ListUsers()
    if name in ("help", "?"):
        return ShowHelp()
    if name == "signout":
        return SignOutOthers()
    if name == "away":
        return SetAway(" ".join(rest.split()))
    if name == "back":
        return SetAway(None)
    if name == "notify":
        level = rest.lower()
        if level and level not in ("all", "mentions", "none"):
            return ShowHelp(_("usage: /notify [all|mentions|none]"))
        return SetNotify(level)
    if name == "bidi":
        mode = rest.lower()
        if mode and mode not in ("app", "terminal", "off", "check"):
            return ShowHelp(_("usage: /bidi [app|terminal|off|check]"))
        return SetBidi(mode)
    if name == "topic":
        if not rest:
            return SetTopic()
        return SetTopic("" if rest == CLEAR_TOPIC else " ".join(rest.split()))
    if name == "private":
        choice = rest.lower()
        if choice and choice not in ("on", "off"):
            return ShowHelp(_("usage: /private [on|off]"))
        return SetPrivate(None if not choice else choice == "on")
    if name in MODERATE:
        return _moderation(name, rest)
    if name in ("ignore", "unignore"):
        who, more = _word(rest)
        who = who.removeprefix("@")
        if more or who.startswith("#") or (name == "unignore" and not who):
            usage = _("usage: /ignore [NAME]") if name == "ignore" else _("usage: /unignore NAME")
            return ShowHelp(usage)
        return Ignore(who, name == "ignore")
    if name == "modlog":
        if rest.lower() == "all":
            return ShowModLog(everything=True)
        if " " in rest:
            return ShowHelp(_("usage: /modlog [#ROOM|all]"))
        return ShowModLog(rest if not rest or rest.startswith("#") else f"#{rest}")
    if name == "reply":
        return Reply(rest)
    if name == "react":
        return React(" ".join(rest.split())) if rest else ShowHelp(_("usage: /react EMOJI"))
    if name == "edit":
        return Edit(rest)
    if name == "delete":
        return ShowHelp(_("usage: /delete (your latest message)")) if rest else Delete()
    if name == "search":
        return parse_search(rest)
    if name in ("exit", "quit", "q"):
        return Exit()
    return ShowHelp(_("unknown command /{name}").format(name=name))
