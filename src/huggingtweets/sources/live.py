"""What the live sources (X API, Bluesky, Mastodon) share: collecting page by page into
the run directory so that nothing fetched is lost, resuming, ``--update``, waiting out
rate limits, retrying faults with bounded back-off, and the progress bar.

The files, beside the other stages' (see DESIGN.md)::

    posts/<handle>.jsonl         complete post records, one a line, appended page by page
    posts/<handle>.account.json  the profile, rewritten (atomically) on every run
    posts/<handle>.state.json    where to continue (atomically replaced after each page)

A page is appended with one write and fsync'd *before* the state moves past it, so a crash
or Ctrl-C loses at most the page in flight, which the next run fetches again; posts already
in the file are skipped by id, so nothing is ever written twice. A line torn by a crash in
mid-write is cut off when the file is opened again.
"""

from __future__ import annotations

import abc
import contextlib
import email.utils
import math
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import ClassVar, Literal, NamedTuple, TypeVar

import orjson
from rich.markup import escape
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeRemainingColumn,
)

from ..console import err_console
from ..errors import HuggingtweetsError
from ..options import check_options, option
from ..records import Account, Collected, Post, dump_jsonl, without_private_text
from ..runs import RunDir, write_json
from ..times import parse_time
from . import Source, SourceOptions

T = TypeVar("T")
STATE_VERSION = 1
BACKOFF_ENV = "HUGGINGTWEETS_BACKOFF_BASE"
MAX_RATE_LIMIT_WAITS = 10  # in a row, for one request: a server that never lets us in


def _default_backoff_base() -> float:
    value = os.environ.get(BACKOFF_ENV)
    if not value:
        return 1.0
    try:
        base = float(value)
    except ValueError:
        raise HuggingtweetsError(f"{BACKOFF_ENV}={value!r}: expected a number of seconds") from None
    if not (math.isfinite(base) and base >= 0):
        raise HuggingtweetsError(f"{BACKOFF_ENV}={value!r}: expected 0 seconds or more")
    return base


@dataclass
class LiveOptions:
    """How live accounts are fetched (``collect`` / ``prepare`` / ``train`` options)."""

    update: bool = option(
        False, help="Live accounts: fetch only posts newer than the newest one collected."
    )
    wait: bool = option(
        True,
        flag="--no-wait",
        help="Live accounts: on a rate limit, stop (run again later to continue) instead of "
        "waiting for the reset.",
    )
    timeout: float = option(
        30.0,
        min=0,
        min_open=True,
        metavar="SECONDS",
        help="Live accounts: time-out of every request.",
    )
    retries: int = option(
        5,
        min=0,
        max=100,
        help="Live accounts: retries of a request after a 5xx, time-out or dropped connection "
        "(exponential back-off).",
    )
    backoff_base: float = option(
        default_factory=_default_backoff_base,
        min=0,
        cli=False,
        help="The first retry's delay in seconds (env HUGGINGTWEETS_BACKOFF_BASE).",
    )
    backoff_max: float = option(60.0, min=0, cli=False, help="The longest delay between retries.")
    x_api_url: str | None = option(
        None,
        metavar="URL",
        help="X API base URL [env HUGGINGTWEETS_X_API_URL; default https://api.twitter.com].",
    )
    bsky_service: str | None = option(
        None,
        metavar="URL",
        help="Bluesky AppView [env HUGGINGTWEETS_BSKY_SERVICE; default "
        "https://public.api.bsky.app].",
    )
    mastodon_url: str | None = option(
        None,
        metavar="URL",
        help="Mastodon API base URL when it is not https://INSTANCE "
        "[env HUGGINGTWEETS_MASTODON_URL].",
    )

    def __post_init__(self) -> None:
        check_options(self)


def setting(value: str | None, env: str, default: str) -> str:
    """An option's value, else the environment variable's, else the default."""
    return (value or os.environ.get(env) or default).rstrip("/")


# -- what a platform module provides ---------------------------------------------


class Page(NamedTuple):
    posts: list[Post]
    next_cursor: str | None  # None: this was the last page


class Profile(NamedTuple):
    account: Account
    account_id: str  # the platform's stable id (a handle can change hands)
    post_count: int | None  # for the progress bar's total, when the service says


class MalformedAnswer(Exception):
    """The service answered, but not with the JSON it documents (a proxy's error page, a
    truncated body, another shape): retried as a transient fault, never read as "no more
    posts", which would end a collection early."""


def expect_shape(ok: bool, what: str) -> None:
    """Raise MalformedAnswer unless ``ok``; ``what`` names what was expected."""
    if not ok:
        raise MalformedAnswer(f"expected {what}")


@dataclass
class Fault:
    """What a failed request means. ``message`` says what happened (and, for a permanent
    fault, what to do) in one line; ``wait`` is the seconds until a rate limit resets."""

    kind: Literal["rate_limit", "transient", "permanent"]
    message: str
    wait: float | None = None


class LiveSource(Source):
    """An account on a live service, fetched newest first, page by page."""

    service: ClassVar[str]  # "the X API", "Bluesky", ...

    def __init__(self, spec: str, options: SourceOptions) -> None:
        super().__init__(spec, options)
        self.live = options.live or LiveOptions()

    @abc.abstractmethod
    def lookup(self) -> Profile:
        """The account (one request); a protected, suspended or unknown one raises."""

    @abc.abstractmethod
    def fetch_page(self, account_id: str, cursor: str | None, since: str | None) -> Page:
        """Posts newest first, from ``cursor`` (None: the newest) down to, but excluding,
        the post ``since`` (None: as far back as the service goes)."""

    @abc.abstractmethod
    def classify(self, exc: Exception) -> Fault | None:
        """What an exception from lookup/fetch_page means; None: not a service fault."""

    def collect(self, run: RunDir) -> Collected:
        return Collection(self, run).run()

    def read(self) -> Collected:
        """Fetch everything into memory (through a throw-away run directory)."""
        with tempfile.TemporaryDirectory(prefix="huggingtweets-") as tmp:
            return self.collect(RunDir(Path(tmp)))


# -- rate limits and dates -------------------------------------------------------


def seconds_until_reset(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds to wait after a 429, from whichever header the service sent.

    ``x-rate-limit-reset`` (X) and ``ratelimit-reset`` (Bluesky) are Unix times (the
    IETF draft's ``ratelimit-reset`` is a number of seconds: small values are read so),
    Mastodon's ``x-ratelimit-reset`` an ISO-8601 time, ``retry-after`` seconds or an
    HTTP date. A second is added to whole-second reset times, which round down.
    """
    now = time.time() if now is None else now
    lower = {k.lower(): v for k, v in headers.items()}
    for name in ("retry-after", "x-rate-limit-reset", "ratelimit-reset", "x-ratelimit-reset"):
        value = (lower.get(name) or "").strip()
        if not value:
            continue
        with contextlib.suppress(ValueError):
            number = float(value)
            if not math.isfinite(number):
                continue
            if name == "retry-after" or number < 10**9:  # a delay, not a time
                return max(0.0, number)
            return max(0.0, number - now + 1)
        if name == "retry-after":
            with contextlib.suppress(TypeError, ValueError):
                return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - now)
        when = parse_time(value)
        if when is not None:
            return max(0.0, when.timestamp() - now + 1)
    return None


def _clock(seconds: float) -> str:
    """A wait as a reader wants it: 45s, 3m05s, 1h02m."""
    seconds = math.ceil(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


# -- the cache -------------------------------------------------------------------


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
        data = self.path.read_bytes()
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


# -- one collection --------------------------------------------------------------


class Collection:
    """Collect one live account into a run directory: resume, update, wait, retry."""

    def __init__(self, source: LiveSource, run: RunDir) -> None:
        self.source = source
        self.run_dir = run
        self.live = source.live
        self.progress: Progress | None = None
        self.task = None
        self.cache: PostCache | None = None
        self.handle = ""

    # The steps ---------------------------------------------------------------

    def run(self) -> Collected:
        profile = self.call(self.source.lookup, "looking up the account")
        account = profile.account
        if self.source.options.handle:
            account.handle = self.source.options.handle
        self.handle = account.handle
        posts_path = self.run_dir.posts_path(self.handle)  # checks the handle is file-safe
        self.cache = cache = PostCache(posts_path)
        if cache.repaired_bytes:
            err_console.print(
                f"[yellow]Note:[/yellow] cut off a last line left incomplete by an interrupted "
                f"run ({cache.repaired_bytes} bytes) in {escape(str(posts_path))}",
                soft_wrap=True,
            )
        state = self._load_state(profile)
        if state is not None and not cache.count:  # the posts were deleted: start over
            state = None
        write_json(self.run_dir.account_path(self.handle), account.to_dict())
        started_with = cache.count
        fresh = state is None
        if state is None:
            state = self._new_state(profile)

        # What is left to do: an interrupted update, then the walk back in time (unless
        # --update on posts that were there before any state, such as an export's), then
        # with --update a walk down to the newest post collected before.
        resume_update = state["update"] is not None
        backfill = not state["backfill"]["done"] and not (
            self.live.update and fresh and started_with
        )
        with self._progress(profile, state):
            if resume_update:
                self.walk(state, "update")
            if backfill:
                self.walk(state, "backfill")
            if not (self.live.update or backfill or resume_update):
                err_console.print(
                    f"@{escape(self.handle)}: already collected; --update fetches newer posts",
                    soft_wrap=True,
                )
            if self.live.update and started_with:
                state["update"] = {
                    "cursor": None,
                    "since": cache.newest_id(),
                    "known_before": cache.count,
                }
                self._save_state(state)
                self.walk(state, "update")
        if not cache.count:
            raise HuggingtweetsError(f"@{self.handle} on {self.source.service} has no posts")
        fetched = cache.count - started_with
        err_console.print(
            f"@{escape(self.handle)}: {fetched:,} new posts fetched from {self.source.service}",
            soft_wrap=True,
        )
        return self.run_dir.read_collected(self.handle)

    def walk(self, state: dict, kind: Literal["backfill", "update"]) -> None:
        """Fetch pages newest first until the service has no more (backfill) or the
        posts collected before the update began are reached (update)."""
        assert self.cache is not None
        section = state[kind]
        account_id = state["account_id"]
        while True:
            cursor, since = section["cursor"], section.get("since")
            page = self.call(
                lambda c=cursor, s=since: self.source.fetch_page(account_id, c, s),
                "fetching posts",
            )
            known = [self.cache.index.get(p.id) for p in page.posts]
            self.cache.append(page.posts)
            self._show_count()
            reached_old = kind == "update" and any(
                n is not None and n < section["known_before"] for n in known
            )
            # The end is a page without a cursor onward (X's documented rule), not a
            # short or empty page; a cursor that does not move ends it too.
            if page.next_cursor in (None, cursor) or reached_old:
                if kind == "backfill":
                    state["backfill"] = {"cursor": None, "done": True}
                else:
                    state["update"] = None
                self._save_state(state)
                return
            section["cursor"] = page.next_cursor
            self._save_state(state)

    # Faults ------------------------------------------------------------------

    def call(self, request: Callable[[], T], what: str) -> T:
        """Run one request: wait out rate limits, retry transient faults with exponential
        back-off (bounded in delay and count), fail at once on permanent ones."""
        failures = waits = 0
        while True:
            try:
                return request()
            except HuggingtweetsError:
                raise
            except Exception as exc:
                fault = self.source.classify(exc)
                if fault is None:
                    raise
            if fault.kind == "permanent":
                raise HuggingtweetsError(fault.message)
            if fault.kind == "rate_limit":
                waits += 1
                # A reset time already past (clocks differ, "Retry-After: 0") must not turn
                # into a burst of requests: wait at least the back-off delay.
                delay = max(fault.wait or 0.0, self._backoff(waits))
                if not self.live.wait:
                    raise HuggingtweetsError(self._stopped(fault.message, delay))
                if waits > MAX_RATE_LIMIT_WAITS:
                    raise HuggingtweetsError(
                        f"{fault.message}, still after {MAX_RATE_LIMIT_WAITS} waits; "
                        + self._continue_later()
                    )
                self._countdown(fault.message, delay)
                continue
            failures += 1
            if failures > self.live.retries:
                tries = "1 try" if failures == 1 else f"{failures} tries"
                raise HuggingtweetsError(
                    f"{fault.message} ({what}; gave up after {tries}); " + self._continue_later()
                )
            delay = self._backoff(failures)
            err_console.print(
                f"[yellow]{escape(fault.message)}[/yellow] ({what}); retry {failures} of "
                f"{self.live.retries} in {delay:.1f}s",
                soft_wrap=True,
            )
            time.sleep(delay)

    def _backoff(self, attempt: int) -> float:
        return min(self.live.backoff_max, self.live.backoff_base * 2 ** (attempt - 1))

    def _continue_later(self) -> str:
        if self.cache is None or not self.cache.count:
            return "run the same command again later"
        return (
            f"the {self.cache.count:,} posts fetched so far are saved in "
            f"{self.cache.path}; run the same command again to continue"
        )

    def _stopped(self, message: str, delay: float) -> str:
        until = datetime.fromtimestamp(time.time() + delay, timezone.utc).strftime("%H:%M:%S")
        return (
            f"{message}; stopped (--no-wait) with the limit resetting in {_clock(delay)} "
            f"(at {until} UTC); " + self._continue_later()
        )

    def _countdown(self, message: str, delay: float) -> None:
        """Sleep until the limit resets, showing the time left."""
        end = time.monotonic() + delay
        until = datetime.fromtimestamp(time.time() + delay, timezone.utc).strftime("%H:%M:%S")
        err_console.print(
            f"[yellow]{escape(message)}[/yellow]: waiting {_clock(delay)} until {until} UTC "
            "(Ctrl-C stops; the same command continues later)",
            soft_wrap=True,
        )
        task = None
        if self.progress is not None:
            task = self.progress.add_task(
                "waiting for the rate limit", total=max(delay, 0.01), detail=_clock(delay)
            )
        try:
            while (left := end - time.monotonic()) > 0:
                if task is not None and self.progress is not None:
                    self.progress.update(
                        task, completed=delay - left, detail=f"{_clock(left)} left"
                    )
                time.sleep(min(0.25, left))
        finally:
            if task is not None and self.progress is not None:
                self.progress.remove_task(task)

    # State and progress ------------------------------------------------------

    def _new_state(self, profile: Profile) -> dict:
        return {
            "version": STATE_VERSION,
            "source": self.source.spec,
            "platform": self.source.platform,
            "account_id": profile.account_id,
            "backfill": {"cursor": None, "done": False},
            "update": None,
        }

    def _load_state(self, profile: Profile) -> dict | None:
        assert self.cache is not None
        path = self.run_dir.state_path(self.handle)
        where = self.cache.path
        if not path.exists():
            others = self.cache.platforms - {self.source.platform}
            if others:
                raise HuggingtweetsError(
                    f"{where} already holds posts from {', '.join(sorted(others))}; "
                    f"collect @{self.handle} from {self.source.service} into another --out"
                )
            return None  # posts of the same platform (an export): kept, not fetched again
        try:
            state = orjson.loads(path.read_bytes())
            if state.get("version") != STATE_VERSION:
                raise ValueError(f"version {state.get('version')!r}")
        except (ValueError, AttributeError) as exc:
            raise HuggingtweetsError(
                f"{path} is damaged ({exc}); delete it to fetch again from the newest post "
                "(posts already collected are kept)"
            ) from None
        if state.get("platform") != self.source.platform:
            raise HuggingtweetsError(
                f"{where} was collected from {state.get('platform')}; "
                f"collect @{self.handle} from {self.source.service} into another --out"
            )
        if str(state.get("account_id")) != profile.account_id:
            raise HuggingtweetsError(
                f"{where} holds posts of another account (id {state.get('account_id')}) that "
                f"used the handle @{self.handle}; collect into another --out"
            )
        return state

    def _save_state(self, state: dict) -> None:
        write_json(self.run_dir.state_path(self.handle), state)

    @contextlib.contextmanager
    def _progress(self, profile: Profile, state: dict) -> Iterator[None]:
        assert self.cache is not None
        total = None
        if not state["backfill"]["done"] and profile.post_count:
            total = max(profile.post_count, self.cache.count)
        progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[detail]}"),
            TimeRemainingColumn(),
            console=err_console,
        )
        self.progress = progress
        self.task = progress.add_task(
            f"@{escape(self.handle)} ({self.source.service})",
            total=total,
            completed=self.cache.count,
            detail="",
        )
        self._show_count()
        try:
            with progress:
                yield
                progress.update(self.task, total=self.cache.count)
                self._show_count()
        finally:
            self.progress = None
            self.task = None

    def _show_count(self) -> None:
        """Posts collected so far (of how many the service says it has)."""
        if self.progress is None or self.task is None or self.cache is None:
            return
        total = self.progress.tasks[self.task].total
        count = f"{self.cache.count:,}" + (f"/{total:,.0f}" if total else "")
        self.progress.update(self.task, completed=self.cache.count, detail=f"{count} posts")
