"""Persian and Arabic names: the ZWNJ (half-space), tatweel and harakat, and look-alike letters
and digits that must not let two people pass for one (PROTOCOL.md §17).

The rules are tested as functions; what a user notices (a look-alike name is taken while its
twin is online, on every broker and across two servers; the name is shown as typed) through
real servers. Mentions are the client's (`tuichat.client.unread`).
"""

from __future__ import annotations

import dataclasses
import itertools
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.deployments import Deployment, deployment_fixture
from tests.helpers import expect, until
from tests.raw import Raw
from tuichat.chat.errors import ChatError
from tuichat.chat.names import FOLD, check_name, name_keys, rekey
from tuichat.client import ChatClient, SigningKey
from tuichat.client.unread import Unread, fold, mentions
from tuichat.protocol import Error, Event, Hello, Message, PrivateMessage, Welcome

__all__ = ["deployment_fixture"]  # the `deployment` fixture, for pytest to find

ZWNJ = "\u200c"
TATWEEL = "\u0640"
FATHA, SHADDA, KASRA = "\u064e", "\u0651", "\u0650"

LOOK_ALIKES = [
    ("کامران", "كامران"),  # KEHEH, ARABIC KAF
    ("میلاد", "ميلاد"),  # FARSI YEH, ARABIC YEH
    ("ali۱", "ali١"),  # noqa: RUF001  (PERSIAN and ARABIC-INDIC DIGIT ONE)
    ("ali1", "ali۱"),  # noqa: RUF001
    ("سینا", "سىنا"),  # FARSI YEH, ALEF MAKSURA
    ("علی‌رضا", "علیرضا"),  # with and without a ZWNJ
]
"""Names that clash now (each second one was let in beside the first before)."""
REFS = itertools.count(1)


async def answer(raw: Raw, hello: Hello) -> Event:
    """Send `hello` with a fresh ref; return its answer."""
    ref = next(REFS)
    raw.send(dataclasses.replace(hello, ref=ref))
    return await raw.reply(ref)


async def refused_with(raw: Raw, hello: Hello) -> Error:
    """The error that answers `hello` (it must be one)."""
    reply = await answer(raw, hello)
    assert isinstance(reply, Error), reply
    return reply


def clash(one: str, other: str) -> bool:
    return bool(set(name_keys(one)) & set(name_keys(other)))


def refusal(name: str) -> str:
    with pytest.raises(ChatError) as refused:
        check_name(name)
    assert refused.value.code == "invalid_name"
    return refused.value.message


# --- the rules ----------------------------------------------------------------------------


@pytest.mark.parametrize(("first", "second"), LOOK_ALIKES)
def test_each_look_alike_pair_clashes(first: str, second: str) -> None:
    assert check_name(first) == first and check_name(second) == second
    assert clash(first, second)


def test_a_zwnj_between_two_joining_letters_is_kept_and_ignored_in_comparison() -> None:
    for name in ("علی‌رضا", "نامه‌ها", "می‌خواهم"):  # noqa: RUF001
        assert check_name(name) == name  # shown as typed, ZWNJ and all
        assert ZWNJ in name
        assert clash(name, name.replace(ZWNJ, ""))
    assert len(check_name("علی‌رضا")) == 7  # the ZWNJ counts towards the 24 characters


@pytest.mark.parametrize(
    ("name", "why"),
    [
        (ZWNJ + "علی", "cannot start or end with a zero-width non-joiner"),
        ("علی" + ZWNJ, "cannot start or end with a zero-width non-joiner"),
        ("علی" + ZWNJ + ZWNJ + "رضا", "two zero-width non-joiners in a row"),
        ("دارا" + ZWNJ + "ب", "may only stand between two letters that would join"),  # alef
        ("ab" + ZWNJ + "c", "may only stand between two letters that would join"),  # Latin
        ("12" + ZWNJ + "ب", "may only stand between two letters that would join"),
        ("علی\u200dرضا", "is not allowed in a name"),  # noqa: RUF001  (the zero-width joiner stays refused)
        (TATWEEL + "ب", "a tatweel (U+0640) in a name may only stand between two Arabic letters"),
        ("ب" + TATWEEL, "may only stand between two Arabic letters"),
        ("ب" + TATWEEL * 2 + "ب", "may only stand between two Arabic letters"),
        ("a" + TATWEEL + "b", "may only stand between two Arabic letters"),
        (FATHA + "ب", "may only follow an Arabic letter"),
        ("a" + FATHA, "may only follow an Arabic letter"),
        ("ب" + FATHA + SHADDA + KASRA, "at most 2 harakat in a row"),
    ],
)
def test_misplaced_zwnj_tatweel_and_harakat_are_refused_with_a_reason(name: str, why: str) -> None:
    assert why in refusal(name)


def test_harakat_and_tatweel_where_they_belong_are_kept_and_ignored_in_comparison() -> None:
    voweled = "مُحَمَّد"
    assert check_name(voweled) == voweled
    assert clash(voweled, "محمد")
    stretched = "محـمد"
    assert check_name(stretched) == stretched
    assert clash(stretched, "محمد")


def test_letters_with_a_hamza_or_madda_stay_letters_of_their_own() -> None:
    assert not clash("آرش", "ارش")  # the madda is part of the letter
    assert not clash("أحمد", "احمد")
    assert clash("ئ", "ی\u0654")  # yeh with hamza, precomposed or typed: one letter
    assert clash("\u06c0", "\u0647\u0654")  # heh with yeh above, as the ezafe is typed


def test_digits_clash_with_ascii_and_with_what_they_look_like() -> None:
    assert clash("ali1", "ali١") and clash("ali۲", "ali2") and clash("ali٢", "ali۲")  # noqa: RUF001
    assert clash("ali۰", "ali0")  # noqa: RUF001  (a zero is a zero...)
    assert clash("ali۰", "ali.")  # noqa: RUF001  (...and the Persian zero is a dot)
    assert not clash("ali2", "ali3")


# --- properties of the keys ---------------------------------------------------------------

JOINING_LETTERS = "بپتثجچحخسشصضطظعغفقکگلمنهی"
"""Persian letters that join on both sides (joining type D)."""
RIGHT_JOINING = "ادذرزژو"
"""Persian letters that join on their right only (R)."""
ARABIC_FORMS = {"ی": "يى", "ک": "ك"}
HARAKAT = "\u064b\u064c\u064d\u064e\u064f\u0650\u0651\u0652"


@st.composite
def persian_name_and_variant(draw: st.DrawFn) -> tuple[str, str]:
    """A Persian name, and the same name with Arabic forms of its letters, ZWNJs, tatweels and
    harakat where they may stand."""
    count = draw(st.integers(2, 6))
    letters = [draw(st.sampled_from(JOINING_LETTERS + RIGHT_JOINING)) for _ in range(count)]
    plain = "".join(letters)
    variant = ""
    for index, letter in enumerate(letters):
        forms = ARABIC_FORMS.get(letter, "")
        variant += draw(st.sampled_from(letter + forms))
        variant += draw(st.text(st.sampled_from(HARAKAT), max_size=2))
        if index == count - 1:
            break
        joints = [""]
        joints.append(TATWEEL)
        if letter in JOINING_LETTERS:  # a ZWNJ only where the two would join
            joints.append(ZWNJ)
        variant += draw(st.sampled_from(joints))
    return plain, variant


@given(persian_name_and_variant())
@settings(max_examples=300, deadline=None)
def test_a_name_and_its_variant_are_valid_and_have_a_common_key(pair: tuple[str, str]) -> None:
    plain, variant = pair
    assert check_name(variant) == unicodedata.normalize("NFKC", variant)
    assert check_name(plain) == plain
    assert clash(plain, variant)
    assert name_keys(plain)[0] == name_keys(variant)[0]


PERSIAN_TEXT = st.text(
    st.sampled_from(
        JOINING_LETTERS + RIGHT_JOINING + HARAKAT + "يىكەھ" + ZWNJ + TATWEEL + " aAİ١۱۰.\u200e"  # noqa: RUF001
    ),
    max_size=30,
)


@given(PERSIAN_TEXT)
@settings(max_examples=300, deadline=None)
def test_folding_is_idempotent(text: str) -> None:
    once = text.translate(FOLD)
    assert once.translate(FOLD) == once
    assert fold(fold(text)) == fold(text)
    for key in name_keys(text):
        assert rekey(rekey(key)) == rekey(key)
        assert key.translate(FOLD) == key  # a key has nothing left to fold


@given(persian_name_and_variant())
@settings(max_examples=200, deadline=None)
def test_a_variant_of_a_name_mentions_it(pair: tuple[str, str]) -> None:
    plain, variant = pair
    assert mentions(f"سلام {variant}!", plain)
    assert mentions(f"سلام {plain}!", variant)


# --- mentions -----------------------------------------------------------------------------


def test_mentions_fold_persian_letters_and_ignore_zwnj_tatweel_and_harakat() -> None:
    assert mentions("سلام كامران، خوبی؟", "کامران")
    assert mentions("سلام کامـران", "کامران")
    assert mentions("سلام کَامران", "کامران")
    assert mentions("ميلاد کجاست", "میلاد")
    assert mentions("علیرضا بیا", "علی‌رضا")
    assert mentions("علی‌رضا بیا", "علیرضا")
    assert mentions("ask ali1", "ali۱")  # noqa: RUF001
    assert not mentions("علی‌رضا بیا", "علی")  # a half-space does not end a word
    assert not mentions("کامرانی", "کامران")
    unread = Unread(me="کامران", keywords=["جلسه"])
    assert unread.message("#dev", 1, "bob", "سلام كامران")
    assert unread.message("#dev", 2, "bob", "جلسـه ساعت ۱۰")  # noqa: RUF001
    assert not unread.message("#dev", 3, "كامران", "my own, in another spelling")
    assert unread.counts("#dev").mentions == 2


# --- on every broker ----------------------------------------------------------------------


async def test_a_look_alike_of_a_name_online_is_taken_on_both_servers(
    deployment: Deployment,
) -> None:
    watcher = await deployment.connect("watcher", on=1)
    firsts: dict[str, None] = {}
    for first, _ in LOOK_ALIKES:  # (one of the digit pairs is online already as the other)
        if not any(clash(first, other) for other in firsts):
            firsts[first] = None
    online: list[ChatClient] = []
    for first in firsts:
        client = await deployment.connect(first, on=0)
        assert client.welcome is not None and client.welcome.name == first
        online.append(client)
    await until(watcher.who, tuple(sorted((*firsts, "watcher"), key=str.casefold)))
    for first, second in LOOK_ALIKES:
        for on in (0, 1):
            thief = await deployment.raw(on=on)
            refused = await refused_with(thief, Hello(name=second))
            assert refused.code == "name_taken", (first, second, on)
            signed = await thief.signed_hello(second, SigningKey.generate())
            refused = await refused_with(thief, signed)  # a key registers nothing here
            assert refused.code == "name_taken", (first, second, on)
    await online[0].send("#lobby", "still me")
    assert (await expect(watcher, Message, text="still me")).sender == "کامران"


async def test_a_zwnj_name_is_shown_as_typed_and_its_plain_spelling_is_taken(
    deployment: Deployment,
) -> None:
    alireza = await deployment.connect("علی‌رضا", on=0)
    assert alireza.welcome is not None and alireza.welcome.name == "علی‌رضا"
    bob = await deployment.connect("bob", on=1)
    await until(bob.who, ("bob", "علی‌رضا"))
    await alireza.send("#lobby", "سلام")
    assert (await expect(bob, Message, text="سلام")).sender == "علی‌رضا"
    for on in (0, 1):
        raw = await deployment.raw(on=on)
        assert (await refused_with(raw, Hello(name="علیرضا"))).code == "name_taken"
        assert (await refused_with(raw, Hello(name="علی" + TATWEEL + "رضا"))).code == "name_taken"
    raw = await deployment.raw(on=1)
    for name, why in (
        ("علی" + ZWNJ, "cannot start or end"),
        ("علی" + ZWNJ + ZWNJ + "رضا", "in a row"),
        ("دارا" + ZWNJ + "ب", "would join"),
    ):
        refused = await refused_with(raw, Hello(name=name))
        assert (refused.code, refused.fatal) == ("invalid_name", False)
        assert why in refused.message


async def test_a_registered_name_needs_its_key_in_every_look_alike_spelling(
    deployment: Deployment,
) -> None:
    key = SigningKey.generate()
    kamran = await deployment.connect("کامران", on=0, key=key)
    watcher = await deployment.connect("watcher", on=1)
    await until(watcher.who, ("watcher", "کامران"))
    thief = await deployment.raw(on=1)

    async def refusal() -> str:  # the other server hears of the registration a moment later
        return (await refused_with(thief, Hello(name="كامران"))).code

    await until(refusal, "name_registered")
    signed = await thief.signed_hello("كامران", SigningKey.generate())
    assert (await refused_with(thief, signed)).code == "name_registered"
    await kamran.close()
    back = await deployment.connect("كامران", on=1, key=key)  # the owner, typing it otherwise
    assert back.welcome is not None and back.welcome.name == "كامران"


async def test_private_messages_reach_a_look_alike_spelling_of_the_name(
    deployment: Deployment,
) -> None:
    milad = await deployment.connect("میلاد", on=0)
    bob = await deployment.connect("bob", on=1)
    await until(bob.who, ("bob", "میلاد"))
    sent = await bob.private("ميلاد", "سلام")  # typed with an Arabic yeh
    assert sent.to == "میلاد"
    received = await expect(milad, PrivateMessage, text="سلام")
    assert received.sender == "bob"


async def test_welcome_names_have_the_zwnj_in_the_user_list(deployment: Deployment) -> None:
    first = await deployment.connect("نامه‌ها", on=0)  # noqa: RUF001
    second = await deployment.connect("bob", on=1)
    await until(second.who, ("bob", "نامه‌ها"))  # noqa: RUF001
    assert first.welcome is not None
    again = await deployment.raw(on=1)
    welcome = await answer(again, Hello(name="carol"))
    assert isinstance(welcome, Welcome) and "نامه‌ها" in welcome.users  # noqa: RUF001
