"""Plain files: CSV, JSON Lines and text (one post a line)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import orjson

from ..errors import HuggingtweetsError
from ..records import Account, Collected, Post, check_handle, is_post_record, iter_jsonl
from .tree import decode_utf8

PLATFORM = "file"
TEXT_COLUMNS = ("text", "full_text", "content", "tweet")
_ID_COLUMNS = ("id", "id_str", "tweet_id", "post_id")
_DATE_COLUMNS = ("created_at", "date", "timestamp", "published")


def _pick(row_keys, wanted: tuple[str, ...]) -> str | None:
    lowered = {k.lower().strip(): k for k in row_keys if k is not None}
    return next((lowered[w] for w in wanted if w in lowered), None)


def _post(handle: str, number: int, row: dict, text_key: str) -> Post:
    id_key = _pick(row, _ID_COLUMNS)
    date_key = _pick(row, _DATE_COLUMNS)
    text = row[text_key]
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    return Post(
        platform=PLATFORM,
        id=str(row[id_key]) if id_key and row[id_key] not in (None, "") else str(number),
        author=handle,
        created_at=str(row[date_key]) if date_key and row[date_key] else None,
        text=text,
        # The original's rule, for any file of tweets: a retweet starts with "RT @".
        is_repost=text.startswith("RT @"),
    )


def default_handle(path: Path, handle: str | None) -> str:
    return check_handle(path.stem if handle is None else handle)


def read_csv(path: Path, handle: str | None, text_column: str | None) -> Collected:
    handle = default_handle(path, handle)
    text = decode_utf8(path.read_bytes(), str(path))
    reader = csv.DictReader(io.StringIO(text, newline=""))
    columns = reader.fieldnames or []
    key = _pick(columns, (text_column.lower(),) if text_column else TEXT_COLUMNS)
    if key is None:
        wanted = (
            f"--text-column {text_column!r}" if text_column else "one of " + ", ".join(TEXT_COLUMNS)
        )
        raise HuggingtweetsError(
            f"{path}: no text column found (columns: {', '.join(columns) or 'none'}); "
            f"expected {wanted}, or pass --text-column NAME"
        )
    try:
        posts = [_post(handle, n, row, key) for n, row in enumerate(reader, start=1)]
    except csv.Error as exc:
        raise HuggingtweetsError(
            f"{path}: malformed CSV at line {reader.line_num}: {exc}"
        ) from None
    return Collected(Account(PLATFORM, handle), posts)


def read_jsonl(path: Path, handle: str | None, text_column: str | None) -> Collected:
    """JSON Lines: either our own post records (kept as they are) or any objects with a
    text field."""
    rows = list(iter_jsonl(path))
    if rows and all(is_post_record(row) for _, row in rows):
        posts = [Post.from_dict(row) for _, row in rows]
        account = Account(posts[0].platform, posts[0].author)
        profile = path.with_name(path.name.removesuffix(".jsonl") + ".account.json")
        if profile.exists():  # written beside the posts by `collect`
            account = Account.from_dict(orjson.loads(profile.read_bytes()))
        account.handle = check_handle(account.handle if handle is None else handle)
        for post in posts:
            post.author = account.handle
        return Collected(account, posts)
    handle = default_handle(path, handle)
    posts = []
    for number, row in rows:
        key = _pick(row, (text_column.lower(),) if text_column else TEXT_COLUMNS)
        if key is None:
            raise HuggingtweetsError(
                f"{path} line {number}: no text field (expected one of "
                f"{', '.join(TEXT_COLUMNS)}, or pass --text-column NAME)"
            )
        posts.append(_post(handle, number, row, key))
    return Collected(Account(PLATFORM, handle), posts)


def read_text(path: Path, handle: str | None, text_column: str | None = None) -> Collected:
    handle = default_handle(path, handle)
    text = decode_utf8(path.read_bytes(), str(path))
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
    return Collected(Account(PLATFORM, handle), posts)
