"""The X/Twitter data export ("Download an archive of your data").

Files are JavaScript assignments: ``window.YTD.tweets.part0 = [ {"tweet": {...}}, ... ]``.
Newer exports call the file ``tweets.js`` (multi-part: ``tweets-part1.js`` ...), older ones
``tweet.js``. Long posts keep a truncated ``full_text`` in ``tweets.js`` and their whole
text in ``note-tweet.js``. ``deleted-tweets.js`` is never read: deleted posts stay out.
"""

from __future__ import annotations

import html
import re
from datetime import datetime, timezone
from pathlib import PurePosixPath

import orjson

from ..errors import HuggingtweetsError
from ..records import Account, Collected, Post, check_handle
from .tree import Tree, decode_utf8

PLATFORM = "x"

_TWEET_FILE_RE = re.compile(r"tweets?(-part\d+)?\.js")
_YTD_PREFIX_RE = re.compile(rb"\A\s*window\.YTD\.[A-Za-z0-9_]+\.part\d+\s*=\s*")
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


def parse_ytd(tree: Tree, name: str) -> list:
    """Parse one ``window.YTD.<kind>.partN = [...]`` file, naming file and position on error."""
    raw = tree.read_bytes(name)
    decode_utf8(raw, f"{tree.label}:{name}")  # a clear error for non-UTF-8 bytes first
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    prefix = _YTD_PREFIX_RE.match(raw)
    body = raw[prefix.end() :] if prefix else raw
    body = body.rstrip().removesuffix(b";")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        # orjson counts from the start of the JSON; report the position in the file.
        offset = (prefix.end() if prefix else 0) + exc.pos
        line = raw.count(b"\n", 0, offset) + 1
        column = offset - (raw.rfind(b"\n", 0, offset) + 1) + 1
        reason = exc.msg.split(":")[0] if exc.msg else "invalid JSON"
        raise HuggingtweetsError(
            f"invalid JSON in {tree.label}:{name} at line {line}, column {column}: {reason}; "
            "the export may be damaged, download it again"
        ) from None
    if not isinstance(data, list):
        raise HuggingtweetsError(f"{tree.label}:{name}: expected a list of entries")
    return data


def twitter_time(value: str) -> str:
    """'Wed Oct 19 20:07:25 +0000 2022' -> '2022-10-19T20:07:25Z' (a fast path for UTC)."""
    parts = value.split()
    if len(parts) == 6 and parts[4] == "+0000" and parts[1] in _MONTHS:
        return f"{parts[5]}-{_MONTHS[parts[1]]}-{int(parts[2]):02d}T{parts[3]}Z"
    parsed = datetime.strptime(value, "%a %b %d %H:%M:%S %z %Y")
    return parsed.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _iso_seconds(value: str) -> str:
    """'2023-01-05T12:34:56.000Z' -> '2023-01-05T12:34:56Z'."""
    return value[:19] + "Z"


def _entry(obj: dict, key: str) -> dict:
    return obj.get(key, obj) if isinstance(obj, dict) else {}


def read_profile(tree: Tree) -> tuple[str | None, str | None, str | None, str | None]:
    """(handle, display name, avatar URL, bio) from account.js / profile.js when present."""
    handle = name = avatar = bio = None
    account_file = tree.find("account.js")
    if account_file:
        for item in parse_ytd(tree, account_file):
            account = _entry(item, "account")
            handle = account.get("username") or handle
            name = account.get("accountDisplayName") or name
    profile_file = tree.find("profile.js")
    if profile_file:
        for item in parse_ytd(tree, profile_file):
            profile = _entry(item, "profile")
            avatar = profile.get("avatarMediaUrl") or avatar
            bio = (profile.get("description") or {}).get("bio") or bio
    return handle, name, avatar, bio


def _protected_spans(tree: Tree) -> list[tuple[str, str]]:
    """Periods (ISO start, ISO end) when the account was protected (followers only)."""
    name = tree.find("protected-history.js")
    if not name:
        return []
    events = sorted(
        (_iso_seconds(h["protectedAt"]), h.get("action", ""))
        for h in (_entry(i, "protectedHistory") for i in parse_ytd(tree, name))
        if h.get("protectedAt")
    )
    spans, start = [], None
    for when, action in events:
        if action.lower() == "protect" and start is None:
            start = when
        elif action.lower() == "unprotect" and start is not None:
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
        for item in parse_ytd(tree, name):
            note = _entry(item, "noteTweet")
            text = (note.get("core") or {}).get("text")
            if text and note.get("createdAt"):
                notes.setdefault(_iso_seconds(note["createdAt"]), []).append(text)
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


def read_x_export(tree: Tree, handle: str | None = None) -> Collected:
    export_handle, display_name, avatar, bio = read_profile(tree)
    handle = handle or export_handle
    if not handle:
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
        for item in parse_ytd(tree, name):
            tweet = _entry(item, "tweet")
            tweet_id = tweet.get("id_str") or str(tweet.get("id", ""))
            text = tweet.get("full_text", tweet.get("text"))
            if not tweet_id or text is None:
                raise HuggingtweetsError(
                    f"{tree.label}:{name}: an entry has no id or text; is this a tweets file?"
                )
            if tweet_id in seen:
                continue
            seen.add(tweet_id)
            created = tweet.get("created_at")
            created_at = twitter_time(created) if created else None
            if created_at and created_at in notes:
                text = _match_note(text, notes[created_at]) or text
            urls = (tweet.get("entities") or {}).get("urls") or ()
            quoted = any(
                (m := _STATUS_URL_RE.match(u.get("expanded_url") or "")) and m[1] != tweet_id
                for u in urls
            )
            visibility = "public"
            if created_at and any(a <= created_at < b for a, b in protected):
                visibility = "followers"
            posts.append(
                Post(
                    platform=PLATFORM,
                    id=tweet_id,
                    author=handle,
                    created_at=created_at,
                    text=text,
                    is_repost=text.startswith("RT @"),
                    is_reply=bool(tweet.get("in_reply_to_status_id_str")),
                    is_quote=quoted,
                    visibility=visibility,
                    lang=tweet.get("lang") or None,
                    url=f"https://x.com/{handle}/status/{tweet_id}",
                )
            )
    account = Account(
        platform=PLATFORM,
        handle=handle,
        display_name=display_name,
        avatar_url=avatar,
        description=bio,
    )
    return Collected(account, posts)
