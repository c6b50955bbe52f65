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

from tuichat.app.i18n import N_, _
from tuichat.app.notify import MEANINGS
from tuichat.app.state import LOBBY

if TYPE_CHECKING:
    from tuichat.app.app import ChatApp

PaletteEntry = tuple[str, Callable[[], object], str]

IN_A_ROOM = (
    ("topic", N_("Topic …"), N_("Set the topic of {room} (- clears it)")),
    ("invite", N_("Invite …"), N_("Let someone join {room}, even while it is private")),
    ("uninvite", N_("Uninvite …"), N_("Withdraw someone's invitation to {room}")),
    ("kick", N_("Kick …"), N_("Remove someone from {room} (they may join again)")),
    ("ban", N_("Ban …"), N_("Keep someone out of {room}, for a while or until unbanned")),
    ("unban", N_("Unban …"), N_("Let someone banned from {room} join it again")),
    (
        "mute",
        N_("Mute …"),
        N_("Let someone read {room} but not post, for a while or for good"),
    ),
    ("unmute", N_("Unmute …"), N_("Let someone muted in {room} post again")),
    ("op", N_("Op …"), N_("Make someone an op of {room}: they may moderate it")),
    ("deop", N_("Deop …"), N_("Take op from someone in {room}")),
)
"""The palette's moderation commands that ask for what they act on (each as `/COMMAND`
takes it), for the room on screen: the command, the entry, what it does."""
EVERYWHERE = (
    ("ignore", N_("Ignore …"), N_("Hide someone's messages, on all your devices")),
    ("unignore", N_("Unignore …"), N_("Show someone's messages again")),
)
"""The same, wherever the user is."""

ON_MESSAGES = (
    ("reply", N_("Reply …"), N_("Answer the latest message of someone else in {room}")),
    ("react", N_("React …"), N_("Give a reaction to the latest message in {room}")),
    ("edit", N_("Edit your last message"), N_("Change the text of your latest message in {room}")),
    ("delete", N_("Delete your last message"), N_("Take your latest message in {room} away")),
)
"""The palette's commands on a message of the room on screen (each as `/COMMAND` takes it):
the command, the entry, what it does."""

TEXTUAL_COMMANDS = (
    N_("Theme"),
    N_("Change the current theme"),
    N_("Quit"),
    N_("Quit the application as soon as possible"),
    N_("Keys"),
    N_("Hide the keys and widget help panel"),
    N_("Show help for the focused widget and a summary of available keys"),
    N_("Minimize"),
    N_("Minimize the widget and restore to normal size"),
    N_("Maximize"),
    N_("Maximize the focused widget"),
    N_("Screenshot"),
    N_("Save an SVG 'screenshot' of the current screen"),
)
"""What Textual's own entries of the palette say (its system commands), for the catalog:
the app shows them through `_` (`ChatApp.get_system_commands`)."""


def highlight(matcher: Matcher, text: str) -> Content:
    """Return `text` as plain content with the characters `matcher` matched highlighted."""
    content = Content(text)
    _score, offsets = matcher.fuzzy_search.match(matcher.query, text)
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
                    _("Private message {user}").format(user=user),
                    partial(app.action_private_message, user),
                    _("Send a message only {user} will see").format(user=user),
                )
        yield (_("Join room …"), app.action_join_room, _("Join or create a room"))
        for key in app.conversations():
            view = app.conversation(key)
            if key != app.current_room and view is not None:
                name = view.name
                if view.private:
                    text = _("Switch to {name}").format(name=name)
                    what = _("Show this private conversation")
                else:
                    text, what = _("Switch to room {name}").format(name=name), _("Show this room")
                yield (text, partial(app.switch_room, key), what)
        yield (
            _("Next unread"),
            app.action_next_unread,
            _("Show the next conversation to read (alt+a)"),
        )
        current = app.conversation(app.current_room)
        if current is not None and current.private:
            yield (
                _("Close conversation"),
                app.action_leave_room,
                _("Close {name}").format(name=current.name),
            )
        elif current is not None:
            yield (
                _("Leave room"),
                app.action_leave_room,
                _("Leave {name}").format(name=current.name),
            )
        yield (
            _("Select a message"),
            app.action_select_message,
            _("Reply to it, react to it, edit or delete it, with one key (alt+up)"),
        )
        yield (
            _("Search messages …"),
            app.action_search,
            _("Find messages by their words (ctrl+f)"),
        )
        if current is not None and not current.private:
            for command, text, what in ON_MESSAGES:
                said = _(what).format(room=current.name)
                yield (_(text), partial(app.action_on_message, command), said)
            yield from self._room_entries(current.name)
        for command, text, what in EVERYWHERE:
            yield (_(text), partial(app.action_moderation, command), _(what))
        yield (
            _("Ignored people"),
            partial(app.run_moderation, "/ignore"),
            _("Whom you ignore"),
        )
        if current is not None:
            for level, what in MEANINGS.items():
                yield (
                    # TRANSLATORS: {level} is all, mentions or none, as /notify takes it
                    _("Notify: {level}").format(level=level.value),
                    partial(app.action_set_notify, level.value),
                    _("In {name}, notify of {what}").format(name=current.name, what=_(what)),
                )
        yield (
            _("Clear log"),
            app.action_clear_log,
            _("Clear the log of this conversation on this screen"),
        )
        yield (
            _("Sign out other devices"),
            app.action_sign_out_others,
            _("Sign out every other device signed in with your name"),
        )
        yield (
            _("Right-to-left text: check"),
            app.check_bidi,
            _("Ask which line reads correctly here, and draw Persian that way"),
        )
        yield (_("Exit"), app.action_exit_chat, _("Say goodbye and quit"))

    def _room_entries(self, room: str) -> Iterator[PaletteEntry]:
        """The moderation commands for `room` (the room on screen)."""
        app: ChatApp = self.app  # type: ignore[assignment]
        for command, text, what in IN_A_ROOM:
            yield (_(text), partial(app.action_moderation, command), _(what).format(room=room))
        if room.casefold() != LOBBY:  # (the lobby is everyone's: never private)
            yield (
                _("Private room: on"),
                partial(app.run_moderation, "/private on"),
                _("Only those invited may join {room}").format(room=room),
            )
            yield (
                _("Private room: off"),
                partial(app.run_moderation, "/private off"),
                _("Anyone may join {room}").format(room=room),
            )
        yield (
            _("Moderation log"),
            partial(app.run_moderation, "/modlog"),
            _("What was done in {room}, and by whom").format(room=room),
        )

    async def discover(self) -> Hits:
        draw = self._draw
        for text, command, help_text in self._entries():
            shown = Content(draw(text))
            yield DiscoveryHit(shown, command, text=text, help=plain(draw(help_text)))

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        draw = self._draw
        for text, command, help_text in self._entries():
            score = matcher.match(text)
            if score > 0:  # (right-to-left text is drawn reordered: its matches not marked)
                drawn = draw(text)
                shown = highlight(matcher, text) if drawn == text else Content(drawn)
                yield Hit(score, shown, command, text=text, help=plain(draw(help_text)))

    def _draw(self, text: str) -> str:
        app: ChatApp = self.app  # type: ignore[assignment]
        return app.bidi.display(text)
