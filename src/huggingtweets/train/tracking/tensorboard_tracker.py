"""TensorBoard: hyper-parameters (HParams), the data's stats and the samples as text, and
the losses (Trainer's own callback, on our writer), under ``<output>/tensorboard/``
(``TENSORBOARD_LOGGING_DIR``).
"""

from __future__ import annotations

import datetime
import os
from pathlib import Path

from huggingtweets.train.tracking.common import (
    PREDICTION_COLUMNS,
    Backend,
    TrackingContext,
    config_rows,
    flat_config,
    markdown_table,
    prediction_rows,
    safe_config,
    stats_rows,
    summary_metrics,
)


class TensorBoardTracker(Backend):
    """TensorBoard: hyper-parameters (HParams), the stats and samples as text, losses."""

    name = "tensorboard"

    def __init__(self, ctx: TrackingContext) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # transformers falls back on it too
            from tensorboardX import SummaryWriter
        super().__init__(ctx)
        self.SummaryWriter = SummaryWriter
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        given = os.environ.get("TENSORBOARD_LOGGING_DIR")
        base = Path(given).expanduser() if given else ctx.run.output_dir / "tensorboard"
        self.log_dir = base / stamp
        self.writer = None
        ctx.info["tensorboard"] = {"log_dir": str(self.log_dir)}

    def start(self) -> None:
        self.writer = self.SummaryWriter(log_dir=str(self.log_dir))
        columns, rows = stats_rows(self.ctx.stats)
        if rows:
            self.writer.add_text("dataset/stats", markdown_table(columns, rows))
            for row in rows:
                for column, value in zip(columns[2:], row[2:], strict=True):
                    if isinstance(value, int | float):
                        self.writer.add_scalar(f"dataset/{row[0]}/{column}", value, 0)
        self.writer.add_text("config", markdown_table(["option", "value"], config_rows(self.ctx)))
        self.writer.flush()

    def callbacks(self) -> list:
        from transformers.integrations import TensorBoardCallback

        class _KeepOpen(TensorBoardCallback):
            """Trainer's TensorBoard callback on our writer, left open at the end of
            training: the samples and hyper-parameters come after."""

            def on_train_end(self, args, state, control, **kwargs):
                if self.tb_writer is not None:
                    self.tb_writer.flush()

        return [_KeepOpen(tb_writer=self.writer)]

    def trained(self, result, generation) -> None:
        writer, metrics = self.writer, result.metrics
        hparams = flat_config(safe_config(metrics.get("hyperparameters") or {}))
        hparams["base_model"] = str(metrics.get("base_model"))
        summary = {f"hparam/{k}": v for k, v in summary_metrics(metrics).items()}
        writer.add_hparams(hparams, summary, run_name=".")
        writer.add_text(
            "predictions", markdown_table(PREDICTION_COLUMNS, prediction_rows(generation))
        )
        writer.add_text("hyperparameters", markdown_table(["name", "value"], hparams.items()))
        writer.flush()

    def close(self, error: BaseException | None) -> None:
        if self.writer is not None:
            if error is None:
                self.writer.add_text("model", f"written to {self.ctx.run.model_dir}")
            self.writer.close()
            self.writer = None
