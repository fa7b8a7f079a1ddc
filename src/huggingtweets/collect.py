"""collect: read or fetch each source's posts into the run directory's posts/ folder."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

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


def collect(
    sources: Sequence[str] | str,
    run_dir: Path | str,
    handles: Sequence[str] = (),
    text_column: str | None = None,
    live: LiveOptions | None = None,
) -> list[Collected]:
    """Collect each source into ``run_dir/posts/<handle>.jsonl``; returns what was collected.
    ``live`` says how live accounts are fetched (update, rate limits, time-outs)."""
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
    for collected in offline.values():
        run.write_collected(collected)
    results = []
    for i, source in enumerate(resolved):
        if i in offline:
            results.append(offline[i])
        else:
            collected = source.collect(run)
            _check_new_account(collected, source.spec, seen)
            results.append(collected)
    return results


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
    """Every account already collected into ``run_dir``."""
    run = RunDir(Path(run_dir))
    handles = run.collected_handles()
    if not handles:
        raise HuggingtweetsError(
            f"no collected posts in {run.posts_dir}; "
            "give a SOURCE (a file, an export or an account)"
        )
    return [run.read_collected(handle) for handle in handles]
