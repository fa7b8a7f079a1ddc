"""Tracking: the original huggingtweets' W&B lineage, and the same story in TensorBoard
and MLflow, one module a tracker over a common one.

``--report-to wandb`` gives what the original's cards link to (``wandb_tracker``);
``--report-to tensorboard`` and ``--report-to mlflow`` get the same content in those
tools' terms: hyper-parameters, the data's stats, losses, samples as text, and (MLflow)
the model as an artifact. Where a tool stores things is its own convention (each module
says where).

:func:`track` wraps the train stage (``pipeline.make_bot`` calls it)::

    with track(run, options, reporter) as tracker:
        result = train(run, tracker.train_options, callbacks=tracker.callbacks)
        tracker.trained(result)          # predictions, summaries; metrics.json["tracking"]
        write_card(run)                  # the card can link to the W&B runs
    # leaving: the model (with its card) logged, the runs closed (failed on an exception)

Nothing secret is logged (:func:`safe_config`).
"""

from huggingtweets.train.tracking.common import (
    ARTIFACT_TYPES,
    TRACKERS,
    chosen_trackers,
    safe_config,
)
from huggingtweets.train.tracking.tracker import Tracker, track

__all__ = ["ARTIFACT_TYPES", "TRACKERS", "Tracker", "chosen_trackers", "safe_config", "track"]
