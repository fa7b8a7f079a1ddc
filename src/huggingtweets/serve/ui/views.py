"""The page's helpers: text in, escaped HTML or table rows out, and its HTML boxes.

User text (posts, handles, prompts, error messages) is always shown as text: in a table or
a text box, or through :func:`html.escape` where the page builds HTML.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from typing import Any

import gradio as gr

from huggingtweets.core.errors import HuggingtweetsError
from huggingtweets.core.options import OptionError
from huggingtweets.serve.jobs import ENDED
from huggingtweets.serve.requests import UPLOAD_HINT

MAX_ACCOUNTS = 3
SAMPLES = 10  # the original's page showed ten predictions
EXAMPLES_PER_ACCOUNT = 3
POLL_SECONDS = 1.0
UPLOAD_TYPES = [".zip", ".csv", ".jsonl", ".ndjson", ".txt"]
TERMINAL = ENDED
# The page's events are for the page: the API is /api/v1 (OpenAPI), not Gradio's client.
UI_ONLY: dict[str, Any] = {"api_visibility": "private"}
# What a job is doing, by the stage of its latest event (events.Reporter).
STAGE_WORDS = {
    "collect": "Collecting posts",
    "prepare": "Preparing posts",
    "train": "Training",
    "evaluate": "Evaluating the model",
    "card": "Writing the model card",
}

# Scoped to each gr.HTML element (css_template nests it under the element's id).
STATUS_CSS = """
p { margin: 0.25rem 0; }
.ht-error { color: var(--error-text-color, #b91c1c); font-weight: 600; }
.ht-done { color: var(--color-green-600, #15803d); font-weight: 600; }
progress { width: 100%; height: 1rem; accent-color: var(--color-accent, #f97316); }
"""
GENERATIONS_CSS = """
ol { list-style: none; padding: 0; margin: 0; display: grid; gap: 0.6rem; }
li { border: 1px solid var(--border-color-primary, #e5e7eb); border-radius: 0.5rem;
     padding: 0.6rem 0.8rem; }
.ht-text { margin: 0 0 0.35rem; white-space: pre-wrap; overflow-wrap: anywhere;
           font-size: 1.05rem; }
.ht-meta { display: flex; flex-wrap: wrap; gap: 0.3rem 0.9rem; align-items: center;
           font-size: 0.9rem; }
.ht-flag[data-flagged="true"] { color: var(--error-text-color, #b91c1c); font-weight: 600; }
.ht-flag[data-flagged="false"] { color: var(--color-green-600, #15803d); }
.ht-share a { display: inline-block; padding: 0.35rem 0.6rem; min-height: 2rem;
              border-radius: 0.4rem; border: 1px solid var(--border-color-primary, #d1d5db);
              text-decoration: none; margin-right: 0.3rem; }
.ht-share a:focus-visible { outline: 3px solid var(--color-accent, #f97316); }
"""


# -- pure helpers: text in, escaped HTML or table rows out ----------------------------------


def parse_accounts(text: str | None) -> list[str]:
    """The sources typed in step 1: comma or newline separated, blanks dropped."""
    return [part.strip() for part in re.split(r"[,\n]", text or "") if part.strip()]


def status_html(message: str, kind: str = "info", state: str | None = None) -> str:
    """A one-line status (role=status so screen readers hear it), the message as text."""
    css = {"error": "ht-error", "done": "ht-done"}.get(kind, "ht-info")
    data = f' data-state="{html.escape(state)}"' if state else ""
    return (
        f'<div role="status" aria-live="polite"{data}>'
        f'<p class="{css}">{html.escape(message)}</p></div>'
    )


# The form's words for the option names that errors carry (the CLI shows flags instead).
FIELD_LABELS = {
    "sources": "Accounts",
    "handles": "Account name",
    "file": "The file",
    "base_model": "Base model",
    "epochs": "Epochs",
    "num_train_epochs": "Epochs",
    "lora": "LoRA",
    "run_id": "The run",
    "model": "Model",
    "prompt": "The prompt",
}


def error_text(exc: HuggingtweetsError) -> str:
    """An error as the page says it: an option's by the label of its field, and in the
    page's words (the API's route names mean nothing to someone filling in a form)."""
    if isinstance(exc, OptionError):
        text = f"{FIELD_LABELS.get(exc.name, exc.name)}: {exc.problem}"
    else:
        text = str(exc)
    return text.replace(UPLOAD_HINT, "for a file or an export, upload the file below")


def _number(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.4g}"
    return str(value)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def job_line(job: dict) -> str:
    """What a job is doing, in one line of plain text."""
    state = job.get("state")
    verb = "Training" if job.get("kind") == "train" else "Collecting posts"
    progress = job.get("progress") or {}
    if state == "queued":
        position = job.get("position")
        where = f"position {position} in the queue" if position else "in the queue"
        if job.get("kind") == "train":
            return f"Queued: {where} (one training runs at a time)"
        return f"Queued: {where}"
    if state == "failed":
        return f"Failed: {job.get('error') or 'the job stopped'}"
    if state == "cancelled":
        return "Cancelled" + (f" at step {progress['step']}" if progress.get("step") else "")
    if state == "succeeded":
        if job.get("kind") == "train":
            return "Done: the model is trained — step 3 writes with it"
        return "Done: the posts are ready — see the statistics below, then train in step 2"
    parts = [STAGE_WORDS.get(str(progress.get("stage")), verb)]
    if isinstance(progress.get("epoch"), int | float):
        parts.append(f"epoch {progress['epoch']:.2f}")
    if progress.get("step") is not None:
        total = progress.get("total")
        of = f" / {_number(total)}" if total else ""
        parts.append(f"step {_number(progress['step'])}{of}")
    if isinstance(progress.get("loss"), int | float):
        parts.append(f"loss {progress['loss']:.3f}")
    if isinstance(progress.get("eta"), int | float):
        parts.append(f"about {_duration(progress['eta'])} left")
    if progress.get("message") and len(parts) == 1:
        parts.append(str(progress["message"]))
    return " · ".join(parts)


def progress_html(job: dict | None, idle: str = "") -> str:
    """The job's progress bar (a real <progress>, labelled) and its line, as text."""
    if job is None:
        return status_html(idle) if idle else ""
    state = str(job.get("state") or "")
    kind = {"failed": "error", "succeeded": "done"}.get(state, "info")
    progress = job.get("progress") or {}
    step, total = progress.get("step"), progress.get("total")
    bar = ""
    if state == "running" and isinstance(step, int | float) and isinstance(total, int | float):
        if total > 0:
            bar = (
                f'<progress max="{float(total):g}" value="{min(float(step), float(total)):g}" '
                f'aria-label="progress">{100 * step / total:.0f} %</progress>'
            )
    elif state == "running":
        bar = '<progress aria-label="progress"></progress>'  # indeterminate: no total yet
    elif state == "succeeded":
        bar = '<progress max="1" value="1" aria-label="progress">100 %</progress>'
    css = {"error": "ht-error", "done": "ht-done"}.get(kind, "ht-info")
    return (
        f'<div role="status" aria-live="polite" data-state="{html.escape(state)}" '
        f'data-job="{html.escape(str(job.get("id", "")))}">{bar}'
        f'<p class="{css}">{html.escape(job_line(job))}</p></div>'
    )


def statistics_table(rows: Iterable[dict], handles: list[str]) -> dict:
    """The card's rows ({"label", "values"|"value"}) as a Dataframe value: one column per
    account, as the card's "Training data" table."""
    rows = list(rows)
    columns: list[str] = list(handles)
    body: list[list[str]] = []
    for row in rows:
        values = row.get("values", row.get("value"))
        if isinstance(values, dict):
            for key in values:
                if key not in columns:
                    columns.append(str(key))
            cells = [_number(values.get(c)) for c in columns]
        elif isinstance(values, list | tuple):
            if len(columns) < len(values):
                columns += [f"account {i + 1}" for i in range(len(columns), len(values))]
            cells = [_number(v) for v in values]
        else:
            cells = [_number(values)]
            if not columns:
                columns = ["Posts"]
        body.append([str(row.get("label", "")), *cells])
    return {"headers": ["Data", *columns], "data": body}


def examples_table(
    examples: dict[str, list] | None, per_account: int = EXAMPLES_PER_ACCOUNT
) -> dict:
    data = []
    for handle, posts in (examples or {}).items():
        for post in list(posts)[:per_account]:
            text = post.get("text", "") if isinstance(post, dict) else str(post)
            data.append([str(handle), text])
    return {"headers": ["Account", "Post"], "data": data}


def _share_link(url: object, css: str, name: str, number: int) -> str:
    # Our share links are https compose pages; anything else is not made a link.
    if not isinstance(url, str) or not url.startswith("https://"):
        return ""
    return (
        f'<a class="{css}" href="{html.escape(url, quote=True)}" rel="noopener noreferrer" '
        f'target="_blank" aria-label="Share post {number} on {name}">{name}</a>'
    )


def generations_html(result: dict) -> str:
    """The samples of ``ModelService.generate`` as a list: each post as text, its
    memorization flag, and its share links (none for a flagged copy)."""
    items = []
    checked = bool(result.get("checked"))
    for number, sample in enumerate(result.get("samples") or [], start=1):
        flagged = bool(sample.get("flagged"))
        if flagged:
            why = (sample.get("copy") or {}).get("why") or "it repeats a training post"
            flag = f"⚠ copies a training post: {why}"
        elif checked:
            flag = "✓ new: not a copy of a training post"
        else:
            flag = "not checked: the model has no memorization guard"
        links = sample.get("share") or {}
        share = "".join(
            _share_link(links.get(key), f"share-{key}", name, number)
            for key, name in (("x", "X"), ("bluesky", "Bluesky"), ("mastodon", "Mastodon"))
        )
        if not share:
            share = "no share links for a copy" if flagged else ""
        items.append(
            f'<li class="ht-sample" data-flagged="{str(flagged).lower()}">'
            f'<p class="ht-text">{html.escape(str(sample.get("text", "")))}</p>'
            f'<div class="ht-meta"><span class="ht-flag" data-flagged="{str(flagged).lower()}">'
            f"{html.escape(flag)}</span>"
            f'<span class="ht-share">{share}</span></div></li>'
        )
    return f'<ol class="ht-samples" aria-label="generated posts">{"".join(items)}</ol>'


def latest_jobs(jobs: Iterable[dict], run_id: str | None) -> dict[str, dict]:
    """The run's latest job of each kind ("prepare", "train")."""
    latest: dict[str, dict] = {}
    for job in jobs:
        if run_id is None or job.get("run_id") != run_id:
            continue
        kind = str(job.get("kind"))
        # Strictly newer: jobs() lists the newest first, so a tie keeps the newer one.
        if kind not in latest or str(job.get("created", "")) > str(latest[kind].get("created", "")):
            latest[kind] = job
    return latest


def run_choices(runs: Iterable[dict], jobs: Iterable[dict] = ()) -> list[tuple[str, str]]:
    """(label, run id) for the run dropdown, newest first; a run whose first collection
    has not written its folder yet is listed by its job (a choice must exist to be chosen)."""
    choices = []
    for run in sorted(runs, key=lambda r: str(r.get("created") or ""), reverse=True):
        handles = ", ".join(str(h) for h in run.get("handles") or [])
        label = str(run["id"]) + (f" — {handles}" if handles else "")
        if run.get("posts") is not None:
            label += f" ({_number(run['posts'])} posts)"
        if run.get("has_model"):
            label += " · trained"
        choices.append((label, str(run["id"])))
    known = {value for _, value in choices}
    for job in jobs:
        run_id = str(job.get("run_id"))
        if job.get("kind") == "prepare" and run_id not in known:
            state = job.get("state")
            doing = "collecting" if state not in TERMINAL else f"collection {state}"
            choices.insert(0, (f"{run_id} ({doing})", run_id))
            known.add(run_id)
    return choices


def hub_token_configured() -> bool:
    """Whether this server could push (a token from HF_TOKEN or the login); the token
    itself never leaves this function."""
    from huggingface_hub import constants
    from huggingface_hub.utils import get_token

    if constants.HF_HUB_OFFLINE:
        return False
    try:
        return bool(get_token())
    except Exception:  # a damaged token file or a failed OIDC exchange: no push button
        return False


def html_box(elem_id: str, css: str = STATUS_CSS, value: str = "") -> gr.HTML:
    return gr.HTML(value, elem_id=elem_id, css_template=css, js_on_load=None)
