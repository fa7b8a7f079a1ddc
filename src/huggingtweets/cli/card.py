"""``huggingtweets card``: the model card and its preview picture (see card/)."""

from __future__ import annotations

from pathlib import Path

import click
from rich.markup import escape

from huggingtweets.card.model_card import CardOptions
from huggingtweets.cli.common import reporting
from huggingtweets.cli.console import console, err_console
from huggingtweets.cli.options import dataclass_options


@click.command("card")
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@dataclass_options(CardOptions, "options")
def card_command(run_dir: Path, options: CardOptions) -> None:
    """Write the model card RUN_DIR/model/README.md and its picture preview.png.

    The huggingtweets layout: avatars, "🤖 AI BOT 🤖" (or CYBORG for several accounts),
    the training-data table from dataset/stats.json, base model and hyper-parameters,
    loss and perplexity before → after, sample posts and their memorization rate.

    \b
    Examples:
      huggingtweets card runs/romeo-juliet
      huggingtweets card runs/me --repo-id my-name/me-bot --samples 8
    """
    from huggingtweets.core.runs import RunDir
    from huggingtweets.pipeline import write_card_reporting

    with reporting() as reporter, err_console.status("Writing the model card…"):
        path = write_card_reporting(RunDir(run_dir), reporter, options=options)
    console.print(f"Model card written to {escape(str(path))}", soft_wrap=True)
    console.print(f"Preview picture: {escape(str(path.with_name('preview.png')))}", soft_wrap=True)
