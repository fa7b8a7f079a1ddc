"""The normalized records every source produces: one per post, one per account."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import orjson

from .errors import HuggingtweetsError

VISIBILITIES = ("public", "unlisted", "followers", "direct")
PRIVATE_VISIBILITIES = frozenset({"followers", "direct"})

# Handles become file names in the run directory, so only characters that are safe
# there are allowed: letters, digits, "_", "-", "." (Bluesky) and "@" (Mastodon's
# user@instance). No "/", no leading dot, no "..".
_HANDLE_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.@-]{0,99}")


def check_handle(handle: str) -> str:
    """Return ``handle`` without a leading "@", or raise if it is unsafe as a file name."""
    name = handle[1:] if handle.startswith("@") else handle
    if not _HANDLE_RE.fullmatch(name) or ".." in name:
        raise HuggingtweetsError(
            f"invalid handle {handle!r}: use letters, digits, '_', '-', '.' or '@' "
            "(no '/', no '..', at most 100 characters)"
        )
    return name


@dataclass(slots=True)
class Post:
    platform: str
    id: str
    author: str
    created_at: str | None  # UTC, ISO-8601 ("2022-10-19T20:07:25Z"); None when unknown
    text: str  # full text as published (HTML entities as the platform sent them)
    is_repost: bool = False
    is_reply: bool = False
    is_quote: bool = False
    visibility: str = "public"
    lang: str | None = None
    url: str | None = None

    @property
    def is_private(self) -> bool:
        return self.visibility in PRIVATE_VISIBILITIES

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Post:
        return cls(**{name: data[name] for name in _POST_FIELDS if name in data})


_POST_FIELDS = tuple(f.name for f in fields(Post))
POST_REQUIRED = ("platform", "id", "author", "text")


@dataclass(slots=True)
class Account:
    platform: str
    handle: str
    display_name: str | None = None
    avatar_url: str | None = None
    description: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Account:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    @property
    def name(self) -> str:
        """What to call the account in tables and cards."""
        return self.display_name or self.handle


@dataclass(slots=True)
class Collected:
    """One account and its posts, as a source delivered them."""

    account: Account
    posts: list[Post]


def dump_jsonl(rows: Iterable[dict]) -> bytes:
    return b"".join(orjson.dumps(row) + b"\n" for row in rows)


def iter_jsonl(path: Path) -> Iterator[tuple[int, dict]]:
    """Yield (line number, object) for each non-blank line; bad lines raise a clear error."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise HuggingtweetsError(f"file not found: {path}") from None
    for number, line in enumerate(data.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise HuggingtweetsError(
                f"invalid JSON in {path} at line {number}: {exc.args[0].split(':')[0]}"
            ) from None
        if not isinstance(row, dict):
            raise HuggingtweetsError(f"{path} line {number}: expected a JSON object")
        yield number, row


def is_post_record(row: dict) -> bool:
    """True when a JSON object is one of our own normalized post records."""
    return all(key in row for key in POST_REQUIRED)
