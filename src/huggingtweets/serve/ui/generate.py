"""Step 3 of the page: ten posts for a prompt, each with its memorization flag and share
links, the model's preview picture, and a push to the Hub when the server has a Hugging
Face token."""

from __future__ import annotations

import html
from pathlib import Path

import gradio as gr

from huggingtweets.core.errors import HuggingtweetsError
from huggingtweets.generate.generator import DEFAULT_PROMPT
from huggingtweets.serve.manager import JobManager
from huggingtweets.serve.models import ModelService
from huggingtweets.serve.requests import MAX_REQUEST_PROMPT, GenerateRequest, prompt_problem
from huggingtweets.serve.ui.views import (
    FIELD_LABELS,
    GENERATIONS_CSS,
    SAMPLES,
    UI_ONLY,
    error_text,
    generations_html,
    html_box,
    status_html,
)


class GenerateStep:
    def __init__(self, manager: JobManager, models: ModelService, can_push: bool) -> None:
        self.manager = manager
        self.models = models
        self.can_push = can_push

    def build(self) -> None:
        with gr.Tab("3 · Generate", id="generate", elem_id="step-generate"):
            with gr.Row():  # side by side on a desktop, one above the other on a phone
                self.model = gr.Dropdown(
                    label="Model", elem_id="model", choices=[], value=None, min_width=240
                )
                self.prompt = gr.Textbox(
                    label="Prompt",
                    elem_id="prompt",
                    value=DEFAULT_PROMPT,
                    max_lines=3,
                    max_length=MAX_REQUEST_PROMPT,
                    min_width=240,
                )
            self.button = gr.Button("Generate", elem_id="generate", variant="primary")
            self.status = html_box("generate-status")
            with gr.Row():
                with gr.Column(scale=3, min_width=300):
                    self.generations = html_box("generations", GENERATIONS_CSS)
                with gr.Column(scale=2, min_width=260):
                    self.preview_image = gr.Image(
                        label="Preview", elem_id="preview", interactive=False, type="pil"
                    )
            self.push_button = gr.Button(
                "Push to the Hugging Face Hub", elem_id="push", visible=self.can_push
            )
            self.push_status = html_box("push-status")

    def wire(self) -> None:
        # No limit: concurrent requests reach the model service, which batches them.
        for trigger in (self.button.click, self.prompt.submit):
            trigger(
                self.generate,
                inputs=[self.model, self.prompt],
                outputs=[self.generations, self.status],
                concurrency_limit=None,
                **UI_ONLY,
            )
        self.model.change(self.preview, inputs=self.model, outputs=self.preview_image, **UI_ONLY)
        if self.can_push:  # no push endpoint at all on a server without a token
            self.push_button.click(
                self.push, inputs=self.model, outputs=self.push_status, **UI_ONLY
            )

    async def generate(self, model: str | None, prompt: str):
        if not model:
            return gr.skip(), status_html("No model yet: train one in step 2.", "error")
        problem = prompt_problem(prompt) if prompt else None
        if problem is not None:
            return gr.skip(), status_html(f"{FIELD_LABELS['prompt']}: {problem}", "error")
        try:
            result = await self.models.generate(
                GenerateRequest(model=model, prompt=prompt or DEFAULT_PROMPT, n=SAMPLES)
            )
        except HuggingtweetsError as exc:
            return gr.skip(), status_html(error_text(exc), "error")
        flagged = result.get("flagged")
        count = len(result.get("samples") or [])
        summary = f"{count} posts from {model} (seed {result.get('seed')})"
        if flagged is not None:
            summary += f", {flagged} flagged as copies"
        return generations_html(result), status_html(summary, "done")

    def preview(self, model: str | None):
        if not model:
            return None
        try:
            path = self.models.preview_path(model)
        except HuggingtweetsError:
            return None
        if path is None:
            return None
        from PIL import Image

        # Opened here and handed over as pixels: the run may lie outside Gradio's allowed paths.
        with Image.open(path) as picture:
            return picture.copy()

    def push(self, model: str | None) -> str:
        from huggingtweets.publish.hub import push_run

        if not model:
            return status_html("Choose a trained model first.", "error")
        try:
            location = Path(self.manager.model_path(model))
            if not location.is_dir():
                return status_html(f"{model} is a Hub model already.", "error")
            run_dir = location.parent if location.name == "model" else location
            if not (run_dir / "model").is_dir():
                return status_html(
                    f"{model} is a model folder, not a run: only a run's model is pushed.",
                    "error",
                )
            result = push_run(run_dir)
        except HuggingtweetsError as exc:
            return status_html(error_text(exc), "error")
        return (
            f'<div role="status" aria-live="polite"><p class="ht-done">Pushed: '
            f'<a href="{html.escape(result.url, quote=True)}" rel="noopener noreferrer" '
            f'target="_blank">{html.escape(result.repo_id)}</a></p></div>'
        )
