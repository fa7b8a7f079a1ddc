"""What every tracker logs and how: the run's context, secret-free configs, tables.

Nothing secret is logged: configs are built from the option dataclasses, keys that name
a secret are dropped and every string goes through :func:`secrets.redact`.
"""

from __future__ import annotations

import abc
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from huggingtweets.core.events import Reporter
from huggingtweets.core.options import options_to_dict
from huggingtweets.core.runs import RunDir

if TYPE_CHECKING:
    from huggingtweets.train.recipe import TrainOptions

STAGE = "track"
# In the order they start: the local ones first, then W&B (which may need a login).
TRACKERS = ("tensorboard", "mlflow", "wandb")
ARTIFACT_TYPES = ("raw-dataset", "train-dataset", "pretrained-model", "finetuned-model")
PREDICTIONS = 5  # samples in the predictions table
PREDICTION_COLUMNS = ["prompt", "generation", "memorized", "why"]
# Config keys that name a secret: dropped whatever their value (a token read from a
# file, a password in a URL's options ...).
_SECRET_KEY_RE = re.compile(
    r"(?:^|[_.\-/])(?:token|secret|password|passwd|api_?key|credentials?|bearer)(?:$|[_.\-/])",
    re.IGNORECASE,
)


def reporting_names(report_to: Sequence[str]) -> list[str]:
    """``report_to`` with ``all`` read as Trainer reads it: every integration installed."""
    if "all" not in report_to:
        return list(report_to)
    from transformers.integrations.integration_utils import get_available_reporting_integrations

    return list(get_available_reporting_integrations())


def chosen_trackers(report_to: Sequence[str]) -> tuple[str, ...]:
    """The trackers of ``report_to`` that this package logs to (``all``: those installed)."""
    names = reporting_names(report_to)
    return tuple(name for name in TRACKERS if name in names)


def safe_config(data: Any) -> Any:
    """``data`` fit to be logged: keys naming a secret dropped, secrets' values redacted,
    paths as text."""
    from huggingtweets.core.secrets import redactor

    redact = redactor()

    def clean(value: Any) -> Any:
        if isinstance(value, Mapping):
            return {str(k): clean(v) for k, v in value.items() if not _SECRET_KEY_RE.search(str(k))}
        if isinstance(value, list | tuple):
            return [clean(v) for v in value]
        if isinstance(value, Path):
            value = str(value)
        if isinstance(value, str):
            return redact(value)
        return value

    return clean(data)


def flat_config(data: Mapping, prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} → {"a/b": 1}; None and lists as text (what TensorBoard and MLflow
    accept as a hyper-parameter)."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flat_config(value, name + "/"))
        elif isinstance(value, bool | int | float | str):
            out[name] = value
        else:
            out[name] = "none" if value is None else str(value)
    return out


def stats_rows(stats: dict) -> tuple[list[str], list[list[Any]]]:
    """The stats table: one row per account, the drop categories in their order."""
    categories = [c for c in stats.get("categories", []) if c != "kept"]
    columns = ["account", "platform", "downloaded", *categories, "kept", "train", "valid"]
    rows = []
    for account in stats.get("accounts", []):
        split = account.get("split") or {}
        rows.append(
            [
                account.get("handle"),
                account.get("platform"),
                account.get("downloaded"),
                *(account.get(c) for c in categories),
                account.get("kept"),
                split.get("train"),
                split.get("valid"),
            ]
        )
    return columns, rows


def markdown_table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    def cell(value: Any) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


@dataclass
class TrackingContext:
    """One training run as the trackers see it."""

    run: RunDir
    options: TrainOptions
    reporter: Reporter
    stats: dict
    prepare_options: dict | None
    name: str  # the handles, for run and artifact names
    group: str | None
    log_data: bool
    info: dict = field(default_factory=dict)  # what metrics.json["tracking"] records


class Backend(abc.ABC):
    """One tracker around the train stage: started before it, told its result, closed
    last (``error``: what stopped the run, or None)."""

    name: str

    def __init__(self, ctx: TrackingContext) -> None:
        self.ctx = ctx

    @abc.abstractmethod
    def start(self) -> None: ...

    def callbacks(self) -> list:
        """More Trainer callbacks; by default none: Trainer's own one for this tracker
        (``report_to``) logs the losses into the run ``start`` opened."""
        return []

    @abc.abstractmethod
    def trained(self, result, generation) -> None: ...

    @abc.abstractmethod
    def close(self, error: BaseException | None) -> None: ...


def prediction_rows(generation) -> list[list[Any]]:
    return [
        [generation.prompt, s.text, s.flagged, s.copy.describe() if s.copy else ""]
        for s in generation.samples
    ]


def summary_metrics(metrics: dict) -> dict[str, float]:
    """The numbers a run is compared by, from metrics.json."""
    keys = ("eval_loss_before", "eval_loss_after", "perplexity_before", "perplexity_after")
    out = {k: float(metrics[k]) for k in keys if isinstance(metrics.get(k), int | float)}
    if isinstance(metrics.get("best_epoch"), int | float):
        out["best_epoch"] = float(metrics["best_epoch"])
    seconds = (metrics.get("timings") or {}).get("train_seconds")
    if isinstance(seconds, int | float):
        out["train_seconds"] = float(seconds)
    return out


def train_config(ctx: TrackingContext) -> dict:
    return safe_config(
        {
            "handles": [a.get("handle") for a in ctx.stats.get("accounts", [])],
            "platforms": [a.get("platform") for a in ctx.stats.get("accounts", [])],
            "train_options": options_to_dict(ctx.options),
            "prepare_options": ctx.prepare_options or ctx.stats.get("options"),
        }
    )


def config_rows(ctx: TrackingContext) -> list[tuple[str, Any]]:
    return list(flat_config(train_config(ctx)).items())
