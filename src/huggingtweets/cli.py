"""The ``huggingtweets`` command: a thin layer over the Python API."""

from __future__ import annotations

import errno
from pathlib import Path

import click
from rich.markup import escape

from . import __version__
from .console import console, stats_table, warn
from .errors import HuggingtweetsError
from .prepare import PrepareOptions, prepare
from .sources import accepted_forms


class _Group(click.Group):
    """Turns the errors a user can act on into one line and an exit code, no traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except HuggingtweetsError as exc:
            click.echo(f"Error: {exc}", err=True)
            ctx.exit(2)
        except KeyboardInterrupt:
            click.echo(
                "Interrupted: nothing half-written was kept; run the command again to continue.",
                err=True,
            )
            ctx.exit(130)
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                where = exc.filename or "while writing"
                message = f"the disk is full ({where}); free some space and run again"
            else:
                message = f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc)
            click.echo(f"Error: {message}", err=True)
            ctx.exit(1)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="huggingtweets")
def cli() -> None:
    """Turn one to three social accounts into a small language model that writes like them.

    \b
    Pipeline:  collect → prepare → train → card/push → generate
    Quick start (offline):  huggingtweets demo
    """


def _source_help() -> str:
    return "SOURCE is one of: " + "; ".join(accepted_forms()) + "."


_run_dir = click.option(
    "--out",
    "run_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="The run directory to write (posts/, dataset/, model/ ...).",
)
_handle = click.option(
    "--handle",
    "handles",
    multiple=True,
    metavar="H",
    help="The account's handle, for sources that do not name it "
    "(repeat: one per source, in order).",
)
_text_column = click.option(
    "--text-column",
    metavar="NAME",
    help="CSV/JSONL: the field holding the text "
    "(default: the first of text, full_text, content, tweet).",
)


@cli.command()
@click.argument("sources", nargs=-1, required=True, metavar="SOURCE...")
@_run_dir
@_handle
@_text_column
def collect(sources, run_dir, handles, text_column):
    """Collect posts into RUN_DIR/posts/<handle>.jsonl (one normalized record a line).

    \b
    Examples:
      huggingtweets collect twitter-archive.zip --out runs/me
      huggingtweets collect data/tweets.js --handle smithjd --out runs/smithjd
      huggingtweets collect sample:romeo --out runs/romeo
    """
    from .collect import collect as collect_sources

    for collected in collect_sources(sources, run_dir, handles, text_column):
        console.print(
            f"@{escape(collected.account.handle)}: {len(collected.posts):,} posts → "
            f"{escape(str(Path(run_dir) / 'posts' / (collected.account.handle + '.jsonl')))}"
        )


collect.help = (collect.help or "") + "\n\n" + _source_help()


@cli.command()
@click.argument("sources", nargs=-1, metavar="[SOURCE]...")
@_run_dir
@_handle
@_text_column
@click.option("--allow-newlines", is_flag=True, help="Keep line breaks inside posts.")
@click.option("--drop-replies", is_flag=True, help="Drop replies (counted as 'replies').")
@click.option("--dedupe", is_flag=True, help="Drop repeated posts (counted as 'duplicates').")
@click.option("--strip-mentions", is_flag=True, help="Remove @mentions from the text.")
@click.option("--strip-hashtags", is_flag=True, help="Remove #hashtags from the text.")
@click.option(
    "--min-words",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Drop posts with fewer words (counted as 'below_min_words'; 3 always applies).",
)
@click.option(
    "--validation-split-percentage",
    type=click.FloatRange(0, 100, max_open=True),
    default=10.0,
    show_default=True,
    help="Share of each account held out for evaluation.",
)
@click.option(
    "--seed", type=int, default=42, show_default=True, help="Seed of the split and sampling."
)
@click.option(
    "--no-balance", is_flag=True, help="Do not oversample smaller accounts up to the largest one."
)
def prepare_cmd(
    sources,
    run_dir,
    handles,
    text_column,
    allow_newlines,
    drop_replies,
    dedupe,
    strip_mentions,
    strip_hashtags,
    min_words,
    validation_split_percentage,
    seed,
    no_balance,
):
    """Clean posts into a dataset: RUN_DIR/dataset/{train,valid}.jsonl and stats.json.

    Collects SOURCEs first; without SOURCE, uses what RUN_DIR/posts/ holds.
    Reposts, short posts and private posts are dropped and counted.

    \b
    Examples:
      huggingtweets prepare sample:romeo sample:juliet --out runs/romeo-juliet
      huggingtweets prepare export.zip --handle me --dedupe --out runs/me
      huggingtweets prepare --out runs/me          # re-prepare collected posts
    """
    options = PrepareOptions(
        allow_newlines=allow_newlines,
        drop_replies=drop_replies,
        dedupe=dedupe,
        strip_mentions=strip_mentions,
        strip_hashtags=strip_hashtags,
        min_words=min_words,
        validation_split_percentage=validation_split_percentage,
        seed=seed,
        balance=not no_balance,
    )
    result = prepare(run_dir, sources, handles, options, text_column)
    print_prepare_result(result)


prepare_cmd.help = (prepare_cmd.help or "") + "\n\n" + _source_help()
cli.add_command(prepare_cmd, name="prepare")


def print_prepare_result(result) -> None:
    console.print(stats_table(result.stats))
    for message in result.warnings:
        warn(escape(message))
    console.print("\n[bold]A few kept posts:[/bold]")
    for handle, text in result.examples:
        console.print(f"  @{escape(handle)}: {escape(text)}", soft_wrap=True)
    console.print(f"\nDataset written to {escape(str(result.run.dataset_dir))}")


@cli.command()
@click.option("--top", type=click.IntRange(min=1), default=20, show_default=True)
def samples(top):
    """List the speakers of the bundled tiny-Shakespeare sample (use as sample:NAME)."""
    from .sources.sample import speakers

    for handle, count in speakers().most_common(top):
        console.print(f"sample:{handle}  ({count} speeches)")


def main() -> None:
    cli(prog_name="huggingtweets")
