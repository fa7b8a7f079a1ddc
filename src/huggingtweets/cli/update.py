"""``huggingtweets update``: a bot that keeps up with new posts (see update/)."""

from __future__ import annotations

from pathlib import Path

import click
from rich.markup import escape

from huggingtweets.cli.common import (
    handle_option,
    interrupted,
    reporting,
    source_options,
)
from huggingtweets.cli.console import console, print_evaluation
from huggingtweets.cli.options import dataclass_options
from huggingtweets.collect.registry import SourceOptions
from huggingtweets.update.bot import UpdateOptions


@click.command("update")
@click.argument("run_dir", type=click.Path(path_type=Path))  # update_bot says what is wrong
@click.argument("sources", nargs=-1, metavar="[SOURCE]...")
@handle_option
@dataclass_options(UpdateOptions, "options")
@source_options
def update_command(
    run_dir: Path,
    sources: tuple[str, ...],
    handles: tuple[str, ...],
    options: UpdateOptions,
    source_options: SourceOptions,
) -> None:
    """Bring a bot up to date with its accounts' new posts.

    Live accounts fetch only their posts newer than those collected; an account read
    from a file takes a newer export of it, given as SOURCE: the export's posts the run
    lacks are added, and none of the run's are removed. The dataset is rebuilt with
    the run's own prepare options (posts keep their side of the split), the current
    model trains on the new posts plus --replay older ones, then it is evaluated (when
    the run was) and its card rewritten. The previous model/, card, metrics.json and
    evaluation.json are kept in RUN_DIR/history/<UTC date-time>/. With nothing new,
    nothing changes but that posts an export marks followers-only or direct leave the
    dataset (retrain to forget them); a Ctrl-C leaves the previous model in place.

    \b
    Examples:
      huggingtweets update runs/dril                   # live: fetch the newer posts
      huggingtweets update runs/me twitter-archive-2025.zip
      huggingtweets update runs/me export.zip --replay 1 --epochs 3
    """
    from huggingtweets.train.recipe import TrainingInterrupted
    from huggingtweets.update.bot import UpdateInterrupted, update_bot

    try:
        with reporting(
            "\nStopping after this step (Ctrl-C again to stop now); the previous model stays..."
        ) as reporter:
            result = update_bot(
                run_dir,
                sources,
                handles=handles,
                options=options,
                source_options=source_options,
                reporter=reporter,
            )
    except TrainingInterrupted:
        raise interrupted(
            f"Interrupted: {run_dir / 'model'} is the previous model, untouched; the new "
            "posts are kept in posts/: run the same command again to update."
        ) from None
    except UpdateInterrupted:
        raise interrupted(
            f"Interrupted before the new model was in place: the new posts are kept (the files in "
            f"{run_dir / 'posts'} were updated); {run_dir / 'model'} is the previous model, "
            f"unchanged: run `huggingtweets update {run_dir}` again to train on them."
        ) from None
    if not result.updated:
        console.print(escape(result.message[:1].upper() + result.message[1:]), soft_wrap=True)
        return
    console.print(escape(result.message[:1].upper() + result.message[1:]) + ".", soft_wrap=True)
    m = result.metrics or {}
    if "eval_loss_before" in m:
        console.print(
            f"Validation loss {m['eval_loss_before']:.4f} (previous model) → "
            f"{m['eval_loss_after']:.4f}",
        )
    if result.dates:
        console.print(f"Posts from {result.dates['first'][:10]} to {result.dates['last'][:10]}")
    if result.evaluation is not None:
        print_evaluation(result.evaluation)
    if result.card is not None:
        console.print(f"Model card rewritten: {escape(str(result.card))}", soft_wrap=True)
