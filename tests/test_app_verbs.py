"""Replies, reactions, edits, deletes and search in the app: the commands (`/reply`, `/react`,
`/edit`, `s/old/new/`, `/delete`, `/search`) parsed and sent; what a message shows (a reply's
quote, its reactions, "(edited)", "message deleted") however it arrived (live, in a history
page, replayed after a lost connection); the selection in the log and its keys; the search
panel; verbs never unread.

The state is tested without a screen (`ChatState`), the app with Pilot against a real server in
the test's loop, and what it looks like with SVG snapshots at 80x24 (the server on a thread of
its own, its clock frozen)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest
from textual import events
from textual.command import CommandPalette
from textual.pilot import Pilot
from textual.widgets import OptionList

from tests.app_support import (
    FIXED_MS,
    connected,
    log_texts,
    make_app,
    rendered,
    send_line,
    until,
)
from tests.helpers import expect
from tests.proxy import Proxy
from tests.test_app_snapshots import ServerThread
from tuichat.app import commands as cmd
from tuichat.app.app import ChatApp
from tuichat.app.bidi import Bidi
from tuichat.app.config import Config
from tuichat.app.i18n import _, plain, set_language
from tuichat.app.model import Kind, LogEntry
from tuichat.app.moderation import refusal, when
from tuichat.app.screens.confirm import ConfirmDialog
from tuichat.app.screens.prompt import PromptDialog
from tuichat.app.screens.search import FOUND_STYLE, SearchScreen, excerpt, hit_prompt
from tuichat.app.state import ChatState
from tuichat.app.untrusted import clean
from tuichat.app.verbs import (
    drawn,
    latest,
    may_delete,
    mine_first,
    reactions_line,
    selection_hint,
    substituted,
)
from tuichat.app.widgets.bidi_input import BidiInput
from tuichat.app.widgets.bidi_text import BidiText
from tuichat.app.widgets.chat_input import ChatInput
from tuichat.app.widgets.chat_log import ChatLog
from tuichat.app.wrap import cells
from tuichat.chat.verbs import applied, quote_of
from tuichat.client import ChatClient, SigningKey
from tuichat.client.unread import Counts, Unread
from tuichat.protocol import (
    HistoryPage,
    Joined,
    Message,
    Quote,
    Reaction,
    RoomState,
    SearchHit,
    SearchResults,
    Update,
    Welcome,
)
from tuichat.server import ChatServer

NOW = FIXED_MS  # 2026-01-01 12:10 UTC
EPOCH = 1
SIZE = (80, 24)
MAX = 2**63 - 1


@pytest.fixture(autouse=True)
def english_after() -> Iterator[None]:
    """Each test leaves the process in English."""
    yield
    set_language("en")


# --- the commands, parsed -------------------------------------------------------------


@pytest.mark.parametrize(
    "line, expected",
    [
        ("/reply", cmd.Reply()),
        ("/reply  sure, after lunch ", cmd.Reply("sure, after lunch")),
        ("/react 👍", cmd.React("👍")),
        ("/react   thanks  a lot ", cmd.React("thanks a lot")),
        ("/react", cmd.ShowHelp("usage: /react EMOJI")),
        ("/edit", cmd.Edit()),
        ("/edit the fixed text", cmd.Edit("the fixed text")),
        ("/delete", cmd.Delete()),
        ("/delete bob", cmd.ShowHelp("usage: /delete (your latest message)")),
        ("s/teh/the/", cmd.Substitute("teh", "the")),
        ("s/teh/the/g", cmd.Substitute("teh", "the", everywhere=True)),
        ("s/a\\/b/c\\\\d/", cmd.Substitute("a/b", "c\\d")),  # a slash, a backslash
        ("s/typo//", cmd.Substitute("typo", "")),
        ("s/teh/the", cmd.SayText("s/teh/the")),  # (no closing slash: said as it is)
        ("s//x/", cmd.SayText("s//x/")),
        ("well s/a/b/", cmd.SayText("well s/a/b/")),
        ("/search", cmd.SearchFor()),
        ("/search deploy key", cmd.SearchFor("deploy key")),
        ("/search deploy from:@bob in:ops", cmd.SearchFor("deploy", "bob", "#ops")),
        ("/search in:@carol lunch", cmd.SearchFor("lunch", "", "@carol")),
    ],
)
def test_the_commands(line: str, expected: cmd.Command) -> None:
    assert cmd.parse_input(line) == expected


def test_substitution_and_the_message_it_acts_on() -> None:
    assert substituted("teh cat and teh dog", "teh", "the", False) == "the cat and teh dog"
    assert substituted("teh cat and teh dog", "teh", "the", True) == "the cat and the dog"
    assert substituted("the cat", "dog", "cow", False) is None
    entries = [
        LogEntry(Kind.MESSAGE, NOW, "bob", "bob's", seq=1),
        LogEntry(Kind.OWN, NOW, "ali", "mine", seq=2),
        LogEntry(Kind.OWN, NOW, "ali", "", seq=3, deleted=True),  # (gone: not a target)
        LogEntry(Kind.MESSAGE, NOW, "carol", "hidden", seq=4, hidden=True),  # (ignored)
        LogEntry(Kind.SYSTEM, NOW, "", "carol joined #dev"),
    ]
    mine, theirs, anyone = (latest(entries, "ALI", mine=m) for m in (True, False, None))
    assert (mine and mine.seq, theirs and theirs.seq, anyone and anyone.seq) == (2, 1, 2)
    assert latest(entries[2:], "ali") is None


# --- the state: what each event does --------------------------------------------------


def chat_state(*, seq: int = 0, read: int = 0) -> ChatState:
    """Ali's state, in #dev (at `seq`, read up to `read`) with bob and carol."""
    state = ChatState("ali", lambda: NOW, tz=UTC)
    welcome = Welcome(
        version=2, server="s", name="ali", rooms=("#lobby", "#dev"), users=("ali", "bob", "carol")
    )
    state.connected(welcome)
    state.apply(RoomState("#dev", ("ali", "bob", "carol"), seq=seq, epoch=EPOCH, read=read))
    state.current = "#dev"
    state.take_changes()
    return state


def shown(state: ChatState, key: str = "#dev") -> list[tuple[Any, ...]]:
    """What each message of a room shows: seq, sender, text, edited, deleted, reactions,
    quote."""
    view = state.conversation(key)
    assert view is not None
    return [
        (e.seq, e.sender, e.text, e.edited, e.deleted, e.reactions, e.quote)
        for e in view.entries
        if e.seq
    ]


def page_in(state: ChatState, *messages: Message, complete: bool = True) -> None:
    """A page of #dev's history, put in."""
    view = state.rooms["#dev"]
    older, done, start = state.history_entries(view, HistoryPage("#dev", EPOCH, messages, complete))
    state.prepend_history(view, older, done, start)


def test_an_update_changes_its_message_and_the_quotes_of_the_replies_to_it() -> None:
    state = chat_state()
    state.apply(Message("#dev", 1, "bob", "the deploy went out", NOW))
    state.apply(Message("#dev", 2, "carol", "nice", NOW, reply=1))
    view = state.rooms["#dev"]
    original, reply = view.entries
    assert reply.quote == Quote("bob", "the deploy went out")  # made from the message held
    state.take_changes()
    for seq, (sender, text, on) in enumerate(
        [("ali", "👍", True), ("carol", "👍", True), ("carol", "🎉", True), ("carol", "🎉", False)],
        3,
    ):
        state.apply(Update("#dev", seq, sender, NOW, "react", 1, text, on))
    assert original.reactions == (Reaction("👍", 2, ("ali", "carol")),)
    state.apply(Update("#dev", 7, "bob", NOW, "edit", 1, "the deploy went out at noon"))
    assert (original.text, original.edited) == ("the deploy went out at noon", True)
    assert reply.quote == Quote("bob", "the deploy went out at noon")
    changes = state.take_changes()
    assert changes.relayout == {"#dev": 0} and not changes.notify  # laid out again from it
    state.apply(Update("#dev", 8, "bob", NOW, "delete", 1))
    assert (original.deleted, original.text, original.reactions) == (True, "", ())
    assert reply.quote == Quote("bob", "", True)
    state.apply(Update("#dev", 9, "bob", NOW, "edit", 1, "too late"))  # (a deleted one stays)
    assert original.text == ""
    assert state.unread.counts("#dev") == Counts(2, 0)  # two messages, seven verbs


def test_a_reply_to_ones_message_is_a_mention() -> None:
    state = chat_state()
    state.apply(Message("#dev", 1, "ali", "who reviews my branch?", NOW))
    state.apply(Message("#dev", 2, "bob", "me, after lunch", NOW, reply=1))
    state.apply(Message("#dev", 3, "carol", "and I, a bit later", NOW, reply=2))
    answer, other = state.rooms["#dev"].entries[1:]
    assert answer.mention and not other.mention
    assert state.unread.counts("#dev") == Counts(2, 1)
    assert state.take_changes().notify == [("#dev", "bob", "me, after lunch")]


def test_a_reply_to_what_the_log_does_not_hold_is_quoted_once_its_page_is_in() -> None:
    state = chat_state(seq=2)
    state.apply(Update("#dev", 3, "bob", NOW, "edit", 2, "ship it today"))  # (on an older one)
    state.apply(Message("#dev", 4, "carol", "agreed", NOW, reply=2))
    reply = state.rooms["#dev"].entries[-1]
    assert reply.quote is None  # (the log says "an earlier message" meanwhile)
    page_in(state, Message("#dev", 1, "bob", "hi", NOW), Message("#dev", 2, "bob", "ship it", NOW))
    assert reply.quote == Quote("bob", "ship it today")  # the page read before the edit: applied
    assert shown(state)[1][2:4] == ("ship it today", True)


def test_live_a_history_page_and_a_replay_all_show_the_same() -> None:
    events: list[Message | Update] = [
        Message("#dev", 1, "bob", "first", NOW),
        Message("#dev", 2, "carol", "an answer", NOW, reply=1),
        Update("#dev", 3, "ali", NOW, "react", 1, "👍", True),
        Update("#dev", 4, "bob", NOW, "edit", 1, "first, edited"),
        Message("#dev", 5, "ali", "mine, soon gone", NOW),
        Update("#dev", 6, "ali", NOW, "delete", 5),
        Update("#dev", 7, "carol", NOW, "react", 1, "🎉", True),
        Update("#dev", 8, "carol", NOW, "react", 2, "🎉", True),
        Update("#dev", 9, "carol", NOW, "react", 1, "🎉", False),
    ]
    stored: dict[int, Message] = {}  # what the server holds, as `page` and `replay` give it
    for event in events:
        if isinstance(event, Message):
            stored[event.seq] = event
        else:
            stored[event.target] = applied(stored[event.target], event)
    stored[2] = replace(stored[2], quote=quote_of(stored[1]))  # (a page quotes it as it is now)

    live = chat_state()
    for event in events:
        live.apply(event)
    paged = chat_state(seq=9)
    page_in(paged, *(stored[seq] for seq in sorted(stored)))
    replayed = chat_state()
    for event in events[:2]:  # then the connection drops: the rest is replayed
        replayed.apply(event)
    for event in events[2:]:  # (messages as they are now, every verb after them)
        replayed.apply(stored[event.seq] if isinstance(event, Message) else event)
    assert shown(live) == shown(paged) == shown(replayed)
    first, answer, mine = shown(live)
    assert first[2:6] == ("first, edited", True, False, (Reaction("👍", 1, ("ali",)),))
    assert answer[5:] == ((Reaction("🎉", 1, ("carol",)),), Quote("bob", "first, edited"))
    assert mine[2:5] == ("", False, True)
    for state in (live, replayed):
        assert state.unread.counts("#dev").unread == 2  # bob's and carol's: no verb, not ours


def test_verbs_are_never_unread_and_a_page_tells_which_seqs_are_verbs() -> None:
    unread = Unread("ali")
    unread.marker("#dev", 10, EPOCH)
    unread.room("#dev", EPOCH, 20)  # ten seqs since the marker: messages, or verbs?
    assert unread.counts("#dev") == Counts(10, 0)
    unread.page("#dev", EPOCH, 8, MAX, {8, 12, 15, 19})  # the newest page: the rest are verbs
    assert unread.counts("#dev") == Counts(3, 0)
    unread.verb("#dev", 21)  # live: the room moves on, nothing to read
    unread.message("#dev", 22, "bob", "ali?")
    assert unread.counts("#dev") == Counts(4, 1)
    unread.page("#dev", EPOCH + 1, 1, MAX, {1})  # a page of another epoch says nothing
    assert unread.counts("#dev") == Counts(4, 1)
    unread.verb("@bob", 99)  # (private conversations have no verbs)
    assert unread.counts("@bob") == Counts(0, 0)
    assert unread.marker("#dev", 22)
    assert unread.counts("#dev") == Counts(0, 0)


def test_a_history_page_tells_the_state_which_seqs_are_verbs() -> None:
    state = chat_state(seq=20, read=10)
    assert state.unread.counts("#dev").unread == 10
    page_in(
        state, *(Message("#dev", s, "bob", f"m{s}", NOW) for s in (8, 12, 15, 19)), complete=False
    )
    assert state.unread.counts("#dev").unread == 3


def test_what_the_server_says_of_verbs_is_made_safe() -> None:
    hostile = Message(
        "#dev", 1, "bob", "hi", NOW, reply=2**70, quote=Quote("eve\x1b[2J", "a\nb\x1b]0;x\x07"),
        reactions=(Reaction("👍\n\x1b[31m" + "x" * 500, 2**70, ("c\x07",)),) * 500,
    )  # fmt: skip
    cleaned = clean(hostile)
    assert cleaned.quote is not None and "\n" not in cleaned.quote.text
    assert "\x1b" not in cleaned.quote.text + cleaned.quote.sender
    assert cleaned.reactions is not None and len(cleaned.reactions) <= 64
    reaction = cleaned.reactions[0]
    assert "\n" not in reaction.text and len(reaction.text) <= 64 and reaction.names == ("c␇",)
    assert reaction.count <= 2**63 - 1
    update = clean(Update("#dev", 2, "bob", NOW, "edit", 1, "[bold]\x1b[2J\u202e"))
    assert update.text == "[bold]␛[2J"
    found = clean(SearchResults((SearchHit("#dev\n", 1, "b\x1b", "t\x07", NOW),), next="n\x1b"))
    assert (found.hits[0].room, found.hits[0].sender, found.hits[0].text) == ("#dev ", "b␛", "t␇")
    assert found.next == "n␛"


def test_refusals_of_verbs_are_said_in_the_apps_words() -> None:
    def said(code: str, **kwargs: str) -> str:
        return plain(refusal(code, "the server's words", **kwargs))

    assert said("not_author", room="#dev", action="edit") == "only its author can edit a message"
    assert said("not_author", room="#dev", action="delete") == (
        "only its author, the owner and ops of #dev and the server's admins can delete a message"
    )
    assert said("no_such_message", room="#dev", action="react") == (
        "that message is not in #dev any more"
    )
    assert said("invalid_reaction", action="react").startswith("a reaction is an emoji")
    assert said("limit_reached", action="react").startswith("that message carries as many")
    set_language("fa")
    assert said("not_author", room="#dev", action="edit") != "only its author can edit a message"


def test_reactions_and_who_gave_them() -> None:
    line = reactions_line(
        (
            Reaction("👍", 2, ("ali", "bob")),
            Reaction("🎉", 9, ("carol", "dave")),
            Reaction("x", 1, ("e",)),
        )
    )
    assert plain(line) == "👍 ali and bob · 🎉 carol, dave and 7 more · x e"


def test_a_reaction_is_drawn_without_its_emoji_presentation_selector() -> None:
    heart = "\u2764\ufe0f"  # ❤️: two cells to Rich, one to tmux
    assert (drawn(heart), cells(drawn(heart))) == ("\u2764", 1)  # ❤: one to every terminal
    assert drawn("👍") == "👍" and drawn("\ufe0f") == "\ufe0f"  # (nothing else changes)
    reactions = (Reaction(heart, 2, ("ali", "bob")),)
    assert plain(reactions_line(reactions)) == "\u2764 ali and bob"
    assert mine_first(reactions, "ALI") == [(reactions[0], True)]  # (matched as sent)


def test_the_selection_bar_says_what_the_message_selected_allows() -> None:
    said = Reaction("👍", 1, ("carol",))
    plain_one = LogEntry(Kind.MESSAGE, NOW, "bob", "hi", seq=1, reactions=(said,))
    reply = LogEntry(Kind.MESSAGE, NOW, "bob", "yes", seq=2, reply=1)

    def hint(entry: LogEntry, *, private: bool = False, confirming: bool = False) -> str:
        return plain(selection_hint(entry, private=private, confirming=confirming))

    assert hint(plain_one) == "r reply · e edit · d delete · + react · Esc: back\n👍 carol"
    assert "Enter: what it answers" in hint(reply)  # only a reply answers something
    assert hint(reply, confirming=True) == (
        "Delete this message? y deletes it, any other key keeps it"
    )
    gone = replace(plain_one, deleted=True)  # (as a page or a replay may bring it)
    assert hint(gone) == "message deleted · ↑ ↓ select · Esc: back"
    assert "Esc: back (replies and reactions are for rooms)" in hint(plain_one, private=True)


def test_who_may_delete_a_message() -> None:
    theirs = LogEntry(Kind.MESSAGE, NOW, "bob", "hi", seq=1)
    mine = LogEntry(Kind.OWN, NOW, "ali", "hello", seq=2)

    def may(
        entry: LogEntry, owner: str = "", ops: tuple[str, ...] = (), *, admin: bool = False
    ) -> bool:
        return may_delete(entry, "ali", owner=owner, ops=ops, admin=admin)

    assert may(mine) and not may(theirs)
    assert may(theirs, owner="ALI") and may(theirs, ops=("carol", "Ali"))
    assert may(theirs, admin=True)
    assert not may(theirs, owner="carol", ops=("dave",))


# --- the search panel's rows ----------------------------------------------------------


def test_a_hit_is_cut_around_its_first_word_found_with_the_words_marked() -> None:
    text = "a long introduction before anything happens, then the deploy of v2 and more deploys"
    shown_text, found = excerpt(text, ("deploy",), 40)
    assert shown_text.startswith("…") and shown_text.endswith("…") and len(shown_text) == 40
    assert [shown_text[a:b] for a, b in found] == ["deploy", "depl…"]  # (the second cut)
    assert excerpt("short deploy", ("deploy",), 40) == ("short deploy", [(6, 12)])


def test_a_persian_hit_reads_right_to_left_its_word_marked() -> None:
    hit = SearchHit("#dev", 3, "sara", "فردا استقرار داریم", NOW)
    prompt = hit_prompt(
        hit, ("استقرار",), 40, bidi=Bidi("app"), rtl_layout=False, now=NOW, tz=UTC,
        calendar="gregorian",
    )  # fmt: skip
    meta, body = prompt.plain.split("\n")
    assert meta == "#dev · 12:10 · sara"
    assert body.startswith(" ") and len(body) == 40  # right-aligned
    marked = "".join(
        prompt.plain[span.start : span.end] for span in prompt.spans if span.style == FOUND_STYLE
    )
    assert marked == Bidi("app").display("استقرار")  # the word found, as drawn


def test_a_hits_date_in_the_persian_ui_is_drawn_and_holds_no_isolate() -> None:
    set_language("fa")
    hit = SearchHit("#dev", 3, "sara", "deploy", NOW - 40 * 86_400_000)  # (another day)
    prompt = hit_prompt(
        hit, ("deploy",), 60, bidi=Bidi("app"), rtl_layout=True, now=NOW, tz=UTC,
        calendar="jalali",
    )  # fmt: skip
    meta = prompt.plain.split("\n")[0]
    assert not set(meta) & {"\u2066", "\u2067", "\u2068", "\u2069"}
    said = when(hit.ts, NOW, UTC, "jalali")
    assert Bidi("app").display(said, True) in meta  # in visual order, as the log draws it


# --- the app against a real server ----------------------------------------------------


def errors(app: ChatApp) -> list[str]:
    return [plain(e.text) for e in app.query_one(ChatLog).entries if e.kind is Kind.ERROR]


NONE = LogEntry(Kind.SYSTEM, 0, "", "")
"""What `entry_of` and `entry_at` give for a message not in the log (yet)."""


def entry_of(app: ChatApp, text: str) -> LogEntry:
    """The entry of the conversation on screen whose text is `text` now."""
    return next((e for e in app.query_one(ChatLog).entries if e.text == text), NONE)


def entry_at(app: ChatApp, seq: int) -> LogEntry:
    """The entry of the message numbered `seq` in the conversation on screen."""
    return next((e for e in app.query_one(ChatLog).entries if e.seq == seq and e.sender), NONE)


async def test_reply_react_edit_and_delete_from_the_composer(
    server: ChatServer, connect: Any
) -> None:
    bob: ChatClient = await connect("bob")
    app = make_app(server.address, "ali")
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: connected(app))
        sent = await bob.send("#lobby", "the deploy went out")
        await until(pilot, lambda: "the deploy went out" in log_texts(app))
        await send_line(pilot, "/reply nice, thanks")
        reply = await expect(bob, Message, text="nice, thanks")
        assert reply.reply == sent.seq
        await until(pilot, lambda: "nice, thanks" in log_texts(app))
        assert entry_of(app, "nice, thanks").quote == Quote("bob", "the deploy went out")
        await send_line(pilot, "/react 🎉")  # to the latest: our own reply
        reacted = await expect(bob, Update, verb="react")
        assert (reacted.target, reacted.text, reacted.on) == (reply.seq, "🎉", True)
        await until(pilot, lambda: entry_of(app, "nice, thanks").reactions != ())
        await send_line(pilot, "teh fix is in teh branch")
        await until(pilot, lambda: "teh fix is in teh branch" in log_texts(app))
        await send_line(pilot, "s/teh/the/g")
        edited = await expect(bob, Update, verb="edit")
        assert edited.text == "the fix is in the branch"
        await until(pilot, lambda: "the fix is in the branch" in log_texts(app))
        assert entry_of(app, "the fix is in the branch").edited
        await send_line(pilot, "s/nothing like it/x/")
        await until(
            pilot, lambda: any(e.startswith("“nothing like it” is not in") for e in errors(app))
        )
        await send_line(pilot, "/edit the fix is in main")
        assert (await expect(bob, Update, verb="edit")).text == "the fix is in main"
        await send_line(pilot, "/delete")
        deleted = await expect(bob, Update, verb="delete")
        assert deleted.target == edited.target
        await until(pilot, lambda: entry_at(app, deleted.target).deleted)
        page = await bob.history("#lobby")
        assert [m.deleted for m in page.messages][-1] is True
        await send_line(pilot, "/query bob")
        await until(pilot, lambda: app.current_room == "@bob")
        await send_line(pilot, "/react 👍")
        await until(pilot, lambda: bool(errors(app)))
        assert (
            errors(app)[-1]
            == "replies, reactions, edits and deletes are for room messages, not private ones"
        )


async def test_the_selection_and_its_keys(server: ChatServer, connect: Any) -> None:
    bob: ChatClient = await connect("bob")
    first = await bob.send("#lobby", "first of many")
    for i in range(52):  # the first is older than the page the app loads
        await bob.send("#lobby", f"filler {i}")
    app = make_app(server.address, "ali")
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: connected(app))
        await bob.send("#lobby", "about the first", reply=first.seq)
        await until(pilot, lambda: "about the first" in log_texts(app))
        log, composer = app.query_one(ChatLog), app.query_one(ChatInput)
        assert entry_of(app, "about the first").quote is None  # (what it answers is not held)
        await pilot.press("alt+up")
        assert log.selected is not None and log.selected.text == "about the first"
        assert log.has_focus and app.query_one("#selecting").has_class("-visible")
        await pilot.press("up")
        assert log.selected.text == "filler 51"
        await pilot.press("down", "enter")  # the message it answers: paged back to it
        await until(
            pilot, lambda: log.selected is not None and log.selected.text == "first of many"
        )
        assert "filler 0" in log_texts(app)
        assert entry_of(app, "about the first").quote == Quote("bob", "first of many")
        await pilot.press("r")
        assert app.composing is not None and app.composing.verb == "reply" and composer.has_focus
        assert "first of many" in plain(app.query_one("#composing", BidiText).text)
        await send_line(pilot, "replying from the selection")
        answer = await expect(bob, Message, text="replying from the selection")
        assert answer.reply == first.seq and app.composing is None
        await pilot.press("alt+up", "end", "e")  # our own, the newest: edited in the composer
        composer = app.query_one(ChatInput)
        assert composer.value == "replying from the selection" and app.composing is not None
        await pilot.press("escape")  # given up: the composer as it was
        assert composer.value == "" and app.composing is None
        await pilot.press("alt+up", "end", "plus")
        await until(pilot, lambda: isinstance(app.screen, PromptDialog))
        app.screen.query_one("#answer", BidiInput).value = "👍"
        await pilot.press("enter")
        assert (await expect(bob, Update, verb="react")).target == answer.seq
        await pilot.press("d")  # asked first: y deletes it
        assert "y deletes it" in plain(app.query_one("#selecting", BidiText).text)
        await pilot.press("y")
        assert (await expect(bob, Update, verb="delete")).target == answer.seq
        await until(pilot, lambda: entry_at(app, answer.seq).deleted)
        await pilot.press("up", "e")  # bob's: not ours to edit
        assert errors(app)[-1] == "only its author can edit a message"
        await pilot.press("escape")
        assert log.selected is None and composer.has_focus


async def events_until(client: ChatClient, text: str) -> list[Any]:
    """What `client` hears up to the room message `text` (which it returns last)."""
    heard: list[Any] = []
    async with asyncio.timeout(10):
        while not (isinstance(heard[-1:] and heard[-1], Message) and heard[-1].text == text):
            heard.append(await client.next_event())
    return heard


def burst(app: ChatApp, text: str) -> None:
    """Post the keys of `text` as the driver does for keys read in one go (a line break is
    Enter): all of them, before the app has handled any."""
    for char in text:
        key = {"\n": "enter", " ": "space"}.get(char, char)
        app.post_message(events.Key(key, "\r" if char == "\n" else char))


async def selected_again(pilot: Pilot[Any], seq: int) -> None:
    """Select the newest reply to message `seq`, then go to what it answers: `seq`."""
    log = pilot.app.query_one(ChatLog)
    await pilot.press("alt+up")
    while log.selected is not None and log.selected.reply != seq:
        await pilot.press("up")
    await pilot.press("enter")
    await until(pilot, lambda: log.selected is not None and log.selected.seq == seq)


async def test_typing_while_a_message_is_selected_is_writing(
    server: ChatServer, connect: Any
) -> None:
    bob: ChatClient = await connect("bob")
    app = make_app(server.address, "ali")
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: connected(app))
        await send_line(pilot, "my plan")
        mine = await expect(bob, Message, text="my plan")
        await bob.send("#lobby", "about your plan", reply=mine.seq)
        await until(pilot, lambda: "about your plan" in log_texts(app))
        log, composer = app.query_one(ChatLog), app.query_one(ChatInput)
        await selected_again(pilot, mine.seq)  # ours, selected after a jump to it
        await pilot.press(*"I added it")  # ("dd": no delete; the selection is over at "I")
        await until(pilot, lambda: composer.value == "I added it")
        assert composer.has_focus and log.selected is None and not log.has_focus
        await pilot.press("enter")
        heard = await events_until(bob, "I added it")
        assert not [e for e in heard if isinstance(e, Update)]  # nothing deleted
        assert not entry_at(app, mine.seq).deleted
        await selected_again(pilot, mine.seq)
        await pilot.press(*"see")  # (not an edit of ours)
        await until(pilot, lambda: composer.value == "see")
        assert app.composing is None
        composer.value = ""
        await selected_again(pilot, mine.seq)
        burst(app, "so dd it\n")  # keys read in one go: all of them the composer's
        heard = await events_until(bob, "so dd it")
        assert not [e for e in heard if isinstance(e, Update)]
        await selected_again(pilot, mine.seq)
        await pilot.press("d")  # asked first
        bar = app.query_one("#selecting", BidiText)
        assert plain(bar.text) == "Delete this message? y deletes it, any other key keeps it"
        await pilot.press("d")  # any key but y keeps it, and a character is typed
        await until(pilot, lambda: composer.value == "d")
        assert log.selected is None and not entry_at(app, mine.seq).deleted
        composer.value = ""
        await selected_again(pilot, mine.seq)
        await pilot.press("d", "escape")  # kept, still selected
        assert log.selected is not None and log.selected.seq == mine.seq
        assert plain(bar.text).startswith("r reply")
        await pilot.press("d", "y")
        assert (await expect(bob, Update, verb="delete")).target == mine.seq
        await until(pilot, lambda: entry_at(app, mine.seq).deleted)


async def test_the_selection_bar_says_what_the_user_may_do(
    server: ChatServer, connect: Any
) -> None:
    bob: ChatClient = await connect("bob")
    app = make_app(server.address, "ali", key=SigningKey.generate())
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: connected(app))
        first = await bob.send("#lobby", "a plain one")
        await bob.react("#lobby", first.seq, "👍")
        await bob.send("#lobby", "an answer", reply=first.seq)
        await until(pilot, lambda: "an answer" in log_texts(app))
        await until(pilot, lambda: bool(entry_at(app, first.seq).reactions))
        log, bar = app.query_one(ChatLog), app.query_one("#selecting", BidiText)
        await pilot.press("alt+up")  # a reply: Enter goes to what it answers
        assert "Enter: what it answers" in plain(bar.text)
        await pilot.press("up")  # not a reply; its reactions and who gave them
        assert log.selected is not None and log.selected.seq == first.seq
        assert plain(bar.text) == "r reply · e edit · d delete · + react · Esc: back\n👍 bob"
        await pilot.press("d")  # not ours, nor ours to moderate: said at once, not asked
        assert errors(app)[-1] == (
            "only its author, the owner and ops of #lobby and the server's admins can delete a "
            "message"
        )
        assert not plain(bar.text).startswith("Delete")
        await pilot.press("e")
        assert errors(app)[-1] == "only its author can edit a message"
        await pilot.press("escape")
        await send_line(pilot, "/join #mine")  # ours: its owner may delete any message in it
        await until(pilot, lambda: app.current_room == "#mine" and connected(app))
        view = app.conversation("#mine")
        assert view is not None and view.owner == "ali"
        await bob.join("#mine")
        theirs = await bob.send("#mine", "in your room")
        await bob.react("#mine", theirs.seq, "🎉")
        await until(pilot, lambda: bool(entry_at(app, theirs.seq).reactions))
        await pilot.press("alt+up", "d")
        assert plain(bar.text).startswith("Delete this message?")
        await pilot.press("y")
        assert (await expect(bob, Update, verb="delete")).target == theirs.seq
        await until(pilot, lambda: entry_at(app, theirs.seq).deleted)
        await until(pilot, lambda: "🎉" not in bar.text)  # its reactions went with it
        assert plain(bar.text) == "message deleted · ↑ ↓ select · Esc: back"


async def test_a_reaction_with_a_variation_selector_takes_one_cell(
    server: ChatServer, connect: Any
) -> None:
    heart = "\u2764\ufe0f"
    bob: ChatClient = await connect("bob")
    app = make_app(server.address, "ali")
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: connected(app))
        sent = await bob.send("#lobby", "love it")
        await bob.react("#lobby", sent.seq, heart)
        await until(pilot, lambda: bool(entry_at(app, sent.seq).reactions))
        await send_line(pilot, f"/react {heart}")  # the same, as sent: ours too now
        await until(pilot, lambda: entry_at(app, sent.seq).reactions[0].count == 2)
        assert entry_at(app, sent.seq).reactions[0].text == heart  # kept as sent
        screen = rendered(app)[0]
        assert "\u2764 2" in screen and "\ufe0f" not in screen
        await pilot.press("alt+up")
        assert plain(app.query_one("#selecting", BidiText).text).endswith("\u2764 bob and ali")


async def test_a_refusal_is_said_in_persian_in_the_persian_ui(
    server: ChatServer, connect: Any
) -> None:
    bob: ChatClient = await connect("bob")
    app = make_app(server.address, "ali", config=Config(name="ali", lang="fa"))
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: connected(app))
        await bob.send("#lobby", "not yours to delete")
        await until(pilot, lambda: "not yours to delete" in log_texts(app))
        await pilot.press("alt+up", "d", "d")
        words = (
            "only its author, the owner and ops of {room} and the server's admins can delete a "
            "message"
        )
        said = plain(_(words).format(room="#lobby"))
        assert said != plain(words.format(room="#lobby"))  # translated
        await until(pilot, lambda: said in errors(app))


def reads_from_the_right(widget: BidiText, first: str) -> bool:
    """Whether each line of `widget` is right-aligned and starts (at the right) with `first`
    (a key's name, read first in a right-to-left sentence)."""
    lines = [line.rstrip() for line in widget.lines(widget.content_size.width)]
    return lines[0].endswith(first) and all(
        len(line) == len(lines[0]) or not line for line in lines
    )


async def test_the_new_dialogs_and_questions_read_right_to_left_in_persian(
    server: ChatServer, connect: Any
) -> None:
    bob: ChatClient = await connect("bob")
    await bob.join("#books")
    await bob.send("#books", "a book about ships")
    app = make_app(server.address, "ali", config=Config(name="ali", lang="fa"))
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: connected(app))
        await bob.send("#lobby", "thanks")
        await until(pilot, lambda: "thanks" in log_texts(app))
        await pilot.press("alt+up", "plus")  # the reaction dialog
        await until(pilot, lambda: isinstance(app.screen, PromptDialog))
        answer = app.screen.query_one("#answer", BidiInput)
        drawn = answer.render_line(0).text
        assert "+1" in drawn and "1+" not in drawn  # a Latin token, isolated
        placeholder = plain(answer.placeholder)
        assert cells(placeholder) < answer.content_size.width  # (not cut)
        assert reads_from_the_right(app.screen.query_one(".hint", BidiText), "Enter")
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, PromptDialog))
        await pilot.press("escape")  # (the selection too)
        await send_line(pilot, "از من")
        mine = await expect(bob, Message, text="از من")
        await until(pilot, lambda: "از من" in log_texts(app))
        await pilot.press("alt+up", "ی")  # d, where a Persian layout has it
        bar = app.query_one("#selecting", BidiText)
        assert plain(bar.text) == "\u200f" + _(
            "Delete this message? y deletes it, any other key keeps it"
        )
        assert "y (غ)" in bar.text
        await pilot.press("غ")  # y, where a Persian layout has it
        assert (await expect(bob, Update, verb="delete")).target == mine.seq
        await pilot.press("escape", "ctrl+f")
        await until(pilot, lambda: isinstance(app.screen, SearchScreen))
        search = app.screen
        assert isinstance(search, SearchScreen)
        assert reads_from_the_right(search.query_one(".hint", BidiText), "Enter")
        await pilot.press(*"ships", "enter")
        await until(pilot, lambda: len(search.hits) == 1)
        await pilot.press("down", "enter")
        await until(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        question = app.screen.query_one(".question", BidiText)
        assert plain(question.text).startswith("\u200f") and "#books" in question.text
        assert question.text != "You are not in #books: join it to see the message?"
        assert reads_from_the_right(app.screen.query_one(".hint", BidiText), "Enter")


async def test_the_palette_has_the_verbs(server: ChatServer, connect: Any) -> None:
    bob: ChatClient = await connect("bob")
    app = make_app(server.address, "ali")
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: connected(app))
        await bob.send("#lobby", "anyone there?")
        await until(pilot, lambda: "anyone there?" in log_texts(app))
        await pilot.press("ctrl+k", *"reply")
        await until(pilot, lambda: isinstance(app.screen, CommandPalette))
        await until(pilot, lambda: app.screen.query_one("CommandList").option_count >= 1)  # type: ignore[attr-defined]
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, PromptDialog))
        app.screen.query_one("#answer", BidiInput).value = "here!"
        await pilot.press("enter")
        assert (await expect(bob, Message, text="here!")).reply is not None


async def test_search_finds_pages_on_and_goes_to_the_message(
    server: ChatServer, connect: Any
) -> None:
    bob: ChatClient = await connect("bob")
    await bob.join("#ops")
    target = await bob.send("#ops", "the deploy key is in the vault")
    for i in range(52):  # (older than the page a join loads)
        await bob.send("#ops", f"noise {i}")
    for i in range(24):
        await bob.send("#lobby", f"deploy number {i}")
    app = make_app(server.address, "ali")
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: connected(app))
        await pilot.press("ctrl+f")
        await until(pilot, lambda: isinstance(app.screen, SearchScreen))
        screen = app.screen
        assert isinstance(screen, SearchScreen)
        await pilot.press(*"deplo", "enter")  # (the start of a word finds it)
        await until(pilot, lambda: len(screen.hits) == 20)
        assert [h.text for h in screen.hits[:2]] == ["deploy number 23", "deploy number 22"]
        hits = screen.query_one("#search-hits", OptionList)
        first = hits.get_option_at_index(0).prompt
        marked = [first.plain[s.start : s.end] for s in first.spans if s.style == FOUND_STYLE]
        assert marked == ["deploy"]
        await pilot.press("down", "end")  # the end of the list: older hits, on demand
        await until(pilot, lambda: len(screen.hits) == 25)
        assert screen.hits[-1].room == "#ops"
        hits.highlighted = 24
        await pilot.press("enter")  # in a room we are not in: asked, joined, paged back, selected
        await until(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        await pilot.press("enter")
        await until(pilot, lambda: app.current_room == "#ops")
        log = app.query_one(ChatLog)
        await until(pilot, lambda: log.selected is not None and log.selected.seq == target.seq)
        await pilot.press("escape")
        await send_line(pilot, "/search noise from:bob in:#ops")
        await until(
            pilot, lambda: isinstance(app.screen, SearchScreen) and len(app.screen.hits) == 20
        )
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, SearchScreen))


async def test_the_search_panels_keys_and_its_last_query(server: ChatServer, connect: Any) -> None:
    bob: ChatClient = await connect("bob")
    for text in ("deploy one", "deploy two", "deploy three"):
        await bob.send("#lobby", text)
    app = make_app(server.address, "ali")
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: connected(app))
        await pilot.press("ctrl+f")
        await until(pilot, lambda: isinstance(app.screen, SearchScreen))
        screen = app.screen
        assert isinstance(screen, SearchScreen)
        query = screen.query_one("#search-query", BidiInput)
        hits = screen.query_one("#search-hits", OptionList)
        await pilot.press(*"deploy", "enter")
        await until(pilot, lambda: len(screen.hits) == 3)
        assert query.has_focus and hits.highlighted == 0  # the first highlighted, not passed
        await pilot.press("down")  # "↓ to the results": to the first of them
        assert hits.has_focus and hits.highlighted == 0
        await pilot.press("space", "t")  # typed on the hits: the query's, refined
        assert query.has_focus and query.value == "deploy t"
        await pilot.press("enter")
        await until(pilot, lambda: [h.text for h in screen.hits] == ["deploy three", "deploy two"])
        await pilot.press("down", "down")
        assert hits.highlighted == 1
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, SearchScreen))
        await pilot.press("ctrl+f")  # as it was: the query (selected), its hits
        await until(pilot, lambda: isinstance(app.screen, SearchScreen))
        again = app.screen
        assert isinstance(again, SearchScreen) and again is not screen
        query = again.query_one("#search-query", BidiInput)
        assert [h.text for h in again.hits] == ["deploy three", "deploy two"]
        assert again.query_one("#search-hits", OptionList).highlighted == 1
        assert query.value == "deploy t" and query.selection == (0, len("deploy t"))
        await pilot.press("x")  # typing replaces it
        assert query.value == "x"


async def test_a_hit_in_a_room_the_user_is_not_in_asks_before_joining(
    server: ChatServer, connect: Any
) -> None:
    bob: ChatClient = await connect("bob")
    await bob.join("#books")
    away = await bob.send("#books", "a book about ships")
    here = await bob.send("#lobby", "the book club is tonight")
    app = make_app(server.address, "ali")
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: connected(app))
        log = app.query_one(ChatLog)

        async def choose(room: str) -> None:
            """Search for "book" (the panel as it was, or anew), and choose the hit in `room`."""
            await pilot.press("ctrl+f")
            await until(pilot, lambda: isinstance(app.screen, SearchScreen))
            screen = app.screen
            assert isinstance(screen, SearchScreen)
            if not screen.hits:
                await pilot.press(*"book", "enter")
                await until(pilot, lambda: len(screen.hits) == 3)
            hits = screen.query_one("#search-hits", OptionList)
            hits.highlighted = [h.room for h in screen.hits].index(room)
            await pilot.press("down", "enter")

        await bob.private("ali", "a book for you")
        await until(pilot, lambda: "@bob" in app.privates)
        await choose("#lobby")  # a room the user is in: opened at once
        await until(pilot, lambda: log.selected is not None and log.selected.seq == here.seq)
        await pilot.press("escape")
        await choose("@bob")  # a private conversation: opened at once
        await until(pilot, lambda: app.current_room == "@bob" and log.selected is not None)
        await pilot.press("escape")
        await choose("#books")  # a room the user is not in: asked first
        await until(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        question = app.screen.query_one(".question", BidiText)
        assert plain(question.text) == "You are not in #books: join it to see the message?"
        assert plain(app.screen.query_one(".hint", BidiText).text) == "Enter joins, Escape stays"
        await pilot.press("escape")  # stays: back to the hits, not joined
        await until(pilot, lambda: isinstance(app.screen, SearchScreen))
        assert "#books" not in app.rooms and app.current_room == "@bob"
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        await pilot.press("enter")  # joins, and goes to the message
        await until(pilot, lambda: app.current_room == "#books")
        await until(pilot, lambda: log.selected is not None and log.selected.seq == away.seq)
        await expect(bob, Joined, room="#books", name="ali")  # (only now: "ali joined")


async def test_verbs_are_not_unread(server: ChatServer, connect: Any) -> None:
    bob: ChatClient = await connect("bob")
    await bob.join("#dev")
    app = make_app(server.address, "ali")
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: connected(app))
        await send_line(pilot, "/join #dev")
        await until(pilot, lambda: app.current_room == "#dev" and connected(app))
        sent = await bob.send("#dev", "one to react to")
        await until(pilot, lambda: "one to react to" in log_texts(app))
        await pilot.press("alt+1")  # the lobby: #dev out of sight
        await bob.react("#dev", sent.seq, "👍")
        await bob.edit("#dev", sent.seq, "one to react to, edited")
        await bob.send("#dev", "news")
        await until(pilot, lambda: app.unread.counts("#dev").unread == 1)
        view = app.conversation("#dev")
        assert view is not None and view.entries[-1].text == "news"
        assert next(e for e in view.entries if e.seq == sent.seq).reactions


async def test_a_replay_after_a_lost_connection_shows_what_a_history_page_does(
    server: ChatServer, connect: Any
) -> None:
    proxy = Proxy(server.address)
    await proxy.start()
    bob: ChatClient = await connect("bob")
    app = make_app(("127.0.0.1", proxy.port), "ali", reconnect=True)
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            await until(pilot, lambda: connected(app))
            first = await bob.send("#lobby", "before the cut")
            await until(pilot, lambda: "before the cut" in log_texts(app))
            await proxy.refuse()
            await until(pilot, lambda: app.state.connection == "reconnecting…")
            await bob.react("#lobby", first.seq, "👍")
            second = await bob.send("#lobby", "while away", reply=first.seq)
            await bob.edit("#lobby", first.seq, "before the cut, edited")
            await bob.react("#lobby", second.seq, "🎉")
            gone = await bob.send("#lobby", "said and taken back")
            await bob.delete("#lobby", gone.seq)
            await proxy.accept()
            await until(pilot, lambda: app.state.connection == "connected")
            await until(pilot, lambda: entry_at(app, gone.seq).deleted)
            page = await bob.history("#lobby")
            log = app.query_one(ChatLog)
            for message in page.messages:
                entry = next(e for e in log.entries if e.seq == message.seq)
                assert (entry.text, entry.edited, entry.deleted, entry.reactions, entry.quote) == (
                    message.text,
                    bool(message.edited),
                    bool(message.deleted),
                    message.reactions or (),
                    message.quote if message.reply else None,
                ), message
    finally:
        await proxy.stop()


# --- what it looks like ----------------------------------------------------------------


@pytest.fixture
def chat(tmp_path: Path) -> Iterator[ServerThread]:
    server = ServerThread(db=str(tmp_path / "history.sqlite3"))
    yield server
    server.stop()


async def a_lively_room(pilot: Pilot[Any], chat: ServerThread, persian: bool = False) -> None:
    """Bob and carol in the lobby with ali: a reply, reactions (one of them ali's), an edit
    and a delete."""
    app = pilot.app
    assert isinstance(app, ChatApp)
    await until(pilot, lambda: connected(app))
    bob, carol = chat.connect("bob"), chat.connect("carol")
    if persian:
        words = ("استقرار رفت، همه سبز (v2.1)", "عالی بود، ممنون", "جلسه ساعت ۳ است", "اشتباه")
    else:
        words = ("the deploy went out, all green", "great work, thanks", "standup at 3", "oops")
    deployed = chat.run(bob.send("#lobby", words[0]))
    chat.run(carol.send("#lobby", words[1], reply=deployed.seq))
    chat.run(carol.react("#lobby", deployed.seq, "👍"))
    chat.run(bob.react("#lobby", deployed.seq, "🎉"))
    await until(pilot, lambda: words[1] in log_texts(app))
    await until(pilot, lambda: len(entry_at(app, deployed.seq).reactions) == 2)
    await send_line(pilot, "/react 👍")  # (to carol's answer)
    standup = chat.run(bob.send("#lobby", words[2] + " tomorow"))
    chat.run(bob.edit("#lobby", standup.seq, words[2]))
    oops = chat.run(carol.send("#lobby", words[3]))
    chat.run(carol.delete("#lobby", oops.seq))
    await until(pilot, lambda: entry_at(app, oops.seq).deleted)
    await until(pilot, lambda: entry_at(app, standup.seq).edited)
    await until(pilot, lambda: bool(entry_of(app, words[1]).reactions))


def test_a_reply_reactions_an_edit_and_a_delete(snap_compare: Any, chat: ServerThread) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await a_lively_room(pilot, chat)

    assert snap_compare(
        make_app(chat.server.address, "ali"), terminal_size=SIZE, run_before=run_before
    )


def test_a_selected_message_in_the_persian_ui(snap_compare: Any, chat: ServerThread) -> None:
    app = make_app(chat.server.address, "ali", config=Config(name="ali", lang="fa"))

    async def run_before(pilot: Pilot[Any]) -> None:
        await a_lively_room(pilot, chat, persian=True)
        await pilot.press("alt+up", "up", "up", "up")
        log = app.query_one(ChatLog)
        await until(pilot, lambda: log.selected is not None and len(log.selected.reactions) == 2)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_the_search_panel(snap_compare: Any, chat: ServerThread) -> None:
    app = make_app(chat.server.address, "ali")

    async def run_before(pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: connected(app))
        bob = chat.connect("bob")
        chat.run(bob.join("#ops"))
        for text in (
            "the deploy key is in the vault",
            "who deployed on Friday? the deploys need a freeze",
            "فردا استقرار داریم، لطفاً deploy نکنید",
            "a very long message that only mentions the deploy at its end, after a lot of words",
        ):
            chat.run(bob.send("#ops", text))
        chat.run(bob.private("ali", "psst: the deploy is at noon"))
        await until(pilot, lambda: "@bob" in app.privates)
        await send_line(pilot, "/search deploy")
        await until(
            pilot, lambda: isinstance(app.screen, SearchScreen) and len(app.screen.hits) == 5
        )

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)
