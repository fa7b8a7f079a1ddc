"""collect: read or fetch each source's posts into the run directory's posts/ folder."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .errors import HuggingtweetsError
from .records import Collected
from .runs import RunDir
from .sources import Source, SourceOptions, resolve


def resolve_all(
    sources: Sequence[str], handles: Sequence[str] = (), text_column: str | None = None
) -> list[Source]:
    """Resolve every spec first, so that a typo fails before anything is written.
    ``handles`` apply to the sources in order."""
    if len(handles) > len(sources):
        raise HuggingtweetsError(
            f"{len(handles)} --handle values for {len(sources)} sources; "
            "give at most one per source"
        )
    return [
        resolve(spec, SourceOptions(handles[i] if i < len(handles) else None, text_column))
        for i, spec in enumerate(sources)
    ]


def collect(
    sources: Sequence[str] | str,
    run_dir: Path | str,
    handles: Sequence[str] = (),
    text_column: str | None = None,
) -> list[Collected]:
    """Collect each source into ``run_dir/posts/<handle>.jsonl``; returns what was collected."""
    if isinstance(sources, str):
        sources = [sources]
    run = RunDir(Path(run_dir))
    return [source.collect(run) for source in resolve_all(sources, handles, text_column)]


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
