"""The live sources (X API, Bluesky, Mastodon): what a platform module provides, and the
collection that runs one page by page into the run directory so that nothing fetched is
lost, resumes, and updates, reporting progress as events (stage ``"collect"``) to a
:class:`~huggingtweets.core.events.Reporter`.

Beside it: ``store.py`` (the posts and the state file kept between runs), ``retry.py``
(rate-limit waits, bounded back-off, cancellation), ``http.py`` (bounded answers, faults,
service addresses) and ``options.py`` (:class:`LiveOptions`).

The files, beside the other stages' (see DESIGN.md)::

    posts/<handle>.jsonl         complete post records, one a line, appended page by page
    posts/<handle>.account.json  the profile, rewritten (atomically) on every run
    posts/<handle>.state.json    where to continue (atomically replaced after each page)

A crash, Ctrl-C or a cancelled reporter loses at most the page in flight, which the next
run fetches again. Nothing here prints; every message that goes into an error or an event
is passed through :func:`huggingtweets.core.secrets.redact`.
"""

from __future__ import annotations

import abc
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar, Literal, NamedTuple, TypeVar

import msgspec
import orjson

from huggingtweets.collect.live.http import Fault, count_or_none, expect_shape, server_text, shown
from huggingtweets.collect.live.options import LiveOptions
from huggingtweets.collect.live.retry import RetryPolicy
from huggingtweets.collect.live.store import STATE_VERSION, PostCache, optional_str, state_problem
from huggingtweets.collect.registry import Source, SourceOptions
from huggingtweets.core.errors import HuggingtweetsError
from huggingtweets.core.events import Reporter, reporter_or_silent
from huggingtweets.core.records import Account, Collected, Post, check_handle
from huggingtweets.core.runs import RunDir, write_json
from huggingtweets.core.secrets import contains_secret, redact, redactor, secret_values

T = TypeVar("T")
STAGE = "collect"
DEADLINE_FACTOR = 4  # a whole request (answer read to its end) may take 4 time-outs
MAX_EMPTY_PAGES = 20  # in a row, each pointing to yet another page: the end


# -- what a platform module provides ---------------------------------------------


class Page(NamedTuple):
    posts: list[Post]
    next_cursor: str | None  # None: this was the last page


class Profile(NamedTuple):
    account: Account
    account_id: str  # the platform's stable id (a handle can change hands)
    post_count: int | None  # for the progress total, when the service says


class LiveSource(Source):
    """An account on a live service, fetched newest first, page by page."""

    service: ClassVar[str]  # "the X API", "Bluesky", ...
    handle: str  # the account as asked for (a platform sets it; lookup may correct it)

    def __init__(self, spec: str, options: SourceOptions) -> None:
        super().__init__(spec, options)
        self.live = options.live or LiveOptions()

    def parse_account(self, parse: Callable[[str], T | None], expected: str) -> T:
        """The account in the spec (``prefix:ACCOUNT``) as ``parse`` reads it; None from
        ``parse`` is refused with what was ``expected``."""
        account = parse(self.spec.split(":", 1)[1])
        if account is None:
            raise HuggingtweetsError(f"{shown(self.spec)}: {expected}")
        return account

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
        self.requests = RetryPolicy(source, self.live, self)

    # Events --------------------------------------------------------------------

    def info(self, message: str) -> None:
        self.reporter.info(STAGE, redact(message), account=self.handle)

    def warning(self, message: str) -> None:
        self.reporter.warning(STAGE, redact(message), account=self.handle)

    def raise_if_cancelled(self) -> None:
        self.reporter.raise_if_cancelled()

    def waiting(self, message: str, seconds_left: float) -> None:
        """A progress event with the time left of a rate-limit wait (``data["waiting"]``)."""
        self._progress(message, waiting=seconds_left)

    def _progress(self, message: str = "", **data) -> None:
        count = self.cache.count if self.cache is not None else 0
        self.reporter.progress(
            STAGE, count, self.total, message=redact(message), account=self.handle, **data
        )

    # The steps ---------------------------------------------------------------

    def run(self) -> Collected:
        self.reporter.raise_if_cancelled()
        profile = self.requests.call(self.source.lookup, "looking up the account")
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
            page = self.requests.call(
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
        expect_shape(optional_str(page.next_cursor), "a page cursor that is a text")
        return page

    def continue_later(self) -> str:
        if self.cache is None or not self.cache.count:
            return "run the same command again later"
        return (
            f"the {self.cache.count:,} posts fetched so far are saved in "
            f"{self.cache.path}; run the same command again to continue"
        )

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
