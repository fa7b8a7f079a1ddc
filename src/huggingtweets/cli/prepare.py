"""``huggingtweets prepare``: posts cleaned into a dataset (see prepare/)."""

from __future__ import annotations

from pathlib import Path

import click
from rich.markup import escape

from huggingtweets.cli.common import (
    handle_option,
    reporting,
    run_dir_option,
    source_options,
)
from huggingtweets.cli.console import console, stats_table
from huggingtweets.cli.options import dataclass_options
from huggingtweets.collect.registry import SourceOptions
from huggingtweets.core.errors import HuggingtweetsError
from huggingtweets.prepare.dataset import PrepareOptions, PrepareTarget


@click.command("prepare")
@click.argument("sources", nargs=-1, metavar="[SOURCE]...")
@run_dir_option
@handle_option
@dataclass_options(PrepareOptions, "options")
@dataclass_options(PrepareTarget, "target")
@source_options
def prepare_command(
    sources: tuple[str, ...],
    run_dir: Path,
    handles: tuple[str, ...],
    options: PrepareOptions,
    target: PrepareTarget,
    source_options: SourceOptions,
) -> None:
    """Clean posts into a dataset: RUN_DIR/dataset/{train,valid}.jsonl and stats.json.

    Collects SOURCEs first; without SOURCE, uses what RUN_DIR/posts/ holds.
    Reposts, short posts and private posts are dropped and counted.

    \b
    Examples:
      huggingtweets prepare sample:romeo sample:juliet --out runs/romeo-juliet
      huggingtweets prepare export.zip --handle me --dedupe --out runs/me
      huggingtweets prepare --out runs/me          # re-prepare collected posts
    """
    from huggingtweets.pipeline import source_options_given
    from huggingtweets.prepare.dataset import prepare

    if not sources and source_options_given(source_options):
        raise HuggingtweetsError("--text-column and the live options apply to SOURCEs: give some")
    with reporting() as reporter:
        result = prepare(
            run_dir,
            sources,
            handles,
            options,
            source_options,
            reporter=reporter,
            overwrite=target.overwrite,
        )
    # The table and a few kept posts (the warnings were shown as events).
    console.print(stats_table(result.stats))
    console.print("\n[bold]A few kept posts:[/bold]")
    for handle, text in result.examples:
        console.print(f"  @{escape(handle)}: {escape(text)}", soft_wrap=True)
    console.print(f"\nDataset written to {escape(str(result.run.dataset_dir))}")
