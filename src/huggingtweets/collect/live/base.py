"""What the live sources (X API, Bluesky, Mastodon) share: collecting page by page into
the run directory so that nothing fetched is lost, resuming, ``update``, waiting out rate
limits, retrying faults with bounded back-off, bounding what a server may send, and
reporting progress as events (stage ``"collect"``) to a
:class:`~huggingtweets.core.events.Reporter`.

The files, beside the other stages' (see DESIGN.md)::

    posts/<handle>.jsonl         complete post records, one a line, appended page by page
    posts/<handle>.account.json  the profile, rewritten (atomically) on every run
    posts/<handle>.state.json    where to continue (atomically replaced after each page)

A page is appended with one write and fsync'd *before* the state moves past it, so a crash,
Ctrl-C or a cancelled reporter loses at most the page in flight, which the next run fetches
again; posts already in the file are skipped by id, so nothing is ever written twice. A line
torn by a crash in mid-write is cut off when the file is opened again.

Cancellation: every request runs in a worker thread while the collecting thread waits in
short slices, checking ``reporter.raise_if_cancelled()``; waits for a rate limit or a retry
sleep in slices too. So a web app's "stop" ends a collection within a fraction of a second
(a request in flight is abandoned: it ends by its own time-out, and its answer is dropped).

Nothing here prints; every message that goes into an error or an event is passed through
:func:`huggingtweets.core.secrets.redact`, and text a server wrote (its error details) is made one
bounded line without control characters first (:func:`server_text`).
"""

from __future__ import annotations

import abc
import contextlib
import email.utils
import math
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, ClassVar, Literal, NamedTuple, TypeVar
from urllib.parse import urlsplit

import msgspec
import orjson

from huggingtweets.collect.registry import Source, SourceOptions
from huggingtweets.core.errors import HuggingtweetsError
from huggingtweets.core.events import Reporter, reporter_or_silent
from huggingtweets.core.options import OptionError, check_options, option
from huggingtweets.core.records import (
    Account,
    Collected,
    Post,
    check_handle,
    dump_jsonl,
    without_private_text,
)
from huggingtweets.core.runs import RunDir, write_json
from huggingtweets.core.secrets import contains_secret, redact, redactor, secret_values
from huggingtweets.core.times import parse_time

T = TypeVar("T")
STAGE = "collect"
STATE_VERSION = 1
BACKOFF_ENV = "HUGGINGTWEETS_BACKOFF_BASE"
MAX_RATE_LIMIT_WAITS = 10  # in a row, for one request: a server that never lets us in
# A limit announced to reset later than this is not waited for: the collection stops, as
# with --no-wait, to be run again later (X's monthly caps reset days ahead).
MAX_RATE_LIMIT_WAIT = 3600.0
MAX_ANSWER_BYTES = 32 * 2**20  # a page is ~100 KB: more is a broken or hostile server
DEADLINE_FACTOR = 4  # a whole request (answer read to its end) may take 4 time-outs
MAX_EMPTY_PAGES = 20  # in a row, each pointing to yet another page: the end
SLICE = 0.2  # seconds between two looks at the reporter's cancellation
MAX_DETAIL = 300  # characters of a server's own words kept in a message


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
    """How live accounts are fetched (``collect`` / ``prepare`` / ``train`` options). Each
    platform declares its own options (its service's address) in its module."""

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

    def __post_init__(self) -> None:
        check_options(self)


# -- service addresses -----------------------------------------------------------


def url_problem(value: str) -> str | None:
    """What is wrong with ``value`` as a service's base URL, or None."""
    if not value.strip():
        return "is empty"
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in value):
        return "holds a space or a control character"
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 (raises on a port that is not a number from 0 to 65535)
    except ValueError as exc:
        return f"is not a valid URL ({exc})"
    if parts.scheme.lower() not in ("http", "https"):
        return "must start with http:// or https://"
    if not parts.hostname:
        return "has no host name"
    if parts.username is not None or parts.password is not None:
        return "must not hold a user name or password (tokens come from the environment)"
    if parts.query or parts.fragment:
        return "must not hold a query (?...) or a fragment (#...)"
    return None


def check_url_option(options: Any, name: str) -> None:
    """Refuse a malformed URL in the (optional) option ``name`` of ``options``."""
    value = getattr(options, name)
    if value is None:
        return
    problem = url_problem(value)
    if problem:
        raise OptionError(name, f"{problem}: expected a URL such as https://host (got {value!r})")


def service_url(value: str | None, env: str, default: str) -> str:
    """A service's base URL: the option's value, else the environment variable's, else the
    default; without a trailing "/". A malformed one from the environment is refused."""
    if value is None:
        value = os.environ.get(env) or None
        if value is not None:
            problem = url_problem(value)
            if problem:
                raise HuggingtweetsError(
                    f"{env} {problem}: expected a URL such as https://host (got {value!r})"
                )
    return (value or default).rstrip("/")


# -- what a platform module provides ---------------------------------------------


class Page(NamedTuple):
    posts: list[Post]
    next_cursor: str | None  # None: this was the last page


class Profile(NamedTuple):
    account: Account
    account_id: str  # the platform's stable id (a handle can change hands)
    post_count: int | None  # for the progress total, when the service says


class MalformedAnswer(Exception):
    """The service answered, but not with the JSON it documents (a proxy's error page, a
    truncated body, another shape, far too large an answer): retried as a transient fault,
    never read as "no more posts", which would end a collection early."""


class AnswerOutOfBounds(MalformedAnswer):
    """An answer larger than MAX_ANSWER_BYTES (decoded), or still arriving at the deadline."""


def expect_shape(ok: bool, what: str) -> None:
    """Raise MalformedAnswer unless ``ok``; ``what`` names what was expected."""
    if not ok:
        raise MalformedAnswer(f"expected {what}")


@contextlib.contextmanager
def parsing(what: str):
    """Reading an answer's fields: a field of another type than documented (a list where
    an object belongs, a number for a text) is a MalformedAnswer, not a traceback."""
    try:
        yield
    except (KeyError, TypeError, AttributeError, ValueError, IndexError) as exc:
        raise MalformedAnswer(f"{what}: {type(exc).__name__} {exc}") from exc


def count_or_none(value: object) -> int | None:
    """A count from a service, when it is a whole number above zero."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return None


def find_cause(exc: BaseException | None, kind: type[T]) -> T | None:
    """``exc`` or the first exception it was raised from (or while handling) of ``kind``:
    client libraries wrap ours (Mastodon.py turns any into a MastodonNetworkError)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, kind):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]+")


def server_text(text: object, limit: int = MAX_DETAIL) -> str:
    """A server's own words made fit for one line of a terminal: no control characters
    (an ANSI escape in an error body could rewrite the screen), no line breaks, at most
    ``limit`` characters, every secret redacted."""
    one_line = " ".join(_CONTROL_RE.sub(" ", redact(str(text))).split())
    if len(one_line) > limit:
        one_line = one_line[: limit - 1].rstrip() + "…"
    return one_line


def shown(spec: str, limit: int = 80) -> str:
    """A spec as an error message quotes it: repr'd (control characters visible), and
    cut short when it is long."""
    text = repr(spec)
    return text if len(text) <= limit else text[: limit - 2] + "…'"


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
    handle: str  # the account as asked for (a platform sets it; lookup may correct it)

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

    @property
    def deadline(self) -> float:
        """The longest one whole request may take, answer read to its end."""
        return DEADLINE_FACTOR * self.live.timeout

    def collect(self, run: RunDir, reporter: Reporter | None = None) -> Collected:
        reporter = reporter_or_silent(reporter)
        collection = Collection(self, run, reporter)
        # This work stops at safe points by itself (between pages, in waits): a Ctrl-C
        # handler may ask it to, rather than interrupt it anywhere.
        try:
            with reporter.cooperative():
                return collection.run()
        except HuggingtweetsError as exc:
            # Every message of a live source may hold a server's words: no secret leaves.
            exc.args = tuple(redact(a) if isinstance(a, str) else a for a in exc.args)
            raise

    def read(self) -> Collected:
        """Fetch everything into memory (through a throw-away run directory)."""
        with tempfile.TemporaryDirectory(prefix="huggingtweets-") as tmp:
            return self.collect(RunDir(Path(tmp)))


# -- bounded answers -------------------------------------------------------------


class _Reading:
    """Counts an answer's bytes (decoded) and time as it is read."""

    def __init__(self, limit: int, deadline: float) -> None:
        self.limit, self.size = limit, 0
        self.deadline = time.monotonic() + deadline
        self.seconds = deadline

    def add(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.limit:
            raise AnswerOutOfBounds(f"an answer of more than {self.limit / 2**20:g} MB")
        if time.monotonic() > self.deadline:
            raise AnswerOutOfBounds(f"an answer still arriving after {self.seconds:g}s")

    def check_declared(self, length: str | None) -> None:
        if length and length.strip().isdigit() and int(length) > self.limit:
            raise AnswerOutOfBounds(f"an answer of {int(length) / 2**20:,.0f} MB")


def bounded_adapter(timeout: float, deadline: float, rewrite: tuple[str, str] | None = None):
    """A ``requests`` transport adapter (requests' documented extension point) that gives
    every request a time-out, reads each answer with a bound on its (decoded) size and
    time, and, with ``rewrite=(prefix, base_url)``, sends requests for ``prefix`` to
    another base URL (tweepy always sends to https://api.twitter.com)."""
    from requests.adapters import HTTPAdapter
    from requests.utils import get_environ_proxies

    class BoundedAdapter(HTTPAdapter):
        def send(self, request, **kwargs):
            if kwargs.get("timeout") is None:
                kwargs["timeout"] = timeout
            if rewrite is not None and rewrite[0] != rewrite[1]:
                prefix, base_url = rewrite
                if request.url.startswith(prefix):
                    request.url = base_url + request.url[len(prefix) :]
                    # Proxies (and NO_PROXY) as they apply to where the request now goes.
                    kwargs["proxies"] = get_environ_proxies(request.url)
            response = super().send(request, **kwargs)
            if not kwargs.get("stream"):
                reading = _Reading(MAX_ANSWER_BYTES, deadline)
                chunks = []
                try:
                    reading.check_declared(response.headers.get("content-length"))
                    for chunk in response.iter_content(65536):
                        reading.add(chunk)
                        chunks.append(chunk)
                except BaseException:
                    response.close()
                    raise
                response._content = b"".join(chunks)  # what Response.content would hold
            return response

    return BoundedAdapter()


def bounded_httpx_hook(deadline: float):
    """An httpx response event hook that reads the answer with the same bounds."""

    def read_bounded(response) -> None:
        reading = _Reading(MAX_ANSWER_BYTES, deadline)
        reading.check_declared(response.headers.get("content-length"))
        chunks = []
        for chunk in response.iter_bytes():
            reading.add(chunk)
            chunks.append(chunk)
        response._content = b"".join(chunks)  # what Response.read() keeps

    return read_bounded


# -- rate limits and dates -------------------------------------------------------


def seconds_until_reset(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds to wait after a 429, from whichever header the service sent.

    ``x-rate-limit-reset`` (X) and ``ratelimit-reset`` (Bluesky) are Unix times (the
    IETF draft's ``ratelimit-reset`` is a number of seconds: small values are read so),
    Mastodon's ``x-ratelimit-reset`` an ISO-8601 time, ``retry-after`` seconds or an
    HTTP date. A second is added to whole-second reset times, which round down. Values
    that are not numbers, not finite or in the past give no wait (0 or the next header).
    """
    now = time.time() if now is None else now
    lower = {str(k).lower(): v for k, v in headers.items()}
    for name in ("retry-after", "x-rate-limit-reset", "ratelimit-reset", "x-ratelimit-reset"):
        value = str(lower.get(name) or "").strip()
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
            with contextlib.suppress(TypeError, ValueError, OverflowError, IndexError):
                return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - now)
        when = parse_time(value)
        if when is not None:
            return max(0.0, when.timestamp() - now + 1)
    return None


def _clock(seconds: float) -> str:
    """A wait as a reader wants it: 45s, 3m05s, 1h02m, 3d04h."""
    if not math.isfinite(seconds) or seconds > 100 * 365 * 86400:
        return "more than a century"
    seconds = math.ceil(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400:,}d{seconds % 86400 // 3600:02d}h"


def _at(delay: float, word: str = "at") -> str:
    """When a wait of ``delay`` seconds ends, as " (at 12:34:56 UTC)" (with the date when
    not today); "" for a time no calendar holds."""
    try:
        now = datetime.now(timezone.utc)
        when = datetime.fromtimestamp(now.timestamp() + delay, timezone.utc)
    except (OverflowError, ValueError, OSError):
        return ""
    if when.date() == now.date():
        return f" ({word} {when:%H:%M:%S} UTC)"
    return f" ({word} {when:%Y-%m-%d %H:%M} UTC)"


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


def _optional_str(value: object) -> bool:
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
        and _optional_str(backfill.get("cursor"))
        and isinstance(backfill.get("done"), bool)
    ):
        return '"backfill" is not {"cursor": text or null, "done": true or false}'
    update = state["update"]
    if update is not None:
        known = update.get("known_before") if isinstance(update, dict) else None
        if not (
            isinstance(update, dict)
            and _optional_str(update.get("cursor"))
            and _optional_str(update.get("since"))
            and isinstance(known, int)
            and not isinstance(known, bool)
            and known >= 0
        ):
            return '"update" is neither null nor {"cursor", "since", "known_before"}'
    return None


# -- one collection --------------------------------------------------------------


class Collection:
    """Collect one live account into a run directory: resume, update, wait, retry, and
    tell the reporter (stage "collect", ``data={"account": handle}``)."""

    def __init__(self, source: LiveSource, run: RunDir, reporter: Reporter) -> None:
        self.source = source
        self.run_dir = run
        self.live = source.live
        self.reporter = reporter
        self.cache: PostCache | None = None
        self.handle = source.options.handle or source.handle
        self.total: int | None = None

    # Events --------------------------------------------------------------------

    def info(self, message: str) -> None:
        self.reporter.info(STAGE, redact(message), account=self.handle)

    def warning(self, message: str) -> None:
        self.reporter.warning(STAGE, redact(message), account=self.handle)

    def _progress(self, message: str = "", **data) -> None:
        count = self.cache.count if self.cache is not None else 0
        self.reporter.progress(
            STAGE, count, self.total, message=redact(message), account=self.handle, **data
        )

    # The steps ---------------------------------------------------------------

    def run(self) -> Collected:
        self.reporter.raise_if_cancelled()
        profile = self.call(self.source.lookup, "looking up the account")
        account = self._safe_account(profile.account)
        self.handle = account.handle
        posts_path = self.run_dir.posts_path(self.handle)
        self.cache = cache = PostCache(posts_path)
        state = self._load_state(profile)
        if state is not None and not cache.count:  # the posts were deleted: start over
            state = None
        started_with = cache.count
        fresh = state is None
        if state is None:
            state = self._new_state(profile)

        # What is left to do: an interrupted update, then the walk back in time (unless
        # update on posts that were there before any state, such as an export's), then
        # with update a walk down to the newest post collected before.
        resume_update = state["update"] is not None
        backfill = not state["backfill"]["done"] and not (
            self.live.update and fresh and started_with
        )
        if backfill and count_or_none(profile.post_count):
            self.total = max(profile.post_count, cache.count)
        self.reporter.start(
            STAGE, f"@{self.handle} ({self.source.service})", total=self.total, account=self.handle
        )
        if cache.repaired_bytes:
            self.warning(
                f"cut off a last line left incomplete by an interrupted run "
                f"({cache.repaired_bytes} bytes) in {posts_path}"
            )
        write_json(self.run_dir.account_path(self.handle), account.to_dict())
        self._progress()
        if resume_update:
            self.walk(state, "update")
        if backfill:
            self.walk(state, "backfill")
        if not (self.live.update or backfill or resume_update):
            self.info(f"@{self.handle}: already collected; --update fetches newer posts")
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
        self.total = cache.count
        self._progress()
        fetched = cache.count - started_with
        self.reporter.end(
            STAGE,
            redact(f"@{self.handle}: {fetched:,} new posts fetched from {self.source.service}"),
            account=self.handle,
            fetched=fetched,
            posts=cache.count,
        )
        return self.run_dir.read_collected(self.handle)

    def _safe_account(self, account: Account) -> Account:
        """The account as it will be written: its handle usable as a file name (else one
        line saying to give --handle), no secret in any of its texts."""
        handle = self.source.options.handle
        if not handle:
            try:
                handle = check_handle(account.handle)
                if contains_secret(handle):
                    raise HuggingtweetsError("a secret")
            except HuggingtweetsError:
                raise HuggingtweetsError(
                    f"{self.source.service} calls {shown(self.source.spec)} by a handle that "
                    f"cannot name a file ({server_text(account.handle, 60)!r}); give one "
                    "with --handle"
                ) from None
        return msgspec.structs.replace(
            account,
            handle=handle,
            display_name=_redacted(account.display_name),
            avatar_url=_redacted(account.avatar_url),
            description=_redacted(account.description),
        )

    def walk(self, state: dict, kind: Literal["backfill", "update"]) -> None:
        """Fetch pages newest first until the service has no more (backfill) or the
        posts collected before the update began are reached (update). Between pages, a
        cancelled reporter stops it (what was fetched stays, and a re-run continues)."""
        assert self.cache is not None
        section = state[kind]
        account_id = str(state["account_id"])
        cursors: set[str | None] = {section["cursor"]}
        empty = 0
        while True:
            self.reporter.raise_if_cancelled()
            cursor, since = section["cursor"], section.get("since")
            page = self.call(
                lambda c=cursor, s=since: self._checked_page(account_id, c, s),
                "fetching posts",
            )
            known = [self.cache.index.get(p.id) for p in page.posts]
            self.cache.append(_without_secrets(page.posts))
            self._progress()
            reached_old = kind == "update" and any(
                n is not None and n < section["known_before"] for n in known
            )
            empty = empty + 1 if not page.posts else 0
            # The end is a page without a cursor onward (X's documented rule), not a
            # short or empty page; a cursor that does not move, or one sent before (the
            # pages loop), ends it too, as do many empty pages in a row.
            end = page.next_cursor is None or reached_old
            if not end and page.next_cursor in cursors:
                self.warning(
                    f"{self.source.service} sent a page cursor it had sent before (its "
                    "pages go round in a loop): taken as the end of the posts"
                )
                end = True
            elif not end and empty >= MAX_EMPTY_PAGES:
                self.warning(
                    f"{self.source.service} sent {empty} empty pages in a row, each pointing "
                    "to yet another: taken as the end of the posts"
                )
                end = True
            if end:
                if kind == "backfill":
                    state["backfill"] = {"cursor": None, "done": True}
                else:
                    state["update"] = None
                self._save_state(state)
                return
            cursors.add(page.next_cursor)
            section["cursor"] = page.next_cursor
            self._save_state(state)

    def _checked_page(self, account_id: str, cursor: str | None, since: str | None) -> Page:
        page = self.source.fetch_page(account_id, cursor, since)
        expect_shape(_optional_str(page.next_cursor), "a page cursor that is a text")
        return page

    # Faults ------------------------------------------------------------------

    def call(self, request: Callable[[], T], what: str) -> T:
        """Run one request: wait out rate limits, retry transient faults with exponential
        back-off (bounded in delay and count), fail at once on permanent ones."""
        failures = waits = 0
        while True:
            value, fault = self._attempt(request)
            if fault is None:
                return value  # type: ignore[return-value]
            if fault.kind == "permanent":
                raise HuggingtweetsError(fault.message)
            if fault.kind == "rate_limit":
                waits += 1
                # A reset time already past (clocks differ, "Retry-After: 0") must not turn
                # into a burst of requests: wait at least the back-off delay.
                delay = max(fault.wait or 0.0, self._backoff(waits))
                if not self.live.wait:
                    raise HuggingtweetsError(self._stopped(fault.message, delay, "--no-wait"))
                if delay > MAX_RATE_LIMIT_WAIT:
                    raise HuggingtweetsError(
                        self._stopped(
                            fault.message, delay, f"longer than {_clock(MAX_RATE_LIMIT_WAIT)}"
                        )
                    )
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
            self.warning(
                f"{fault.message} ({what}); retry {failures} of {self.live.retries} in {delay:.1f}s"
            )
            self._sleep(delay)

    def _attempt(self, request: Callable[[], T]) -> tuple[T | None, Fault | None]:
        """One request, in a worker thread (classified there too: a platform may read the
        answer it keeps per thread), while this thread watches for cancellation and for
        the request's deadline."""
        box: dict[str, Any] = {}

        def work() -> None:
            try:
                box["value"] = request()
            except HuggingtweetsError as exc:
                box["raise"] = exc
            except Exception as exc:
                try:
                    fault = self.source.classify(exc)
                except BaseException as bug:
                    box["raise"] = bug
                    return
                box["fault" if fault is not None else "raise"] = fault or exc
            except BaseException as exc:
                box["raise"] = exc

        worker = threading.Thread(target=work, name="huggingtweets-request", daemon=True)
        deadline = time.monotonic() + self.source.deadline
        worker.start()
        while True:
            worker.join(SLICE)
            if not worker.is_alive():
                break
            self.reporter.raise_if_cancelled()
            if time.monotonic() > deadline:
                return None, Fault(
                    "transient",
                    f"{self.source.service} did not finish answering within "
                    f"{self.source.deadline:g}s",
                )
        if "raise" in box:
            raise box["raise"]
        if "fault" in box:
            fault = box["fault"]
            return None, Fault(fault.kind, server_text(fault.message, 2000), fault.wait)
        return box["value"], None

    def _backoff(self, attempt: int) -> float:
        return min(self.live.backoff_max, self.live.backoff_base * 2 ** (attempt - 1))

    def _sleep(self, seconds: float) -> None:
        """Sleep in slices, stopping at once when the reporter is cancelled."""
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            self.reporter.raise_if_cancelled()
            time.sleep(min(SLICE, left))
        self.reporter.raise_if_cancelled()

    def _continue_later(self) -> str:
        if self.cache is None or not self.cache.count:
            return "run the same command again later"
        return (
            f"the {self.cache.count:,} posts fetched so far are saved in "
            f"{self.cache.path}; run the same command again to continue"
        )

    def _stopped(self, message: str, delay: float, why: str) -> str:
        return (
            f"{message}; stopped ({why}) with the limit resetting in {_clock(delay)}"
            f"{_at(delay)}; " + self._continue_later()
        )

    def _countdown(self, message: str, delay: float) -> None:
        """Sleep until the limit resets: a warning, then a progress event a second with
        the time left (``data["waiting"]``), stopping at once when cancelled."""
        self.warning(
            f"{message}: waiting {_clock(delay)}{_at(delay, 'until')}; stopping loses "
            "nothing: the same command continues later"
        )
        end = time.monotonic() + delay
        told = math.inf
        while (left := end - time.monotonic()) > 0:
            self.reporter.raise_if_cancelled()
            if told - left >= 1:
                told = left
                self._progress(f"waiting for the rate limit: {_clock(left)} left", waiting=left)
            time.sleep(min(SLICE, left))
        self.reporter.raise_if_cancelled()

    # State -------------------------------------------------------------------

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
            problem = state_problem(state)
        except orjson.JSONDecodeError as exc:
            problem = f"not JSON: {exc}"
        except OSError as exc:
            problem = f"unreadable: {exc.strerror}"
        if problem:
            raise HuggingtweetsError(
                f"{path} is not a collection state this version can use ({problem}); delete it "
                "and run the same command again to fetch from the newest post (the posts "
                "already collected are kept)"
            )
        if state["platform"] != self.source.platform:
            raise HuggingtweetsError(
                f"{where} was collected from {state['platform']}; "
                f"collect @{self.handle} from {self.source.service} into another --out"
            )
        if str(state["account_id"]) != profile.account_id:
            raise HuggingtweetsError(
                f"{where} holds posts of another account (id {state['account_id']}) that "
                f"used the handle @{self.handle}; collect into another --out"
            )
        return state

    def _save_state(self, state: dict) -> None:
        write_json(self.run_dir.state_path(self.handle), state)


def _redacted(text: str | None) -> str | None:
    return redact(text) if text else text


def _without_secrets(posts: list[Post]) -> list[Post]:
    """The posts with any secret a server slipped into their text or address masked: a
    post's text is trained on, and a model may be published."""
    if not secret_values():
        return posts
    scrub = redactor()
    out = []
    for post in posts:
        text, url = scrub(post.text), scrub(post.url) if post.url else post.url
        if text != post.text or url != post.url:
            post = msgspec.structs.replace(post, text=text, url=url)
        out.append(post)
    return out
