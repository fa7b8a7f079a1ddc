"""``huggingtweets push``: publish a trained bot on the Hugging Face Hub (see publish/).

Its options are PushOptions' fields (``--repo-id``, ``--private``, ``--revision``).
"""

from __future__ import annotations

from pathlib import Path

import click
from rich.markup import escape

from huggingtweets.cli.common import reporting
from huggingtweets.cli.console import console
from huggingtweets.cli.options import dataclass_options
from huggingtweets.core.secrets import redact
from huggingtweets.publish.hub import PushOptions


@click.command("push")
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--output-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the model to push is, when not RUN_DIR/model (a trial: RUN_DIR/trials/2).",
)
@click.option(
    "--space",
    is_flag=False,
    flag_value="",
    default=None,
    metavar="[OWNER/NAME]",
    help="Also publish a Gradio Space for the bot (app.py, requirements.txt, README.md) "
    "that loads the pushed model and writes ten posts from a prompt. Default: a Space "
    "named as the model. Give it after RUN_DIR.",
)
@dataclass_options(PushOptions, "options", exclude=("push_to_hub",))
def push_command(
    run_dir: Path, output_dir: Path | None, space: str | None, options: PushOptions
) -> None:
    """Publish RUN_DIR's trained model on the Hugging Face Hub, in one commit.

    Uploads exactly the model: weights, config, tokenizer, generation config, the card
    (README.md), preview.png, the avatars, the loss curve, the evaluation picture and the
    memorization guard; never posts/ or dataset/. The card is written again first when it
    names another repository. Pushing again updates the same repository; a push that
    fails leaves it at its previous commit (and removes one it created). The token comes
    from HF_TOKEN or `hf auth login`.

    \b
    Examples:
      huggingtweets push runs/me                          # YOUR_NAME/<handles>
      huggingtweets push runs/me --repo-id my-org/me-bot --private
      huggingtweets push runs/me --revision dev
      huggingtweets push runs/me --output-dir runs/me/trials/3
      huggingtweets push runs/me --space                  # + the Space YOUR_NAME/<handles>
      huggingtweets push runs/me --space my-org/me-bot-demo
    """
    from huggingtweets.core.runs import RunDir
    from huggingtweets.publish.hub import push_run

    run = RunDir(run_dir).with_output(output_dir)
    if space:
        from huggingtweets.publish.space import check_space_id

        check_space_id(space)  # before anything is pushed
    with reporting() as reporter:
        if space is None:
            result = push_run(run, options, reporter=reporter)
        else:  # the model's repository and the Space both checked before either is made
            from huggingtweets.publish.space import push_with_space

            result, published = push_with_space(run, options, space or None, reporter)

    # Shown as error lines are: with every secret blanked (an id or URL could hold one).
    def say(line: str) -> None:
        console.print(redact(line), soft_wrap=True)

    files = f"{len(result.uploaded)} files"
    if result.deleted:
        files += f" (and removed {len(result.deleted)} left by an earlier push)"
    commit = escape(result.commit[:7])
    if result.changed:
        say(f"Pushed {files} to {escape(result.url)} (commit {commit})")
    else:
        say(f"Nothing to push: {escape(result.url)} holds this model already (commit {commit})")
    if space is not None:
        say(f"Space: {escape(published.url)}")
    say("Use it:")
    say(f'  huggingtweets generate {escape(result.repo_id)} "My dream is" -n 5')
