"""Chat commands for the command palette (ctrl+k).

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

from tuichat.app.notify import MEANINGS

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
    """Private messages to every online user, conversations, and the chat's own actions."""

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
        for key in app.conversations():
            view = app.conversation(key)
            if key != app.current_room and view is not None:
                name = view.name
                if view.private:
                    text, what = f"Switch to {name}", "Show this private conversation"
                else:
                    text, what = f"Switch to room {name}", "Show this room"
                yield (text, partial(app.switch_room, key), what)
        yield ("Next unread", app.action_next_unread, "Show the next conversation to read (alt+a)")
        current = app.conversation(app.current_room)
        if current is not None and current.private:
            yield ("Close conversation", app.action_leave_room, f"Close {current.name}")
        elif current is not None:
            yield ("Leave room", app.action_leave_room, f"Leave {current.name}")
        if current is not None:
            for level, what in MEANINGS.items():
                yield (
                    f"Notify: {level.value}",
                    partial(app.action_set_notify, level.value),
                    f"In {current.name}, notify of {what}",
                )
        yield (
            "Clear log",
            app.action_clear_log,
            "Clear the log of this conversation on this screen",
        )
        yield (
            "Sign out other devices",
            app.action_sign_out_others,
            "Sign out every other device signed in with your name",
        )
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
