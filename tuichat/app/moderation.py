"""What the app says about moderation: who did what to whom in which room, why and until
when; how long a ban lasts; why the server refused a request. Plain functions of plain values
(no Textual, no I/O), each sentence in the language in use.

Sentences are made whole by their translators: a sentence of `ROOM_WORDS`, `SERVER_WORDS` or
`YOUR_WORDS` has the pieces `{by}`, `{name}`, `{room}` and two that may be empty, `{until}`
(" until 14:05 (2 hours)") and `{reason}` (": spam"), each translated on its own.
"""

from __future__ import annotations

from datetime import datetime, tzinfo

from tuichat.app.dates import date_label, local_digits
from tuichat.app.i18n import N_, Piece, _, language, ngettext

ROOM_WORDS = {
    # TRANSLATORS: {until} is empty or " until 14:05 (2 hours)"; {reason} is empty or ": spam"
    "kick": N_("{by} kicked {name} from {room}{reason}"),
    "ban": N_("{by} banned {name} from {room}{until}{reason}"),
    "unban": N_("{by} lifted the ban on {name} in {room}{reason}"),
    "mute": N_("{by} muted {name} in {room}{until}{reason}"),
    "unmute": N_("{by} unmuted {name} in {room}{reason}"),
    "op": N_("{by} made {name} an op of {room}{reason}"),
    "deop": N_("{by} removed {name} from the ops of {room}{reason}"),
    "invite": N_("{by} invited {name} to {room}{reason}"),
    "uninvite": N_("{by} withdrew the invitation of {name} to {room}{reason}"),
    "topic": N_("{by} set the topic of {room}{reason}"),
    "topic-cleared": N_("{by} cleared the topic of {room}"),
    "private": N_("{by} made {room} private"),
    "public": N_("{by} opened {room} to everyone"),
    "create": N_("{by} created {room}"),
}
"""What the log says when someone is acted on in a room, by the `moderated` frame's action
(and the moderation log's other entries: a topic set, in its reason; a room made private or
open again; a room made)."""
SERVER_WORDS = {
    "kick": N_("{by} disconnected {name} from the server{reason}"),
    "ban": N_("{by} banned {name} from the server{until}{reason}"),
    "unban": N_("{by} lifted the server ban on {name}{reason}"),
}
"""The same, for what an admin does on the whole server (the frame's room is "")."""
YOUR_WORDS = {
    "kick": N_("{by} removed you from {room}{reason} — you can /join it again"),
    "ban": N_("{by} banned you from {room}{reason} — you cannot join it again"),
    "ban-until": N_(
        "{by} banned you from {room}{until}{reason} — you cannot join it again until then"
    ),
    "unban": N_("{by} lifted your ban from {room} — you can /join it again"),
    "mute": N_("{by} muted you in {room}{until}{reason}: you can read but not post"),
    "unmute": N_("{by} unmuted you in {room}: you can post again"),
    "op": N_("{by} made you an op of {room}"),
    "deop": N_("{by} removed you from the ops of {room}"),
    "invite": N_("{by} invited you to {room}{reason} — /join {room}"),
    "uninvite": N_("{by} withdrew your invitation to {room}"),
    "server-kick": N_("{by} disconnected you from the server{reason}"),
    "server-ban": N_("{by} banned you from the server{until}{reason}"),
}
"""What the person acted on is told (`server-`: by an admin, on the whole server)."""
OTHER_WORDS = N_("{by}: {action} {name} in {room}{until}{reason}")
"""An action this version does not know of."""

REFUSALS = {
    "not_op": N_("only the owner or an op of {room} can do that"),
    "not_admin": N_("only an admin of the server can do that"),
    "cannot_moderate": N_(
        "you cannot do that to {name}: nobody can act on a room's owner, an admin or "
        "themselves, and an op cannot act on another op"
    ),
    "not_registered": N_(
        "only a registered name (one signed in with its key) can be an op or be invited"
    ),
    "banned": N_("you are banned from {room}"),
    "muted": N_("you are muted in {room}: you can read but not post"),
    "private_room": N_("{room} is private: you need an invitation to join it"),
    "rate_limited": N_("too many requests at once: wait a moment and try again"),
    "limit_reached": N_("that list is full: undo some of it first"),
    "no_such_message": N_("that message is not in {room} any more"),
    "not_author": N_("only its author can do that to a message"),
    "invalid_reaction": N_(
        "a reaction is an emoji or a short word: one line, 16 characters at most"
    ),
    "invalid_search": N_("a search has at most 8 words and 200 characters"),
}
"""Why the server refused a request, by the `error` frame's code (the room and the person are
the request's)."""
SOMEWHERE = {
    "not_op": N_("only a room's owner or ops can do that"),
    "cannot_moderate": N_("you cannot do that to them"),
    "banned": N_("you are banned"),
    "muted": N_("you are muted here: you can read but not post"),
    "private_room": N_("that room is private: you need an invitation"),
    "no_such_message": N_("that message is not there any more"),
}
"""The refusals of `REFUSALS` that name a room or a person, when the request named none."""
FOR_ACTION = {
    ("not_op", "op"): N_("only the owner of {room} (or an admin) can make someone an op"),
    ("not_op", "deop"): N_("only the owner of {room} (or an admin) can take op from someone"),
    ("not_op", "modlog"): N_("only the owner or an op of {room} can read its moderation log"),
    ("cannot_moderate", "ignore"): N_("you cannot ignore yourself"),
    ("no_such_user", "kick"): N_("{name} is not in {room}"),
    ("not_author", "edit"): N_("only its author can edit a message"),
    ("not_author", "delete"): N_(
        "only its author, the owner and ops of {room} and the server's admins can delete a message"
    ),
    ("limit_reached", "react"): N_(
        "that message carries as many different reactions as it can: give one of those"
    ),
    ("not_registered", "ignore"): N_(
        "only a registered name (one signed in with its key) can keep an ignore list"
    ),
}
"""Refusals said otherwise for one request (`refusal`'s `action`)."""
SERVER_WORDS_KEPT = {("limit_reached", "ignore")}
"""Refusals whose server words say it better (how many one may ignore)."""
MODERATION_ONLY = frozenset({"rate_limited"})
"""Refusals said in the app's words for a moderation request only (a message refused for going
too fast keeps the server's words, which say how fast)."""
DETAILED = frozenset({"banned", "muted", "rate_limited", "limit_reached"})
"""Refusals whose server words (how long, why) are said after them."""

MINUTE, HOUR, DAY, WEEK = 60, 3_600, 86_400, 604_800


def duration_words(seconds: int) -> str:
    """How long `seconds` is, in the largest unit that counts it whole: `2 hours`, `90
    minutes`, `1 week` (rounded to the minute)."""
    minutes = max(round(seconds / MINUTE), 1)
    whole = minutes * MINUTE
    if not whole % WEEK:
        count = whole // WEEK
        said = ngettext("{count} week", "{count} weeks", count)
    elif not whole % DAY:
        count = whole // DAY
        said = ngettext("{count} day", "{count} days", count)
    elif not whole % HOUR:
        count = whole // HOUR
        said = ngettext("{count} hour", "{count} hours", count)
    else:
        count = minutes
        said = ngettext("{count} minute", "{count} minutes", count)
    return said.format(count=local_digits(str(count)))


def when(ts: int, now: int, tz: tzinfo | None = None, calendar: str = "gregorian") -> str:
    """A time as the log's lines say it: `14:05` on the day of `now`, else with its date
    (`8 January 2026 14:05`), in time zone `tz`."""
    try:
        moment = datetime.fromtimestamp(ts / 1000, tz)
        today = datetime.fromtimestamp(now / 1000, tz).date()
    except (OverflowError, OSError, ValueError):
        return "--:--"
    clock = local_digits(moment.strftime("%H:%M"))
    if moment.date() == today:
        return clock
    # TRANSLATORS: a date and a time, as in: 8 January 2026 14:05
    return _("{date} {time}").format(date=date_label(moment.date(), calendar=calendar), time=clock)


def until_words(
    until: int, ts: int, now: int, tz: tzinfo | None = None, calendar: str = "gregorian"
) -> str:
    """ " until 14:05 (2 hours)" for a ban or a mute that ends at `until` (given at `ts`);
    "" for one until undone (`until` 0)."""
    if not until:
        return ""
    shown = when(until, now, tz, calendar)
    # TRANSLATORS: put after a sentence such as "ali banned bob from #dev", its space first
    return Piece(
        _(" until {time} ({duration})").format(
            time=shown, duration=duration_words((until - (ts or now)) // 1000)
        )
    )


def reason_words(reason: str) -> str:
    """ ": spam" for a reason given, "" for none."""
    # TRANSLATORS: put after a sentence such as "ali kicked bob from #dev": why
    return Piece(_(": {reason}").format(reason=reason)) if reason else ""


def moderation_line(
    action: str,
    name: str,
    by: str,
    room: str,
    *,
    reason: str = "",
    until: int = 0,
    ts: int = 0,
    you: bool = False,
    now: int = 0,
    tz: tzinfo | None = None,
    calendar: str = "gregorian",
) -> str:
    """The sentence for `by` doing `action` to `name` in `room` ("": the whole server), with
    `reason` and `until` (ms since the epoch, 0: until undone); `you`: told to `name`."""
    pieces = {
        "by": by or _("the server"),
        "name": name,
        "room": room,
        "action": action,
        "until": until_words(until, ts, now or ts, tz, calendar),
        "reason": reason_words(reason),
    }
    if you:
        key = f"server-{action}" if not room else action
        if action == "ban" and until and room:
            key = "ban-until"
        if key in YOUR_WORDS:
            return _(YOUR_WORDS[key]).format(**pieces)
    if action == "topic" and not reason:
        action = "topic-cleared"
    words = (SERVER_WORDS if not room else ROOM_WORDS).get(action)
    if words is None and not room:
        words = ROOM_WORDS.get(action)
        pieces["room"] = _("the server")
    return _(words or OTHER_WORDS).format(**pieces)


def refusal(code: str, message: str, *, room: str = "", name: str = "", action: str = "") -> str:
    """The sentence that says why the server refused a request (`action`: a moderation
    action, `ignore`, `modlog`, `topic`, `private`, `react`, `edit`, `delete` or `search`; ""
    for another) about `room` and `name`
    (as the request named them, or ""): its own for each code it knows, else the server's
    words (`message`, already made one safe line)."""
    words = FOR_ACTION.get((code, action)) or REFUSALS.get(code)
    kept = (code, action) in SERVER_WORDS_KEPT or (code in MODERATION_ONLY and not action)
    if words is None or kept:
        return message
    if ("{room}" in words and not room) or ("{name}" in words and not name):
        if code == "not_op" and action == "modlog":
            words = N_("only an admin of the server can read the whole moderation log")
        else:
            words = SOMEWHERE.get(code, words)
    said = _(words).format(room=room, name=name)
    if code in DETAILED and message:
        if language() == "en" and code in ("banned", "muted"):
            return message  # (the server's words say it all: by whom, how long, why)
        # TRANSLATORS: a refusal, then what the server said of it (in its own language)
        return _("{refusal} (the server says: {message})").format(refusal=said, message=message)
    return said
