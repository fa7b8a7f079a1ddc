"""The one object the API and the UI call: :class:`JobManager`, over the catalog of runs
and models (serve.catalog) and a job queue (serve.jobs). Every request is checked here,
before a job is queued, so that a client's error is answered at once and names its field.
The uploads' folders are kept here too (:class:`Uploads`): none outlives its job, its
server's shutdown, or (after a kill) the next start.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import IO

from huggingtweets.core.errors import HuggingtweetsError
from huggingtweets.core.options import OptionError
from huggingtweets.core.runs import RunDir
from huggingtweets.serve.catalog import (
    UPLOADS_DIR,
    Catalog,
    check_run_id,
    check_upload_name,
    run_name_words,
    save_bounded,
)
from huggingtweets.serve.config import ServeConfig
from huggingtweets.serve.errors import Busy, QueueFull
from huggingtweets.serve.jobs import ENDED, EmbeddedJobQueue, JobQueue, JobWork
from huggingtweets.serve.messages import server_words, without_upload_folder
from huggingtweets.serve.requests import check_sources, client_train_options

log = logging.getLogger(__name__)
UPLOAD_PREFIX = "upload-"  # runs_dir/.uploads/upload-*: an upload's folder (catalog)
PAGE_PREFIX = "page-"  # runs_dir/.uploads/page-*: the page framework's files (a server's)


class TrainedRun(Busy):
    """A run_id naming a run that has a trained model (409, as a busy run): other
    accounts' posts in its dataset would leave its model and card describing the old."""


class Uploads:
    """The uploads' folders (runs_dir/.uploads/upload-*), each locked by the server that
    made it (an flock on the folder, released by the OS when that process dies) for as
    long as that server may still use it. A folder's job removes it when it ends; the
    server removes those of its jobs that will not run at shutdown; and a server that
    starts (a restart, a replica) removes the folders that no process holds and no job
    still to run names: those of a server that stopped mid-job (Ctrl-C, kill -9).

    The page's folder (runs_dir/.uploads/page-*, :meth:`new_page_folder`: the files the
    page framework keeps, such as an upload not collected yet) is one more such folder
    that no job ever names: removed at its server's shutdown, or after a kill by the
    next start."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.folder = catalog.runs_dir / UPLOADS_DIR
        self._held: dict[Path, int] = {}  # folder -> the open descriptor holding its lock
        self._lock = threading.Lock()

    def new(self) -> Path:
        """A new folder, locked: a starting server never removes it under us."""
        return self._new_locked(self.catalog.new_upload_folder)

    def new_page_folder(self) -> Path:
        """A new folder for the page framework's files, locked as an upload's is: no job
        reads it, so it goes at this server's shutdown, or once it is dead at the next
        start of any server over these runs (never while this one holds it)."""

        def make() -> Path:
            self.folder.mkdir(parents=True, exist_ok=True)
            return Path(tempfile.mkdtemp(prefix=PAGE_PREFIX, dir=self.folder))

        return self._new_locked(make)

    def _new_locked(self, make: Callable[[], Path]) -> Path:
        self._let_go_of_removed()
        for _ in range(10):
            folder = make()
            fd = _locked(folder)
            if fd is not None:
                with self._lock:
                    self._held[folder] = fd
                return folder
            # A starting server took it between its creation and the lock (and removes it).
        raise HuggingtweetsError("no folder for the upload could be made: try again")

    def remove(self, folder: Path) -> None:
        shutil.rmtree(folder, ignore_errors=True)
        self._let_go(folder)

    def remove_stale(self, in_use: Callable[[], set[str]]) -> list[str]:
        """Remove the folders nobody holds and ``in_use()`` (the names of the folders that
        queued or running jobs will read) does not name. Each folder is locked before the
        jobs are read: one made meanwhile is held by its server until its job is queued."""
        taken: dict[Path, int] = {}
        try:
            for entry in self._candidates():
                fd = _locked(entry)
                if fd is not None:
                    taken[entry] = fd
            if not taken:
                return []
            used = in_use()
            stale = [folder for folder in taken if folder.name not in used]
            for folder in stale:
                shutil.rmtree(folder, ignore_errors=True)
            return [folder.name for folder in stale]
        finally:
            for fd in taken.values():
                os.close(fd)

    def close(self, in_use: set[str] | None) -> None:
        """At shutdown: the folders this server holds are removed unless a job still to
        run names them (``in_use``; None: unknown, all kept for the next start; the
        page's folder always goes); every lock is released."""
        with self._lock:
            held, self._held = self._held, {}
        for folder, fd in held.items():
            try:
                page = folder.name.startswith(PAGE_PREFIX)  # no job reads it: it goes
                if page or (in_use is not None and folder.name not in in_use):
                    shutil.rmtree(folder, ignore_errors=True)
            finally:
                os.close(fd)

    def _candidates(self) -> Iterator[Path]:
        with self._lock:
            mine = set(self._held)
        if not self.folder.is_dir():
            return
        for entry in self.folder.iterdir():
            ours = entry.name.startswith((UPLOAD_PREFIX, PAGE_PREFIX)) and entry not in mine
            if ours and entry.is_dir() and not entry.is_symlink():
                yield entry

    def _let_go(self, folder: Path) -> None:
        with self._lock:
            fd = self._held.pop(folder, None)
        if fd is not None:
            os.close(fd)

    def _let_go_of_removed(self) -> None:
        """The locks of the folders that their jobs have removed meanwhile."""
        with self._lock:
            gone = [folder for folder, fd in self._held.items() if not _same_folder(fd, folder)]
        for folder in gone:
            self._let_go(folder)


def _same_folder(fd: int, folder: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), os.stat(folder, follow_symlinks=False))
    except FileNotFoundError:
        return False


def _locked(folder: Path) -> int | None:
    """An open descriptor of ``folder`` holding its exclusive flock; None when another
    descriptor holds it (another server, or a starting one about to remove it) or the
    folder is gone."""
    import fcntl

    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    if not _same_folder(fd, folder):  # removed by whoever held it before us
        os.close(fd)
        return None
    return fd


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
        self.uploads = Uploads(self.catalog)
        self._remove_stale_uploads()

    # -- what the server lists --------------------------------------------------------------

    def model_path(self, name: str) -> str:
        return self.catalog.model_path(name)

    def model_names(self) -> list[str]:
        return self.catalog.model_names()

    def runs(self) -> list[dict]:
        return self.catalog.runs()

    def run(self, run_id: str) -> dict:
        """A run's summary, statistics, a few kept posts per account (at most
        MAX_EXAMPLES, each of at most MAX_EXAMPLE_CHARS characters and a marker: see
        catalog.examples), and its jobs."""
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
        """Stop the jobs (see JobQueue.close), then remove the uploads no job will read."""
        in_use = self._uploads_in_use_or_none()  # before the queue closes its connection
        self.queue.close(timeout)
        self.uploads.close(in_use)

    # -- uploads --------------------------------------------------------------------------

    def _uploads_in_use(self) -> set[str]:
        """The upload folders' names that jobs still to run will read. The embedded
        queue's jobs end with this server; the Redis queue's outlive it (workers run them),
        and so do their uploads."""
        if isinstance(self.queue, EmbeddedJobQueue):
            return set()
        from huggingtweets.serve.redis_queue import RedisJobQueue

        if isinstance(self.queue, RedisJobQueue):
            return self.queue.uploads_in_use()
        # Another backend: which folders its jobs hold is unknown, so all are.
        return {entry.name for entry in self.uploads.folder.glob(f"{UPLOAD_PREFIX}*")}

    def _uploads_in_use_or_none(self) -> set[str] | None:
        try:
            return self._uploads_in_use()
        except QueueFull as exc:  # Redis away: which uploads its jobs need is unknown
            log.warning("uploads kept for now (%s)", exc)
            return None

    def _remove_stale_uploads(self) -> None:
        """At start: the uploads that a server stopped mid-job left behind."""
        try:
            removed = self.uploads.remove_stale(self._uploads_in_use)
        except QueueFull as exc:  # Redis away: left for the next start
            log.warning("stale uploads not looked for (%s)", exc)
            return
        if removed:
            log.info("removed %d upload(s) left by a stopped server", len(removed))

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
        model is refused (TrainedRun) unless ``overwrite``: then the job removes what was
        trained on its old dataset (model, card, metrics, checkpoints, trials) once the new
        one is written (jobs.prepare_job), so that nothing describes posts the run no longer
        holds, and a prepare that fails loses nothing."""
        sources, handles = list(sources), list(handles)
        check_sources(sources, handles)
        if run_id is None:
            if overwrite:
                raise OptionError(
                    "overwrite", "applies to a run_id: a new run has nothing to replace"
                )
            work = JobWork("prepare", "", sources=tuple(sources), handles=tuple(handles))
            return self._create_named(work, handles or run_name_words(sources))
        check_run_id(run_id)
        self.catalog.check_not_given_model(run_id)
        if (self.runs_dir / run_id).is_symlink():
            raise OptionError("run_id", "names a link, not a run folder")
        from huggingtweets.prepare.dataset import trained_models

        run = RunDir(self.runs_dir / run_id)
        if overwrite:
            self._check_free(run)  # answered now; the job removes the model, once it may
        elif trained_models(run):
            raise TrainedRun(
                f"run {run_id!r} already has a trained model: other accounts' posts in its "
                "dataset would leave its model and card describing the old ones; leave "
                "run_id out for a new run, or send overwrite: true to replace its dataset "
                "and remove what was trained on it"
            )
        work = JobWork(
            "prepare",
            run_id,
            sources=tuple(sources),
            handles=tuple(handles),
            overwrite=overwrite,
        )
        return self.queue.create(work)

    def _check_free(self, run: RunDir) -> None:
        """Busy when a job of ``run`` is queued or running or a process trains it now (an
        overwrite is refused at once, not as a job that fails)."""
        from huggingtweets.core.runs import training_lock

        run_id = run.root.name
        for job in self.queue.list():
            if job["run_id"] == run_id and job["state"] not in ENDED:
                raise Busy(
                    f"run {run_id!r} already has a {job['kind']} job {job['state']} ({job['id']})"
                )
        try:
            with training_lock(run.root):
                pass
        except HuggingtweetsError:  # training_lock: another process trains or prepares it
            raise Busy(
                f"run {run_id!r} is being trained or prepared by another process: try again "
                "once it ends"
            ) from None

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
        folder = self.uploads.new()
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
            self.uploads.remove(folder)
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
