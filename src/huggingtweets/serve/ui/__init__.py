"""The web app: the original huggingtweets' three steps as a Gradio page.

1. accounts (accounts.py) — up to three accounts (``x:``, ``bsky:``, ``mastodon:``) or an
   uploaded export; the collection's progress, then the statistics table of the card and
   a few kept posts per account;
2. train (train.py) — base model, epochs, LoRA (the CLI's defaults); progress, cancel, a
   queued job's position;
3. generate (generate.py) — ten posts for a prompt, each with its memorization flag and
   share links, the preview picture, and a push to the Hub when the server has a token.

page.py puts them together (:func:`build_ui`), tracking.py follows the selected run's
jobs, views.py turns data into escaped HTML and tables.
"""

from huggingtweets.serve.ui.page import build_ui
from huggingtweets.serve.ui.views import (
    error_text,
    examples_table,
    generations_html,
    hub_token_configured,
    job_line,
    latest_jobs,
    parse_accounts,
    progress_html,
    run_choices,
    statistics_table,
    status_html,
)

__all__ = [
    "build_ui",
    "error_text",
    "examples_table",
    "generations_html",
    "hub_token_configured",
    "job_line",
    "latest_jobs",
    "parse_accounts",
    "progress_html",
    "run_choices",
    "statistics_table",
    "status_html",
]
