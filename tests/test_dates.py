"""Date lines in English and Persian, in the Gregorian and the Jalali calendars, and digits."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import jdatetime
import pytest

from tuichat.app.dates import day_label, local_digits
from tuichat.app.i18n import set_language
from tuichat.app.untrusted import MAX_TS

ZWNJ = "\u200c"


@pytest.fixture(autouse=True)
def english_after() -> Iterator[None]:
    yield
    set_language("en")


@pytest.fixture
def persian() -> None:
    set_language("fa")


def test_english_gregorian_is_the_logs_own_format() -> None:
    assert day_label(date(2026, 12, 1), calendar="gregorian") == "Tuesday 1 December 2026"
    day = date(2026, 1, 1)
    for _ in range(366):  # every weekday and month, as the log wrote them before
        assert day_label(day, calendar="gregorian") == f"{day:%A} {day.day} {day:%B %Y}"
        day += timedelta(days=1)


def test_a_day_unknown() -> None:
    assert day_label(None, calendar="gregorian") == "a day unknown"
    set_language("fa")
    assert day_label(None, calendar="jalali") == "روزی نامعلوم"


@pytest.mark.usefixtures("persian")
def test_persian_gregorian() -> None:
    expected = f"سه{ZWNJ}شنبه ۱ دسامبر ۲۰۲۶"  # noqa: RUF001
    assert day_label(date(2026, 12, 1), calendar="gregorian") == expected


@pytest.mark.usefixtures("persian")
def test_persian_jalali() -> None:
    expected = f"سه{ZWNJ}شنبه ۱۰ آذر ۱۴۰۵"  # noqa: RUF001
    assert day_label(date(2026, 12, 1), calendar="jalali") == expected
    assert day_label(date(2026, 3, 21), calendar="jalali") == "شنبه ۱ فروردین ۱۴۰۵"  # noqa: RUF001


def test_english_jalali() -> None:
    assert day_label(date(2026, 12, 1), calendar="jalali") == "Tuesday 10 Azar 1405"


@pytest.mark.parametrize(
    ("day", "jalali"),
    [
        (date(2026, 3, 21), "Saturday 1 Farvardin 1405"),  # Nowruz 1405
        (date(2026, 3, 20), "Friday 29 Esfand 1404"),  # the last day of a common year
        (date(2025, 3, 20), "Thursday 30 Esfand 1403"),  # 1403 is a leap year
        (date(2025, 3, 21), "Friday 1 Farvardin 1404"),
        (date(2024, 3, 20), "Wednesday 1 Farvardin 1403"),
        (date(1979, 2, 11), "Sunday 22 Bahman 1357"),
    ],
)
def test_known_jalali_dates(day: date, jalali: str) -> None:
    assert day_label(day, calendar="jalali") == jalali
    shown = jdatetime.date.fromgregorian(date=day)
    assert f"{shown.day} {shown.j_months_en[shown.month - 1]} {shown.year}" in jalali


@pytest.mark.usefixtures("persian")
def test_persian_weekdays_start_on_saturday() -> None:
    saturday = date(2026, 3, 21)
    names = [
        day_label(saturday + timedelta(days=n), calendar="jalali").split()[0] for n in range(7)
    ]
    assert names == [
        "شنبه",
        f"یک{ZWNJ}شنبه",
        "دوشنبه",
        f"سه{ZWNJ}شنبه",
        "چهارشنبه",
        f"پنج{ZWNJ}شنبه",
        "جمعه",
    ]


def test_an_unknown_calendar_is_a_mistake() -> None:
    with pytest.raises(ValueError, match="unknown calendar"):
        day_label(date(2026, 1, 1), calendar="julian")


def test_local_digits() -> None:
    text = "12:30 — 2026"
    assert local_digits(text) is text  # English: the text itself
    set_language("fa")
    assert local_digits(text) == "۱۲:۳۰ — ۲۰۲۶"
    assert local_digits("no digits") == "no digits"


def test_a_day_past_the_jalali_calendar_is_a_day_unknown() -> None:
    """The app shows times up to the end of year 9999; the Jalali calendar ends earlier (a
    hostile server's timestamp must not stop the app)."""
    last = datetime.fromtimestamp(MAX_TS / 1000, UTC).date()
    assert day_label(last, calendar="jalali") == "a day unknown"
    assert day_label(last, calendar="gregorian").endswith("9999")
