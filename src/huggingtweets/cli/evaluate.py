"""``huggingtweets evaluate``: does the bot sound like them? (see evaluate/)"""

from __future__ import annotations

from pathlib import Path

import click
from rich.markup import escape

from huggingtweets.cli.common import reporting
from huggingtweets.cli.console import console, print_evaluation
from huggingtweets.cli.options import dataclass_options
from huggingtweets.evaluate.evaluation import EvaluateOptions


@click.command("evaluate")
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@dataclass_options(EvaluateOptions, "options")
@click.option(
    "--output-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="The trial folder whose model to evaluate (as `train --output-dir` wrote it) "
    "[default: the run directory].",
)
@click.option("--no-card", is_flag=True, help="Do not add the results to the model card.")
def evaluate_command(
    run_dir: Path, options: EvaluateOptions, output_dir: Path | None, no_card: bool
) -> None:
    """Does the bot sound like them? Its posts against held-out real ones.

    The model writes --samples posts on its own; they are compared with the validation
    posts it never trained on: lengths, emoji, hashtags, mentions, questions,
    exclamations, capitals, languages, word diversity, favourite words, and a "real or
    bot?" classifier's cross-validated accuracy (50 %: it cannot tell them apart). Also
    the perplexity of the base and the fine-tuned model on those posts, each account's
    own figures, and how many samples copy a training post. Writes
    RUN_DIR/evaluation.json and model/evaluation.png, and adds the section "Does it
    sound like them?" to the model card.

    \b
    Examples:
      huggingtweets evaluate runs/demo
      huggingtweets evaluate runs/me --samples 500 --seed 7
      huggingtweets evaluate runs/me --output-dir runs/me/trials/3 --no-card
    """
    from huggingtweets.core.runs import RunDir
    from huggingtweets.evaluate.evaluation import evaluate
    from huggingtweets.pipeline import write_card_reporting
    from huggingtweets.publish.hub import card_repo_id

    run = RunDir(run_dir).with_output(output_dir)
    with reporting() as reporter:
        result = evaluate(run, options, reporter=reporter)
        card = run.model_dir / "README.md"
        if card.exists() and not no_card:
            write_card_reporting(
                run, reporter, repo_id=card_repo_id(run.model_dir), generator=result.generator
            )
    print_evaluation(result.evaluation)
    console.print(f"Written to {escape(str(result.path))} and {escape(str(result.picture))}")
    if card.exists() and not no_card:
        console.print(f'Model card updated: {escape(str(card))} ("Does it sound like them?")')
