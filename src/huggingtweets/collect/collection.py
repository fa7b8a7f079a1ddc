"""collect: read or fetch each source's posts into the run directory's posts/ folder.

One vocabulary: to *collect* is to read files or fetch live accounts; what one account
yields is an :class:`~huggingtweets.core.records.AccountPosts`; what a call yields is a
:class:`Collection`. Live accounts are written to posts/ page by page as they arrive (so
that a stopped run resumes); files are read whole first and written only when the caller
says so — ``prepare`` writes them together with the dataset, so that both change or
neither does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import orjson

from huggingtweets.collect.registry import Source, SourceOptions, resolve
from huggingtweets.core.errors import HuggingtweetsError
from huggingtweets.core.events import Reporter, reporter_or_silent
from huggingtweets.core.options import OptionError
from huggingtweets.core.records import AccountPosts
from huggingtweets.core.runs import RunDir, Staging, check_writable_dir

STAGE = "collect"
MAX_ACCOUNTS = 3  # the original's limit, and the card's three avatars


def resolve_all(
    sources: Sequence[str],
    handles: Sequence[str] = (),
    options: SourceOptions | None = None,
) -> list[Source]:
    """Resolve every spec first, so that a typo fails before anything is written.
    ``handles`` apply to the sources in order."""
    options = options or SourceOptions()
    if not sources:
        raise HuggingtweetsError("no SOURCE given: name a file, an export or an account")
    if len(sources) > MAX_ACCOUNTS:
        raise HuggingtweetsError(
            f"{len(sources)} sources given: a bot is made of 1 to {MAX_ACCOUNTS} accounts "
            "(the original's limit); make one run per group of three at most"
        )
    if len(handles) > len(sources):
        raise HuggingtweetsError(
            f"{len(handles)} --handle values for {len(sources)} sources; "
            "give at most one per source"
        )
    resolved = [
        resolve(spec, replace(options, handle=handles[i] if i < len(handles) else None))
        for i, spec in enumerate(sources)
    ]
    if options.live is not None and options.live.update:
        offline = [s.spec for s in resolved if s.offline]
        if offline:
            raise OptionError(
                "update",
                f"applies to live accounts only; {offline[0]} is read whole every time",
            )
    return resolved


@dataclass
class Collection:
    """Every source's account, in the order given. ``pending``: the files' accounts, read
    but not yet in posts/ (:meth:`write` or :meth:`stage` puts them there)."""

    run: RunDir
    accounts: list[AccountPosts]
    pending: list[AccountPosts] = field(default_factory=list)

    def stage(self, staging: Staging) -> None:
        """Write the pending accounts under temporary names, renamed on ``staging.commit``."""
        for account_posts in self.pending:
            self.run.write_collected(account_posts, staging)
        self.pending = []

    def write(self) -> None:
        staging = Staging()
        try:
            self.stage(staging)
            staging.commit()
        finally:
            staging.discard()


def collect(
    run_dir: Path | str | RunDir,
    sources: Sequence[str] | str,
    handles: Sequence[str] = (),
    options: SourceOptions | None = None,
    *,
    reporter: Reporter | None = None,
    write_files: bool = True,
) -> Collection:
    """Collect each source into ``run_dir/posts/<handle>.jsonl``.

    ``options``: the text column, live options (update, rate limits, time-outs) and the
    platforms' own. ``write_files=False`` leaves the files' posts pending (see
    :class:`Collection`). Progress goes to ``reporter`` (stage "collect").
    """
    if isinstance(sources, str):
        sources = [sources]
    reporter = reporter_or_silent(reporter)
    run = run_dir if isinstance(run_dir, RunDir) else RunDir(Path(run_dir))
    resolved = resolve_all(sources, handles, options)
    # Files are read whole before anything is written, so that a bad second file or an
    # account given twice leaves the run directory untouched. Live accounts are cached
    # as they arrive (their own collect), so they come after.
    offline: dict[int, AccountPosts] = {}
    for i, source in enumerate(resolved):
        if source.offline:
            reporter.raise_if_cancelled()
            offline[i] = source.read()
    seen: dict[str, str] = {}
    for i, account_posts in offline.items():
        _check_new_account(account_posts, resolved[i].spec, seen)
        _check_not_live(run, account_posts.account.handle, resolved[i].spec)
    # Only now is the run directory made (and only when something is written now): a
    # source that cannot be read, or a prepare that fails, leaves none.
    if write_files or len(offline) < len(resolved):
        check_writable_dir(run.root)
        run.remove_stale_temporaries()
    collection = Collection(run, [], list(offline.values()))
    if write_files:
        collection.write()
    for i, source in enumerate(resolved):
        if i in offline:
            account_posts = offline[i]
        else:
            reporter.raise_if_cancelled()
            account_posts = source.collect(run, reporter)
            _check_new_account(account_posts, source.spec, seen)
        collection.accounts.append(account_posts)
    return collection


def _check_new_account(account_posts: AccountPosts, spec: str, seen: dict[str, str]) -> None:
    if not account_posts.posts:
        raise HuggingtweetsError(f"no posts found in {spec}")
    handle = account_posts.account.handle
    if handle in seen:
        raise HuggingtweetsError(
            f"account {handle!r} is given twice ({seen[handle]} and {spec}); pass each account "
            "once, or give one of them another --handle"
        )
    seen[handle] = spec


def _check_not_live(run: RunDir, handle: str, spec: str) -> None:
    """A file's posts replace posts/<handle>.jsonl whole: refuse when that holds posts
    fetched from a live account, which would be lost."""
    if run.state_path(handle).exists():
        raise HuggingtweetsError(
            f"{run.posts_path(handle)} holds posts fetched from a live account; collecting "
            f"{spec} would replace them: use another --out, or give it another --handle"
        )


def load_collected(run_dir: Path | str | RunDir) -> list[AccountPosts]:
    """Every account already collected into ``run_dir``: those of the last dataset in its
    order (which names the run, its columns and its Hub id), then any others by name."""
    run = run_dir if isinstance(run_dir, RunDir) else RunDir(Path(run_dir))
    handles = run.collected_handles()
    if not handles:
        raise HuggingtweetsError(
            f"no collected posts in {run.posts_dir}; "
            "give a SOURCE (a file, an export or an account)"
        )
    previous = {h: i for i, h in enumerate(_dataset_order(run))}
    handles.sort(key=lambda h: (previous.get(h, len(previous)), h))
    return [run.read_collected(handle) for handle in handles]


def _dataset_order(run: RunDir) -> list[str]:
    """The handles of ``run``'s dataset/stats.json in order; none when it is missing or
    unreadable (it only orders the accounts: their posts are all in posts/)."""
    try:
        stats = orjson.loads(run.stats_path.read_bytes())
        return [str(account["handle"]) for account in stats["accounts"]]
    except (OSError, orjson.JSONDecodeError, KeyError, TypeError):
        return []
