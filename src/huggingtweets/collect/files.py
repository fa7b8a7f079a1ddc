"""Plain files: CSV, JSON Lines and text (one post a line).

A malformed CSV is an error naming its line, never posts silently run together. A quoted
field may hold line breaks (a post written on several lines), so two rules catch a quote
gone astray: quotes must be well formed (``csv``'s strict mode: a quote inside a quoted
field is doubled, ``""``, and a quoted field is closed before the file ends), and one
record may not span more than :data:`MAX_RECORD_LINES` lines (1,000: far more than any
post has, while a stray quote swallows every row up to the next quote).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import msgspec

from huggingtweets.collect.registry import check_text_column, register_file_format
from huggingtweets.collect.tree import decode_utf8, read_file_bounded
from huggingtweets.core.errors import HuggingtweetsError
from huggingtweets.core.records import (
    Account,
    Collected,
    Post,
    check_handle,
    iter_jsonl,
    make_handle,
    visibility_from_name,
)
from huggingtweets.core.times import normalize_times, utc_iso

PLATFORM = "file"
TEXT_COLUMNS = ("text", "full_text", "content", "tweet")
_ID_COLUMNS = ("id", "id_str", "tweet_id", "post_id")
_DATE_COLUMNS = ("created_at", "date", "timestamp", "published")
# Posts saved from an API (Mastodon's statuses, say) carry their audience: it is kept, so
# that followers-only and direct posts are dropped as private.
_VISIBILITY_COLUMNS = ("visibility",)
MAX_RECORD_LINES = 1_000


def _pick(keys, wanted: tuple[str, ...]) -> str | None:
    """The first of ``wanted`` among ``keys`` (compared case-insensitively)."""
    lowered = {str(k).lower().strip(): k for k in keys if k is not None}
    return next((lowered[w] for w in wanted if w in lowered), None)


def _text_keys(text_column: str | None) -> tuple[str, ...]:
    return (check_text_column(text_column).lower(),) if text_column is not None else TEXT_COLUMNS


def _as_text(value: object) -> str:
    return value if isinstance(value, str) else "" if value is None else str(value)


def _post(
    handle: str, number: int, post_id: object, created_at: object, text: str, visibility: object
) -> Post:
    if created_at is not None and not isinstance(created_at, str):
        # A JSON number (a Unix time) or anything else; text is left to normalize_times,
        # which reads a whole file's times at once.
        created_at = utc_iso(created_at)
    return Post(
        platform=PLATFORM,
        id=str(post_id) if post_id not in (None, "") else str(number),
        author=handle,
        created_at=created_at,
        text=text,
        # The original's rule, for any file of tweets: a retweet starts with "RT @".
        is_repost=text.startswith("RT @"),
        visibility="public" if visibility in (None, "") else visibility_from_name(visibility),
    )


def _cell(row: list[str], at: int | None) -> str | None:
    return row[at] if at is not None and at < len(row) else None


def default_handle(path: Path, handle: str | None) -> str:
    """``--handle`` when given, else one made from the file's name ("my posts.csv" ->
    "my_posts"): a file name is not chosen as a handle, so it is made safe, not refused."""
    if handle is not None:
        return check_handle(handle)
    name = make_handle(path.stem)
    if name is None:
        raise HuggingtweetsError(
            f"cannot make a handle from the file name {path.name!r} (the handle comes from "
            "the file name when no --handle is given): pass --handle NAME"
        )
    return check_handle(name)


def read_csv(path: Path, handle: str | None, text_column: str | None) -> Collected:
    keys = _text_keys(text_column)
    handle = default_handle(path, handle)
    text = decode_utf8(read_file_bounded(path), str(path))
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    first_line = 1  # where the record being read starts
    try:
        columns = next(reader, [])
        key = _pick(columns, keys)
        if key is None:
            wanted = (
                f"--text-column {text_column!r}"
                if text_column
                else "one of " + ", ".join(TEXT_COLUMNS)
            )
            raise HuggingtweetsError(
                f"{path}: no text column found (columns: {', '.join(columns) or 'none'}); "
                f"expected {wanted}, or pass --text-column NAME"
            )
        # Column positions once, not a dict per row: CSV exports can be large.
        text_at = columns.index(key)
        id_key, date_key = _pick(columns, _ID_COLUMNS), _pick(columns, _DATE_COLUMNS)
        visibility_key = _pick(columns, _VISIBILITY_COLUMNS)
        id_at = columns.index(id_key) if id_key else None
        date_at = columns.index(date_key) if date_key else None
        visibility_at = columns.index(visibility_key) if visibility_key else None
        posts = []
        first_line = reader.line_num + 1
        for number, row in enumerate(reader, start=1):
            last_line = reader.line_num
            if last_line - first_line >= MAX_RECORD_LINES:
                raise csv.Error(
                    f"one record spans {last_line - first_line + 1:,} lines, more than "
                    f"{MAX_RECORD_LINES:,}"
                )
            first_line = last_line + 1
            if not row:
                continue
            posts.append(
                _post(
                    handle,
                    number,
                    _cell(row, id_at),
                    _cell(row, date_at),
                    _cell(row, text_at) or "",
                    _cell(row, visibility_at),
                )
            )
    except csv.Error as exc:
        found = "" if reader.line_num <= first_line else f", found at line {reader.line_num}"
        raise HuggingtweetsError(
            f"{path}: malformed CSV in the record starting at line {first_line} ({exc}{found}); "
            'a quote inside a quoted field must be doubled (""), and every quoted field closed'
        ) from None
    normalize_times(posts)
    return Collected(Account(PLATFORM, handle), posts, positional_ids=id_at is None)


_POST_LINES = msgspec.json.Decoder(Post)


def read_jsonl(path: Path, handle: str | None, text_column: str | None) -> Collected:
    """JSON Lines: either our own post records (kept as they are) or any objects with a
    text field."""
    keys = _text_keys(text_column)
    data = read_file_bounded(path)
    try:
        posts = [] if not data or data.isspace() else _POST_LINES.decode_lines(data)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):  # not our records
        posts = None
    if posts:
        account = Account(posts[0].platform, posts[0].author)
        profile = path.with_name(path.name.removesuffix(".jsonl") + ".account.json")
        if profile.exists():  # written beside the posts by `collect`
            account = Account.read(profile)
        account.handle = check_handle(account.handle if handle is None else handle)
        for post in posts:
            post.author = account.handle
        normalize_times(posts)  # a hand-made file of records may hold other forms
        return Collected(account, posts)
    handle = default_handle(path, handle)
    posts = []
    with_ids = False
    for number, row in iter_jsonl(path):
        key = _pick(row, keys)
        if key is None:
            raise HuggingtweetsError(
                f"{path} line {number}: no text field (expected one of "
                f"{', '.join(TEXT_COLUMNS)}, or pass --text-column NAME)"
            )
        post_id, created_at = _pick(row, _ID_COLUMNS), _pick(row, _DATE_COLUMNS)
        visibility = _pick(row, _VISIBILITY_COLUMNS)
        with_ids = with_ids or (post_id is not None and row[post_id] not in (None, ""))
        posts.append(
            _post(
                handle,
                number,
                row[post_id] if post_id else None,
                row[created_at] if created_at else None,
                _as_text(row[key]),
                row[visibility] if visibility else None,
            )
        )
    normalize_times(posts)
    return Collected(Account(PLATFORM, handle), posts, positional_ids=not with_ids)


def read_text(path: Path, handle: str | None) -> Collected:
    handle = default_handle(path, handle)
    text = decode_utf8(read_file_bounded(path), str(path))
    posts = [
        Post(
            platform=PLATFORM,
            id=str(n),
            author=handle,
            created_at=None,
            text=line,
            is_repost=line.startswith("RT @"),
        )
        for n, line in enumerate(text.splitlines(), start=1)
        if line.strip()
    ]
    return Collected(Account(PLATFORM, handle), posts, positional_ids=True)


register_file_format(
    "csv",
    lambda given: given.name.endswith(".csv"),
    lambda given, options: read_csv(given.path, options.handle, options.text_column),
    ".csv",
    suffixes=(".csv",),
)
register_file_format(
    "jsonl",
    lambda given: given.name.endswith((".jsonl", ".ndjson")),
    lambda given, options: read_jsonl(given.path, options.handle, options.text_column),
    ".jsonl",
    suffixes=(".jsonl", ".ndjson"),
)
register_file_format(
    "text",
    lambda given: given.name.endswith(".txt"),
    lambda given, options: read_text(given.path, options.handle),
    ".txt",
    suffixes=(".txt",),
)
