"""Step 2 of the page: train the run (base model, epochs, LoRA: the CLI's defaults); its
progress, a queued job's position, and cancel."""

from __future__ import annotations

from typing import Any

import gradio as gr

from huggingtweets.core.errors import HuggingtweetsError
from huggingtweets.serve.manager import JobManager
from huggingtweets.serve.ui.views import (
    TERMINAL,
    UI_ONLY,
    error_text,
    html_box,
    latest_jobs,
    progress_html,
    status_html,
)
from huggingtweets.train.recipe import TrainOptions


class TrainStep:
    def __init__(self, manager: JobManager) -> None:
        self.manager = manager
        self.defaults = TrainOptions()

    def build(self) -> None:
        with gr.Tab("2 · Train", id="train", elem_id="step-train"):
            with gr.Row():
                self.base_model = gr.Textbox(
                    label="Base model",
                    elem_id="base-model",
                    value=self.defaults.base_model,
                    info="A Hugging Face causal LM id (gpt2, OWNER/NAME), a model this "
                    "server serves, or tiny (built from the posts).",
                    max_lines=1,
                    min_width=260,
                )
                self.epochs = gr.Number(
                    label="Epochs",
                    elem_id="epochs",
                    value=self.defaults.num_train_epochs,
                    minimum=0,
                    step=1,
                )
            self.lora = gr.Checkbox(label="LoRA adapters (faster on big models)", elem_id="lora")
            with gr.Row():
                self.button = gr.Button("Train", elem_id="train", variant="primary")
                self.cancel_button = gr.Button("Cancel", elem_id="cancel", variant="stop")
            self.progress = html_box("train-progress")

    def wire(self, run: gr.Dropdown, seen: gr.State) -> None:
        self.button.click(
            self.train,
            inputs=[run, self.base_model, self.epochs, self.lora, seen],
            outputs=[self.progress, seen],
            concurrency_limit=None,
            **UI_ONLY,
        )
        self.cancel_button.click(
            self.cancel, inputs=run, outputs=self.progress, concurrency_limit=None, **UI_ONLY
        )

    def train(
        self, run_id: str | None, base_model: str, epochs: float | None, lora: bool, seen: dict
    ):
        if not run_id:
            return status_html("Choose or create a run in step 1 first.", "error"), seen
        defaults = self.defaults
        options: dict[str, Any] = {"base_model": (base_model or "").strip() or defaults.base_model}
        options["epochs"] = defaults.num_train_epochs if epochs is None else float(epochs)
        options["lora"] = bool(lora)
        try:
            job = self.manager.start_training(run_id, options)
        except HuggingtweetsError as exc:
            return status_html(error_text(exc), "error"), seen
        seen = {**seen, "states": {**seen.get("states", {}), job["id"]: job["state"]}}
        seen["train"] = progress_html(job)
        return seen["train"], seen

    def cancel(self, run_id: str | None):
        job = latest_jobs(self.manager.jobs(), run_id).get("train")
        if job is None or job.get("state") in TERMINAL:
            return status_html("No training of this run is going on.", "error")
        try:
            return progress_html(self.manager.cancel(job["id"]))
        except HuggingtweetsError as exc:
            return status_html(error_text(exc), "error")
