"""The web app: the original huggingtweets' three steps as a Gradio page.

1. accounts — up to three accounts (``x:``, ``bsky:``, ``mastodon:`` or a file, as the CLI
   spells them) or an uploaded export; the collection's progress, then the statistics
   table of the card and a few kept posts per account;
2. train — base model, epochs, LoRA (the CLI's defaults); progress, cancel, a queued
   job's position;
3. generate — ten posts for a prompt, each with its memorization flag and share links,
   the preview picture, and a push to the Hub when the server has a Hugging Face token.

``serve_api.create_app`` mounts :func:`build_ui` at "/". The page keeps no job of its
own: jobs live in the :class:`~huggingtweets.serve.jobs.JobManager`, keyed by run id, and
a timer shows the latest jobs of the selected run, so a reload or a second tab shows the
same training. User text (posts, handles, prompts, error messages) is always shown as
text: in a table or a text box, or through :func:`html.escape` where the page builds HTML.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gradio as gr

from huggingtweets.core.errors import HuggingtweetsError
from huggingtweets.core.options import OptionError
from huggingtweets.serve.requests import UPLOAD_HINT, prompt_problem
from huggingtweets.train.recipe import TrainOptions

if TYPE_CHECKING:
    from huggingtweets.serve.config import ServeConfig
    from huggingtweets.serve.manager import JobManager
    from huggingtweets.serve.models import ModelService

MAX_ACCOUNTS = 3
SAMPLES = 10  # the original's page showed ten predictions
EXAMPLES_PER_ACCOUNT = 3
POLL_SECONDS = 1.0
DEFAULT_PROMPT = "My dream is"
UPLOAD_TYPES = [".zip", ".csv", ".jsonl", ".ndjson", ".txt"]
TERMINAL = ("succeeded", "failed", "cancelled")
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


# -- the page -----------------------------------------------------------------------------


def build_ui(manager: JobManager, models: ModelService, config: ServeConfig) -> gr.Blocks:
    """The three steps as tabs over ``manager`` (runs, jobs) and ``models`` (generation)."""
    defaults = TrainOptions()
    can_push = hub_token_configured()

    def start_model() -> str | None:
        """The model given at start (``serve RUN_DIR|MODEL``), by the name the manager uses."""
        names = manager.model_names()
        for given in config.models:
            path = Path(str(given)).expanduser().resolve()
            # Named as the manager names it: a Hub id as is, a folder by its name (a
            # run's model/ folder by its run's).
            for name in (str(given), path.parent.name if path.name == "model" else path.name):
                if name in names:
                    return name
        return names[0] if config.models and names else None

    def run_view(run_id: str | None) -> tuple[dict, dict, bool]:
        """(statistics, kept posts, whether it has a model) of a run."""
        if not run_id:
            return statistics_table([], []), examples_table({}), False
        try:
            run = manager.run(run_id)
        except HuggingtweetsError:  # still collecting, or its collection failed
            return statistics_table([], []), examples_table({}), False
        handles = [str(h) for h in run.get("handles") or []]
        statistics = statistics_table(run.get("statistics") or [], handles)
        return statistics, examples_table(run.get("examples")), bool(run.get("has_model"))

    def job_states(run_id: str | None) -> tuple[dict[str, dict], dict[str, str]]:
        jobs = latest_jobs(manager.jobs(), run_id)
        return jobs, {job["id"]: job["state"] for job in jobs.values()}

    def show_run(run_id: str | None):
        """Everything step 1 and 2 show for a run, fresh (a run chosen, a page loaded)."""
        jobs, states = job_states(run_id)
        stats, examples, trained = run_view(run_id)
        collect_idle = "" if run_id else "No run yet: enter accounts or upload an export."
        train_idle = "Choose or create a run in step 1."
        if run_id:
            train_idle = (
                "Trained: step 3 writes with it (training again replaces the model)."
                if trained
                else "Not trained yet."
            )
        seen = {
            "run": run_id,
            "states": states,
            "collect": progress_html(jobs.get("prepare"), collect_idle),
            "train": progress_html(jobs.get("train"), train_idle),
        }
        return (
            seen["collect"],
            stats,
            examples,
            seen["train"],
            gr.update(choices=manager.model_names()),
            seen,
        )

    def on_load():
        runs = manager.runs()
        jobs = manager.jobs()
        active = [j for j in jobs if j.get("state") not in TERMINAL]
        chosen = start_model()
        if active:  # a reload shows the job that is going on
            job = max(active, key=lambda j: str(j.get("created", "")))
            run_id, tab = job["run_id"], ("train" if job.get("kind") == "train" else "accounts")
        else:
            newest = [value for _, value in run_choices(runs, jobs)]
            run_id = chosen if chosen in newest else (newest[0] if newest else None)
            tab = "generate" if chosen else "accounts"
        names = manager.model_names()
        model = chosen or (run_id if run_id in names else (names[0] if names else None))
        return (
            gr.update(choices=run_choices(runs, jobs), value=run_id),
            gr.update(choices=names, value=model),
            gr.Tabs(selected=tab),
        )

    def collect(accounts: str, upload: str | None, upload_handle: str):
        """Step 1's button: a prepare job for the accounts or the uploaded file."""
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
        if problem:
            return gr.skip(), status_html(problem, "error"), gr.skip()
        try:
            if upload:
                path = Path(upload)
                job = manager.create_run_from_upload(path.name, path, handles)
            else:
                job = manager.create_run(sources)
        except HuggingtweetsError as exc:
            return gr.skip(), status_html(error_text(exc), "error"), gr.skip()
        return (
            gr.update(choices=run_choices(manager.runs(), manager.jobs()), value=job["run_id"]),
            progress_html(job),
            None,  # the upload is the server's now: the field is free for the next one
        )

    def train(run_id: str | None, base_model: str, epochs: float | None, lora: bool, seen: dict):
        if not run_id:
            return status_html("Choose or create a run in step 1 first.", "error"), seen
        options: dict[str, Any] = {"base_model": (base_model or "").strip() or defaults.base_model}
        options["epochs"] = defaults.num_train_epochs if epochs is None else float(epochs)
        options["lora"] = bool(lora)
        try:
            job = manager.start_training(run_id, options)
        except HuggingtweetsError as exc:
            return status_html(error_text(exc), "error"), seen
        seen = {**seen, "states": {**seen.get("states", {}), job["id"]: job["state"]}}
        seen["train"] = progress_html(job)
        return seen["train"], seen

    def cancel(run_id: str | None):
        jobs = latest_jobs(manager.jobs(), run_id)
        job = jobs.get("train")
        if job is None or job.get("state") in TERMINAL:
            return status_html("No training of this run is going on.", "error")
        try:
            return progress_html(manager.cancel(job["id"]))
        except HuggingtweetsError as exc:
            return status_html(error_text(exc), "error")

    def poll(run_id: str | None, seen: dict):
        """A timer tick: what changed in the run's jobs since this page last looked."""
        if not run_id or seen.get("run") != run_id:
            return (gr.skip(),) * 8
        jobs, states = job_states(run_id)
        before = seen.get("states", {})
        # Jobs this page saw going that have ended since: (kind, how).
        ended = {
            (job["kind"], job["state"])
            for job in jobs.values()
            if job["state"] in TERMINAL and before.get(job["id"]) not in (None, *TERMINAL)
        }
        collect_now = progress_html(jobs["prepare"]) if "prepare" in jobs else seen.get("collect")
        train_now = progress_html(jobs["train"]) if "train" in jobs else seen.get("train")
        out: list[Any] = [
            collect_now if collect_now != seen.get("collect") else gr.skip(),
            gr.skip(),
            gr.skip(),
            train_now if train_now != seen.get("train") else gr.skip(),
            gr.skip(),
            gr.skip(),
            gr.skip(),
        ]
        # The runs' labels say what they hold now (and a run made in another tab appears),
        # read again only when some job has changed state: listing runs reads every one.
        all_jobs = manager.jobs()
        signature = [[job["id"], job["state"]] for job in all_jobs]
        choices = seen.get("choices")
        if signature != seen.get("signature"):
            choices = [list(choice) for choice in run_choices(manager.runs(), all_jobs)]
            if choices != seen.get("choices"):
                out[5] = gr.update(choices=choices)
        if ("prepare", "succeeded") in ended:
            out[1], out[2], _ = run_view(run_id)
        if ("train", "succeeded") in ended:  # on to step 3 with the new model
            out[4] = gr.update(choices=manager.model_names(), value=run_id)
            out[6] = gr.Tabs(selected="generate")
        seen = {**seen, "states": states, "collect": collect_now, "train": train_now}
        seen["choices"], seen["signature"] = choices, signature
        return (*out, seen)

    async def generate(model: str | None, prompt: str):
        from huggingtweets.serve.requests import GenerateRequest

        if not model:
            return gr.skip(), status_html("No model yet: train one in step 2.", "error")
        problem = prompt_problem(prompt) if prompt else None
        if problem is not None:
            return gr.skip(), status_html(f"{FIELD_LABELS['prompt']}: {problem}", "error")
        try:
            result = await models.generate(
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

    def preview(model: str | None):
        if not model:
            return None
        try:
            path = models.preview_path(model)
        except HuggingtweetsError:
            return None
        if path is None:
            return None
        from PIL import Image

        # Opened here and handed over as pixels: the run may lie outside Gradio's allowed paths.
        with Image.open(path) as picture:
            return picture.copy()

    def push(model: str | None):
        from huggingtweets.publish.hub import push_run

        if not model:
            return status_html("Choose a trained model first.", "error")
        try:
            location = Path(manager.model_path(model))
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

    def html_box(elem_id: str, css: str = STATUS_CSS, value: str = "") -> gr.HTML:
        return gr.HTML(value, elem_id=elem_id, css_template=css, js_on_load=None)

    with gr.Blocks(title="huggingtweets", analytics_enabled=False) as blocks:
        gr.Markdown(
            "# huggingtweets\nTurn one to three social accounts into a small language model "
            "that writes like them: **1** collect their posts, **2** train, **3** generate."
        )
        seen = gr.State({})
        run = gr.Dropdown(
            label="Run", elem_id="run", choices=[], value=None, info="The runs this server knows."
        )
        with gr.Tabs(selected="accounts", elem_id="steps") as tabs:
            with gr.Tab("1 · Accounts", id="accounts", elem_id="step-accounts"):
                accounts = gr.Textbox(
                    label="Accounts (up to three)",
                    elem_id="accounts",
                    lines=2,
                    placeholder="x:NAME, bsky:NAME.bsky.social, mastodon:@USER@HOST — comma or "
                    "newline separated",
                )
                with gr.Row():
                    upload = gr.File(
                        label="…or upload an export (X or Mastodon .zip, CSV, JSONL, TXT)",
                        elem_id="upload",
                        file_types=UPLOAD_TYPES,
                        type="filepath",
                    )
                    upload_handle = gr.Textbox(
                        label="Account name for the upload",
                        elem_id="upload-handle",
                        info="When the export does not name the account (no account.js).",
                        max_lines=1,
                    )
                collect_button = gr.Button("Collect posts", elem_id="collect", variant="primary")
                collect_status = html_box("collect-status")
                statistics = gr.Dataframe(
                    label="Training data", elem_id="statistics", interactive=False, wrap=True
                )
                examples = gr.Dataframe(
                    label="A few kept posts",
                    elem_id="examples",
                    interactive=False,
                    wrap=True,
                    column_widths=["25%", "75%"],
                )
            with gr.Tab("2 · Train", id="train", elem_id="step-train"):
                with gr.Row():
                    base_model = gr.Textbox(
                        label="Base model",
                        elem_id="base-model",
                        value=defaults.base_model,
                        info="A Hugging Face causal LM id (gpt2, OWNER/NAME), a model this "
                        "server serves, or tiny (built from the posts).",
                        max_lines=1,
                        min_width=260,
                    )
                    epochs = gr.Number(
                        label="Epochs",
                        elem_id="epochs",
                        value=defaults.num_train_epochs,
                        minimum=0,
                        step=1,
                    )
                lora = gr.Checkbox(label="LoRA adapters (faster on big models)", elem_id="lora")
                with gr.Row():
                    train_button = gr.Button("Train", elem_id="train", variant="primary")
                    cancel_button = gr.Button("Cancel", elem_id="cancel", variant="stop")
                train_progress = html_box("train-progress")
            with gr.Tab("3 · Generate", id="generate", elem_id="step-generate"):
                with gr.Row():  # side by side on a desktop, one above the other on a phone
                    model = gr.Dropdown(
                        label="Model", elem_id="model", choices=[], value=None, min_width=240
                    )
                    prompt = gr.Textbox(
                        label="Prompt",
                        elem_id="prompt",
                        value=DEFAULT_PROMPT,
                        max_lines=3,
                        max_length=1000,
                        min_width=240,
                    )
                generate_button = gr.Button("Generate", elem_id="generate", variant="primary")
                generate_status = html_box("generate-status")
                with gr.Row():
                    with gr.Column(scale=3, min_width=300):
                        generations = html_box("generations", GENERATIONS_CSS)
                    with gr.Column(scale=2, min_width=260):
                        preview_image = gr.Image(
                            label="Preview", elem_id="preview", interactive=False, type="pil"
                        )
                push_button = gr.Button(
                    "Push to the Hugging Face Hub", elem_id="push", visible=can_push
                )
                push_status = html_box("push-status")
        timer = gr.Timer(POLL_SECONDS)

        run_outputs = [collect_status, statistics, examples, train_progress, model, seen]
        blocks.load(on_load, outputs=[run, model, tabs], **UI_ONLY).then(
            show_run, inputs=run, outputs=run_outputs, **UI_ONLY
        )
        run.change(show_run, inputs=run, outputs=run_outputs, **UI_ONLY)
        # A run the user picks is also step 3's model, when it has one.
        run.input(
            lambda run_id: (
                gr.update(value=run_id) if run_id in manager.model_names() else gr.skip()
            ),
            inputs=run,
            outputs=model,
            **UI_ONLY,
        )
        collect_button.click(
            collect,
            inputs=[accounts, upload, upload_handle],
            outputs=[run, collect_status, upload],
            concurrency_limit=None,
            **UI_ONLY,
        )
        train_button.click(
            train,
            inputs=[run, base_model, epochs, lora, seen],
            outputs=[train_progress, seen],
            concurrency_limit=None,
            **UI_ONLY,
        )
        cancel_button.click(
            cancel, inputs=run, outputs=train_progress, concurrency_limit=None, **UI_ONLY
        )
        timer.tick(
            poll,
            inputs=[run, seen],
            outputs=[collect_status, statistics, examples, train_progress, model, run, tabs, seen],
            show_progress="hidden",
            concurrency_limit=None,
            **UI_ONLY,
        )
        # No limit: concurrent requests reach the model service, which batches them.
        for trigger in (generate_button.click, prompt.submit):
            trigger(
                generate,
                inputs=[model, prompt],
                outputs=[generations, generate_status],
                concurrency_limit=None,
                **UI_ONLY,
            )
        model.change(preview, inputs=model, outputs=preview_image, **UI_ONLY)
        if can_push:  # no push endpoint at all on a server without a token
            push_button.click(push, inputs=model, outputs=push_status, **UI_ONLY)
    return blocks
