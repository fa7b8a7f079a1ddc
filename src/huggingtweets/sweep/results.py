"""What a sweep leaves: results.csv / results.json, sweep.png, and the best trial promoted
to the run's own model/ and metrics.json."""

from __future__ import annotations

import csv
import io
import math
import shutil
from pathlib import Path
from typing import Any

import orjson

from huggingtweets.core.events import Reporter
from huggingtweets.core.runs import RunDir, atomic_open, atomic_write, replace_dir, write_json
from huggingtweets.sweep.space import SEARCHABLE, STAGE

# -- results ----------------------------------------------------------------------------


def _trial_metrics(run: RunDir, number: int) -> dict:
    path = run.root / "trials" / str(number) / "metrics.json"
    try:
        metrics = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return {}
    return metrics if isinstance(metrics, dict) else {}


def results_rows(study, run: RunDir) -> list[dict]:
    """One row per trial: its state, losses, parameters and where its model is."""
    names = list(dict.fromkeys(name for t in study.trials for name in t.params))
    rows = []
    for trial in study.trials:
        metrics = _trial_metrics(run, trial.number)
        state = trial.state.name.lower()
        loss = metrics.get("eval_loss_after") if state in ("complete", "pruned") else None
        options = trial.user_attrs.get("options") or {}
        note = []
        if trial.user_attrs.get("retry_of") is not None:
            note.append(f"retry of trial {trial.user_attrs['retry_of']}")
        if trial.user_attrs.get("interrupted"):
            note.append("interrupted")
        if trial.user_attrs.get("diverged"):
            note.append("diverged")
        elif state == "pruned" and trial.intermediate_values:
            note.append(f"pruned after epoch {max(trial.intermediate_values)}")
        output = run.root / "trials" / str(trial.number)
        rows.append(
            {
                "trial": trial.number,
                "state": state,
                "eval_loss": loss,
                "perplexity": metrics.get("perplexity_after") if loss is not None else None,
                "eval_loss_before": metrics.get("eval_loss_before"),
                "best_epoch": metrics.get("best_epoch"),
                "epochs_run": metrics.get("epochs_run"),
                **{name: trial.params.get(name) for name in names},
                "warmup_steps": options.get("warmup_steps"),
                "train_seconds": (metrics.get("timings") or {}).get("train_seconds"),
                "output": str(output.relative_to(run.root)),
                "has_model": (output / "model" / "config.json").exists(),
                "best": False,
                "note": "; ".join(note),
            }
        )
    best = best_row(rows)
    for row in rows:
        row["best"] = best is not None and row["trial"] == best["trial"]
    return rows


def best_row(rows: list[dict]) -> dict | None:
    """The finished trial with the lowest validation loss whose model is there."""
    candidates = [
        r
        for r in rows
        if r["state"] in ("complete", "pruned")
        and r["has_model"]
        and isinstance(r["eval_loss"], int | float)
        and math.isfinite(r["eval_loss"])
    ]
    return min(candidates, key=lambda r: (r["eval_loss"], r["trial"]), default=None)


def write_results(run: RunDir, rows: list[dict], study, trials: int) -> tuple[Path, Path, Path]:
    folder = run.root / "sweep"
    csv_path, json_path, picture = (
        folder / "results.csv",
        folder / "results.json",
        folder / "sweep.png",
    )
    columns = list(dict.fromkeys(k for row in rows for k in row)) or ["trial"]
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(csv_path, text.getvalue())
    best = best_row(rows)
    write_json(
        json_path,
        {
            "study": str(folder / "study.db"),
            "trials_asked": trials,
            "best_trial": best["trial"] if best else None,
            "base_options": study.user_attrs.get("base_options"),
            "rows": rows,
        },
    )
    with atomic_open(picture) as handle:
        plot_sweep(study, rows, handle)
    return csv_path, json_path, picture


PANEL_SIZE = (5.0, 4.4)  # inches, one of the picture's three panels
PANEL_DPI = 100


def plot_sweep(study, rows: list[dict], out) -> None:
    """The sweep as one picture of three panels, each drawn by Optuna's own
    ``optuna.visualization.matplotlib``: the validation loss by trial (best so far as a
    line, the loss before training dashed), by epoch for every trial, and the
    parameters' importances (Optuna's PED-ANOVA evaluator); a title line above them."""
    from PIL import Image, ImageDraw, ImageFont

    panels = [Image.open(io.BytesIO(png)) for png in _optuna_panels(study, rows)]
    title_height = 36
    width = sum(panel.width for panel in panels)
    height = max(panel.height for panel in panels) + title_height
    picture = Image.new("RGB", (width, height), "white")
    x = 0
    for panel in panels:
        picture.paste(panel, (x, title_height))
        x += panel.width
    font = ImageFont.load_default(size=18)
    ImageDraw.Draw(picture).text(
        (width // 2, title_height // 2), _sweep_title(rows), fill="black", font=font, anchor="mm"
    )
    picture.save(out, format="PNG")


def _optuna_panels(study, rows: list[dict]) -> list[bytes]:
    """The three panels as PNG files. Optuna draws through pyplot and sets its "ggplot"
    style globally: rc_context puts the caller's style back, and each figure is closed."""
    import warnings

    import matplotlib

    matplotlib.use("Agg")  # as evaluate/report.py: no window, any thread
    import matplotlib.pyplot as plt
    import optuna
    from optuna.visualization import matplotlib as optuna_plots

    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    pngs = []
    with matplotlib.rc_context(), warnings.catch_warnings():
        # Optuna marks its matplotlib plots experimental; their interface is pinned by use here.
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        history = optuna_plots.plot_optimization_history(study, target_name="validation loss")
        befores = {round(r["eval_loss_before"], 6) for r in rows if _finite(r["eval_loss_before"])}
        if len(befores) == 1:
            history.axhline(befores.pop(), ls="--", color="#777777", label="before training")
            history.legend(loc="upper right", fontsize=8)
        by_epoch = optuna_plots.plot_intermediate_values(study)
        by_epoch.set(xlabel="epoch", ylabel="validation loss")
        if len(by_epoch.lines) > 12:  # a legend of more trials hides the lines
            by_epoch.get_legend().remove()
        importance = _importance_axes(study, len(complete))
        for axes in (history, by_epoch, importance):
            figure = axes.get_figure()
            figure.set_size_inches(*PANEL_SIZE)
            buffer = io.BytesIO()
            figure.savefig(buffer, format="png", dpi=PANEL_DPI)
            plt.close(figure)
            pngs.append(buffer.getvalue())
    return pngs


def _importance_axes(study, completed: int):
    """Optuna's importance plot, or a panel saying why there is none."""
    import matplotlib.pyplot as plt
    import optuna
    from optuna.visualization.matplotlib import plot_param_importances

    why = "needs 2 or more\ncompleted trials"  # with fewer, PED-ANOVA calls all equal
    if completed >= 2:
        evaluator = optuna.importance.PedAnovaImportanceEvaluator()
        try:
            axes = plot_param_importances(study, evaluator=evaluator)
        except (ValueError, RuntimeError) as exc:  # e.g. no parameter varied
            from huggingtweets.model.loading import first_line

            why = f"not computed:\n{first_line(exc)}"
        else:
            axes.set_xlabel(f"importance (PED-ANOVA, {completed} completed trials)")
            return axes
    axes = plt.figure().add_subplot()
    axes.text(0.5, 0.5, why, ha="center", va="center", wrap=True)
    axes.set_title("Hyperparameter Importances")
    axes.set_axis_off()
    return axes


def _sweep_title(rows: list[dict]) -> str:
    count = sum(r["state"] == "complete" for r in rows)
    pruned = sum(r["state"] == "pruned" for r in rows)
    title = f"Sweep: {count} completed and {pruned} pruned trials"
    if len(rows) > count + pruned:
        title += f" ({len(rows) - count - pruned} failed or interrupted)"
    best = best_row(rows)
    if best is not None:
        title += f"; best: trial {best['trial']}, validation loss {best['eval_loss']:.4f}"
    return title


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def promote_trial(run: RunDir, best: dict, reporter: Reporter) -> None:
    """The best trial's model (with a card written for it) and metrics.json become the
    run's: the folder is swapped in whole, then metrics.json replaced."""
    from huggingtweets.pipeline import write_card_reporting

    trial = RunDir(run.root).trial(str(best["trial"]))
    reporter.info(STAGE, f"promoting trial {best['trial']} to {run.root / 'model'}")
    write_card_reporting(trial, reporter)
    with replace_dir(RunDir(run.root).model_dir) as tmp:
        shutil.copytree(trial.model_dir, tmp, dirs_exist_ok=True)
    metrics = _trial_metrics(run, best["trial"])
    metrics["sweep"] = {
        "trial": best["trial"],
        "results": "sweep/results.csv",
        "params": {k: v for k, v in best.items() if k in SEARCHABLE},
    }
    write_json(RunDir(run.root).metrics_path, metrics)
