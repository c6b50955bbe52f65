"""Rooms larger than a member list: lists come in pages, presence as counts (every deployment).

A server names at most `member_list` members at once: `welcome`, `room_state` and `user_list`
hold a first page and say how many there are; `who` with `after` gives the next pages; and in
such a room presence says how many are in it, not who came or went. The servers here list 3.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.deployments import KINDS, Deployment, opened
from tests.helpers import expect, until
from tests.test_contract import events_while, presence_of
from tuichat.chat.names import sort_key
from tuichat.client import ChatClient
from tuichat.protocol import Joined, Left, Presence

LIST = 3
NAMES = ("dara", "Bahar", "cyrus", "ava", "Ela")


@pytest.fixture(name="crowded", params=KINDS, ids=KINDS)
async def crowded_fixture(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[Deployment]:
    """A deployment whose servers list `LIST` members at once."""
    async with opened(request.param, request.config, tmp_path, member_list=LIST) as deployment:
        yield deployment


async def crowd(deployment: Deployment, names: tuple[str, ...] = NAMES) -> list[ChatClient]:
    """`names` online, on both servers in turn; returned once both servers count them all."""
    clients = [await deployment.connect(name, on=i % 2) for i, name in enumerate(names)]
    for client in clients[:2]:  # (one on each server)
        await until(lambda c=client: c.who(), tuple(sorted(names, key=sort_key)))
    return clients


async def test_a_welcome_lists_a_first_page_and_says_how_many_are_online(
    crowded: Deployment,
) -> None:
    await crowd(crowded)
    late = await crowded.connect("zed", on=1)
    welcome = late.welcome
    assert welcome is not None and welcome.limits is not None
    assert welcome.limits["member_list"] == LIST
    assert welcome.users == ("ava", "Bahar", "cyrus")  # the first names, in the list's order
    assert welcome.members == 6
    assert late.members["#lobby"] == 6


async def test_who_pages_through_every_member_once_in_order(crowded: Deployment) -> None:
    first, *_ = await crowd(crowded)
    page = await first.who_page()
    assert (page.users, page.members, page.more) == (("ava", "Bahar", "cyrus"), 5, True)
    rest = await first.who_page(after=page.users[-1])
    assert (rest.users, rest.members, rest.more) == (("dara", "Ela"), 5, False)
    small = await first.who_page(after="Bahar", limit=1)
    assert (small.users, small.more) == (("cyrus",), True)
    assert await first.who() == ("ava", "Bahar", "cyrus", "dara", "Ela")  # every page, once


async def test_a_room_past_the_list_gives_its_joiner_a_first_page_and_the_count(
    crowded: Deployment,
) -> None:
    clients = await crowd(crowded)
    for client in clients:
        await client.join("#big")
    for client in clients[:2]:  # (one on each server)
        await until(lambda c=client: c.who("#big"), tuple(sorted(NAMES, key=sort_key)))
    joiner = await crowded.connect("yas", on=1)
    state = await joiner.join("#big")
    assert (state.users, state.members) == (("ava", "Bahar", "cyrus"), 6)


async def test_presence_in_a_room_past_the_list_is_a_count_and_names_nobody(
    crowded: Deployment,
) -> None:
    clients = await crowd(crowded)
    watcher = clients[0]
    newcomer = await crowded.connect("yas", on=1)
    count = await expect(watcher, Presence, room="#lobby", members=6)
    assert (count.joined, count.left) == ((), ())
    await newcomer.close()
    count = await expect(watcher, Presence, room="#lobby", members=5)
    assert (count.joined, count.left) == ((), ())


async def test_a_room_within_the_list_still_names_who_comes_and_goes(
    crowded: Deployment,
) -> None:
    ava = await crowded.connect("ava", on=0)
    bahar = await crowded.connect("bahar", on=1)
    await until(ava.who, ("ava", "bahar"))
    cyrus = await crowded.connect("cyrus", on=1)
    await expect(ava, Joined, room="#lobby", name="cyrus")
    await cyrus.close()
    events = await events_while(ava, lambda es: bool(presence_of("cyrus", "#lobby", es)))
    assert presence_of("cyrus", "#lobby", events) == [("left", "quit")]
    assert not any(isinstance(e, Left) and e.name == "bahar" for e in events)
    await bahar.close()
