"""``huggingtweets samples``: the speakers of the bundled sample (``sample:NAME``)."""

from __future__ import annotations

import click

from huggingtweets.cli.console import console


@click.command("samples")
@click.option(
    "--top",
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    help="How many speakers to list, those with the most speeches first.",
)
def samples_command(top: int) -> None:
    """List the speakers of the bundled tiny-Shakespeare sample (use as sample:NAME).

    \b
    Examples:
      huggingtweets samples --top 5
      huggingtweets prepare sample:romeo sample:juliet --out runs/romeo-juliet
    """
    from huggingtweets.collect.sample import speakers

    for handle, count in speakers().most_common(top):
        console.print(f"sample:{handle}  ({count} speeches)")
