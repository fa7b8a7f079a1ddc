"""The server's jobs: what they are (:class:`JobRecord`), the one interface every job
backend offers (:class:`JobQueue`), and the embedded backend (:class:`EmbeddedJobQueue`).

A *prepare* job collects and prepares posts into a run (in a thread of the server: it
waits on files and the network); a *train* job runs :func:`pipeline.make_bot` on a run in
ONE worker process (serve.worker), one job at a time, the others queued with their
position. Both report through :class:`events.Reporter`; their progress is kept on the
job, so that a page reload, a second tab or an API client sees the same job. Cancelling
reaches the job's reporter (training stops after the current step, with its checkpoint).

This is the library side: the HTTP API (serve.api) and the UI (serve.ui) are two
front-ends over it, and it imports neither FastAPI nor Gradio.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import datetime as dt
import logging
import math
import os
import re
import secrets
import shutil
import tempfile
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from huggingtweets.core.errors import HuggingtweetsError
from huggingtweets.core.events import Cancelled, Event, Reporter
from huggingtweets.serve.errors import Busy, QueueFull, UnknownJob
from huggingtweets.serve.messages import (
    ended_text,
    error_text,
    one_line,
    server_words,
    without_root,
    without_upload_folder,
)
from huggingtweets.serve.worker import TrainingWorker

log = logging.getLogger(__name__)

JOB_ID_RE = re.compile(r"[0-9a-f]{16}")
KINDS = ("prepare", "train")
ENDED = ("succeeded", "failed", "cancelled")
KEPT_JOBS = 200  # finished jobs remembered (the oldest are forgotten first)
# Jobs waiting per queue (prepare, train); one more is a 503. Each waiting upload keeps
# its file (up to max_upload_bytes) on disk: without a bound, a client fills the disk.
MAX_WAITING_JOBS = 32
PREPARE_THREADS = 2
TRAIN_THREADS = 1  # one training at a time: the worker process has the machine
# What a run holds trained on its dataset, beside TRAINED_OUTPUTS (model/, metrics.json,
# evaluation.json): what a resume would continue, a sweep's trials and its study, the tiny
# base built from its training posts. Removed when an overwrite replaces the dataset.
TRAINED_FOLDERS = ("checkpoints", "trials", "sweep", "tiny-base")


def utc_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class JobWork:
    """What a job is to do, as plain data (a backend may hand it to another process)."""

    kind: str  # "prepare" | "train"
    run_id: str
    options: dict[str, Any] = field(default_factory=dict)  # as given (a served model by name)
    worker_options: dict[str, Any] = field(default_factory=dict)  # its path on the server
    sources: tuple[str, ...] = ()
    handles: tuple[str, ...] = ()
    upload: Path | None = None  # the uploaded file's temporary folder, removed at the end
    overwrite: bool = False  # a prepare into a run with a trained model, asked for


@dataclass
class JobRecord:
    """A job as the embedded backend keeps it: its work, its state and who watches it."""

    id: str
    work: JobWork
    state: str = "queued"
    progress: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)
    error: str | None = None
    created: str = field(default_factory=utc_now)
    finished: str | None = None
    reporter: Reporter | None = None  # a prepare job's (a train job's is in the worker)
    version: int = 0
    watchers: set[Callable[[], None]] = field(default_factory=set)


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def progress_after(previous: dict[str, Any] | None, event: dict[str, Any]) -> dict[str, Any]:
    """The job's progress after ``event`` (an Event.to_dict()): a new stage starts afresh;
    notes (info, warning) change the message only; the last loss stays shown."""
    data = event.get("data") or {}
    kind = event.get("kind")
    fresh = previous is None or previous.get("stage") != event.get("stage") or kind == "start"
    base = dict.fromkeys(("step", "total", "loss", "eta", "epoch")) if fresh else dict(previous)
    progress = {"stage": event.get("stage"), **base, "message": (previous or {}).get("message")}
    if kind in ("start", "progress"):
        for key in ("step", "total"):
            if isinstance(event.get(key), int):
                progress[key] = event[key]
        # A diverged loss (nan, inf) is no JSON number: shown as unknown.
        for key in ("eta", "loss"):
            if _finite(event.get(key)):
                progress[key] = float(event[key])
    epoch = data.get("epoch")
    if _finite(epoch):
        progress["epoch"] = float(epoch)
    if event.get("message"):
        progress["message"] = one_line(event["message"])
    if kind == "end":
        progress["eta"] = 0.0
        if progress.get("total") is not None:
            progress["step"] = progress["total"]
    return progress


class JobQueue(abc.ABC):
    """The jobs of one server, whatever runs them. Jobs are answered as snapshots (plain
    dicts: id, run_id, kind, state, position, progress, error, warnings, options,
    created, finished), the shape of the API's Job."""

    @abc.abstractmethod
    def create(self, work: JobWork) -> dict:
        """Queue ``work``. Raises Busy when its run has a job queued or running,
        QueueFull when too many of its kind wait, HuggingtweetsError once closed."""

    @abc.abstractmethod
    def check_room(self, kind: str) -> None:
        """Raise now what create() would for a full queue or a closed server (before an
        upload is written to disk)."""

    @abc.abstractmethod
    def get(self, job_id: str) -> dict:
        """The job's snapshot (UnknownJob if none)."""

    @abc.abstractmethod
    def list(self) -> list[dict]:
        """Every job remembered, newest first."""

    @abc.abstractmethod
    def position(self, job_id: str) -> int | None:
        """A queued job's place in its queue (1 = next); None once it runs."""

    @abc.abstractmethod
    def events(self, job_id: str, *, heartbeat: float | None = None) -> AsyncIterator[dict]:
        """The job's snapshot now, then each time it changes, until it ends (the last
        snapshot is the ended one). ``heartbeat``: also yield the unchanged snapshot after
        that many quiet seconds (keeps an event stream's connection alive)."""

    @abc.abstractmethod
    def cancel(self, job_id: str) -> dict:
        """A queued job leaves the queue; a running one is asked to stop at its next safe
        point (training: after the current step, with its checkpoint); an ended one stays
        as it ended."""

    @abc.abstractmethod
    def close(self, timeout: float = 30.0) -> None:
        """Stop: queued jobs are cancelled, running ones asked to stop and given
        ``timeout`` seconds."""


class EmbeddedJobQueue(JobQueue):
    """Jobs in this process: prepare jobs in threads, train jobs in one worker process
    (serve.worker); nothing to start beside the server, and nothing kept over a restart."""

    def __init__(self, runs_dir: Path, worker: TrainingWorker | None = None) -> None:
        self.runs_dir = Path(runs_dir)
        self.worker = worker or TrainingWorker()
        self._lock = threading.RLock()
        self._wake = threading.Condition(self._lock)
        self._jobs: dict[str, JobRecord] = {}
        self._waiting: dict[str, list[JobRecord]] = {kind: [] for kind in KINDS}
        self._closed = False
        self._threads: list[threading.Thread] = []

    # -- the interface ----------------------------------------------------------------

    def create(self, work: JobWork) -> dict:
        with self._lock:
            active = self._active_job(work.run_id)
            self._check_open()
            if active is not None:
                raise Busy(
                    f"run {work.run_id!r} already has a {active.work.kind} job "
                    f"{active.state} ({active.id})"
                )
            self.check_room(work.kind)
            job = JobRecord(secrets.token_hex(8), work)
            self._remember(job)
            self._waiting[work.kind].append(job)
            self._start_threads(work.kind)
            self._wake.notify_all()
            return self._snapshot(job)

    def check_room(self, kind: str) -> None:
        with self._lock:
            self._check_open()
            waiting = self._waiting[kind]
            if len(waiting) >= MAX_WAITING_JOBS:
                raise QueueFull(
                    f"{len(waiting)} {kind} jobs are waiting already: try again once some have run",
                    retry_after=30,
                )

    def get(self, job_id: str) -> dict:
        with self._lock:
            return self._snapshot(self.record(job_id))

    def list(self) -> list[dict]:
        with self._lock:
            return [self._snapshot(j) for j in reversed(self._jobs.values())]

    def position(self, job_id: str) -> int | None:
        with self._lock:
            return self._position(self.record(job_id))

    async def events(self, job_id: str, *, heartbeat: float | None = None) -> AsyncIterator[dict]:
        loop = asyncio.get_running_loop()
        changed = asyncio.Event()

        def wake() -> None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody listens
                loop.call_soon_threadsafe(changed.set)

        with self._lock:
            job = self.record(job_id)
            job.watchers.add(wake)
        try:
            seen = -1
            while True:
                changed.clear()
                with self._lock:
                    version, snapshot = job.version, self._snapshot(job)
                if version != seen:
                    seen = version
                    yield snapshot
                if snapshot["state"] in ENDED:
                    return
                try:
                    await asyncio.wait_for(changed.wait(), heartbeat)
                except TimeoutError:
                    yield snapshot
        finally:
            with self._lock:
                job.watchers.discard(wake)

    def cancel(self, job_id: str) -> dict:
        with self._lock:
            job = self.record(job_id)
            if job.state == "queued":
                waiting = self._waiting[job.work.kind]
                if job in waiting:
                    waiting.remove(job)
                    self._changed(*waiting)
                _remove_upload(job)
                self._finish(job, "cancelled")
            elif job.state == "running":
                if job.work.kind == "train":
                    self.worker.cancel()
                elif job.reporter is not None:
                    job.reporter.cancel()
                progress = job.progress or progress_after(None, {})
                job.progress = {**progress, "message": "cancelling"}
                self._changed(job)
            return self._snapshot(job)

    def close(self, timeout: float = 30.0) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for waiting in self._waiting.values():
                for job in waiting:
                    _remove_upload(job)  # a file no job will read: not left on disk
                    self._finish(job, "cancelled")
                waiting.clear()
            for job in self._jobs.values():
                if job.state == "running" and job.reporter is not None:
                    job.reporter.cancel()
            self.worker.cancel()
            self._wake.notify_all()
        self.worker.stop(timeout)
        for thread in self._threads:
            if thread.name.startswith("train"):
                thread.join(5)
        with self._lock:
            for job in self._jobs.values():
                if job.state == "running" and job.work.kind == "train":
                    self._finish(job, "cancelled")

    def record(self, job_id: str) -> JobRecord:
        """The job itself (UnknownJob if none); its fields change under the queue's lock."""
        job = self._jobs.get(job_id) if isinstance(job_id, str) else None
        if job is None:
            raise UnknownJob(f"unknown job {one_line(str(job_id), 100)!r}")
        return job

    # -- running jobs -------------------------------------------------------------------

    def _start_threads(self, kind: str) -> None:
        target, count = {
            "prepare": (self._prepare_loop, PREPARE_THREADS),
            "train": (self._train_loop, TRAIN_THREADS),
        }[kind]
        alive = [t for t in self._threads if t.is_alive() and t.name.startswith(kind)]
        for n in range(len(alive), count):
            # Daemon threads: a live collection stuck on a slow server must not keep the
            # process alive once the server has been told to stop.
            thread = threading.Thread(target=target, name=f"{kind}-{n}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def _next(self, kind: str) -> JobRecord | None:
        """The next waiting job of ``kind`` (the lock held; waits for one), None once closed."""
        waiting = self._waiting[kind]
        while not self._closed and not waiting:
            self._wake.wait()
        return None if self._closed else waiting.pop(0)

    def _prepare_loop(self) -> None:
        while True:
            with self._lock:
                job = self._next("prepare")
                if job is None:
                    return
                job.state = "running"
                job.reporter = Reporter(lambda event, job=job: self._on_event(job, event))
                self._changed(job, *self._waiting["prepare"])
            self._run_prepare(job)

    def _run_prepare(self, job: JobRecord) -> None:
        try:
            prepare_job(self.runs_dir / job.work.run_id, job.work, job.reporter)
        except Cancelled:
            self._finish(job, "cancelled")
        except Exception as exc:  # a job's failure is its state, not the server's
            if not isinstance(exc, HuggingtweetsError):
                log.warning("prepare job %s failed: %s", job.id, error_text(exc))
            self._finish(job, "failed", error_text(exc))
        else:
            self._finish(job, "succeeded")
        finally:
            _remove_upload(job)

    def _train_loop(self) -> None:
        while True:
            with self._lock:
                job = self._next("train")
                if job is None:
                    return
                try:
                    self.worker.start()
                except (OSError, RuntimeError) as exc:  # no process to be had: this job fails
                    self._changed(*self._waiting["train"])
                    self._finish(job, "failed", f"cannot start the training process: {exc}")
                    continue
                job.state = "running"
                self._changed(job, *self._waiting["train"])
                # Under the lock: a cancel() from now on is not lost. Absolute: the
                # worker runs its jobs in a folder of their own (serve.worker).
                run_dir = str((self.runs_dir / job.work.run_id).resolve())
                self.worker.submit(job.id, run_dir, job.work.worker_options)
            outcome = self.worker.follow(job.id, lambda event, job=job: self._on_event(job, event))
            if outcome is None and self._closed:  # ended by close(), after its grace time
                outcome = ("cancelled", None)
            elif outcome is None:  # killed (a signal) or crashed: said as it is known
                outcome = ("failed", ended_text("the training process", self.worker.exitcode))
            self._finish(job, *outcome)

    # -- bookkeeping ----------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise HuggingtweetsError("the server is shutting down")

    def _active_job(self, run_id: str) -> JobRecord | None:
        for job in self._jobs.values():
            if job.work.run_id == run_id and job.state not in ENDED:
                return job
        return None

    def _remember(self, job: JobRecord) -> None:
        self._jobs[job.id] = job
        ended = [j for j in self._jobs.values() if j.state in ENDED]
        for old in ended[: max(0, len(self._jobs) - KEPT_JOBS)]:
            del self._jobs[old.id]

    def _changed(self, *jobs: JobRecord) -> None:
        for job in jobs:
            job.version += 1
            for wake in list(job.watchers):
                wake()

    def _on_event(self, job: JobRecord, event: Event | dict) -> None:
        payload = event.to_dict() if isinstance(event, Event) else event
        with self._lock:
            if job.state in ENDED:
                return
            message = without_root(payload.get("message") or "", self.runs_dir)
            payload = {**payload, "message": message}
            job.progress = progress_after(job.progress, payload)
            if payload.get("kind") == "warning" and len(job.warnings) < 20:
                job.warnings.append(one_line(payload["message"]))
            self._changed(job)

    def _finish(self, job: JobRecord, state: str, error: str | None = None) -> None:
        with self._lock:
            job.state = state
            job.error = self._public_error(job, error) if state == "failed" else None
            job.finished = utc_now()
            job.reporter = None
            self._changed(job)

    def _public_error(self, job: JobRecord, error: str | None) -> str:
        """A failed job's error as its clients see it: one line, an upload named by its
        file name, other paths relative to runs_dir (where the server keeps its files is
        not their business)."""
        text = server_words(one_line(error or "failed"))
        if job.work.upload is not None:
            text = without_upload_folder(text, job.work.upload)
        return without_root(text, self.runs_dir)

    def _position(self, job: JobRecord) -> int | None:
        waiting = self._waiting[job.work.kind]
        return waiting.index(job) + 1 if job in waiting else None

    def _snapshot(self, job: JobRecord) -> dict:
        return {
            "id": job.id,
            "run_id": job.work.run_id,
            "kind": job.work.kind,
            "state": job.state,
            "position": self._position(job),
            "progress": dict(job.progress) if job.progress is not None else None,
            "error": job.error,
            "warnings": list(job.warnings),
            "options": dict(job.work.options),
            "created": job.created,
            "finished": job.finished,
        }


def prepare_job(run_dir: Path, work: JobWork, reporter: Reporter | None) -> None:
    """A prepare job's work, whatever backend runs it: ``work.sources`` collected and
    prepared into ``run_dir``. With ``work.overwrite`` (a run with a trained model), what
    was trained on the old dataset is removed only once the new one is written (prepare
    swaps dataset/ in whole), under the same lock: a prepare that fails (a bad upload, no
    posts, cancelled) leaves the run as it was, model and card included; one that succeeds
    leaves nothing describing posts the run no longer holds."""
    from huggingtweets.core.runs import training_lock
    from huggingtweets.prepare.dataset import prepare

    sources, handles = list(work.sources), list(work.handles)
    if not work.overwrite:
        prepare(run_dir, sources, handles, reporter=reporter)
        return
    with training_lock(run_dir):  # no training starts between the two
        prepare(run_dir, sources, handles, reporter=reporter, overwrite=True)
        remove_trained(run_dir)


def remove_trained(run_dir: Path) -> None:
    """Remove what was trained on ``run_dir``'s dataset: each moved at once into a
    temporary folder (the model first: the run has none from then on), then deleted (a
    killed process's is removed by the run's next stage)."""
    from huggingtweets.core.runs import TRAINED_OUTPUTS, temporary_prefix

    names = [*TRAINED_OUTPUTS, *TRAINED_FOLDERS]
    present = [name for name in names if os.path.lexists(run_dir / name)]
    trash, name = None, None
    try:
        if present:
            trash = Path(tempfile.mkdtemp(prefix=temporary_prefix("trained.old"), dir=run_dir))
        for name in present:
            os.replace(run_dir / name, trash / name)
    except OSError as exc:
        what = f"{name!r}, trained on the old one," if name else "what was trained on the old one"
        raise HuggingtweetsError(
            f"the new dataset is written, but {what} cannot be removed "
            f"({exc.strerror or exc}): remove it, or train the run again"
        ) from None
    finally:
        if trash is not None:
            shutil.rmtree(trash, ignore_errors=True)


def _remove_upload(job: JobRecord) -> None:
    if job.work.upload is not None:
        shutil.rmtree(job.work.upload, ignore_errors=True)
