"""The one object the API and the UI call: :class:`JobManager`, over the catalog of runs
and models (serve.catalog) and a job queue (serve.jobs). Every request is checked here,
before a job is queued, so that a client's error is answered at once and names its field.
"""

from __future__ import annotations

import dataclasses
import shutil
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO

from huggingtweets.core.errors import HuggingtweetsError
from huggingtweets.core.options import OptionError
from huggingtweets.core.runs import RunDir
from huggingtweets.serve.catalog import (
    Catalog,
    check_run_id,
    check_upload_name,
    run_name_words,
    save_bounded,
)
from huggingtweets.serve.config import ServeConfig
from huggingtweets.serve.errors import Busy
from huggingtweets.serve.jobs import EmbeddedJobQueue, JobQueue, JobWork
from huggingtweets.serve.messages import server_words, without_upload_folder
from huggingtweets.serve.requests import check_sources, client_train_options


class TrainedRun(Busy):
    """A run_id naming a run that has a trained model (409, as a busy run): other
    accounts' posts in its dataset would leave its model and card describing the old."""


class JobManager:
    """Runs under ``config.runs_dir``, the models given at start, and the jobs."""

    def __init__(self, config: ServeConfig, queue: JobQueue | None = None) -> None:
        self.config = config
        self.catalog = Catalog(config.runs_dir, config.models)
        self.runs_dir = self.catalog.runs_dir
        self.queue = queue or _queue_for(config, self.runs_dir)
        # A new run's name is chosen and its job queued in one step: two requests at once
        # never pick the same name.
        self._naming = threading.Lock()

    # -- what the server lists --------------------------------------------------------------

    def model_path(self, name: str) -> str:
        return self.catalog.model_path(name)

    def model_names(self) -> list[str]:
        return self.catalog.model_names()

    def runs(self) -> list[dict]:
        return self.catalog.runs()

    def run(self, run_id: str) -> dict:
        """A run's summary, statistics, a few kept posts per account, and its jobs."""
        run = self.catalog.run(run_id)
        return {**run, "jobs": [j for j in self.jobs() if j["run_id"] == run_id]}

    # -- jobs ---------------------------------------------------------------------------------

    def jobs(self) -> list[dict]:
        return self.queue.list()

    def job(self, job_id: str) -> dict:
        return self.queue.get(job_id)

    def cancel(self, job_id: str) -> dict:
        return self.queue.cancel(job_id)

    def subscribe(self, job_id: str, *, heartbeat: float | None = None) -> AsyncIterator[dict]:
        return self.queue.events(job_id, heartbeat=heartbeat)

    def close(self, timeout: float = 30.0) -> None:
        self.queue.close(timeout)

    def _create_named(self, work: JobWork, words: list[str]) -> dict:
        """Queue ``work`` in a new run named after ``words``."""
        with self._naming:
            taken = {job["run_id"] for job in self.queue.list()}
            run_id = self.catalog.new_run_id(words, taken)
            return self.queue.create(dataclasses.replace(work, run_id=run_id))

    def create_run(
        self,
        sources: list[str],
        handles: list[str] = (),
        *,
        run_id: str | None = None,
        overwrite: bool = False,
    ) -> dict:
        """A job that collects ``sources`` (accounts) and prepares them into a run:
        ``run_id``, or a new one named after the accounts. A ``run_id`` with a trained
        model is refused (TrainedRun) unless ``overwrite``."""
        sources, handles = list(sources), list(handles)
        check_sources(sources, handles)
        if run_id is None:
            work = JobWork("prepare", "", sources=tuple(sources), handles=tuple(handles))
            return self._create_named(work, handles or run_name_words(sources))
        check_run_id(run_id)
        if (self.runs_dir / run_id).is_symlink():
            raise OptionError("run_id", "names a link, not a run folder")
        from huggingtweets.prepare.dataset import trained_models

        if not overwrite and trained_models(RunDir(self.runs_dir / run_id)):
            raise TrainedRun(
                f"run {run_id!r} already has a trained model: other accounts' posts in its "
                "dataset would leave its model and card describing the old ones; leave "
                "run_id out for a new run"
            )
        work = JobWork(
            "prepare",
            run_id,
            sources=tuple(sources),
            handles=tuple(handles),
            overwrite=overwrite,
        )
        return self.queue.create(work)

    def create_run_from_upload(
        self, filename: str, data: bytes | Path | IO[bytes], handles: list[str] = ()
    ) -> dict:
        """A job that prepares an uploaded export or posts file into a new run. The file
        is kept, size-bounded, in a folder of its own until the job ends; the readers
        bound what they unpack (no path escape, no zip bomb), as for the CLI."""
        from huggingtweets.collect.collection import resolve_all

        name = check_upload_name(filename)
        handles = _upload_handles(handles)
        self.queue.check_room("prepare")  # before the file is written, and again when queued
        folder = self.catalog.new_upload_folder()
        try:
            path = folder / name
            save_bounded(data, path, self.config.max_upload_bytes)
            if path.stat().st_size == 0:  # refused now, not as a job that fails later
                raise OptionError("file", f"{name} is empty: choose the export or posts file")
            try:  # the format recognised now: "not an export" is the client's error
                resolve_all([str(path)], handles)
            except HuggingtweetsError as exc:
                problem = server_words(without_upload_folder(str(exc), folder))
                raise OptionError("file", problem) from None
            work = JobWork(
                "prepare", "", sources=(str(path),), handles=tuple(handles), upload=folder
            )
            return self._create_named(work, handles or [Path(name).stem])
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise

    def check_train_options(self, options: dict) -> tuple[dict, dict]:
        """The training options checked as TrainOptions checks them (errors name the
        field), with the form's aliases ("epochs") and a base model that the server may
        load: 'tiny', a model it serves (by name), or a Hub id. Returns (the options as
        given, the options for the worker: a served model's name replaced by its path,
        which the client need not see)."""
        from huggingtweets.train.recipe import TrainOptions

        options = client_train_options(options)
        for_worker = dict(options)
        base = options.get("base_model", "gpt2")
        if isinstance(base, str) and base != "tiny":
            for_worker["base_model"] = self.catalog.base_model_path(base)
        TrainOptions(**for_worker)  # every check, each naming its field
        return options, for_worker

    def start_training(self, run_id: str, options: dict) -> dict:
        """Queue a training of ``run_id`` (TrainOptions fields); checked before queueing."""
        from huggingtweets.train.options import TrainOptions
        from huggingtweets.train.resume import check_resume

        path = self.catalog.run_dir(run_id)
        options, for_worker = self.check_train_options(options)
        if not RunDir(path).train_path.is_file():
            raise OptionError(
                "run_id", f"run {run_id!r} has no dataset yet: create it from accounts first"
            )
        # A resume with other options than the checkpoint's is refused now, naming the
        # option (the worker checks again, should the checkpoint change meanwhile).
        check_resume(RunDir(path).checkpoints_dir, TrainOptions(**for_worker))
        work = JobWork("train", run_id, options=options, worker_options=for_worker)
        return self.queue.create(work)


def _queue_for(config: ServeConfig, runs_dir: Path) -> JobQueue:
    """The Redis backend when ``config.queue`` names one, else the embedded one."""
    if not config.queue:
        return EmbeddedJobQueue(runs_dir)
    from huggingtweets.serve.redis_queue import RedisJobQueue

    return RedisJobQueue(config.queue, runs_dir)


def _upload_handles(handles: list[str]) -> list[str]:
    from huggingtweets.core.records import check_handle

    handles = list(handles)
    if not all(isinstance(h, str) for h in handles):
        raise OptionError("handle", "must be text")
    if len(handles) > 1:
        raise OptionError("handle", "one file is one account: give at most one handle")
    for handle in handles:
        try:
            check_handle(handle)
        except HuggingtweetsError as exc:
            raise OptionError("handle", str(exc)) from None
    return handles
