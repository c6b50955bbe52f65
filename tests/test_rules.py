"""Who may do what: the rules as stored changes add up, and the checks of a moderation request
(plain objects, no server)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tuichat.chat import ChatError
from tuichat.chat import moderation as plan
from tuichat.chat.moderation import Person
from tuichat.chat.names import name_key
from tuichat.chat.rules import BAN, BAN_NET, IGNORE, INVITE, OP, SERVER, Rule, Rules, Sanction
from tuichat.server.admins import Admins
from tuichat.server.admins import main as admin_main

NOW = 1_700_000_000_000
OWNER = Person("Ali", "ali", "ed25519:A")
OP_BOB = Person("Bob", "bob", "ed25519:B")
EVE = Person("Eve", "eve", "ed25519:E")
ADMIN = Person("Root", "root", "ed25519:R", admin=True)
GUEST = Person("guest", "guest")


def room_rules() -> Rules:
    rules = Rules()
    rules.apply(plan.owner_rule("#dev", OWNER))
    rules.apply(Rule("#dev", OP, "bob", {"name": "Bob", "by": "Ali"}))
    return rules


def code_of(call: object, *args: object) -> str:
    with pytest.raises(ChatError) as caught:
        call(*args)  # type: ignore[operator]
    return str(caught.value.code)


def test_rules_add_up_and_a_removal_forgets_a_room_with_nothing_left() -> None:
    rules = room_rules()
    assert rules.is_op("#dev", "ali") and rules.is_op("#dev", "bob")
    assert not rules.is_op("#dev", "eve")
    assert rules.room("#dev").op_names() == ("Bob",)
    rules.apply(Rule("#dev", OP, "bob", None))
    rules.apply(Rule("#dev", "owner", "", None))
    assert "#dev" not in rules.rooms
    rules.apply(Rule("#dev", "a kind from a newer version", "x", {"y": 1}))  # passed over
    assert "#dev" not in rules.rooms


def test_a_ban_holds_by_key_and_by_the_key_that_owns_the_name_until_it_ends() -> None:
    rules = room_rules()
    ban = Sanction("Eve", "ed25519:E", "Ali", "spam", NOW + 60_000, NOW)
    rules.apply(Rule("#dev", BAN, "eve", ban.value()))
    assert rules.banned("#dev", "eve", "", NOW) == ban
    assert rules.banned("#dev", "eve2", "ed25519:E", NOW) == ban  # another name of the key
    assert rules.banned("#dev", "eve2", "", NOW) is None
    assert rules.banned("#dev", "eve", "", NOW + 60_000) is None  # over
    assert rules.banned("#other", "eve", "", NOW) is None


def test_an_address_prefix_ban_holds_for_every_address_in_it() -> None:
    rules = Rules()
    value = Sanction("203.0.113.0/24", by="Root").value()
    rules.apply(Rule(SERVER, BAN_NET, "203.0.113.0/24", value))
    rules.apply(Rule(SERVER, BAN_NET, "2001:db8::/48", value))
    assert rules.network_ban("203.0.113.77", NOW) is not None
    assert rules.network_ban("203.0.114.1", NOW) is None
    assert rules.network_ban("2001:db8:0:1::5", NOW) is not None
    assert rules.network_ban("not an address", NOW) is None
    assert rules.network_ban("::ffff:203.0.113.77", NOW) is not None  # (IPv4 as IPv6)
    rules.apply(Rule(SERVER, BAN_NET, "203.0.113.0/24", None))
    assert rules.network_ban("203.0.113.77", NOW) is None


def test_a_private_room_is_for_the_invited_the_owner_and_ops() -> None:
    rules = room_rules()
    assert rules.member("#dev", "eve")  # open
    for rule in plan.private_rules("#dev", True, OWNER, {"carol": "Carol"}, NOW):
        rules.apply(rule)
    assert rules.is_private("#dev")
    assert [rules.member("#dev", key) for key in ("ali", "bob", "carol", "eve")] == [
        True, True, True, False,
    ]  # fmt: skip
    rules.apply(Rule("#dev", INVITE, "eve", {"name": "Eve"}))
    assert rules.member("#dev", "eve")
    for rule in plan.private_rules("#dev", False, OWNER, {}, NOW):
        rules.apply(rule)
    assert not rules.is_private("#dev")


def test_ignores_are_each_users_own_and_follow_the_key() -> None:
    rules = Rules()
    rules.apply(plan.ignore_rule(rules, OWNER, EVE, True))
    assert rules.ignoring("ali", "eve") and not rules.ignoring("eve", "ali")
    assert rules.ignoring("ali", "eve2", "ed25519:E") and not rules.ignoring("ali", "eve2")
    assert rules.ignored("ali") == ("Eve",)
    assert code_of(plan.ignore_rule, rules, OWNER, OWNER, True) == "cannot_moderate"
    rules.apply(plan.ignore_rule(rules, OWNER, EVE, False))
    assert rules.ignores == {}
    rules.load([Rule("@ali", IGNORE, "bob", {"name": "Bob"})])
    assert rules.ignored("ali") == ("Bob",)


@pytest.mark.parametrize(
    ("actor", "action", "allowed"),
    [
        (OWNER, "op", True),
        (OP_BOB, "op", False),
        (OP_BOB, "kick", True),
        (OP_BOB, "ban", True),
        (OP_BOB, "invite", True),
        (EVE, "kick", False),
        (EVE, "topic", False),
        (GUEST, "mute", False),
        (ADMIN, "op", True),
        (ADMIN, "ban", True),
    ],
)
def test_who_may_ask_for_what_in_a_room(actor: Person, action: str, allowed: bool) -> None:
    rules = room_rules()
    if allowed:
        plan.check_role(rules, "#dev", actor, action)
    else:
        assert code_of(plan.check_role, rules, "#dev", actor, action) == "not_op"


def test_the_lobbys_kick_and_ban_are_the_admins_alone() -> None:
    rules = Rules()
    rules.apply(Rule("#lobby", OP, "bob", {"name": "Bob"}))
    assert code_of(plan.check_role, rules, "#lobby", OP_BOB, "ban") == "not_admin"
    plan.check_role(rules, "#lobby", OP_BOB, "mute")  # a lobby op mutes in the lobby
    plan.check_role(rules, "#lobby", ADMIN, "ban")


@pytest.mark.parametrize(
    ("actor", "target", "allowed"),
    [
        (OP_BOB, OWNER, False),  # nobody but an admin acts on the owner
        (OP_BOB, OP_BOB, False),  # nor on themself
        (OP_BOB, Person("Cy", "cy", "k", admin=True), False),  # nobody on an admin
        (OP_BOB, EVE, True),
        (OWNER, OP_BOB, True),  # the owner acts on an op
        (ADMIN, OWNER, True),
    ],
)
def test_whom_a_moderator_can_reach(actor: Person, target: Person, allowed: bool) -> None:
    rules = room_rules()
    rules.apply(Rule("#dev", OP, "cy", {"name": "Cy"}))
    if allowed:
        plan.check_target(rules, "#dev", actor, target)
    else:
        assert code_of(plan.check_target, rules, "#dev", actor, target) == "cannot_moderate"
    other_op = Person("Cy", "cy")
    assert code_of(plan.check_target, rules, "#dev", OP_BOB, other_op) == "cannot_moderate"
    plan.check_target(rules, "#dev", OP_BOB, OWNER, undoing=True)  # (an unmute of the owner)
    with pytest.raises(ChatError):  # nobody lifts their own sanction
        plan.check_target(rules, "#dev", OP_BOB, OP_BOB, undoing=True)


def test_durations_and_the_sentence_a_banned_user_gets() -> None:
    assert plan.until(NOW, 0) == 0
    assert plan.until(NOW, 90) == NOW + 90_000
    assert plan.until(NOW, plan.MAX_DURATION + 1) == 0  # longer: until undone
    assert code_of(plan.until, NOW, -1) == "bad_message"
    ban = Sanction("Eve", by="Ali", reason="spam", until=NOW + 2 * 3600_000 - 5)
    assert plan.sanction_sentence("banned", "from #dev", ban, NOW) == (
        "you are banned from #dev by Ali for 2 more hours: spam"
    )
    assert plan.describe_until(NOW + 1500, NOW) == " for 2 more seconds"
    assert plan.describe_until(0, NOW) == ""


def test_an_unban_lifts_what_the_persons_key_was_banned_by() -> None:
    rules = room_rules()
    ban = Sanction("Eve", "ed25519:E", "Ali").value()
    rules.apply(Rule("#dev", BAN, "eve-old-name", ban))
    lifted = plan.moderation_rules(rules, "#dev", "unban", OWNER, EVE, "", 0, NOW)
    assert lifted == (Rule("#dev", BAN, "eve-old-name", None),)
    nobody = Person("Zed", "zed")
    assert code_of(
        plan.moderation_rules, rules, "#dev", "unban", OWNER, nobody, "", 0, NOW
    ) == "no_such_user"  # fmt: skip
    banned = plan.moderation_rules(rules, "#dev", "ban", OWNER, EVE, "why", 0, NOW)
    assert [(r.kind, r.value is None) for r in banned] == [(BAN, False), (INVITE, True), (OP, True)]


def test_a_room_holds_a_bounded_number_of_bans(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(plan, "MAX_ENTRIES", 2)
    rules = room_rules()
    for key in ("x1", "x2"):
        rules.apply(Rule("#dev", BAN, key, Sanction(key).value()))
    third = Person("X3", "x3")
    assert code_of(
        plan.moderation_rules, rules, "#dev", "ban", OWNER, third, "", 0, NOW
    ) == "limit_reached"  # fmt: skip
    plan.moderation_rules(rules, "#dev", "ban", OWNER, Person("X1", "x1"), "again", 0, NOW)


def test_address_prefixes_are_written_one_way_and_have_a_slash() -> None:
    assert plan.network("203.0.113.9/24") == "203.0.113.0/24"
    assert plan.network("192.0.2.1/32") == "192.0.2.1/32"
    assert plan.network("192.0.2.1") is None  # a name (names may look like addresses)
    assert plan.network("ali/8") is None


# --- admins -------------------------------------------------------------------


def test_an_admin_needs_a_proved_key_and_the_file_is_read_again_when_it_changes(
    tmp_path: Path,
) -> None:
    path = tmp_path / "admins"
    path.write_text("# the admins\nroot  # the first\ned25519:K\n\n", encoding="utf-8")
    admins = Admins(path=path)
    assert admins.holds("root", "ed25519:X") and admins.holds("anyone", "ed25519:K")
    assert not admins.holds("root", "")  # a name without its key proved is nobody's admin
    assert not admins.reload()  # unchanged
    path.write_text("someone-else\n", encoding="utf-8")
    os.utime(path, ns=(1, 1))  # (a different stamp, however fast the write)
    assert admins.reload()
    assert not admins.holds("root", "ed25519:X")
    assert admins.holds(name_key("someone-else"), "ed25519:Y")  # (by the name's key)
    path.unlink()
    assert admins.reload() and not admins.names


def test_tuichat_server_admin_edits_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = str(tmp_path / "deep" / "admins")
    assert admin_main(["add", "ali", "ed25519:K", "--admins", path]) == 0
    assert admin_main(["add", "ali", "--admins", path]) == 0  # once is enough
    assert admin_main(["remove", "ed25519:K", "--admins", path]) == 0
    capsys.readouterr()
    assert admin_main(["list", "--admins", path]) == 0
    assert capsys.readouterr().out == "ali\n"
    assert admin_main(["add", "no spaces", "--admins", path]) == 2
    assert "not allowed" in capsys.readouterr().err


def test_undoing_needs_something_to_undo() -> None:
    rules = room_rules()
    for action in ("deop", "uninvite", "unban", "unmute"):
        assert code_of(
            plan.moderation_rules, rules, "#dev", action, OWNER, EVE, "", 0, NOW
        ) == "no_such_user", action  # fmt: skip
    lifted = plan.moderation_rules(rules, "#dev", "deop", OWNER, OP_BOB, "", 0, NOW)
    assert lifted == (Rule("#dev", OP, "bob", None),)
