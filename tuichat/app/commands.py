"""Slash commands typed in the input line, parsed without touching the network."""

from __future__ import annotations

from dataclasses import dataclass

HELP = (
    "commands: /msg NAME TEXT · /me ACTION · /join #ROOM · /part [#ROOM] · "
    "/users · /help · /exit (or /quit) · ctrl+p opens the command palette"
)


@dataclass(frozen=True, slots=True)
class SayText:
    """Plain text for the current room."""

    text: str


@dataclass(frozen=True, slots=True)
class PrivateText:
    """`/msg NAME TEXT`."""

    to: str
    text: str


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
    """`/part [#ROOM]`; an empty room means the current one."""

    room: str = ""


@dataclass(frozen=True, slots=True)
class ListUsers:
    """`/users`."""


@dataclass(frozen=True, slots=True)
class ShowHelp:
    """`/help`, or what a mistyped command gets (with `problem` saying why)."""

    problem: str = ""


@dataclass(frozen=True, slots=True)
class Exit:
    """`/exit` or `/quit`."""


Command = SayText | PrivateText | Action | JoinRoom | PartRoom | ListUsers | ShowHelp | Exit


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
    name, _, rest = line[1:].partition(" ")
    name = name.lower()
    rest = rest.strip()
    if name in ("msg", "query", "m"):
        to, _, text = rest.partition(" ")
        if not to or not text.strip():
            return ShowHelp("usage: /msg NAME TEXT")
        return PrivateText(to, text.strip())
    if name == "me":
        return Action(rest) if rest else ShowHelp("usage: /me ACTION")
    if name in ("join", "j"):
        if not rest or " " in rest:
            return ShowHelp("usage: /join #ROOM")
        return JoinRoom(rest if rest.startswith("#") else f"#{rest}")
    if name in ("part", "leave"):
        if rest and not rest.startswith("#"):
            rest = f"#{rest}"
        return PartRoom(rest)
    if name in ("users", "who", "names"):
        return ListUsers()
    if name in ("help", "?"):
        return ShowHelp()
    if name in ("exit", "quit", "q"):
        return Exit()
    return ShowHelp(f"unknown command /{name}")
