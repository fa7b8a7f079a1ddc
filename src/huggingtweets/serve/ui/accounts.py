"""Step 1 of the page: up to three accounts or an uploaded export become a run (a prepare
job); the run's statistics table (the card's) and a few kept posts per account."""

from __future__ import annotations

import errno
import logging
from pathlib import Path

import gradio as gr

from huggingtweets.core.errors import HuggingtweetsError
from huggingtweets.serve.manager import JobManager
from huggingtweets.serve.ui.views import (
    MAX_ACCOUNTS,
    UI_ONLY,
    UPLOAD_TYPES,
    error_text,
    examples_table,
    html_box,
    parse_accounts,
    progress_html,
    run_choices,
    statistics_table,
    status_html,
)

log = logging.getLogger(__name__)


class AccountsStep:
    def __init__(self, manager: JobManager) -> None:
        self.manager = manager

    def build(self) -> None:
        with gr.Tab("1 · Accounts", id="accounts", elem_id="step-accounts"):
            self.accounts = gr.Textbox(
                label="Accounts (up to three)",
                elem_id="accounts",
                lines=2,
                placeholder="x:NAME, bsky:NAME.bsky.social, mastodon:@USER@HOST — comma or "
                "newline separated",
            )
            with gr.Row():
                self.upload = gr.File(
                    label="…or upload an export (X or Mastodon .zip, CSV, JSONL, TXT)",
                    elem_id="upload",
                    file_types=UPLOAD_TYPES,
                    type="filepath",
                )
                self.upload_handle = gr.Textbox(
                    label="Account name for the upload",
                    elem_id="upload-handle",
                    info="When the export does not name the account (no account.js).",
                    max_lines=1,
                )
            self.button = gr.Button("Collect posts", elem_id="collect", variant="primary")
            self.status = html_box("collect-status")
            self.statistics = gr.Dataframe(
                label="Training data", elem_id="statistics", interactive=False, wrap=True
            )
            self.examples = gr.Dataframe(
                label="A few kept posts",
                elem_id="examples",
                interactive=False,
                wrap=True,
                column_widths=["25%", "75%"],
            )

    def wire(self, run: gr.Dropdown) -> None:
        self.button.click(
            self.collect,
            inputs=[self.accounts, self.upload, self.upload_handle],
            outputs=[run, self.status, self.upload],
            concurrency_limit=None,
            **UI_ONLY,
        )

    def collect(self, accounts: str, upload: str | None, upload_handle: str):
        """The button: a prepare job for the accounts or the uploaded file."""
        sources = parse_accounts(accounts)
        handles = parse_accounts(upload_handle)
        problem = None
        if upload and sources:
            problem = "Give accounts or a file, not both."
        elif not upload and not sources:
            problem = (
                "Enter up to three accounts (x:NAME, bsky:NAME, mastodon:@USER@HOST) or "
                "choose an export file."
            )
        elif len(sources) > MAX_ACCOUNTS:
            problem = f"At most {MAX_ACCOUNTS} accounts (got {len(sources)})."
        elif upload and not Path(upload).is_file():  # the page's cache let it go (an hour)
            problem = "The uploaded file is no longer on the server: choose it again."
        if problem:
            return gr.skip(), status_html(problem, "error"), gr.skip()
        try:
            if upload:
                job = self._create_from_upload(Path(upload), handles)
            else:
                job = self.manager.create_run(sources)
        except HuggingtweetsError as exc:
            # An upload is read once: its field is cleared with its copy on the server.
            return gr.skip(), status_html(error_text(exc), "error"), None if upload else gr.skip()
        choices = run_choices(self.manager.runs(), self.manager.jobs())
        return (
            gr.update(choices=choices, value=job["run_id"]),
            progress_html(job),
            None,  # the upload is the server's now: the field is free for the next one
        )

    def _create_from_upload(self, path: Path, handles: list[str]) -> dict:
        """The job for an uploaded file: the manager copies it into a folder of the job's
        own (removed when the job ends); the page framework's copy is removed now, whatever
        the answer, so that it is not left on disk nor downloadable from the page."""
        try:
            return self.manager.create_run_from_upload(path.name, path, handles)
        finally:
            remove_page_copy(path)

    def run_view(self, run_id: str | None) -> tuple[dict, dict, bool]:
        """(statistics, kept posts, whether it has a model) of a run."""
        if not run_id:
            return statistics_table([], []), examples_table({}), False
        try:
            run = self.manager.run(run_id)
        except HuggingtweetsError:  # still collecting, or its collection failed
            return statistics_table([], []), examples_table({}), False
        handles = [str(h) for h in run.get("handles") or []]
        statistics = statistics_table(run.get("statistics") or [], handles)
        return statistics, examples_table(run.get("examples")), bool(run.get("has_model"))


def remove_page_copy(path: Path) -> None:
    """Remove Gradio's copy of an uploaded file (``<its cache>/<hash>/<name>``, served at
    /gradio_api/file=... while it exists), and its folder once empty. Only a file inside
    Gradio's cache folder is touched: the path is the page's, checked by Gradio to be there."""
    from gradio.utils import get_upload_folder

    cache = Path(get_upload_folder()).resolve()
    path = Path(path).absolute()
    if path.is_symlink() or not path.parent.resolve().is_relative_to(cache):
        return
    path.unlink(missing_ok=True)
    if path.parent.resolve() == cache:
        return
    try:
        path.parent.rmdir()
    except OSError as exc:  # not empty: the same bytes uploaded under another name
        if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOENT):
            log.warning("the page's upload folder stays: %s", exc.strerror)
