"""MLflow: the train run's parameters and metrics, the data's stats, the samples and the
model as artifacts, in MLflow's store (``MLFLOW_TRACKING_URI``, else its default:
``./mlflow.db`` or ``./mlruns``).
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator

from huggingtweets.core.errors import HuggingtweetsError
from huggingtweets.model.loading import first_line, hidden_library_notice
from huggingtweets.train.tracking.common import (
    PREDICTION_COLUMNS,
    STAGE,
    Backend,
    TrackingContext,
    config_rows,
    markdown_table,
    prediction_rows,
    safe_config,
    stats_rows,
    summary_metrics,
)

MLFLOW_EXPERIMENT = "huggingtweets"


class MLflowTracker(Backend):
    """MLflow: the train run's parameters, metrics, the stats, samples and the model."""

    name = "mlflow"

    def __init__(self, ctx: TrackingContext) -> None:
        import mlflow

        super().__init__(ctx)
        self.mlflow = mlflow
        self.run = None
        self.trained_ok = False

    def start(self) -> None:
        mlflow, ctx = self.mlflow, self.ctx
        experiment = os.environ.get("MLFLOW_EXPERIMENT_NAME") or MLFLOW_EXPERIMENT
        try:
            with _quiet_store_setup():
                client = mlflow.MlflowClient()
                found = client.get_experiment_by_name(experiment)
            experiment_id = found.experiment_id if found else client.create_experiment(experiment)
            self.run = mlflow.start_run(
                experiment_id=experiment_id,
                run_name=f"{ctx.name}-train",
                nested=mlflow.active_run() is not None,
                tags={"huggingtweets.handles": ctx.name},
            )
        except Exception as exc:
            raise HuggingtweetsError(
                f"cannot start MLflow at {_uri_without_password(mlflow.get_tracking_uri())}: "
                f"{first_line(exc)}"
            ) from None
        info = self.run.info
        uri = mlflow.get_tracking_uri()
        url = None
        if uri.startswith(("http://", "https://")):
            url = f"{uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{info.run_id}"
        ctx.info["mlflow"] = {
            "tracking_uri": _uri_without_password(uri),
            "experiment_id": experiment_id,
            "run_id": info.run_id,
            "run_url": url and _uri_without_password(url),
        }
        params = {f"huggingtweets/{k}": str(v)[:250] for k, v in config_rows(ctx)}
        mlflow.log_params(params)
        if ctx.stats:
            mlflow.log_dict(safe_config(ctx.stats), "dataset/stats.json")
            columns, rows = stats_rows(ctx.stats)
            mlflow.log_text(markdown_table(columns, rows), "dataset/stats.md")
        where = ctx.info["mlflow"]["tracking_uri"]
        ctx.reporter.info(STAGE, f"MLflow run {info.run_id} at {where}")

    def trained(self, result, generation) -> None:
        mlflow, metrics = self.mlflow, result.metrics
        mlflow.log_metrics(summary_metrics(metrics))
        mlflow.log_dict(safe_config(metrics.get("hyperparameters") or {}), "hyperparameters.json")
        rows = prediction_rows(generation)
        mlflow.log_text(markdown_table(PREDICTION_COLUMNS, rows), "predictions.md")
        mlflow.log_dict(
            {"columns": PREDICTION_COLUMNS, "data": safe_config(rows)}, "predictions.json"
        )
        self.trained_ok = True

    def close(self, error: BaseException | None) -> None:
        if self.run is None:
            return
        mlflow = self.mlflow
        try:
            if error is None and self.trained_ok:
                mlflow.log_artifacts(str(self.ctx.run.model_dir), artifact_path="model")
        finally:
            if error is None:
                status = "FINISHED"
            else:
                status = "KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED"
            mlflow.end_run(status=status)
            self.run = None


@contextlib.contextmanager
def _quiet_store_setup() -> Iterator[None]:
    """MLflow announces on the terminal (its own log handler) that it creates a new
    local store's tables: our progress is events, and the store is named by ours."""
    with (
        hidden_library_notice("mlflow.store.db.utils", "Creating initial MLflow database"),
        hidden_library_notice("mlflow.store.db.utils", "Updating database tables"),
    ):
        yield


def _uri_without_password(uri: str) -> str:
    """A tracking URI with any user:password@ taken out."""
    return re.sub(r"(?<=://)[^/@\s]+@", "", uri)
