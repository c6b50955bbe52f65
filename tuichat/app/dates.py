"""Days as the log's date lines name them, in the language in use and the calendar chosen
(Gregorian, or the Solar Hijri one of Iran, "jalali"), and Persian digits."""

from __future__ import annotations

from datetime import date

import jdatetime

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
    if day is None:
        return _("a day unknown")
    if calendar not in CALENDARS:
        raise ValueError(f"unknown calendar {calendar!r} (known: {', '.join(CALENDARS)})")
    lang = i18n.language() if i18n.language() in WEEKDAYS else "en"
    if calendar == "jalali":
        try:
            shown = jdatetime.date.fromgregorian(date=day)
        except (ValueError, OverflowError):  # past the Jalali years it knows (9999 and on)
            return _("a day unknown")
        year, month, number = shown.year, shown.month, shown.day
    else:
        year, month, number = day.year, day.month, day.day
    weekday = WEEKDAYS[lang][day.weekday()]
    return local_digits(f"{weekday} {number} {MONTHS[lang, calendar][month - 1]} {year}")
