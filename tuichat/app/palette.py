"""Chat commands for the command palette (ctrl+p).

Entries carry user and room names from the server, so they are given to the palette as plain
`Content` (a string there would be read as markup).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from typing import TYPE_CHECKING

from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.content import Content
from textual.fuzzy import Matcher

if TYPE_CHECKING:
    from tuichat.app.app import ChatApp

PaletteEntry = tuple[str, Callable[[], object], str]


def highlight(matcher: Matcher, text: str) -> Content:
    """Return `text` as plain content with the characters `matcher` matched highlighted."""
    content = Content(text)
    _, offsets = matcher.fuzzy_search.match(matcher.query, text)
    for offset in offsets:
        if not text[offset].isspace():
            content = content.stylize(matcher.match_style, offset, offset + 1)
    return content


def plain(text: str) -> str:
    """`text` as palette help: plain content, though the palette's type says `str`."""
    content: object = Content(text)  # the palette reads a `str` here as markup, not `Content`
    return content  # type: ignore[return-value]


class ChatCommands(Provider):
    """Private messages to every online user, rooms, and the chat's own actions."""

    def _entries(self) -> Iterator[PaletteEntry]:
        app: ChatApp = self.app  # type: ignore[assignment]
        for user in app.online_users():
            if user != app.my_name:
                yield (
                    f"Private message {user}",
                    partial(app.action_private_message, user),
                    f"Send a message only {user} will see",
                )
        yield ("Join room …", app.action_join_room, "Join or create a room")
        for room in app.joined_rooms():
            if room != app.current_room:
                yield (f"Switch to room {room}", partial(app.switch_room, room), "Show this room")
        yield ("Leave room", app.action_leave_room, f"Leave {app.current_room}")
        yield ("Clear log", app.action_clear_log, "Clear the log of this room on this screen")
        yield ("Exit", app.action_exit_chat, "Say goodbye and quit")

    async def discover(self) -> Hits:
        for text, command, help_text in self._entries():
            yield DiscoveryHit(Content(text), command, text=text, help=plain(help_text))

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for text, command, help_text in self._entries():
            score = matcher.match(text)
            if score > 0:
                yield Hit(
                    score, highlight(matcher, text), command, text=text, help=plain(help_text)
                )
