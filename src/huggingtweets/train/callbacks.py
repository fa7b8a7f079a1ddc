"""Trainer callbacks: training progress as events, and cancellation at a safe point."""

from __future__ import annotations

from transformers import TrainerCallback

from huggingtweets.core.events import Reporter
from huggingtweets.train.report import perplexity

STAGE = "train"


class ProgressEvents(TrainerCallback):
    """Steps, losses and each epoch's evaluation sent to the reporter (stage "train"); the
    stage's end, with the metrics, is sent once the model is saved."""

    def __init__(self, reporter: Reporter) -> None:
        self.reporter = reporter
        self.tokens_at_start = 0
        self.main = False
        self.training = False
        self.loss: float | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        self.tokens_at_start = state.num_input_tokens_seen or 0
        self.main = state.is_world_process_zero
        self.training = True
        if self.main:
            self.reporter.start(STAGE, "training", total=state.max_steps, step=state.global_step)
            self.reporter.progress(STAGE, state.global_step, state.max_steps, epoch=0.0)

    def on_step_end(self, args, state, control, **kwargs):
        if self.main:
            self.reporter.progress(
                STAGE, state.global_step, state.max_steps, loss=self.loss, epoch=state.epoch
            )

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self.loss = float(logs["loss"])

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        # Each epoch's evaluation (not those before and after, which the recipe reports).
        if self.main and self.training and metrics and "eval_loss" in metrics:
            loss = float(metrics["eval_loss"])
            self.reporter.info(
                STAGE,
                f"epoch {state.epoch:.2f}: eval loss {loss:.4f}, perplexity {perplexity(loss):.2f}",
                epoch=state.epoch,
                eval_loss=loss,
                step=state.global_step,
            )

    def on_train_end(self, args, state, control, **kwargs):
        self.training = False


class StopOnCancel(TrainerCallback):
    """A cancel request (Ctrl-C, a web app's stop button) ends training after the current
    step, with a checkpoint to resume from."""

    def __init__(self, reporter: Reporter) -> None:
        self.reporter = reporter

    @property
    def requested(self) -> bool:
        return self.reporter.cancelled

    def on_step_end(self, args, state, control, **kwargs):
        if self.requested:
            control.should_save = True
            control.should_training_stop = True

    def on_epoch_end(self, args, state, control, **kwargs):
        # Stopping mid-epoch ends the epoch loop, and Trainer would then evaluate (and
        # save again) as at an epoch's end: minutes for a large model, for a user who
        # asked to stop. The checkpoint is saved; the best one is known from the
        # whole epochs. An interruption on an epoch's last step keeps its evaluation.
        if self.requested and state.epoch != round(state.epoch):
            control.should_evaluate = False
            control.should_save = False
