"""Days as the log's date lines name them, in the language in use and the calendar chosen
(Gregorian, or the Solar Hijri one of Iran, "jalali"), and Persian digits."""

from __future__ import annotations

from datetime import date

from tuichat.app import i18n
from tuichat.app.i18n import _

CALENDARS = ("gregorian", "jalali")
"""The calendars a date line may be in (`calendar` in the settings file)."""

WEEKDAYS = {
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
    "fa": ("دوشنبه", "سه‌شنبه", "چهارشنبه", "پنج‌شنبه", "جمعه", "شنبه", "یک‌شنبه"),
}
"""By `date.weekday()`: Monday first."""
MONTHS = {
    ("en", "gregorian"): (
        *("January", "February", "March", "April", "May", "June", "July", "August"),
        *("September", "October", "November", "December"),
    ),
    ("fa", "gregorian"): (
        *("ژانویه", "فوریه", "مارس", "آوریل", "مه", "ژوئن", "ژوئیه", "اوت", "سپتامبر"),
        *("اکتبر", "نوامبر", "دسامبر"),
    ),
    ("en", "jalali"): (
        *("Farvardin", "Ordibehesht", "Khordad", "Tir", "Mordad", "Shahrivar", "Mehr"),
        *("Aban", "Azar", "Dey", "Bahman", "Esfand"),
    ),
    ("fa", "jalali"): (
        *("فروردین", "اردیبهشت", "خرداد", "تیر", "مرداد", "شهریور", "مهر", "آبان", "آذر"),
        *("دی", "بهمن", "اسفند"),
    ),
}
"""Month names by language and calendar, the first month first."""

_PERSIAN_DIGITS = str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹")


def local_digits(text: str) -> str:
    """`text` with its digits 0 to 9 written as the language in use writes them (Persian
    digits in Persian; `text` itself otherwise)."""
    if i18n.language() != "fa":
        return text
    return text.translate(_PERSIAN_DIGITS)


def day_label(day: date | None, *, calendar: str) -> str:
    """A date line's text in the language in use: `Tuesday 1 December 2026` (Gregorian) or
    `Tuesday 10 Azar 1405` (Jalali); in Persian the same words in Persian, with Persian
    digits. None (a time no calendar can show) is "a day unknown".

    `calendar` is one of `CALENDARS`; a language without names of its own uses English.
    """
    parts = _parts(day, calendar)
    if parts is None:
        return _("a day unknown")
    weekday, number, month, year = parts
    return local_digits(f"{weekday} {number} {month} {year}")


def date_label(day: date | None, *, calendar: str) -> str:
    """A day in a sentence, without its weekday: `8 January 2026` (Gregorian) or `18 Dey
    1404` (Jalali), in the language in use."""
    parts = _parts(day, calendar)
    if parts is None:
        return _("a day unknown")
    _weekday, number, month, year = parts
    return local_digits(f"{number} {month} {year}")


def _parts(day: date | None, calendar: str) -> tuple[str, int, str, int] | None:
    """The weekday, day of the month, month and year of `day` in `calendar`, named in the
    language in use (None: a day no calendar can show)."""
    if day is None:
        return None
    if calendar not in CALENDARS:
        raise ValueError(f"unknown calendar {calendar!r} (known: {', '.join(CALENDARS)})")
    lang = i18n.language() if i18n.language() in WEEKDAYS else "en"
    if calendar == "jalali":
        try:
            import jdatetime  # (only for the Jalali calendar's dates)

            shown = jdatetime.date.fromgregorian(date=day)
        except (ValueError, OverflowError):  # past the Jalali years it knows (9999 and on)
            return None
        year, month, number = shown.year, shown.month, shown.day
    else:
        year, month, number = day.year, day.month, day.day
    return WEEKDAYS[lang][day.weekday()], number, MONTHS[lang, calendar][month - 1], year
