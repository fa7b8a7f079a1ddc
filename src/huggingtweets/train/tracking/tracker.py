"""The trackers of one training run, started and closed together around the train stage."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from huggingtweets.core.errors import HuggingtweetsError
from huggingtweets.core.events import Reporter, reporter_or_silent
from huggingtweets.core.runs import RunDir, write_json
from huggingtweets.train.tracking.common import (
    PREDICTIONS,
    Backend,
    TrackingContext,
    chosen_trackers,
    reporting_names,
    safe_config,
)
from huggingtweets.train.tracking.mlflow_tracker import MLflowTracker
from huggingtweets.train.tracking.tensorboard_tracker import TensorBoardTracker
from huggingtweets.train.tracking.wandb_tracker import WandBTracker

if TYPE_CHECKING:
    from huggingtweets.train.recipe import TrainOptions

BACKENDS: dict[str, type[Backend]] = {
    "wandb": WandBTracker,
    "tensorboard": TensorBoardTracker,
    "mlflow": MLflowTracker,
}


class Tracker:
    """The trackers of one training run (none: every method does nothing)."""

    def __init__(
        self, options: TrainOptions, context: TrackingContext | None, backends: list[Backend]
    ) -> None:
        self.context = context
        self.backends = backends
        self._options = options

    @property
    def active(self) -> tuple[str, ...]:
        return tuple(b.name for b in self.backends)

    @property
    def train_options(self):
        """The options to train with. TensorBoard is logged here, into the run rather than
        into Trainer's default place under checkpoints/, which is deleted after training."""
        options = self._options
        if "tensorboard" not in self.active:
            return options
        kept = [n for n in reporting_names(options.report_to) if n != "tensorboard"]
        return replace(options, report_to=kept or ["none"])

    @property
    def callbacks(self) -> list:
        return [cb for backend in self.backends for cb in backend.callbacks()]

    def trained(self, result) -> None:
        """After training: predictions, summaries and the model's facts logged; the
        trackers' links recorded in metrics.json (``tracking``) for the card."""
        if not self.backends or not result.main_process:
            return
        ctx = self.context
        generation = _predictions(result.model_dir, ctx)
        for backend in self.backends:
            backend.trained(result, generation)
        metrics = dict(result.metrics)
        # The options as given (TensorBoard was taken out of Trainer's report_to above).
        metrics["options"] = {**metrics.get("options", {}), "report_to": ctx.options.report_to}
        metrics["tracking"] = safe_config(ctx.info)
        result.metrics.clear()
        result.metrics.update(metrics)
        write_json(result.run.metrics_path, metrics)  # the staged one, when staged

    def _start(self) -> None:
        for backend in self.backends:
            backend.start()

    def _close(self, error: BaseException | None) -> None:
        first: BaseException | None = None
        for backend in self.backends:
            try:
                backend.close(error)
            except BaseException as exc:  # close every tracker, then say what failed
                first = first or exc
        if first is not None and error is None:
            raise first


@contextlib.contextmanager
def track(
    run: RunDir | Path | str,
    options,
    reporter: Reporter | None = None,
    *,
    prepare_options: Mapping | None = None,
    log_data: bool = True,
    group: str | None = None,
    name: str | None = None,
) -> Iterator[Tracker]:
    """The trackers named in ``options.report_to`` around a train stage (see the package).

    ``log_data=False`` skips the W&B preprocess run (a sweep's trials share one dataset);
    ``group`` groups W&B runs; ``name`` replaces the handles in run names.
    """
    run = run if isinstance(run, RunDir) else RunDir(Path(run))
    names = chosen_trackers(options.report_to)
    if not names or os.environ.get("RANK", "0") != "0":  # under torchrun: the first only
        yield Tracker(options, None, [])
        return
    stats = _read_stats(run)
    handles = "-".join(a.get("handle", "") for a in stats.get("accounts", [])) or run.root.name
    ctx = TrackingContext(
        run=run,
        options=options,
        reporter=reporter_or_silent(reporter),
        stats=stats,
        prepare_options=dict(prepare_options) if prepare_options is not None else None,
        name=name or handles,
        group=group,
        log_data=log_data,
    )
    tracker = Tracker(options, ctx, [_backend(name, ctx) for name in names])
    try:
        tracker._start()
        yield tracker
    except BaseException as error:
        tracker._close(error)
        raise
    tracker._close(None)


def _backend(name: str, ctx: TrackingContext) -> Backend:
    try:
        return BACKENDS[name](ctx)
    except ImportError as exc:  # found by transformers, but broken or incomplete
        raise HuggingtweetsError(
            f"--report-to {name}: cannot load it ({exc}); pip install 'huggingtweets[track]'"
        ) from None


def _read_stats(run: RunDir) -> dict:
    try:
        stats = orjson.loads(run.stats_path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return {}
    return stats if isinstance(stats, dict) else {}


def _predictions(model_dir: Path, ctx: TrackingContext):
    """A few samples of the trained model for the posts' language's prompt, each checked
    by the memorization guard."""
    from huggingtweets.core.language import default_prompt, main_language
    from huggingtweets.generate.generator import GenerateOptions, Generator
    from huggingtweets.train.packing import read_texts

    stats = ctx.stats or {"accounts": []}
    try:
        texts = read_texts(ctx.run.train_path)[:500]
        language = main_language(stats, texts) if stats.get("accounts") else None
    except HuggingtweetsError:
        language = None
    generator = Generator.load(model_dir)
    return generator.generate(
        default_prompt(language),
        GenerateOptions(num_return_sequences=PREDICTIONS, seed=ctx.options.seed),
    )
