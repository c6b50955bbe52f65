"""Slash commands typed in the input line, parsed without touching the network.

The commands and their arguments (`/join`, `all|mentions|none`) are the same in every
language; what is said about them is translated.
"""

from __future__ import annotations

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
    | ShowHelp
    | Exit
)


def _word(text: str) -> tuple[str, str]:
    """The first word of `text` and what follows it (a message may start on the next line)."""
    parts = text.split(maxsplit=1)
    return (parts[0], parts[1]) if len(parts) == 2 else (parts[0] if parts else "", "")


def parse_input(line: str) -> Command | None:
    """Return what a line typed by the user asks for (None for a blank line).

    A line starting with `/` is a command; `//text` sends `/text` literally. An
    unknown or malformed command becomes `ShowHelp`, never text.
    """
    if not line.strip():
        return None
    if not line.startswith("/"):
        return SayText(line)
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
    if name in ("exit", "quit", "q"):
        return Exit()
    return ShowHelp(_("unknown command /{name}").format(name=name))
