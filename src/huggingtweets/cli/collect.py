"""``huggingtweets collect``: posts from a source into RUN_DIR/posts/ (see collect/)."""

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
from huggingtweets.cli.console import console
from huggingtweets.collect.registry import SourceOptions


@click.command("collect")
@click.argument("sources", nargs=-1, required=True, metavar="SOURCE...")
@run_dir_option
@handle_option
@source_options
def collect_command(
    sources: tuple[str, ...],
    run_dir: Path,
    handles: tuple[str, ...],
    source_options: SourceOptions,
) -> None:
    """Collect posts into RUN_DIR/posts/<handle>.jsonl (one normalized record a line).

    Live accounts are fetched page by page into RUN_DIR/posts/ as they arrive: an
    interrupted run (Ctrl-C, crash, rate limit with --no-wait) continues where it stopped
    when run again, and --update fetches only newer posts. Tokens come from the
    environment: X_BEARER_TOKEN (or TWITTER_BEARER_TOKEN) for X; MASTODON_ACCESS_TOKEN
    (with MASTODON_INSTANCE) for Mastodon instances that require one.

    \b
    Examples:
      huggingtweets collect twitter-archive.zip --out runs/me
      huggingtweets collect data/tweets.js --handle smithjd --out runs/smithjd
      huggingtweets collect sample:romeo --out runs/romeo
      huggingtweets collect bsky:jay.bsky.team --out runs/jay
      huggingtweets collect @Gargron@mastodon.social --out runs/gargron
      X_BEARER_TOKEN=... huggingtweets collect x:dril --out runs/dril
      huggingtweets collect x:dril --update --out runs/dril
    """
    from huggingtweets.collect.collection import collect

    with reporting() as reporter:
        collection = collect(run_dir, sources, handles, source_options, reporter=reporter)
    for account_posts in collection.accounts:
        handle = account_posts.account.handle
        console.print(
            f"@{escape(handle)}: {len(account_posts.posts):,} posts → "
            f"{escape(str(collection.run.posts_path(handle)))}",
            soft_wrap=True,
        )
