"""The run the page shows, over time: which run and tab a page opens on, everything steps
1 and 2 show for a run, and a timer's tick that shows what changed since.

The page keeps no job of its own: jobs live in the JobManager, keyed by run id, and the
timer shows the latest jobs of the selected run, so a reload or a second tab shows the
same training.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr

from huggingtweets.serve.config import ServeConfig
from huggingtweets.serve.manager import JobManager
from huggingtweets.serve.ui.accounts import AccountsStep
from huggingtweets.serve.ui.generate import GenerateStep
from huggingtweets.serve.ui.train import TrainStep
from huggingtweets.serve.ui.views import (
    POLL_SECONDS,
    TERMINAL,
    UI_ONLY,
    latest_jobs,
    progress_html,
    run_choices,
)


class RunTracker:
    def __init__(
        self,
        manager: JobManager,
        config: ServeConfig,
        steps: tuple[AccountsStep, TrainStep, GenerateStep],
    ) -> None:
        self.manager = manager
        self.config = config
        self.accounts, self.train, self.generate = steps

    def wire(self, blocks: gr.Blocks, run: gr.Dropdown, seen: gr.State, tabs: gr.Tabs) -> None:
        accounts, train, model = self.accounts, self.train, self.generate.model
        shown = [accounts.status, accounts.statistics, accounts.examples, train.progress, model]
        blocks.load(self.on_load, outputs=[run, model, tabs], **UI_ONLY).then(
            self.show_run, inputs=run, outputs=[*shown, seen], **UI_ONLY
        )
        run.change(self.show_run, inputs=run, outputs=[*shown, seen], **UI_ONLY)
        # A run the user picks is also step 3's model, when it has one.
        run.input(self.model_of_run, inputs=run, outputs=model, **UI_ONLY)
        gr.Timer(POLL_SECONDS).tick(
            self.poll,
            inputs=[run, seen],
            outputs=[*shown, run, tabs, seen],
            show_progress="hidden",
            concurrency_limit=None,
            **UI_ONLY,
        )

    def model_of_run(self, run_id: str | None):
        return gr.update(value=run_id) if run_id in self.manager.model_names() else gr.skip()

    def start_model(self) -> str | None:
        """The model given at start (``serve RUN_DIR|MODEL``), by the name the manager uses."""
        names = self.manager.model_names()
        for given in self.config.models:
            path = Path(str(given)).expanduser().resolve()
            # Named as the manager names it: a Hub id as is, a folder by its name (a
            # run's model/ folder by its run's).
            for name in (str(given), path.parent.name if path.name == "model" else path.name):
                if name in names:
                    return name
        return names[0] if self.config.models and names else None

    def job_states(self, run_id: str | None) -> tuple[dict[str, dict], dict[str, str]]:
        jobs = latest_jobs(self.manager.jobs(), run_id)
        return jobs, {job["id"]: job["state"] for job in jobs.values()}

    def show_run(self, run_id: str | None):
        """Everything step 1 and 2 show for a run, fresh (a run chosen, a page loaded)."""
        jobs, states = self.job_states(run_id)
        stats, examples, trained = self.accounts.run_view(run_id)
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
        models = gr.update(choices=self.manager.model_names())
        return seen["collect"], stats, examples, seen["train"], models, seen

    def on_load(self):
        runs, jobs = self.manager.runs(), self.manager.jobs()
        active = [j for j in jobs if j.get("state") not in TERMINAL]
        chosen = self.start_model()
        if active:  # a reload shows the job that is going on
            job = max(active, key=lambda j: str(j.get("created", "")))
            run_id, tab = job["run_id"], ("train" if job.get("kind") == "train" else "accounts")
        else:
            newest = [value for _, value in run_choices(runs, jobs)]
            run_id = chosen if chosen in newest else (newest[0] if newest else None)
            tab = "generate" if chosen else "accounts"
        names = self.manager.model_names()
        model = chosen or (run_id if run_id in names else (names[0] if names else None))
        return (
            gr.update(choices=run_choices(runs, jobs), value=run_id),
            gr.update(choices=names, value=model),
            gr.Tabs(selected=tab),
        )

    def poll(self, run_id: str | None, seen: dict):
        """A timer tick: what changed in the run's jobs since this page last looked."""
        if not run_id or seen.get("run") != run_id:
            return (gr.skip(),) * 8
        jobs, states = self.job_states(run_id)
        before = seen.get("states", {})
        # Jobs this page saw going that have ended since: (kind, how).
        ended = {
            (job["kind"], job["state"])
            for job in jobs.values()
            if job["state"] in TERMINAL and before.get(job["id"]) not in (None, *TERMINAL)
        }
        collect_now = progress_html(jobs["prepare"]) if "prepare" in jobs else seen.get("collect")
        train_now = progress_html(jobs["train"]) if "train" in jobs else seen.get("train")
        out: list[Any] = [gr.skip()] * 7
        if collect_now != seen.get("collect"):
            out[0] = collect_now
        if train_now != seen.get("train"):
            out[3] = train_now
        choices, signature = self._run_choices(seen, out)
        if ("prepare", "succeeded") in ended:
            out[1], out[2], _ = self.accounts.run_view(run_id)
        if ("train", "succeeded") in ended:  # on to step 3 with the new model
            out[4] = gr.update(choices=self.manager.model_names(), value=run_id)
            out[6] = gr.Tabs(selected="generate")
        seen = {**seen, "states": states, "collect": collect_now, "train": train_now}
        seen["choices"], seen["signature"] = choices, signature
        return (*out, seen)

    def _run_choices(self, seen: dict, out: list[Any]) -> tuple[Any, list]:
        """The runs' labels say what they hold now (and a run made in another tab
        appears), read again only when some job has changed state: listing runs reads
        every one. Sets the run dropdown's output (out[5]) when they changed."""
        all_jobs = self.manager.jobs()
        signature = [[job["id"], job["state"]] for job in all_jobs]
        choices = seen.get("choices")
        if signature != seen.get("signature"):
            choices = [list(choice) for choice in run_choices(self.manager.runs(), all_jobs)]
            if choices != seen.get("choices"):
                out[5] = gr.update(choices=choices)
        return choices, signature
