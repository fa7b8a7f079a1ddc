"""What a live collection keeps on disk between runs: the posts fetched so far, grown page
by page, and the state file that says where to continue.

    posts/<handle>.jsonl         complete post records, one a line, appended page by page
    posts/<handle>.state.json    where to continue (atomically replaced after each page)

A page is appended with one write and fsync'd *before* the state moves past it, so a crash
loses at most the page in flight, which the next run fetches again; posts already in the
file are skipped by id, so nothing is ever written twice. A line torn by a crash in
mid-write is cut off when the file is opened again.
"""

from __future__ import annotations

import os
from pathlib import Path

import orjson

from huggingtweets.core.errors import HuggingtweetsError
from huggingtweets.core.records import Post, dump_jsonl, without_private_text

STATE_VERSION = 1


class PostCache:
    """``posts/<handle>.jsonl`` grown page by page; knows every id it holds."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.index: dict[str, int] = {}  # post id -> its record number (0 = first line)
        self.count = 0
        self.platforms: set[str] = set()
        self.repaired_bytes = 0
        if path.exists():
            self._load()

    def _load(self) -> None:
        try:
            data = self.path.read_bytes()
        except OSError as exc:
            raise HuggingtweetsError(f"cannot read {self.path}: {exc.strerror}") from None
        lines = data.split(b"\n")
        # A crash in mid-write leaves a last line without its newline (cut it off); a
        # last line that is not JSON at all (a page half-flushed by the disk) likewise.
        if lines[-1] == b"":
            lines.pop()
        else:
            self.repaired_bytes = len(lines.pop())
        rows = []
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                row = orjson.loads(line)
                if not isinstance(row, dict) or "id" not in row:
                    raise ValueError("not a post record")
            except ValueError:
                if number == len(lines):
                    self.repaired_bytes += len(line) + 1
                    break
                raise HuggingtweetsError(
                    f"{self.path} line {number} is not a post record; move the file away "
                    "to collect again from the start"
                ) from None
            rows.append(row)
        if self.repaired_bytes:
            keep = len(data) - self.repaired_bytes
            with open(self.path, "r+b") as handle:
                handle.truncate(keep)
                handle.flush()
                os.fsync(handle.fileno())
        for row in rows:
            self.index.setdefault(str(row["id"]), self.count)
            self.platforms.add(str(row.get("platform")))
            self.count += 1

    def newest_id(self) -> str | None:
        """The newest post's id: ids of X and Mastodon grow with time (snowflakes)."""
        return max(self.index, key=lambda i: (len(i), i), default=None)

    def append(self, posts: list[Post]) -> list[Post]:
        """Append the posts not yet held (durably, in one write, private ones without
        their text); returns those."""
        new: list[Post] = []
        ids: set[str] = set()
        for post in without_private_text(posts):
            if post.id not in self.index and post.id not in ids:
                ids.add(post.id)
                new.append(post)
        if not new:
            return new
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "ab") as handle:
            handle.write(dump_jsonl(new))
            handle.flush()
            os.fsync(handle.fileno())
        for post in new:
            self.index[post.id] = self.count
            self.count += 1
        return new


# -- the state file --------------------------------------------------------------


def optional_str(value: object) -> bool:
    return value is None or isinstance(value, str)


def state_problem(state: object) -> str | None:
    """What makes ``state`` (a state.json's JSON) unusable, or None."""
    if not isinstance(state, dict):
        return f"a JSON {type(state).__name__}, not an object"
    if state.get("version") != STATE_VERSION:
        return f"version {state.get('version')!r}, not {STATE_VERSION}"
    for key in ("platform", "account_id", "backfill", "update"):
        if key not in state:
            return f'no "{key}"'
    if not isinstance(state["platform"], str):
        return '"platform" is not a text'
    if not isinstance(state["account_id"], str | int) or isinstance(state["account_id"], bool):
        return '"account_id" is not a text'
    backfill = state["backfill"]
    if not (
        isinstance(backfill, dict)
        and optional_str(backfill.get("cursor"))
        and isinstance(backfill.get("done"), bool)
    ):
        return '"backfill" is not {"cursor": text or null, "done": true or false}'
    update = state["update"]
    if update is not None:
        known = update.get("known_before") if isinstance(update, dict) else None
        if not (
            isinstance(update, dict)
            and optional_str(update.get("cursor"))
            and optional_str(update.get("since"))
            and isinstance(known, int)
            and not isinstance(known, bool)
            and known >= 0
        ):
            return '"update" is neither null nor {"cursor", "since", "known_before"}'
    return None
