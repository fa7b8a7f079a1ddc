"""The page: the three steps as tabs over one run selector (serve.api mounts it at "/")."""

from __future__ import annotations

import gradio as gr

from huggingtweets.serve.config import ServeConfig
from huggingtweets.serve.manager import JobManager
from huggingtweets.serve.models import ModelService
from huggingtweets.serve.ui.accounts import AccountsStep
from huggingtweets.serve.ui.generate import GenerateStep
from huggingtweets.serve.ui.tracking import RunTracker
from huggingtweets.serve.ui.train import TrainStep
from huggingtweets.serve.ui.views import hub_token_configured

PAGE_FILES_KEPT = (600, 3600)  # Gradio's delete_cache: every 10 minutes, those over an hour


def build_ui(manager: JobManager, models: ModelService, config: ServeConfig) -> gr.Blocks:
    """The three steps as tabs over ``manager`` (runs, jobs) and ``models`` (generation)."""
    accounts = AccountsStep(manager)
    train = TrainStep(manager)
    generate = GenerateStep(manager, models, can_push=hub_token_configured())
    # Files the page framework keeps (uploads chosen but never collected, pictures shown)
    # are removed once an hour old, and all of them when the server stops.
    with gr.Blocks(
        title="huggingtweets", analytics_enabled=False, delete_cache=PAGE_FILES_KEPT
    ) as blocks:
        gr.Markdown(
            "# huggingtweets\nTurn one to three social accounts into a small language model "
            "that writes like them: **1** collect their posts, **2** train, **3** generate."
        )
        seen = gr.State({})
        run = gr.Dropdown(
            label="Run", elem_id="run", choices=[], value=None, info="The runs this server knows."
        )
        with gr.Tabs(selected="accounts", elem_id="steps") as tabs:
            accounts.build()
            train.build()
            generate.build()
        RunTracker(manager, config, (accounts, train, generate)).wire(blocks, run, seen, tabs)
        accounts.wire(run)
        train.wire(run, seen)
        generate.wire()
    return blocks
