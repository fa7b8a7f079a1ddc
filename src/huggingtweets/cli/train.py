"""``huggingtweets train``: fine-tune a bot, a thin layer over pipeline.train_bot."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import click
from rich.markup import escape

from huggingtweets.cli.common import (
    handle_option,
    interrupted,
    reporting,
    source_options,
)
from huggingtweets.cli.console import console, print_stats_after_prepare, print_verdict
from huggingtweets.cli.options import config_option, dataclass_options
from huggingtweets.collect.live.base import LiveOptions
from huggingtweets.collect.registry import SourceOptions, source_option_classes
from huggingtweets.pipeline import BotOptions, BotResult
from huggingtweets.prepare.dataset import PrepareOptions
from huggingtweets.publish.hub import PushOptions
from huggingtweets.train.recipe import TrainOptions

# The options of `train` a config file does not hold, and why: a config is a recipe, shared
# between runs and trials (sweep-3.yaml); where a run writes and which accounts its SOURCEs
# are belong to one command line. Every other option of `train` is read from it too.
NOT_IN_CONFIG = {
    "out": "it is where this one command prepares and trains, and a config is shared between "
    "runs; give --out on the command line",
    "output_dir": "it is where this one training writes, and every run given the config "
    "would write into the same folder; give --output-dir on the command line",
    "handle": "it names the SOURCEs on the command line, one per source in order; give "
    "--handle there",
    "keep_base_dropout": "in a config, write `dropout: null` (the base model's own dropout)",
    "config": "a config cannot name another config; merge the two files into one",
}


@click.command("train")
@click.argument("targets", nargs=-1, required=True, metavar="RUN_DIR | SOURCE...")
@click.option(
    "--out",
    "run_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="With SOURCEs: the run directory to prepare them into, then train.",
)
@dataclass_options(BotOptions, "bot_options")  # --output-dir, --no-card, --evaluate
@handle_option
@config_option(
    BotOptions,
    TrainOptions,
    PrepareOptions,
    PushOptions,
    LiveOptions,
    *source_option_classes(),
    also=("text_column",),
    refused=NOT_IN_CONFIG,
)
@dataclass_options(TrainOptions, "options")
@dataclass_options(PrepareOptions, "prepare_options", exclude=("seed",))
@source_options
@dataclass_options(PushOptions, "push_options")  # --push-to-hub, --repo-id (the card's too)
def train_command(
    targets: tuple[str, ...],
    run_dir: Path | None,
    bot_options: BotOptions,
    handles: tuple[str, ...],
    options: TrainOptions,
    prepare_options: PrepareOptions,
    source_options: SourceOptions,
    push_options: PushOptions,
) -> None:
    """Fine-tune a language model on a prepared run: RUN_DIR/model/ and metrics.json.

    With SOURCEs and --out, runs prepare first (with the prepare and source options
    given here). The defaults are the original huggingtweets' recipe (gpt2, learning rate
    1.372e-4, 4 epochs, cosine, AdamW); the best epoch by validation loss is kept. Ctrl-C
    stops after a checkpoint: continue with --resume. --config FILE takes any of these
    options from YAML or JSON (field names: num_train_epochs, lora, dedupe, evaluate ...;
    not the places --out, --output-dir, nor --handle).

    \b
    Examples:
      huggingtweets train runs/me                         # gpt2 from the Hub
      huggingtweets train runs/me --base-model tiny       # offline, seconds
      huggingtweets train sample:romeo sample:juliet --out runs/rj --base-model tiny
      huggingtweets train runs/me --base-model ./my-model --lora --precision bf16
      huggingtweets train runs/me --config sweep-3.yaml --output-dir runs/me/trials/3
      huggingtweets train runs/me --resume
      huggingtweets train runs/me --evaluate never
      huggingtweets train runs/me --push-to-hub --hub-model-id me/me-bot
      accelerate launch -m huggingtweets train runs/me --report-to wandb
    """
    from huggingtweets.pipeline import train_bot
    from huggingtweets.train.recipe import TrainingInterrupted

    try:
        with reporting(
            "\nStopping after this step and saving a checkpoint (Ctrl-C again to stop now)..."
        ) as reporter:
            reporter.listeners.append(print_stats_after_prepare)
            result = train_bot(
                targets,
                run_dir,
                handles,
                train=options,
                # one --seed: the split and oversampling follow the training's
                prepare_options=replace(prepare_options, seed=options.seed),
                source_options=source_options,
                options=bot_options,
                push_options=push_options,
                reporter=reporter,
            )
    except TrainingInterrupted as stop:
        where = f"last checkpoint {stop.checkpoint}" if stop.checkpoint else "no checkpoint yet"
        output = bot_options.output_dir or run_dir or Path(targets[0])
        raise interrupted(
            f"Interrupted ({where}); {Path(output) / 'model'} was not touched. To continue, "
            "run the same command again with --resume (without it, training starts over)."
        ) from None
    if result.trained.main_process:  # accelerate launch / torchrun: the first reports
        print_bot(result, in_output_dir=bot_options.output_dir is not None)


def print_bot(result: BotResult, in_output_dir: bool) -> None:
    """What training made (losses, speed, the verdict, the card) and what to run next."""
    m = result.trained.metrics
    console.print(
        f"Validation loss {m['eval_loss_before']:.4f} → {m['eval_loss_after']:.4f}, "
        f"perplexity {m['perplexity_before']:,.2f} → {m['perplexity_after']:,.2f} "
        f"(best epoch {m['best_epoch']:g} of {m.get('epochs_run', 0):g} run)"
    )
    console.print(
        f"{m['timings']['train_seconds']:.0f} s, {m['timings']['tokens_per_second']:,.0f} "
        f"tokens/s on {escape(m['device'])}"
    )
    if result.evaluated is not None:
        print_verdict(result.evaluated.evaluation, result.evaluated.path)
    if result.card is not None:
        console.print(
            f"Model card written to {escape(str(result.card))} (+ preview.png)", soft_wrap=True
        )
    model_dir = result.trained.model_dir
    console.print(f"Model written to {escape(str(model_dir))}. Next:", soft_wrap=True)
    target = model_dir if in_output_dir else result.run.root
    if result.pushed is not None:
        console.print(f"Pushed to {escape(result.pushed.url)}", soft_wrap=True)
        target = result.pushed.repo_id
    console.print(
        f'  huggingtweets generate {escape(str(target))} "My dream is" -n 5', soft_wrap=True
    )
