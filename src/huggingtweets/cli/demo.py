"""``huggingtweets demo``: the whole pipeline offline, drawn stage by stage (see demo.py
at the package's top: run_demo does the work)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import click
from rich.markup import escape

from huggingtweets.cli.common import reporting
from huggingtweets.cli.console import (
    console,
    print_samples,
    print_stats_after_prepare,
    print_verdict,
)
from huggingtweets.core.events import Event


@click.command("demo")
@click.option(
    "--out",
    "run_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("runs/demo"),
    show_default=True,
    help="The run directory to write.",
)
@click.option(
    "--epochs",
    type=float,
    default=None,
    help="Training epochs at most (default 12, stopping early once the validation loss "
    "rises; fewer for a quicker, rougher bot).",
)
@click.option("--seed", type=int, default=42, show_default=True, help="Seed of every stage.")
def demo_command(run_dir: Path, epochs: float | None, seed: int) -> None:
    """The whole pipeline offline in a few minutes: a ROMEO & JULIET cyborg.

    Two speakers of the bundled tiny-Shakespeare sample as two accounts, the tiny model
    trained from scratch on their lines: prepare → train → card → five posts.

    \b
    Examples:
      huggingtweets demo
      huggingtweets demo --out /tmp/demo --epochs 2
    """
    import os
    import time

    # Before torch loads OpenMP: waiting threads sleep instead of spinning. On a machine
    # busy with other work, spinning threads stall each step (measured on this 2-core
    # box beside one busy process: 0.97 s/step spinning, 0.45 s passive; 0.30 vs 0.33 s
    # when idle), which took the demo from about 1 minute to over 5.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from huggingtweets.demo import DEMO_EPOCHS, run_demo

    epochs = DEMO_EPOCHS if epochs is None else epochs
    started = time.perf_counter()
    with reporting() as reporter:
        reporter.listeners.insert(0, _stage_headers(epochs))
        result = run_demo(run_dir, epochs=epochs, seed=seed, reporter=reporter)
    m = result.metrics
    console.print(
        f"Validation loss {m['eval_loss_before']:.3f} → {m['eval_loss_after']:.3f} "
        f"(perplexity {m['perplexity_before']:,.0f} → {m['perplexity_after']:,.1f}), "
        f"best epoch {m['best_epoch']:g} of {m.get('epochs_run', epochs):g} run, "
        f"{m['timings']['train_seconds']:.0f} s on {escape(m['device'])}",
        soft_wrap=True,
    )
    if result.evaluation is not None:
        print_verdict(result.evaluation, result.run_dir / "evaluation.json")
    print_samples(result.generation)
    elapsed = time.perf_counter() - started
    console.rule()
    where = escape(str(result.run_dir))
    console.print(f"Done in {elapsed:.0f} s. Your bot is in {where}. Next:", soft_wrap=True)
    console.print(f'  huggingtweets generate {where} "O Romeo" -n 10', soft_wrap=True)
    console.print(f"  less {escape(str(result.card))}", soft_wrap=True)


def _stage_headers(epochs: float) -> Callable[[Event], None]:
    """A reporter's listener: a numbered rule as each stage starts, the data's table
    after prepare, the card's path after it is written."""
    from huggingtweets.demo import DEMO_SAMPLES, DEMO_SOURCES
    from huggingtweets.pipeline import default_evaluate

    stages = {
        "prepare": " ".join(DEMO_SOURCES),
        "train": f"the tiny model, up to {epochs:g} epochs",
        "evaluate": "does it sound like them?",
        "card": "",
        "generate": f"{DEMO_SAMPLES} posts for “My dream is”",
    }
    if default_evaluate() == "never":  # $HUGGINGTWEETS_EVALUATE; the tiny model is quick
        del stages["evaluate"]
    headers = {
        stage: f"[bold]{i}/{len(stages)} {stage}[/bold]  {what}".rstrip()
        for i, (stage, what) in enumerate(stages.items(), 1)
    }

    def show(event: Event) -> None:
        if event.kind == "start" and event.stage in headers:
            console.rule(headers.pop(event.stage))
        elif event.kind == "end" and event.stage == "card" and "path" in event.data:
            console.print(
                f"Model card written to {escape(str(event.data['path']))} (+ preview.png)",
                soft_wrap=True,
            )
        else:
            print_stats_after_prepare(event)

    return show
