"""Times as the records hold them: UTC ISO-8601, "2022-10-19T20:07:25Z".

Sources send times in many forms (ISO-8601 of any precision, X's own, RFC 2822, Unix
times, datetimes from client libraries); this module reads them all, and guesses none.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_tz

import msgspec

from huggingtweets.core.records import Post

# Already as the records hold it: kept without parsing (checked by pattern, and by the
# calendar only for days 29 to 31), since a file of 100,000 posts passes through here.
_UTC_ISO_RE = re.compile(
    r"\d{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])T(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\dZ"
)
# ISO-8601 (RFC 3339 and the variants spreadsheets and databases write): a date, then
# optionally a time with or without seconds, fraction and zone.
_ISO_RE = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)"
    r"(?:[Tt ](\d\d):(\d\d)(?::(\d\d)(?:[.,]\d+)?)?\s*([Zz]|[+-]\d\d(?::?\d\d)?)?)?"
)
# X's own form: "Wed Oct 19 20:07:25 +0000 2022".
_X_TIME_RE = re.compile(
    r"[A-Za-z]{3} ([A-Za-z]{3}) (\d\d) (\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d) (\d{4})"
)
# RFC 2822 (e-mail, RSS, HTTP): "Wed, 19 Oct 2022 20:07:25 +0000". A four-digit year and
# a zone email.utils knows are required: its lenient parser takes an unknown zone for UTC.
_RFC2822_RE = re.compile(
    r"(?:[A-Za-z]{3},\s*)?\d{1,2}\s+[A-Za-z]{3}\s+\d{4}\s+\d\d:\d\d(?::\d\d)?\s+"
    r"(?:[+-]\d{4}|UTC?|GMT|Z|[AECMP][SD]T)",
    re.IGNORECASE,
)
_UNIX_RE = re.compile(r"\d+(?:\.\d*)?")
_MONTHS = {
    m: i
    for i, m in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1
    )
}
# Unix times: seconds from 1973 to the year 5138, or milliseconds over the same years.
# Smaller numbers (a year, "20230101") are not guessed at.
_UNIX_SECONDS = (1e8, 1e11)
_UNIX_MILLISECONDS = (1e11, 1e14)


def utc_iso(value: object) -> str | None:
    """A post's time as the records hold it, "2022-10-19T20:07:25Z" (UTC), or None.

    Reads ISO-8601 (with or without time and zone; no zone means UTC), X's
    "Wed Oct 19 20:07:25 +0000 2022", RFC 2822 and Unix times in seconds or milliseconds
    (numbers or digit strings), and datetimes (naive ones are UTC), as client libraries
    give them. Anything else, such as "01/02/2023" (January or February?), is None
    rather than a guess.
    """
    if isinstance(value, datetime):
        parsed = value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)
    elif isinstance(value, str):
        value = value.strip()
        if _UTC_ISO_RE.fullmatch(value) and value[8:10] <= "28":
            return value
        if _UNIX_RE.fullmatch(value):
            return _from_unix(float(value))
        parsed = parse_time(value)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        return _from_unix(value)
    else:
        return None
    if parsed is None:
        return None
    try:
        when = parsed.astimezone(timezone.utc)
    except OverflowError:  # a year 1 or 9999 moved across midnight
        return None
    return (
        f"{when.year:04d}-{when.month:02d}-{when.day:02d}"
        f"T{when.hour:02d}:{when.minute:02d}:{when.second:02d}Z"
    )


def normalize_times(posts: list[Post]) -> None:
    """Set each post's created_at as :func:`utc_iso` reads it. The times are first checked
    all at once, in C: a file of 100,000 posts whose times are already so (our own
    records, say) then costs milliseconds rather than a check per post."""
    times = [post.created_at for post in posts if post.created_at is not None]
    if not _all_utc_iso(times):
        for post in posts:
            post.created_at = utc_iso(post.created_at)


_DATETIMES = list[datetime]


def _all_utc_iso(times: list) -> bool:
    """Whether every time is "YYYY-MM-DDTHH:MM:SSZ", a real one: 20 characters with "T" and
    "Z" in place are that form when msgspec reads them as RFC 3339 (which checks digits,
    ranges and the calendar)."""
    try:
        if set(map(len, times)) - {20}:
            return False
        joined = "".join(times)
    except TypeError:  # None, or not text at all
        return False
    if joined[10::20] != "T" * len(times) or joined[19::20] != "Z" * len(times):
        return False
    try:
        msgspec.convert(times, _DATETIMES)
    except msgspec.ValidationError:
        return False
    return True


def parse_time(value: str) -> datetime | None:
    """``value`` as an aware datetime in one of utc_iso's text forms, or None."""
    try:
        if match := _ISO_RE.fullmatch(value):
            year, month, day, hour, minute, second, zone = match.groups()
            return datetime(
                int(year),
                int(month),
                int(day),
                int(hour or 0),
                int(minute or 0),
                int(second or 0),
                tzinfo=_zone(zone),
            )
        if match := _X_TIME_RE.fullmatch(value):
            month_name, day, hour, minute, second, sign, zone_h, zone_m, year = match.groups()
            month = _MONTHS.get(month_name.lower())
            if month is None:
                return None
            offset = timedelta(hours=int(zone_h), minutes=int(zone_m))
            zone = timezone(-offset if sign == "-" else offset)
            return datetime(
                int(year), month, int(day), int(hour), int(minute), int(second), tzinfo=zone
            )
        if _RFC2822_RE.fullmatch(value):
            parts = parsedate_tz(value)
            if parts is None:
                return None
            zone = timezone(timedelta(seconds=parts[9] or 0))
            return datetime(*parts[:6], tzinfo=zone)
    except (ValueError, OverflowError):  # month 13, hour 25, offset of a day or more ...
        return None
    return None


def _zone(zone: str | None) -> timezone:
    if zone is None or zone in ("Z", "z"):
        return timezone.utc
    sign, digits = zone[0], zone[1:].replace(":", "")
    offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:] or 0))
    return timezone(-offset if sign == "-" else offset)


def _from_unix(seconds: float) -> str | None:
    if _UNIX_MILLISECONDS[0] <= seconds < _UNIX_MILLISECONDS[1]:
        seconds /= 1000
    elif not _UNIX_SECONDS[0] <= seconds < _UNIX_SECONDS[1]:
        return None
    return datetime.fromtimestamp(int(seconds), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
