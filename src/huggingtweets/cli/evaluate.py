"""``huggingtweets evaluate``: does the bot sound like them? (registered at the end of cli.py)"""

from __future__ import annotations

from pathlib import Path

import click
from rich.markup import escape
from rich.table import Table

from huggingtweets.cli.console import console
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
def evaluate_command(run_dir, options, output_dir, no_card):
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
    from huggingtweets.cli.main import _reporting
    from huggingtweets.core.runs import RunDir
    from huggingtweets.evaluate.evaluation import evaluate
    from huggingtweets.pipeline import write_card_reporting
    from huggingtweets.publish.hub import card_repo_id

    run = RunDir(run_dir).with_output(output_dir)
    with _reporting() as reporter:
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


def print_verdict(evaluation: dict, path: Path) -> None:
    """After training: the real-or-bot verdict of all accounts together, in one line."""
    from huggingtweets.evaluate.report import card_section

    section = card_section(evaluation, Path("/nonexistent"))
    if section["classifier"]:
        _, accuracy, interval, verdict, _ = section["classifier"][0]
        console.print(
            f"Does it sound like them? A classifier tells real from bot {accuracy} of the time "
            f"(95 % interval {interval}; 50 %: it cannot): {escape(verdict)}. More in "
            f"{escape(str(path))}",
            soft_wrap=True,
        )


def _pct(value) -> str:
    return "—" if value is None else f"{value:.0%}"


def print_evaluation(evaluation: dict) -> None:
    from huggingtweets.evaluate.report import card_section
    from huggingtweets.evaluate.report import who as who_label

    groups = evaluation["groups"]
    section = card_section(evaluation, Path("/nonexistent"))
    table = Table(title=f"{evaluation['samples']} bot posts vs {evaluation['held_out']} real")
    for column in ("", "real", "bot"):
        table.add_column(column, justify="left" if not column else "right")
    for name, real, bot in section["style"]:
        table.add_row(escape(name), escape(real), escape(bot))
    console.print(table)
    console.print(
        f"Lengths apart by {section['wasserstein']} words on average (KS {section['ks']}); "
        f"top-{section['top_words'][1]} words shared: {section['top_words'][0]}"
    )
    for who, accuracy, interval, verdict, each in section["classifier"]:
        console.print(
            f"Real or bot? ({escape(who)}, {each} of each): {accuracy} "
            f"(95 % interval {interval}): {escape(verdict)}"
        )
    for group in groups:
        p = group["perplexity"]
        base = "—" if p["base"] is None else f"{p['base']:,.1f}"
        console.print(
            f"Perplexity on the held-out posts ({escape(who_label(group['group']))}): "
            f"base model {base} → fine-tuned {p['fine_tuned']:,.1f}"
        )
    speakers = section.get("speakers")
    if speakers and "accuracy" in speakers:
        console.print(
            f"Written --as each account, attributed to it by a classifier of the accounts: "
            f"{speakers['accuracy']} of {speakers['samples']} (95 % interval "
            f"{speakers['interval']}; chance {speakers['chance']}; real posts "
            f"{speakers['real_accuracy']}): {escape(speakers['verdict'])}"
        )
    elif speakers:
        console.print(f"Speakers: {escape(speakers['skipped'])}")
    memo = evaluation["memorization"]
    if memo.get("checked"):
        console.print(
            f"Memorization: {memo['flagged']} of {memo['total']} samples ({_pct(memo['rate'])}) "
            f"copy a training post or share {memo['ngram']}+ words with one"
        )
