"""Moderation in the Redis broker (a real Redis, and the session's Redis Cluster): steps stored
and heard by every server in order, rules read at start and again after a lost link, the
moderation log, private messages hidden from their target, and rooms a claim made."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from tests.deployments import SHARED_CLUSTER
from tests.helpers import TIMEOUT, until
from tests.redis_cluster import RedisCluster
from tests.redis_kinds import RedisStore
from tests.redis_server import RedisServer
from tests.test_redis_faults import cut_off, each_node, out_of_memory, signing_in_as
from tuichat.chat.rules import BAN, OP, TOPIC, ModEvent, Rule
from tuichat.protocol import ModEntry, PrivateMessage
from tuichat.server.broker import (
    BrokerUnavailable,
    PrivatePost,
    PublishedPrivate,
    RoomClaim,
)
from tuichat.server.broker.redis import RedisBroker, RedisLink, broker, feeds, keys
from tuichat.server.broker.redis.entries import event_payload, rule_field, rule_value
from tuichat.server.broker.redis.feeds import ModerationFeed

NOW = 1_700_000_000_000


class Recorder:
    """Records what a broker hands back, in order."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []
        self._changed = asyncio.Event()
        self.held: dict[tuple[str, str, str], Rule] = {}
        """The rules as a server holds them: the last full set, and each step's since."""

    def record(self, kind: str, value: Any) -> None:
        self.events.append((kind, value))
        self._changed.set()

    def on_rules(self, rules: list[Rule]) -> None:
        self.held = {(r.scope, r.kind, r.subject): r for r in rules}
        self.record("rules", ordered(rules))

    def on_moderation(self, event: ModEvent) -> None:
        for rule in event.rules:
            self.held[rule.scope, rule.kind, rule.subject] = rule
            if rule.value is None:
                del self.held[rule.scope, rule.kind, rule.subject]
        self.record("moderation", event)

    def rules(self) -> list[Rule]:
        return ordered(list(self.held.values()))

    def on_private(self, message: PrivateMessage, sender_key: str, target_key: str) -> None:
        self.record("private", (message.pid, sender_key, target_key))

    def is_here(self, user_key: str) -> bool:
        return False

    def __getattr__(self, name: str) -> object:  # the rest of BrokerHandler: nothing to do
        return lambda *args: None

    def of(self, kind: str) -> list[Any]:
        return [value for k, value in self.events if k == kind]

    async def until(self, kind: str, count: int) -> None:
        """Wait until `count` events of `kind` are recorded."""
        async with asyncio.timeout(TIMEOUT):
            while len(self.of(kind)) < count:
                self._changed.clear()
                await self._changed.wait()


def ordered(rules: list[Rule] | tuple[Rule, ...]) -> list[Rule]:
    return sorted(rules, key=lambda r: (r.scope, r.kind, r.subject))


def step(
    number: int, room: str = "#dev", rules: tuple[Rule, ...] = (), *, logged: bool = True,
    action: str = "ban",
) -> ModEvent:  # fmt: skip
    return ModEvent(
        f"e{number}", room, action, f"user{number}", "ali", f"reason {number}", NOW + 60_000,
        NOW + number, rules, f"key{number}", "ali-key", logged,
    )  # fmt: skip


def ban(room: str, key: str, on: bool = True) -> Rule:
    return Rule(room, BAN, key, {"name": key, "by": "ali", "until": 0} if on else None)


@pytest.fixture(params=["redis", "redis-cluster"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[RedisStore]:
    """A fresh redis-server, or the session's Redis Cluster emptied."""
    if request.param == "redis":
        server = RedisServer()
        await server.start()
        yield server
        await server.stop()
    else:
        yield await SHARED_CLUSTER.get(request.config)


Start = Callable[..., Awaitable[tuple[RedisBroker, Recorder]]]


@pytest.fixture
async def start(store: RedisStore) -> AsyncIterator[Start]:
    """Start a broker (a server) on `store`, signing in as the ACL user `user` if given; all
    are stopped after the test."""
    started: list[RedisBroker] = []

    async def _start(name: str, user: str = "") -> tuple[RedisBroker, Recorder]:
        url = signing_in_as(store, user) if user else store.url
        started.append(RedisBroker(RedisLink(url, isinstance(store, RedisCluster)), name, 100))
        recorder = Recorder()
        await started[-1].start(recorder)  # type: ignore[arg-type]
        return started[-1], recorder

    yield _start
    for each in started:
        await each.stop()


async def moderate(on: RedisBroker, recorder: Recorder, event: ModEvent) -> None:
    """Store `event` through `on`; its answer is recorded (as "done") where it came."""
    answered: asyncio.Future[Exception | None] = asyncio.get_running_loop().create_future()

    def done(result: Exception | None) -> None:
        recorder.record("done", event.id)
        answered.set_result(result)

    on.moderate(event, done)
    assert await answered is None


async def test_a_step_is_carried_out_on_every_server_in_order_and_its_rules_stay(
    start: Start,
) -> None:
    (a, heard_a), (_, heard_b) = await start("a"), await start("b")
    assert heard_a.events == heard_b.events == [("rules", [])]
    steps = [
        step(1, rules=(ban("#dev", "bob"),)),
        step(2, rules=(Rule("#dev", OP, "sara", {"name": "Sara"}),), action="op"),
        step(3, room="", rules=(ban("", "omid"),)),
        step(4, rules=(ban("#dev", "bob", on=False),), action="unban"),
        step(5, rules=(Rule("#dev", TOPIC, "", {"text": "hi", "by": "ali", "ts": NOW}),)),
    ]
    for event in steps[:2]:
        await moderate(a, heard_a, event)
    # the server that asked carries it out right after its answer, in the same call
    assert heard_a.events[1:] == [
        ("done", "e1"), ("moderation", steps[0]), ("done", "e2"), ("moderation", steps[1]),
    ]  # fmt: skip
    answers = [asyncio.get_running_loop().create_future() for _ in steps[2:]]
    for event, answer in zip(steps[2:], answers, strict=True):
        a.moderate(event, answer.set_result)  # all at once: Redis stores them in this order
    assert await asyncio.gather(*answers) == [None] * 3
    await heard_b.until("moderation", 5)
    assert heard_a.of("moderation") == heard_b.of("moderation") == steps  # (all of each step)

    c, heard_c = await start("c")  # a server started later reads them all
    assert heard_c.events == [
        (
            "rules",
            ordered([steps[2].rules[0], steps[1].rules[0], steps[4].rules[0]]),
        )
    ]
    await moderate(c, heard_c, step(6, rules=(ban("#dev", "omid"),)))
    for recorder in (heard_a, heard_b):
        await recorder.until("moderation", 6)


async def test_steps_of_two_servers_are_heard_in_the_order_stored(start: Start) -> None:
    (a, heard_a), (b, heard_b) = await start("a"), await start("b")
    answers = []
    for number in range(1, 11):
        answer = asyncio.get_running_loop().create_future()
        answers.append(answer)
        (a if number % 2 else b).moderate(step(number), answer.set_result)
    assert await asyncio.gather(*answers) == [None] * 10
    await heard_a.until("moderation", 10)
    await heard_b.until("moderation", 10)
    stored = [f"e{int(entry.name[4:])}" for entry in reversed(await a.mod_log(None, 0, 10))]
    for recorder, own in ((heard_a, 1), (heard_b, 0)):
        heard = [event.id for event in recorder.of("moderation")]
        others = [i for i in stored if int(i[1:]) % 2 != own]
        assert [i for i in heard if i in others] == others  # the other's steps, as stored
        assert [i for i in heard if i not in others] == [i for i in stored if i not in others]


@pytest.fixture
async def acl_user(store: RedisStore) -> AsyncIterator[str]:
    """An ACL user `b` (its password: `b`) on every node, until the test's servers stopped."""
    for node in each_node(store):
        await node.execute_command("ACL", "SETUSER", "b", "on", ">b", "~*", "&*", "+@all")
        await node.aclose()
    yield "b"
    for node in each_node(store):
        await node.execute_command("ACL", "DELUSER", "b")
        await node.aclose()


@pytest.mark.parametrize("noticed", ["reconnect", "check"])
async def test_rules_changed_while_a_server_was_cut_off_are_read_again_once_it_is_back(
    store: RedisStore, acl_user: str, start: Start, noticed: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whether the link says it subscribed again, or redis-py did it unannounced and the next
    check finds a step not heard of."""
    monkeypatch.setattr(feeds, "CHECK_EVERY", 3600 if noticed == "reconnect" else 0.05)
    (a, heard_a), (b, heard_b) = await start("a"), await start("b", user=acl_user)
    kept, dropped = ban("#dev", "sara"), ban("#dev", "bob")
    await moderate(a, heard_a, step(1, rules=(dropped,)))
    await heard_b.until("moderation", 1)
    async with cut_off(store, acl_user):
        await moderate(a, heard_a, step(2, rules=(kept, ban("#dev", "bob", on=False))))
    if noticed == "reconnect":
        for hook in b.link.on_reconnect:  # as the link does once it subscribed again
            await hook()
    await heard_b.until("rules", 2)
    assert heard_b.of("rules")[-1] == [kept]

    async def listening() -> int:  # b's subscription is made again (by redis-py, unannounced)
        answer = await a.link.redis.execute_command("PUBSUB", "SHARDNUMSUB", keys.MODERATION)
        return int(answer[1])

    await until(listening, 2)
    await moderate(a, heard_a, step(3, rules=(ban("#dev", "omid"),)))  # and heard again
    await heard_b.until("moderation", 2)
    assert [event.id for event in heard_b.of("moderation")] == ["e1", "e3"]


async def test_a_step_redis_cannot_store_is_refused_and_nothing_of_it_stays(
    store: RedisStore, start: Start
) -> None:
    (a, heard_a), (_, heard_b) = await start("a"), await start("b")
    answer: asyncio.Future[Exception | None] = asyncio.get_running_loop().create_future()
    async with out_of_memory(store):
        a.moderate(step(1, rules=(ban("#dev", "bob"),)), answer.set_result)
        assert isinstance(await asyncio.wait_for(answer, TIMEOUT), BrokerUnavailable)
    assert heard_a.of("moderation") == []
    assert await a.mod_log(None, 0, 10) == []
    await moderate(a, heard_a, step(2))  # all is well after
    await heard_b.until("moderation", 1)
    assert heard_b.of("moderation")[0].id == "e2"
    _, heard_c = await start("c")
    assert heard_c.of("rules") == [[]]


async def test_the_moderation_log_pages_newest_first_by_room(start: Start) -> None:
    (a, heard_a), (b, _) = await start("a"), await start("b")
    rooms = ["#dev", "#ops", "", "#dev", "#dev", "", "#ops", "#dev"]
    for number, room in enumerate(rooms, 1):
        await moderate(a, heard_a, step(number, room=room))
    await moderate(a, heard_a, step(99, logged=False, action="ignore"))  # not in the log

    everything = await b.mod_log(None, 0, 50)
    assert names(everything) == [8, 7, 6, 5, 4, 3, 2, 1]
    assert everything[0] == ModEntry(
        everything[0].id, NOW + 8, "#dev", "ban", "user8", "ali", "reason 8", NOW + 60_000
    )
    assert [e.id for e in everything] == sorted((e.id for e in everything), reverse=True)
    assert names(await b.mod_log("#dev", 0, 50)) == [8, 5, 4, 1]
    assert await b.mod_log("#dev", 0, 50) == [e for e in everything if e.room == "#dev"]
    assert names(await b.mod_log("", 0, 50)) == [6, 3]
    assert names(await b.mod_log("#nowhere", 0, 50)) == []
    first = await b.mod_log("#dev", 0, 2)
    assert names(first) == [8, 5]
    assert names(await b.mod_log("#dev", first[-1].id, 2)) == [4, 1]
    assert names(await b.mod_log("#dev", first[-1].id, 3)) == [4, 1]  # (and no more)
    assert names(await b.mod_log(None, everything[2].id, 3)) == [5, 4, 3]


def names(entries: list[ModEntry]) -> list[int]:
    return [int(entry.name[4:]) for entry in entries]


async def test_a_rooms_log_is_its_own_however_many_entries_other_rooms_add(start: Start) -> None:
    """Rooms made by the hundred (each logs its `create`) bury no room's entries: a room's log
    is read from a stream of its own, not looked for in the whole log."""
    a, heard_a = await start("a")
    await moderate(a, heard_a, step(1))
    await moderate(a, heard_a, step(2, room=""))
    answers = [asyncio.get_running_loop().create_future() for _ in range(300)]
    for number, answer in enumerate(answers, 100):
        a.moderate(step(number, room=f"#r{number}", action="create"), answer.set_result)
    assert await asyncio.gather(*answers) == [None] * len(answers)
    await moderate(a, heard_a, step(3))
    assert names(await a.mod_log("#dev", 0, 2)) == [3, 1]
    newest = await a.mod_log("#dev", 0, 1)
    assert names(await a.mod_log("#dev", newest[0].id, 2)) == [1]  # (a page of one: no `more`)
    assert names(await a.mod_log("", 0, 5)) == [2]
    assert names(await a.mod_log("#r250", 0, 5)) == [250]
    assert len(await a.mod_log(None, 0, 1000)) == 303
    assert await a.link.redis.xlen(keys.mod_log_key("#dev")) == 2  # (its own entries only)

    # the whole log's stream and its counter lost: a room's entries keep their order
    await a.link.redis.delete(keys.MOD_LOG, keys.MOD_LOG_ID)
    await moderate(a, heard_a, step(4))
    assert names(await a.mod_log("#dev", 0, 5)) == [4, 3, 1]
    ids = [entry.id for entry in await a.mod_log("#dev", 0, 5)]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 3
    assert names(await a.mod_log(None, 0, 5)) == [4]


async def test_each_rooms_log_is_bounded_on_its_own(
    store: RedisStore, start: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(broker, "MOD_LOG_KEPT_PER_ROOM", 3)
    nodes = each_node(store)
    try:
        for node in nodes:  # (a stream is trimmed in whole blocks: blocks of one entry)
            await node.config_set("stream-node-max-entries", "1")
        a, heard_a = await start("a")
        for number in range(1, 7):
            await moderate(a, heard_a, step(number))
        await moderate(a, heard_a, step(7, room="#ops"))
        assert names(await a.mod_log("#dev", 0, 50)) == [6, 5, 4]
        assert names(await a.mod_log("#ops", 0, 50)) == [7]
        assert names(await a.mod_log(None, 0, 50)) == [7, 6, 5, 4, 3, 2, 1]
    finally:
        for node in nodes:
            await node.config_set("stream-node-max-entries", "100")
            await node.aclose()


class Held:
    """What a server hears on the moderation channel, held back while `gate` is shut (then
    handed on), and counted once handed on."""

    def __init__(self, on: RedisBroker) -> None:
        self.gate = asyncio.Event()
        self.gate.set()
        self.handled = 0
        self._changed = asyncio.Event()
        real = on.link._handlers[keys.MODERATION]

        async def handle(data: bytes) -> None:
            await self.gate.wait()
            await real(data)
            self.handled += 1
            self._changed.set()

        on.link._handlers[keys.MODERATION] = handle

    async def until(self, count: int) -> None:
        async with asyncio.timeout(TIMEOUT):
            while self.handled < count:
                self._changed.clear()
                await self._changed.wait()


async def nothing() -> None:
    pass


def lose_next_answer(
    on: RedisBroker, meanwhile: Callable[[], Awaitable[None]], *, again: bool
) -> None:
    """Redis's answer to the next command `on` sends is lost; once `meanwhile` is done, the
    command is sent again (`again`, as the link does after a lost answer), or given up on."""
    link = on.link
    real = link.enqueue

    def enqueue(add: Any, done: Any = None, *, retry: bool = True) -> None:
        link.enqueue = real  # type: ignore[method-assign]

        def lost(result: Any) -> None:
            async def instead() -> None:
                await meanwhile()
                if again:
                    real(add, done, retry=retry)
                else:
                    done(ConnectionError("the answer was lost"))

            link.spawn(instead())

        real(add, lost, retry=retry)

    link.enqueue = enqueue  # type: ignore[method-assign]


@pytest.mark.parametrize("heard", ["before", "after"])
async def test_a_step_sent_again_is_carried_out_once_where_it_came_from(
    start: Start, heard: str
) -> None:
    """Its answer lost, the link sends the step again, and Redis knows it (it is stored once):
    the server that asked carries it out once, whether it heard its publication before the
    answer or after; and so when the server itself sends the same step again."""
    (a, heard_a), (b, heard_b) = await start("a"), await start("b")
    held = Held(a)
    event = step(1, rules=(ban("#dev", "bob"),))
    if heard == "before":
        lose_next_answer(a, lambda: held.until(1), again=True)
    else:
        held.gate.clear()
        lose_next_answer(a, nothing, again=True)
    await moderate(a, heard_a, event)
    assert heard_a.events[1:] == [("done", "e1"), ("moderation", event)]
    held.gate.set()
    await held.until(1)
    await moderate(a, heard_a, event)  # the same step, again: answered, and nothing more
    await moderate(a, heard_a, step(2))
    await held.until(2)
    await moderate(b, heard_b, step(3))
    await heard_a.until("moderation", 3)
    assert heard_a.of("done") == ["e1", "e1", "e2"]
    assert [e.id for e in heard_a.of("moderation")] == ["e1", "e2", "e3"]
    assert [e.id for e in heard_b.of("moderation")] == ["e1", "e2", "e3"]
    assert names(await a.mod_log(None, 0, 10)) == [3, 2, 1]
    assert heard_a.rules() == heard_b.rules() == [ban("#dev", "bob")]


@pytest.mark.parametrize("heard", ["before", "after"])
async def test_a_step_stored_though_its_answer_never_came_is_carried_out_where_it_came_from(
    start: Start, heard: str
) -> None:
    """The link gave up on the answer, but Redis stored the step: heard before, it is answered
    as stored; heard after its refusal, it is carried out then (every server has its rules)."""
    (a, heard_a), (_, heard_b) = await start("a"), await start("b")
    held = Held(a)
    event = step(1, rules=(ban("#dev", "bob"),))
    answer: asyncio.Future[Exception | None] = asyncio.get_running_loop().create_future()
    if heard == "before":
        lose_next_answer(a, lambda: held.until(1), again=False)
        a.moderate(event, answer.set_result)
        assert await answer is None  # its publication says it was stored
        assert heard_a.of("moderation") == [event]
    else:
        held.gate.clear()
        lose_next_answer(a, nothing, again=False)
        a.moderate(event, answer.set_result)
        assert isinstance(await answer, BrokerUnavailable)
        assert heard_a.of("moderation") == []
        held.gate.set()
        await heard_a.until("moderation", 1)
        assert heard_a.of("moderation") == [event]
    await moderate(a, heard_a, step(2))
    await heard_b.until("moderation", 2)
    assert [e.id for e in heard_a.of("moderation")] == ["e1", "e2"]
    assert heard_a.rules() == heard_b.rules() == [ban("#dev", "bob")]


async def test_a_step_overtaken_by_a_newer_one_is_heard_and_the_rules_end_as_stored(
    start: Start,
) -> None:
    """B bans bob and sara, then A unbans bob, and A has its own answer before it hears B's
    ban: the ban is handed on all the same (it happened) with only the rule that still holds,
    and every server ends with the rules Redis has, in every full read too."""
    (a, heard_a), (b, heard_b) = await start("a"), await start("b")
    held = Held(a)
    held.gate.clear()
    banned = step(1, rules=(ban("#dev", "bob"), ban("#dev", "sara")))
    await moderate(b, heard_b, banned)
    unbanned = step(2, rules=(ban("#dev", "bob", on=False),), action="unban")
    await moderate(a, heard_a, unbanned)
    held.gate.set()
    await held.until(2)
    assert heard_a.of("moderation") == [unbanned, step(1, rules=(ban("#dev", "sara"),))]
    await heard_b.until("moderation", 2)
    assert heard_b.of("moderation") == [banned, unbanned]
    _, heard_c = await start("c")
    assert heard_a.rules() == heard_b.rules() == heard_c.rules() == [ban("#dev", "sara")]
    await a.moderation.load()  # (as after a lost link)
    assert heard_a.of("rules")[-1] == [ban("#dev", "sara")]


def hidden(sender: str, target: str, client_id: str = "", text: str = "") -> PrivatePost:
    return PrivatePost(
        sender, sender, target, target, text or f"to {target}", False, client_id, NOW, hidden=True
    )


def plain(sender: str, target: str, text: str = "") -> PrivatePost:
    return PrivatePost(sender, sender, target, target, text or f"to {target}", False, "", NOW)


async def send(on: RedisBroker, post: PrivatePost) -> PublishedPrivate:
    done: asyncio.Future[PublishedPrivate | Exception] = asyncio.get_running_loop().create_future()
    on.publish_private(post, done.set_result)
    result = await done
    assert isinstance(result, PublishedPrivate), result
    return result


def texts(messages: list[PrivateMessage]) -> list[str]:
    return [message.text for message in messages]


async def test_a_hidden_private_message_is_kept_for_its_sender_only(start: Start) -> None:
    (a, heard_a), (b, heard_b) = await start("a"), await start("b")
    await send(a, plain("bob", "ali", "hello ali"))
    sent = await send(a, hidden("ali", "bob", "c1", "ignored 1"))
    assert sent.new
    retried = await send(b, hidden("ali", "bob", "c1", "ignored 1"))  # a retry, on another server
    assert not retried.new and retried.message.pid == sent.message.pid
    await send(a, hidden("ali", "bob", text="ignored 2"))
    await send(a, plain("ali", "bob", "seen"))
    await send(a, hidden("ali", "bob", text="ignored 3"))
    await heard_b.until("private", 5)
    for recorder in (heard_a, heard_b):  # every server hands it to the sender's sessions only
        assert [target for _, _, target in recorder.of("private")] == ["ali", "", "", "bob", ""]
    assert texts(await b.conversation("ali", "bob", 0, 10)) == [
        "hello ali", "ignored 1", "ignored 2", "seen", "ignored 3",
    ]  # fmt: skip
    assert texts(await b.conversation("bob", "ali", 0, 10)) == ["hello ali", "seen"]
    assert texts(await b.conversation("bob", "ali", 0, 1)) == ["seen"]
    newest = await b.conversation("ali", "bob", 0, 1)
    assert texts(await b.conversation("bob", "ali", newest[0].pid, 1)) == ["seen"]
    assert texts(await b.privates("bob", 0, 10)) == ["hello ali", "seen"]
    assert texts(await b.unread_privates("bob", 10)) == ["seen"]
    assert texts(await b.privates("ali", 0, 10)) == [
        "hello ali", "ignored 1", "ignored 2", "seen", "ignored 3",
    ]  # fmt: skip


async def test_a_claim_says_whether_it_made_the_room(start: Start) -> None:
    a, _ = await start("a")

    async def claim(room: str, key: str) -> RoomClaim:
        done: asyncio.Future[RoomClaim | Exception] = asyncio.get_running_loop().create_future()
        a.claim_room(room, key, done.set_result)
        result = await done
        assert isinstance(result, RoomClaim), result
        return result

    assert await claim("#new", "#new") == RoomClaim("#new", True, new=True)
    assert await claim("#new", "#new") == RoomClaim("#new", True, new=False)
    assert await claim("#New", "#new") == RoomClaim("#new", True, new=False)  # a look-alike


# --- the order of what a server takes, without Redis --------------------------


class FakeLink:
    """Just enough of a `RedisLink` for a `ModerationFeed`: a full read answers `answers` in
    turn, and runs `during` (if set) before it answers."""

    def __init__(self) -> None:
        self.answers: list[tuple[int, list[bytes]]] = []
        self.during: Callable[[], Awaitable[None]] | None = None
        self.closing = False

    async def run_script(self, *args: Any) -> tuple[int, list[bytes]]:
        if self.during is not None:
            await self.during()
        return self.answers.pop(0)


def stored(*rules: Rule) -> list[bytes]:
    return [x.encode() for rule in rules for x in (rule_field(rule), rule_value(rule))]


def published(version: int, origin: str, event: ModEvent) -> bytes:
    return f"{version}:".encode() + event_payload(origin, event)


async def fed() -> tuple[ModerationFeed, FakeLink, Recorder]:
    link = FakeLink()
    feed = ModerationFeed(link, "a")  # type: ignore[arg-type]
    recorder = Recorder()
    feed.handler = recorder  # type: ignore[assignment]
    link.answers.append((3, stored(ban("#dev", "bob"))))
    await feed.load()
    return feed, link, recorder


async def test_a_rule_overtaken_here_by_a_newer_one_is_not_taken() -> None:
    feed, _, recorder = await fed()
    mine = step(5, rules=(ban("#dev", "bob", on=False),))
    feed.sending(mine)
    version = feed.answered(mine, 5)  # our unban came back before the other server's older ban
    assert version == 5
    feed.carry_out(mine, version)
    older = step(4, rules=(ban("#dev", "bob"), ban("#dev", "sara")))
    await feed.on_publication(published(4, "b", older))
    assert recorder.of("moderation") == [mine, step(4, rules=(ban("#dev", "sara"),))]
    await feed.on_publication(published(5, "a", mine))  # ours: carried out already
    newer = step(6, rules=(ban("#dev", "bob"),))
    await feed.on_publication(published(6, "b", newer))
    assert recorder.of("moderation") == [mine, step(4, rules=(ban("#dev", "sara"),)), newer]


async def test_a_full_read_keeps_what_was_taken_after_it_and_a_lost_store_starts_over() -> None:
    feed, link, recorder = await fed()
    newer = step(7, rules=(ban("#dev", "sara"),))

    async def heard_meanwhile() -> None:  # stored after the read, heard before its answer
        await feed.on_publication(published(7, "b", newer))

    link.during = heard_meanwhile
    link.answers.append((6, stored(ban("#dev", "bob"), ban("#dev", "omid"))))
    await feed.load()
    assert recorder.of("rules")[-1] == [ban("#dev", "bob"), ban("#dev", "omid"), newer.rules[0]]
    late = step(5, rules=(ban("#dev", "omid", on=False),))  # older than the read: in it already
    await feed.on_publication(published(5, "b", late))
    assert recorder.of("moderation")[-1] == step(5)
    link.during = None
    link.answers.append((0, []))  # Redis lost everything: the rules are what it has now
    await feed.load()
    assert recorder.of("rules")[-1] == []
    fresh = step(1, rules=(ban("#dev", "sara"),))
    await feed.on_publication(published(1, "b", fresh))
    assert recorder.of("moderation")[-1] == fresh


async def test_a_lost_publication_is_made_up_for_by_a_full_read(
    start: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(feeds, "CHECK_EVERY", 0.05)
    b, heard_b = await start("b")
    rule = ban("#dev", "bob")
    await b.link.redis.hset(keys.RULES, rule_field(rule), rule_value(rule))  # its notice lost
    await b.link.redis.incr(keys.RULES_VERSION)
    await heard_b.until("rules", 2)
    assert heard_b.of("rules")[-1] == [rule]
