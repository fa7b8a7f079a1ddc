"""The ``huggingtweets`` command: the group, and every command registered on it.

Each command lives in its own module (cli/<command>.py) over the shared cli/common.py; the
work is the library's (pipeline.py and the stages). Every option comes from a field of
the stages' option dataclasses (cli/options.py derives the flags).
"""

from __future__ import annotations

import click

from huggingtweets import __version__
from huggingtweets.cli.card import card_command
from huggingtweets.cli.collect import collect_command
from huggingtweets.cli.common import CommandGroup
from huggingtweets.cli.demo import demo_command
from huggingtweets.cli.evaluate import evaluate_command
from huggingtweets.cli.export import export_command
from huggingtweets.cli.generate import generate_command
from huggingtweets.cli.prepare import prepare_command
from huggingtweets.cli.push import push_command
from huggingtweets.cli.samples import samples_command
from huggingtweets.cli.serve import serve_command
from huggingtweets.cli.sweep import sweep_command
from huggingtweets.cli.train import train_command
from huggingtweets.cli.update import update_command
from huggingtweets.cli.worker import worker_command


@click.group(cls=CommandGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="huggingtweets")
def cli() -> None:
    """Turn one to three social accounts into a small language model that writes like them.

    \b
    Pipeline:  collect → prepare → train (+ card) → generate
    Quick start (offline):  huggingtweets demo
    """


# In the pipeline's order (`--help` lists them alphabetically).
for command in (
    collect_command,
    prepare_command,
    samples_command,
    train_command,
    evaluate_command,
    card_command,
    push_command,
    export_command,
    generate_command,
    demo_command,
    sweep_command,
    update_command,
    serve_command,
    worker_command,
):
    cli.add_command(command)


def main() -> None:
    cli(prog_name="huggingtweets")
