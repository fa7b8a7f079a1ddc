"""The X/Twitter data export ("Download an archive of your data").

Files are JavaScript assignments: ``window.YTD.tweets.part0 = [ {"tweet": {...}}, ... ]``.
Newer exports call the file ``tweets.js`` (multi-part: ``tweets-part1.js`` ...), older ones
``tweet.js``. Long posts keep a truncated ``full_text`` in ``tweets.js`` and their whole
text in ``note-tweet.js``. ``deleted-tweets.js`` is never read: deleted posts stay out.
"""

from __future__ import annotations

import html
import mmap
import re
from datetime import datetime, timezone
from pathlib import PurePosixPath
from typing import NoReturn

import msgspec
import orjson

from huggingtweets.collect.registry import register_file_format
from huggingtweets.collect.tree import MAX_FILE_BYTES, MAX_SMALL_FILE_BYTES, Tree, decode_utf8
from huggingtweets.core.errors import HuggingtweetsError
from huggingtweets.core.records import Account, Collected, Post, check_handle

PLATFORM = "x"

_TWEET_FILE_RE = re.compile(r"tweets?(-part\d+)?\.js")
# Matched at the first non-blank byte (after a BOM): with ``match(raw, pos)``, "\A" would
# never match past the BOM, and a leading "\s*" would crawl through a file of blanks.
_YTD_PREFIX_RE = re.compile(rb"window\.YTD\.[A-Za-z0-9_]+\.part\d+[ \t\r\n]*=")
_STATUS_URL_RE = re.compile(r"https?://(?:mobile\.)?(?:twitter|x)\.com/\w+/status(?:es)?/(\d+)")
_MONTHS = {
    m: f"{i:02d}"
    for i, m in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1
    )
}


def is_tweet_file(basename: str) -> bool:
    return bool(_TWEET_FILE_RE.fullmatch(basename))


def looks_like_export(tree: Tree) -> bool:
    return bool(tree.find_all(is_tweet_file))


class _Url(msgspec.Struct, gc=False):
    expanded_url: str | None = None


class _Entities(msgspec.Struct, gc=False):
    urls: list[_Url] | None = None


class _Tweet(msgspec.Struct, gc=False):
    """The fields of a tweets.js entry that we read; msgspec skips the rest unparsed."""

    id_str: str | int | None = None
    id: str | int | None = None
    full_text: str | None = None
    text: str | None = None  # the oldest exports
    created_at: str | None = None
    lang: str | None = None
    in_reply_to_status_id_str: str | int | None = None
    entities: _Entities | None = None


class _TweetEntry(_Tweet):
    tweet: _Tweet | None = None  # newer exports wrap each entry: {"tweet": {...}}


# The other files we read, typed likewise so that an unexpected shape is a clear error.
# Field names are the export's own; newer exports wrap each entry ({"account": {...}}).
class _Account(msgspec.Struct):
    username: str | None = None
    accountDisplayName: str | None = None


class _AccountEntry(_Account):
    account: _Account | None = None


class _Bio(msgspec.Struct):
    bio: str | None = None


class _Profile(msgspec.Struct):
    avatarMediaUrl: str | None = None
    description: _Bio | None = None


class _ProfileEntry(_Profile):
    profile: _Profile | None = None


class _NoteCore(msgspec.Struct):
    text: str | None = None


class _Note(msgspec.Struct):
    createdAt: str | None = None
    core: _NoteCore | None = None


class _NoteEntry(_Note):
    noteTweet: _Note | None = None


class _Protected(msgspec.Struct):
    protectedAt: str | None = None
    action: str | None = None


class _ProtectedEntry(_Protected):
    protectedHistory: _Protected | None = None


# Decoding only the fields we need, into typed structs, is what makes reading a large
# export fast: an export's tweets.js is mostly fields we never read.
_TWEETS_DECODER = msgspec.json.Decoder(list[_TweetEntry])
_ACCOUNT_DECODER = msgspec.json.Decoder(list[_AccountEntry])
_PROFILE_DECODER = msgspec.json.Decoder(list[_ProfileEntry])
_NOTES_DECODER = msgspec.json.Decoder(list[_NoteEntry])
_PROTECTED_DECODER = msgspec.json.Decoder(list[_ProtectedEntry])


def _json_span(raw: bytes | bytearray | mmap.mmap) -> tuple[int, int]:
    """Where the JSON array starts and ends, after ``window.YTD.x.part0 =`` and before ";"
    (found without copying ``raw``, which may be a 100 MB mapping)."""
    start = 3 if raw[:3] == b"\xef\xbb\xbf" else 0
    start = _skip_blanks(raw, start)
    prefix = _YTD_PREFIX_RE.match(raw, start)
    start = prefix.end() if prefix else start
    end = _end_of_blanks(raw, start)
    if end > start and raw[end - 1] == ord(";"):
        end -= 1
    return start, end


def _skip_blanks(raw: bytes | bytearray | mmap.mmap, start: int) -> int:
    """The first non-whitespace position from ``start`` (len(raw) if none), by chunks: a
    file of a billion blanks takes a second, not minutes of a byte loop."""
    size, step = len(raw), 64
    while start < size:
        chunk = raw[start : start + step]
        rest = len(chunk.lstrip())
        if rest:
            return start + len(chunk) - rest
        start += len(chunk)
        step = min(step * 4, 1 << 20)
    return size


def _end_of_blanks(raw: bytes | bytearray | mmap.mmap, start: int) -> int:
    """The position after the last non-whitespace byte at or after ``start``."""
    end, step = len(raw), 64
    while end > start:
        chunk = raw[max(start, end - step) : end]
        kept = len(chunk.rstrip())
        if kept:
            return end - len(chunk) + kept
        end -= len(chunk)
        step = min(step * 4, 1 << 20)
    return start


def parse_ytd(
    tree: Tree,
    name: str,
    decoder: msgspec.json.Decoder,
    limit: int = MAX_FILE_BYTES,
    raw: bytes | bytearray | mmap.mmap | None = None,
) -> list:
    """Parse one ``window.YTD.<kind>.partN = [...]`` file (or its bytes ``raw`` already
    read), naming file and position on error; a file over ``limit`` bytes is refused."""
    if raw is None:
        raw = tree.read_bytes(name, limit)
    start, end = _json_span(raw)
    try:
        return decoder.decode(memoryview(raw)[start:end])
    except msgspec.ValidationError as exc:
        raise HuggingtweetsError(
            f"unexpected content in {tree.label}:{name}: {exc}; is this an X export file?"
        ) from None
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):  # nested too deep
        _raise_parse_error(tree, name, raw, start, end)


def _read_tweets(tree: Tree, name: str, posts_of) -> list[Post]:
    """The posts of one tweets file, read without a copy where the tree can map it."""
    return posts_of(parse_ytd(tree, name, _TWEETS_DECODER, raw=tree.read_buffer(name)))


def _raise_parse_error(
    tree: Tree, name: str, raw: bytes | bytearray | mmap.mmap, start: int, end: int
) -> NoReturn:
    """Name the file and the line and column of the first error (slow path)."""
    if isinstance(raw, mmap.mmap):
        raw = raw[:]
    decode_utf8(raw, f"{tree.label}:{name}")  # a non-UTF-8 byte gets its own message
    try:
        orjson.loads(raw[start:end])
    except orjson.JSONDecodeError as exc:
        # orjson counts lines and columns (1-based, in characters) from the start of the
        # JSON; add what precedes it ("window.YTD.tweets.part0 = ", a BOM is no column).
        line = raw.count(b"\n", 0, start) + exc.lineno
        column = exc.colno
        if exc.lineno == 1:
            line_start = raw.rfind(b"\n", 0, start) + 1
            before = raw[line_start:start]
            if line_start == 0:
                before = before.removeprefix(b"\xef\xbb\xbf")
            column += len(before.decode("utf-8"))
        where = f"at line {line}, column {column}: {exc.msg or 'invalid JSON'}"
    else:
        where = "(its structure is not valid JSON)"
    raise HuggingtweetsError(
        f"invalid JSON in {tree.label}:{name} {where}; the export may be damaged, download it again"
    )


# Exports always write this fixed-width form in UTC: matched and sliced rather than parsed
# with strptime (ten times slower), yet as strict: every digit where a digit must be.
_UTC_TIME_RE = re.compile(
    r"[A-Z][a-z]{2} ([A-Z][a-z]{2}) (0[1-9]|[12]\d|3[01]) ((?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d)"
    r" \+0000 ([1-9]\d{3})"
)


def twitter_time(value: str, where: str) -> str:
    """'Wed Oct 19 20:07:25 +0000 2022' -> '2022-10-19T20:07:25Z'; a date that is not one
    (such as a year '20X2' or 'Feb 30') is refused."""
    match = _UTC_TIME_RE.fullmatch(value)
    month = _MONTHS.get(match[1]) if match else None
    if match and month and (match[2] <= "28" or _is_date(match[4], month, match[2])):
        return f"{match[4]}-{month}-{match[2]}T{match[3]}Z"
    try:
        parsed = datetime.strptime(value, "%a %b %d %H:%M:%S %z %Y")
    except ValueError:
        raise HuggingtweetsError(
            f"{where}: unexpected date {value!r} (expected such as "
            "'Wed Oct 19 20:07:25 +0000 2022'); is this an X export file?"
        ) from None
    return parsed.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _is_date(year: str, month: str, day: str) -> bool:
    """Days 29 to 31 are not in every month."""
    try:
        datetime(int(year), int(month), int(day))
    except ValueError:
        return False
    return True


_ISO_SECONDS_RE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")


def _iso_seconds(value: str, where: str) -> str:
    """'2023-01-05T12:34:56.000Z' -> '2023-01-05T12:34:56Z' (compared as text with the
    posts' times, so any other form is refused rather than silently mis-ordered)."""
    if not _ISO_SECONDS_RE.match(value):
        raise HuggingtweetsError(
            f"{where}: unexpected date {value!r} (expected such as '2023-01-05T12:34:56.000Z')"
        )
    return value[:19] + "Z"


def read_profile(tree: Tree) -> tuple[str | None, str | None, str | None, str | None]:
    """(handle, display name, avatar URL, bio) from account.js / profile.js when present."""
    handle = name = avatar = bio = None
    account_file = tree.find("account.js")
    if account_file:
        for item in parse_ytd(tree, account_file, _ACCOUNT_DECODER, MAX_SMALL_FILE_BYTES):
            account = item.account or item
            handle = account.username or handle
            name = account.accountDisplayName or name
    profile_file = tree.find("profile.js")
    if profile_file:
        for item in parse_ytd(tree, profile_file, _PROFILE_DECODER, MAX_SMALL_FILE_BYTES):
            profile = item.profile or item
            avatar = profile.avatarMediaUrl or avatar
            bio = (profile.description.bio if profile.description else None) or bio
    return handle, name, avatar, bio


def _protected_spans(tree: Tree) -> list[tuple[str, str]]:
    """Periods (ISO start, ISO end) when the account was protected (followers only)."""
    name = tree.find("protected-history.js")
    if not name:
        return []
    where = f"{tree.label}:{name}"
    entries = parse_ytd(tree, name, _PROTECTED_DECODER, MAX_SMALL_FILE_BYTES)
    events = sorted(
        (_iso_seconds(h.protectedAt, where), (h.action or "").lower())
        for h in (i.protectedHistory or i for i in entries)
        if h.protectedAt
    )
    spans, start = [], None
    for when, action in events:
        if action == "protect" and start is None:
            start = when
        elif action == "unprotect" and start is not None:
            spans.append((start, when))
            start = None
    if start is not None:
        spans.append((start, "9999"))
    return spans


def _long_texts(tree: Tree) -> dict[str, list[str]]:
    """note-tweet.js: the whole text of long posts, keyed by creation second."""
    name = tree.find("note-tweet.js")
    notes: dict[str, list[str]] = {}
    if name:
        where = f"{tree.label}:{name}"
        for item in parse_ytd(tree, name, _NOTES_DECODER):
            note = item.noteTweet or item
            text = note.core.text if note.core else None
            if text and note.createdAt:
                notes.setdefault(_iso_seconds(note.createdAt, where), []).append(text)
    return notes


def _prefix_key(text: str) -> str:
    """A truncated post's visible start, comparable with its note's text."""
    text = html.unescape(re.sub(r"\s*https://t\.co/\S+\s*$", "", text)).rstrip("…").strip()
    return " ".join(text.split())[:40]


def _match_note(tweet_text: str, candidates: list[str]) -> str | None:
    key = _prefix_key(tweet_text)
    for note in candidates:
        if key and " ".join(note.split()).startswith(key):
            return note
    return None


def _tweet_post(
    tweet: _Tweet,
    handle: str,
    notes: dict[str, list[str]],
    protected: list[tuple[str, str]],
    where: str,
) -> Post | None:
    """One tweets.js entry as a Post (None when it has no id or text); ``where`` names the
    file in errors."""
    tweet_id = str(tweet.id_str or tweet.id or "")
    text = tweet.full_text if tweet.full_text is not None else tweet.text
    if not tweet_id or text is None:
        return None
    created_at = twitter_time(tweet.created_at, where) if tweet.created_at else None
    if created_at in notes:
        text = _match_note(text, notes[created_at]) or text
    quoted = False
    if tweet.entities and tweet.entities.urls:
        for url in tweet.entities.urls:
            match = _STATUS_URL_RE.match(url.expanded_url or "")
            quoted = quoted or bool(match and match[1] != tweet_id)
    visibility = "public"
    if protected and created_at and any(a <= created_at < b for a, b in protected):
        visibility = "followers"
    return Post(
        platform=PLATFORM,
        id=tweet_id,
        author=handle,
        created_at=created_at,
        text=text,
        is_repost=text.startswith("RT @"),
        is_reply=bool(tweet.in_reply_to_status_id_str),
        is_quote=quoted,
        visibility=visibility,
        lang=tweet.lang or None,
        url=f"https://x.com/{handle}/status/{tweet_id}",
    )


def read_x_export(tree: Tree, handle: str | None = None) -> Collected:
    export_handle, display_name, avatar, bio = read_profile(tree)
    handle = export_handle if handle is None else handle
    if handle is None:
        raise HuggingtweetsError(
            f"{tree.label} has no account.js to name the account: pass --handle YOUR_HANDLE"
        )
    handle = check_handle(handle)
    files = tree.find_all(is_tweet_file)
    folder = min((str(PurePosixPath(f).parent) for f in files), key=lambda d: (d.count("/"), d))
    files = [f for f in files if str(PurePosixPath(f).parent) == folder]
    notes = _long_texts(tree)
    protected = _protected_spans(tree)

    posts: list[Post] = []
    seen: set[str] = set()
    for name in files:

        def posts_of(entries: list[_TweetEntry], where: str = f"{tree.label}:{name}") -> list[Post]:
            out = []
            for entry in entries:
                post = _tweet_post(entry.tweet or entry, handle, notes, protected, where)
                if post is None:
                    raise HuggingtweetsError(
                        f"{where}: an entry has no id or text; is this a tweets file?"
                    )
                out.append(post)
            return out

        for post in _read_tweets(tree, name, posts_of):
            if post.id not in seen:  # multi-part exports may overlap
                seen.add(post.id)
                posts.append(post)
    account = Account(
        platform=PLATFORM,
        handle=handle,
        display_name=display_name,
        avatar_url=avatar,
        description=bio,
    )
    return Collected(account, posts)


register_file_format(
    "x-export",
    lambda given: looks_like_export(given.tree) if given.archive else is_tweet_file(given.name),
    lambda given, options: read_x_export(given.tree, options.handle),
    "an X export (.zip, folder or tweets.js)",
    platform=PLATFORM,
    suffixes=(".zip", ".js"),
    folder="an X/Twitter export (no data/tweets.js)",
)
