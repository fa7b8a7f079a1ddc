"""``huggingtweets sweep``: a hyper-parameter search over a prepared run (see sweep.py).

The train options every trial starts from are train's own flags (``--base-model tiny`` ...); the
search space comes from ``--config`` (``parameters:``), over the original's default.
"""

from __future__ import annotations

from pathlib import Path

import click
from rich import box
from rich.markup import escape
from rich.table import Table

from huggingtweets.cli.common import reporting
from huggingtweets.cli.console import console
from huggingtweets.cli.options import FLAGS, config_file_option, dataclass_options
from huggingtweets.train.recipe import TrainOptions

FLAGS.setdefault("trials", "--trials")
_NOT_FOR_SWEEPS = ("resume", "report_to")


def _load_config(ctx: click.Context, path: Path) -> None:
    """--config FILE: train options at the top, the space under ``parameters:``; the
    options go where the derived flags read them (flags given win over them)."""
    from huggingtweets.sweep import load_sweep_config, parse_space

    options, space = load_sweep_config(path)
    parse_space(space, source=str(path))  # checked now, the file named in what is wrong
    ctx.meta["huggingtweets.config"] = options
    ctx.meta["huggingtweets.sweep_space"] = space


@click.command("sweep")
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--trials",
    type=int,
    required=True,
    metavar="N",
    help="How many finished trials the sweep should have in all (run again with a larger "
    "N to extend it).",
)
@config_file_option(
    _load_config,
    help="YAML or JSON: train options (base_model: tiny ...) and the search space under "
    "`parameters:` (e.g. `learning_rate: {min: 1e-5, max: 1e-3, distribution: "
    "log_uniform_values}`).",
)
@dataclass_options(TrainOptions, "options", exclude=_NOT_FOR_SWEEPS)
@click.option(
    "--promote/--no-promote",
    default=True,
    show_default=True,
    help="Make the best trial the run's model/ and metrics.json (with its card) at the end.",
)
def sweep_command(run_dir: Path, trials: int, options: TrainOptions, promote: bool) -> None:
    """Search hyper-parameters for a prepared run with Optuna, minimising validation loss.

    Each trial trains into RUN_DIR/trials/<n>/; the study is kept in RUN_DIR/sweep/study.db,
    so the same command run again after Ctrl-C or a crash continues it (finished trials are
    not repeated, an interrupted one runs again). Trials worse than the median after an
    epoch stop early. Results: RUN_DIR/sweep/results.csv, results.json and sweep.png.

    The default space is the original huggingtweets' sweep: learning rate log-uniform
    e^-14..e^-6, 1-10 epochs, schedule constant/linear/cosine, warm-up 0/10/20 % of the
    steps (warmup_ratio), gradient accumulation 1/4/8. In --config, under `parameters:`,
    each name takes `{values: [...]}`, `{min: A, max: B}` (with `distribution: uniform |
    int_uniform | log_uniform_values | log_uniform`), or one value to fix it.

    \b
    Examples:
      huggingtweets sweep runs/me --trials 20                   # gpt2, the original's space
      huggingtweets sweep runs/me --trials 8 --base-model tiny  # offline, minutes
      huggingtweets sweep runs/me --trials 30 --config sweep.yaml --no-promote
    """
    from huggingtweets.sweep import sweep as run_sweep

    space = _space_with_given_options(click.get_current_context(), options)
    with reporting(
        "\nStopping this trial after the current step (Ctrl-C again to stop now)..."
    ) as reporter:
        result = run_sweep(
            run_dir, trials, base=options, space=space, promote=promote, reporter=reporter
        )
    console.print(_table(result.rows))
    console.print(f"Results: {escape(str(result.results_csv))} (+ .json)", soft_wrap=True)
    console.print(f"Picture: {escape(str(result.picture))}", soft_wrap=True)
    if result.best is None:
        console.print("No trial finished: nothing to promote.")
    elif result.promoted:
        console.print(
            f"Trial {result.best['trial']} promoted to {escape(str(Path(run_dir) / 'model'))} "
            "(+ metrics.json, the card). Next:",
            soft_wrap=True,
        )
        console.print(
            f'  huggingtweets generate {escape(str(run_dir))} "My dream is" -n 5', soft_wrap=True
        )
    else:
        best = Path(run_dir) / result.best["output"]
        console.print(f"Best: {escape(str(best))} (not promoted)", soft_wrap=True)


def _space_with_given_options(ctx: click.Context, options: TrainOptions) -> dict:
    """The config's space, where an option given as a flag or at the config's top level
    (``--num-train-epochs 2``) is fixed rather than searched (flags winning)."""
    from click.core import ParameterSource

    from huggingtweets.sweep import SEARCHABLE

    space = dict(ctx.meta.get("huggingtweets.sweep_space") or {})
    config = ctx.meta.get("huggingtweets.config") or {}
    for name in SEARCHABLE:
        # "opt_<field>": how cli_options names the click parameter of a field
        source = ctx.get_parameter_source(f"opt_{name}")
        flag = source is not None and source != ParameterSource.DEFAULT
        if flag or (name in config and name not in space):
            space[name] = getattr(options, name)
    if "warmup_steps" in space and ctx.get_parameter_source("opt_warmup_steps") not in (
        None,
        ParameterSource.DEFAULT,
    ):
        space.pop("warmup_ratio", None)  # the flag wins over the config's ratio
    return space


# Short column names for the table (results.csv keeps the options' own names).
_SHORT = {
    "learning_rate": "lr",
    "num_train_epochs": "epochs",
    "lr_scheduler_type": "schedule",
    "warmup_ratio": "warm-up",
    "gradient_accumulation_steps": "accum.",
    "per_device_train_batch_size": "batch",
    "early_stopping_patience": "patience",
}


def _table(rows: list[dict]) -> Table:
    from huggingtweets.sweep import SEARCHABLE

    shown = [k for k in SEARCHABLE if k != "warmup_steps"]  # results.csv has the steps
    params = [k for k in dict.fromkeys(k for r in rows for k in r) if k in shown]
    table = Table(title="Trials (★ best)", box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1))
    table.collapse_padding = True
    for column in ("trial", "state", "val. loss", *(_SHORT.get(p, p) for p in params)):
        table.add_column(column, justify="right", no_wrap=True)
    table.add_column("note")
    for row in rows:
        loss = row["eval_loss"]
        cells = [
            f"{row['trial']}{' ★' if row['best'] else ''}",
            row["state"],
            f"{loss:.4f}" if isinstance(loss, int | float) else "",
            *(_cell(p, row.get(p)) for p in params),
            escape(row["note"].replace("pruned after epoch ", "epoch ")),
        ]
        table.add_row(*cells)
    return table


def _cell(name: str, value) -> str:
    if value is None:
        return ""
    if name == "learning_rate":
        return f"{value:.2e}"
    if name == "warmup_ratio":
        return f"{value:.0%}"
    return f"{value:.3g}" if isinstance(value, float) else escape(str(value))
