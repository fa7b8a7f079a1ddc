"""The normalized records every source produces: one per post, one per account."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import msgspec
import orjson

from huggingtweets.core.errors import HuggingtweetsError

VISIBILITIES = ("public", "unlisted", "followers", "direct")
PUBLIC_VISIBILITIES = frozenset({"public", "unlisted"})  # the rest is private
# How other tools name them (Mastodon's API says "private" for followers-only). A name not
# here is read as "followers": a post of unknown audience must never reach a dataset.
VISIBILITY_NAMES = {
    "public": "public",
    "unlisted": "unlisted",
    "followers": "followers",
    "private": "followers",
    "direct": "direct",
}


def visibility_from_name(name: object) -> str:
    """One of VISIBILITIES for a visibility as another tool names it."""
    return VISIBILITY_NAMES.get(str(name).strip().lower(), "followers")


# Handles become file names in the run directory, so only characters that are safe
# there are allowed: letters, digits, "_", "-", "." (Bluesky) and "@" (Mastodon's
# user@instance). No "/", no leading dot, no "..".
_HANDLE_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.@-]{0,99}")


# What check_handle refuses, as runs: each becomes one "_" in a handle made from a name.
_NOT_IN_HANDLE_RE = re.compile(r"[^A-Za-z0-9_.@-]+|\.\.+")


def make_handle(name: str) -> str | None:
    """A safe handle made from a name that was not chosen as one (a file's, a speaker's):
    "my posts (2023)" -> "my_posts_2023_"; None when no letter or digit is left."""
    handle = _NOT_IN_HANDLE_RE.sub("_", name).lstrip(".@-_")[:100]
    return handle if any(c.isalnum() for c in handle) else None


def check_handle(handle: str) -> str:
    """Return ``handle`` without a leading "@", or raise if it is unsafe as a file name."""
    name = handle[1:] if handle.startswith("@") else handle
    if not _HANDLE_RE.fullmatch(name) or ".." in name:
        raise HuggingtweetsError(
            f"invalid handle {handle!r}: use letters, digits, '_', '-', '.' or '@' "
            "(no '/', no '..', at most 100 characters)"
        )
    return name


# -- records -----------------------------------------------------------------------


class Post(msgspec.Struct, gc=False):
    """One post, normalized. A msgspec Struct: created, encoded and decoded several times
    faster than a dataclass, which matters when an export holds 100,000 posts."""

    platform: str
    id: str
    author: str
    created_at: str | None  # UTC, ISO-8601 ("2022-10-19T20:07:25Z"); None when unknown
    # The text as the platform sent it: X (export and API) and plain files may hold HTML
    # entities ("&amp;"), which prepare decodes; Mastodon's HTML is already plain text here
    # (entities decoded once, by the source) and Bluesky sends raw text.
    text: str
    is_repost: bool = False
    is_reply: bool = False
    is_quote: bool = False
    visibility: str = "public"  # one of VISIBILITIES; any other value counts as private
    lang: str | None = None
    url: str | None = None

    @property
    def is_private(self) -> bool:
        return self.visibility not in PUBLIC_VISIBILITIES

    def to_dict(self) -> dict:
        return msgspec.structs.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Post:
        """A Post from a JSON object; unknown keys are ignored, wrong types refused."""
        try:
            return msgspec.convert(data, cls)
        except msgspec.ValidationError as exc:
            raise HuggingtweetsError(f"not a post record: {exc}") from None


class Account(msgspec.Struct, gc=False):
    platform: str
    handle: str
    display_name: str | None = None
    avatar_url: str | None = None
    description: str | None = None

    def to_dict(self) -> dict:
        return msgspec.structs.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Account:
        try:
            return msgspec.convert(data, cls)
        except msgspec.ValidationError as exc:
            raise HuggingtweetsError(f"not an account record: {exc}") from None

    @classmethod
    def read(cls, path: Path) -> Account:
        """An ``<handle>.account.json`` file, as ``collect`` writes it."""
        try:
            return cls.from_dict(orjson.loads(path.read_bytes()))
        except orjson.JSONDecodeError:
            raise HuggingtweetsError(
                f"{path} is not valid JSON; delete it (the posts beside it are kept)"
            ) from None

    @property
    def name(self) -> str:
        """What to call the account in tables and cards."""
        return self.display_name or self.handle


def without_private_text(posts: list[Post]) -> list[Post]:
    """``posts`` with the text of private ones (followers-only, direct) emptied: what is
    written to disk. Their records stay, for prepare to count them as private."""
    if all(p.visibility in PUBLIC_VISIBILITIES for p in posts):
        return posts
    return [
        p if p.visibility in PUBLIC_VISIBILITIES else msgspec.structs.replace(p, text="")
        for p in posts
    ]


@dataclass(slots=True)
class AccountPosts:
    """One account and its posts, as a source delivered them."""

    account: Account
    posts: list[Post]
    # The ids are the posts' places in the file (a .txt, a CSV or JSONL without ids), not
    # ids of the platform's: another version of the file numbers the same posts otherwise.
    positional_ids: bool = False


# The earlier name, kept so that scripts written against it go on working.
Collected = AccountPosts


_ENCODER = msgspec.json.Encoder()


def dump_jsonl(rows: Iterable[object]) -> bytes:
    """JSON Lines of dicts or records."""
    return _ENCODER.encode_lines(rows if isinstance(rows, list) else list(rows))


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
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as bad:
                raise HuggingtweetsError(
                    f"{path} is not UTF-8 text (byte 0x{line[bad.start]:02x} at line {number}); "
                    "re-save it as UTF-8"
                ) from None
            raise HuggingtweetsError(
                f"invalid JSON in {path} at line {number}, column {exc.colno}: {exc.msg}"
            ) from None
        if not isinstance(row, dict):
            raise HuggingtweetsError(f"{path} line {number}: expected a JSON object")
        yield number, row


_POSTS_DECODER = msgspec.json.Decoder(Post)


def read_posts(path: Path) -> list[Post]:
    """Our own posts file (JSON Lines of Post records)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise HuggingtweetsError(f"file not found: {path}") from None
    try:
        return _POSTS_DECODER.decode_lines(data)
    except (msgspec.DecodeError, UnicodeDecodeError):
        # Slow path, only to name the line at fault.
        return [Post.from_dict(row) for _, row in iter_jsonl(path)]
