# ruff: noqa: RUF001
"""Replies, reactions, edits, deletes and search, as users notice them, on every deployment.

Part of the contract suite: each test runs on memory, SQLite, Redis and the Redis Cluster,
acting through one server and watching through the other (a single-server kind is a cluster
of one: the other server is the same one).
"""

from __future__ import annotations

import asyncio
from typing import Any

from tests.deployments import Deployment, deployment_fixture
from tests.helpers import expect, until
from tests.test_contract import ask_for, frames_until
from tests.test_devices import two_devices
from tests.test_moderation import keyed, refused
from tuichat.client import ChatClient, RequestFailed
from tuichat.protocol import (
    Hello,
    HistoryPage,
    Joined,
    Message,
    PrivateMessage,
    Quote,
    Reaction,
    Update,
    Welcome,
)

__all__ = ["deployment_fixture"]


async def room_of(deployment: Deployment, room: str = "#dev") -> tuple[ChatClient, ChatClient]:
    """ali (who makes and owns the room) on one server, bob on the other, both in it."""
    ali = await keyed(deployment, "ali", on=0)
    bob = await keyed(deployment, "bob", on=1)
    await ali.join(room)
    await bob.join(room)
    await expect(ali, Joined, room=room, name="bob")  # (ali's server knows bob is in it)
    return ali, bob


def by_seq(page: HistoryPage) -> dict[int, Message]:
    return {m.seq: m for m in page.messages}


# --- each verb, live and in history -------------------------------------------


async def test_a_reply_carries_its_original_and_history_shows_a_preview(
    deployment: Deployment,
) -> None:
    ali, bob = await room_of(deployment)
    first = await ali.send("#dev", "shall we ship on friday?\nsecond line")
    answer = await bob.send("#dev", "yes", reply=first.seq)
    live = await expect(ali, Message, room="#dev", seq=answer.seq)
    assert (live.text, live.reply) == ("yes", first.seq)
    page = by_seq(await ali.history("#dev"))
    assert page[answer.seq].quote == Quote(sender="ali", text="shall we ship on friday?…")
    await refused(bob.send("#dev", "to nothing", reply=answer.seq + 5), "no_such_message")


async def test_a_reaction_is_counted_with_who_gave_it_and_repeating_takes_it_back(
    deployment: Deployment,
) -> None:
    ali, bob = await room_of(deployment)
    carol = await keyed(deployment, "carol", on=1)
    await carol.join("#dev")
    sent = await ali.send("#dev", "release is out")
    first = await bob.react("#dev", sent.seq, "👍")
    heard = await expect(ali, Update, room="#dev", seq=first.seq)
    assert (heard.verb, heard.target, heard.text, heard.on, heard.sender) == (
        "react", sent.seq, "👍", True, "bob",
    )  # fmt: skip
    await carol.react("#dev", sent.seq, "👍")
    await carol.react("#dev", sent.seq, "🎉")
    page = by_seq(await ali.history("#dev"))
    assert page[sent.seq].reactions == (
        Reaction("👍", 2, ("bob", "carol")),
        Reaction("🎉", 1, ("carol",)),
    )
    again = await bob.react("#dev", sent.seq, "👍")  # the same again: taken back
    taken = await expect(ali, Update, room="#dev", seq=again.seq)
    assert (taken.verb, taken.on) == ("react", False)
    page = by_seq(await bob.history("#dev"))
    assert page[sent.seq].reactions == (
        Reaction("👍", 1, ("carol",)),
        Reaction("🎉", 1, ("carol",)),
    )
    assert sent.seq + 4 not in page  # a verb is not a message of the page
    await refused(bob.react("#dev", sent.seq, ""), "invalid_reaction")
    await refused(bob.react("#dev", sent.seq, "x" * 40), "invalid_reaction")
    await refused(bob.react("#dev", sent.seq, "a\nb"), "invalid_reaction")
    await refused(bob.react("#dev", 999, "👍"), "no_such_message")


async def test_an_edit_by_its_author_is_seen_by_everyone_and_by_nobody_else(
    deployment: Deployment,
) -> None:
    ali, bob = await room_of(deployment)
    sent = await ali.send("#dev", "teh release")
    edit = await ali.edit("#dev", sent.seq, "the release")
    heard = await expect(bob, Update, room="#dev", seq=edit.seq)
    assert (heard.verb, heard.target, heard.text) == ("edit", sent.seq, "the release")
    page = by_seq(await bob.history("#dev"))
    assert (page[sent.seq].text, page[sent.seq].edited) == ("the release", True)
    await refused(bob.edit("#dev", sent.seq, "bob was here"), "not_author")
    await refused(ali.edit("#dev", sent.seq, "x" * 5000), "text_too_long")
    assert by_seq(await ali.history("#dev"))[sent.seq].text == "the release"


async def test_a_delete_leaves_a_deleted_line_and_only_author_ops_and_admins_may(
    deployment: Deployment,
) -> None:
    ali, bob = await room_of(deployment)  # ali owns #dev
    carol = await keyed(deployment, "carol", on=1)
    await carol.join("#dev")
    mine = await bob.send("#dev", "bob's secret plan")
    reply = await carol.send("#dev", "nice plan", reply=mine.seq)
    await ali.react("#dev", mine.seq, "👀")
    await bob.edit("#dev", mine.seq, "bob's secret plan, edited")
    await refused(carol.delete("#dev", mine.seq), "not_author")
    gone = await bob.delete("#dev", mine.seq)
    heard = await expect(carol, Update, room="#dev", seq=gone.seq)
    assert (heard.verb, heard.target, heard.text) == ("delete", mine.seq, "")
    page = by_seq(await carol.history("#dev"))
    deleted = page[mine.seq]
    assert (deleted.text, deleted.deleted, deleted.reactions, deleted.sender) == (
        "", True, None, "bob",
    )  # fmt: skip
    assert page[reply.seq].quote == Quote(sender="bob", text="", deleted=True)
    await refused(ali.edit("#dev", mine.seq, "again"), "no_such_message")
    await refused(bob.react("#dev", mine.seq, "👍"), "no_such_message")
    other = await carol.send("#dev", "carol's message")
    await ali.delete("#dev", other.seq)  # the owner may
    assert by_seq(await bob.history("#dev"))[other.seq].deleted
    replayed = await bob.history("#dev", before=gone.seq + 1, limit=50)
    assert all("secret" not in m.text for m in replayed.messages)


# --- resume, devices -----------------------------------------------------------


async def test_verbs_made_while_away_come_on_resume_in_the_rooms_order(
    deployment: Deployment,
) -> None:
    ali = await keyed(deployment, "ali", on=0)
    bob = await deployment.connect("bob", on=0)  # no key: a bare hello resumes it
    await ali.join("#dev")
    await bob.join("#dev")
    sent = await ali.send("#dev", "before")
    await expect(bob, Message, text="before")
    assert bob.welcome is not None
    positions, token = tuple(bob.positions.values()), bob.welcome.token
    private_after = bob.welcome.private_seq
    await bob.abort()
    react = await ali.react("#dev", sent.seq, "🔥")
    edit = await ali.edit("#dev", sent.seq, "before, edited")
    later = await ali.send("#dev", "later", reply=sent.seq)
    back = await deployment.raw(on=1)
    hello = Hello(name="bob", positions=positions, token=token, private_after=private_after)
    await ask_for(back, hello, Welcome)
    frames = await frames_until(back, lambda fs: any(isinstance(f, Message) for f in fs))
    replayed = [f for f in frames if isinstance(f, Message | Update) and f.room == "#dev"]
    assert [f.seq for f in replayed] == [react.seq, edit.seq, later.seq]
    first, second, third = replayed
    assert isinstance(first, Update) and (first.verb, first.text, first.on) == ("react", "🔥", True)
    assert isinstance(second, Update) and (second.verb, second.text) == ("edit", "before, edited")
    assert isinstance(third, Message) and third.reply == sent.seq
    assert third.quote == Quote(sender="ali", text="before, edited")


async def test_a_users_other_device_sees_the_verbs_of_the_first(deployment: Deployment) -> None:
    _, phone, laptop = await two_devices(deployment, "ali")
    await phone.join("#dev")
    sent = await phone.send("#dev", "from the phone")
    edit = await phone.edit("#dev", sent.seq, "from the phone, fixed on the phone")
    heard = await expect(laptop, Update, room="#dev", seq=edit.seq)
    assert heard.text == "from the phone, fixed on the phone"
    fixed = await laptop.edit("#dev", sent.seq, "fixed on the laptop")  # the same author
    await expect(phone, Update, room="#dev", seq=fixed.seq)
    liked = await phone.react("#dev", sent.seq, "👍")
    heard = await expect(laptop, Update, room="#dev", seq=liked.seq)
    assert (heard.verb, heard.on) == ("react", True)
    unliked = await laptop.react("#dev", sent.seq, "👍")  # one person: the laptop takes it back
    heard = await expect(phone, Update, room="#dev", seq=unliked.seq)
    assert (heard.verb, heard.on) == ("react", False)
    gone = await laptop.delete("#dev", sent.seq)
    heard = await expect(phone, Update, room="#dev", seq=gone.seq)
    assert heard.verb == "delete"
    page = {m.seq: m for m in (await phone.history("#dev")).messages}
    assert (page[sent.seq].deleted, page[sent.seq].reactions) == (True, None)


# --- search ---------------------------------------------------------------------


async def test_search_finds_a_message_the_searcher_never_loaded(deployment: Deployment) -> None:
    ali, bob = await room_of(deployment)
    await ali.join("#ops")
    for i in range(30):
        await ali.send("#ops", f"routine line {i}")
    needle = await ali.send("#ops", "the deploy key rotates on Tuesday")
    for i in range(30):
        await ali.send("#ops", f"routine line after {i}")
    carol = await keyed(deployment, "carol", on=1)  # never in #ops, never read its history
    found = await carol.search("rotat tues")
    assert [(h.room, h.seq, h.sender, h.text) for h in found.hits] == [
        ("#ops", needle.seq, "ali", "the deploy key rotates on Tuesday")
    ]
    assert not (await carol.search("nothing-like-this")).hits
    newest_first = await carol.search("routine", limit=5)
    assert [h.text for h in newest_first.hits] == [
        f"routine line after {i}" for i in (29, 28, 27, 26, 25)
    ]
    assert newest_first.next
    older = await carol.search("routine", limit=5, before=newest_first.next)
    assert [h.text for h in older.hits] == [f"routine line after {i}" for i in (24, 23, 22, 21, 20)]
    assert [h.text for h in (await carol.search("routine", room="#dev")).hits] == []
    await bob.send("#dev", "a routine from bob")
    from_bob = await carol.search("routine", sender="bob")
    assert [h.text for h in from_bob.hits] == ["a routine from bob"]
    await refused(carol.search("  ,;  "), "invalid_search")


async def test_search_finds_nothing_one_could_not_read(deployment: Deployment) -> None:
    ali, bob = await room_of(deployment, "#secret")
    await ali.set_private("#secret", True)
    await ali.send("#secret", "the launch codes are blue")
    await ali.private("bob", "blue is between us")
    eve = await keyed(deployment, "eve", on=1)
    assert (await eve.search("blue")).hits == ()
    await refused(eve.search("blue", room="#secret"), "private_room")
    seen_by_bob = await bob.search("blue")
    assert sorted((h.room, h.text) for h in seen_by_bob.hits) == [
        ("#secret", "the launch codes are blue"),
        ("@ali", "blue is between us"),
    ]
    with_ali = await bob.search("blue", room="@ali")
    assert [h.text for h in with_ali.hits] == ["blue is between us"]
    gone = await ali.send("#secret", "blue paint is deleted")
    await ali.delete("#secret", gone.seq)
    assert "blue paint is deleted" not in {h.text for h in (await bob.search("blue")).hits}


async def test_search_folds_persian_and_arabic_as_names_are(deployment: Deployment) -> None:
    ali, _ = await room_of(deployment)
    await ali.send("#dev", "كتابها را مي‌خوانم")  # Arabic kaf and yeh, a ZWNJ
    await ali.send("#dev", "عِلم نور است")  # with a kasra
    await ali.send("#dev", "جلسه ساعت ۱۰ است")  # Persian digits
    hits = await ali.search("کتاب")  # a prefix, typed with Persian kaf
    assert [h.text for h in hits.hits] == ["كتابها را مي‌خوانم"]
    assert [h.text for h in (await ali.search("میخوانم")).hits] == ["كتابها را مي‌خوانم"]
    assert [h.text for h in (await ali.search("علم")).hits] == ["عِلم نور است"]
    assert [h.text for h in (await ali.search("10")).hits] == ["جلسه ساعت ۱۰ است"]
    assert [h.text for h in (await ali.search("ساعت ١٠")).hits] == ["جلسه ساعت ۱۰ است"]


async def test_search_finds_no_private_message_of_an_earlier_holder_of_the_name(
    deployment: Deployment,
) -> None:
    bob = await keyed(deployment, "bob", on=0)
    dan = await deployment.connect("dan", on=1)  # no key: the name is anyone's once he goes
    await until(dan.who, ("bob", "dan"))  # (dan's server knows bob is online)
    await dan.private("bob", "my wiretransfer pin is 4711")
    await expect(bob, PrivateMessage, text="my wiretransfer pin is 4711")
    assert [h.text for h in (await dan.search("wiretransfer")).hits] == [
        "my wiretransfer pin is 4711"
    ]
    await dan.close()
    await until(bob.who, ("bob",))
    newcomer = await deployment.connect("dan", on=1)  # another person, the same name
    assert (await newcomer.search("wiretransfer")).hits == ()
    assert (await newcomer.search("wiretransfer", room="@bob")).hits == ()
    assert [h.text for h in (await bob.search("wiretransfer")).hits] == [
        "my wiretransfer pin is 4711"
    ]


async def test_verbs_sent_at_once_are_checked_one_after_another(deployment: Deployment) -> None:
    ali, bob = await room_of(deployment)
    sent = await ali.send("#dev", "one message")
    results = await asyncio.gather(
        *(bob.react("#dev", sent.seq, f"r{i}") for i in range(25)),
        return_exceptions=True,
    )
    refused = [r for r in results if isinstance(r, RequestFailed)]
    assert len(refused) == 5 and {r.code for r in refused} == {"limit_reached"}
    other = await bob.send("#dev", "another message")
    await asyncio.gather(*(ali.react("#dev", other.seq, "👍") for _ in range(2)))
    page = by_seq(await ali.history("#dev"))
    assert page[other.seq].reactions is None  # given, then taken back: a double tap is both
    mine = await ali.send("#dev", "the secret draft")
    edit, delete = await asyncio.gather(
        ali.edit("#dev", mine.seq, "the secret draft, revised"),
        ali.delete("#dev", mine.seq),
        return_exceptions=True,
    )
    assert not isinstance(delete, Exception)
    if not isinstance(edit, Exception):  # stored first: the delete took its text too
        assert edit.seq < delete.seq
    again = await refused_code(ali.delete("#dev", mine.seq))
    assert again == "no_such_message"
    events = await ali.history("#dev")
    assert all("secret" not in m.text for m in events.messages)


async def refused_code(request: Any) -> str:
    try:
        await request
    except RequestFailed as exc:
        return exc.code
    return ""
