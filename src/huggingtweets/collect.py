"""collect: read or fetch each source's posts into the run directory's posts/ folder."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from .errors import HuggingtweetsError
from .records import Collected
from .runs import RunDir
from .sources import FileSource, SampleSource, Source, SourceOptions, resolve

OFFLINE_SOURCES = (FileSource, SampleSource)

if TYPE_CHECKING:
    from .sources.live import LiveOptions


def resolve_all(
    sources: Sequence[str],
    handles: Sequence[str] = (),
    text_column: str | None = None,
    live: LiveOptions | None = None,
) -> list[Source]:
    """Resolve every spec first, so that a typo fails before anything is written.
    ``handles`` apply to the sources in order."""
    if len(handles) > len(sources):
        raise HuggingtweetsError(
            f"{len(handles)} --handle values for {len(sources)} sources; "
            "give at most one per source"
        )
    return [
        resolve(
            spec, SourceOptions(handles[i] if i < len(handles) else None, text_column, live=live)
        )
        for i, spec in enumerate(sources)
    ]


@dataclass
class Gathered:
    """Every source's account, in the order given. Live accounts are already in posts/
    (cached page by page as they arrived, so that a stopped run resumes); files and samples
    are only read: ``write`` puts them there."""

    run: RunDir
    collected: list[Collected]
    unwritten: list[Collected]

    def write(self) -> None:
        for collected in self.unwritten:
            self.run.write_collected(collected)
        self.unwritten = []


def gather(
    sources: Sequence[str] | str,
    run_dir: Path | str,
    handles: Sequence[str] = (),
    text_column: str | None = None,
    live: LiveOptions | None = None,
    *,
    write_files_first: bool = False,
) -> Gathered:
    """Read the files and collect the live accounts, leaving the files' posts/ to
    ``Gathered.write`` (``write_files_first``: write them before the live accounts)."""
    if isinstance(sources, str):
        sources = [sources]
    run = RunDir(Path(run_dir))
    resolved = resolve_all(sources, handles, text_column, live)
    # Files are read whole before anything is written, so that a bad second file or an
    # account given twice leaves the run directory untouched. Live accounts are cached
    # as they arrive (their own collect), so they come after.
    offline = {i: s.read() for i, s in enumerate(resolved) if isinstance(s, OFFLINE_SOURCES)}
    seen: dict[str, str] = {}
    for i, collected in offline.items():
        _check_new_account(collected, resolved[i].spec, seen)
        _check_not_live(run, collected.account.handle, resolved[i].spec)
    gathered = Gathered(run, [], list(offline.values()))
    if write_files_first:
        gathered.write()
    for i, source in enumerate(resolved):
        if i in offline:
            gathered.collected.append(offline[i])
        else:
            collected = source.collect(run)
            _check_new_account(collected, source.spec, seen)
            gathered.collected.append(collected)
    return gathered


def collect(
    sources: Sequence[str] | str,
    run_dir: Path | str,
    handles: Sequence[str] = (),
    text_column: str | None = None,
    live: LiveOptions | None = None,
) -> list[Collected]:
    """Collect each source into ``run_dir/posts/<handle>.jsonl``; returns what was collected.
    ``live`` says how live accounts are fetched (update, rate limits, time-outs)."""
    gathered = gather(sources, run_dir, handles, text_column, live, write_files_first=True)
    return gathered.collected


def _check_new_account(collected: Collected, spec: str, seen: dict[str, str]) -> None:
    if not collected.posts:
        raise HuggingtweetsError(f"no posts found in {spec}")
    handle = collected.account.handle
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


def load_collected(run_dir: Path | str) -> list[Collected]:
    """Every account already collected into ``run_dir``: those of the last dataset in its
    order (which names the run, its columns and its Hub id), then any others by name."""
    run = RunDir(Path(run_dir))
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
